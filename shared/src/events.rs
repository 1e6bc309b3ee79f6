//! EventBridge in and out. In: `Report Ready`, `Action Items Ready` and `Action Items Changed`
//! (edits of created issues, answered with `Action Items Edited`), delivered by a rule
//! straight to the function (Lambda retries a failed delivery, then parks it in a dead-letter
//! queue). Out: `Page Published`, `Issues Created`, `Publish Failed`, `Egress Abuse Suspected`
//! (connections, see `lockout.rs`), and from the keep-alive sweep `Connection Expiring` and
//! `Connection Broken`, and from the issue sync (`crate::sync`) `Issues Updated` and `Issue
//! Deleted`, through the [`EventBus`] port. Between our own functions (rules matching only our
//! source): `Action Items Deferred`, `Report Issues Created` (create-issue → publish-page) and
//! `Page Published` (publish-page → create-issue, for the remote links), answered with `Report
//! Page Linked` and `Remote Links Added` (see `reports::links`).
//!
//! Every event type names its `detail-type` ([`DetailType`]); each event's JSON Schema is
//! generated from these types into `shared/events/` (see the test).

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// An event's EventBridge `detail-type`, carried by its type: the jobs match incoming events
/// and emit outgoing ones by it, so no literal can drift from the schemas.
pub trait DetailType {
    const DETAIL_TYPE: &'static str;
}

impl DetailType for crate::reports::ReportReady {
    const DETAIL_TYPE: &'static str = "Report Ready";
}

impl DetailType for crate::reports::PagePublished {
    const DETAIL_TYPE: &'static str = "Page Published";
}

impl DetailType for crate::issues::ActionItemsReady {
    const DETAIL_TYPE: &'static str = "Action Items Ready";
}

impl DetailType for crate::issues::edit::ActionItemsChanged {
    const DETAIL_TYPE: &'static str = "Action Items Changed";
}

impl DetailType for crate::issues::edit::ActionItemsEdited {
    const DETAIL_TYPE: &'static str = "Action Items Edited";
}

impl DetailType for crate::issues::ActionItemsDeferred {
    const DETAIL_TYPE: &'static str = "Action Items Deferred";
}

impl DetailType for crate::issues::IssuesCreated {
    const DETAIL_TYPE: &'static str = "Issues Created";
}

impl DetailType for PublishFailed {
    const DETAIL_TYPE: &'static str = "Publish Failed";
}

impl DetailType for crate::lockout::EgressAbuseSuspected {
    const DETAIL_TYPE: &'static str = "Egress Abuse Suspected";
}

impl DetailType for ConnectionExpiring {
    const DETAIL_TYPE: &'static str = "Connection Expiring";
}

impl DetailType for ConnectionBroken {
    const DETAIL_TYPE: &'static str = "Connection Broken";
}

/// An EventBridge event as a rule delivers it; its `detail` is read by the job its type names.
pub type Envelope = EventBridgeEvent<Value>;

/// One delivery of an event: its id (for the logs) and the event, or why it cannot be read.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The EventBridge event id; empty when the event could not be read.
    pub id: String,
    pub event: Result<Envelope, String>,
}

/// The `detail-type` of the record Lambda puts on the bus (the function's on-failure
/// destination) when an asynchronous invocation failed for good: its retries were exhausted, or
/// the event grew too old. The event itself is in the dead-letter queue too; the record carries
/// it as `requestPayload`. Source `lambda`. See "Capturing records of Lambda asynchronous
/// invocations", https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
pub const INVOCATION_FAILURE: &str = "Lambda Function Invocation Result - Failure";

/// The source of [`INVOCATION_FAILURE`] records.
pub const INVOCATION_RECORD_SOURCE: &str = "lambda";

