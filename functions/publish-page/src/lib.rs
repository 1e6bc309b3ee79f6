//! `publish-page`: a retrospective or health-check report → a Confluence page under its parent,
//! with a PDF summary attached (HTTP `POST /v1/tenants/{tenant}/pages` and the `Report Ready`
//! event), and `GET /v1/tenants/{tenant}/publications/{id}`.

use std::sync::Arc;

use bridge::app::{App, EventOutcome};
use bridge::caller::{BridgeScope, authorize};
use bridge::domain::{Product, TenantId};
use bridge::error::ApiError;
use bridge::events::{Delivery, PublishFailed};
use bridge::http::{self, HttpResponse};
use bridge::reports::{Outcome, PagePublished, Publication, PublishJob, Report, ReportReady};
use bridge::settings::ConfluenceSettings;
use lambda_http::Request;
use lambda_http::http::StatusCode;
use tracing::Instrument;

pub async fn handle(app: Arc<App>, req: Request) -> HttpResponse {
    let span = tracing::info_span!("request", tenant = tracing::field::Empty);
    async {
        let result = match http::route_key(&req) {
            Some("POST /v1/tenants/{tenant}/pages") => create(&app, &req).await,
            Some("GET /v1/tenants/{tenant}/publications/{id}") => get(&app, &req).await,
            _ => Err(http::unknown_route()),
        };
        http::respond(result)
    }
    .instrument(span)
    .await
}

async fn create(app: &App, req: &Request) -> Result<HttpResponse, ApiError> {
    let tenant = http::path_param(req, "tenant")?;
    tracing::Span::current().record("tenant", tenant.as_str());
    let caller = authorize(req, &app.config.tenant_claim, &tenant, BridgeScope::Publish)?;
    let idempotency_key = http::idempotency_key(req)?;
    let report: Report = http::json_body(req)?;
    report.validate()?;
    match publish(app, &caller.tenant, &idempotency_key, &report).await? {
        Outcome::Published(publication) => Ok(http::json(StatusCode::OK, &publication)),
        Outcome::Failed(publication) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "publish_failed",
            publication.last_error.unwrap_or_else(|| "the publication failed".into()),
        )),
        Outcome::Retry { reason, .. } => Err(ApiError::unavailable(
            format!("{reason}; send the same request again with the same Idempotency-Key"),
            Some(5),
        )),
    }
}

async fn get(app: &App, req: &Request) -> Result<HttpResponse, ApiError> {
    let tenant = http::path_param(req, "tenant")?;
    tracing::Span::current().record("tenant", tenant.as_str());
    let caller = authorize(req, &app.config.tenant_claim, &tenant, BridgeScope::Read)?;
    let id = http::path_param(req, "id")?;
    let publication = app
        .publications
        .get_publication(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", format!("no publication {id} for this tenant")))?;
    Ok(http::json(StatusCode::OK, &publication))
}

/// Runs one publication. Errors are for the whole job before anything is written (no settings,
/// not connected); everything after is in the outcome.
async fn publish(app: &App, tenant: &TenantId, idempotency_key: &str, report: &Report) -> Result<Outcome, ApiError> {
    let settings: ConfluenceSettings = match app.settings.get_settings(tenant, Product::Confluence).await? {
        Some(stored) => serde_json::from_value(stored).map_err(|_| ApiError::internal())?,
        None => {
            return Err(ApiError::conflict(
                "no_settings",
                "save the Confluence settings (space and parent titles) first",
            ));
        }
    };
    let session = app.connector.session(tenant, Product::Confluence).await?;
    let job = PublishJob {
        session: &session,
        store: app.publications.as_ref(),
        tenant,
        settings: &settings,
        lease: app.config.job_lease,
    };
    let outcome = job.run(report, idempotency_key).await?;
    match &outcome {
        Outcome::Published(p) => tracing::info!(publication = %p.id, page = ?p.page_id, "report published"),
        Outcome::Failed(p) => tracing::warn!(publication = %p.id, error = ?p.last_error, "publication failed for good"),
        Outcome::Retry { reason, .. } => tracing::warn!(reason = %reason, "publication will be retried"),
    }
    Ok(outcome)
}

fn published(tenant: &TenantId, p: &Publication) -> PagePublished {
    PagePublished {
        tenant_id: tenant.to_string(),
        idempotency_key: p.idempotency_key.clone(),
        publication_id: p.id.clone(),
        report_id: p.report_id.clone(),
        page_id: p.page_id.clone().unwrap_or_default(),
        page_url: p.page_url.clone().unwrap_or_default(),
        version: p.version.unwrap_or_default(),
        attachment_id: p.attachment_id.clone().unwrap_or_default(),
    }
}

/// `Report Ready`: publishes, then emits `Page Published` or `Publish Failed`; a temporary
/// failure asks for a redelivery.
pub async fn on_event(app: Arc<App>, delivery: Delivery) -> EventOutcome {
    let span = tracing::info_span!("event", tenant = tracing::field::Empty, delivery = %delivery.id);
    async move {
        let envelope = match delivery.event {
            Ok(envelope) if envelope.detail_type == "Report Ready" => envelope,
            Ok(other) => {
                tracing::warn!(detail_type = %other.detail_type, "event of another type ignored");
                return EventOutcome::Done;
            }
            Err(reason) => {
                tracing::error!(reason = %reason, "undeliverable event dropped");
                return EventOutcome::Done;
            }
        };
        let hint = |key: &str| envelope.detail.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let (tenant_hint, key_hint) = (hint("tenant_id"), hint("idempotency_key"));
        let detail: ReportReady = match serde_json::from_value(envelope.detail) {
            Ok(detail) => detail,
            Err(e) => {
                return failed(&app, &tenant_hint, &key_hint, false, format!("the event is malformed: {e}")).await;
            }
        };
        tracing::Span::current().record("tenant", detail.tenant_id.as_str());
        let Ok(tenant) = TenantId::parse(&detail.tenant_id) else {
            return failed(&app, &tenant_hint, &key_hint, false, "tenant_id is not a valid tenant id".into()).await;
        };
        if let Err(e) = detail.report.validate() {
            return failed(&app, tenant.as_str(), &detail.idempotency_key, false, e.message).await;
        }
        match publish(&app, &tenant, &detail.idempotency_key, &detail.report).await {
            Ok(Outcome::Published(p)) => bridge::app::publish(&app, "Page Published", &published(&tenant, &p)).await,
            Ok(Outcome::Failed(p)) => {
                let reason = p.last_error.unwrap_or_else(|| "the publication failed".into());
                failed(&app, tenant.as_str(), &detail.idempotency_key, false, reason).await
            }
            Ok(Outcome::Retry { reason, .. }) => {
                failed(&app, tenant.as_str(), &detail.idempotency_key, true, reason).await
            }
            Err(e) => {
                let retryable = e.status.is_server_error();
                failed(&app, tenant.as_str(), &detail.idempotency_key, retryable, e.message).await
            }
        }
    }
    .instrument(span)
    .await
}

async fn failed(app: &App, tenant: &str, idempotency_key: &str, retryable: bool, reason: String) -> EventOutcome {
    let event = PublishFailed {
        tenant_id: tenant.to_owned(),
        idempotency_key: idempotency_key.to_owned(),
        job: "page".into(),
        retryable,
        reason,
    };
    bridge::app::publish_failed(app, event).await
}
