//! Helpers that keep handlers thin: the extractors a route's handler reads its request through
//! (path and query parameters, the Idempotency-Key, the JSON body), and responses.

use std::marker::PhantomData;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

pub type HttpResponse = Response<Body>;

/// An API Gateway (HTTP API v2) event as a request. lambda_http panics on a host it cannot put
/// in a URL (found by fuzzing: `requestContext.domainName` of `|`); API Gateway never sends one,
/// but nothing we parse may panic, so that panic is caught and answered as a malformed event.
pub fn request_from_event(event: ApiGatewayV2httpRequest) -> Result<Request, String> {
    // The conversion lambda_http's own runtime makes for an HTTP API event.
    let convert = || Request::from(lambda_http::request::LambdaRequest::ApiGatewayV2(event));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(convert))
        .map_err(|_| "malformed API Gateway event: its host cannot be part of a URL".to_owned())
}

/// The API Gateway route key (`"GET /v1/..."`) the request matched; handlers dispatch on it.
pub fn route_key(req: &Request) -> Option<&str> {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.as_deref(),
        _ => None,
    }
}

/// The answer for a route key this function does not serve (a routing mistake in the deployment).
pub fn unknown_route() -> ApiError {
    ApiError::new(ErrorCode::UnknownRoute, "this function does not serve that route")
}

/// The Idempotency-Key header: required where a retried request must be recognised as the same.
pub fn idempotency_key(req: &Request) -> Result<String, ApiError> {
    req.headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()))
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::new(ErrorCode::IdempotencyKeyRequired, "send an Idempotency-Key header (1 to 255 characters)")
        })
}

/// A path parameter that API Gateway guarantees by the route; absent only on a misrouted event.
pub fn path_param(req: &Request, name: &str) -> Result<String, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidRequest, format!("path parameter {name} is missing")))
}

pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_owned)
}

/// Parses a JSON body, refusing unknown fields (the types say `deny_unknown_fields`) with a
/// message that names what to fix: the field's path and what it should hold, never the value
/// sent (an API token pasted into the wrong field must not come back in a 400 or a log).
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "a JSON request body is required"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| (plain_path(e.path()), e.into_inner()))
        .and_then(|value| de.end().map(|()| value).map_err(|e| (".".to_owned(), e)))
        .map_err(|(path, e)| {
            ApiError::new(ErrorCode::InvalidRequest, format!("request body: {}", json_error(&path, &e)))
        })
}

/// Parses an event's JSON detail like [`json_body`], with the same value-free message.
pub fn json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| json_error(&plain_path(e.path()), e.inner()))
}

/// The field's path (`auth.email`, `items[3].title`); a key that is not a plain identifier is
/// the caller's data, not a field name, and is left out.
fn plain_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } if plain(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Map { .. } | Segment::Enum { .. } | Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// Our field names are short snake_case words; anything else (mixed case, punctuation, long)
/// may be a secret used as a key by mistake.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What is wrong with a JSON document, without any value from it: serde's messages quote the
/// offending value (`invalid type: string "ATATT3x…", expected a boolean`), so they are rebuilt
/// from the error's kind, the field's path and what the field expects.
pub fn json_error(path: &str, e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = if path.is_empty() || path == "." { String::new() } else { format!("{path}: ") };
    match e.classify() {
        Category::Syntax => format!("is not valid JSON (line {}, column {})", e.line(), e.column()),
        Category::Eof => "ends before the JSON document does".to_owned(),
        Category::Io => "could not be read".to_owned(),
        Category::Data => {
            let text = e.to_string();
            // serde_json appends " at line L column C"; the message proper is before it.
            let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m);
            format!("{at}{}", value_free(message))
        }
    }
}

/// serde's data-error message with the value it quotes replaced by the value's kind.
fn value_free(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (unexpected, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, ""));
            let kind = unexpected.split([' ', '`', '"', '\'']).next().unwrap_or_default();
            let kind = match kind {
                "string" => "a string",
                "integer" => "an integer",
                "floating" => "a number",
                "boolean" => "a boolean",
                "char" => "a character",
                "map" => "an object",
                "sequence" => "an array",
                "null" | "unit" => "null",
                "byte" | "bytes" => "bytes",
                _ => "a value",
            };
            let what = prefix.trim_end_matches(": ");
            return if expected.is_empty() {
                format!("{what}: {kind}")
            } else {
                format!("{what}: {kind}, expected {expected}")
            };
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        return format!("unknown variant, expected {expected}");
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // A field's name is the caller's key, not a value; still, only a plain identifier is echoed.
        let (name, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let name = name.trim_matches('`');
        let name = if plain(name) { format!(" `{name}`") } else { String::new() };
        let expected = if expected.is_empty() { String::new() } else { format!(", expected {expected}") };
        return format!("unknown field{name}{expected}");
    }
    if message.starts_with("invalid length ")
        || message.starts_with("missing field ")
        || message.starts_with("duplicate field ")
    {
        // Lengths and our own field names only.
        return message.to_owned();
    }
    // Our own messages (newtypes that validate on parse) name the rule, not the value.
    message.to_owned()
}

