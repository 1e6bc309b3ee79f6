//! `create-issue`: action items → Jira issues (HTTP `POST /v1/tenants/{tenant}/issues` and the
//! `Action Items Ready` event), and `DELETE /v1/tenants/{tenant}/issues/{key}` for issues this
//! system created for the tenant.

use std::sync::Arc;

use bridge::app::{App, Job};
use bridge::atlassian::Class;
use bridge::atlassian::jira::{issues, meta};
use bridge::caller::{BridgeScope, authorize};
use bridge::domain::{Product, TenantId};
use bridge::error::{ApiError, ErrorCode};
use bridge::events::Delivery;
use bridge::http::{self, HttpResponse};
use bridge::ids::{IssueKey, IssueTypeId, ProjectKey};
use bridge::issues::{ActionItemsReady, CreateContext, IssueJob, IssuesCreated, IssuesRequest};
use bridge::jobs::JobOutcome;
use bridge::settings::JiraSettings;
use lambda_http::Request;
use lambda_http::http::StatusCode;

pub async fn handle(app: Arc<App>, req: Request) -> Result<HttpResponse, ApiError> {
    match http::route_key(&req) {
        Some("POST /v1/tenants/{tenant}/issues") => create(&app, &req).await,
        Some("DELETE /v1/tenants/{tenant}/issues/{key}") => delete(&app, &req).await,
        _ => Err(http::unknown_route()),
    }
}

async fn create(app: &App, req: &Request) -> Result<HttpResponse, ApiError> {
    let tenant = http::path_param(req, "tenant")?;
    let caller = authorize(req, &app.config.tenant_claim, &tenant, BridgeScope::Publish)?;
    let idempotency_key = http::idempotency_key(req)?;
    let request: IssuesRequest = http::json_body(req)?;
    request.validate()?;
    let created = run(app, &caller.tenant, &idempotency_key, request).await?;
    Ok(http::json(StatusCode::OK, &created))
}

/// Creates the issues of one request or event. Errors are for the whole job (not connected, no
/// settings); per-item failures are in the results.
async fn run(
    app: &App,
    tenant: &TenantId,
    idempotency_key: &str,
    request: IssuesRequest,
) -> Result<IssuesCreated, ApiError> {
    let stored: Option<JiraSettings> = match app.settings.get_settings(tenant, Product::Jira).await? {
        Some(stored) => Some(serde_json::from_value(stored).map_err(|_| ApiError::internal())?),
        None => None,
    };
    // The request may name another project and issue type; field defaults, labels and assignee
    // matching still come from the settings.
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
    let session = app.connector.session(tenant, Product::Jira).await?;
    let (project, issue_type) = (ProjectKey::new(&settings.project_key), IssueTypeId::new(&settings.issue_type_id));
    let fields = match meta::fields(&session, &project, &issue_type).await {
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
    let job = IssueJob {
        ctx: CreateContext {
            session: &session,
            tenant: tenant.as_str(),
            settings: &settings,
            fields: &fields,
            retrospective: request.retrospective.as_ref(),
            markers: &app.markers,
        },
        ledger: app.issues.as_ref(),
        tenant,
        lease: app.config.job_lease,
        search_index: app.config.search_index,
    };
    let results = job.run(&request.action_items).await?;
    let created = results.iter().filter(|r| r.status == bridge::issues::ItemStatus::Created).count();
    tracing::info!(items = results.len(), created, "action items processed");
    Ok(IssuesCreated { tenant_id: tenant.to_string(), idempotency_key: idempotency_key.to_owned(), results })
}

async fn delete(app: &App, req: &Request) -> Result<HttpResponse, ApiError> {
    let tenant = http::path_param(req, "tenant")?;
    let caller = authorize(req, &app.config.tenant_claim, &tenant, BridgeScope::Publish)?;
    let key = IssueKey::new(http::path_param(req, "key")?);
    let delete_subtasks = match http::query_param(req, "delete_subtasks").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::new(ErrorCode::InvalidRequest, "delete_subtasks must be true or false")),
    };
    let item = app.issues.item_for_key(&caller.tenant, &key).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::NotOurs, format!("{key} was not created by this integration for this tenant"))
    })?;
    let session = app.connector.session(&caller.tenant, Product::Jira).await?;
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
    app.issues.mark_deleted(&caller.tenant, &key, &item.item_id).await?;
    tracing::info!(key = %key, "issue deleted");
    Ok(http::no_content())
}

/// `Action Items Ready`: creates the issues, emits `Issues Created`; emits `Publish Failed` and
/// asks for a redelivery when a retryable failure remains.
pub async fn on_event(app: Arc<App>, delivery: Delivery) -> JobOutcome<()> {
    bridge::app::run_event(app, delivery, "issues", |app, job: Job<ActionItemsReady>| async move {
        let request = job.detail.request();
        if let Err(e) = request.validate() {
            return JobOutcome::Failed(e);
        }
        match run(&app, &job.tenant, &job.idempotency_key, request).await {
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
    })
    .await
}
