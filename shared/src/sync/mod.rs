//! Two-way sync, status back: what Jira says of the issues we created reaches the SaaS as
//! `Issues Updated` (and `Issue Deleted`) events, exactly once per change.
//!
//! Two paths see changes — the scheduled poll ([`poll`]) and, for tenants who allow it, webhook
//! deliveries — and both go through one [`Recorder`]: each sighting is written to the ledger only
//! if its `updated` is newer than the recorded one, and in the same DynamoDB transaction as an
//! outbox entry (`SYNC_OUTBOX#{key}@{updated}`). Events are put from the outbox and its entries
//! deleted after, so:
//! - a second sighting of the same change (the poll's overlap, a webhook and a poll, a Jira
//!   retry) fails the condition: no write, no event;
//! - a crash before the transaction leaves nothing (the next search sees the change again); a
//!   crash after it leaves the entry, which the next call for the tenant publishes first.
//!
//! The one window left is between a successful `PutEvents` and the outbox deletion: a crash
//! exactly there publishes that change again on the next run. Every change carries its
//! `change_id` (`{key}@{updated ms}`), the same each time, so a consumer can drop the repeat.

pub mod poll;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::domain::TenantId;
use crate::events::{DetailType, EventBus};
use crate::ids::{IssueKey, SiteId};
use crate::issues::state::{JiraState, StatusCategory};
use crate::store::{IssueSyncStore, OutboxEntry, Staging, StateWrite, StoreError};

/// Which path saw a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Poll,
    Webhook,
}

/// One issue's new state in an `Issues Updated` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssueChange {
    /// `{issue key}@{updated, epoch ms}`: the same for every sighting of this change, so a
    /// repeat (possible only after a crash right after publishing) can be dropped.
    pub change_id: String,
    pub item_id: String,
    pub issue_key: String,
    /// The report the action item came from, when its creation named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_id: Option<String>,
    pub state: JiraState,
    /// The status category is `done`: what a retrospective shows as done.
    pub done: bool,
    pub source: Source,
}

/// `Issues Updated`: the changes to one tenant's issues on one site that one run (or one
/// webhook delivery) saw, split so each event stays under 200 KB (EventBridge takes 256 KB).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuesUpdated {
    pub tenant_id: String,
    /// The Cloud cloudId or the Server/DC base URL the issues are on.
    pub site: String,
    pub changes: Vec<IssueChange>,
}

/// `Issue Deleted`: an issue we created is gone from Jira — deleted, or no longer visible to the
/// connection's user: Jira answers both with 404, so they cannot be told apart.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssueDeleted {
    pub tenant_id: String,
    pub site: String,
    pub item_id: String,
    pub issue_key: String,
    /// `{issue key}@deleted`.
    pub change_id: String,
    pub source: Source,
}

impl DetailType for IssuesUpdated {
    const DETAIL_TYPE: &'static str = "Issues Updated";
}

impl DetailType for IssueDeleted {
    const DETAIL_TYPE: &'static str = "Issue Deleted";
}

/// An `Issues Updated` event's detail stays below this (EventBridge's entry limit is 256 KB,
/// envelope included: <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html>).
pub const EVENT_BYTES: usize = 200 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// PutEvents failed: the outbox keeps the changes for the next call.
    #[error("could not publish the sync events: {0}")]
    Publish(String),
}

/// Records sightings of issue states and publishes the new ones (see the module docs).
pub struct Recorder<'a> {
    pub store: &'a dyn IssueSyncStore,
    pub events: &'a dyn EventBus,
    pub clock: Clock,
}

/// The change id of a state: the issue and its `updated`, to the millisecond.
pub fn change_id(key: &IssueKey, updated: OffsetDateTime) -> String {
    format!("{key}@{}", updated.unix_timestamp_nanos() / 1_000_000)
}

