//! The HTTP error model: every failure a caller sees is `{"error": {"code", "message"}}` with the
//! status its [`ErrorCode`] fixes. The table below is the one place that says, for every code we
//! answer, its HTTP status and whether an event that ends with it is delivered again; the OpenAPI
//! document's error schema is generated from it. Each layer's error enum converts into
//! [`ApiError`] exactly once, next to that enum, so handlers never choose statuses by hand.

use lambda_http::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// Defines [`ErrorCode`] and its table: `Variant = ("code", status, retried), "what it means"`.
macro_rules! error_codes {
    ($($variant:ident = ($code:literal, $status:literal, $retried:literal), $doc:literal;)*) => {
        /// Every error code the API answers (and `Publish Failed` events carry).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $doc] $variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            pub fn status(self) -> StatusCode {
                let status = match self { $(ErrorCode::$variant => $status,)* };
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }

            /// Whether an event whose job ended with this code is delivered again: only for
            /// failures that a later attempt may not meet (Atlassian busy, our store hiccuping).
            pub fn retried(self) -> bool {
                match self { $(ErrorCode::$variant => $retried,)* }
            }

            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc,)* }
            }
        }
    };
}

error_codes! {
    // The request itself.
    InvalidRequest = ("invalid_request", 400, false), "The request is malformed; the message names the field to fix.";
    InvalidTenant = ("invalid_tenant", 400, false), "The tenant id in the path or event is not a valid tenant id.";
    InvalidProduct = ("invalid_product", 400, false), "`{product}` is not one this route takes.";
    InvalidCursor = ("invalid_cursor", 400, false), "The cursor is not one this API returned; start without it.";
    InvalidSettings = ("invalid_settings", 400, false), "The settings are invalid, or do not match what the product has.";
    InvalidReport = ("invalid_report", 400, false), "The report is invalid; the message names the field.";
    InvalidActionItems = ("invalid_action_items", 400, false), "The action items are invalid; the message names the field.";
    MissingFieldDefaults = ("missing_field_defaults", 400, false), "The issue type requires fields the settings give no default for.";
    UnknownSpace = ("unknown_space", 400, false), "The settings name a space that does not exist or the connection cannot see.";
    UnknownProject = ("unknown_project", 400, false), "The settings name a project that does not exist or the connection cannot see.";
    UnknownIssueType = ("unknown_issue_type", 400, false), "The issue type is not available for creating issues in the project.";
    UnknownProjectOrIssueType = ("unknown_project_or_issue_type", 400, false), "The project has no such issue type to create, or the connection cannot see it.";
    IdempotencyKeyRequired = ("idempotency_key_required", 400, false), "Send an Idempotency-Key header.";
    InvalidState = ("invalid_state", 400, false), "The OAuth state is missing, forged, expired or used.";
    ReturnUrlNotAllowed = ("return_url_not_allowed", 400, false), "The return URL is not on the deployment's allow-list.";
    InvalidConfirmation = ("invalid_confirmation", 400, false), "No OAuth consent of this tenant waits for that confirmation code (wrong, already used, or another tenant's); the consent it named is discarded: start the connection again.";
    InvalidLinkCode = ("invalid_link_code", 400, false), "The app-link code is wrong, used, expired, or for another product: ask the SaaS for a new one (`POST .../connections/{product}/app-link`).";
    AppNotConfigured = ("app_not_configured", 404, false), "This deployment is not set up as that Marketplace app (Connect or Forge); see the README's Marketplace apps section.";
    InvalidAppToken = ("invalid_app_token", 401, false), "The request's Atlassian JWT or Forge Invocation Token is missing, forged, expired, or not for this app.";
    UnknownSite = ("unknown_site", 400, false), "The cloud id is not one of the connection's candidate sites.";
    AuthDoesNotFitDeployment = ("auth_does_not_fit_deployment", 400, false), "That auth type is not offered for that deployment.";
    EgressRefused = ("egress_refused", 400, false), "The URL is refused by the egress rules (scheme, private or reserved address).";
    // The caller.
    Unauthorized = ("unauthorized", 401, false), "No valid bearer token.";
    Forbidden = ("forbidden", 403, false), "The token is for another tenant or lacks the route's scope.";
    // Our records.
    NotFound = ("not_found", 404, false), "No such record for this tenant.";
    UnknownRoute = ("unknown_route", 404, false), "The function does not serve that route (a deployment mistake).";
    NotOurs = ("not_ours", 404, false), "The issue was not created by this integration for this tenant.";
    ActionItemNotFound = ("action_item_not_found", 404, false), "No issue was created for this action item for this tenant.";
    IssueDeleted = ("issue_deleted", 410, false), "The issue of this action item was deleted in Jira (or the connected user can no longer see it).";
    IssueChanged = ("issue_changed", 409, false), "The issue changed in Jira since it was last seen, in a field the edit would overwrite; read it again and send the edit again.";
    FieldNotEditable = ("field_not_editable", 422, false), "A field of the edit is not on the issue's edit screen for the connected user; nothing was changed.";
    IssueOnAnotherSite = ("issue_on_another_site", 409, false), "The issue was created on a site other than the one connected now; it is left alone.";
    JobInProgress = ("job_in_progress", 409, true), "Another delivery of the same idempotency key is still running; retry later.";
    // The connection's state.
    NotConnected = ("not_connected", 404, false), "The tenant has no connection for the product (the connection resource does not exist).";
    NoSettings = ("no_settings", 404, false), "The tenant has saved no settings for the product.";
    SiteSelectionRequired = ("site_selection_required", 409, false), "The consent covers several sites; choose one first.";
    ReconnectRequired = ("reconnect_required", 409, false), "Atlassian refused the OAuth grant; an admin must connect again.";
    InvalidCredentials = ("invalid_credentials", 409, false), "The product refused the stored credentials; register new ones.";
    InstallationLinked = ("installation_linked", 409, false), "The app installation is linked to another tenant (one installation serves one tenant), or is no longer installed.";
    NotOneConsent = ("not_one_consent", 409, false), "The connections were not made by one combined consent.";
    ConfirmationRequired = ("confirmation_required", 409, false), "The OAuth consent waits for its confirmation (`POST .../oauth/confirm`); nothing uses it until then.";
    ConfirmationExpired = ("confirmation_expired", 410, false), "The OAuth consent was not confirmed in time; its grant was deleted: start the connection again.";
    HasSubtasks = ("has_subtasks", 409, false), "Jira refused to delete an issue with subtasks; pass delete_subtasks=true.";
    // Registration and verification of new credentials.
    CredentialsRejected = ("credentials_rejected", 422, false), "The product refused the credentials given (401).";
    InsufficientPermissions = ("insufficient_permissions", 422, false), "The product accepted the credentials but refused access (403, or a CAPTCHA).";
    NotTheProduct = ("not_the_product", 422, false), "No REST API of the product answered at that URL.";
    Redirected = ("redirected", 422, false), "The URL redirects; give the final URL.";
    Timeout = ("timeout", 422, false), "The product did not answer in time.";
    TlsError = ("tls_error", 422, false), "TLS with the product failed (certificate or protocol).";
    Unreachable = ("unreachable", 422, false), "The product could not be reached at that URL.";
    IdentityProviderError = ("identity_provider_error", 422, false), "The customer's identity provider refused or failed the client-credentials grant.";
    DestinationLocked = ("destination_locked", 429, false), "Too many refused credential checks against this destination (server host, Cloud site or token endpoint), from all tenants: new registrations and verifications against it are refused, whatever the credentials, until Retry-After; existing connections keep working.";
    PublishFailed = ("publish_failed", 422, false), "The publication failed for good; the message says why.";
    RetriesExhausted = ("retries_exhausted", 422, false), "The event failed on every delivery Lambda made (or grew too old) and is in the function's dead-letter queue; nothing more is tried unless it is redriven, which may still publish it.";
    // Atlassian's answers, classified once in the transport and session.
    AtlassianPermissionDenied = ("atlassian_permission_denied", 403, false), "The connected user may not do this in Atlassian (403); the connection stays connected.";
    UpstreamNotFound = ("upstream_not_found", 404, false), "Atlassian has no such thing, or the connected user cannot see it.";
    UpstreamConflict = ("upstream_conflict", 409, true), "Atlassian reported a conflict (e.g. a page that kept changing); retry.";
    PayloadTooLarge = ("payload_too_large", 413, false), "Atlassian refused the body as too large.";
    UpstreamRejected = ("upstream_rejected", 422, false), "Atlassian refused the request as invalid; the message carries Atlassian's.";
    UpstreamUnauthorized = ("upstream_unauthorized", 502, false), "Atlassian refused a grant that still refreshes (the app may have lost access to this product).";
    UpstreamError = ("upstream_error", 502, true), "Atlassian failed, timed out or could not be reached; retry later.";
    UpstreamInvalidResponse = ("upstream_invalid_response", 502, false), "Atlassian's answer was not what the product sends (or a redirect, never followed).";
    UpstreamRateLimited = ("upstream_rate_limited", 503, true), "Atlassian is rate limiting this tenant; retry after Retry-After.";
    UpstreamUnavailable = ("upstream_unavailable", 503, true), "The token refresh is busy or failed for a while; retry after Retry-After.";
    UpstreamTooLarge = ("upstream_response_too_large", 502, false), "The product's answer was larger than the bridge reads (a body past the cap, or a list past the page cap).";
    // Fair shares across tenants.
    TenantRateLimited = ("tenant_rate_limited", 429, true), "The tenant has as much Atlassian work in flight as its fair share allows, or Atlassian paused it for longer than a request waits; retry after Retry-After.";
    // Ours.
    Internal = ("internal", 500, true), "An internal failure (see the function's logs); retried.";
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// So tests and logs can compare with the wire form.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let mut table = String::from(
            "Stable machine-readable code. Each code has one HTTP status; `retried` says whether an event whose job ends with it is delivered again.\n\n| code | status | retried | meaning |\n|---|---|---|---|\n",
        );
        for code in Self::ALL {
            table.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                code.as_str(),
                code.status().as_u16(),
                if code.retried() { "yes" } else { "no" },
                code.description()
            ));
        }
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(Self::ALL.iter().map(|c| c.as_str())))
            .description(Some(table))
            .into()
    }
}

