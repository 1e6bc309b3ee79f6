//! The session of a connection made from a Forge installation.

use url::Url;

use super::tokens;
use crate::access::{AccessError, Connector};
use crate::atlassian::{Credentials, Flavour, Session};
use crate::domain::Connection;
use crate::store::StoreError;

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
        let base = self
            .api_base
            .join(&format!("ex/{}/{}", connection.product, site.cloud_id))
            .map_err(|e| StoreError::Corrupt(format!("cloud id: {e}")))?;
        let session = Session::new(
            self.transport.clone(),
            base,
            connection.product,
            Flavour::Cloud,
            Credentials::Bearer(token.token().clone()),
        )
        .with_watch(self.watch(connection))
        .with_site_id(&site.cloud_id);
        // Links in answers point at the site people open, not at the API gateway.
        let session = match Url::parse(&site.url) {
            Ok(site_url) => session.with_web_root(site_url),
            Err(_) => session,
        };
        Ok(self.governed(session, connection))
    }
}

/// How long a caller waits before retrying without a token (Forge's shortest scheduled-trigger
/// interval is five minutes; a user's visit to the app brings one sooner).
pub const RETRY_AFTER_SECONDS: u64 = 60;
