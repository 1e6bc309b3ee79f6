//! Verification: one cheap call that proves a session's credentials work against the product,
//! and names who they act as.

use crate::atlassian::confluence::{self, spaces};
use crate::atlassian::{AtlassianError, Class, ErrorPayload, Flavour, Session, jira};
use crate::domain::{AuthType, Product};
use crate::error::{ApiError, ErrorCode};

/// Jira's current user; Confluence's current user, except through `api.atlassian.com` (Cloud
/// OAuth, scoped API tokens), whose scopes do not include the user endpoint: one space read
/// proves the credentials there.
pub async fn whoami(session: &Session, auth_type: AuthType, scoped: bool) -> Result<Option<String>, AtlassianError> {
    let scoped = scoped || auth_type == AuthType::Oauth2;
    let (kind, display_name) = match (session.product(), session.flavour(), scoped) {
        (Product::Jira, _, _) => {
            let me = jira::users::myself(session).await?;
            (me.kind, me.display_name)
        }
        (Product::Confluence, Flavour::Cloud, true) => {
            spaces::probe(session).await?;
            return Ok(None);
        }
        (Product::Confluence, _, _) => {
            let me = confluence::users::current(session).await?;
            (me.kind, me.display_name)
        }
    };
    // Confluence answers bad or missing credentials on some setups as the anonymous user.
    if kind.as_deref() == Some("anonymous") {
        return Err(AtlassianError::api(401, ErrorPayload::Text("anonymous user".into())));
    }
    Ok(display_name)
}

/// Why credentials being registered failed, for the admin who entered them (422, or 400 when
/// the URL itself is refused). Never includes the credentials.
pub fn failure(product: Product, error: AtlassianError) -> ApiError {
    let class = error.class();
    match error {
        _ if class == Some(Class::Unauthorized) => {
            ApiError::new(ErrorCode::CredentialsRejected, format!("{product} refused the credentials (401)"))
        }
        _ if class == Some(Class::PermissionDenied) => ApiError::new(
            ErrorCode::InsufficientPermissions,
            format!(
                "{product} accepted the credentials but refused access (403); check the user's permissions, or a CAPTCHA after failed logins"
            ),
        ),
        AtlassianError::Decode(_) => not_the_product(product),
        _ if class == Some(Class::NotFound) => not_the_product(product),
        e @ AtlassianError::Redirected { .. } => {
            ApiError::new(ErrorCode::Redirected, format!("{e}; use the final URL as base_url"))
        }
        AtlassianError::Timeout => ApiError::new(ErrorCode::Timeout, format!("{product} did not answer in time")),
        e @ AtlassianError::IdentityProvider(_) => {
            ApiError::new(ErrorCode::IdentityProviderError, format!("{e}; check auth.token_url and the client"))
        }
        AtlassianError::Unreachable(reason)
            if reason.to_lowercase().contains("certificate") || reason.to_lowercase().contains("tls") =>
        {
            ApiError::new(ErrorCode::TlsError, format!("TLS with {product} failed: {reason}"))
        }
        AtlassianError::Unreachable(reason) => {
            ApiError::new(ErrorCode::Unreachable, format!("could not reach {product}: {reason}"))
        }
        other => other.into(),
    }
}

fn not_the_product(product: Product) -> ApiError {
    ApiError::new(
        ErrorCode::NotTheProduct,
        format!(
            "no {product} REST API answered at that base_url; check the URL and its context path (e.g. /jira, /confluence)"
        ),
    )
}
