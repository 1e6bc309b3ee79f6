//! Helpers that keep handlers thin: path and query access, JSON bodies, responses.

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

pub type HttpResponse = Response<Body>;

/// An API Gateway (HTTP API v2) event as a request. lambda_http panics on a host it cannot put
/// in a URL (found by fuzzing: `requestContext.domainName` of `|`); API Gateway never sends one,
/// but nothing we parse may panic, so that panic is caught and answered as a malformed event.
pub fn request_from_event(text: &str) -> Result<Request, String> {
    std::panic::catch_unwind(|| lambda_http::request::from_str(text))
        .map_err(|_| "malformed API Gateway event: its host cannot be part of a URL".to_owned())?
        .map_err(|e| format!("malformed API Gateway event: {e}"))
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
/// message that names what to fix.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "a JSON request body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("request body: {e}")))
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
/// events and so run on the plain Lambda runtime.
pub fn to_gateway_response(response: HttpResponse) -> serde_json::Value {
    let (parts, body) = response.into_parts();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), serde_json::Value::String(v.to_str().ok()?.to_owned()))))
        .collect();
    let (body, base64) = match body {
        Body::Empty => (String::new(), false),
        Body::Text(text) => (text, false),
        Body::Binary(bytes) => match String::from_utf8(bytes) {
            Ok(text) => (text, false),
            Err(e) => {
                use base64::Engine;
                (base64::engine::general_purpose::STANDARD.encode(e.into_bytes()), true)
            }
        },
        _ => (String::new(), false),
    };
    serde_json::json!({"statusCode": parts.status.as_u16(), "headers": headers, "body": body, "isBase64Encoded": base64})
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let error = request_from_event(&event.to_string()).err().unwrap_or_default();
        assert!(error.contains("host"), "{error}");
    }
}
