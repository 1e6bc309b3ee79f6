//! `create-issue`: action items → Jira issues (HTTP `POST /v1/tenants/{tenant}/issues` and the
//! `Action Items Ready` event), `DELETE /v1/tenants/{tenant}/issues/{key}` for issues this
//! system created for the tenant, the read model of what it created
//! (`GET /v1/tenants/{tenant}/action-items`, from the ledger it already holds), the edits forward
//! (`PATCH /v1/tenants/{tenant}/action-items/{id}` and the `Action Items Changed` event), and the jobs an HTTP request could not finish in its budget
//! (`202`, `Action Items Deferred` parts, `GET /v1/tenants/{tenant}/jobs/{job}`); and the links
//! from issues to their report's page (`links.rs`: remote links, `Report Issues Created`, and the
//! bridge's own `Page Published`).

mod links;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge::access::Connector;
use bridge::api::{Function, Router, routes};
use bridge::app::{App, DeadLetter, Job, Verdict};
use bridge::atlassian::Class;
use bridge::atlassian::jira::{issues, meta};
use bridge::caller::Caller;
use bridge::config::SearchIndex;
use bridge::domain::{Product, TenantId};
use bridge::error::{ApiError, ErrorCode};
use bridge::events::{Delivery, DetailType, EventBus};
use bridge::http::{self, HttpResponse, Input};
use bridge::ids::{IssueKey, IssueTypeId, ItemId, ProjectKey};
use bridge::issues::edit::{
    self, ActionItemEdit, ActionItemsChanged, ActionItemsEdited, ChangeResult, EditStatus, Editor,
};
use bridge::issues::read::Listing;
use bridge::issues::{
    ActionItem, ActionItemsDeferred, ActionItemsReady, BULK_CHUNK, BULK_IN_FLIGHT, CreateContext, IssueJob,
    IssuesCreated, IssuesJob, IssuesRequest, ItemResult, JobStatus, Lookups, create_screen,
};
use bridge::jobs::JobOutcome;
use bridge::markers::Markers;
use bridge::reports::PagePublished;
use bridge::settings::{AssigneeMatching, JiraSettings};
use bridge::store::{ConnectionStore, IssueJobStore, IssueLedger, LookupCache, PublicationStore, SettingsStore};
use lambda_http::http::{StatusCode, header};

/// An HTTP job runs in slices of one round of bulk calls (4 × 50 items), and measures itself
/// after each: the next slice starts only if, at the rate so far, it ends inside the budget.
const SLICE: usize = BULK_CHUNK * BULK_IN_FLIGHT;
/// A deferred part holds at most two bulk calls' worth of items (so it finishes well inside the
/// function's timeout, and parts run side by side) ...
const PART_ITEMS: usize = 2 * BULK_CHUNK;
/// ... and at most this much JSON: EventBridge takes 256 KB per event.
const PART_BYTES: usize = 200 * 1024;

/// What the HTTP routes use, built once at cold start.
pub struct Context {
    settings: Arc<dyn SettingsStore>,
    connector: Arc<Connector>,
    issues: Arc<dyn IssueLedger>,
    sync: Arc<dyn bridge::store::IssueSyncStore>,
    lookups: Arc<dyn LookupCache>,
    lease: Duration,
    search_index: SearchIndex,
    markers: Arc<Markers>,
    jobs: Arc<dyn IssueJobStore>,
    bus: Option<Arc<dyn EventBus>>,
    budget: Duration,
    publications: Arc<dyn PublicationStore>,
    connections: Arc<dyn ConnectionStore>,
}

impl Context {
    pub fn new(app: &App) -> Self {
        Self {
            settings: app.settings.clone(),
            connector: app.connector.clone(),
            issues: app.issues.clone(),
            sync: app.sync.clone(),
            lookups: app.lookups.clone(),
            lease: app.config.job_lease,
            search_index: app.config.search_index,
            markers: app.markers.clone(),
            jobs: app.jobs.clone(),
            bus: app.events.clone(),
            budget: app.config.issue_job_budget,
            publications: app.publications.clone(),
            connections: app.connections.clone(),
        }
    }

