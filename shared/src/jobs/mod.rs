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