/// A route that takes no request body.
pub struct NoBody;

/// A route whose request body is `T` as JSON (unknown fields refused where `T` says so).
pub struct Json<T>(PhantomData<fn() -> T>);

/// What a handler reads from its request besides its caller: path and query parameters, the
/// Idempotency-Key (taken before the handler runs, on the routes that require one), and the body
/// of the route's type `B`, parsed when the handler asks for it, so it keeps deciding which of
/// its refusals comes first.
pub struct Input<B = NoBody> {
    request: Request,
    idempotency_key: Option<String>,
    body: PhantomData<fn() -> B>,
}

impl<B> Input<B> {
    pub(crate) fn new(request: Request, idempotency_key: Option<String>) -> Self {
        Self { request, idempotency_key, body: PhantomData }
    }

    pub(crate) fn request(&self) -> &Request {
        &self.request
    }

    /// A path parameter of the route's template.
    pub fn path(&self, name: &str) -> Result<String, ApiError> {
        path_param(&self.request, name)
    }

    pub fn query(&self, name: &str) -> Option<String> {
        query_param(&self.request, name)
    }

    /// A request header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The request's path as it arrived (percent-encoding kept) and its raw query string
    /// (without `?`, empty when none): what a Connect JWT's `qsh` is computed over.
    pub fn raw_path_and_query(&self) -> (&str, &str) {
        (self.request.uri().path(), self.request.uri().query().unwrap_or(""))
    }

    /// The request body as sent (a public route verifies a signature over it before parsing).
    pub fn raw_body(&self) -> &[u8] {
        self.request.body().as_ref()
    }

    /// The Idempotency-Key of a route the table marks idempotent (checked before the handler).
    pub fn idempotency_key(&self) -> Result<String, ApiError> {
        self.idempotency_key.clone().ok_or_else(|| {
            tracing::error!("a handler asked for the Idempotency-Key of a route that does not take one");
            ApiError::internal()
        })
    }
}

impl<T: DeserializeOwned> Input<Json<T>> {
    /// The request body, as the route's type.
    pub fn body(&self) -> Result<T, ApiError> {
        json_body(&self.request)
    }
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap_or_else(|_| fallback()),
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            error(&ApiError::internal())
        }
    }
}

pub fn no_content() -> HttpResponse {
    Response::builder().status(StatusCode::NO_CONTENT).body(Body::Empty).unwrap_or_else(|_| fallback())
}

pub fn redirect(location: &str) -> HttpResponse {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::Empty)
        .unwrap_or_else(|_| fallback())
}

