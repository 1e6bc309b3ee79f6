use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Clock, Faults, RoundTrips, from_ms, key, lock, ms};
use crate::domain::TenantId;
use crate::ids::{IssueId, IssueKey, ItemId, ReportId, SiteId};
use crate::issues::state::JiraState;
use crate::store::{
    Claim, CreatedIssue, CreatedItem, CreatedPage, EnrolledPage, IssueLedger, IssueSyncStore, ItemDone, ItemFilter,
    ItemPage, ItemStart, KeyRecord, KnownIssue, LIST_SCAN, OutboxEntry, RecordedIssue, Staging, StateWrite, StoreError,
    SyncCursor, SyncRound,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Failed,
    Created,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkerForm {
    Keyed,
    Legacy,
}

/// `ACTION#{item id}`: attributes are optional where the adapter's item may lack them
/// (`mark_deleted` upserts a bare record; `complete` removes the owner and lease).
#[derive(Debug, Clone)]
struct Action {
    state: State,
    owner: Option<String>,
    lease_until_ms: Option<i64>,
    /// Missing on records from before keyed markers.
    marker_form: Option<MarkerForm>,
    issue_key: Option<String>,
    issue_id: Option<String>,
    site: Option<String>,
    message: Option<String>,
    report_id: Option<ReportId>,
    /// When the sync (or an edit's read-back) last recorded the issue's state, which itself is
    /// in `SyncItems::states`.
    synced_at_ms: Option<i64>,
}

impl Action {
    fn bare(state: State) -> Self {
        Self {
            state,
            owner: None,
            lease_until_ms: None,
            marker_form: None,
            issue_key: None,
            issue_id: None,
            site: None,
            message: None,
            report_id: None,
            synced_at_ms: None,
        }
    }

    /// The read model's view of a record, for those whose issue was created.
    fn created(&self, item_id: &str, state: Option<&JiraState>) -> Option<CreatedItem> {
        if !matches!(self.state, State::Created | State::Deleted) {
            return None;
        }
        Some(CreatedItem {
            item_id: ItemId::new(item_id),
            key: IssueKey::new(self.issue_key.clone().unwrap_or_default()),
            id: IssueId::new(self.issue_id.clone().unwrap_or_default()),
            site: self.site.clone().filter(|s| !s.is_empty()).map(SiteId::new),
            report_id: self.report_id.clone(),
            deleted: self.state == State::Deleted,
            state: state.cloned(),
            synced_at: self.synced_at_ms.map(from_ms),
        })
    }
}

/// `ISSUE#{key}`.
#[derive(Debug, Clone)]
struct KeyItem {
    state: State,
    item_id: Option<String>,
    site: Option<String>,
}

#[derive(Default)]
struct Items {
    actions: HashMap<(String, String), Action>,
    keys: HashMap<(String, String), KeyItem>,
    /// The two-way sync's part (`IssueSyncStore`), under the same lock so a staging writes the
    /// state and its outbox entry together, as the adapter's transaction does.
    sync: SyncItems,
}

/// What the sync keeps: the last seen state per action item (`jira_state`, `jira_updated_ms`,
/// `synced_at_ms` on the adapter's `ACTION#` item), enrolled tenants, cursors, rounds, outbox.
#[derive(Default)]
struct SyncItems {
    states: HashMap<(String, String), (JiraState, i64)>,
    enrolled: std::collections::BTreeSet<String>,
    cursors: HashMap<(String, String), SyncCursor>,
    round: SyncRound,
    /// (tenant, change id) -> entry; a BTreeMap, so a tenant's entries come in change id order.
    outbox: std::collections::BTreeMap<(String, String), OutboxEntry>,
    backfilled: bool,
}

/// Both record kinds sit behind one lock, so `complete` writes them together as the adapter's
/// transaction does.
#[derive(Default)]
pub struct MemoryIssueLedger {
    items: Mutex<Items>,
    clock: Clock,
    faults: Faults,
    round_trips: RoundTrips,
}

impl MemoryIssueLedger {
    pub(super) fn sharing(clock: &Clock, faults: &Faults, round_trips: &RoundTrips) -> Self {
        Self { clock: clock.clone(), faults: faults.clone(), round_trips: round_trips.clone(), ..Self::default() }
    }

    /// Plants an item an attempt from before keyed markers left pending (no `marker_form`), held
    /// until `until`: what a deployment upgraded mid-job finds.
    pub fn seed_legacy_pending(&self, tenant: &TenantId, item_id: &ItemId, owner: &str, until: OffsetDateTime) {
        let action =
            Action { owner: Some(owner.to_owned()), lease_until_ms: Some(ms(until)), ..Action::bare(State::Pending) };
        lock(&self.items).actions.insert(key(tenant, item_id.as_str()), action);
    }

    /// Plants an issue recorded before sites were (no `site` on either record).
    pub fn seed_without_site(&self, tenant: &TenantId, item_id: &ItemId, issue_key: &IssueKey, issue_id: &IssueId) {
        let mut items = lock(&self.items);
        let action = Action {
            marker_form: Some(MarkerForm::Keyed),
            issue_key: Some(issue_key.to_string()),
            issue_id: Some(issue_id.to_string()),
            ..Action::bare(State::Created)
        };
        items.actions.insert(key(tenant, item_id.as_str()), action);
        let reverse = KeyItem { state: State::Created, item_id: Some(item_id.to_string()), site: None };
        items.keys.insert(key(tenant, issue_key.as_str()), reverse);
    }

    /// The message `fail` recorded for an item, if it is failed.
    pub fn failure(&self, tenant: &TenantId, item_id: &ItemId) -> Option<String> {
        let items = lock(&self.items);
        items
            .actions
            .get(&key(tenant, item_id.as_str()))
            .filter(|a| a.state == State::Failed)
            .and_then(|a| a.message.clone())
    }

    /// The adapter's `settle`: an update to an item we hold, applied only while we still hold it
    /// (otherwise nothing happens, and no error: the one that took over finishes the item).
    fn settle(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        update: impl FnOnce(&mut Action),
    ) -> Result<bool, StoreError> {
        let mut items = lock(&self.items);
        match items.actions.get_mut(&key(tenant, item_id)).filter(|a| a.owner.as_deref() == Some(owner)) {
            Some(action) => {
                update(action);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[async_trait]
impl IssueLedger for MemoryIssueLedger {
    async fn claim(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim<ItemStart, ItemDone>, StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueLedger::claim")?;
        let now = self.clock.now_ms();
        let mut items = lock(&self.items);
        let Some(action) = items.actions.get_mut(&key(tenant, item_id.as_str())) else {
            let action = Action {
                owner: Some(owner.to_owned()),
                lease_until_ms: Some(ms(until)),
                marker_form: Some(MarkerForm::Keyed),
                ..Action::bare(State::Pending)
            };
            items.actions.insert(key(tenant, item_id.as_str()), action);
            return Ok(Claim::Ours(ItemStart::Fresh));
        };
        // Taken only when unfinished and its lease ended (a missing lease never compares lower).
        let lapsed = action.lease_until_ms.is_some_and(|until| until < now);
        if matches!(action.state, State::Pending | State::Failed) && lapsed {
            let old = action.clone();
            action.state = State::Pending;
            action.owner = Some(owner.to_owned());
            action.lease_until_ms = Some(ms(until));
            action.marker_form.get_or_insert(MarkerForm::Keyed);
            return Ok(match old.state {
                State::Failed => Claim::Ours(ItemStart::Retry),
                _ => Claim::Ours(ItemStart::Resumed {
                    legacy_marker: old.marker_form != Some(MarkerForm::Keyed),
                    attempted_before: from_ms(old.lease_until_ms.unwrap_or(0)),
                }),
            });
        }
        Ok(match action.state {
            State::Created | State::Deleted => Claim::Done(ItemDone {
                key: IssueKey::new(action.issue_key.clone().unwrap_or_default()),
                id: IssueId::new(action.issue_id.clone().unwrap_or_default()),
                deleted: action.state == State::Deleted,
                site: action.site.clone().filter(|s| !s.is_empty()).map(SiteId::new),
            }),
            State::Pending | State::Failed => Claim::Held { until: from_ms(action.lease_until_ms.unwrap_or(0)) },
        })
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        issue: &RecordedIssue,
    ) -> Result<(), StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueLedger::complete")?;
        let mut items = lock(&self.items);
        let Some(action) =
            items.actions.get_mut(&key(tenant, item_id.as_str())).filter(|a| a.owner.as_deref() == Some(owner))
        else {
            // Our lease lapsed and another attempt took the item over: it records the issue.
            return Ok(());
        };
        action.state = State::Created;
        action.issue_key = Some(issue.key.to_string());
        action.issue_id = Some(issue.id.to_string());
        action.site = Some(issue.site.to_string());
        action.report_id = issue.report_id.clone();
        action.owner = None;
        action.lease_until_ms = None;
        let reverse =
            KeyItem { state: State::Created, item_id: Some(item_id.to_string()), site: Some(issue.site.to_string()) };
        items.keys.insert(key(tenant, issue.key.as_str()), reverse);
        Ok(())
    }

    async fn fail(&self, tenant: &TenantId, item_id: &ItemId, owner: &str, message: &str) -> Result<(), StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueLedger::fail")?;
        self.settle(tenant, item_id.as_str(), owner, |action| {
            action.state = State::Failed;
            action.message = Some(message.to_owned());
            action.lease_until_ms = Some(0);
        })
        .map(drop)
    }

    async fn release(&self, tenant: &TenantId, item_id: &ItemId, owner: &str) -> Result<(), StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueLedger::release")?;
        // Stamps when we gave up: what we may have created was sent before then.
        let now = self.clock.now_ms();
        self.settle(tenant, item_id.as_str(), owner, |action| action.lease_until_ms = Some(now)).map(drop)
    }

    async fn mark_legacy_marker(&self, tenant: &TenantId, item_id: &ItemId, owner: &str) -> Result<(), StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueLedger::mark_legacy_marker")?;
        self.settle(tenant, item_id.as_str(), owner, |action| action.marker_form = Some(MarkerForm::Legacy)).map(drop)
    }

    async fn extend(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueLedger::extend")?;
        self.settle(tenant, item_id.as_str(), owner, |action| action.lease_until_ms = Some(ms(until)))
    }

    async fn item_for_key(&self, tenant: &TenantId, issue_key: &IssueKey) -> Result<Option<KeyRecord>, StoreError> {
        self.faults.check("IssueLedger::item_for_key")?;
        let items = lock(&self.items);
        let Some(record) = items.keys.get(&key(tenant, issue_key.as_str())).filter(|k| k.state == State::Created)
        else {
            return Ok(None);
        };
        Ok(record
            .item_id
            .clone()
            .map(|item_id| KeyRecord { item_id: ItemId::new(item_id), site: record.site.clone().map(SiteId::new) }))
    }

    async fn mark_deleted(&self, tenant: &TenantId, issue_key: &IssueKey, item_id: &ItemId) -> Result<(), StoreError> {
        self.faults.check("IssueLedger::mark_deleted")?;
        let mut items = lock(&self.items);
        // Unconditional updates, which create a bare record where there was none.
        items
            .keys
            .entry(key(tenant, issue_key.as_str()))
            .or_insert(KeyItem { state: State::Deleted, item_id: None, site: None })
            .state = State::Deleted;
        items.actions.entry(key(tenant, item_id.as_str())).or_insert_with(|| Action::bare(State::Deleted)).state =
            State::Deleted;
        Ok(())
    }

    async fn list_items(
        &self,
        tenant: &TenantId,
        filter: &ItemFilter,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<ItemPage, StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueLedger::list_items")?;
        let items = lock(&self.items);
        let mut ids: Vec<&str> = items
            .actions
            .keys()
            .filter(|(t, id)| t == tenant.as_str() && after.is_none_or(|a| id.as_str() > a.as_str()))
            .map(|(_, id)| id.as_str())
            .collect();
        ids.sort_unstable();
        // As the DynamoDB Query: at most LIST_SCAN records looked at, and "there may be more"
        // whenever that many were.
        let looked = &ids[..ids.len().min(LIST_SCAN)];
        let admitted: Vec<CreatedItem> = looked
            .iter()
            .filter_map(|id| {
                let at = key(tenant, id);
                items.actions.get(&at)?.created(id, items.sync.states.get(&at).map(|(state, _)| state))
            })
            .filter(|item| filter.admits(item))
            .collect();
        let more = looked.last().filter(|_| looked.len() == LIST_SCAN).map(|id| ItemId::new(*id));
        Ok(ItemPage::cut(admitted, more, limit))
    }

    async fn issue_for_item(&self, tenant: &TenantId, item_id: &ItemId) -> Result<Option<CreatedItem>, StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueLedger::issue_for_item")?;
        let items = lock(&self.items);
        let at = key(tenant, item_id.as_str());
        Ok(items
            .actions
            .get(&at)
            .and_then(|action| action.created(item_id.as_str(), items.sync.states.get(&at).map(|(state, _)| state))))
    }

    async fn record_state(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        state: &JiraState,
        synced_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.faults.check("IssueLedger::record_state")?;
        let mut items = lock(&self.items);
        Ok(items.write_state(tenant, item_id, state, synced_at))
    }
}

