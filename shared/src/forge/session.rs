//! The session of a connection made from a Forge installation.

use super::tokens;
use crate::access::{AccessError, Connector};
use crate::atlassian::Session;
use crate::domain::Connection;

/// A held token is used only with this much life left (a publish's requests take seconds).
pub const TOKEN_MARGIN_SECONDS: i64 = 60;

impl Connector {
    /// Bearer with the installation's latest app system token, through
    /// `{api_base}/ex/{product}/{cloudId}` (Atlassian: "Calling Atlassian app APIs from a remote",
    /// <https://developer.atlassian.com/platform/forge/remote/calling-product-apis/>). Without a
    /// valid token the caller is told to retry: the app's scheduled trigger brings a new one.
    pub(crate) async fn forge_session(&self, connection: &Connection) -> Result<Session, AccessError> {
        let site = connection.site.as_ref().ok_or(AccessError::NotConnected(connection.product))?;
        let now = self.tokens.clock().now().unix_timestamp();
        let token = match tokens::held(self.credentials.as_ref(), &connection.secret_name).await? {
            Some(token) if token.valid_at(now, TOKEN_MARGIN_SECONDS) => token,
            held => {
                tracing::warn!(
                    product = %connection.product, held = held.is_some(),
                    "no valid Forge app system token for the connection"
                );
                return Err(AccessError::AppTokenUnavailable(connection.product));
            }
        };
        let session = self.cloud_bearer_session(connection, site, token.token().clone())?;
        Ok(self.governed(session, connection))
    }
}

/// How long a caller waits before retrying without a token (Forge's shortest scheduled-trigger
/// interval is five minutes; a user's visit to the app brings one sooner).
pub const RETRY_AFTER_SECONDS: u64 = 60;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Product;
    use crate::error::{ApiError, ErrorCode};

    #[test]
    fn no_valid_token_is_a_retryable_503_that_says_why() {
        let e: ApiError = AccessError::AppTokenUnavailable(Product::Confluence).into();
        assert_eq!(e.code, ErrorCode::UpstreamUnavailable);
        assert_eq!(e.status().as_u16(), 503);
        assert_eq!(e.retry_after, Some(RETRY_AFTER_SECONDS));
        assert!(e.message.contains("has not invoked us recently") && e.message.contains("scheduled trigger"));
    }
}