    fn linker(&self) -> links::Linker<'_> {
        links::Linker {
            publications: self.publications.as_ref(),
            ledger: self.issues.as_ref(),
            connections: self.connections.as_ref(),
        }
    }

    fn issuer(&self) -> Issuer<'_> {
        Issuer {
            settings: self.settings.as_ref(),
            connector: &self.connector,
            issues: self.issues.as_ref(),
            sync: self.sync.as_ref(),
            lookups: self.lookups.as_ref(),
            lease: self.lease,
            search_index: self.search_index,
            markers: &self.markers,
        }
    }
}

/// What creating issues uses, for a request or an event alike.
struct Issuer<'a> {
    settings: &'a dyn SettingsStore,
    connector: &'a Connector,
    issues: &'a dyn IssueLedger,
    sync: &'a dyn bridge::store::IssueSyncStore,
    lookups: &'a dyn LookupCache,
    lease: Duration,
    search_index: SearchIndex,
    markers: &'a Markers,
}

pub fn router() -> Router<Context> {
    Router::new(Function::CreateIssue)
        .route(&routes::CREATE_ISSUES, |cx: Arc<Context>, caller, input| async move {
            create(&cx, &caller, &input.idempotency_key()?, input.body()?).await
        })
        .route(&routes::GET_ISSUE_JOB, |cx: Arc<Context>, caller, input| async move {
            job(cx.jobs.as_ref(), &caller, &input.path("job")?).await
        })
        .route(&routes::DELETE_ISSUE, |cx: Arc<Context>, caller, input| async move {
            delete(cx.issues.as_ref(), &cx.connector, &caller, &input).await
        })
        .route(&routes::LIST_ACTION_ITEMS, |cx: Arc<Context>, caller, input| async move {
            list_items(&cx, &caller, &input).await
        })
        .route(&routes::EDIT_ACTION_ITEM, |cx: Arc<Context>, caller, input| async move {
            let item_id = ItemId::new(input.path("id")?);
            edit_item(&cx, &caller.tenant, &item_id, input.body()?).await
        })
}

async fn create(
    cx: &Context,
    caller: &Caller,
    idempotency_key: &str,
    request: IssuesRequest,
) -> Result<HttpResponse, ApiError> {
    request.validate()?;
    let started = Instant::now();
    let issuer = cx.issuer();
    let prepared = prepare(&issuer, &caller.tenant, &request).await?;
    let job = prepared.job(&issuer, &caller.tenant, request.retrospective.as_ref());
    let mut results: Vec<ItemResult> = Vec::new();
    let mut rest: &[ActionItem] = &request.action_items;
    while !rest.is_empty() {
        if !results.is_empty() && !fits(started.elapsed(), results.len(), rest.len().min(SLICE), cx.budget) {
            break;
        }
        let (slice, after) = rest.split_at(rest.len().min(SLICE));
        results.extend(job.run(slice).await?);
        rest = after;
    }
    log_processed(&results);
    // The links are extras: an HTTP answer reports the issues it created even when they failed.
    if let Err(e) =
        cx.linker().after_job(&prepared.session, cx.bus.as_deref(), &caller.tenant, idempotency_key, &mut results).await
    {
        tracing::warn!(error = %e, "the links between the issues and their report page were not all made");
    }
    if rest.is_empty() {
        let created = IssuesCreated {
            tenant_id: caller.tenant.to_string(),
            idempotency_key: idempotency_key.to_owned(),
            job_id: None,
            results,
        };
        return Ok(http::json(StatusCode::OK, &created));
    }
    defer(cx, &caller.tenant, idempotency_key, &request, results, rest).await
}

/// Whether `next` more items, at the rate of the `done` so far, end inside `budget`.
fn fits(elapsed: Duration, done: usize, next: usize, budget: Duration) -> bool {
    let per_item = elapsed.as_secs_f64() / done.max(1) as f64;
    elapsed.as_secs_f64() + per_item * next as f64 <= budget.as_secs_f64()
}