impl Items {
    /// The adapter's "only newer `updated`" condition on a created item, and the write.
    fn write_state(
        &mut self,
        tenant: &TenantId,
        item_id: &ItemId,
        state: &JiraState,
        synced_at: OffsetDateTime,
    ) -> bool {
        let at = key(tenant, item_id.as_str());
        if self.actions.get(&at).is_none_or(|a| a.state != State::Created) {
            return false;
        }
        let updated = ms(state.updated);
        if self.sync.states.get(&at).is_some_and(|(_, recorded)| *recorded >= updated) {
            return false;
        }
        if let Some(action) = self.actions.get_mut(&at) {
            action.synced_at_ms = Some(ms(synced_at));
        }
        self.sync.states.insert(at, (state.clone(), updated));
        true
    }

    /// Marks a created issue deleted (both records); `false` when it is not a created one.
    fn write_deleted(&mut self, tenant: &TenantId, issue_key: &IssueKey, item_id: &ItemId) -> bool {
        match self.keys.get_mut(&key(tenant, issue_key.as_str())) {
            Some(reverse) if reverse.state == State::Created => reverse.state = State::Deleted,
            _ => return false,
        }
        self.actions.entry(key(tenant, item_id.as_str())).or_insert_with(|| Action::bare(State::Deleted)).state =
            State::Deleted;
        true
    }
}

