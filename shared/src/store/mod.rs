//! Ports for state: small traits with DynamoDB / Secrets Manager adapters and in-memory fakes.
//!
//! One file per port, holding the trait and its record types; the adapters follow the same
//! split (`dynamo/`, `secrets.rs`, `memory/`). Everything is re-exported here, so callers name
//! `crate::store::X` whatever file it lives in.

pub mod connections;
#[cfg(test)]
mod contract;
pub mod credentials;
pub mod dead_letters;
pub mod destination_failures;
pub mod dynamo;
pub mod installations;
pub mod issue_jobs;
pub mod issue_ledger;
pub mod issue_sync;
pub mod keep_alive;
pub mod lookup_cache;
/// Always compiled (they are small): the tests of every crate build on them.
pub mod memory;
pub mod oauth_states;
pub mod publications;
pub mod refresh_leases;
pub mod secrets;
pub mod settings;
pub mod tenant_slots;
pub mod webhooks;

pub use connections::{ConnectionStore, PendingConsent, SweepPage, Verification, sweep_key};
pub use credentials::{CredentialStore, StoredSecret};
pub use dead_letters::{DeadLetterNotices, NoticeClaim};
pub use destination_failures::{Destination, DestinationFailureStore, DestinationKind, FailureTally};
pub use installations::{AppKind, Installation, InstallationStatus, InstallationStore, LinkCode};
pub use issue_jobs::{IssueJobRecord, IssueJobStore};
pub use issue_ledger::{
    CreatedItem, IssueLedger, ItemDone, ItemFilter, ItemPage, ItemStart, KeyRecord, LEDGER_IN_FLIGHT, LIST_SCAN,
    RecordedIssue,
};
pub use issue_sync::{
    CreatedIssue, CreatedPage, EnrolledPage, IssueSyncStore, KnownIssue, OutboxEntry, Staging, StateWrite, SyncCursor,
    SyncRound,
};
pub use keep_alive::{KeepAliveStore, SweepRound};
pub use lookup_cache::{CacheEntry, LookupCache, LookupKey};
pub use oauth_states::{OAuthStateStore, PendingAuthorization};
pub use publications::{PublicationStore, ReportPage};
pub use refresh_leases::RefreshLeaseStore;
pub use settings::SettingsStore;
pub use tenant_slots::{SlotClaim, TenantSlots};
pub use webhooks::{WebhookRegistration, WebhookStore};

/// What a store's conditional claim on a job's record found (see [`crate::jobs::lease`]): `W`
/// to work from, or `D` when it is finished already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim<W, D = W> {
    /// Ours for the lease asked for: work from this.
    Ours(W),
    /// Finished already (or failed for good): answer with this, do nothing.
    Done(D),
    /// Another invocation holds it until this instant.
    Held { until: time::OffsetDateTime },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service failed; the message never includes item contents or secrets.
    #[error("{service} request failed: {message}")]
    Service { service: &'static str, message: String },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// Our lease on a record lapsed and another delivery took the job over; it finishes it.
    #[error("the lease was taken over by another delivery")]
    LeaseLost,
}

impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::internal()
    }
}
