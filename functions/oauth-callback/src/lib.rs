//! `oauth-callback`: the Atlassian Cloud OAuth 2.0 (3LO) connect flow.
//!
//! `POST /v1/tenants/{tenant}/connections/{product}/oauth/start` issues a signed, single-use state
//! and the consent URL; `GET /v1/oauth/callback` (public) checks the state, exchanges the code,
//! finds the sites the grant reaches, stores the token pair in Secrets Manager and holds the
//! connection(s) as a pending consent (`bridge::consent`), and sends the admin's browser back to
//! the return URL with a one-time confirmation code; `POST .../oauth/confirm`, under the
//! tenant's token, turns the pending consent into its connections.
//!
//! A start body with `data_center` starts a Data Center OAuth 2.0 consent instead (`dc.rs`):
//! same state, callback and confirmation, with the instance's incoming application link as the
//! authorization server.

mod dc;

use std::sync::Arc;

use bridge::api::{
    ConfirmOAuthRequest, ConfirmOAuthResponse, ConnectionView, Function, Router, StartOAuthRequest, StartOAuthResponse,
    routes,
};
use bridge::app::App;
use bridge::caller::Caller;
use bridge::config::OAuthConfig;
use bridge::consent::{NewConsent, Stores};
use bridge::domain::{AuthType, Connection, ConnectionStatus, ConsentTarget, Deployment, Product, Site, TenantId};
use bridge::error::{ApiError, ErrorCode};
use bridge::http::{self, HttpResponse, Input};
use bridge::oauth::{AccessibleSite, AtlassianOAuth, StateClaims, StateError, StateSigner};
use bridge::store::{ConnectionStore, CredentialStore, OAuthStateStore, PendingAuthorization};
use lambda_http::http::StatusCode;
use time::OffsetDateTime;
use url::Url;

/// What the OAuth routes use, built once at cold start.
pub struct Context {
    config: OAuthConfig,
    signer: Arc<StateSigner>,
    states: Arc<dyn OAuthStateStore>,
    grants: Grants,
    /// The egress rules a Data Center consent's base URL must pass.
    egress: bridge::atlassian::EgressPolicy,
}

impl Context {
    /// Refuses to start without the bus: a Data Center consent's destination lock must be reported.
    pub fn new(app: &App) -> Result<Self, String> {
        let bus = app.events.clone().ok_or("BRIDGE_EVENT_BUS_NAME is required by this function")?;
        Ok(Self {
            config: app.config.oauth.clone(),
            signer: app.state_signer.clone(),
            states: app.states.clone(),
            grants: Grants {
                oauth: app.oauth.clone(),
                connections: app.connections.clone(),
                credentials: app.credentials.clone(),
                secret_prefix: app.config.secret_prefix.clone(),
                signer: app.state_signer.clone(),
                confirm_ttl: app.config.oauth.confirm_ttl,
                webhooks: bridge::webhooks::Webhooks::from_app(app),
                transport: app.transport.clone(),
                redirect_uri: app.config.oauth.redirect_uri.clone(),
                clock: app.config.clock,
                lockout: bridge::lockout::Lockout::new(app.destinations.clone(), bus, app.config.lockout),
            },
            egress: app.config.egress.clone(),
        })
    }
}

/// What completing a consent uses: the token endpoint, where the grant is stored, and how its
/// confirmation code is digested and how long it is good for.
struct Grants {
    oauth: Arc<AtlassianOAuth>,
    connections: Arc<dyn ConnectionStore>,
    credentials: Arc<dyn CredentialStore>,
    secret_prefix: String,
    signer: Arc<StateSigner>,
    confirm_ttl: std::time::Duration,
    /// Registers the webhook of a consent that granted `manage:jira-webhook`.
    webhooks: Option<bridge::webhooks::Webhooks>,
    /// Data Center consents: their token requests and verification go out through it.
    transport: bridge::atlassian::Transport,
    /// Our callback, which a Data Center provider checks on every token request.
    redirect_uri: Url,
    /// Dates a Data Center grant's pair as the token provider judges it.
    clock: bridge::clock::Clock,
    /// A Data Center consent's instance and token endpoint are checked against the destination
    /// lockout, and a refused client is counted.
    lockout: bridge::lockout::Lockout,
}

impl Grants {
    fn stores(&self) -> Stores<'_> {
        Stores { connections: self.connections.as_ref(), credentials: self.credentials.as_ref() }
    }
}

