//! From (tenant, product) to a ready [`Session`]: the connection's status checked, its credentials
//! read from Secrets Manager, OAuth tokens refreshed when due, identity-provider tokens fetched
//! and cached until shortly before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use url::Url;

use crate::atlassian::session::TokenRenewal;
use crate::atlassian::{AtlassianError, Credentials, Flavour, OidcClient, OidcToken, Session, Transport};
use crate::credentials::{ClientAuthMethod, ConnectionAuth};
use crate::domain::{AuthType, Connection, ConnectionStatus, Deployment, Product, TenantId};
use crate::error::ApiError;
use crate::oauth::{TokenError, TokenProvider};
use crate::store::{ConnectionStore, CredentialStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("this tenant has no {0} connection")]
    NotConnected(Product),
    #[error("the {0} connection covers several sites; choose one with PUT .../connections/{0}/site")]
    SiteSelectionRequired(Product),
    #[error("the {0} connection must be re-authorized: connect it again")]
    ReconnectRequired(Product),
    #[error("the {0} connection's credentials were refused; register new ones")]
    InvalidCredentials(Product),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Upstream(#[from] AtlassianError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotConnected(_) => ApiError::conflict("not_connected", e.to_string()),
            AccessError::SiteSelectionRequired(_) => ApiError::conflict("site_selection_required", e.to_string()),
            AccessError::ReconnectRequired(_) | AccessError::Token(TokenError::ReconnectRequired(_)) => {
                ApiError::conflict("reconnect_required", e.to_string())
            }
            AccessError::InvalidCredentials(_) => ApiError::conflict("invalid_credentials", e.to_string()),
            AccessError::Token(TokenError::RefreshFailed(_)) => ApiError::unavailable(e.to_string(), Some(5)),
            AccessError::Token(TokenError::Store(e)) | AccessError::Store(e) => e.into(),
            AccessError::Upstream(e) => e.into(),
        }
    }
}

/// Identity-provider tokens cached per instance, keyed by the secret's name and version so that
/// new credentials never reuse an old token.
type OidcCache = Mutex<HashMap<String, OidcToken>>;

/// Refresh an identity-provider token this long before it expires.
const OIDC_LEEWAY: Duration = Duration::from_secs(30);

pub struct Connector {
    transport: Transport,
    api_base: Url,
    connections: Arc<dyn ConnectionStore>,
    credentials: Arc<dyn CredentialStore>,
    tokens: TokenProvider,
    oidc: Arc<OidcClient>,
    oidc_cache: Arc<OidcCache>,
}