impl Recorder<'_> {
    /// Records each seen state that is newer than the ledger's (by `updated`), and emits the
    /// newer ones as one `Issues Updated` event per tenant per call — exactly once, across
    /// crashes, through a transactional outbox; returns how many changes were new.
    pub async fn record(
        &self,
        tenant: &TenantId,
        site: &SiteId,
        seen: Vec<(IssueKey, JiraState)>,
        source: Source,
    ) -> Result<usize, SyncError> {
        // The newest sighting of each key (a page boundary can show one twice).
        let mut newest: BTreeMap<IssueKey, JiraState> = BTreeMap::new();
        for (key, state) in seen {
            match newest.get(&key) {
                Some(have) if have.updated >= state.updated => {}
                _ => {
                    newest.insert(key, state);
                }
            }
        }
        let keys: Vec<IssueKey> = newest.keys().cloned().collect();
        let known: HashMap<IssueKey, _> =
            self.store.known(tenant, &keys).await?.into_iter().map(|k| (k.key.clone(), k)).collect();
        let synced_at = self.clock.now();
        let mut stagings = Vec::new();
        for (key, state) in newest {
            // Only issues we created for this tenant, on this site (a record without a site
            // predates sites and belongs to the current one), and not already newer.
            let Some(record) = known.get(&key) else { continue };
            let updated_ms = i64::try_from(state.updated.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            if record.deleted
                || record.site.as_ref().is_some_and(|s| s != site)
                || record.jira_updated_ms.is_some_and(|have| have >= updated_ms)
            {
                continue;
            }
            let change = IssueChange {
                change_id: change_id(&key, state.updated),
                item_id: record.item_id.to_string(),
                issue_key: key.to_string(),
                report_id: record.report_id.clone(),
                done: state.status_category == StatusCategory::Done,
                state: state.clone(),
                source,
            };
            stagings.push(Staging {
                item_id: record.item_id.clone(),
                key,
                change_id: change.change_id.clone(),
                site: site.clone(),
                payload: serde_json::to_string(&change).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                write: StateWrite::Seen { state, synced_at },
            });
        }
        self.stage_and_publish(tenant, stagings).await
    }

    /// Records that `keys` are gone from Jira (each once) and emits `Issue Deleted` for each
    /// newly gone one, through the same outbox; returns how many were new.
    pub async fn record_deleted(
        &self,
        tenant: &TenantId,
        site: &SiteId,
        keys: Vec<IssueKey>,
        source: Source,
    ) -> Result<usize, SyncError> {
        let known = self.store.known(tenant, &keys).await?;
        let mut stagings = Vec::new();
        for record in known {
            if record.deleted || record.site.as_ref().is_some_and(|s| s != site) {
                continue;
            }
            let event = IssueDeleted {
                tenant_id: tenant.to_string(),
                site: site.to_string(),
                item_id: record.item_id.to_string(),
                issue_key: record.key.to_string(),
                change_id: format!("{}@deleted", record.key),
                source,
            };
            stagings.push(Staging {
                item_id: record.item_id.clone(),
                key: record.key.clone(),
                change_id: event.change_id.clone(),
                site: site.clone(),
                payload: serde_json::to_string(&event).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                write: StateWrite::Deleted,
            });
        }
        self.stage_and_publish(tenant, stagings).await
    }

    async fn stage_and_publish(&self, tenant: &TenantId, stagings: Vec<Staging>) -> Result<usize, SyncError> {
        let new = if stagings.is_empty() {
            0
        } else {
            self.store.stage(tenant, &stagings).await?.into_iter().filter(|new| *new).count()
        };
        crate::faults::crash_point("issue-sync:after-stage").await;
        self.flush(tenant).await?;
        Ok(new)
    }

    /// Publishes whatever the tenant's outbox holds (this call's changes, and any a crashed one
    /// left), then deletes what was published.
    pub async fn flush(&self, tenant: &TenantId) -> Result<usize, SyncError> {
        let entries = self.store.outbox(tenant).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let mut by_site: BTreeMap<SiteId, (Vec<OutboxEntry>, Vec<OutboxEntry>)> = BTreeMap::new();
        for entry in entries {
            let (updates, deletions) = by_site.entry(entry.site.clone()).or_default();
            if entry.deleted { deletions.push(entry) } else { updates.push(entry) }
        }
        let mut published = 0;
        for (site, (updates, deletions)) in by_site {
            for batch in split(&updates, EVENT_BYTES) {
                // An unreadable entry stops the flush (and stays): never cleared unpublished.
                let changes = batch
                    .iter()
                    .map(|e| serde_json::from_str::<serde_json::Value>(&e.payload))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| StoreError::Corrupt(format!("outbox entry: {e}")))?;
                let detail =
                    serde_json::json!({"tenant_id": tenant.as_str(), "site": site.as_str(), "changes": changes});
                self.events.publish(IssuesUpdated::DETAIL_TYPE, &detail).await.map_err(SyncError::Publish)?;
                let ids: Vec<String> = batch.iter().map(|e| e.change_id.clone()).collect();
                self.store.clear_outbox(tenant, &ids).await?;
                published += batch.len();
            }
            for entry in deletions {
                let detail: serde_json::Value =
                    serde_json::from_str(&entry.payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                self.events.publish(IssueDeleted::DETAIL_TYPE, &detail).await.map_err(SyncError::Publish)?;
                self.store.clear_outbox(tenant, std::slice::from_ref(&entry.change_id)).await?;
                published += 1;
            }
        }
        crate::faults::crash_point("issue-sync:after-publish").await;
        Ok(published)
    }
}

/// Consecutive batches of `entries` whose payloads (plus the event's envelope) stay under
/// `limit` bytes; an entry is never split, and every batch holds at least one.
fn split(entries: &[OutboxEntry], limit: usize) -> Vec<&[OutboxEntry]> {
    // tenant id, site and the keys around the list: generously bounded.
    const ENVELOPE: usize = 1024;
    let mut batches = Vec::new();
    let (mut start, mut size) = (0, ENVELOPE);
    for (i, entry) in entries.iter().enumerate() {
        let cost = entry.payload.len() + 1;
        if i > start && size + cost > limit {
            batches.push(&entries[start..i]);
            (start, size) = (i, ENVELOPE);
        }
        size += cost;
    }
    if start < entries.len() {
        batches.push(&entries[start..]);
    }
    batches
}

#[cfg(test)]
mod tests;