/// Lambda's invocation record of an asynchronous invocation that failed for good (the `detail`
/// of an [`INVOCATION_FAILURE`] event). Only what settling it reads; `responsePayload` (the last
/// error, which may quote anything) is never read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedInvocation {
    pub request_context: FailedRequest,
    /// The event the function failed on, as it was delivered.
    pub request_payload: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRequest {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub function_arn: String,
    /// `RetriesExhausted` or `EventAgeExceeded`.
    #[serde(default)]
    pub condition: String,
    /// How many times Lambda invoked the function with the event.
    #[serde(default)]
    pub approximate_invoke_count: u32,
}

impl FailedInvocation {
    /// Whether the failed event was itself such a record: settling a record failed for good.
    /// Its own record is ignored, or records would beget records for ever.
    pub fn of_a_record(&self) -> bool {
        let p = &self.request_payload;
        p.get("detail-type").and_then(Value::as_str) == Some(INVOCATION_FAILURE)
            || (p.get("requestContext").and_then(|c| c.get("condition")).is_some() && p.get("requestPayload").is_some())
    }
}

/// What an invocation carried: an API Gateway (HTTP API, payload 2.0) request, an event, or
/// Lambda's record of an event that failed for good (or why that record cannot be read).
pub enum Trigger {
    Http(Box<ApiGatewayV2httpRequest>),
    EventBridge(Box<Delivery>),
    InvocationFailure(Result<Box<FailedInvocation>, String>),
}

impl Trigger {
    pub fn classify(payload: Value) -> Result<Self, String> {
        if payload.get("requestContext").is_some() {
            return serde_json::from_value(payload)
                .map(|request| Self::Http(Box::new(request)))
                .map_err(|e| format!("malformed API Gateway event: {e}"));
        }
        let is_record = payload.get("source").and_then(Value::as_str) == Some(INVOCATION_RECORD_SOURCE)
            && payload.get("detail-type").and_then(Value::as_str) == Some(INVOCATION_FAILURE);
        if is_record {
            let record = payload.get("detail").cloned().unwrap_or_default();
            return Ok(Self::InvocationFailure(
                serde_json::from_value(record).map(Box::new).map_err(|e| format!("malformed invocation record: {e}")),
            ));
        }
        if payload.get("detail-type").is_some() {
            let event: Result<Envelope, String> =
                serde_json::from_value(payload).map_err(|e| format!("EventBridge event: {e}"));
            let id = event.as_ref().ok().and_then(|e| e.id.clone()).unwrap_or_default();
            return Ok(Self::EventBridge(Box::new(Delivery { id, event })));
        }
        Err("the invocation is neither an API Gateway request nor an EventBridge event".into())
    }
}

/// Outgoing events.
#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), String>;
}

pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
    source: String,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>, source: impl Into<String>) -> Self {
        Self { client, bus_name: bus_name.into(), source: source.into() }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), String> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(&self.source)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        let out = self.client.put_events().entries(entry).send().await.map_err(|e| format!("PutEvents failed: {e}"))?;
        if out.failed_entry_count > 0 {
            let reason = out.entries().first().and_then(|e| e.error_message()).unwrap_or("unknown").to_owned();
            return Err(format!("PutEvents refused the event: {reason}"));
        }
        Ok(())
    }
}

/// An [`EventBus`] that keeps what is published, for tests; [`fail_next`](Self::fail_next) makes
/// the next publish fail as a refused `PutEvents` would.
#[derive(Default)]
pub struct RecordingBus {
    published: std::sync::Mutex<Vec<(String, Value)>>,
    fail_next: std::sync::atomic::AtomicBool,
}

impl RecordingBus {
    pub fn fail_next(&self) {
        self.fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every event published so far, as (detail-type, detail).
    pub fn published(&self) -> Vec<(String, Value)> {
        self.published.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), String> {
        if self.fail_next.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err("PutEvents failed: injected".into());
        }
        self.published.lock().unwrap_or_else(|p| p.into_inner()).push((detail_type.to_owned(), detail.clone()));
        Ok(())
    }
}