impl ToSchema for ErrorCode {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code {text:?}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    /// Says what went wrong and what to do; never holds a credential.
    pub message: String,
    /// Seconds, for answers that ask the caller to come back later.
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// Whether an event whose job ended with this error is delivered again.
    pub fn retried(&self) -> bool {
        self.code.retried()
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "a valid bearer token is required")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// For failures the caller cannot fix; the detail goes to the log, not the response.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error; see the function's logs")
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.code, message: self.message.clone() } }
    }
}

impl From<crate::domain::InvalidTenantId> for ApiError {
    fn from(e: crate::domain::InvalidTenantId) -> Self {
        Self::new(ErrorCode::InvalidTenant, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_unique_snake_case_with_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
            let status = code.status().as_u16();
            assert!((400..600).contains(&status), "{code}: {status}");
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(code.as_str()));
        }
    }

    #[test]
    fn only_temporary_failures_are_retried() {
        let retried: Vec<_> = ErrorCode::ALL.iter().filter(|c| c.retried()).map(|c| c.as_str()).collect();
        assert_eq!(
            retried,
            [
                "job_in_progress",
                "upstream_conflict",
                "upstream_error",
                "upstream_rate_limited",
                "upstream_unavailable",
                "tenant_rate_limited",
                "internal"
            ]
        );
        // Nothing a caller must fix is retried, whatever its status: the retried 4xx say "later".
        let retried_client_errors: Vec<_> =
            ErrorCode::ALL.iter().filter(|c| c.status().is_client_error() && c.retried()).collect();
        assert_eq!(
            retried_client_errors,
            [&ErrorCode::JobInProgress, &ErrorCode::UpstreamConflict, &ErrorCode::TenantRateLimited]
        );
    }
}
