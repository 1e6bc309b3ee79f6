//! `connections`: register Server/DC and API-token connections, and for every connection its
//! status, site selection, verification and disconnect; tenant settings.
//!
//! Registration and verification send credentials a tenant chose to a destination it chose, so
//! they go through the destination lockout (`bridge::lockout`): refused checks are counted per
//! destination across all tenants, and a locked destination is refused before anything is sent.

use std::sync::Arc;

use bridge::access::{AccessError, Connector};
use bridge::api::{
    ConnectionRequest, ConnectionView, Function, Router, SelectSiteRequest, SettingsBody, SiteSelectionResponse,
    VerifyResponse, routes,
};
use bridge::app::App;
use bridge::atlassian::{EgressError, EgressPolicy, Session};
use bridge::caller::Caller;
use bridge::consent::Stores;
use bridge::credentials::ConnectionAuth;
use bridge::domain::{Connection, ConnectionStatus, ConsentTarget, Deployment, Product};
use bridge::error::{ApiError, ErrorCode};
use bridge::http::{self, HttpResponse, Input, Json};
use bridge::lockout::{CheckedCredentials, Lockout};
use bridge::settings::{ConfluenceSettings, JiraSettings};
use bridge::store::{ConnectionStore, CredentialStore, SettingsStore, Verification};
use lambda_http::http::StatusCode;
use time::OffsetDateTime;
use url::Url;

/// What the connections routes use, built once at cold start.
pub struct Context {
    connections: Arc<dyn ConnectionStore>,
    credentials: Arc<dyn CredentialStore>,
    settings: Arc<dyn SettingsStore>,
    connector: Arc<Connector>,
    lockout: Lockout,
    egress: EgressPolicy,
    secret_prefix: String,
    /// Dynamic webhooks of tenants who opted in; `None` when the deployment has no webhook URL.
    webhooks: Option<bridge::webhooks::Webhooks>,
    /// Connect and Forge installations, and the codes that link them (`bridge::apps`).
    installations: Arc<dyn bridge::store::InstallationStore>,
    signer: Arc<bridge::oauth::StateSigner>,
    link_code_ttl: std::time::Duration,
}

impl Context {
    /// Refuses to start without the bus: a destination lock must be reported.
    pub fn new(app: &App) -> Result<Self, String> {
        let bus = app.events.clone().ok_or("BRIDGE_EVENT_BUS_NAME is required by this function")?;
        Ok(Self {
            connections: app.connections.clone(),
            credentials: app.credentials.clone(),
            settings: app.settings.clone(),
            connector: app.connector.clone(),
            lockout: Lockout::new(app.destinations.clone(), bus, app.config.lockout),
            egress: app.config.egress.clone(),
            secret_prefix: app.config.secret_prefix.clone(),
            webhooks: bridge::webhooks::Webhooks::from_app(app),
            installations: app.installations.clone(),
            signer: app.state_signer.clone(),
            link_code_ttl: app.config.apps.link_code_ttl,
        })
    }
}

impl Context {
    fn stores(&self) -> Stores<'_> {
        Stores { connections: self.connections.as_ref(), credentials: self.credentials.as_ref() }
    }

    fn app_stores(&self) -> bridge::apps::Stores<'_> {
        bridge::apps::Stores {
            installations: self.installations.as_ref(),
            connections: self.connections.as_ref(),
            credentials: self.credentials.as_ref(),
        }
    }
}

/// The stores a registration writes, and where its secret goes.
struct Registry<'a> {
    connections: &'a dyn ConnectionStore,
    credentials: &'a dyn CredentialStore,
    secret_prefix: &'a str,
}