impl MemoryIssueLedger {
    /// The last state recorded for an item, as the sync wrote it.
    pub fn recorded_state(&self, tenant: &TenantId, item_id: &ItemId) -> Option<JiraState> {
        lock(&self.items).sync.states.get(&key(tenant, item_id.as_str())).map(|(state, _)| state.clone())
    }
}

#[async_trait]
impl IssueSyncStore for MemoryIssueLedger {
    async fn enroll(&self, tenant: &TenantId) -> Result<(), StoreError> {
        self.faults.check("IssueSyncStore::enroll")?;
        lock(&self.items).sync.enrolled.insert(tenant.to_string());
        Ok(())
    }

    async fn enrolled(&self, after: Option<&str>, limit: usize) -> Result<EnrolledPage, StoreError> {
        self.faults.check("IssueSyncStore::enrolled")?;
        let items = lock(&self.items);
        let limit = limit.clamp(1, 1000);
        let mut rest = items.sync.enrolled.iter().filter(|t| after.is_none_or(|a| t.as_str() > a));
        let tenants: Vec<TenantId> = rest.by_ref().take(limit).filter_map(|t| TenantId::parse(t).ok()).collect();
        // Like a DynamoDB page that stopped at its limit: a next key even if nothing follows.
        let next = (tenants.len() == limit).then(|| tenants.last().map(|t| t.to_string())).flatten();
        Ok(EnrolledPage { tenants, next })
    }

