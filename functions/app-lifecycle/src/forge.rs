//! Forge Remote: the Forge app's invocations and triggers.
//!
//! Every request carries a Forge Invocation Token, verified first (`bridge::forge::fit`): a
//! refusal is `401 invalid_app_token` and one log line with the reason code, nothing stored.
//! Then the app system token of `x-forge-oauth-system` is kept when it lasts longer than the one
//! held (`bridge::forge::tokens`), on every route: Forge hands one over only when it invokes us.
//!
//! Forge waits 25 s for an invocation and 5 s for an event or a trigger, and retries events
//! (Atlassian, "Forge remote essentials",
//! <https://developer.atlassian.com/platform/forge/forge-remote-invocation-contract>). What
//! these routes do is a few writes to our own stores, so they answer at once; nothing here calls
//! Atlassian.

use std::sync::Arc;

use bridge::api::{Router, routes};
use bridge::app::App;
use bridge::apps::{self, Stores};
use bridge::clock::Clock;
use bridge::domain::ConnectionStatus;
use bridge::error::{ApiError, ErrorCode};
use bridge::forge::fit::{self, FitError, VerifiedInvocation};
use bridge::forge::jwks::JwksCache;
use bridge::forge::tokens::{self, AppSystemToken, SYSTEM_TOKEN_HEADER};
use bridge::forge::{ForgeAnswer, ForgeLifecycleEvent, ForgeLinkRequest};
use bridge::http::{self, HttpResponse, Input};
use bridge::oauth::StateSigner;
use bridge::store::{
    AppKind, ConnectionStore, CredentialStore, Installation, InstallationStatus, InstallationStore, Verification,
};
use lambda_http::http::StatusCode;
use time::OffsetDateTime;

use crate::Context;

/// Forge's lifecycle event types (Atlassian, "Life cycle events",
/// <https://developer.atlassian.com/platform/forge/events-reference/life-cycle>).
pub const INSTALLED: &str = "avi:forge:installed:app";
pub const UPGRADED: &str = "avi:forge:upgraded:app";
pub const UNINSTALLED: &str = "avi:forge:uninstalled:app";

pub struct Forge {
    /// `None` when this deployment is no Forge app: every route answers 404 app_not_configured.
    app_id: Option<String>,
    keys: JwksCache,
    secret_prefix: String,
    installations: Arc<dyn InstallationStore>,
    connections: Arc<dyn ConnectionStore>,
    credentials: Arc<dyn CredentialStore>,
    signer: Arc<StateSigner>,
    clock: Clock,
}

impl Forge {
    pub fn new(app: &App) -> Result<Self, String> {
        let apps = &app.config.apps;
        Ok(Self {
            app_id: apps.forge_app_id.as_deref().map(str::trim).filter(|id| !id.is_empty()).map(fit::app_ari),
            keys: JwksCache::from_url(app.transport.clone(), apps.forge_jwks_url.clone()),
            secret_prefix: app.config.secret_prefix.clone(),
            installations: app.installations.clone(),
            connections: app.connections.clone(),
            credentials: app.credentials.clone(),
            signer: app.state_signer.clone(),
            clock: app.config.clock,
        })
    }