pub fn error(err: &ApiError) -> HttpResponse {
    let mut resp = json(err.status(), &err.body());
    if let Some(secs) = err.retry_after {
        if let Ok(value) = secs.to_string().parse() {
            resp.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    resp
}

/// Turns a handler result into the response, logging server-side failures once.
pub fn respond(result: Result<HttpResponse, ApiError>) -> HttpResponse {
    match result {
        Ok(resp) => resp,
        Err(err) => {
            if err.status().is_server_error() {
                tracing::warn!(code = err.code.as_str(), status = err.status().as_u16(), detail = %err.message, "request failed");
            } else {
                tracing::info!(code = err.code.as_str(), status = err.status().as_u16(), detail = %err.message, "request refused");
            }
            error(&err)
        }
    }
}

fn fallback() -> HttpResponse {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp
}

/// An HTTP response in API Gateway's payload 2.0 response format, for functions that also take
/// events and so run on the plain Lambda runtime. A binary body that is UTF-8 goes as text.
pub fn to_gateway_response(response: HttpResponse) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    // The response format carries header values as strings; one that is not is left out.
    let opaque: Vec<_> = headers.iter().filter(|(_, v)| v.to_str().is_err()).map(|(k, _)| k.clone()).collect();
    for name in opaque {
        headers.remove(name);
    }
    let (body, is_base64_encoded) = match body {
        Body::Empty => (None, false),
        Body::Binary(bytes) => match String::from_utf8(bytes) {
            Ok(text) => (Some(Body::Text(text)), false),
            Err(e) => (Some(Body::Binary(e.into_bytes())), true),
        },
        text => (Some(text), false),
    };
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = headers;
    out.body = body;
    out.is_base64_encoded = is_base64_encoded;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies that carry a secret in the wrong place: the 400 names the field and what it needs,
    /// never the value.
    #[test]
    fn a_body_error_never_echoes_the_value_sent() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Sample {
            enabled: bool,
            count: Option<u8>,
            kind: Option<crate::domain::Product>,
            tenant: Option<crate::domain::TenantId>,
            list: Option<Vec<u32>>,
        }
        let secret = "ATATT3xFfGF0-secret-token";
        let cases = [
            (
                format!(r#"{{"enabled": "{secret}"}}"#),
                "request body: enabled: invalid type: a string, expected a boolean",
            ),
            (
                format!(r#"{{"enabled": true, "count": "{secret}"}}"#),
                "request body: count: invalid type: a string, expected u8",
            ),
            (format!(r#"{{"enabled": true, "kind": "{secret}"}}"#), "request body: kind: unknown variant, expected"),
            (format!(r#"{{"enabled": true, "tenant": "{secret}!"}}"#), "request body: tenant: tenant id must be"),
            (
                format!(r#"{{"enabled": true, "list": [1, "{secret}"]}}"#),
                "request body: list[1]: invalid type: a string",
            ),
            (format!(r#"{{"enabled": true, "{secret}": 1}}"#), "request body: ?: unknown field, expected one of"),
            (r#"{"enabled": true, "count": 99999999}"#.to_owned(), "request body: count: invalid value: an integer"),
            (format!(r#"{{"enabled": true}} "{secret}""#), "request body: is not valid JSON"),
            (format!(r#"{{"enabled": {secret}}}"#), "request body: is not valid JSON (line 1, column"),
            (format!(r#"{{"enabled": "{secret}"#), "request body: ends before the JSON document does"),
        ];
        for (body, expected) in cases {
            let req = lambda_http::http::Request::builder().body(Body::from(body.clone())).unwrap();
            let err = json_body::<Sample>(&req).unwrap_err();
            assert!(!err.message.contains("secret-token"), "{body} -> {}", err.message);
            assert!(err.message.starts_with(expected), "{body} -> {}", err.message);
            assert_eq!(err.code, "invalid_request");
        }
        let value = serde_json::json!({"enabled": secret});
        let message = json_value::<Sample>(value).unwrap_err();
        assert_eq!(message, "enabled: invalid type: a string, expected a boolean");
    }

    /// The fuzzer's find (fuzz/artifacts/caller_claims): an error, not a panic.
    #[test]
    fn an_event_whose_host_is_no_url_host_is_refused_not_a_panic() {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "GET /x", "rawPath": "/x", "rawQueryString": "", "headers": {},
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "|", "domainPrefix": "a",
                "http": {"method": "GET", "path": "/x", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "t"},
                "requestId": "r", "routeKey": "GET /x", "stage": "$default", "time": "t", "timeEpoch": 1},
            "isBase64Encoded": false
        });
        let event = serde_json::from_value(event).expect("an HTTP API event");
        let error = request_from_event(event).err().unwrap_or_default();
        assert!(error.contains("host"), "{error}");
    }

    #[test]
    fn responses_keep_text_as_text_and_only_other_bytes_as_base64() {
        let response = |body: Body| Response::builder().status(201).header("x-a", "1").body(body).unwrap();
        let text = serde_json::to_value(to_gateway_response(response(Body::Binary(b"{}".to_vec())))).unwrap();
        assert_eq!(text["statusCode"], 201);
        assert_eq!(text["headers"]["x-a"], "1");
        assert_eq!(text["body"], "{}");
        assert_eq!(text["isBase64Encoded"], false);
        let bytes = serde_json::to_value(to_gateway_response(response(Body::Binary(vec![0xff])))).unwrap();
        assert_eq!((&bytes["body"], &bytes["isBase64Encoded"]), (&serde_json::json!("/w=="), &serde_json::json!(true)));
        let empty = serde_json::to_value(to_gateway_response(response(Body::Empty))).unwrap();
        assert!(empty.get("body").is_none() && empty["isBase64Encoded"] == false);
    }
}
