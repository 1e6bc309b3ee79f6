//! `publish-page`: a retrospective or health-check report → a Confluence page under its parent,
//! with a PDF summary attached (HTTP `POST /v1/tenants/{tenant}/pages` and the `Report Ready`
//! event), and `GET /v1/tenants/{tenant}/publications/{id}`.

use std::sync::Arc;
use std::time::Duration;

use bridge::access::Connector;
use bridge::api::{Function, Router, routes};
use bridge::app::{App, Job};
use bridge::caller::Caller;
use bridge::domain::{Product, TenantId};
use bridge::error::{ApiError, ErrorCode};
use bridge::events::{Delivery, EventBus};
use bridge::http::{self, HttpResponse};
use bridge::jobs::JobOutcome;
use bridge::markers::Markers;
use bridge::reports::{FontBook, PagePublished, Publication, PublishJob, Report, ReportReady};
use bridge::settings::ConfluenceSettings;
use bridge::store::{PublicationStore, SettingsStore};
use lambda_http::http::StatusCode;

/// What the HTTP routes use, built once at cold start.
pub struct Context {
    settings: Arc<dyn SettingsStore>,
    connector: Arc<Connector>,
    publications: Arc<dyn PublicationStore>,
    lease: Duration,
    markers: Arc<Markers>,
    /// The PDF's fonts: the CJK one is read from `BRIDGE_CJK_FONT_PATH` once per instance.
    fonts: FontBook,
}

impl Context {
    pub fn new(app: &App) -> Self {
        Self {
            settings: app.settings.clone(),
            connector: app.connector.clone(),
            publications: app.publications.clone(),
            lease: app.config.job_lease,
            markers: app.markers.clone(),
            fonts: FontBook::new(&app.config.cjk_font_path),
        }
    }

    fn publisher(&self) -> Publisher<'_> {
        Publisher {
            settings: self.settings.as_ref(),
            connector: &self.connector,
            publications: self.publications.as_ref(),
            lease: self.lease,
            markers: &self.markers,
            fonts: &self.fonts,
        }
    }
}

/// What a publication uses, for a request or an event alike.
struct Publisher<'a> {
    settings: &'a dyn SettingsStore,
    connector: &'a Connector,
    publications: &'a dyn PublicationStore,
    lease: Duration,
    markers: &'a Markers,
    fonts: &'a FontBook,
}

pub fn router() -> Router<Context> {
    Router::new(Function::PublishPage)
        .route(&routes::PUBLISH_PAGE, |cx: Arc<Context>, caller, input| async move {
            create(&cx.publisher(), &caller, &input.idempotency_key()?, input.body()?).await
        })
        .route(&routes::GET_PUBLICATION, |cx: Arc<Context>, caller, input| async move {
            get(cx.publications.as_ref(), &caller, &input.path("id")?).await
        })
}

async fn create(
    publisher: &Publisher<'_>,
    caller: &Caller,
    idempotency_key: &str,
    report: Report,
) -> Result<HttpResponse, ApiError> {
    report.validate()?;
    match run(publisher, &caller.tenant, idempotency_key, &report).await? {
        JobOutcome::Done(publication) => Ok(http::json(StatusCode::OK, &publication)),
        JobOutcome::Failed(publication) => Err(failed_for_good(publication)),
        JobOutcome::Stopped(error) if error.retried() => {
            let seconds = error.retry_after.unwrap_or(5);
            let message = format!("{}; send the same request again with the same Idempotency-Key", error.message);
            Err(ApiError::new(error.code, message).with_retry_after(seconds))
        }
        JobOutcome::Stopped(error) => Err(error),
    }
}

fn failed_for_good(publication: Publication) -> ApiError {
    ApiError::new(
        publication.last_error_code.unwrap_or(ErrorCode::PublishFailed),
        publication.last_error.unwrap_or_else(|| "the publication failed".into()),
    )
}

async fn get(publications: &dyn PublicationStore, caller: &Caller, id: &str) -> Result<HttpResponse, ApiError> {
    let publication = publications
        .get_publication(&caller.tenant, id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no publication {id} for this tenant")))?;
    Ok(http::json(StatusCode::OK, &publication))
}

/// Runs one publication. Errors are for the whole job before anything is written (no settings,
/// not connected); everything after is in the outcome.
async fn run(
    publisher: &Publisher<'_>,
    tenant: &TenantId,
    idempotency_key: &str,
    report: &Report,
) -> Result<JobOutcome<Publication>, ApiError> {
    let settings: ConfluenceSettings = match publisher.settings.get_settings(tenant, Product::Confluence).await? {
        Some(stored) => serde_json::from_value(stored).map_err(|_| ApiError::internal())?,
        None => {
            return Err(ApiError::new(
                ErrorCode::NoSettings,
                "save the Confluence settings (space and parent titles) first",
            ));
        }
    };
    let session = publisher.connector.session(tenant, Product::Confluence).await?;
    let job = PublishJob {
        session: &session,
        store: publisher.publications,
        tenant,
        settings: &settings,
        lease: publisher.lease,
        markers: publisher.markers,
        fonts: publisher.fonts,
    };
    let outcome = job.run(report, idempotency_key).await?;
    match &outcome {
        JobOutcome::Done(p) => tracing::info!(publication = %p.id, page = ?p.page_id, "report published"),
        JobOutcome::Failed(p) => {
            tracing::warn!(publication = %p.id, error = ?p.last_error, "publication failed for good")
        }
        JobOutcome::Stopped(error) => tracing::warn!(error = %error, "publication stopped"),
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
pub async fn on_event(cx: Arc<Context>, bus: Arc<dyn EventBus>, delivery: Delivery) -> JobOutcome<()> {
    bridge::app::run_event(bus.as_ref(), delivery, "page", |job: Job<ReportReady>| async move {
        if let Err(e) = job.detail.report.validate() {
            return JobOutcome::Failed(e);
        }
        match run(&cx.publisher(), &job.tenant, &job.idempotency_key, &job.detail.report).await {
            Ok(JobOutcome::Done(p)) => JobOutcome::Done(published(&job.tenant, &p)),
            Ok(JobOutcome::Failed(p)) => JobOutcome::Failed(failed_for_good(p)),
            Ok(JobOutcome::Stopped(error)) | Err(error) => JobOutcome::Stopped(error),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_tables_publish_page_routes() {
        router().check().unwrap();
    }
}
