//! Data Center OAuth 2.0 consents (incoming application links, `bridge::oauth::dc`): the same
//! start, callback and confirmation as Cloud consents, with the instance as the authorization
//! server.
//!
//! - start: `data_center` in the start body names the link (base URL, client id and secret).
//!   The base URL passes the egress guard (https, public addresses) and the destination lockout
//!   (the instance's host and its token endpoint) before anything is sent; the link rides the
//!   single-use state record sealed (`dc::seal`), and the browser goes to
//!   `{base}/rest/oauth2/latest/authorize` with the PKCE S256 challenge of a verifier derived
//!   from the state id.
//! - callback: the code is exchanged at `{base}/rest/oauth2/latest/token` with the verifier and
//!   the link's credentials (a refused client, `invalid_client`, counts against the token
//!   endpoint: a client secret can be guessed there), the access token proves itself on the
//!   product (who it acts as), the pair and the link's credentials go to the grant's one secret,
//!   and the connection waits for the same confirmation as a Cloud consent.

use bridge::api::{DcOAuthStart, StartOAuthRequest, StartOAuthResponse};
use bridge::atlassian::{Credentials, EgressError, Flavour, Session};
use bridge::caller::Caller;
use bridge::consent::NewConsent;
use bridge::domain::{AuthType, Connection, ConnectionStatus, ConsentTarget, Deployment, Product, TenantId};
use bridge::error::{ApiError, ErrorCode};
use bridge::http::{self, HttpResponse};
use bridge::oauth::dc::{self, DcLink, DcOAuth};
use bridge::oauth::{OAuthError, StateClaims};
use bridge::store::{Destination, PendingAuthorization};
use lambda_http::http::StatusCode;
use secrecy::ExposeSecret;
use time::OffsetDateTime;
use url::Url;

use crate::{Context, Grants, Held, allowed_return_url, store_failed};

/// The one product a Data Center consent is for (a link belongs to one instance).
fn product_of(target: ConsentTarget) -> Result<Product, ApiError> {
    match target {
        ConsentTarget::Jira => Ok(Product::Jira),
        ConsentTarget::Confluence => Ok(Product::Confluence),
        ConsentTarget::Atlassian => Err(ApiError::new(
            ErrorCode::InvalidProduct,
            "a Data Center consent is for one instance: product must be jira or confluence",
        )),
    }
}

/// The link's base URL, checked by the egress guard: https (unless the operator allows http),
/// no credentials, no query, no private, loopback or metadata address.
fn base_url(cx: &Context, value: &str) -> Result<Url, ApiError> {
    let url = cx.egress.parse(value).map_err(|e| match e {
        EgressError::InvalidUrl(_) => ApiError::new(ErrorCode::InvalidRequest, format!("data_center.base_url: {e}")),
        _ => ApiError::new(ErrorCode::EgressRefused, format!("data_center.base_url: {e}")),
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "data_center.base_url must not have a query or fragment"));
    }
    Ok(url)
}

/// The destinations a consent for `base` reaches: the instance's host and its token endpoint.
fn destinations(base: &Url) -> Vec<Destination> {
    [Destination::host_of(base), Destination::token_endpoint(&dc::token_endpoint(base))].into_iter().flatten().collect()
}

pub(crate) async fn start(
    cx: &Context,
    caller: Caller,
    target: ConsentTarget,
    body: StartOAuthRequest,
    link: DcOAuthStart,
) -> Result<HttpResponse, ApiError> {
    let product = product_of(target)?;
    let return_url = allowed_return_url(&cx.config.allowed_return_urls, &body.return_url)?;
    if body.status_webhooks {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "status_webhooks is for Cloud consents"));
    }
    let client_id = link.client_id.trim();
    if client_id.is_empty() || client_id.len() > 256 {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "data_center.client_id must be the link's client id"));
    }
    let secret_len = link.client_secret.expose_secret().len();
    if secret_len == 0 || secret_len > 1024 {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "data_center.client_secret must be the link's client secret",
        ));
    }
    let base = base_url(cx, &link.base_url)?;
    cx.grants.lockout.check(&destinations(&base)).await?;

    let now = OffsetDateTime::now_utc();
    let expires_at = now + cx.config.state_ttl;
    let claims = StateClaims {
        sid: bridge::oauth::new_state_id(),
        tenant: caller.tenant.clone(),
        target,
        exp: expires_at.unix_timestamp(),
    };
    let link = DcLink { base_url: base, client_id: client_id.to_owned(), client_secret: link.client_secret };
    cx.states
        .put(&PendingAuthorization {
            id: claims.sid.clone(),
            tenant: caller.tenant.clone(),
            target,
            return_url: return_url.to_string(),
            expires_at,
            data_center: Some(dc::seal(&cx.signer, &claims.sid, &caller.tenant, &link)),
        })
        .await?;
    let state = cx.signer.sign(&claims);
    let oauth = DcOAuth::new(cx.grants.transport.clone(), &link, cx.config.redirect_uri.clone());
    let authorize_url = oauth.authorize_url(dc::SCOPES, &state, dc::pkce_challenge(&cx.signer, &claims.sid));
    tracing::info!(product = %product, "Data Center OAuth consent started");
    Ok(http::json(StatusCode::OK, &StartOAuthResponse { authorize_url: authorize_url.to_string(), expires_at }))
}

