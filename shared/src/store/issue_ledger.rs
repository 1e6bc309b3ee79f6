//! The issue ledger: which action item became which issue, with a lease per item so one
//! delivery at a time creates it.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Claim, StoreError};
use crate::domain::TenantId;
use crate::ids::{IssueId, IssueKey, ItemId, ReportId, SiteId};
use crate::issues::state::{JiraState, StatusCategory};

/// An issue as the ledger records it: where it was written, so that a key is never taken for
/// another site's issue after the tenant connects another site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedIssue {
    pub key: IssueKey,
    pub id: IssueId,
    /// The site it was written to: the Cloud cloudId, or the Server/DC base URL.
    pub site: SiteId,
    /// The report the action item came from, as the item named it.
    pub report_id: Option<ReportId>,
}

/// What the ledger knows of an issue key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub item_id: ItemId,
    /// `None` for records written before sites were recorded (taken as the current site).
    pub site: Option<SiteId>,
}

/// Where a claimed action item stands in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemStart {
    /// Never attempted: create it.
    Fresh,
    /// An earlier attempt recorded its intent and did not finish: it may have created the issue,
    /// so look for the marker before creating. Anything it created was sent before
    /// `attempted_before` (the end of its lease, or when it gave the item back).
    /// `legacy_marker`: the record predates keyed markers, so the issue may carry the old form.
    Resumed { attempted_before: OffsetDateTime, legacy_marker: bool },
    /// Jira refused it before: try again.
    Retry,
}

/// An action item whose issue was created (and maybe deleted since): nothing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemDone {
    pub key: IssueKey,
    pub id: IssueId,
    pub deleted: bool,
    pub site: Option<SiteId>,
}

/// An action item whose issue we created, as the read model and the edits see it: the issue, the
/// report it came from, and the last Jira state the sync recorded (none until it first ran).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedItem {
    pub item_id: ItemId,
    pub key: IssueKey,
    pub id: IssueId,
    /// `None` for records written before sites were recorded.
    pub site: Option<SiteId>,
    pub report_id: Option<ReportId>,
    /// Deleted in Jira (by us, or found gone by the sync).
    pub deleted: bool,
    pub state: Option<JiraState>,
    /// When the sync last saw the issue.
    pub synced_at: Option<OffsetDateTime>,
}

/// Which created items a listing wants; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFilter {
    pub report_id: Option<ReportId>,
    /// Items whose last known state is in this category (an item never synced has none, so it is
    /// left out).
    pub status_category: Option<StatusCategory>,
}

impl ItemFilter {
    /// The filter as the adapters apply it to a record they read (DynamoDB cannot look into
    /// the stored state's JSON, so the category is checked here, after the read).
    pub fn admits(&self, item: &CreatedItem) -> bool {
        self.report_id.as_ref().is_none_or(|r| item.report_id.as_ref() == Some(r))
            && self.status_category.is_none_or(|c| item.state.as_ref().is_some_and(|s| s.status_category == c))
    }
}

/// One page of [`IssueLedger::list_items`]: the items in item-id order, and where the next page
/// starts (`None` once every record was looked at). A page may be short, or empty, and still
/// have a next one: a page looks at no more than [`LIST_SCAN`] records, however sparse the
/// filter, so no request reads a tenant's whole ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPage {
    pub items: Vec<CreatedItem>,
    pub resume_after: Option<ItemId>,
}

impl ItemPage {
    /// A page from the items one read admitted: cut at `limit` (then it resumes after the last
    /// item given), else it resumes where the read stopped (`read_stopped_after`, `None` when the
    /// read reached the end).
    pub(crate) fn cut(mut admitted: Vec<CreatedItem>, read_stopped_after: Option<ItemId>, limit: usize) -> Self {
        if admitted.len() > limit {
            admitted.truncate(limit);
            let resume_after = admitted.last().map(|i| i.item_id.clone());
            return Self { items: admitted, resume_after };
        }
        Self { items: admitted, resume_after: read_stopped_after }
    }
}

/// The most ledger records one listing page looks at (a DynamoDB Query's `Limit`): with records
/// of ~1 KB that is one ~200 KB read, well under the 1 MB a Query answers at most.
pub const LIST_SCAN: usize = 200;