impl Connector {
    pub fn new(
        transport: Transport,
        api_base: Url,
        connections: Arc<dyn ConnectionStore>,
        credentials: Arc<dyn CredentialStore>,
        tokens: TokenProvider,
    ) -> Self {
        Self {
            oidc: Arc::new(OidcClient::new(transport.clone())),
            transport,
            api_base,
            connections,
            credentials,
            tokens,
            oidc_cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A session for a connected product; other statuses are refused with what to do.
    pub async fn session(&self, tenant: &TenantId, product: Product) -> Result<Session, AccessError> {
        let connection = self.connections.get(tenant, product).await?.ok_or(AccessError::NotConnected(product))?;
        match connection.status {
            ConnectionStatus::Connected => self.session_for(&connection).await,
            ConnectionStatus::SiteSelectionRequired => Err(AccessError::SiteSelectionRequired(product)),
            ConnectionStatus::ReconnectRequired => Err(AccessError::ReconnectRequired(product)),
            ConnectionStatus::InvalidCredentials => Err(AccessError::InvalidCredentials(product)),
        }
    }

    /// A session for a stored connection whatever its status (verification re-checks failed ones).
    pub async fn session_for(&self, connection: &Connection) -> Result<Session, AccessError> {
        if connection.auth_type == AuthType::Oauth2 {
            if connection.status == ConnectionStatus::ReconnectRequired {
                return Err(AccessError::ReconnectRequired(connection.product));
            }
            let site = connection.site.as_ref().ok_or(AccessError::SiteSelectionRequired(connection.product))?;
            let token = self.tokens.access_token(connection).await?;
            let base = self
                .api_base
                .join(&format!("ex/{}/{}", connection.product, site.cloud_id))
                .map_err(|e| StoreError::Corrupt(format!("cloud id: {e}")))?;
            let session = Session::new(
                self.transport.clone(),
                base,
                connection.product,
                Flavour::Cloud,
                Credentials::Bearer(token),
            );
            // Links in answers point at the site people open, not at the API gateway.
            return Ok(match Url::parse(&site.url) {
                Ok(site_url) => session.with_web_root(site_url),
                Err(_) => session,
            });
        }
        let stored = self
            .credentials
            .get(&connection.secret_name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("secret {} is missing", connection.secret_name)))?;
        let auth = ConnectionAuth::from_secret(&stored.value).map_err(StoreError::Corrupt)?;
        let base_url =
            connection.base_url.as_deref().ok_or_else(|| StoreError::Corrupt("connection has no base URL".into()))?;
        let base = Url::parse(base_url).map_err(|e| StoreError::Corrupt(format!("base URL: {e}")))?;
        let cache_key = format!("{}#{}", connection.secret_name, stored.version);
        self.session_with(connection.deployment, connection.product, base, &auth, Some(cache_key)).await
    }

    /// A session for credentials that are not stored (yet): registration verifies with it.
    pub async fn session_with(
        &self,
        deployment: Deployment,
        product: Product,
        base: Url,
        auth: &ConnectionAuth,
        cache_key: Option<String>,
    ) -> Result<Session, AccessError> {
        let flavour = if deployment == Deployment::Cloud { Flavour::Cloud } else { Flavour::DataCenter };
        let session = |credentials| Session::new(self.transport.clone(), base.clone(), product, flavour, credentials);
        Ok(match auth {
            ConnectionAuth::ApiToken { email, token } => {
                session(Credentials::Basic { username: email.clone(), password: token.clone() })
            }
            ConnectionAuth::Basic { username, password } => {
                session(Credentials::Basic { username: username.clone(), password: password.clone() })
            }
            ConnectionAuth::Pat { token } => session(Credentials::Bearer(token.clone())),
            ConnectionAuth::OidcClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
                client_auth,
            } => {
                let renewal = Arc::new(OidcRenewal {
                    client: self.oidc.clone(),
                    cache: self.oidc_cache.clone(),
                    key: cache_key,
                    token_url: Url::parse(token_url).map_err(|e| AtlassianError::Decode(format!("token_url: {e}")))?,
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    scope: scope.clone(),
                    audience: audience.clone(),
                    method: *client_auth,
                });
                let token = match renewal.cached() {
                    Some(token) => token,
                    None => renewal.renew().await?,
                };
                session(Credentials::Bearer(token)).with_renewal(renewal)
            }
        })
    }
}

impl Connector {
    /// Maps an Atlassian failure for a stored connection once for every route: 401/403 mean the
    /// grant or credentials no longer work, so the connection's status records it and callers get
    /// 409 with what to do; the rest maps as usual.
    pub async fn refused(&self, tenant: &TenantId, product: Product, error: AtlassianError) -> ApiError {
        if !matches!(error, AtlassianError::Api { status: 401 | 403, .. }) {
            return error.into();
        }
        tracing::warn!(error = %error, "Atlassian refused the connection's credentials");
        let connection = match self.connections.get(tenant, product).await {
            Ok(Some(connection)) => connection,
            Ok(None) => return AccessError::NotConnected(product).into(),
            Err(e) => return e.into(),
        };
        let recorded = if connection.auth_type == AuthType::Oauth2 {
            self.connections.mark_reconnect_required(tenant, &connection.grant_id, OffsetDateTime::now_utc()).await
        } else {
            let verification = crate::store::Verification {
                at: OffsetDateTime::now_utc(),
                status: ConnectionStatus::InvalidCredentials,
                acting_as: None,
                secret_name: connection.secret_name.clone(),
            };
            self.connections.record_verified(tenant, product, &verification).await
        };
        if let Err(e) = recorded {
            return e.into();
        }
        if connection.auth_type == AuthType::Oauth2 {
            AccessError::ReconnectRequired(product).into()
        } else {
            AccessError::InvalidCredentials(product).into()
        }
    }
}

struct OidcRenewal {
    client: Arc<OidcClient>,
    cache: Arc<OidcCache>,
    key: Option<String>,
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
    audience: Option<String>,
    method: ClientAuthMethod,
}

impl OidcRenewal {
    fn cached(&self) -> Option<SecretString> {
        let key = self.key.as_ref()?;
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|t| t.expires_at - OIDC_LEEWAY > OffsetDateTime::now_utc())
            .map(|t| t.access_token.clone())
    }
}

#[async_trait::async_trait]
impl TokenRenewal for OidcRenewal {
    async fn renew(&self) -> Result<SecretString, AtlassianError> {
        let token = self
            .client
            .fetch(
                &self.token_url,
                &self.client_id,
                &self.client_secret,
                self.scope.as_deref(),
                self.audience.as_deref(),
                self.method,
            )
            .await?;
        if let Some(key) = &self.key {
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), token.clone());
        }
        tracing::info!(cached = self.key.is_some(), "identity-provider token fetched");
        Ok(token.access_token)
    }
}