pub fn router() -> Router<Context> {
    Router::new(Function::OAuthCallback)
        .route(&routes::START_OAUTH, |cx: Arc<Context>, caller, input| async move {
            let product = input.path("product")?;
            let target = ConsentTarget::parse(&product).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidProduct,
                    "product must be jira, confluence, or atlassian (both in one consent)",
                )
            })?;
            let consent = Consent { config: &cx.config, signer: &cx.signer, oauth: &cx.grants.oauth };
            let tenant = caller.tenant.clone();
            let mut body: StartOAuthRequest = input.body()?;
            let started = match body.data_center.take() {
                Some(link) => dc::start(&cx, caller, target, body, link).await,
                None => start(&consent, cx.states.as_ref(), caller, target, body).await,
            };
            bridge::consent::expire_tenant(cx.grants.stores(), &tenant, OffsetDateTime::now_utc()).await;
            started
        })
        .route(&routes::CONFIRM_OAUTH, |cx: Arc<Context>, caller, input| async move {
            let product = input.path("product")?;
            let target = ConsentTarget::parse(&product).ok_or_else(|| {
                ApiError::new(ErrorCode::InvalidProduct, "product must be jira, confluence, or atlassian")
            })?;
            confirm(&cx.grants, &caller, target, input.body()?).await
        })
        .route(&routes::OAUTH_CALLBACK, |cx: Arc<Context>, _, input| async move {
            callback(&cx.signer, cx.states.as_ref(), &cx.grants, &input).await
        })
}

/// What starting a consent uses besides its store.
struct Consent<'a> {
    config: &'a OAuthConfig,
    signer: &'a StateSigner,
    oauth: &'a AtlassianOAuth,
}

async fn start(
    consent: &Consent<'_>,
    states: &dyn OAuthStateStore,
    caller: Caller,
    target: ConsentTarget,
    body: StartOAuthRequest,
) -> Result<HttpResponse, ApiError> {
    let return_url = allowed_return_url(&consent.config.allowed_return_urls, &body.return_url)?;
    if body.status_webhooks && !target.products().contains(&Product::Jira) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "status_webhooks needs a Jira consent: use product jira or atlassian",
        ));
    }

    let now = OffsetDateTime::now_utc();
    let expires_at = now + consent.config.state_ttl;
    let claims = StateClaims {
        sid: bridge::oauth::new_state_id(),
        tenant: caller.tenant.clone(),
        target,
        exp: expires_at.unix_timestamp(),
    };
    states
        .put(&PendingAuthorization {
            id: claims.sid.clone(),
            tenant: caller.tenant,
            target,
            return_url: return_url.to_string(),
            expires_at,
            data_center: None,
        })
        .await?;
    let state = consent.signer.sign(&claims);
    let mut scopes = target.scopes();
    if body.status_webhooks {
        scopes.push(bridge::webhooks::SCOPE);
    }
    let authorize_url = consent.oauth.authorize_url(&scopes, &state);
    tracing::info!(target = target.as_str(), status_webhooks = body.status_webhooks, "OAuth consent started");
    Ok(http::json(StatusCode::OK, &StartOAuthResponse { authorize_url: authorize_url.to_string(), expires_at }))
}

/// The SaaS backend confirms the consent its logged-in user's browser came back with.
async fn confirm(
    grants: &Grants,
    caller: &Caller,
    target: ConsentTarget,
    body: ConfirmOAuthRequest,
) -> Result<HttpResponse, ApiError> {
    // Never echoed: a malformed code is refused without its value.
    let code = body.confirmation.trim();
    if code.is_empty() || code.len() > 128 {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "confirmation must be the code from the redirect's confirmation parameter",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let made = bridge::consent::confirm(grants.stores(), &grants.signer, &caller.tenant, target, code, now).await?;
    if let Some(webhooks) = &grants.webhooks
        && made.iter().any(bridge::webhooks::allows_webhooks)
    {
        webhooks.ensure_logged(&caller.tenant).await;
    }
    Ok(http::json(
        StatusCode::OK,
        &ConfirmOAuthResponse { connections: made.iter().map(ConnectionView::from).collect() },
    ))
}

/// A return URL must be absolute, carry no credentials, and sit under an allow-listed URL
/// (same scheme, host and port; path below the listed path), so the callback cannot be turned
/// into an open redirect.
fn allowed_return_url(allowed: &[Url], candidate: &str) -> Result<Url, ApiError> {
    let refused = || {
        ApiError::new(
            ErrorCode::ReturnUrlNotAllowed,
            "return_url must be an absolute URL under one of the deployment's allowed return URLs",
        )
    };
    let url = Url::parse(candidate).map_err(|_| refused())?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(refused());
    }
    let under = |base: &Url| {
        base.scheme() == url.scheme()
            && base.host_str() == url.host_str()
            && base.port_or_known_default() == url.port_or_known_default()
            && (url.path() == base.path().trim_end_matches('/')
                || url.path().starts_with(&format!("{}/", base.path().trim_end_matches('/'))))
    };
    if allowed.iter().any(under) { Ok(url) } else { Err(refused()) }
}