    async fn sync_round(&self) -> Result<SyncRound, StoreError> {
        self.faults.check("IssueSyncStore::sync_round")?;
        Ok(lock(&self.items).sync.round.clone())
    }

    async fn save_sync_round(&self, round: &SyncRound) -> Result<(), StoreError> {
        self.faults.check("IssueSyncStore::save_sync_round")?;
        lock(&self.items).sync.round = round.clone();
        Ok(())
    }

    async fn cursor(&self, tenant: &TenantId, site: &SiteId) -> Result<SyncCursor, StoreError> {
        self.faults.check("IssueSyncStore::cursor")?;
        Ok(lock(&self.items).sync.cursors.get(&key(tenant, site.as_str())).cloned().unwrap_or_default())
    }

    async fn save_cursor(&self, tenant: &TenantId, site: &SiteId, cursor: &SyncCursor) -> Result<(), StoreError> {
        self.faults.check("IssueSyncStore::save_cursor")?;
        // Stored in milliseconds, like the adapter.
        let at_ms = |at: Option<OffsetDateTime>| at.map(|at| from_ms(ms(at)));
        let stored = SyncCursor {
            updated_since: at_ms(cursor.updated_since),
            deletion_after: cursor.deletion_after.clone(),
            deletion_pass_done: at_ms(cursor.deletion_pass_done),
        };
        lock(&self.items).sync.cursors.insert(key(tenant, site.as_str()), stored);
        Ok(())
    }