/// Accepts the rest of a job with `202`: records the job with what this request did, sends each
/// part of the rest to this function as an `Action Items Deferred` event, and answers with the
/// results so far and where to find the rest. The items deferred were never claimed, so if a
/// part cannot be sent the request fails as a whole (retryable) and the caller's retry, with the
/// same idempotency key, is exactly-once like any other: nothing accepted is lost.
async fn defer(
    cx: &Context,
    tenant: &TenantId,
    idempotency_key: &str,
    request: &IssuesRequest,
    results: Vec<ItemResult>,
    rest: &[ActionItem],
) -> Result<HttpResponse, ApiError> {
    let bus = cx.bus.as_ref().ok_or_else(|| {
        tracing::error!("no event bus configured: an issue job cannot be deferred");
        ApiError::internal()
    })?;
    let job_id = uuid::Uuid::new_v4().to_string();
    let parts = parts(rest);
    let first = serde_json::to_string(&results).map_err(|_| ApiError::internal())?;
    cx.jobs.accept_job(tenant, &job_id, idempotency_key, parts.len() as u32 + 1, &first).await?;
    for (n, items) in parts.iter().enumerate() {
        let detail = ActionItemsDeferred {
            tenant_id: tenant.to_string(),
            idempotency_key: idempotency_key.to_owned(),
            job_id: job_id.clone(),
            part: n as u32 + 1,
            project_key: request.project_key.clone(),
            issue_type_id: request.issue_type_id.clone(),
            retrospective: request.retrospective.clone(),
            action_items: items.to_vec(),
        };
        let detail = serde_json::to_value(&detail).map_err(|_| ApiError::internal())?;
        bus.publish("Action Items Deferred", &detail).await.map_err(|e| {
            tracing::error!(error = %e, job = %job_id, part = n + 1, "a deferred part could not be sent");
            ApiError::internal()
        })?;
    }
    tracing::info!(job = %job_id, done = results.len(), deferred = rest.len(), parts = parts.len(), "issue job accepted");
    let accepted = IssuesJob {
        tenant_id: tenant.to_string(),
        idempotency_key: idempotency_key.to_owned(),
        job_id: job_id.clone(),
        status: JobStatus::Running,
        reason: None,
        pending_parts: parts.len() as u32,
        results,
    };
    let mut response = http::json(StatusCode::ACCEPTED, &accepted);
    if let Ok(location) = format!("/v1/tenants/{tenant}/jobs/{job_id}").parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The deferred items in parts of at most [`PART_ITEMS`] items and [`PART_BYTES`] of JSON, in
/// order (one item is at most ~130 KB: its limits are checked on the way in).
fn parts(items: &[ActionItem]) -> Vec<&[ActionItem]> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let size = serde_json::to_vec(item).map(|v| v.len()).unwrap_or(PART_BYTES);
        if i > start && (i - start == PART_ITEMS || bytes + size > PART_BYTES) {
            parts.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        parts.push(&items[start..]);
    }
    parts
}

/// `GET /v1/tenants/{tenant}/jobs/{job}`.
async fn job(jobs: &dyn IssueJobStore, caller: &Caller, job_id: &str) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(ErrorCode::NotFound, format!("no issue job {job_id} for this tenant"));
    if uuid::Uuid::parse_str(job_id).is_err() {
        return Err(not_found());
    }
    let record = jobs.job(&caller.tenant, job_id).await?.ok_or_else(not_found)?;
    let mut results = Vec::new();
    let mut reason = None;
    for part in record.results.values() {
        let part = match serde_json::from_str::<Vec<ItemResult>>(part) {
            Ok(part) => part,
            Err(_) => {
                let dead: DeadPart = serde_json::from_str(part).map_err(|_| ApiError::internal())?;
                reason.get_or_insert(dead.dead_lettered);
                dead.results
            }
        };
        results.extend(part);
    }
    let pending_parts = record.parts.saturating_sub(record.results.len() as u32);
    let status = match (&reason, pending_parts) {
        (Some(_), _) => JobStatus::Failed,
        (None, 0) => JobStatus::Done,
        (None, _) => JobStatus::Running,
    };
    let view = IssuesJob {
        tenant_id: caller.tenant.to_string(),
        idempotency_key: record.idempotency_key,
        job_id: job_id.to_owned(),
        status,
        pending_parts,
        results,
        reason,
    };
    Ok(http::json(StatusCode::OK, &view))
}

