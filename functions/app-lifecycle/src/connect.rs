//! Connect (and Connect on Forge): descriptor, lifecycle, configure-page link.
//!
//! - `GET /connect/atlassian-connect.json`: the descriptor (`bridge::connect::descriptor`).
//! - `POST /connect/installed` / `uninstalled`: Atlassian's lifecycle callbacks, trusted only for
//!   what their RS256 JWT proves (`bridge::connect::install`): the installation of the payload's
//!   `clientKey`, for us (`aud`), of this request (`qsh`), now (`exp`). An install stores the
//!   installation (generation + 1) and writes its `sharedSecret` as the current version of the
//!   installation's secret; an uninstall marks it uninstalled (kept for audit), removes the
//!   tenant connection made from it and deletes the secret.
//! - `GET /connect/configure` and `POST /connect/link`: the configure page, loaded by the product
//!   with the installation's HS256 JWT, and the link request it sends with a context token
//!   (`AP.context.getToken()`, `qsh: "context-qsh"`, which only this route accepts) and the
//!   one-time code from the SaaS (`bridge::apps::redeem`).
//!
//! Every refusal is `401 invalid_app_token` and one log line with the reason code, never the
//! token, the body or the secret.

use std::sync::Arc;

use bridge::api::{Router, routes};
use bridge::app::App;
use bridge::apps::Stores;
use bridge::clock::Clock;
use bridge::connect::install::{self, InstallJwtError, InstallKeys, KeySource, LifecyclePayload};
use bridge::connect::jwt::{self, ClientKey, QshRule};
use bridge::connect::lifecycle::{LinkRequest, Linked};
use bridge::connect::qsh::Request;
use bridge::connect::{descriptor, session};
use bridge::error::{ApiError, ErrorCode};
use bridge::http::{self, HttpResponse, Input, Json, NoBody};
use bridge::oauth::StateSigner;
use bridge::store::{AppKind, ConnectionStore, CredentialStore, Installation, InstallationStatus, InstallationStore};
use lambda_http::http::StatusCode;

use crate::Context;

/// The Connect app this deployment is, when configured.
#[derive(Clone)]
struct Configured {
    key: String,
    /// Our public base URL, no trailing slash: the descriptor's `baseUrl`, the install JWTs'
    /// `aud`, and the context path of every qsh we check.
    base_url: String,
}

pub struct Connect {
    app: Option<Configured>,
    keys: Arc<dyn KeySource>,
    installations: Arc<dyn InstallationStore>,
    connections: Arc<dyn ConnectionStore>,
    credentials: Arc<dyn CredentialStore>,
    signer: Arc<StateSigner>,
    secret_prefix: String,
    clock: Clock,
}

impl Connect {
    pub fn new(app: &App) -> Result<Self, String> {
        let apps = &app.config.apps;
        let configured = match (&apps.connect_app_key, &apps.public_base_url) {
            (Some(key), Some(base)) if !key.trim().is_empty() => Some(Configured {
                key: key.trim().to_owned(),
                base_url: base.as_str().trim_end_matches('/').to_owned(),
            }),
            _ => None,
        };
        Ok(Self {
            app: configured,
            keys: Arc::new(InstallKeys::new(app.transport.clone(), apps.connect_install_keys_url.clone())),
            installations: app.installations.clone(),
            connections: app.connections.clone(),
            credentials: app.credentials.clone(),
            signer: app.state_signer.clone(),
            secret_prefix: app.config.secret_prefix.clone(),
            clock: app.config.clock,
        })
    }

    fn configured(&self) -> Result<&Configured, ApiError> {
        self.app.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::AppNotConfigured,
                "this deployment is not set up as a Connect app (BRIDGE_CONNECT_APP_KEY and BRIDGE_PUBLIC_BASE_URL)",
            )
        })
    }

    fn stores(&self) -> Stores<'_> {
        Stores {
            installations: self.installations.as_ref(),
            connections: self.connections.as_ref(),
            credentials: self.credentials.as_ref(),
        }
    }
}

pub fn routes(router: Router<Context>) -> Router<Context> {
    router
        .route(&routes::CONNECT_DESCRIPTOR, |cx: Arc<Context>, _, _: Input<NoBody>| async move {
            let app = cx.connect.configured()?;
            Ok(http::json(StatusCode::OK, &descriptor::descriptor(&app.key, &app.base_url)))
        })
        .route(
            &routes::CONNECT_INSTALLED,
            |cx: Arc<Context>, _, input| async move { installed(&cx.connect, &input).await },
        )
        .route(&routes::CONNECT_UNINSTALLED, |cx: Arc<Context>, _, input| async move {
            uninstalled(&cx.connect, &input).await
        })
        .route(
            &routes::CONNECT_CONFIGURE,
            |cx: Arc<Context>, _, input| async move { configure(&cx.connect, &input).await },
        )
        .route(&routes::CONNECT_LINK, |cx: Arc<Context>, _, input| async move { link(&cx.connect, &input).await })
}

