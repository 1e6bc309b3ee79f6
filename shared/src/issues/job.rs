//! One create-issues job: claim each action item in the ledger, find what an interrupted attempt
//! may have created, create the rest in bulk, record every outcome.

use std::time::Duration;

use time::OffsetDateTime;

use super::{
    ActionItem, AssigneeCache, BULK_CHUNK, BulkOutcome, CreateContext, ItemResult, ItemStatus, bulk_create,
    find_by_marker,
};
use crate::atlassian::AtlassianError;
use crate::config::SearchIndex;
use crate::domain::TenantId;
use crate::ids::{IssueId, IssueKey, ItemId, SiteId};
use crate::jobs::lease::Lease;
use crate::settings::AssigneeMatching;
use crate::store::{Claim, IssueLedger, ItemDone, ItemStart, RecordedIssue, StoreError};

/// The ledger's name for an action item.
fn item_id(item: &ActionItem) -> ItemId {
    ItemId::new(item.id.clone())
}

pub struct IssueJob<'a> {
    pub ctx: CreateContext<'a>,
    pub ledger: &'a dyn IssueLedger,
    pub tenant: &'a TenantId,
    /// How long a claim holds an item: longer than one bulk request can take.
    pub lease: Duration,
    pub search_index: SearchIndex,
}

struct Pending<'i> {
    index: usize,
    item: &'i ActionItem,
    /// Its issue may carry the marker form used before markers were keyed.
    legacy_marker: bool,
}

