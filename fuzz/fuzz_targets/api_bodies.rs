//! The API's JSON request bodies and event details on any bytes, parsed and validated as the
//! handlers do (`http::json_body` for a route's body, `http::json_value` for an event's detail,
//! then the type's own checks): never panic, and a refusal never quotes a value the caller sent
//! (an API token pasted into the wrong field must not come back in a 400). The first byte picks
//! the body's type; the rest is the body.
#![no_main]

use bridge::api::{ConfirmOAuthRequest, ConnectionRequest, SelectSiteRequest, StartOAuthRequest};
use bridge::atlassian::EgressPolicy;
use bridge::connect::install::LifecyclePayload;
use bridge::connect::lifecycle::LinkRequest;
use bridge::error::ApiError;
use bridge::forge::{ForgeLifecycleEvent, ForgeLinkRequest, ForgeScheduledTrigger};
use bridge::http::{json_body, json_value};
use bridge::issues::edit::{ActionItemEdit, ActionItemsChanged};
use bridge::issues::{ActionItemsDeferred, ActionItemsReady, IssuesRequest};
use bridge::reports::{Report, ReportReady};
use bridge::settings::{ConfluenceSettings, JiraSettings};
use bridge::webhooks::JiraWebhookDelivery;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The body through the route's parser: a `lambda_http` request as API Gateway hands it over.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let request = lambda_http::Request::new(lambda_http::Body::from(bytes.to_vec()));
    json_body(&request)
}

/// The event detail through the event parser.
fn detail<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    json_value(value)
}

/// String values of the document long enough to be a secret, and not a word of ours.
fn sent_values(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s)
            if s.chars().count() >= 8 && s.chars().any(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) =>
        {
            out.push(s.clone())
        }
        Value::Array(a) => a.iter().for_each(|v| sent_values(v, out)),
        Value::Object(o) => o.values().for_each(|v| sent_values(v, out)),
        _ => {}
    }
}

fn quotes_nothing(bytes: &[u8], message: &str) {
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else { return };
    let mut values = Vec::new();
    sent_values(&doc, &mut values);
    for v in values {
        assert!(!message.contains(&v), "the refusal {message:?} quotes the value {v:?}");
    }
}

/// Parse errors only: the types' own checks may name what they refuse (a label, a field).
/// Every string in `doc` but the values of the `secret` keys.
fn strings_except<'a>(doc: &'a Value, secret: &[&str], out: &mut Vec<&'a str>) {
    match doc {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings_except(v, secret, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k);
                if !(secret.contains(&k.as_str()) && v.is_string()) {
                    strings_except(v, secret, out);
                }
            }
        }
        _ => {}
    }
}

fn parsed<T>(bytes: &[u8], r: Result<T, ApiError>) -> Option<T> {
    r.map_err(|e| quotes_nothing(bytes, &e.message)).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let egress = EgressPolicy::default();
    match pick % 18 {
        0 => {
            if let Some(r) = parsed::<Report>(bytes, body(bytes)) {
                let _ = r.validate();
            }
        }
        1 => {
            if let Some(r) = parsed::<IssuesRequest>(bytes, body(bytes)) {
                if r.validate().is_ok() {
                    let mut ids: Vec<_> = r.action_items.iter().map(|a| a.id.as_str()).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    assert_eq!(ids.len(), r.action_items.len(), "a repeated id passed");
                }
            }
        }
        2 => {
            if let Some(r) = parsed::<ActionItemEdit>(bytes, body(bytes)) {
                let _ = r.validate();
            }
        }
        3 => {
            // The checks `PUT /connections/{product}` makes before any call to Atlassian.
            if let Some(r) = parsed::<ConnectionRequest>(bytes, body(bytes)) {
                if r.auth.fits(r.deployment) && r.auth.empty_field().is_none() {
                    if let Ok(url) = egress.parse(&r.base_url) {
                        assert_eq!(url.scheme(), "https");
                    }
                }
                // The credentials never show in the request's Debug form.
                let shown = format!("{r:?}");
                if let Ok(doc) = serde_json::from_slice::<Value>(bytes) {
                    let secrets = ["token", "password", "client_secret"];
                    // What the Debug form may show: every other string of the body. A secret that
                    // is also part of one of them (the fuzzer found `base_url` holding the token's
                    // text, corpus/api_bodies/secret_inside_base_url) is shown by that field.
                    let mut shown_fields = Vec::new();
                    strings_except(&doc, &secrets, &mut shown_fields);
                    for field in secrets {
                        if let Some(secret) = doc["auth"][field].as_str().filter(|s| s.len() >= 4) {
                            if !shown_fields.iter().any(|f| f.contains(secret)) {
                                assert!(!shown.contains(secret), "a secret in Debug: {shown}");
                            }
                        }
                    }
                }
            }
        }
        4 => {
            let _ = parsed::<StartOAuthRequest>(bytes, body(bytes));
        }
        5 => {
            let _ = parsed::<ConfirmOAuthRequest>(bytes, body(bytes));
        }
        6 => {
            let _ = parsed::<SelectSiteRequest>(bytes, body(bytes));
        }
        7 => {
            if let Some(s) = parsed::<ConfluenceSettings>(bytes, body(bytes)) {
                let _ = s.validate();
            }
        }
        8 => {
            if let Some(s) = parsed::<JiraSettings>(bytes, body(bytes)) {
                let _ = s.validate();
            }
        }
        9 => {
            let _ = parsed::<JiraWebhookDelivery>(bytes, body(bytes));
        }
        10 => {
            let _ = parsed::<LifecyclePayload>(bytes, body(bytes));
        }
        11 => {
            let _ = parsed::<LinkRequest>(bytes, body(bytes));
        }
        12 => {
            let _ = parsed::<ForgeLifecycleEvent>(bytes, body(bytes));
        }
        13 => {
            let _ = parsed::<ForgeScheduledTrigger>(bytes, body(bytes));
        }
        14 => {
            let _ = parsed::<ForgeLinkRequest>(bytes, body(bytes));
        }
        // Event details.
        15 => {
            if let Ok(e) = detail::<ReportReady>(bytes) {
                let _ = e.report.validate();
            }
        }
        16 => {
            if let Ok(e) = detail::<ActionItemsReady>(bytes) {
                let _ = e.request().validate();
            }
            if let Ok(e) = detail::<ActionItemsDeferred>(bytes) {
                let _ = e.request().validate();
            }
        }
        _ => {
            if let Ok(e) = detail::<ActionItemsChanged>(bytes) {
                let _ = e.validate();
            }
        }
    }
});
