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