impl IssueJob<'_> {
    fn recorded(&self, issue: &super::CreatedIssue) -> RecordedIssue {
        RecordedIssue {
            key: IssueKey::new(issue.key.clone()),
            id: IssueId::new(issue.id.clone()),
            site: SiteId::new(self.ctx.session.site_id()),
        }
    }

    fn url(&self, key: &str) -> String {
        format!("{}/browse/{key}", self.ctx.session.web_root().trim_end_matches('/'))
    }

    fn result(
        &self,
        item: &ActionItem,
        status: ItemStatus,
        key: Option<&str>,
        message: Option<String>,
        retryable: bool,
    ) -> ItemResult {
        ItemResult {
            action_item_id: item.id.clone(),
            status,
            key: key.map(str::to_owned),
            url: key.map(|k| self.url(k)),
            message,
            retryable,
        }
    }

    /// Results in the order of `items`.
    pub async fn run(&self, items: &[ActionItem]) -> Result<Vec<ItemResult>, StoreError> {
        let owner = uuid::Uuid::new_v4().to_string();
        let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
        let mut to_create: Vec<Pending<'_>> = Vec::new();
        let mut resumed: Vec<(Pending<'_>, OffsetDateTime)> = Vec::new();
        let lease = Lease::new(self.lease);

        for (index, item) in items.iter().enumerate() {
            let id = item_id(item);
            match lease.claim(|until| self.ledger.claim(self.tenant, &id, &owner, until)).await? {
                Claim::Ours(ItemStart::Fresh | ItemStart::Retry) => {
                    to_create.push(Pending { index, item, legacy_marker: false })
                }
                Claim::Ours(ItemStart::Resumed { attempted_before, legacy_marker }) => {
                    if legacy_marker {
                        // The claim just stamped the record as keyed: put back that its issue
                        // may carry the old form, so a crash now can't lose that.
                        self.ledger.mark_legacy_marker(self.tenant, &item_id(item), &owner).await?;
                    }
                    resumed.push((Pending { index, item, legacy_marker }, attempted_before));
                }
                Claim::Done(ItemDone { key, deleted, site, .. }) => {
                    let elsewhere = site.is_some_and(|s| s != self.ctx.session.site_id());
                    let note = if deleted {
                        Some("the issue created for this item was deleted; it is not created again".to_owned())
                    } else if elsewhere {
                        Some("the issue for this item was created on the site connected before; it is not created again here".to_owned())
                    } else {
                        None
                    };
                    results[index] = Some(self.result(item, ItemStatus::Existing, Some(key.as_str()), note, false));
                }
                // Still held by another delivery when the wait is over.
                Claim::Held { .. } => {
                    let message = "another delivery of this event is still creating this issue".to_owned();
                    results[index] = Some(self.result(item, ItemStatus::Failed, None, Some(message), true));
                }
            }
        }

        let unseen = self.look_up(resumed, &owner, &mut results).await?;
        let after_wait = self.after_the_index_caught_up(unseen, &to_create, &owner, &mut results).await?;
        to_create.extend(after_wait);

        let mut assignees = AssigneeCache::default();
        let mut ready = Vec::new();
        for pending in to_create {
            let match_emails = self.ctx.settings.assignee_matching == AssigneeMatching::Email;
            let (assignee, note) = match assignees
                .resolve(self.ctx.session, &self.ctx.settings.project_key, pending.item, match_emails)
                .await
            {
                Some(Ok(id)) => (Some(id), None),
                Some(Err(note)) => (None, Some(note)),
                None => (None, None),
            };
            match self.ctx.prepare(pending.item, assignee.as_deref(), note) {
                Ok(prepared) => ready.push((pending, prepared)),
                Err(message) => {
                    self.ledger.fail(self.tenant, &item_id(pending.item), &owner, &message).await?;
                    results[pending.index] =
                        Some(self.result(pending.item, ItemStatus::Failed, None, Some(message), false));
                }
            }
        }

        for chunk in ready.chunks(BULK_CHUNK) {
            let fields: Vec<_> = chunk.iter().map(|(_, p)| p.fields.clone()).collect();
            match bulk_create(self.ctx.session, &fields).await {
                Ok(outcomes) => {
                    crate::faults::crash_point("issues_created").await;
                    for ((pending, prepared), outcome) in chunk.iter().zip(outcomes) {
                        let item = pending.item;
                        results[pending.index] = Some(match outcome {
                            BulkOutcome::Created(issue) => {
                                self.ledger
                                    .complete(self.tenant, &item_id(item), &owner, &self.recorded(&issue))
                                    .await?;
                                self.result(item, ItemStatus::Created, Some(&issue.key), prepared.note.clone(), false)
                            }
                            BulkOutcome::Failed { message, retryable } => {
                                self.ledger.fail(self.tenant, &item_id(item), &owner, &message).await?;
                                self.result(item, ItemStatus::Failed, None, Some(message), retryable)
                            }
                            BulkOutcome::Unknown => {
                                self.ledger.release(self.tenant, &item_id(item), &owner).await?;
                                let message = "Jira's answer did not account for this issue; it will be looked up by its marker on retry";
                                self.result(item, ItemStatus::Failed, None, Some(message.into()), true)
                            }
                        });
                    }
                }
                Err(e) => {
                    // The request may or may not have reached Jira: the items stay pending, so the
                    // next attempt looks for their markers before creating anything.
                    tracing::warn!(error = %e, items = chunk.len(), "bulk create failed");
                    for (pending, _) in chunk {
                        self.ledger.release(self.tenant, &item_id(pending.item), &owner).await?;
                        results[pending.index] = Some(self.failure(pending.item, &e));
                    }
                }
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Looks for the issues interrupted attempts may have created; answers the items not found,
    /// with when their attempt ended.
    async fn look_up<'i>(
        &self,
        resumed: Vec<(Pending<'i>, OffsetDateTime)>,
        owner: &str,
        results: &mut [Option<ItemResult>],
    ) -> Result<Vec<(Pending<'i>, OffsetDateTime)>, StoreError> {
        let mut unseen = Vec::new();
        for (pending, attempted_before) in resumed {
            let item = pending.item;
            // The old, guessable form only for records that predate keyed markers: anyone could
            // plant an issue carrying it.
            let [keyed, legacy] = self.ctx.markers.issue_forms(self.ctx.tenant, &item.id);
            let markers = if pending.legacy_marker { vec![keyed, legacy] } else { vec![keyed] };
            match find_by_marker(self.ctx.session, &self.ctx.settings.project_key, &markers).await {
                Ok(Some(found)) => {
                    tracing::info!(item = %item.id, key = %found.key, "found the issue an interrupted attempt created");
                    self.ledger.complete(self.tenant, &item_id(item), owner, &self.recorded(&found)).await?;
                    results[pending.index] =
                        Some(self.result(item, ItemStatus::Existing, Some(&found.key), None, false));
                }
                Ok(None) => unseen.push((pending, attempted_before)),
                Err(e) => {
                    self.ledger.release(self.tenant, &item_id(item), owner).await?;
                    results[pending.index] = Some(self.failure(item, &e));
                }
            }
        }
        Ok(unseen)
    }

    /// A miss is trusted only once Jira's index had time to show what the interrupted attempt
    /// may have created: the job waits for that once (not per item) when it fits in the wait
    /// budget and searches again; otherwise the items end retryable — never created blind.
    async fn after_the_index_caught_up<'i>(
        &self,
        unseen: Vec<(Pending<'i>, OffsetDateTime)>,
        also_held: &[Pending<'_>],
        owner: &str,
        results: &mut [Option<ItemResult>],
    ) -> Result<Vec<Pending<'i>>, StoreError> {
        let Some(latest) = unseen.iter().map(|(_, at)| *at).max() else { return Ok(Vec::new()) };
        let wait = (latest + self.search_index.delay - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        if wait.is_zero() {
            return Ok(unseen.into_iter().map(|(pending, _)| pending).collect());
        }
        if wait > self.search_index.max_wait {
            for (pending, _) in unseen {
                self.ledger.release(self.tenant, &item_id(pending.item), owner).await?;
                let message = "an interrupted attempt may have created this issue and Jira's search may not show it yet; it will be looked up again".to_owned();
                results[pending.index] = Some(self.result(pending.item, ItemStatus::Failed, None, Some(message), true));
            }
            return Ok(Vec::new());
        }
        // Hold every claimed item through the wait and the creates that follow, so no other
        // delivery takes one over meanwhile.
        let until = OffsetDateTime::now_utc() + wait + self.lease;
        for item in unseen.iter().map(|(p, _)| p.item).chain(also_held.iter().map(|p| p.item)) {
            self.ledger.extend(self.tenant, &item_id(item), owner, until).await?;
        }
        tracing::info!(
            items = unseen.len(),
            wait_ms = wait.whole_milliseconds() as u64,
            "waiting for Jira's search index before creating"
        );
        tokio::time::sleep(wait.unsigned_abs()).await;
        let still_unseen = self.look_up(unseen, owner, results).await?;
        Ok(still_unseen.into_iter().map(|(pending, _)| pending).collect())
    }

    fn failure(&self, item: &ActionItem, error: &AtlassianError) -> ItemResult {
        self.result(item, ItemStatus::Failed, None, Some(error.to_string()), error.is_retryable())
    }
}
