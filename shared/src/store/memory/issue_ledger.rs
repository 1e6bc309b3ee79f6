use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Clock, Faults, RoundTrips, from_ms, key, lock, ms};
use crate::domain::TenantId;
use crate::ids::{IssueId, IssueKey, ItemId, ReportId, SiteId};
use crate::issues::state::JiraState;
use crate::store::{
    Claim, CreatedItem, IssueLedger, ItemDone, ItemFilter, ItemPage, ItemStart, KeyRecord, LIST_SCAN, RecordedIssue,
    StoreError,
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
    /// The last Jira state the sync recorded, and when it saw it.
    jira_state: Option<JiraState>,
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
            jira_state: None,
            synced_at_ms: None,
        }
    }

    /// The read model's view of a record, for those whose issue was created.
    fn created(&self, item_id: &str) -> Option<CreatedItem> {
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
            state: self.jira_state.clone(),
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

    /// Plants the state the sync would record for a created item (until the sync's own write is
    /// there to call): what the read model's tests list and filter by.
    pub fn seed_state(&self, tenant: &TenantId, item_id: &ItemId, state: JiraState, synced_at: OffsetDateTime) {
        if let Some(action) = lock(&self.items).actions.get_mut(&key(tenant, item_id.as_str())) {
            action.jira_state = Some(state);
            action.synced_at_ms = Some(ms(synced_at));
        }
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
            .filter_map(|id| items.actions.get(&key(tenant, id))?.created(id))
            .filter(|item| filter.admits(item))
            .collect();
        let more = looked.last().filter(|_| looked.len() == LIST_SCAN).map(|id| ItemId::new(*id));
        Ok(ItemPage::cut(admitted, more, limit))
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
                ledger.seed_state(&t, &id, state(category), OffsetDateTime::now_utc());
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