fn invalid_state(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidState, message)
}

async fn callback(
    signer: &StateSigner,
    states: &dyn OAuthStateStore,
    grants: &Grants,
    input: &Input,
) -> Result<HttpResponse, ApiError> {
    let state = input.query("state").ok_or_else(|| invalid_state("the state parameter is missing"))?;
    // The signature is checked before anything is looked up, so forged states cost nothing.
    let claims = signer.verify(&state, OffsetDateTime::now_utc()).map_err(|e| match e {
        StateError::Expired => invalid_state(e.to_string()),
        _ => invalid_state("the state parameter is not one this deployment issued"),
    })?;
    tracing::Span::current().record("tenant", claims.tenant.as_str());
    let pending = states.take(&claims.sid).await?.ok_or_else(|| {
        invalid_state("this authorization was already completed or has expired; start the connection again")
    })?;
    if pending.tenant != claims.tenant || pending.target != claims.target {
        tracing::warn!("OAuth state does not match its stored authorization; refused");
        return Err(invalid_state("the state parameter does not belong to this authorization"));
    }
    let return_url = Url::parse(&pending.return_url).map_err(|_| ApiError::internal())?;

    if let Some(error) = input.query("error") {
        tracing::info!(error = %sanitize(&error), "consent not given; nothing stored");
        return Ok(back(return_url, pending.target, Err(sanitize(&error))));
    }
    let Some(code) = input.query("code") else {
        return Ok(back(return_url, pending.target, Err("missing_code".into())));
    };
    let outcome = match &pending.data_center {
        Some(sealed) => dc::complete(grants, &claims.sid, &pending, sealed, &code).await,
        None => complete(grants, &pending.tenant, pending.target, &code).await,
    };
    Ok(back(return_url, pending.target, outcome))
}

/// A consent that came back: held until confirmed, with the code for the redirect.
struct Held {
    confirmation: String,
}

/// Keeps an error code from the query to a short `[a-z_]` word before it is logged or echoed.
fn sanitize(value: &str) -> String {
    let cleaned: String = value.chars().filter(|c| c.is_ascii_lowercase() || *c == '_').take(64).collect();
    if cleaned.is_empty() { "authorization_failed".into() } else { cleaned }
}

/// The redirect back to the SaaS: `status=pending_confirmation&confirmation=...` (the backend
/// confirms with that code; nothing is usable before), or `status=error&reason=...`.
fn back(mut url: Url, target: ConsentTarget, outcome: Result<Held, String>) -> HttpResponse {
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("product", target.as_str());
        match &outcome {
            Ok(held) => {
                query.append_pair("status", "pending_confirmation").append_pair("confirmation", &held.confirmation)
            }
            Err(reason) => query.append_pair("status", "error").append_pair("reason", reason),
        };
    }
    http::redirect(url.as_str())
}

/// Exchanges the code and holds the grant for its confirmation; the error is a reason code
/// for the redirect. Nothing changes for the tenant's existing connections until the confirm.
async fn complete(grants: &Grants, tenant: &TenantId, target: ConsentTarget, code: &str) -> Result<Held, String> {
    let tokens = grants.oauth.exchange_code(code).await.map_err(|e| {
        tracing::warn!(error = %e, "code exchange failed");
        "token_exchange_failed".to_owned()
    })?;
    let sites = grants.oauth.accessible_sites(&tokens.access_token).await.map_err(|e| {
        tracing::warn!(error = %e, "accessible-resources failed");
        "accessible_resources_failed".to_owned()
    })?;

    let now = OffsetDateTime::now_utc();
    // A new grant (and secret) per consent: a refresh of an older grant still in flight can
    // never overwrite this one's token pair.
    let grant_id = target.new_grant_id();
    let secret_name = bridge::app::secret_name(&grants.secret_prefix, tenant, &grant_id);
    let mut connections = Vec::new();
    for &product in target.products() {
        let candidates = sites_with_scopes(&sites, product.oauth_scopes());
        if candidates.is_empty() {
            tracing::warn!(product = %product, sites = sites.len(), "no accessible site carries the product's scopes");
            return Err("no_accessible_site".into());
        }
        let (status, site) = match candidates.as_slice() {
            [only] => (ConnectionStatus::Connected, Some(only.clone())),
            _ => (ConnectionStatus::SiteSelectionRequired, None),
        };
        connections.push(Connection {
            tenant: tenant.clone(),
            product,
            deployment: Deployment::Cloud,
            auth_type: AuthType::Oauth2,
            status,
            site,
            base_url: None,
            scoped_token: false,
            acting_as: None,
            candidate_sites: candidates,
            scopes: tokens.scopes.clone(),
            grant_id: grant_id.clone(),
            secret_name: secret_name.clone(),
            created_at: now,
            updated_at: now,
            last_verified_at: None,
        });
    }

    // The secret first: a pending consent must never point at a secret that does not exist yet.
    grants.credentials.put(&secret_name, &tokens.to_secret()).await.map_err(store_failed)?;
    let consent =
        NewConsent { tenant: tenant.clone(), target, grant_id, secret_name: secret_name.clone(), connections };
    let confirmation =
        match bridge::consent::hold(grants.stores(), &grants.signer, consent, now, grants.confirm_ttl).await {
            Ok(code) => code,
            Err(e) => {
                if let Err(cleanup) = grants.credentials.delete(&secret_name).await {
                    tracing::warn!(error = %cleanup, "could not delete the secret of a consent that was not stored");
                }
                return Err(store_failed(e));
            }
        };
    tracing::info!(target = target.as_str(), sites = sites.len(), "OAuth grant stored; waiting for its confirmation");
    Ok(Held { confirmation })
}

