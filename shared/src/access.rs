//! From (tenant, product) to a ready [`Session`]: the connection's status checked, its credentials
//! read from Secrets Manager, OAuth tokens refreshed when due, identity-provider tokens fetched
//! and cached until shortly before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use url::Url;

use crate::atlassian::session::{CredentialWatch, TokenRenewal};
use crate::atlassian::{AtlassianError, Class, Credentials, Flavour, OidcClient, OidcToken, Session, Transport};
use crate::credentials::{ClientAuthMethod, ConnectionAuth};
use crate::domain::{AuthType, Connection, ConnectionStatus, Deployment, Product, Site, TenantId};
use crate::error::{ApiError, ErrorCode};
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
    #[error(
        "the {0} consent waits for its confirmation: POST .../connections/{{product}}/oauth/confirm with the code from the redirect, or start the connection again"
    )]
    ConfirmationRequired(Product),
    /// A Forge connection without a valid app system token: Forge hands one over only when it
    /// invokes us, so this passes once the app's scheduled trigger runs (retryable).
    #[error(
        "the {0} connection's Forge app has not invoked us recently; its scheduled trigger refreshes the token: retry later"
    )]
    AppTokenUnavailable(Product),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Upstream(#[from] AtlassianError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        let code = match &e {
            AccessError::NotConnected(_) => ErrorCode::NotConnected,
            AccessError::SiteSelectionRequired(_) => ErrorCode::SiteSelectionRequired,
            AccessError::ReconnectRequired(_) | AccessError::Token(TokenError::ReconnectRequired(_)) => {
                ErrorCode::ReconnectRequired
            }
            AccessError::InvalidCredentials(_) => ErrorCode::InvalidCredentials,
            AccessError::ConfirmationRequired(_) => ErrorCode::ConfirmationRequired,
            AccessError::Token(TokenError::Disconnected(_)) => ErrorCode::NotConnected,
            AccessError::AppTokenUnavailable(_) => {
                return ApiError::new(ErrorCode::UpstreamUnavailable, e.to_string())
                    .with_retry_after(crate::forge::session::RETRY_AFTER_SECONDS);
            }
            AccessError::Token(TokenError::RefreshFailed(_)) => {
                return ApiError::new(ErrorCode::UpstreamUnavailable, e.to_string()).with_retry_after(5);
            }
            AccessError::Token(TokenError::Store(_)) | AccessError::Store(_) => {
                return match e {
                    AccessError::Token(TokenError::Store(e)) | AccessError::Store(e) => e.into(),
                    _ => ApiError::internal(),
                };
            }
            AccessError::Upstream(_) => {
                return match e {
                    AccessError::Upstream(e) => e.into(),
                    _ => ApiError::internal(),
                };
            }
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<TokenError> for AtlassianError {
    /// A refresh during a request: a refused grant is already recorded by the token provider.
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::ReconnectRequired(product) => {
                AtlassianError::CredentialsRefused { product, status: ConnectionStatus::ReconnectRequired }
            }
            other => AtlassianError::RefreshFailed(other.to_string()),
        }
    }
}

/// How a Cloud API token works, as found by [`Connector::probe_cloud_token`].
pub struct TokenProbe {
    pub session: Session,
    /// The site (cloudId from `tenant_info`), when the URL answered it.
    pub site: Option<Site>,
    /// Works through `api.atlassian.com` only (a scoped token).
    pub scoped: bool,
    pub acting_as: Option<String>,
}

/// Identity-provider tokens cached per instance, keyed by the secret's name and version so that
/// new credentials never reuse an old token.
type OidcCache = Mutex<HashMap<String, OidcToken>>;

/// Refresh an identity-provider token this long before it expires.
const OIDC_LEEWAY: Duration = Duration::from_secs(30);

pub struct Connector {
    pub(crate) transport: Transport,
    pub(crate) api_base: Url,
    pub(crate) connections: Arc<dyn ConnectionStore>,
    pub(crate) credentials: Arc<dyn CredentialStore>,
    pub(crate) tokens: Arc<TokenProvider>,
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
            tokens: Arc::new(tokens),
            oidc_cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A session for a connected product; other statuses are refused with what to do.
    pub async fn session(&self, tenant: &TenantId, product: Product) -> Result<Session, AccessError> {
        let Some(connection) = self.connections.get(tenant, product).await? else {
            return Err(self.not_connected(tenant, product).await?);
        };
        match connection.status {
            ConnectionStatus::Connected => self.session_for(&connection).await,
            ConnectionStatus::SiteSelectionRequired => Err(AccessError::SiteSelectionRequired(product)),
            ConnectionStatus::ReconnectRequired => Err(AccessError::ReconnectRequired(product)),
            ConnectionStatus::InvalidCredentials => Err(AccessError::InvalidCredentials(product)),
            ConnectionStatus::PendingConfirmation => Err(AccessError::ConfirmationRequired(product)),
        }
    }