/// The one answer to every refused token; the reason goes to the log only.
fn refused(step: &'static str, reason: &'static str) -> ApiError {
    tracing::warn!(step, reason, "Connect request refused");
    ApiError::new(
        ErrorCode::InvalidAppToken,
        "the request's Atlassian JWT is missing, forged, expired, or not for this app",
    )
}

fn bad_payload(what: &'static str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, format!("the lifecycle payload's {what} is missing or not valid"))
}

/// The lifecycle payload, and the proof that Atlassian signed this callback for its `clientKey`.
async fn verified_lifecycle(
    c: &Connect,
    app: &Configured,
    input: &Input<Json<LifecyclePayload>>,
    step: &'static str,
) -> Result<LifecyclePayload, ApiError> {
    let token = jwt::token_from_header(input.header("authorization")).map_err(|e| refused(step, e.code()))?;
    let payload: LifecyclePayload = input.body()?;
    let client_key = ClientKey::new(payload.client_key.clone());
    let (path, query) = input.raw_path_and_query();
    let request = Request::new("POST", path, query);
    let expected = install::Expected { audience: &app.base_url, client_key: &client_key, request: &request };
    match install::verify(token, c.keys.as_ref(), &expected, c.clock.now().unix_timestamp()).await {
        Ok(_) => {}
        Err(InstallJwtError::KeysUnavailable) => {
            // Not the token's fault: Atlassian retries a failed lifecycle callback.
            tracing::warn!(step, reason = "keys_unavailable", "Connect lifecycle callback not verified");
            return Err(ApiError::new(ErrorCode::UpstreamUnavailable, "the install-key CDN did not answer; retry")
                .with_retry_after(5));
        }
        Err(e) => return Err(refused(step, e.code())),
    }
    if payload.key != app.key {
        return Err(refused(step, "wrong_app_key"));
    }
    Ok(payload)
}

async fn installed(c: &Connect, input: &Input<Json<LifecyclePayload>>) -> Result<HttpResponse, ApiError> {
    let app = c.configured()?;
    let payload = verified_lifecycle(c, app, input, "installed").await?;
    if payload.event_type != "installed" {
        return Err(bad_payload("eventType"));
    }
    let product = payload.product().ok_or_else(|| bad_payload("productType"))?;
    let base_url = payload.checked_base_url().ok_or_else(|| bad_payload("baseUrl"))?;
    let secret =
        payload.shared_secret.as_ref().filter(|s| !s.0.is_empty()).ok_or_else(|| bad_payload("sharedSecret"))?;
    let cloud_id = payload.cloud_id.clone().filter(|id| !id.is_empty() && id.len() <= 64);
    let now = c.clock.now();
    let id = payload.client_key.clone();
    let secret_name = bridge::connect::secret_name(&c.secret_prefix, &id);
    // The new secret first: the record names the same secret whatever its version, and from this
    // answer on the product signs with the new one.
    c.credentials.put(&secret_name, &session::secret_value(&app.key, &secret.0)).await?;
    for _ in 0..3 {
        let existing = c.installations.installation(AppKind::Connect, &id).await?;
        let installation = Installation {
            kind: AppKind::Connect,
            id: id.clone(),
            product,
            base_url: base_url.clone(),
            cloud_id: cloud_id.clone(),
            secret_name: secret_name.clone(),
            status: InstallationStatus::Installed,
            tenant: existing.as_ref().and_then(|e| e.tenant.clone()),
            generation: existing.as_ref().map_or(1, |e| e.generation + 1),
            installed_at: existing.as_ref().map_or(now, |e| e.installed_at),
            updated_at: now,
        };
        if c.installations.put_installation(&installation).await? {
            tracing::info!(
                product = %product, generation = installation.generation, reinstall = existing.is_some(),
                "Connect installation stored"
            );
            return Ok(http::no_content());
        }
    }
    // Installs of one clientKey racing each other: Atlassian retries.
    Err(ApiError::new(ErrorCode::UpstreamUnavailable, "another install of this site is being stored; retry")
        .with_retry_after(1))
}

async fn uninstalled(c: &Connect, input: &Input<Json<LifecyclePayload>>) -> Result<HttpResponse, ApiError> {
    let app = c.configured()?;
    let payload = verified_lifecycle(c, app, input, "uninstalled").await?;
    let Some(was) = c.installations.uninstall(AppKind::Connect, &payload.client_key, c.clock.now()).await? else {
        tracing::info!("Connect uninstall of an installation never stored");
        return Ok(http::no_content());
    };
    bridge::apps::uninstalled(c.stores(), &was).await?;
    c.credentials.delete(&was.secret_name).await?;
    tracing::info!(product = %was.product, "Connect installation uninstalled: its secret deleted, its record kept");
    Ok(http::no_content())
}