fn store_failed(e: bridge::store::StoreError) -> String {
    tracing::error!(error = %e, "storing the grant failed");
    "storage_failed".into()
}

/// Sites whose granted scopes include every scope the product needs.
fn sites_with_scopes(sites: &[AccessibleSite], needed: &[&str]) -> Vec<Site> {
    sites
        .iter()
        .filter(|s| needed.iter().all(|n| s.scopes.iter().any(|g| g == n)))
        .map(|s| Site { cloud_id: s.id.clone(), url: s.url.clone(), name: s.name.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_tables_oauth_routes() {
        router().check().unwrap();
    }

    fn allowed() -> Vec<Url> {
        vec![
            Url::parse("https://app.example.com/integrations").unwrap(),
            Url::parse("http://127.0.0.1:8080/_dev/return").unwrap(),
        ]
    }

    #[test]
    fn return_urls_under_an_allowed_url_pass() {
        for ok in [
            "https://app.example.com/integrations",
            "https://app.example.com/integrations/atlassian?x=1",
            "https://app.example.com:443/integrations/done",
            "http://127.0.0.1:8080/_dev/return",
        ] {
            assert!(allowed_return_url(&allowed(), ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_return_urls_are_refused() {
        for bad in [
            "https://app.example.com/integrationsX",
            "https://app.example.com/other",
            "http://app.example.com/integrations",
            "https://app.example.com.evil.test/integrations",
            "https://user:pw@app.example.com/integrations",
            "https://app.example.com:8443/integrations",
            "https://app.example.com/integrations#frag",
            "//app.example.com/integrations",
            "javascript:alert(1)",
            "",
        ] {
            let err = allowed_return_url(&allowed(), bad).unwrap_err();
            assert_eq!(err.code, "return_url_not_allowed", "{bad}");
        }
    }

    #[test]
    fn error_codes_from_the_query_are_sanitized() {
        assert_eq!(sanitize("access_denied"), "access_denied");
        assert_eq!(sanitize("<script>"), "script");
        assert_eq!(sanitize("&&&"), "authorization_failed");
    }

    #[test]
    fn the_redirect_carries_status_and_keeps_existing_query() {
        let url = Url::parse("https://app.example.com/i?tab=x").unwrap();
        let resp = back(url.clone(), ConsentTarget::Jira, Ok(Held { confirmation: "c0de".into() }));
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(
            location,
            "https://app.example.com/i?tab=x&product=jira&status=pending_confirmation&confirmation=c0de"
        );
        let resp = back(url, ConsentTarget::Atlassian, Err("access_denied".into()));
        assert!(resp.headers()["location"].to_str().unwrap().ends_with("status=error&reason=access_denied"));
    }

    #[test]
    fn a_site_qualifies_only_with_every_needed_scope() {
        let site = |id: &str, scopes: &[&str]| AccessibleSite {
            id: id.into(),
            url: format!("https://{id}.atlassian.net"),
            name: id.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        };
        let sites =
            [site("a", &["read:jira-work", "write:jira-work", "read:jira-user"]), site("b", &["read:jira-work"])];
        let chosen = sites_with_scopes(&sites, bridge::domain::Product::Jira.oauth_scopes());
        assert_eq!(chosen.iter().map(|s| s.cloud_id.as_str()).collect::<Vec<_>>(), ["a"]);
    }
}