fn log_processed(results: &[ItemResult]) {
    let created = results.iter().filter(|r| r.status == bridge::issues::ItemStatus::Created).count();
    tracing::info!(items = results.len(), created, "action items processed");
}

/// What every slice of a job shares: the connection's session, the resolved settings and the
/// create screen's fields.
struct Prepared {
    session: bridge::atlassian::Session,
    settings: JiraSettings,
    fields: Vec<meta::CreateMetaField>,
}

impl Prepared {
    fn job<'a>(
        &'a self,
        issuer: &'a Issuer<'a>,
        tenant: &'a TenantId,
        retrospective: Option<&'a bridge::issues::RetrospectiveRef>,
    ) -> IssueJob<'a> {
        IssueJob {
            ctx: CreateContext {
                session: &self.session,
                tenant: tenant.as_str(),
                settings: &self.settings,
                fields: &self.fields,
                retrospective,
                markers: issuer.markers,
            },
            ledger: issuer.issues,
            cache: issuer.lookups,
            tenant,
            lease: issuer.lease,
            search_index: issuer.search_index,
        }
    }
}

/// Creates the issues of one event (or part), with no budget: an event has the function's
/// whole timeout. Errors are for the whole job (not connected, no settings); per-item failures
/// are in the results.
async fn create_issues(
    cx: &Context,
    bus: &dyn EventBus,
    tenant: &TenantId,
    idempotency_key: &str,
    request: IssuesRequest,
) -> Result<IssuesCreated, ApiError> {
    let issuer = cx.issuer();
    let prepared = prepare(&issuer, tenant, &request).await?;
    let mut results = prepared.job(&issuer, tenant, request.retrospective.as_ref()).run(&request.action_items).await?;
    log_processed(&results);
    cx.linker().after_job(&prepared.session, Some(bus), tenant, idempotency_key, &mut results).await?;
    Ok(IssuesCreated {
        tenant_id: tenant.to_string(),
        idempotency_key: idempotency_key.to_owned(),
        job_id: None,
        results,
    })
}