/// The installation an HS256 request is signed for, once its JWT verifies.
async fn verified_request(
    c: &Connect,
    app: &Configured,
    token: &str,
    method: &str,
    (path, query): (&str, &str),
    rule: QshRule,
    step: &'static str,
) -> Result<Installation, ApiError> {
    let issuer = jwt::peek_issuer(token).map_err(|e| refused(step, e.code()))?;
    let installation = c
        .installations
        .installation(AppKind::Connect, issuer.as_str())
        .await?
        .filter(|i| i.status == InstallationStatus::Installed)
        .ok_or_else(|| refused(step, "unknown_installation"))?;
    let stored = c.credentials.get(&installation.secret_name).await?.ok_or_else(|| refused(step, "no_secret"))?;
    let (_, secret) = session::read_secret(&stored.value).map_err(|e| {
        tracing::error!(error = %e, "Connect installation secret unreadable");
        ApiError::internal()
    })?;
    let request = Request::new(method, path, query);
    let expected = jwt::Expected { issuer: &issuer, request: &request, base_url: &app.base_url, qsh: rule };
    jwt::verify(token, &secret, &expected, c.clock.now().unix_timestamp()).map_err(|e| refused(step, e.code()))?;
    Ok(installation)
}

async fn configure(c: &Connect, input: &Input<NoBody>) -> Result<HttpResponse, ApiError> {
    let app = c.configured()?;
    // The product loads the page in an iframe with `?jwt=...`; a header works too.
    let from_query = input.query("jwt");
    let token = match (&from_query, jwt::token_from_header(input.header("authorization"))) {
        (Some(token), _) if !token.is_empty() => token.as_str(),
        (_, Ok(token)) => token,
        (_, Err(e)) => return Err(refused("configure", e.code())),
    };
    let installation =
        verified_request(c, app, token, "GET", input.raw_path_and_query(), QshRule::Request, "configure").await?;
    Ok(page(app, &installation))
}

/// The configure page: one field for the code, sent to `/connect/link` with a context token.
fn page(app: &Configured, installation: &Installation) -> HttpResponse {
    let nonce = bridge::oauth::new_state_id();
    let link_url = format!("{}{}", app.base_url, descriptor::LINK_PATH);
    let product = installation.product.to_string();
    let linked = if installation.tenant.is_some() { "This site is linked. A new code links it again." } else { "" };
    let body = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Link to your SaaS workspace</title>
<script src="https://connect-cdn.atl-paas.net/all.js"></script></head>
<body><h1>Link this {product} site</h1>
<p>Enter the one-time code your SaaS workspace's admin screen shows. {linked}</p>
<form id="link"><input id="code" name="code" autocomplete="off" maxlength="64" required>
<button type="submit">Link</button></form><p id="result" role="status"></p>
<script nonce="{nonce}">
document.getElementById("link").addEventListener("submit", function (e) {{
  e.preventDefault();
  var code = document.getElementById("code").value;
  AP.context.getToken(function (token) {{
    fetch("{link_url}", {{method: "POST", headers: {{"Authorization": "JWT " + token,
      "Content-Type": "application/json"}}, body: JSON.stringify({{code: code}})}})
      .then(function (r) {{ document.getElementById("result").textContent =
        r.ok ? "Linked." : "Not linked: ask for a new code."; }});
  }});
}});
</script></body></html>"#
    );
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}' https://connect-cdn.atl-paas.net; connect-src {}; style-src 'unsafe-inline'; frame-ancestors https://*.atlassian.net https://*.jira.com",
        app.base_url
    );
    lambda_http::Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("content-security-policy", csp)
        .header("x-content-type-options", "nosniff")
        .body(lambda_http::Body::from(body))
        .unwrap_or_else(|_| http::error(&ApiError::internal()))
}

async fn link(c: &Connect, input: &Input<Json<LinkRequest>>) -> Result<HttpResponse, ApiError> {
    let app = c.configured()?;
    let token = jwt::token_from_header(input.header("authorization")).map_err(|e| refused("link", e.code()))?;
    // AP.context.getToken() hands the page a context token: this route, which only our own page
    // calls, accepts `context-qsh` (Atlassian, "Understanding JWT for Connect apps").
    let installation =
        verified_request(c, app, token, "POST", input.raw_path_and_query(), QshRule::RequestOrContext, "link").await?;
    let body = input.body()?;
    let code = body.code.trim();
    if code.is_empty() || code.len() > 64 {
        return Err(ApiError::new(ErrorCode::InvalidLinkCode, "code must be the one-time code the SaaS showed"));
    }
    let connection = bridge::apps::redeem(c.stores(), &c.signer, code, &installation, c.clock.now()).await?;
    Ok(http::json(StatusCode::OK, &Linked { status: "linked", product: connection.product }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_the_refusal() {
        let err = refused("installed", "bad_signature");
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(err.code, ErrorCode::InvalidAppToken);
    }
}