/// `Publish Failed`: a job that will not complete, or will be retried (`retryable`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublishFailed {
    pub tenant_id: String,
    pub idempotency_key: String,
    /// `page` or `issues`.
    pub job: String,
    /// Whether delivering the same event again may succeed (the error code's `retried`).
    pub retryable: bool,
    /// The error code, as the HTTP API would answer it.
    pub code: crate::error::ErrorCode,
    /// What went wrong, for a person.
    pub reason: String,
}

/// `Connection Expiring`: an OAuth consent nears Atlassian's absolute limit (365 days, however
/// often it is refreshed); sent 30 and 7 days before, once each per consent, by the keep-alive
/// sweep. Only a new consent (connect again) gives another year.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionExpiring {
    pub tenant_id: String,
    /// The connections the consent serves (one consent may cover Jira and Confluence).
    pub products: Vec<crate::domain::Product>,
    /// When Atlassian stops accepting the consent's refresh token.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: time::OffsetDateTime,
    /// The notice: `30` or `7` (days before `expires_at`, at most).
    pub days_left: u32,
    /// What to do, for a person.
    pub reason: String,
}

/// `Connection Broken`: a stored connection stopped working (found by the keep-alive sweep's
/// check, or by a request before it); sent once until the connection works again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionBroken {
    pub tenant_id: String,
    pub product: crate::domain::Product,
    pub auth_type: crate::domain::AuthType,
    /// The connection's status now: `reconnect_required` or `invalid_credentials`.
    pub status: crate::domain::ConnectionStatus,
    /// What happened and what to do, for a person.
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub detected_at: time::OffsetDateTime,
}

