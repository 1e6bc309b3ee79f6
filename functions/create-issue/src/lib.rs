//! `create-issue`: action items → Jira issues (HTTP `POST /v1/tenants/{tenant}/issues` and the
//! `Action Items Ready` event), and `DELETE /v1/tenants/{tenant}/issues/{key}` for issues this
//! system created for the tenant.

use std::sync::Arc;

use bridge::app::{App, EventOutcome};
use bridge::atlassian::jira::{create_meta_fields, encode};
use bridge::atlassian::{AtlassianError, Payload};
use bridge::caller::{BridgeScope, authorize};
use bridge::domain::{Product, TenantId};
use bridge::error::ApiError;
use bridge::events::{Delivery, PublishFailed};
use bridge::http::{self, HttpResponse};
use bridge::issues::{ActionItemsReady, CreateContext, IssueJob, IssuesCreated, IssuesRequest};
use bridge::settings::JiraSettings;
use lambda_http::Request;
use lambda_http::http::StatusCode;
use tracing::Instrument;

pub async fn handle(app: Arc<App>, req: Request) -> HttpResponse {
    let span = tracing::info_span!("request", tenant = tracing::field::Empty);
    async {
        let result = match http::route_key(&req) {
            Some("POST /v1/tenants/{tenant}/issues") => create(&app, &req).await,
            Some("DELETE /v1/tenants/{tenant}/issues/{key}") => delete(&app, &req).await,
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
    let mut settings: JiraSettings = match app.settings.get_settings(tenant, Product::Jira).await? {
        Some(stored) => serde_json::from_value(stored).map_err(|_| ApiError::internal())?,
        None if request.project_key.is_some() && request.issue_type_id.is_some() => JiraSettings {
            project_key: String::new(),
            issue_type_id: String::new(),
            field_defaults: Default::default(),
            assignee_matching: Default::default(),
            labels: Vec::new(),
        },
        None => {
            return Err(ApiError::conflict(
                "no_settings",
                "save the Jira settings first, or pass project_key and issue_type_id in the request",
            ));
        }
    };
    if let Some(project) = &request.project_key {
        settings.project_key = project.clone();
    }
    if let Some(issue_type) = &request.issue_type_id {
        settings.issue_type_id = issue_type.clone();
    }
    let session = app.connector.session(tenant, Product::Jira).await?;
    let fields = match create_meta_fields(&session, &settings.project_key, &settings.issue_type_id).await {
        Ok(fields) => fields,
        Err(AtlassianError::Api { status: 400 | 404, .. }) => {
            return Err(ApiError::bad_request(
                "unknown_project_or_issue_type",
                format!("project {} has no issue type {} to create", settings.project_key, settings.issue_type_id),
            ));
        }
        Err(e) => return Err(app.connector.refused(tenant, Product::Jira, e).await),
    };
    let job = IssueJob {
        ctx: CreateContext {
            session: &session,
            tenant: tenant.as_str(),
            settings: &settings,
            fields: &fields,
            retrospective: request.retrospective.as_ref(),
        },
        ledger: app.issues.as_ref(),
        tenant,
        lease: app.config.job_lease,
    };
    let results = job.run(&request.action_items).await?;
    let created = results.iter().filter(|r| r.status == bridge::issues::ItemStatus::Created).count();
    tracing::info!(items = results.len(), created, "action items processed");
    Ok(IssuesCreated { tenant_id: tenant.to_string(), idempotency_key: idempotency_key.to_owned(), results })
}

async fn delete(app: &App, req: &Request) -> Result<HttpResponse, ApiError> {
    let tenant = http::path_param(req, "tenant")?;
    tracing::Span::current().record("tenant", tenant.as_str());
    let caller = authorize(req, &app.config.tenant_claim, &tenant, BridgeScope::Publish)?;
    let key = http::path_param(req, "key")?;
    let delete_subtasks = match http::query_param(req, "delete_subtasks").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("invalid_request", "delete_subtasks must be true or false")),
    };
    let item = app.issues.item_for_key(&caller.tenant, &key).await?.ok_or_else(|| {
        ApiError::not_found("not_ours", format!("{key} was not created by this integration for this tenant"))
    })?;
    let session = app.connector.session(&caller.tenant, Product::Jira).await?;
    let path = session.jira_path(&format!("issue/{}?deleteSubtasks={delete_subtasks}", encode(&key)));
    match session.send(lambda_http::http::Method::DELETE, &path, Payload::None).await {
        Ok(_) | Err(AtlassianError::Api { status: 404, .. }) => {}
        Err(AtlassianError::Api { status: 400, payload }) if !delete_subtasks => {
            return Err(ApiError::conflict(
                "has_subtasks",
                format!(
                    "Jira refused to delete {key}: {}; pass delete_subtasks=true to delete its subtasks too",
                    payload.summary()
                ),
            ));
        }
        Err(e) => return Err(app.connector.refused(&caller.tenant, Product::Jira, e).await),
    }
    app.issues.mark_deleted(&caller.tenant, &key, &item).await?;
    tracing::info!(key = %key, "issue deleted");
    Ok(http::no_content())
}

/// `Action Items Ready`: creates the issues, emits `Issues Created`; emits `Publish Failed` and
/// asks for a redelivery when a retryable failure remains.
pub async fn on_event(app: Arc<App>, delivery: Delivery) -> EventOutcome {
    let span = tracing::info_span!("event", tenant = tracing::field::Empty, delivery = %delivery.id);
    async move {
        let envelope = match delivery.event {
            Ok(envelope) if envelope.detail_type == "Action Items Ready" => envelope,
            Ok(other) => {
                tracing::warn!(detail_type = %other.detail_type, "event of another type ignored");
                return EventOutcome::Done;
            }
            Err(reason) => {
                tracing::error!(reason = %reason, "undeliverable event dropped");
                return EventOutcome::Done;
            }
        };
        let tenant_hint = envelope.detail.get("tenant_id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let key_hint = envelope.detail.get("idempotency_key").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let detail: ActionItemsReady = match serde_json::from_value(envelope.detail) {
            Ok(detail) => detail,
            Err(e) => {
                return failed(&app, &tenant_hint, &key_hint, false, format!("the event is malformed: {e}")).await;
            }
        };
        tracing::Span::current().record("tenant", detail.tenant_id.as_str());
        let Ok(tenant) = TenantId::parse(&detail.tenant_id) else {
            return failed(&app, &tenant_hint, &key_hint, false, "tenant_id is not a valid tenant id".into()).await;
        };
        let idempotency_key = detail.idempotency_key.clone();
        let request = detail.request();
        if let Err(e) = request.validate() {
            return failed(&app, tenant.as_str(), &idempotency_key, false, e.message).await;
        }
        match run(&app, &tenant, &idempotency_key, request).await {
            Ok(created) => {
                let retry: Vec<_> =
                    created.results.iter().filter(|r| r.retryable).map(|r| r.action_item_id.clone()).collect();
                if !retry.is_empty() {
                    let reason = format!("{} action item(s) hit a temporary failure and will be retried", retry.len());
                    return failed(&app, tenant.as_str(), &idempotency_key, true, reason).await;
                }
                bridge::app::publish(&app, "Issues Created", &created).await
            }
            Err(e) => {
                let retryable = e.status.is_server_error() || matches!(e.code, "upstream_unavailable");
                failed(&app, tenant.as_str(), &idempotency_key, retryable, e.message).await
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
        job: "issues".into(),
        retryable,
        reason,
    };
    bridge::app::publish_failed(app, event).await
}
