//! Typed Atlassian failures, classified once: the transport and the session turn every answer
//! into one [`AtlassianError`] whose [`Class`] says what it means for us (never a raw status for
//! handlers to interpret), keeping Atlassian's error body (never our request headers).

use std::time::Duration;

use serde_json::Value;

use crate::domain::{ConnectionStatus, Product};
use crate::error::{ApiError, ErrorCode};

/// Atlassian's error body: JSON as sent (`errorMessages`, `errors`, `message`, Confluence v2's
/// `errors[]` array), or a short text.
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

    /// The human-readable part: Jira's `errorMessages` and `errors` map, Confluence v2's
    /// `errors[]` (`title`, `detail`), `message`, or the text.
    pub fn summary(&self) -> String {
        let text = match self {
            Self::Text(t) => t.trim().to_owned(),
            Self::Json(v) => {
                let mut parts: Vec<String> = Vec::new();
                if let Some(list) = v.get("errorMessages").and_then(Value::as_array) {
                    parts.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
                }
                match v.get("errors") {
                    Some(Value::Object(map)) => {
                        parts.extend(map.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or(&v.to_string()))))
                    }
                    // Confluence Cloud v2: `{"errors":[{"status","code","title","detail"}]}`.
                    Some(Value::Array(list)) => parts.extend(list.iter().filter_map(|e| {
                        let title = e.get("title").and_then(Value::as_str).filter(|t| !t.is_empty());
                        let detail = e.get("detail").and_then(Value::as_str).filter(|d| !d.is_empty());
                        match (title, detail) {
                            (Some(t), Some(d)) if t != d => Some(format!("{t}: {d}")),
                            (Some(t), _) => Some(t.to_owned()),
                            (None, Some(d)) => Some(d.to_owned()),
                            (None, None) => e.get("code").and_then(Value::as_str).map(str::to_owned),
                        }
                    })),
                    _ => {}
                }
                if parts.is_empty() {
                    for key in ["message", "error_description", "error"] {
                        if let Some(m) = v.get(key).and_then(Value::as_str) {
                            parts.push(m.to_owned());
                            break;
                        }
                    }
                }
                parts.join("; ")
            }
        };
        text.chars().take(MAX_ERROR_TEXT).collect()
    }
}

/// What an Atlassian error status means for us. Handlers match these, never status numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 401 (or a DC login refused outright, e.g. by CAPTCHA). From a session, only after its one
    /// token refresh or retry.
    Unauthorized,
    /// 403: the connected user may not do this (no Delete permission, a restricted space, a
    /// project they can't browse). Never a reason to disable a connection.
    PermissionDenied,
    /// 404: no such thing, or not visible to the connected user.
    NotFound,
    /// 409.
    Conflict,
    /// 413.
    PayloadTooLarge,
    /// 5xx.
    Unavailable,
    /// Any other 4xx: the request was refused as invalid; Atlassian's message says why.
    BadRequest,
}