/// Exchanges the code with the consent's verifier and holds the grant for its confirmation;
/// the error is a reason code for the redirect.
pub(crate) async fn complete(
    grants: &Grants,
    state_id: &str,
    pending: &PendingAuthorization,
    sealed: &str,
    code: &str,
) -> Result<Held, String> {
    let tenant: &TenantId = &pending.tenant;
    let target = pending.target;
    let product = product_of(target).map_err(|_| "invalid_product".to_owned())?;
    let link = dc::unseal(&grants.signer, state_id, tenant, sealed).map_err(|e| {
        tracing::error!(error = %e, "Data Center consent's link unreadable");
        "invalid_state".to_owned()
    })?;
    let lockout = &grants.lockout;
    let destinations = destinations(&link.base_url);
    if lockout.check(&destinations).await.is_err() {
        return Err("destination_locked".into());
    }
    let oauth = DcOAuth::new(grants.transport.clone(), &link, grants.redirect_uri.clone()).with_clock(grants.clock);
    let tokens = match oauth.exchange_code(code, dc::pkce_verifier(&grants.signer, state_id)).await {
        Ok(tokens) => tokens,
        Err(OAuthError::InvalidClient) => {
            tracing::warn!(product = %product, "the application link's client was refused; counted against its token endpoint");
            if let Some(endpoint) = destinations.iter().find(|d| d.kind == bridge::store::DestinationKind::TokenUrl)
                && let Err(e) = lockout.record_refusal(endpoint, tenant).await
            {
                tracing::error!(error = %e.message, "could not count the refused client");
            }
            return Err("client_refused".into());
        }
        Err(e) => {
            tracing::warn!(error = %e, "Data Center code exchange failed");
            return Err("token_exchange_failed".into());
        }
    };
    // The token proves itself on the product, and names whom the connection acts as.
    let session = Session::new(
        grants.transport.clone(),
        link.base_url.clone(),
        product,
        Flavour::DataCenter,
        Credentials::Bearer(tokens.access_token.clone()),
    );
    let acting_as = bridge::verify::whoami(&session, AuthType::DcOauth2, false).await.map_err(|e| {
        tracing::warn!(error = %e, "the Data Center grant's token did not work on the product");
        "verification_failed".to_owned()
    })?;

    let now = OffsetDateTime::now_utc();
    let grant_id = target.new_grant_id();
    let secret_name = bridge::app::secret_name(&grants.secret_prefix, tenant, &grant_id);
    let connection = Connection {
        tenant: tenant.clone(),
        product,
        deployment: Deployment::Datacenter,
        auth_type: AuthType::DcOauth2,
        status: ConnectionStatus::Connected,
        site: None,
        base_url: Some(link.base_url.as_str().trim_end_matches('/').to_owned()),
        scoped_token: false,
        acting_as,
        candidate_sites: Vec::new(),
        scopes: tokens.scopes.clone(),
        grant_id: grant_id.clone(),
        secret_name: secret_name.clone(),
        created_at: now,
        updated_at: now,
        last_verified_at: Some(now),
    };
    // The secret first: a pending consent must never point at a secret that does not exist yet.
    grants.credentials.put(&secret_name, &oauth.grant_secret(&tokens)).await.map_err(store_failed)?;
    let consent = NewConsent {
        tenant: tenant.clone(),
        target,
        grant_id,
        secret_name: secret_name.clone(),
        connections: vec![connection],
    };
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
    tracing::info!(product = %product, "Data Center OAuth grant stored; waiting for its confirmation");
    Ok(Held { confirmation })
}
