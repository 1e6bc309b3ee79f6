//! `issue-webhook`: the public receiver of Jira's dynamic webhook deliveries
//! (`POST /v1/webhooks/jira`) for tenants who consented to `manage:jira-webhook`.
//!
//! Every delivery's `Authorization: Bearer <JWT>` is verified first (HS256 with the OAuth app's
//! client secret, `bridge::webhook_jwt`); a refusal is a 401 and one log line naming the reason,
//! never the token or the body. A verified delivery goes to `bridge::webhooks::Receiver`, which
//! feeds the same recorder as the poll. The answer is 2xx as soon as that is done: Jira retries
//! every other answer.

use std::sync::Arc;

use bridge::ExposeSecret;
use bridge::SecretString;
use bridge::api::{Function, Router, routes};
use bridge::app::App;
use bridge::clock::Clock;
use bridge::error::{ApiError, ErrorCode};
use bridge::events::EventBus;
use bridge::http::{self, HttpResponse};
use bridge::store::{IssueLedger, IssueSyncStore, WebhookStore};
use bridge::webhook_jwt;
use bridge::webhooks::{Delivery, Received, Receiver, WebhookAccepted};
use lambda_http::http::StatusCode;

/// What the receiver uses, built once at cold start.
pub struct Context {
    client_id: String,
    client_secret: SecretString,
    webhooks: Arc<dyn WebhookStore>,
    ledger: Arc<dyn IssueLedger>,
    sync: Arc<dyn IssueSyncStore>,
    events: Arc<dyn EventBus>,
    clock: Clock,
}

impl Context {
    /// Refuses to start without the bus: a delivery's changes are published.
    pub fn new(app: &App) -> Result<Self, String> {
        Ok(Self {
            client_id: app.config.oauth.client_id.clone(),
            client_secret: app.client_secret.clone(),
            webhooks: app.webhooks.clone(),
            ledger: app.issues.clone(),
            sync: app.sync.clone(),
            events: app.events.clone().ok_or("BRIDGE_EVENT_BUS_NAME is required by this function")?,
            clock: app.config.clock,
        })
    }
}

pub fn router() -> Router<Context> {
    Router::new(Function::IssueWebhook).route(&routes::JIRA_WEBHOOK, |cx: Arc<Context>, _, input| async move {
        let token = webhook_jwt::bearer(input.header("authorization"));
        let now = cx.clock.now().unix_timestamp();
        let verified = token.and_then(|token| {
            webhook_jwt::verify_bytes(token.as_bytes(), cx.client_secret.expose_secret().as_bytes(), &cx.client_id, now)
        });
        if let Err(reason) = verified {
            // The reason only: never the token, never the body.
            tracing::warn!(reason = reason.code(), "webhook delivery refused: its JWT is not valid");
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the delivery's bearer token is not a JWT that Jira signed for this app",
            ));
        }
        let body: serde_json::Value = serde_json::from_slice(input.raw_body())
            .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "the delivery's body is not JSON"))?;
        receive(&cx, &body, input.header("x-atlassian-webhook-identifier")).await
    })
}

async fn receive(cx: &Context, body: &serde_json::Value, identifier: Option<&str>) -> Result<HttpResponse, ApiError> {
    let recorder = bridge::sync::Recorder { store: cx.sync.as_ref(), events: cx.events.as_ref(), clock: cx.clock };
    let receiver =
        Receiver { store: cx.webhooks.as_ref(), ledger: cx.ledger.as_ref(), sightings: &recorder, clock: cx.clock };
    let outcome = receiver.receive(Delivery { body, identifier }).await.map_err(|e| {
        // A 5xx: Jira delivers it again later.
        tracing::error!(error = %e, "webhook delivery not recorded; Jira retries it");
        ApiError::internal()
    })?;
    let word = match outcome {
        Received::Recorded { tenants, new } => {
            tracing::info!(tenants, new, "webhook delivery recorded");
            "recorded"
        }
        Received::Repeated => {
            tracing::info!("webhook delivery handled before (a retry)");
            "repeated"
        }
        Received::Ignored(why) => {
            tracing::info!(why, "webhook delivery ignored");
            "ignored"
        }
    };
    Ok(http::json(StatusCode::OK, &WebhookAccepted { outcome: word.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_tables_webhook_route() {
        router().check().unwrap();
    }
}