    fn stores(&self) -> Stores<'_> {
        Stores {
            installations: self.installations.as_ref(),
            connections: self.connections.as_ref(),
            credentials: self.credentials.as_ref(),
        }
    }

    /// The request's FIT, verified; or the refusal (logged with its reason only).
    async fn verified<B>(&self, input: &Input<B>) -> Result<VerifiedInvocation, ApiError> {
        let Some(app_id) = &self.app_id else {
            return Err(ApiError::new(
                ErrorCode::AppNotConfigured,
                "this deployment is not set up as a Forge app (BRIDGE_FORGE_APP_ID is unset)",
            ));
        };
        let now = self.clock.now().unix_timestamp();
        let verified = match fit::bearer(input.header("authorization")) {
            Ok(token) => fit::verify(token, &self.keys, app_id, now).await,
            Err(e) => Err(e),
        };
        verified.map_err(|reason| {
            // The reason only: never the token, never the body.
            tracing::warn!(reason = reason.code(), "Forge invocation refused");
            if reason == FitError::KeysUnavailable {
                // Not the caller's fault: Forge retries events and triggers on a 5xx.
                return ApiError::new(ErrorCode::UpstreamUnavailable, "Forge's signing keys could not be fetched")
                    .with_retry_after(5);
            }
            ApiError::new(ErrorCode::InvalidAppToken, "the request's Forge Invocation Token is not valid for this app")
        })
    }

    /// The app system token the request brought, if any (an unreadable one is skipped: the
    /// invocation itself is Forge's, verified).
    fn system_token<B>(&self, input: &Input<B>) -> Option<AppSystemToken> {
        let header = input.header(SYSTEM_TOKEN_HEADER)?;
        match AppSystemToken::from_header(header, self.clock.now().unix_timestamp()) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::warn!(reason = %e, "the invocation's app system token was not kept");
                None
            }
        }
    }

    /// Keeps the request's token for the installation when it lasts longer than the held one.
    async fn keep_token(&self, installation: &Installation, token: Option<AppSystemToken>) -> Result<bool, ApiError> {
        let Some(token) = token else { return Ok(false) };
        if installation.status != InstallationStatus::Installed {
            return Ok(false);
        }
        let stored = tokens::keep_fresher(self.credentials.as_ref(), &installation.secret_name, &token).await?;
        if stored {
            tracing::info!(product = %installation.product, expires_at = token.expires_at(), "app system token stored");
            self.restore(installation).await?;
        }
        Ok(stored)
    }

    /// A linked connection that a 401 marked invalid (its token revoked or expired early) works
    /// again with the new token.
    async fn restore(&self, installation: &Installation) -> Result<(), ApiError> {
        let Some(tenant) = &installation.tenant else { return Ok(()) };
        let Some(connection) = self.connections.get(tenant, installation.product).await? else { return Ok(()) };
        if connection.grant_id != installation.id
            || apps::installation_kind(connection.auth_type) != Some(AppKind::Forge)
            || connection.status != ConnectionStatus::InvalidCredentials
        {
            return Ok(());
        }
        let verification = Verification {
            at: self.clock.now(),
            status: ConnectionStatus::Connected,
            acting_as: connection.acting_as.clone(),
            secret_name: connection.secret_name.clone(),
        };
        self.connections.record_verified(tenant, installation.product, &verification).await?;
        tracing::info!(tenant = %tenant, product = %installation.product, "Forge connection connected again with a new app system token");
        Ok(())
    }

    /// The installation the FIT names, stored as installed when we have no record of it (an
    /// install event that never reached us); `None` when it was uninstalled.
    async fn installation(
        &self,
        v: &VerifiedInvocation,
        now: OffsetDateTime,
    ) -> Result<Option<Installation>, ApiError> {
        if let Some(existing) = self.installations.installation(AppKind::Forge, v.installation_id()).await? {
            return Ok((existing.status == InstallationStatus::Installed).then_some(existing));
        }
        self.install(v, now).await.map(Some)
    }

    /// Writes the installation as installed (new, or a reinstall of an uninstalled one: a new
    /// generation). A concurrent install that won is read back.
    async fn install(&self, v: &VerifiedInvocation, now: OffsetDateTime) -> Result<Installation, ApiError> {
        for _ in 0..3 {
            let existing = self.installations.installation(AppKind::Forge, v.installation_id()).await?;
            let fresh = record_of(v, &self.secret_prefix, existing.as_ref(), now);
            if let Some(existing) = &existing
                && existing.status == InstallationStatus::Installed
                && same_facts(existing, &fresh)
            {
                return Ok(existing.clone());
            }
            if self.installations.put_installation(&fresh).await? {
                tracing::info!(product = %fresh.product, generation = fresh.generation, "Forge installation stored");
                return Ok(fresh);
            }
        }
        tracing::error!("the Forge installation kept changing while it was being stored");
        Err(ApiError::new(ErrorCode::UpstreamUnavailable, "the installation is being stored by another request")
            .with_retry_after(1))
    }
}