/// The settings (the request may name another project and issue type), the session and the
/// create screen's fields, or why the job cannot run at all.
async fn prepare(issuer: &Issuer<'_>, tenant: &TenantId, request: &IssuesRequest) -> Result<Prepared, ApiError> {
    let stored: Option<JiraSettings> = match issuer.settings.get_settings(tenant, Product::Jira).await? {
        Some(stored) => Some(serde_json::from_value(stored).map_err(|_| ApiError::internal())?),
        None => None,
    };
    // Field defaults, labels and assignee matching still come from the settings.
    let settings = match (stored, request.project_key.clone(), request.issue_type_id.clone()) {
        (Some(saved), project, issue_type) => JiraSettings {
            project_key: project.unwrap_or(saved.project_key),
            issue_type_id: issue_type.unwrap_or(saved.issue_type_id),
            ..saved
        },
        (None, Some(project_key), Some(issue_type_id)) => JiraSettings {
            project_key,
            issue_type_id,
            field_defaults: Default::default(),
            assignee_matching: Default::default(),
            labels: Vec::new(),
        },
        (None, _, _) => {
            return Err(ApiError::new(
                ErrorCode::NoSettings,
                "save the Jira settings first, or pass project_key and issue_type_id in the request",
            ));
        }
    };
    settings.validate()?;
    let session = issuer.connector.session(tenant, Product::Jira).await?;
    // Before any issue exists: the issue sync then follows every issue this job creates.
    issuer.sync.enroll(tenant).await?;
    let (project, issue_type) = (ProjectKey::new(&settings.project_key), IssueTypeId::new(&settings.issue_type_id));
    // Settings are read fresh above on every job (a saved change applies to the next one); the
    // create screen may come from an earlier job's answer, minutes old at most.
    let lookups = Lookups { cache: issuer.lookups, tenant, markers: issuer.markers };
    let fields = match create_screen(&session, &lookups, &project, &issue_type).await {
        Ok(fields) => fields,
        // Jira answers createmeta for a project or issue type it does not have with 400 or 404.
        Err(e) if e.is(Class::BadRequest) || e.is(Class::NotFound) => {
            return Err(ApiError::new(
                ErrorCode::UnknownProjectOrIssueType,
                format!("project {} has no issue type {} to create", settings.project_key, settings.issue_type_id),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Prepared { session, settings, fields })
}

async fn delete(
    ledger: &dyn IssueLedger,
    connector: &Connector,
    caller: &Caller,
    input: &Input,
) -> Result<HttpResponse, ApiError> {
    let key = IssueKey::new(input.path("key")?);
    let delete_subtasks = match input.query("delete_subtasks").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::new(ErrorCode::InvalidRequest, "delete_subtasks must be true or false")),
    };
    let item = ledger.item_for_key(&caller.tenant, &key).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::NotOurs, format!("{key} was not created by this integration for this tenant"))
    })?;
    let session = connector.session(&caller.tenant, Product::Jira).await?;
    // A key is only unique within a site: after a re-connect to another site, the same key may
    // name someone else's issue there.
    if item.site.as_ref().is_some_and(|site| site != session.site_id()) {
        return Err(ApiError::new(
            ErrorCode::IssueOnAnotherSite,
            format!("{key} was created on the site connected before, not on the one connected now; it is left alone"),
        ));
    }
    match issues::delete(&session, &key, delete_subtasks).await {
        Ok(_) => {}
        Err(e) if e.is(Class::NotFound) => {}
        Err(e) if e.is(Class::BadRequest) && !delete_subtasks => {
            return Err(ApiError::new(
                ErrorCode::HasSubtasks,
                format!(
                    "Jira refused to delete {key}: {}; pass delete_subtasks=true to delete its subtasks too",
                    e.atlassian_message().unwrap_or_default()
                ),
            ));
        }
        // A 403 (no Delete permission) is answered as such; the connection stays connected.
        Err(e) => return Err(e.into()),
    }
    ledger.mark_deleted(&caller.tenant, &key, &item.item_id).await?;
    tracing::info!(key = %key, "issue deleted");
    Ok(http::no_content())
}

/// `GET /v1/tenants/{tenant}/action-items`: one page of the ledger's created items.
async fn list_items(cx: &Context, caller: &Caller, input: &Input) -> Result<HttpResponse, ApiError> {
    let q = |name: &str| input.query(name);
    let (report, category, cursor, limit) = (q("report_id"), q("status_category"), q("cursor"), q("limit"));
    let listing = Listing::parse(
        &cx.markers,
        &caller.tenant,
        report.as_deref(),
        category.as_deref(),
        cursor.as_deref(),
        limit.as_deref(),
    )?;
    let page = cx.issues.list_items(&caller.tenant, &listing.filter, listing.after.as_ref(), listing.limit).await?;
    Ok(http::json(StatusCode::OK, &listing.answer(&cx.markers, &caller.tenant, page)))
}

/// `PATCH /v1/tenants/{tenant}/action-items/{id}`: one edit (see `bridge::issues::edit`).
async fn edit_item(
    cx: &Context,
    tenant: &TenantId,
    item_id: &ItemId,
    edit: ActionItemEdit,
) -> Result<HttpResponse, ApiError> {
    edit.validate()?;
    // Our records first: an item we never created needs no connection to be answered.
    let item = edit::created_item(cx.issues.as_ref(), tenant, item_id).await?;
    let (session, match_emails) = edit_session(cx, tenant).await?;
    let edited = editor(cx, tenant, &session, match_emails).apply(&item, &edit).await?;
    Ok(http::json(StatusCode::OK, &edited))
}

