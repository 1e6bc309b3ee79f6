//! `keep-alive`: the scheduled sweep that keeps idle OAuth grants alive, re-verifies token
//! connections and says `Connection Expiring` / `Connection Broken` before a customer finds out
//! the hard way (shared/src/keep_alive.rs). EventBridge Scheduler invokes it every hour with
//! `{"sweep": "scheduled"}` (shared/routes.json `schedules`); each run does a slice of the day's
//! round before its deadline.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bridge::app::App;
use bridge::events::EventBus;
use bridge::keep_alive::{
    BackfillSweepIndex, CHECK_TIMEOUT, Chore, ConnectorChecks, ExpirePendingConsents, PAGE_SIZE, RunReport, RunRequest,
    Sweep,
};
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
    let sweep = Arc::new(sweep(&app, events));
    let namespace = app.config.metrics_namespace.clone();
    drop(app);
    let namespace = namespace.as_str();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let sweep = sweep.clone();
        let function = bridge::api::Function::KeepAlive.name();
        bridge::metrics::scope(namespace, function, async move { handle(&sweep, event).await })
    }))
    .await
}

/// The sweep an instance runs, built once at cold start.
pub fn sweep(app: &App, events: Arc<dyn EventBus>) -> Sweep {
    Sweep {
        connections: app.connections.clone(),
        credentials: app.credentials.clone(),
        store: app.keep_alive.clone(),
        leases: app.leases.clone(),
        checks: Arc::new(ConnectorChecks(app.connector.clone())),
        events,
        clock: app.config.clock,
        page_size: PAGE_SIZE,
        check_timeout: CHECK_TIMEOUT,
        chores: chores(app),
    }
}

/// The periodic chores that run before each sweep (each failure is logged and reported, and
/// the sweep runs anyway): the place for housekeeping that needs no schedule of its own, such
/// as deleting consents that were never confirmed.
pub fn chores(app: &App) -> Vec<Arc<dyn Chore>> {
    let mut chores: Vec<Arc<dyn Chore>> = vec![
        Arc::new(BackfillSweepIndex(app.connections.clone())),
        Arc::new(ExpirePendingConsents { connections: app.connections.clone(), credentials: app.credentials.clone() }),
    ];
    // Dynamic Jira webhooks expire 30 days after their last refresh: each hourly run refreshes
    // those due within a week and registers any an opted-in tenant lacks.
    if let Some(webhooks) = bridge::webhooks::Webhooks::from_app(app) {
        chores.push(Arc::new(bridge::webhooks::RefreshWebhooks(Arc::new(webhooks))));
    }
    chores
}

/// One invocation: the schedule's input, run until shortly before the invocation's deadline.
/// A failure fails the invocation, so the Scheduler's retry policy (then its dead-letter queue)
/// takes it; what was done stays done (the round resumes where it stopped).
pub async fn handle(sweep: &Sweep, event: LambdaEvent<Value>) -> Result<RunReport, lambda_runtime::Error> {
    let request: RunRequest = serde_json::from_value(event.payload)
        .map_err(|e| format!("the schedule's input is not a keep-alive request: {e}"))?;
    let deadline = tokio::time::Instant::now() + remaining(event.context.deadline).saturating_sub(ANSWER_MARGIN);
    let report = sweep.run(&request, deadline).await.map_err(|e| {
        tracing::error!(error = %e, "keep-alive run failed");
        e.to_string()
    })?;
    tracing::info!(
        visited = report.visited,
        refreshed = report.refreshed,
        verified = report.verified,
        expiring_sent = report.expiring_sent,
        broken_sent = report.broken_sent,
        deferred = report.deferred,
        round_complete = report.round_complete,
        busy = report.busy,
        "keep-alive run done"
    );
    Ok(report)
}

/// Time left until Lambda's deadline (epoch milliseconds).
fn remaining(deadline_ms: u64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_millis(deadline_ms).saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_is_counted_to_the_deadline_and_never_negative() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = remaining(now_ms + 60_000);
        assert!(left > Duration::from_secs(58) && left <= Duration::from_secs(60), "{left:?}");
        assert_eq!(remaining(now_ms - 1_000), Duration::ZERO);
    }
}