pub fn router() -> Router<Context> {
    Router::new(Function::Connections)
        .route(&routes::GET_CONNECTION, |cx: Arc<Context>, caller, input| async move {
            get(cx.stores(), &caller, product(&input)?).await
        })
        .route(&routes::REGISTER_CONNECTION, |cx: Arc<Context>, caller, input| async move {
            let product = product(&input)?;
            let registry = Registry {
                connections: cx.connections.as_ref(),
                credentials: cx.credentials.as_ref(),
                secret_prefix: &cx.secret_prefix,
            };
            register(&registry, &cx.connector, &cx.lockout, &cx.egress, &caller, product, input.body()?).await
        })
        .route(&routes::DELETE_CONNECTION, |cx: Arc<Context>, caller, input| async move {
            let product = product(&input)?;
            // While the connection still works: Jira deletes the webhook only for its app's token.
            if product == Product::Jira
                && let Some(webhooks) = &cx.webhooks
            {
                webhooks.deregister(&caller.tenant).await?;
            }
            delete(&cx, &caller, product).await
        })
        .route(&routes::APP_LINK, |cx: Arc<Context>, caller, input| async move {
            let product = product(&input)?;
            let now = OffsetDateTime::now_utc();
            let issued = bridge::apps::issue_code(
                cx.installations.as_ref(),
                &cx.signer,
                &caller.tenant,
                product,
                cx.link_code_ttl,
                now,
            )
            .await?;
            tracing::info!(product = %product, "app-link code issued");
            Ok(http::json(StatusCode::OK, &issued))
        })
        .route(&routes::SELECT_SITE, |cx: Arc<Context>, caller, input: Input<Json<SelectSiteRequest>>| async move {
            let target = ConsentTarget::parse(&input.path("product")?).ok_or_else(|| {
                ApiError::new(ErrorCode::InvalidProduct, "product must be jira, confluence, or atlassian")
            })?;
            select_site(cx.connections.as_ref(), &cx.connector, &caller, target, input.body()?).await
        })
        .route(&routes::VERIFY_CONNECTION, |cx: Arc<Context>, caller, input| async move {
            verify(cx.connections.as_ref(), &cx.connector, &cx.lockout, &caller, product(&input)?).await
        })
        .route(&routes::GET_SETTINGS, |cx: Arc<Context>, caller, input| async move {
            get_settings(cx.settings.as_ref(), &caller, product(&input)?).await
        })
        .route(&routes::PUT_SETTINGS, |cx: Arc<Context>, caller, input| async move {
            let product = product(&input)?;
            let saved = put_settings(cx.settings.as_ref(), &cx.connector, &caller, product, &input).await?;
            // A new project: the webhook's filter follows it.
            if product == Product::Jira
                && let Some(webhooks) = &cx.webhooks
            {
                webhooks.ensure_logged(&caller.tenant).await;
            }
            Ok(saved)
        })
}

fn product<B>(input: &Input<B>) -> Result<Product, ApiError> {
    Product::parse(&input.path("product")?)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidProduct, "product must be jira or confluence"))
}

fn not_connected(product: Product) -> ApiError {
    AccessError::NotConnected(product).into()
}

async fn get(stores: Stores<'_>, caller: &Caller, product: Product) -> Result<HttpResponse, ApiError> {
    if let Some(connection) = stores.connections.get(&caller.tenant, product).await? {
        return Ok(http::json(StatusCode::OK, &ConnectionView::from(&connection)));
    }
    // No connection yet, but perhaps a consent waiting for its confirmation (shown without the
    // site it reached: a forwarded consent link may have reached another company's).
    let now = OffsetDateTime::now_utc();
    match bridge::consent::waiting(stores, &caller.tenant, product, now).await? {
        Some(pending) => {
            let view = bridge::consent::pending_view(&pending, product).ok_or_else(|| not_connected(product))?;
            Ok(http::json(StatusCode::OK, &ConnectionView::from(&view)))
        }
        None => Err(not_connected(product)),
    }
}