/// The session edits run in, and whether the tenant's settings match assignees by email.
async fn edit_session(cx: &Context, tenant: &TenantId) -> Result<(bridge::atlassian::Session, bool), ApiError> {
    let settings: Option<JiraSettings> = match cx.settings.get_settings(tenant, Product::Jira).await? {
        Some(stored) => Some(serde_json::from_value(stored).map_err(|_| ApiError::internal())?),
        None => None,
    };
    let match_emails = settings.is_some_and(|s| s.assignee_matching == AssigneeMatching::Email);
    Ok((cx.connector.session(tenant, Product::Jira).await?, match_emails))
}

fn editor<'a>(
    cx: &'a Context,
    tenant: &'a TenantId,
    session: &'a bridge::atlassian::Session,
    match_emails: bool,
) -> Editor<'a> {
    Editor {
        session,
        ledger: cx.issues.as_ref(),
        lookups: Lookups { cache: cx.lookups.as_ref(), tenant, markers: &cx.markers },
        match_emails,
    }
}

/// `Action Items Changed`: each change as the `PATCH` route would apply it, in order, answered
/// with one `Action Items Edited`. Once per idempotency key: the results are kept (a week, as
/// issue jobs are) and a redelivery answers them without asking Jira. A retryable failure (Jira
/// busy) asks for a redelivery before anything is kept; the changes applied already are then
/// found unchanged (an edit sends only what differs from Jira), so nothing is written twice.
async fn edit_for_event(
    cx: &Context,
    tenant: &TenantId,
    idempotency_key: &str,
    changed: ActionItemsChanged,
) -> JobOutcome<ActionItemsEdited, ApiError> {
    if let Err(e) = changed.validate() {
        return JobOutcome::Failed(e);
    }
    // Named by a keyed digest: the key is the caller's, any characters and length.
    let record = format!("EDITS-{}", cx.markers.lookup_digest(&["edits", idempotency_key]));
    let answer = |results| ActionItemsEdited {
        tenant_id: tenant.to_string(),
        idempotency_key: idempotency_key.to_owned(),
        results,
    };
    match cx.jobs.job(tenant, &record).await {
        Ok(Some(done)) => {
            let stored = done.results.get(&0).map(|r| serde_json::from_str::<Vec<ChangeResult>>(r));
            match stored {
                Some(Ok(results)) => {
                    tracing::info!(changes = results.len(), "edits answered from the first delivery");
                    return JobOutcome::Done(answer(results));
                }
                _ => return JobOutcome::Stopped(ApiError::internal()),
            }
        }
        Ok(None) => {}
        Err(e) => return JobOutcome::Stopped(e.into()),
    }
    let (session, match_emails) = match edit_session(cx, tenant).await {
        Ok(found) => found,
        Err(e) => return JobOutcome::Stopped(e),
    };
    let editor = editor(cx, tenant, &session, match_emails);
    let mut results = Vec::with_capacity(changed.changes.len());
    for change in &changed.changes {
        let item_id = ItemId::new(change.action_item_id.clone());
        let outcome = match edit::created_item(cx.issues.as_ref(), tenant, &item_id).await {
            Ok(item) => editor.apply(&item, &change.edit()).await,
            Err(e) => Err(e),
        };
        results.push(ChangeResult::of(&change.action_item_id, outcome));
    }
    let retry = results.iter().filter(|r| r.retryable).count();
    if retry > 0 {
        let reason = format!("{retry} change(s) hit a temporary failure and will be retried");
        return JobOutcome::Stopped(ApiError::new(ErrorCode::UpstreamError, reason));
    }
    let Ok(kept) = serde_json::to_string(&results) else { return JobOutcome::Stopped(ApiError::internal()) };
    if let Err(e) = cx.jobs.accept_job(tenant, &record, idempotency_key, 1, &kept).await {
        return JobOutcome::Stopped(e.into());
    }
    let edited = results.iter().filter(|r| r.status == EditStatus::Edited).count();
    tracing::info!(changes = results.len(), edited, "action item edits applied");
    JobOutcome::Done(answer(results))
}

