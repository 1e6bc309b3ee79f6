//! `issue-sync`: status back by polling (shared/src/sync/poll.rs). EventBridge Scheduler invokes
//! it every five minutes with `{"sync": "scheduled"}` (shared/routes.json `schedules`); each run
//! visits the tenants that created issues, resuming after the last one the previous run did,
//! until shortly before its deadline. Reserved concurrency 1 (infra), plus a run lease, keeps
//! runs from overlapping.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bridge::app::App;
use bridge::events::EventBus;
use bridge::sync::poll::{ConnectorSites, Poller, RunReport, RunRequest, TENANTS_PER_PAGE, VISIT_TIMEOUT};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

/// Left for answering (and for the last page's store writes) before Lambda's deadline.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

pub async fn serve() -> Result<(), lambda_runtime::Error> {
    bridge::telemetry::init();
    let app = App::from_env().await.map_err(|e| {
        tracing::error!(error = %e, "cold start failed");
        e.to_string()
    })?;
    let Some(events) = app.events.clone() else {
        tracing::error!("cold start failed: BRIDGE_EVENT_BUS_NAME is required by this function");
        return Err("BRIDGE_EVENT_BUS_NAME is required".into());
    };
    let poller = Arc::new(poller(&app, events));
    let namespace = app.config.metrics_namespace.clone();
    drop(app);
    let namespace = namespace.as_str();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let poller = poller.clone();
        let function = bridge::api::Function::IssueSync.name();
        bridge::metrics::scope(namespace, function, async move { handle(&poller, event).await })
    }))
    .await
}

/// The poller an instance runs, built once at cold start.
pub fn poller(app: &App, events: Arc<dyn EventBus>) -> Poller {
    Poller {
        store: app.sync.clone(),
        connections: app.connections.clone(),
        leases: app.leases.clone(),
        sites: Arc::new(ConnectorSites(app.connector.clone())),
        events,
        markers: app.markers.clone(),
        clock: app.config.clock,
        tenants_per_page: TENANTS_PER_PAGE,
        visit_timeout: VISIT_TIMEOUT,
    }
}

/// One invocation: the schedule's input, run until shortly before the invocation's deadline.
/// A run whose visits failed on our side (store, event bus) fails the invocation after saving
/// its progress, so the alarm on the function's errors (and the Scheduler's retry, then its
/// dead-letter queue) see it; failures at a tenant's Jira are that tenant's and only logged.
pub async fn handle(poller: &Poller, event: LambdaEvent<Value>) -> Result<RunReport, lambda_runtime::Error> {
    let request: RunRequest = serde_json::from_value(event.payload)
        .map_err(|e| format!("the schedule's input is not an issue-sync request: {e}"))?;
    let deadline = tokio::time::Instant::now() + remaining(event.context.deadline).saturating_sub(ANSWER_MARGIN);
    let report = poller.run(&request, deadline).await.map_err(|e| {
        tracing::error!(error = %e, "issue-sync run failed");
        e.to_string()
    })?;
    tracing::info!(
        tenants_visited = report.tenants_visited,
        changes = report.changes,
        deleted = report.deleted,
        searches = report.searches,
        deletion_searches = report.deletion_searches,
        reconnect_required = report.reconnect_required,
        unavailable = report.unavailable,
        failed = report.failed,
        failed_internal = report.failed_internal,
        round_complete = report.round_complete,
        busy = report.busy,
        "issue-sync run done"
    );
    if report.failed_internal > 0 {
        return Err(format!("{} tenant visit(s) failed on our side; see the logs", report.failed_internal).into());
    }
    Ok(report)
}

/// Time left until Lambda's deadline (epoch milliseconds).
fn remaining(deadline_ms: u64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_millis(deadline_ms).saturating_sub(now)
}