/// The record of the installation a FIT names.
fn record_of(
    v: &VerifiedInvocation,
    prefix: &str,
    existing: Option<&Installation>,
    now: OffsetDateTime,
) -> Installation {
    Installation {
        kind: AppKind::Forge,
        id: v.installation_id().to_owned(),
        product: v.product(),
        // The site people open; without `context.siteUrl`, the API base (links then go there).
        base_url: v.site_url().unwrap_or(v.api_base_url()).to_owned(),
        cloud_id: Some(v.cloud_id().to_owned()),
        secret_name: tokens::secret_name(prefix, v.installation_id()),
        status: InstallationStatus::Installed,
        tenant: existing.and_then(|e| e.tenant.clone()),
        generation: existing.map_or(1, |e| e.generation + 1),
        installed_at: existing.map_or(now, |e| e.installed_at),
        updated_at: now,
    }
}

fn same_facts(a: &Installation, b: &Installation) -> bool {
    a.product == b.product && a.base_url == b.base_url && a.cloud_id == b.cloud_id && a.secret_name == b.secret_name
}

fn answer(outcome: &str) -> HttpResponse {
    http::json(StatusCode::OK, &ForgeAnswer { outcome: outcome.into() })
}

fn body<T: serde::de::DeserializeOwned>(input: &Input<bridge::http::Json<T>>, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(input.raw_body())
        .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, format!("the body is not a {what}")))
}

async fn lifecycle(
    cx: &Forge,
    input: Input<bridge::http::Json<ForgeLifecycleEvent>>,
) -> Result<HttpResponse, ApiError> {
    let v = cx.verified(&input).await?;
    let event: ForgeLifecycleEvent = body(&input, "Forge lifecycle event")?;
    let now = cx.clock.now();
    match event.event_type.as_str() {
        INSTALLED | UPGRADED => {
            let installation = cx.install(&v, now).await?;
            cx.keep_token(&installation, cx.system_token(&input)).await?;
            Ok(answer("installed"))
        }
        UNINSTALLED => {
            if let Some(was) = cx.installations.uninstall(AppKind::Forge, v.installation_id(), now).await? {
                apps::uninstalled(cx.stores(), &was).await?;
                cx.credentials.delete(&was.secret_name).await?;
                tracing::info!(product = %was.product, "Forge installation uninstalled: its token deleted, its record kept");
            }
            Ok(answer("uninstalled"))
        }
        other => {
            // Another event on the same endpoint: acknowledged so that Forge does not retry it.
            tracing::info!(event_type = other.get(..64).unwrap_or(other), "Forge event ignored");
            Ok(answer("ignored"))
        }
    }
}

async fn scheduled(
    cx: &Forge,
    input: Input<bridge::http::Json<bridge::forge::ForgeScheduledTrigger>>,
) -> Result<HttpResponse, ApiError> {
    let v = cx.verified(&input).await?;
    let Some(installation) = cx.installation(&v, cx.clock.now()).await? else { return Ok(answer("ignored")) };
    let stored = cx.keep_token(&installation, cx.system_token(&input)).await?;
    Ok(answer(if stored { "token_stored" } else { "token_kept" }))
}

async fn link(cx: &Forge, input: Input<bridge::http::Json<ForgeLinkRequest>>) -> Result<HttpResponse, ApiError> {
    let v = cx.verified(&input).await?;
    let request: ForgeLinkRequest = body(&input, "JSON object with the link code")?;
    let now = cx.clock.now();
    let Some(installation) = cx.installation(&v, now).await? else {
        return Err(ApiError::new(ErrorCode::InstallationLinked, "this installation is no longer installed"));
    };
    // The token first, so that the connection works as soon as it exists.
    cx.keep_token(&installation, cx.system_token(&input)).await?;
    apps::redeem(cx.stores(), &cx.signer, &request.code, &installation, now).await?;
    Ok(answer("linked"))
}

pub fn routes(router: Router<Context>) -> Router<Context> {
    router
        .route(&routes::FORGE_LIFECYCLE, |cx: Arc<Context>, _, input| async move { lifecycle(&cx.forge, input).await })
        .route(&routes::FORGE_SCHEDULED, |cx: Arc<Context>, _, input| async move { scheduled(&cx.forge, input).await })
        .route(&routes::FORGE_LINK, |cx: Arc<Context>, _, input| async move { link(&cx.forge, input).await })
}