/// Ledger writes of one job in flight at once. Each is one conditional DynamoDB write (a few ms
/// on DynamoDB, tens on moto); 32 keeps a 500-item job to ~16 sequential round trips per step
/// while staying well inside one table partition's 1,000 writes/s and the SDK's connection pool.
pub const LEDGER_IN_FLIGHT: usize = 32;

/// The per-action-item record of what was created: `(tenant, action item id) → issue`.
#[async_trait]
pub trait IssueLedger: Send + Sync {
    /// Takes the item for `owner` until `until` unless another delivery holds it; says where the
    /// item stands (never attempted, interrupted, refused before) or that it is done.
    async fn claim(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim<ItemStart, ItemDone>, StoreError>;
    /// [`claim`](Self::claim) for each of `items` (answers in the same order), [`LEDGER_IN_FLIGHT`]
    /// at a time. An adapter may take never-seen items in fewer requests; every other item gets
    /// exactly `claim`'s condition and answer.
    async fn claim_all(
        &self,
        tenant: &TenantId,
        owner: &str,
        until: OffsetDateTime,
        items: &[ItemId],
    ) -> Result<Vec<Claim<ItemStart, ItemDone>>, StoreError> {
        let claims: Vec<_> = items.iter().map(|id| self.claim(tenant, id, owner, until)).collect();
        crate::jobs::bounded(claims, LEDGER_IN_FLIGHT).await.into_iter().collect()
    }
    async fn complete(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        issue: &RecordedIssue,
    ) -> Result<(), StoreError>;
    /// [`complete`](Self::complete) for many items, each under exactly its own condition; an
    /// adapter may write them in fewer requests.
    async fn complete_all(
        &self,
        tenant: &TenantId,
        owner: &str,
        issues: &[(ItemId, RecordedIssue)],
    ) -> Result<(), StoreError> {
        for (item_id, issue) in issues {
            self.complete(tenant, item_id, owner, issue).await?;
        }
        Ok(())
    }
    async fn fail(&self, tenant: &TenantId, item_id: &ItemId, owner: &str, message: &str) -> Result<(), StoreError>;
    /// Gives an unfinished item back (it stays `pending`, so the next attempt looks for it first).
    async fn release(&self, tenant: &TenantId, item_id: &ItemId, owner: &str) -> Result<(), StoreError>;
    /// Records that a claimed item's issue may carry the marker form used before keyed markers.
    async fn mark_legacy_marker(&self, tenant: &TenantId, item_id: &ItemId, owner: &str) -> Result<(), StoreError>;
    /// Holds a claimed item longer (while the job waits for Jira's search index, or while its
    /// create is in flight). Answers whether `owner` still holds it: `false` once another
    /// delivery took it over (or it was recorded), and then nothing is written.
    async fn extend(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// The action item an issue key was created for, if this system created it for this tenant.
    async fn item_for_key(&self, tenant: &TenantId, key: &IssueKey) -> Result<Option<KeyRecord>, StoreError>;
    async fn mark_deleted(&self, tenant: &TenantId, key: &IssueKey, item_id: &ItemId) -> Result<(), StoreError>;
    /// The items whose issue was created (deleted since or not) that `filter` admits, in item-id
    /// order, after `after`, at most `limit` of them; see [`ItemPage`].
    async fn list_items(
        &self,
        tenant: &TenantId,
        filter: &ItemFilter,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<ItemPage, StoreError>;
    /// The created item `item_id` (its issue deleted since or not); `None` for an item whose
    /// issue was never created (no record, or still pending, or failed).
    async fn issue_for_item(&self, tenant: &TenantId, item_id: &ItemId) -> Result<Option<CreatedItem>, StoreError>;
    /// Records an issue's state as seen in Jira when its `updated` is newer than the one
    /// recorded (or none is), on a created item; answers whether it was. No outbox entry: the
    /// sync records through [`IssueSyncStore::stage`](crate::store::IssueSyncStore::stage),
    /// under the same condition, so both agree on what "newer" means.
    async fn record_state(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        state: &JiraState,
        synced_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}
