//! Typed Atlassian API errors that keep Atlassian's error body (never our request headers).

use std::time::Duration;

use serde_json::Value;

use crate::error::ApiError;

/// Atlassian's error body: JSON as sent (`errorMessages`, `errors`, `message`), or a short text.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorPayload {
    Json(Value),
    Text(String),
}

/// Longest error text kept: enough for any Atlassian message, bounded for logs.
const MAX_ERROR_TEXT: usize = 2048;

impl ErrorPayload {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match serde_json::from_slice(bytes) {
            Ok(value) => Self::Json(value),
            Err(_) => {
                let text = String::from_utf8_lossy(bytes);
                Self::Text(text.chars().take(MAX_ERROR_TEXT).collect())
            }
        }
    }

    /// The human-readable part: `errorMessages`, `errors` values, `message`, or the text.
    pub fn summary(&self) -> String {
        match self {
            Self::Text(t) => t.trim().to_owned(),
            Self::Json(v) => {
                let mut parts: Vec<String> = Vec::new();
                if let Some(list) = v.get("errorMessages").and_then(Value::as_array) {
                    parts.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
                }
                if let Some(map) = v.get("errors").and_then(Value::as_object) {
                    parts.extend(map.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or(&v.to_string()))));
                }
                for key in ["message", "error_description", "error"] {
                    if let Some(m) = v.get(key).and_then(Value::as_str) {
                        parts.push(m.to_owned());
                        break;
                    }
                }
                parts.join("; ")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AtlassianError {
    #[error("Atlassian answered {status}: {}", payload.summary())]
    Api { status: u16, payload: ErrorPayload },
    #[error("Atlassian rate limit: retry after {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration, reason: Option<String> },
    #[error("Atlassian did not answer in time")]
    Timeout,
    #[error("could not reach Atlassian: {0}")]
    Unreachable(String),
    #[error("unexpected response from Atlassian: {0}")]
    Decode(String),
    #[error("the server answered {status} redirecting to {location:?}; redirects are not followed")]
    Redirected { status: u16, location: String },
    #[error("refused by the egress guard: {0}")]
    Egress(#[from] super::egress::EgressError),
    /// The customer's identity provider (OIDC client credentials) failed or refused the client.
    #[error("the identity provider at token_url: {0}")]
    IdentityProvider(String),
}

impl AtlassianError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Whether the same request may succeed later (the trigger should retry).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status >= 500,
            Self::RateLimited { .. } | Self::Timeout | Self::Unreachable(_) => true,
            Self::Decode(_) | Self::Redirected { .. } | Self::Egress(_) | Self::IdentityProvider(_) => false,
        }
    }
}

impl From<AtlassianError> for ApiError {
    fn from(e: AtlassianError) -> Self {
        match &e {
            AtlassianError::Api { status: 401 | 403, .. } => ApiError::conflict(
                "upstream_unauthorized",
                format!("Atlassian refused the connection's credentials ({e})"),
            ),
            AtlassianError::Api { status: 404, .. } => ApiError::not_found("upstream_not_found", e.to_string()),
            AtlassianError::Api { status, .. } if *status < 500 => {
                ApiError::new(lambda_http::http::StatusCode::BAD_GATEWAY, "upstream_rejected", e.to_string())
            }
            AtlassianError::RateLimited { retry_after, .. } => ApiError::unavailable(
                "Atlassian is rate limiting this tenant; retry later",
                Some(retry_after.as_secs().max(1)),
            ),
            AtlassianError::Egress(_) => ApiError::bad_request("egress_refused", e.to_string()),
            AtlassianError::Redirected { .. } | AtlassianError::Decode(_) | AtlassianError::IdentityProvider(_) => {
                ApiError::bad_gateway(e.to_string())
            }
            _ => ApiError::bad_gateway(format!("{e}; retry later, and check the site's status if it persists")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keeps_atlassian_messages() {
        let p =
            ErrorPayload::from_bytes(br#"{"errorMessages":["Issue does not exist"],"errors":{"summary":"required"}}"#);
        assert_eq!(p.summary(), "Issue does not exist; summary: required");
        let p = ErrorPayload::from_bytes(b"<html>Bad gateway</html>");
        assert_eq!(p.summary(), "<html>Bad gateway</html>");
    }

    #[test]
    fn errors_map_to_http_statuses_once() {
        let api = |status| ApiError::from(AtlassianError::Api { status, payload: ErrorPayload::Text(String::new()) });
        assert_eq!(api(401).status.as_u16(), 409);
        assert_eq!(api(404).status.as_u16(), 404);
        assert_eq!(api(500).status.as_u16(), 502);
        let limited = ApiError::from(AtlassianError::RateLimited { retry_after: Duration::from_secs(7), reason: None });
        assert_eq!((limited.status.as_u16(), limited.retry_after), (503, Some(7)));
        assert_eq!(ApiError::from(AtlassianError::Timeout).status.as_u16(), 502);
    }
}
