//! The runtime every job shares: how a job ends ([`JobOutcome`]), and how deliveries of one job
//! take turns on its records ([`lease`]).

pub mod lease;

use crate::error::ApiError;

/// How a job ended, and so what its trigger does next: a publication (`JobOutcome<Publication>`,
/// the HTTP answer), a job run from an event (`JobOutcome<PagePublished, ApiError>`, the event to
/// emit), an event delivery (`JobOutcome<()>`, whether it is delivered again).
#[derive(Debug)]
pub enum JobOutcome<T, F = T> {
    /// Finished: answer with this; a redelivery answers the same.
    Done(T),
    /// Failed for good (`F` says why): only other content could fix it, so nothing runs it
    /// again; a redelivery answers the same.
    Failed(F),
    /// Not finished, and not failed for good: the same job may run again — redelivered by the
    /// trigger when the error's code is retried (Atlassian busy, another delivery still at it),
    /// or sent again by the caller once an admin fixed what the error names (a permission, the
    /// credentials).
    Stopped(ApiError),
}

/// Runs `tasks` with at most `in_flight` of them at once and answers their outputs in the order
/// given. The tasks are futures of this one task (nothing is spawned), so dropping the job drops
/// them all — which is what a crash does, and what the crash-point tests rely on. Pass a `Vec`:
/// futures built lazily inside a stream's closure trip the compiler's `Send` inference.
pub async fn bounded<F: std::future::Future>(tasks: Vec<F>, in_flight: usize) -> Vec<F::Output> {
    use futures::stream::{self, StreamExt};
    stream::iter(tasks).buffered(in_flight.max(1)).collect().await
}

/// Runs `work` as the only run of a scheduled function at a time (EventBridge Scheduler delivers
/// at least once; reserved concurrency 1 is no lock across retries): under the lease `name` of
/// the refresh-lease store, held until 30 s past `deadline` so a dead instance's lease lapses by
/// itself. `Ok(None)` when another run holds it, and then `work` never runs.
pub async fn single_run<T>(
    leases: &dyn crate::store::RefreshLeaseStore,
    name: &str,
    deadline: tokio::time::Instant,
    work: impl std::future::Future<Output = Result<T, crate::store::StoreError>>,
) -> Result<Option<T>, crate::store::StoreError> {
    let owner = uuid::Uuid::new_v4().to_string();
    let hold = deadline.saturating_duration_since(tokio::time::Instant::now()) + std::time::Duration::from_secs(30);
    if !leases.try_acquire(name, &owner, time::OffsetDateTime::now_utc() + hold).await? {
        tracing::info!(lease = name, "another run is in progress; this one does nothing");
        return Ok(None);
    }
    let result = work.await;
    if let Err(e) = leases.release(name, &owner).await {
        tracing::warn!(lease = name, error = %e, "could not release the run lease; it lapses by itself");
    }
    result.map(Some)
}