    async fn known(&self, tenant: &TenantId, keys: &[IssueKey]) -> Result<Vec<KnownIssue>, StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueSyncStore::known")?;
        let items = lock(&self.items);
        let unique: std::collections::BTreeSet<&IssueKey> = keys.iter().collect();
        Ok(unique
            .into_iter()
            .filter_map(|issue_key| {
                let reverse = items.keys.get(&key(tenant, issue_key.as_str()))?;
                let item_id = reverse.item_id.clone()?;
                let at = key(tenant, &item_id);
                let action = items.actions.get(&at);
                Some(KnownIssue {
                    key: issue_key.clone(),
                    site: reverse.site.clone().map(SiteId::new),
                    report_id: action.and_then(|a| a.report_id.as_ref()).map(ToString::to_string),
                    jira_updated_ms: items.sync.states.get(&at).map(|(_, updated)| *updated),
                    deleted: reverse.state == State::Deleted || action.is_some_and(|a| a.state == State::Deleted),
                    item_id: ItemId::new(item_id),
                })
            })
            .collect())
    }

    async fn created_issues(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CreatedPage, StoreError> {
        self.faults.check("IssueSyncStore::created_issues")?;
        let items = lock(&self.items);
        let limit = limit.clamp(1, 1000);
        let mut records: Vec<(String, &Action)> = items
            .actions
            .iter()
            .filter(|((t, _), _)| t == tenant.as_str())
            .map(|((_, id), action)| (format!("ACTION#{id}"), action))
            .filter(|(sk, _)| after.is_none_or(|a| sk.as_str() > a))
            .collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        // `limit` records read, then filtered, like a DynamoDB query page.
        let read: Vec<_> = records.into_iter().take(limit).collect();
        let next = (read.len() == limit).then(|| read.last().map(|(sk, _)| sk.clone())).flatten();
        let issues = read
            .into_iter()
            .filter(|(_, a)| a.state == State::Created)
            .filter_map(|(sk, a)| {
                Some(CreatedIssue {
                    key: IssueKey::new(a.issue_key.clone()?),
                    id: IssueId::new(a.issue_id.clone()?),
                    item_id: ItemId::new(sk.trim_start_matches("ACTION#")),
                    site: a.site.clone().filter(|s| !s.is_empty()).map(SiteId::new),
                })
            })
            .collect();
        Ok(CreatedPage { issues, next })
    }

    async fn stage(&self, tenant: &TenantId, changes: &[Staging]) -> Result<Vec<bool>, StoreError> {
        let _trip = self.round_trips.go().await;
        self.faults.check("IssueSyncStore::stage")?;
        let mut items = lock(&self.items);
        Ok(changes
            .iter()
            .map(|change| {
                let new = match &change.write {
                    StateWrite::Seen { state, synced_at } => {
                        items.write_state(tenant, &change.item_id, state, *synced_at)
                    }
                    StateWrite::Deleted => items.write_deleted(tenant, &change.key, &change.item_id),
                };
                if new {
                    let entry = OutboxEntry {
                        change_id: change.change_id.clone(),
                        site: change.site.clone(),
                        deleted: matches!(change.write, StateWrite::Deleted),
                        payload: change.payload.clone(),
                    };
                    items.sync.outbox.insert(key(tenant, &change.change_id), entry);
                }
                new
            })
            .collect())
    }

    async fn outbox(&self, tenant: &TenantId) -> Result<Vec<OutboxEntry>, StoreError> {
        self.faults.check("IssueSyncStore::outbox")?;
        let items = lock(&self.items);
        Ok(items.sync.outbox.iter().filter(|((t, _), _)| t == tenant.as_str()).map(|(_, e)| e.clone()).collect())
    }

    async fn clear_outbox(&self, tenant: &TenantId, change_ids: &[String]) -> Result<(), StoreError> {
        self.faults.check("IssueSyncStore::clear_outbox")?;
        let mut items = lock(&self.items);
        for id in change_ids {
            items.sync.outbox.remove(&key(tenant, id));
        }
        Ok(())
    }

    async fn backfill_enrollment(&self, _pages: usize) -> Result<bool, StoreError> {
        self.faults.check("IssueSyncStore::backfill_enrollment")?;
        let mut items = lock(&self.items);
        if !items.sync.backfilled {
            let tenants: Vec<String> =
                items.actions.iter().filter(|(_, a)| a.state == State::Created).map(|((t, _), _)| t.clone()).collect();
            items.sync.enrolled.extend(tenants);
            items.sync.backfilled = true;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issues::state::{StatusCategory, parse_jira_time};

    fn state(category: StatusCategory) -> JiraState {
        JiraState {
            status: "S".into(),
            status_category: category,
            resolution: None,
            assignee: None,
            summary: "s".into(),
            due_date: None,
            updated: parse_jira_time("2026-12-02T18:40:12.345+0000").unwrap(),
        }
    }

    /// The status filter reads the recorded state: done ones only, never-synced ones never.
    #[tokio::test]
    async fn the_status_filter_admits_only_items_whose_last_state_is_in_the_category() {
        let ledger = MemoryIssueLedger::default();
        let t = TenantId::parse("acme").unwrap();
        let until = OffsetDateTime::now_utc() + time::Duration::minutes(5);
        for (n, category) in [(1, Some(StatusCategory::Done)), (2, Some(StatusCategory::New)), (3, None)] {
            let id = ItemId::new(format!("ai-{n}"));
            ledger.claim(&t, &id, "o", until).await.unwrap();
            let issue =
                RecordedIssue { key: format!("P-{n}").into(), id: "1".into(), site: "s".into(), report_id: None };
            ledger.complete(&t, &id, "o", &issue).await.unwrap();
            if let Some(category) = category {
                assert!(ledger.record_state(&t, &id, &state(category), OffsetDateTime::now_utc()).await.unwrap());
            }
        }
        let done = ItemFilter { report_id: None, status_category: Some(StatusCategory::Done) };
        let page = ledger.list_items(&t, &done, None, 10).await.unwrap();
        assert_eq!(page.items.iter().map(|i| i.item_id.as_str()).collect::<Vec<_>>(), ["ai-1"]);
        assert!(page.items[0].synced_at.is_some());
        let all = ledger.list_items(&t, &ItemFilter::default(), None, 2).await.unwrap();
        assert_eq!(all.items.len(), 2);
        assert_eq!(all.resume_after, Some(ItemId::new("ai-2")));
    }
}
