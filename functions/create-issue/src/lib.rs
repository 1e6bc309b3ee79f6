//! `create-issue`: action items → Jira issues (HTTP `POST /v1/tenants/{tenant}/issues` and the
//! `Action Items Ready` event), and `DELETE /v1/tenants/{tenant}/issues/{key}` for issues this
//! system created for the tenant.

use std::sync::Arc;
use std::time::Duration;

use bridge::access::Connector;
use bridge::api::{Function, Router, routes};
use bridge::app::{App, Job};
use bridge::atlassian::Class;
use bridge::atlassian::jira::issues;
use bridge::caller::Caller;
use bridge::config::SearchIndex;
use bridge::domain::{Product, TenantId};
use bridge::error::{ApiError, ErrorCode};
use bridge::events::{Delivery, EventBus};
use bridge::http::{self, HttpResponse, Input};
use bridge::ids::{IssueKey, IssueTypeId, ProjectKey};
use bridge::issues::{ActionItemsReady, CreateContext, IssueJob, IssuesCreated, IssuesRequest, Lookups, create_screen};
use bridge::jobs::JobOutcome;
use bridge::markers::Markers;
use bridge::settings::JiraSettings;
use bridge::store::{IssueLedger, LookupCache, SettingsStore};
use lambda_http::http::StatusCode;

/// What the HTTP routes use, built once at cold start.
pub struct Context {
    settings: Arc<dyn SettingsStore>,
    connector: Arc<Connector>,
    issues: Arc<dyn IssueLedger>,
    lookups: Arc<dyn LookupCache>,
    lease: Duration,
    search_index: SearchIndex,
    markers: Arc<Markers>,
}

impl Context {
    pub fn new(app: &App) -> Self {
        Self {
            settings: app.settings.clone(),
            connector: app.connector.clone(),
            issues: app.issues.clone(),
            lookups: app.lookups.clone(),
            lease: app.config.job_lease,
            search_index: app.config.search_index,
            markers: app.markers.clone(),
        }
    }

    fn issuer(&self) -> Issuer<'_> {
        Issuer {
            settings: self.settings.as_ref(),
            connector: &self.connector,
            issues: self.issues.as_ref(),
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
    lookups: &'a dyn LookupCache,
    lease: Duration,
    search_index: SearchIndex,
    markers: &'a Markers,
}

pub fn router() -> Router<Context> {
    Router::new(Function::CreateIssue)
        .route(&routes::CREATE_ISSUES, |cx: Arc<Context>, caller, input| async move {
            create(&cx.issuer(), &caller, &input.idempotency_key()?, input.body()?).await
        })
        .route(&routes::DELETE_ISSUE, |cx: Arc<Context>, caller, input| async move {
            delete(cx.issues.as_ref(), &cx.connector, &caller, &input).await
        })
}

async fn create(
    issuer: &Issuer<'_>,
    caller: &Caller,
    idempotency_key: &str,
    request: IssuesRequest,
) -> Result<HttpResponse, ApiError> {
    request.validate()?;
    let created = create_issues(issuer, &caller.tenant, idempotency_key, request).await?;
    Ok(http::json(StatusCode::OK, &created))
}

/// Creates the issues of one request or event. Errors are for the whole job (not connected, no
/// settings); per-item failures are in the results.
async fn create_issues(
    issuer: &Issuer<'_>,
    tenant: &TenantId,
    idempotency_key: &str,
    request: IssuesRequest,
) -> Result<IssuesCreated, ApiError> {
    let stored: Option<JiraSettings> = match issuer.settings.get_settings(tenant, Product::Jira).await? {
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
    let session = issuer.connector.session(tenant, Product::Jira).await?;
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
    let job = IssueJob {
        ctx: CreateContext {
            session: &session,
            tenant: tenant.as_str(),
            settings: &settings,
            fields: &fields,
            retrospective: request.retrospective.as_ref(),
            markers: issuer.markers,
        },
        ledger: issuer.issues,
        cache: issuer.lookups,
        tenant,
        lease: issuer.lease,
        search_index: issuer.search_index,
    };
    let results = job.run(&request.action_items).await?;
    let created = results.iter().filter(|r| r.status == bridge::issues::ItemStatus::Created).count();
    tracing::info!(items = results.len(), created, "action items processed");
    Ok(IssuesCreated { tenant_id: tenant.to_string(), idempotency_key: idempotency_key.to_owned(), results })
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

/// `Action Items Ready`: creates the issues, emits `Issues Created`; emits `Publish Failed` and
/// asks for a redelivery when a retryable failure remains.
pub async fn on_event(cx: Arc<Context>, bus: Arc<dyn EventBus>, delivery: Delivery) -> JobOutcome<()> {
    bridge::app::run_event(bus.as_ref(), delivery, "issues", |job: Job<ActionItemsReady>| async move {
        let request = job.detail.request();
        if let Err(e) = request.validate() {
            return JobOutcome::Failed(e);
        }
        match create_issues(&cx.issuer(), &job.tenant, &job.idempotency_key, request).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_tables_create_issue_routes() {
        router().check().unwrap();
    }
}
