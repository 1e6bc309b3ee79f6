//! What the two-way sync keeps (`crate::sync`): which tenants have issues to follow, where each
//! tenant's poll stopped, the last known Jira state of each issue (on its ledger record), and the
//! outbox of changes not yet published.
//!
//! The outbox is what makes "emit each change once" survive crashes: a change's state and its
//! outbox entry are written in one transaction, under the "only newer `updated`" condition, so a
//! change is either recorded *and* waiting to be published, or not recorded at all (and found
//! again by the next search). Entries are deleted only after their event was put.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::TenantId;
use crate::ids::{IssueId, IssueKey, ItemId, SiteId};
use crate::issues::state::JiraState;

/// What the ledger knows of an issue key, for the sync: its item, where it was written, and the
/// `updated` of the state last recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownIssue {
    pub key: IssueKey,
    pub item_id: ItemId,
    /// `None` for records written before sites were recorded (taken as the current site).
    pub site: Option<SiteId>,
    /// The report the item came from, when its creation named one.
    pub report_id: Option<String>,
    /// Jira's `updated` of the last recorded state, epoch milliseconds.
    pub jira_updated_ms: Option<i64>,
    /// The issue was found deleted (by the sync or by a later creation job).
    pub deleted: bool,
}

/// An issue we created that is not known deleted: what the deletion check asks Jira about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedIssue {
    pub key: IssueKey,
    pub id: IssueId,
    pub item_id: ItemId,
    pub site: Option<SiteId>,
}

/// A page of a tenant's created issues (in item order), and where the next page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatedPage {
    pub issues: Vec<CreatedIssue>,
    /// `None` when this was the last page.
    pub next: Option<String>,
}

/// The change one staging records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateWrite {
    /// The issue's state as seen, written only if its `updated` is newer than the recorded one.
    Seen { state: JiraState, synced_at: OffsetDateTime },
    /// The issue is gone from Jira: written only if the record is not deleted already.
    Deleted,
}

/// One change to record, with the outbox entry that publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staging {
    pub item_id: ItemId,
    pub key: IssueKey,
    pub write: StateWrite,
    /// `{key}@{updated ms}` (or `{key}@deleted`): the same change seen twice has the same id.
    pub change_id: String,
    pub site: SiteId,
    /// The event's change entry, as JSON; the store keeps it opaque.
    pub payload: String,
}

/// A change recorded and not yet published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub change_id: String,
    pub site: SiteId,
    /// `true` for a deletion (an `Issue Deleted` event), `false` for a state.
    pub deleted: bool,
    pub payload: String,
}

/// Where a tenant's poll of one site stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncCursor {
    /// Changes at or after this (less the overlap) are asked for next; `None`: never polled.
    pub updated_since: Option<OffsetDateTime>,
    /// The deletion check's place in the tenant's created issues (`None`: from the start).
    pub deletion_after: Option<String>,
    /// When the deletion check last finished a pass over every created issue.
    pub deletion_pass_done: Option<OffsetDateTime>,
}

/// The poller's walk over the enrolled tenants: resumes after `after` (a tenant id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRound {
    pub after: Option<String>,
    pub started_at: Option<OffsetDateTime>,
}

/// A page of enrolled tenants, and where the next starts (`None`: the last page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrolledPage {
    pub tenants: Vec<TenantId>,
    pub next: Option<String>,
}

#[async_trait]
pub trait IssueSyncStore: Send + Sync {
    /// Marks the tenant as one whose issues the poller follows (idempotent). Written before a
    /// job creates issues, so no created issue belongs to a tenant the poller never visits.
    async fn enroll(&self, tenant: &TenantId) -> Result<(), StoreError>;
    /// Enrolled tenants after `after`, in tenant order.
    async fn enrolled(&self, after: Option<&str>, limit: usize) -> Result<EnrolledPage, StoreError>;
    async fn sync_round(&self) -> Result<SyncRound, StoreError>;
    async fn save_sync_round(&self, round: &SyncRound) -> Result<(), StoreError>;
    async fn cursor(&self, tenant: &TenantId, site: &SiteId) -> Result<SyncCursor, StoreError>;
    async fn save_cursor(&self, tenant: &TenantId, site: &SiteId, cursor: &SyncCursor) -> Result<(), StoreError>;
    /// What the ledger knows of each of `keys` that this system created for the tenant (keys it
    /// did not create are left out), in bulk.
    async fn known(&self, tenant: &TenantId, keys: &[IssueKey]) -> Result<Vec<KnownIssue>, StoreError>;
    /// The tenant's created, not deleted, issues after `after`, at most `limit` records read.
    async fn created_issues(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CreatedPage, StoreError>;
    /// Records each change whose condition holds, with its outbox entry, atomically per change;
    /// answers, in order, whether each was new.
    async fn stage(&self, tenant: &TenantId, changes: &[Staging]) -> Result<Vec<bool>, StoreError>;
    /// The tenant's unpublished changes, oldest change id first.
    async fn outbox(&self, tenant: &TenantId) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Deletes published outbox entries.
    async fn clear_outbox(&self, tenant: &TenantId, change_ids: &[String]) -> Result<(), StoreError>;
    /// Enrolls the tenants that created issues before enrollment existed: a resumable one-off
    /// scan, `pages` pages a call; answers whether it is complete.
    async fn backfill_enrollment(&self, pages: usize) -> Result<bool, StoreError>;
}