/// Disconnect. The record goes before the secret, and the secret is deleted again after the
/// record: a token refresh in flight writes its new pair only while a record names its grant
/// and re-checks after writing (`oauth::TokenProvider`), so whichever of the two lands last,
/// no secret is left behind. Nothing is revoked at Atlassian: 3LO has no revocation endpoint.
async fn delete(cx: &Context, caller: &Caller, product: Product) -> Result<HttpResponse, ApiError> {
    let stores = cx.stores();
    // A consent of the product still waiting for its confirmation goes too, with its secret.
    bridge::consent::discard_covering(stores, &caller.tenant, product).await?;
    let all = stores.connections.list(&caller.tenant).await?;
    let Some(connection) = all.iter().find(|c| c.product == product) else {
        return Ok(http::no_content());
    };
    // An app installation's secret is the installation's, not the tenant's: only the link goes,
    // and the installation can be linked again.
    if bridge::apps::installation_kind(connection.auth_type).is_some() {
        stores.connections.delete(&caller.tenant, product).await?;
        bridge::apps::disconnected(cx.app_stores(), connection, OffsetDateTime::now_utc()).await?;
        tracing::info!(product = %product, "app connection unlinked");
        return Ok(http::no_content());
    }
    let shared = all.iter().any(|c| c.product != product && c.secret_name == connection.secret_name);
    // The secret first as well, so that a retried DELETE (after a failure below) still finds
    // the record and finishes the job.
    if !shared {
        stores.credentials.delete(&connection.secret_name).await?;
    }
    stores.connections.delete(&caller.tenant, product).await?;
    if !shared {
        stores.credentials.delete(&connection.secret_name).await?;
    }
    tracing::info!(product = %product, secret_deleted = !shared, "connection removed");
    Ok(http::no_content())
}

async fn select_site(
    connections: &dyn ConnectionStore,
    connector: &Connector,
    caller: &Caller,
    target: ConsentTarget,
    body: SelectSiteRequest,
) -> Result<HttpResponse, ApiError> {
    let mut updated = Vec::new();
    for &product in target.products() {
        let Some(mut connection) = connections.get(&caller.tenant, product).await? else {
            // A consent waiting for its confirmation has no site to choose yet.
            return Err(connector.not_connected(&caller.tenant, product).await?.into());
        };
        if connection.status == ConnectionStatus::PendingConfirmation {
            return Err(AccessError::ConfirmationRequired(product).into());
        }
        if target == ConsentTarget::Atlassian && ConsentTarget::of_grant(&connection.grant_id) != Some(target) {
            return Err(ApiError::new(
                ErrorCode::NotOneConsent,
                format!(
                    "the {product} connection was not made by a combined consent; select its site on its own route"
                ),
            ));
        }
        if connection.status == ConnectionStatus::ReconnectRequired {
            return Err(ApiError::new(
                ErrorCode::ReconnectRequired,
                format!("the {product} connection must be re-authorized first"),
            ));
        }
        let site =
            connection.candidate_sites.iter().find(|s| s.cloud_id == body.cloud_id).cloned().ok_or_else(|| {
                ApiError::new(ErrorCode::UnknownSite, "cloud_id is not one of the connection's candidate sites")
            })?;
        connection.site = Some(site);
        connection.status = ConnectionStatus::Connected;
        connection.updated_at = OffsetDateTime::now_utc();
        updated.push(connection);
    }
    connections.put_all(&updated).await?;
    tracing::info!(target = target.as_str(), "site selected");
    Ok(http::json(
        StatusCode::OK,
        &SiteSelectionResponse { connections: updated.iter().map(ConnectionView::from).collect() },
    ))
}

