//! `publish-page`: a retrospective or health-check report → a Confluence page under its parent,
//! with a PDF summary attached (HTTP `POST /v1/tenants/{tenant}/pages` and the `Report Ready`
//! event), and `GET /v1/tenants/{tenant}/publications/{id}`; and, on the bridge's own
//! `Report Issues Created`, the report's page written again to link its new issues.

use std::sync::Arc;
use std::time::Duration;

use bridge::access::Connector;
use bridge::api::{Function, Router, routes};
use bridge::app::{App, DeadLetter, Job, Verdict};
use bridge::caller::Caller;
use bridge::domain::{Product, TenantId};
use bridge::error::{ApiError, ErrorCode};
use bridge::events::{Delivery, DetailType, EventBus};
use bridge::http::{self, HttpResponse};
use bridge::jobs::JobOutcome;
use bridge::markers::Markers;
use bridge::reports::links::{ReportIssuesCreated, ReportPageLinked};
use bridge::reports::{FontBook, PagePublished, Publication, PublishJob, Relinked, Report, ReportReady};
use bridge::settings::ConfluenceSettings;
use bridge::store::{ConnectionStore, IssueLedger, PublicationStore, SettingsStore};
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
    ledger: Arc<dyn IssueLedger>,
    connections: Arc<dyn ConnectionStore>,
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
            ledger: app.issues.clone(),
            connections: app.connections.clone(),
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
            ledger: self.ledger.as_ref(),
            connections: self.connections.as_ref(),
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
    ledger: &'a dyn IssueLedger,
    connections: &'a dyn ConnectionStore,
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

/// The tenant's Confluence settings, or why nothing can be published.
async fn confluence_settings(publisher: &Publisher<'_>, tenant: &TenantId) -> Result<ConfluenceSettings, ApiError> {
    match publisher.settings.get_settings(tenant, Product::Confluence).await? {
        Some(stored) => serde_json::from_value(stored).map_err(|_| ApiError::internal()),
        None => {
            Err(ApiError::new(ErrorCode::NoSettings, "save the Confluence settings (space and parent titles) first"))
        }
    }
}

/// Runs one publication. Errors are for the whole job before anything is written (no settings,
/// not connected); everything after is in the outcome.
async fn run(
    publisher: &Publisher<'_>,
    tenant: &TenantId,
    idempotency_key: &str,
    report: &Report,
) -> Result<JobOutcome<Publication>, ApiError> {
    let settings = confluence_settings(publisher, tenant).await?;
    let session = publisher.connector.session(tenant, Product::Confluence).await?;
    // Where the tenant's Jira issues are opened, for the page's links to them.
    let jira = publisher.connections.get(tenant, Product::Jira).await?;
    let job = PublishJob {
        session: &session,
        store: publisher.publications,
        tenant,
        settings: &settings,
        lease: publisher.lease,
        markers: publisher.markers,
        fonts: publisher.fonts,
        ledger: publisher.ledger,
        jira: jira.as_ref(),
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

/// `Report Issues Created`: the report's page written again when its set of issues changed since
/// it was last written (see `bridge::reports::links`); answered with `Report Page Linked`.
async fn relink(
    publisher: &Publisher<'_>,
    tenant: &TenantId,
    idempotency_key: &str,
    report_id: &str,
) -> Result<ReportPageLinked, ApiError> {
    let answer = |updated, page_id, page_url, version, issues, note: Option<&str>| ReportPageLinked {
        tenant_id: tenant.to_string(),
        idempotency_key: idempotency_key.to_owned(),
        report_id: report_id.to_owned(),
        updated,
        page_id,
        page_url,
        version,
        issues,
        note: note.map(str::to_owned),
    };
    // No page yet: its first publication renders the links, and needs no Confluence session now.
    if publisher.publications.report_page(tenant, report_id).await?.is_none() {
        return Ok(answer(false, None, None, None, 0, Some("no page yet")));
    }
    let settings = confluence_settings(publisher, tenant).await?;
    let session = publisher.connector.session(tenant, Product::Confluence).await?;
    let jira = publisher.connections.get(tenant, Product::Jira).await?;
    let job = PublishJob {
        session: &session,
        store: publisher.publications,
        tenant,
        settings: &settings,
        lease: publisher.lease,
        markers: publisher.markers,
        fonts: publisher.fonts,
        ledger: publisher.ledger,
        jira: jira.as_ref(),
    };
    Ok(match job.relink(report_id).await? {
        Relinked::Updated { page_id, page_url, version, issues } => {
            answer(true, Some(page_id), page_url, Some(version), issues, None)
        }
        Relinked::Unchanged { page_id, page_url, issues } => answer(false, Some(page_id), page_url, None, issues, None),
        Relinked::Skipped(why) => {
            tracing::info!(report = %report_id, why, "report page not relinked");
            answer(false, None, None, None, 0, Some(why))
        }
    })
}

/// `Report Ready`: publishes, then emits `Page Published` or `Publish Failed`; a temporary
/// failure asks for a redelivery. `Report Issues Created` (our own): [`relink`].
pub async fn on_event(cx: Arc<Context>, bus: Arc<dyn EventBus>, delivery: Delivery) -> JobOutcome<()> {
    let links = matches!(&delivery.event, Ok(e) if e.detail_type == ReportIssuesCreated::DETAIL_TYPE);
    if links {
        return bridge::app::run_event(bus.as_ref(), delivery, "links", |job: Job<ReportIssuesCreated>| async move {
            match relink(&cx.publisher(), &job.tenant, &job.idempotency_key, &job.detail.report_id).await {
                Ok(linked) => JobOutcome::Done(linked),
                Err(error) if error.retried() => JobOutcome::Stopped(error),
                Err(error) => JobOutcome::Failed(error),
            }
        })
        .await;
    }
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

/// Whether a dead-lettered event's job has in fact succeeded (`bridge::app::settle_dead_letter`):
/// a report whose publication record says published was finished by another delivery (or a
/// redrive), and needs no `Publish Failed`. A links update has no record to ask: it is reported.
pub async fn dead_letter(cx: Arc<Context>, letter: DeadLetter) -> Result<Option<Verdict>, ApiError> {
    if letter.detail_type == ReportReady::DETAIL_TYPE {
        let id = bridge::reports::publication_id(&letter.tenant, &letter.idempotency_key);
        let publication = cx.publications.get_publication(&letter.tenant, &id).await?;
        let succeeded = publication.is_some_and(|p| p.state == bridge::reports::PublicationState::Published);
        return Ok(Some(Verdict { job: "page", succeeded }));
    }
    if letter.detail_type == ReportIssuesCreated::DETAIL_TYPE {
        return Ok(Some(Verdict { job: "links", succeeded: false }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_tables_publish_page_routes() {
        router().check().unwrap();
    }
}