impl Class {
    pub fn of(status: u16) -> Self {
        match status {
            401 => Self::Unauthorized,
            403 => Self::PermissionDenied,
            404 => Self::NotFound,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            s if s >= 500 => Self::Unavailable,
            _ => Self::BadRequest,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AtlassianError {
    #[error("Atlassian answered {status}{}: {}", operation_suffix(operation), payload.summary())]
    Api {
        class: Class,
        status: u16,
        /// `METHOD path` relative to the product root (no query), once the session knows it.
        operation: String,
        payload: ErrorPayload,
    },
    /// A 401 that persisted after the session's one refresh or retry, or a refresh token
    /// Atlassian refused: the connection's status now says what an admin must do.
    #[error("{product} refused the connection's credentials")]
    CredentialsRefused { product: Product, status: ConnectionStatus },
    #[error("Atlassian rate limit: retry after {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration, reason: Option<String> },
    #[error("Atlassian did not answer in time")]
    Timeout,
    #[error("could not reach Atlassian: {0}")]
    Unreachable(String),
    #[error("unexpected response from Atlassian: {0}")]
    Decode(String),
    /// An answer past the body cap, or a list past the page cap: refused, never read to the end.
    #[error("the answer is too large: {0}")]
    TooLarge(String),
    #[error("the server answered {status} redirecting to {location:?}; redirects are not followed")]
    Redirected { status: u16, location: String },
    #[error("refused by the egress guard: {0}")]
    Egress(#[from] super::egress::EgressError),
    /// The customer's identity provider (OIDC client credentials) failed or refused the client.
    #[error("the identity provider at token_url: {0}")]
    IdentityProvider(String),
    /// The OAuth token refresh failed for a reason other than a refused grant (busy, down).
    #[error("could not refresh the access token: {0}")]
    RefreshFailed(String),
}

fn operation_suffix(operation: &str) -> String {
    if operation.is_empty() { String::new() } else { format!(" to {operation}") }
}

impl AtlassianError {
    /// An error answer as the transport sees it; the session names the operation.
    pub fn api(status: u16, payload: ErrorPayload) -> Self {
        Self::Api { class: Class::of(status), status, operation: String::new(), payload }
    }

    /// The class of an error answer; `None` for failures without one (timeouts, refusals).
    pub fn class(&self) -> Option<Class> {
        match self {
            Self::Api { class, .. } => Some(*class),
            _ => None,
        }
    }

    pub fn is(&self, class: Class) -> bool {
        self.class() == Some(class)
    }

    /// Atlassian's own message, when it sent one.
    pub fn atlassian_message(&self) -> Option<String> {
        match self {
            Self::Api { payload, .. } => Some(payload.summary()).filter(|s| !s.is_empty()),
            _ => None,
        }
    }

    /// The one table from Atlassian failures to our codes (and so to statuses and retries).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Api { class, .. } => match class {
                Class::Unauthorized => ErrorCode::UpstreamUnauthorized,
                Class::PermissionDenied => ErrorCode::AtlassianPermissionDenied,
                Class::NotFound => ErrorCode::UpstreamNotFound,
                Class::Conflict => ErrorCode::UpstreamConflict,
                Class::PayloadTooLarge => ErrorCode::PayloadTooLarge,
                Class::Unavailable => ErrorCode::UpstreamError,
                Class::BadRequest => ErrorCode::UpstreamRejected,
            },
            Self::CredentialsRefused { status, .. } => match status {
                ConnectionStatus::ReconnectRequired => ErrorCode::ReconnectRequired,
                ConnectionStatus::InvalidCredentials => ErrorCode::InvalidCredentials,
                _ => ErrorCode::UpstreamUnauthorized,
            },
            Self::RateLimited { .. } => ErrorCode::UpstreamRateLimited,
            Self::Timeout | Self::Unreachable(_) => ErrorCode::UpstreamError,
            Self::Decode(_) | Self::Redirected { .. } => ErrorCode::UpstreamInvalidResponse,
            Self::TooLarge(_) => ErrorCode::UpstreamTooLarge,
            Self::Egress(_) => ErrorCode::EgressRefused,
            Self::IdentityProvider(_) => ErrorCode::IdentityProviderError,
            Self::RefreshFailed(_) => ErrorCode::UpstreamUnavailable,
        }
    }

    /// Whether the same request may succeed later (the trigger should retry).
    pub fn is_retryable(&self) -> bool {
        self.code().retried()
    }
}

impl From<AtlassianError> for ApiError {
    fn from(e: AtlassianError) -> Self {
        let code = e.code();
        let message = match &e {
            AtlassianError::Api { class: Class::PermissionDenied, operation, payload, .. } => format!(
                "Atlassian refused {} for the connected user (403): {}; grant that user the permission, or choose another project or space",
                if operation.is_empty() { "the request" } else { operation },
                payload.summary()
            ),
            AtlassianError::CredentialsRefused { product, status: ConnectionStatus::ReconnectRequired } => {
                format!("Atlassian refused the {product} grant; an admin must connect {product} again")
            }
            AtlassianError::CredentialsRefused { product, status: ConnectionStatus::InvalidCredentials } => {
                format!("{product} refused the stored credentials; register new ones")
            }
            AtlassianError::CredentialsRefused { product, .. } => format!(
                "Atlassian refused the request to {product} although the grant still refreshes; the app may have lost access to {product} on this site: connect {product} again if it persists"
            ),
            AtlassianError::RateLimited { .. } => "Atlassian is rate limiting this tenant; retry later".to_owned(),
            AtlassianError::Timeout | AtlassianError::Unreachable(_) => {
                format!("{e}; retry later, and check the site's status if it persists")
            }
            _ => e.to_string(),
        };
        let error = ApiError::new(code, message);
        match &e {
            AtlassianError::RateLimited { retry_after, .. } => error.with_retry_after(retry_after.as_secs().max(1)),
            AtlassianError::RefreshFailed(_) => error.with_retry_after(5),
            _ => error,
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
    fn confluence_v2_error_arrays_surface_title_and_detail() {
        let p = ErrorPayload::from_bytes(
            br#"{"errors":[{"status":400,"code":"INVALID_REQUEST_PARAMETER","title":"A page with this title already exists","detail":null}]}"#,
        );
        assert_eq!(p.summary(), "A page with this title already exists");
        let p = ErrorPayload::from_bytes(
            br#"{"errors":[{"status":403,"code":"FORBIDDEN","title":"Forbidden","detail":"No permission to add pages"}]}"#,
        );
        assert_eq!(p.summary(), "Forbidden: No permission to add pages");
    }

    #[test]
    fn classes_map_to_codes_once() {
        let api = |status| ApiError::from(AtlassianError::api(status, ErrorPayload::Text(String::new())));
        assert_eq!((api(403).status().as_u16(), api(403).code), (403, ErrorCode::AtlassianPermissionDenied));
        assert_eq!(api(404).code, ErrorCode::UpstreamNotFound);
        assert_eq!(api(400).code, ErrorCode::UpstreamRejected);
        assert_eq!(api(413).code, ErrorCode::PayloadTooLarge);
        assert_eq!(api(500).status().as_u16(), 502);
        assert!(api(500).retried() && !api(403).retried() && !api(400).retried());
        let limited = ApiError::from(AtlassianError::RateLimited { retry_after: Duration::from_secs(7), reason: None });
        assert_eq!((limited.status().as_u16(), limited.retry_after), (503, Some(7)));
        assert_eq!(ApiError::from(AtlassianError::Timeout).status().as_u16(), 502);
        let revoked =
            AtlassianError::CredentialsRefused { product: Product::Jira, status: ConnectionStatus::ReconnectRequired };
        assert_eq!(ApiError::from(revoked).code, ErrorCode::ReconnectRequired);
    }

    #[test]
    fn a_permission_refusal_names_the_operation_and_atlassians_message() {
        let error = AtlassianError::Api {
            class: Class::PermissionDenied,
            status: 403,
            operation: "DELETE rest/api/3/issue/OPS-1".into(),
            payload: ErrorPayload::from_bytes(
                br#"{"errorMessages":["You do not have permission to delete issues in this project."],"errors":{}}"#,
            ),
        };
        let api = ApiError::from(error);
        assert!(api.message.contains("DELETE rest/api/3/issue/OPS-1"), "{}", api.message);
        assert!(api.message.contains("permission to delete issues"), "{}", api.message);
    }
}