/// JSON Schemas (2020-12) of every event in and out, generated from the types above and the job
/// modules. A test keeps `shared/events/*.schema.json` equal to them; `make openapi` rewrites them.
pub fn schemas() -> Vec<(&'static str, &'static str, Value)> {
    fn schema_of<T: utoipa::ToSchema + DetailType>(file: &'static str) -> (&'static str, &'static str, Value) {
        let detail_type = T::DETAIL_TYPE;
        let mut defs = Vec::new();
        T::schemas(&mut defs);
        let mut root = serde_json::to_value(<T as utoipa::PartialSchema>::schema()).unwrap_or_default();
        let defs: serde_json::Map<String, Value> =
            defs.into_iter().map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or_default())).collect();
        if let Some(object) = root.as_object_mut() {
            object.insert("$schema".into(), Value::String("https://json-schema.org/draft/2020-12/schema".into()));
            object.insert("title".into(), Value::String(detail_type.into()));
            if !defs.is_empty() {
                object.insert("$defs".into(), Value::Object(defs));
            }
        }
        let text = root.to_string().replace("#/components/schemas/", "#/$defs/");
        (file, detail_type, serde_json::from_str(&text).unwrap_or_default())
    }
    vec![
        schema_of::<crate::issues::ActionItemsReady>("action-items-ready"),
        schema_of::<crate::issues::ActionItemsDeferred>("action-items-deferred"),
        schema_of::<crate::issues::IssuesCreated>("issues-created"),
        schema_of::<crate::issues::edit::ActionItemsChanged>("action-items-changed"),
        schema_of::<crate::issues::edit::ActionItemsEdited>("action-items-edited"),
        schema_of::<PublishFailed>("publish-failed"),
        schema_of::<ConnectionExpiring>("connection-expiring"),
        schema_of::<ConnectionBroken>("connection-broken"),
        schema_of::<crate::reports::ReportReady>("report-ready"),
        schema_of::<crate::reports::PagePublished>("page-published"),
        schema_of::<crate::lockout::EgressAbuseSuspected>("egress-abuse-suspected"),
        schema_of::<crate::sync::IssuesUpdated>("issues-updated"),
        schema_of::<crate::sync::IssueDeleted>("issue-deleted"),
        schema_of::<crate::reports::links::ReportIssuesCreated>("report-issues-created"),
        schema_of::<crate::reports::links::ReportPageLinked>("report-page-linked"),
        schema_of::<crate::reports::links::RemoteLinksAdded>("remote-links-added"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events");

    /// Fails when a committed schema differs from the types; `BLESS=1` rewrites them.
    #[test]
    fn committed_event_schemas_match_the_types() {
        for (file, _, schema) in schemas() {
            let path = format!("{DIR}/{file}.schema.json");
            crate::testing::assert_committed(&path, &(serde_json::to_string_pretty(&schema).unwrap() + "\n"));
        }
    }

    #[test]
    fn every_reference_in_an_event_schema_resolves() {
        for (file, _, schema) in schemas() {
            let text = schema.to_string();
            for part in text.split("#/$defs/").skip(1) {
                let name: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                assert!(schema["$defs"].get(&name).is_some(), "{file}: unresolved {name}");
            }
        }
    }

    fn event_again() -> Value {
        serde_json::json!({"id": "e1", "detail-type": "Report Ready", "source": "saas",
            "time": "2026-11-20T10:00:00Z", "detail": {"tenant_id": "acme", "idempotency_key": "k1"}})
    }

    #[test]
    fn triggers_are_told_apart() {
        let http = serde_json::json!({"requestContext": {"http": {"method": "GET"}}, "version": "2.0"});
        assert!(matches!(Trigger::classify(http), Ok(Trigger::Http(_))));
        let event = serde_json::json!({"id": "e1", "detail-type": "Report Ready", "source": "saas",
            "time": "2026-11-20T10:00:00Z", "detail": {}});
        match Trigger::classify(event) {
            Ok(Trigger::EventBridge(delivery)) => {
                assert_eq!(delivery.id, "e1");
                assert_eq!(delivery.event.as_ref().unwrap().detail_type, crate::reports::ReportReady::DETAIL_TYPE);
            }
            _ => panic!("not an EventBridge event"),
        }
        let unreadable = serde_json::json!({"detail-type": 7});
        assert!(matches!(Trigger::classify(unreadable), Ok(Trigger::EventBridge(d)) if d.event.is_err()));
        assert!(Trigger::classify(serde_json::json!({"hello": 1})).is_err());
        // Lambda's on-failure record, put on the bus, is told from the events it carries.
        let record = serde_json::json!({"id": "r1", "detail-type": INVOCATION_FAILURE, "source": "lambda",
            "time": "2026-11-20T10:00:00Z", "detail": {
                "requestContext": {"requestId": "q1", "functionArn": "arn:aws:lambda:us-east-1:1:function:f:$LATEST",
                    "condition": "RetriesExhausted", "approximateInvokeCount": 3},
                "requestPayload": event_again(), "responsePayload": {"errorMessage": "boom"}}});
        match Trigger::classify(record.clone()) {
            Ok(Trigger::InvocationFailure(Ok(failed))) => {
                assert_eq!(failed.request_context.approximate_invoke_count, 3);
                assert_eq!(failed.request_context.condition, "RetriesExhausted");
                assert!(!failed.of_a_record());
            }
            _ => panic!("not an invocation record"),
        }
        let nested = serde_json::json!({"id": "r2", "detail-type": INVOCATION_FAILURE, "source": "lambda",
            "detail": {"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": record}});
        assert!(matches!(Trigger::classify(nested), Ok(Trigger::InvocationFailure(Ok(f))) if f.of_a_record()));
        let broken = serde_json::json!({"detail-type": INVOCATION_FAILURE, "source": "lambda", "detail": {}});
        assert!(matches!(Trigger::classify(broken), Ok(Trigger::InvocationFailure(Err(_)))));
        // The same detail-type from anyone but Lambda is an ordinary (foreign) event.
        let forged = serde_json::json!({"id": "e2", "detail-type": INVOCATION_FAILURE, "source": "saas",
            "time": "2026-11-20T10:00:00Z", "detail": {}});
        assert!(matches!(Trigger::classify(forged), Ok(Trigger::EventBridge(_))));
        // SQS batches are no trigger of ours: EventBridge invokes the function directly.
        assert!(Trigger::classify(serde_json::json!({"Records": []})).is_err());
    }
}