/// `Action Items Ready`: creates the issues, emits `Issues Created`; emits `Publish Failed` and
/// asks for a redelivery when a retryable failure remains. `Action Items Deferred` (a part of a
/// job answered with 202): the same, and the part's final results go into the job.
pub async fn on_event(cx: Arc<Context>, bus: Arc<dyn EventBus>, delivery: Delivery) -> JobOutcome<()> {
    let edits = matches!(&delivery.event, Ok(envelope) if envelope.detail_type == ActionItemsChanged::DETAIL_TYPE);
    if edits {
        return bridge::app::run_event(bus.as_ref(), delivery, "edits", |job: Job<ActionItemsChanged>| async move {
            edit_for_event(&cx, &job.tenant, &job.idempotency_key, job.detail).await
        })
        .await;
    }
    let published = matches!(&delivery.event, Ok(envelope) if envelope.detail_type == PagePublished::DETAIL_TYPE);
    if published {
        return bridge::app::run_event(bus.as_ref(), delivery, "links", |job: Job<PagePublished>| async move {
            cx.linker().page_published(&cx.connector, &job.tenant, &job.idempotency_key, &job.detail).await
        })
        .await;
    }
    // What the jobs emit besides their outcome (`Report Issues Created`).
    let out = bus.clone();
    let deferred = matches!(&delivery.event, Ok(envelope) if envelope.detail_type == "Action Items Deferred");
    if deferred {
        return bridge::app::run_event(bus.as_ref(), delivery, "issues", |job: Job<ActionItemsDeferred>| async move {
            let (job_id, part) = (job.detail.job_id.clone(), job.detail.part);
            let outcome =
                create_for_event(&cx, out.as_ref(), &job.tenant, &job.idempotency_key, job.detail.request()).await;
            let JobOutcome::Done(mut created) = outcome else { return outcome };
            // Only final results are recorded (the first write wins); a retryable one was
            // answered with a redelivery above.
            let results = match serde_json::to_string(&created.results) {
                Ok(results) => results,
                Err(_) => return JobOutcome::Stopped(ApiError::internal()),
            };
            if let Err(e) = cx.jobs.record_part(&job.tenant, &job_id, part, &results).await {
                return JobOutcome::Stopped(e.into());
            }
            created.job_id = Some(job_id);
            JobOutcome::Done(created)
        })
        .await;
    }
    bridge::app::run_event(bus.as_ref(), delivery, "issues", |job: Job<ActionItemsReady>| async move {
        create_for_event(&cx, out.as_ref(), &job.tenant, &job.idempotency_key, job.detail.request()).await
    })
    .await
}

/// A part of a job whose event was dead-lettered, as the job record keeps it: why, and each
/// item's result (`existing` for those another delivery created, `failed` for the rest).
#[derive(serde::Serialize, serde::Deserialize)]
struct DeadPart {
    dead_lettered: String,
    results: Vec<ItemResult>,
}