    /// Why a product without a connection record has none: a consent that waits for its
    /// confirmation (which nothing may use), or none at all.
    pub async fn not_connected(&self, tenant: &TenantId, product: Product) -> Result<AccessError, AccessError> {
        let stores =
            crate::consent::Stores { connections: self.connections.as_ref(), credentials: self.credentials.as_ref() };
        Ok(match crate::consent::waiting(stores, tenant, product, OffsetDateTime::now_utc()).await? {
            Some(_) => AccessError::ConfirmationRequired(product),
            None => AccessError::NotConnected(product),
        })
    }

    /// A session for a stored connection whatever its status (verification re-checks failed ones),
    /// except an unconfirmed consent, which nothing uses.
    pub async fn session_for(&self, connection: &Connection) -> Result<Session, AccessError> {
        if connection.status == ConnectionStatus::PendingConfirmation {
            return Err(AccessError::ConfirmationRequired(connection.product));
        }
        // Each kind of app connection builds its session in its own module.
        match connection.auth_type {
            AuthType::Connect => return self.connect_session(connection).await,
            AuthType::Forge => return self.forge_session(connection).await,
            AuthType::DcOauth2 => return self.dc_oauth_session(connection).await,
            _ => {}
        }
        if connection.auth_type == AuthType::Oauth2 {
            if connection.status == ConnectionStatus::ReconnectRequired {
                return Err(AccessError::ReconnectRequired(connection.product));
            }
            let site = connection.site.as_ref().ok_or(AccessError::SiteSelectionRequired(connection.product))?;
            let token = self.tokens.access_token(connection).await?;
            let base = self.gateway_base(connection.product, site)?;
            let session = on_site(
                self.oauth_session(connection, base, Flavour::Cloud, self.tokens.clone(), token)
                    .with_site_id(&site.cloud_id),
                site,
            );
            return Ok(self.governed(session, connection));
        }
        let (auth, version) = self.stored_credentials(connection).await?;
        let base_url =
            connection.base_url.as_deref().ok_or_else(|| StoreError::Corrupt("connection has no base URL".into()))?;
        let base = Url::parse(base_url).map_err(|e| StoreError::Corrupt(format!("base URL: {e}")))?;
        let cache_key = format!("{}#{}", connection.secret_name, version);
        let session = match (&connection.site, connection.scoped_token) {
            (Some(site), true) => self.gateway_session(connection.product, site, &auth)?,
            _ => self.session_with(connection.deployment, connection.product, base, &auth, Some(cache_key)).await?,
        };
        let session = match &connection.site {
            Some(site) => session.with_site_id(&site.cloud_id),
            None => session,
        };
        Ok(self.governed(session.with_watch(self.watch(connection)), connection))
    }

    /// A Forge app system token's session through `api.atlassian.com/ex/{product}/{cloudId}`:
    /// watched, links to the site; the caller adds the governor.
    pub(crate) fn cloud_bearer_session(
        &self,
        connection: &Connection,
        site: &Site,
        token: SecretString,
    ) -> Result<Session, AccessError> {
        let base = self.gateway_base(connection.product, site)?;
        let session =
            Session::new(self.transport.clone(), base, connection.product, Flavour::Cloud, Credentials::Bearer(token))
                .with_watch(self.watch(connection))
                .with_site_id(&site.cloud_id);
        Ok(on_site(session, site))
    }

    /// `{api_base}/ex/{product}/{cloudId}`: a Cloud site's product root through the API gateway.
    pub(crate) fn gateway_base(&self, product: Product, site: &Site) -> Result<Url, AccessError> {
        Ok(self
            .api_base
            .join(&format!("ex/{product}/{}", site.cloud_id))
            .map_err(|e| StoreError::Corrupt(format!("cloud id: {e}")))?)
    }

    /// A Bearer session of an OAuth grant (Cloud 3LO, or a Data Center application link): a 401
    /// renews the token through `tokens` (the grant's single-refresher lease), and one that
    /// persists is recorded by the connection's watch.
    pub(crate) fn oauth_session(
        &self,
        connection: &Connection,
        base: Url,
        flavour: Flavour,
        tokens: Arc<TokenProvider>,
        token: SecretString,
    ) -> Session {
        Session::new(self.transport.clone(), base, connection.product, flavour, Credentials::Bearer(token))
            .with_renewal(Arc::new(OAuthRenewal { tokens, connection: connection.clone() }))
            .with_watch(self.watch(connection))
    }