async fn verify(
    connections: &dyn ConnectionStore,
    connector: &Connector,
    lockout: &Lockout,
    caller: &Caller,
    product: Product,
) -> Result<HttpResponse, ApiError> {
    let Some(connection) = connections.get(&caller.tenant, product).await? else {
        return Err(connector.not_connected(&caller.tenant, product).await?.into());
    };
    // The session records a persisting 401 on the connection itself (as on every route); a
    // 403 is the user lacking a permission and leaves the status alone. The lockout refuses a
    // locked destination first and counts a refusal.
    match lockout.verify(connector, &connection).await {
        Ok(acting_as) => {
            let verification = Verification {
                at: OffsetDateTime::now_utc(),
                status: ConnectionStatus::Connected,
                acting_as: acting_as.clone(),
                secret_name: connection.secret_name.clone(),
            };
            connections.record_verified(&caller.tenant, product, &verification).await?;
            let connection = connections.get(&caller.tenant, product).await?.ok_or_else(|| not_connected(product))?;
            Ok(http::json(StatusCode::OK, &VerifyResponse { connection: ConnectionView::from(&connection), acting_as }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "verification failed");
            Err(e)
        }
    }
}

/// Registers (or replaces) a Server/DC or API-token connection. The credentials are verified
/// against the product first; only then are they stored, under a new secret, and the record
/// switched to it, so a failed replacement leaves the working connection untouched.
async fn register(
    registry: &Registry<'_>,
    connector: &Connector,
    lockout: &Lockout,
    egress: &EgressPolicy,
    caller: &Caller,
    product: Product,
    body: ConnectionRequest,
) -> Result<HttpResponse, ApiError> {
    if !body.auth.fits(body.deployment) {
        return Err(ApiError::new(
            ErrorCode::AuthDoesNotFitDeployment,
            "cloud takes auth type api_token (or the OAuth flow); server and datacenter take basic, pat or oidc_client_credentials",
        ));
    }
    if let Some(field) = body.auth.empty_field() {
        return Err(ApiError::new(ErrorCode::InvalidRequest, format!("{field} must not be empty")));
    }
    let mut base_url = base_url(egress, &body.base_url)?;
    if body.deployment == Deployment::Cloud && product == Product::Confluence {
        base_url = site_root(base_url);
    }
    if let ConnectionAuth::OidcClientCredentials { token_url, .. } = &body.auth {
        egress.parse(token_url).map_err(|e| ApiError::new(ErrorCode::EgressRefused, format!("auth.token_url: {e}")))?;
    }

    let CheckedCredentials { acting_as, site, scoped: scoped_token } = lockout
        .check_new_credentials(connector, &caller.tenant, product, body.deployment, &base_url, &body.auth)
        .await?;
    let now = OffsetDateTime::now_utc();
    let previous = registry.connections.get(&caller.tenant, product).await?;
    let grant_id = format!("conn-{product}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let connection = Connection {
        tenant: caller.tenant.clone(),
        product,
        deployment: body.deployment,
        auth_type: body.auth.auth_type(),
        status: ConnectionStatus::Connected,
        site,
        base_url: Some(base_url.to_string().trim_end_matches('/').to_owned()),
        scoped_token,
        acting_as: acting_as.clone(),
        candidate_sites: Vec::new(),
        scopes: Vec::new(),
        secret_name: bridge::app::secret_name(registry.secret_prefix, &caller.tenant, &grant_id),
        grant_id,
        created_at: previous.as_ref().map_or(now, |p| p.created_at),
        updated_at: now,
        last_verified_at: Some(now),
    };
    registry.credentials.put(&connection.secret_name, &body.auth.to_secret()).await?;
    if let Err(e) = registry.connections.put_all(std::slice::from_ref(&connection)).await {
        // The old record still points at the old secret: undo the new one and keep the old.
        if let Err(cleanup) = registry.credentials.delete(&connection.secret_name).await {
            tracing::warn!(error = %cleanup, "could not remove the unused new secret");
        }
        return Err(e.into());
    }
    if let Some(previous) = previous {
        let others = registry.connections.list(&caller.tenant).await?;
        if others.iter().all(|c| c.secret_name != previous.secret_name) {
            if let Err(e) = registry.credentials.delete(&previous.secret_name).await {
                tracing::warn!(error = %e, "could not delete the replaced secret");
            }
        }
    }
    tracing::info!(product = %product, auth = ?connection.auth_type, "connection registered");
    Ok(http::json(StatusCode::OK, &ConnectionView::from(&connection)))
}

/// The base URL as given (context path kept), checked by the egress guard.
fn base_url(egress: &EgressPolicy, value: &str) -> Result<Url, ApiError> {
    let url = egress.parse(value).map_err(|e| match e {
        EgressError::InvalidUrl(_) => ApiError::new(ErrorCode::InvalidRequest, format!("base_url: {e}")),
        _ => ApiError::new(ErrorCode::EgressRefused, format!("base_url: {e}")),
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "base_url must not have a query or fragment"));
    }
    Ok(url)
}