/// Whether a dead-lettered event's job has in fact succeeded (`bridge::app::settle_dead_letter`):
/// issues whose every action item has an issue in the ledger, or edits whose answer is recorded,
/// were finished by another delivery (or a redrive). A dead-lettered part of a 202 job is
/// recorded on the job (`GET .../jobs/{job}` then says `failed`, with the reason). Links
/// updates have no record to ask: they are reported.
pub async fn dead_letter(cx: Arc<Context>, letter: DeadLetter) -> Result<Option<Verdict>, ApiError> {
    let (tenant, key) = (&letter.tenant, letter.idempotency_key.as_str());
    match letter.detail_type.as_str() {
        t if t == ActionItemsChanged::DETAIL_TYPE => {
            let record = format!("EDITS-{}", cx.markers.lookup_digest(&["edits", key]));
            let succeeded = cx.jobs.job(tenant, &record).await?.is_some();
            Ok(Some(Verdict { job: "edits", succeeded }))
        }
        t if t == PagePublished::DETAIL_TYPE => Ok(Some(Verdict { job: "links", succeeded: false })),
        t if t == ActionItemsReady::DETAIL_TYPE || t == ActionItemsDeferred::DETAIL_TYPE => {
            let items: Vec<ActionItem> = match letter.detail.get("action_items").cloned() {
                Some(items) => serde_json::from_value(items).unwrap_or_default(),
                None => Vec::new(),
            };
            let mut results = Vec::with_capacity(items.len());
            for item in &items {
                let created = cx.issues.issue_for_item(tenant, &ItemId::new(item.id.clone())).await?;
                results.push(match created {
                    Some(created) if !created.deleted => ItemResult {
                        action_item_id: item.id.clone(),
                        status: bridge::issues::ItemStatus::Existing,
                        key: Some(created.key.to_string()),
                        url: None,
                        message: None,
                        retryable: false,
                        report_id: None,
                    },
                    _ => ItemResult {
                        action_item_id: item.id.clone(),
                        status: bridge::issues::ItemStatus::Failed,
                        key: None,
                        url: None,
                        message: Some("not created: the part's event is in the dead-letter queue".into()),
                        retryable: false,
                        report_id: None,
                    },
                });
            }
            let succeeded =
                !items.is_empty() && results.iter().all(|r| r.status == bridge::issues::ItemStatus::Existing);
            let job = letter.detail.get("job_id").and_then(|v| v.as_str());
            let part = letter.detail.get("part").and_then(|v| v.as_u64()).and_then(|p| u32::try_from(p).ok());
            if let (false, Some(job), Some(part)) = (succeeded, job, part) {
                let dead = DeadPart {
                    dead_lettered: "gave up: the part's event failed on every delivery and is in the create-issue \
                        dead-letter queue; a redrive of it may still create its issues"
                        .into(),
                    results,
                };
                let Ok(dead) = serde_json::to_string(&dead) else { return Err(ApiError::internal()) };
                cx.jobs.record_part(tenant, job, part, &dead).await?;
            }
            Ok(Some(Verdict { job: "issues", succeeded }))
        }
        _ => Ok(None),
    }
}

async fn create_for_event(
    cx: &Context,
    bus: &dyn EventBus,
    tenant: &TenantId,
    idempotency_key: &str,
    request: IssuesRequest,
) -> JobOutcome<IssuesCreated, ApiError> {
    if let Err(e) = request.validate() {
        return JobOutcome::Failed(e);
    }
    match create_issues(cx, bus, tenant, idempotency_key, request).await {
        Ok(created) => {
            let retry = created.results.iter().filter(|r| r.retryable).count();
            if retry > 0 {
                let reason = format!("{retry} action item(s) hit a temporary failure and will be retried");
                return JobOutcome::Stopped(ApiError::new(ErrorCode::UpstreamError, reason));
            }
            JobOutcome::Done(created)
        }
        Err(e) => JobOutcome::Stopped(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_tables_create_issue_routes() {
        router().check().unwrap();
    }

    fn item(n: usize, description: usize) -> ActionItem {
        serde_json::from_value(serde_json::json!({
            "id": format!("item-{n}"), "title": "Follow up", "description": "x".repeat(description)
        }))
        .unwrap()
    }

    #[test]
    fn deferred_items_are_split_by_count_and_by_size_in_order() {
        let small: Vec<ActionItem> = (0..250).map(|n| item(n, 10)).collect();
        let sizes: Vec<usize> = parts(&small).iter().map(|p| p.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let large: Vec<ActionItem> = (0..10).map(|n| item(n, 60_000)).collect();
        let split = parts(&large);
        assert!(split.iter().all(|p| serde_json::to_vec(p).unwrap().len() <= PART_BYTES + 1024));
        let ids: Vec<&str> = split.iter().flat_map(|p| p.iter().map(|i| i.id.as_str())).collect();
        assert_eq!(ids, large.iter().map(|i| i.id.as_str()).collect::<Vec<_>>());
        assert!(parts(&[]).is_empty());
    }

    #[test]
    fn a_slice_starts_only_if_it_ends_inside_the_budget() {
        let budget = Duration::from_secs(20);
        // 200 items in 5 s: 200 more take ~5 s, ending at 10 s.
        assert!(fits(Duration::from_secs(5), 200, 200, budget));
        // 200 items in 12 s: 200 more end at ~24 s.
        assert!(!fits(Duration::from_secs(12), 200, 200, budget));
        assert!(!fits(Duration::from_millis(1), 200, 1, Duration::ZERO));
    }
}