    /// A stored token, Basic, PAT or OIDC connection's credentials (what registration stored),
    /// read from Secrets Manager.
    pub async fn stored_auth(&self, connection: &Connection) -> Result<ConnectionAuth, AccessError> {
        Ok(self.stored_credentials(connection).await?.0)
    }

    async fn stored_credentials(&self, connection: &Connection) -> Result<(ConnectionAuth, String), AccessError> {
        let stored = self
            .credentials
            .get(&connection.secret_name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("secret {} is missing", connection.secret_name)))?;
        let auth = ConnectionAuth::from_secret(&stored.value).map_err(StoreError::Corrupt)?;
        Ok((auth, stored.version))
    }

    /// Refreshes an OAuth connection's grant now, under the one refresh lease (the keep-alive
    /// sweep: Atlassian retires a refresh token unused for 90 days).
    pub async fn keep_alive(&self, connection: &Connection) -> Result<(), TokenError> {
        if connection.auth_type == AuthType::DcOauth2 {
            return self.dc_keep_alive(connection).await;
        }
        self.tokens.keep_alive(connection).await
    }

    /// Every session of a tenant's stored connection shares the tenant's rate governor for
    /// its site (`shared/src/atlassian/governor.rs`).
    pub(crate) fn governed(&self, session: Session, connection: &Connection) -> Session {
        let governor = self.transport.governors().of(connection.tenant.as_str(), session.site_id());
        session.with_governor(governor)
    }

    /// A scoped Cloud API token's session: Basic auth through `api.atlassian.com`, links to the site.
    fn gateway_session(&self, product: Product, site: &Site, auth: &ConnectionAuth) -> Result<Session, AccessError> {
        let ConnectionAuth::ApiToken { email, token } = auth else {
            return Err(StoreError::Corrupt("a scoped-token connection without an API token".into()).into());
        };
        let base = self.gateway_base(product, site)?;
        let credentials = Credentials::Basic { username: email.clone(), password: token.clone() };
        let session = Session::new(self.transport.clone(), base, product, Flavour::Cloud, credentials)
            .with_site_id(&site.cloud_id);
        Ok(on_site(session, site))
    }

    /// Which way a Cloud API token works, found by trying it: a scoped token (every
    /// service-account token is one) only through `api.atlassian.com/ex/{product}/{cloudId}`, a
    /// classic one only on the site URL. The cloudId comes from the site's public
    /// `/_edge/tenant_info`. The gateway is tried first; a refusal there means "classic: try the
    /// site".
    pub async fn probe_cloud_token(
        &self,
        product: Product,
        site_url: &Url,
        auth: &ConnectionAuth,
    ) -> Result<TokenProbe, AtlassianError> {
        let site = self.tenant_info(site_url).await?;
        self.probe_cloud_token_on(product, site_url, site, auth).await
    }

    /// [`probe_cloud_token`](Self::probe_cloud_token) with the site already looked up by
    /// [`tenant_info`](Self::tenant_info) (registration checks the site's lock in between).
    pub async fn probe_cloud_token_on(
        &self,
        product: Product,
        site_url: &Url,
        site: Option<Site>,
        auth: &ConnectionAuth,
    ) -> Result<TokenProbe, AtlassianError> {
        if let Some(site) = &site {
            let session =
                self.gateway_session(product, site, auth).map_err(|e| AtlassianError::Decode(e.to_string()))?;
            match crate::verify::whoami(&session, AuthType::ApiToken, true).await {
                Ok(acting_as) => return Ok(TokenProbe { session, site: Some(site.clone()), scoped: true, acting_as }),
                Err(e) if e.is(Class::Unauthorized) || e.is(Class::PermissionDenied) => {
                    tracing::info!(product = %product, "not a scoped token; trying the site URL");
                }
                Err(e) => return Err(e),
            }
        }
        let session =
            self.session_with(Deployment::Cloud, product, site_url.clone(), auth, None).await.map_err(|e| match e {
                AccessError::Upstream(e) => e,
                other => AtlassianError::Decode(other.to_string()),
            })?;
        let acting_as = crate::verify::whoami(&session, AuthType::ApiToken, false).await?;
        Ok(TokenProbe { session, site, scoped: false, acting_as })
    }

    /// The site's cloudId from its public `/_edge/tenant_info` (no credentials sent); `None` when
    /// the URL is no Cloud site that answers it.
    pub async fn tenant_info(&self, site_url: &Url) -> Result<Option<Site>, AtlassianError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct TenantInfo {
            cloud_id: String,
        }
        let mut root = site_url.clone();
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        let url = root.join("_edge/tenant_info").map_err(|e| AtlassianError::Decode(e.to_string()))?;
        match self.transport.get_json::<TenantInfo>(url, &Credentials::Anonymous).await {
            Ok(info) if !info.cloud_id.is_empty() && info.cloud_id.len() <= 64 => Ok(Some(Site {
                cloud_id: info.cloud_id,
                url: site_url.as_str().trim_end_matches('/').to_owned(),
                name: site_url.host_str().and_then(|h| h.split('.').next()).unwrap_or_default().to_owned(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.is(Class::NotFound) || matches!(e, AtlassianError::Decode(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn watch(&self, connection: &Connection) -> Arc<dyn CredentialWatch> {
        Arc::new(ConnectionWatch { connections: self.connections.clone(), connection: connection.clone() })
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
                    None => renewal.fetch().await?,
                };
                session(Credentials::Bearer(token)).with_renewal(renewal)
            }
        })
    }
}

/// Links in answers point at the site people open, not at the API gateway.
fn on_site(session: Session, site: &Site) -> Session {
    match Url::parse(&site.url) {
        Ok(site_url) => session.with_web_root(site_url),
        Err(_) => session,
    }
}

/// Records what a persisting 401 means for a stored connection, in one place for every route
/// and event. A 403 never comes here: it is the connected user lacking a permission.
struct ConnectionWatch {
    connections: Arc<dyn ConnectionStore>,
    connection: Connection,
}

#[async_trait::async_trait]
impl CredentialWatch for ConnectionWatch {
    async fn refused(&self) -> ConnectionStatus {
        let c = &self.connection;
        let now = OffsetDateTime::now_utc();
        let recorded = if matches!(c.auth_type, AuthType::Oauth2 | AuthType::DcOauth2) {
            // The session refreshed before this 401, so the grant itself still works. On a consent
            // shared by Jira and Confluence, one product's refusal does not prove the grant dead:
            // leave both connected (and when we can't tell, don't disable anything).
            match self.connections.list(&c.tenant).await {
                Ok(all) if all.iter().all(|o| o.product == c.product || o.grant_id != c.grant_id) => self
                    .connections
                    .mark_reconnect_required(&c.tenant, &c.grant_id, now)
                    .await
                    .map(|()| ConnectionStatus::ReconnectRequired),
                Ok(_) => return ConnectionStatus::Connected,
                Err(e) => {
                    tracing::warn!(error = %e, "could not tell whether the grant is shared; status unchanged");
                    return ConnectionStatus::Connected;
                }
            }
        } else {
            let verification = crate::store::Verification {
                at: now,
                status: ConnectionStatus::InvalidCredentials,
                acting_as: None,
                secret_name: c.secret_name.clone(),
            };
            self.connections
                .record_verified(&c.tenant, c.product, &verification)
                .await
                .map(|()| ConnectionStatus::InvalidCredentials)
        };
        match recorded {
            Ok(status) => {
                tracing::warn!(product = %c.product, status = ?status, "connection marked after a persisting 401");
                status
            }
            Err(e) => {
                // The caller still learns what to do; the next refusal records it.
                tracing::error!(error = %e, "could not record the refused credentials");
                if matches!(c.auth_type, AuthType::Oauth2 | AuthType::DcOauth2) {
                    ConnectionStatus::ReconnectRequired
                } else {
                    ConnectionStatus::InvalidCredentials
                }
            }
        }
    }
}

/// Renews an OAuth access token that Atlassian refused, through the token provider's
/// single-refresher lease.
struct OAuthRenewal {
    tokens: Arc<TokenProvider>,
    connection: Connection,
}

#[async_trait::async_trait]
impl TokenRenewal for OAuthRenewal {
    async fn renew(&self, rejected: &Credentials) -> Result<SecretString, AtlassianError> {
        let rejected = match rejected {
            Credentials::Bearer(token) => Some(token),
            Credentials::Basic { .. } | Credentials::Anonymous | Credentials::ConnectJwt { .. } => None,
        };
        Ok(self.tokens.renewed_token(&self.connection, rejected).await?)
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
    async fn renew(&self, _rejected: &Credentials) -> Result<SecretString, AtlassianError> {
        self.fetch().await
    }
}

impl OidcRenewal {
    async fn fetch(&self) -> Result<SecretString, AtlassianError> {
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