/// Confluence Cloud's address as people copy it from the browser ends in `/wiki`
/// (`https://acme.atlassian.net/wiki`), while its REST paths start at the site
/// (`{site}/wiki/rest/api/...`, `{site}/wiki/api/v2/...`; see the `servers` of the Confluence
/// Cloud specs): keep the site URL, so requests don't go to `/wiki/wiki/...`.
fn site_root(mut url: Url) -> Url {
    if let Some(site) = url.path().trim_end_matches('/').strip_suffix("/wiki").map(str::to_owned) {
        url.set_path(&site);
    }
    url
}

async fn get_settings(
    settings: &dyn SettingsStore,
    caller: &Caller,
    product: Product,
) -> Result<HttpResponse, ApiError> {
    let settings = settings
        .get_settings(&caller.tenant, product)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NoSettings, format!("no {product} settings saved for this tenant")))?;
    Ok(http::json(StatusCode::OK, &settings))
}

async fn put_settings(
    store: &dyn SettingsStore,
    connector: &Connector,
    caller: &Caller,
    product: Product,
    input: &Input<SettingsBody>,
) -> Result<HttpResponse, ApiError> {
    let stored = match product {
        Product::Confluence => {
            let settings: ConfluenceSettings = input.body_as()?;
            settings.validate()?;
            if let Some(session) = connected_session(connector, caller, product).await? {
                settings.check(&session).await?;
            }
            serde_json::to_value(&settings)
        }
        Product::Jira => {
            let settings: JiraSettings = input.body_as()?;
            settings.validate()?;
            if let Some(session) = connected_session(connector, caller, product).await? {
                settings.check(&session).await?;
            }
            serde_json::to_value(&settings)
        }
    }
    .map_err(|_| ApiError::internal())?;
    store.put_settings(&caller.tenant, product, &stored).await?;
    Ok(http::json(StatusCode::OK, &stored))
}

/// The product's session when it is connected; `None` when it is not (settings are then only
/// checked locally, and again when used).
async fn connected_session(
    connector: &Connector,
    caller: &Caller,
    product: Product,
) -> Result<Option<Session>, ApiError> {
    match connector.session(&caller.tenant, product).await {
        Ok(session) => Ok(Some(session)),
        Err(AccessError::NotConnected(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_tables_connections_routes() {
        router().check().unwrap();
    }

    #[test]
    fn a_confluence_cloud_url_ending_in_wiki_becomes_the_site_url() {
        let root = |u: &str| site_root(Url::parse(u).unwrap()).to_string();
        assert_eq!(root("https://acme.atlassian.net/wiki"), "https://acme.atlassian.net/");
        assert_eq!(root("https://acme.atlassian.net/wiki/"), "https://acme.atlassian.net/");
        assert_eq!(root("https://acme.atlassian.net"), "https://acme.atlassian.net/");
        assert_eq!(root("http://127.0.0.1:9/site/acme/wiki"), "http://127.0.0.1:9/site/acme");
        assert_eq!(root("https://acme.atlassian.net/wikipedia"), "https://acme.atlassian.net/wikipedia");
    }
}
