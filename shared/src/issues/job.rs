//! One create-issues job: claim each action item in the ledger, find what an interrupted attempt
//! may have created, create the rest in bulk, record every outcome.

use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::{
    ActionItem, Assignees, BULK_CHUNK, BulkOutcome, CreateContext, ItemResult, ItemStatus, Lookups, bulk_create,
    find_by_marker,
};
use crate::atlassian::AtlassianError;
use crate::config::SearchIndex;
use crate::domain::TenantId;
use crate::ids::{IssueId, IssueKey, ItemId, SiteId};
use crate::jobs::bounded;
use crate::jobs::lease::Lease;
use crate::metrics::{self, Metric, Sample};
use crate::settings::AssigneeMatching;
use crate::store::{Claim, IssueLedger, ItemDone, ItemStart, LookupCache, RecordedIssue, StoreError};

pub use crate::store::LEDGER_IN_FLIGHT;

/// `issue/bulk` calls of one job in flight at once (each up to 50 issues): four overlap the
/// network's latency and Jira's per-request time without one tenant's job becoming a burst that
/// Jira Cloud's rate limiter answers with 429s.
pub const BULK_IN_FLIGHT: usize = 4;

/// The ledger write that ends an item's attempt.
enum Record {
    Complete(RecordedIssue),
    Fail(String),
    /// Give it back, still pending: the next attempt looks for its marker first.
    Release,
}

/// The ledger's name for an action item.
fn item_id(item: &ActionItem) -> ItemId {
    ItemId::new(item.id.clone())
}

pub struct IssueJob<'a> {
    pub ctx: CreateContext<'a>,
    pub ledger: &'a dyn IssueLedger,
    /// Assignee answers remembered from earlier jobs of the tenant (see `issues::lookups`).
    pub cache: &'a dyn LookupCache,
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

/// The items a look-up did not find: `trusted`, searched after Jira's index could show what their
/// interrupted attempt created (safe to create); `waiting`, searched too early, with their attempt
/// time (searched again once the index caught up).
struct Unseen<'i> {
    waiting: Vec<(Pending<'i>, OffsetDateTime)>,
    trusted: Vec<Pending<'i>>,
}

impl IssueJob<'_> {
    fn recorded(&self, item: &ActionItem, issue: &super::CreatedIssue) -> RecordedIssue {
        RecordedIssue {
            key: IssueKey::new(issue.key.clone()),
            id: IssueId::new(issue.id.clone()),
            site: SiteId::new(self.ctx.session.site_id()),
            report_id: item.report_id.clone(),
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
            report_id: item.report_id.clone(),
        }
    }

    /// Results in the order of `items`.
    ///
    /// Every ledger step is the same conditional write per item as when they ran one after the
    /// other — only [`LEDGER_IN_FLIGHT`] of them are in flight at once, so 500 items cost ~16
    /// round-trip times per step instead of 500. Bulk chunks go out [`BULK_IN_FLIGHT`] at a time.
    /// Everything runs inside this one future (no spawned tasks), so a crash at any step drops
    /// all of it at once, as a dying Lambda instance would.
    pub async fn run(&self, items: &[ActionItem]) -> Result<Vec<ItemResult>, StoreError> {
        let owner = uuid::Uuid::new_v4().to_string();
        let owner = owner.as_str();
        let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
        let mut to_create: Vec<Pending<'_>> = Vec::new();
        let mut resumed: Vec<(Pending<'_>, OffsetDateTime)> = Vec::new();
        let lease = Lease::new(self.lease);
        // The bound on ledger writes holds for the whole job, across the chunks in flight.
        let slots = &Semaphore::new(LEDGER_IN_FLIGHT);

        // One claim of every item (the ledger may take fresh ones in batches); an item another
        // delivery holds is waited for through the lease, one claim at a time as before.
        let ids: Vec<ItemId> = items.iter().map(item_id).collect();
        let claimed_at = Instant::now();
        let first = self.ledger.claim_all(self.tenant, owner, lease.until(), &ids).await?;
        let claims: Vec<_> = items
            .iter()
            .zip(ids.iter().zip(first))
            .enumerate()
            .map(|(index, (item, (id, claim)))| {
                let lease = &lease;
                async move {
                    let claim = match claim {
                        Claim::Held { .. } => {
                            lease.claim(|until| self.ledger.claim(self.tenant, id, owner, until)).await?
                        }
                        answer => answer,
                    };
                    if let Claim::Ours(ItemStart::Resumed { legacy_marker: true, .. }) = claim {
                        // The claim just stamped the record as keyed: put back that its issue
                        // may carry the old form, so a crash now can't lose that.
                        self.ledger.mark_legacy_marker(self.tenant, id, owner).await?;
                    }
                    Ok::<_, StoreError>((index, item, claim))
                }
            })
            .collect();
        for claim in bounded(claims, LEDGER_IN_FLIGHT).await {
            let (index, item, claim) = claim?;
            match claim {
                Claim::Ours(ItemStart::Fresh | ItemStart::Retry) => {
                    to_create.push(Pending { index, item, legacy_marker: false })
                }
                Claim::Ours(ItemStart::Resumed { attempted_before, legacy_marker }) => {
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

        let unseen = self.look_up(resumed, owner, &mut results).await?;
        let after_wait = self.after_the_index_caught_up(unseen, &to_create, owner, &mut results).await?;
        to_create.extend(after_wait);

        let match_emails = self.ctx.settings.assignee_matching == AssigneeMatching::Email;
        let wanted: Vec<&ActionItem> = to_create.iter().map(|p| p.item).collect();
        let lookups = Lookups { cache: self.cache, tenant: self.tenant, markers: self.ctx.markers };
        let project = &self.ctx.settings.project_key;
        let assignees = Assignees::resolve_all(self.ctx.session, project, &wanted, match_emails, &lookups).await;
        let mut ready = Vec::new();
        let mut refused = Vec::new();
        for (pending, assignee) in to_create.into_iter().zip(assignees) {
            let (assignee, note) = match assignee {
                Some(Ok(id)) => (Some(id), None),
                Some(Err(note)) => (None, Some(note)),
                None => (None, None),
            };
            match self.ctx.prepare(pending.item, assignee.as_deref(), note) {
                Ok(prepared) => ready.push((pending, prepared)),
                Err(message) => refused.push((pending, message)),
            }
        }
        let refused = self
            .record_all(
                refused.into_iter().map(|(pending, message)| {
                    let result = self.result(pending.item, ItemStatus::Failed, None, Some(message.clone()), false);
                    (pending.index, pending.item, Record::Fail(message), result)
                }),
                owner,
                slots,
            )
            .await?;
        for (index, result) in refused {
            results[index] = Some(result);
        }

        let chunks: Vec<_> =
            ready.chunks(BULK_CHUNK).map(|chunk| self.create_chunk(chunk, owner, slots, claimed_at)).collect();
        for chunk in bounded(chunks, BULK_IN_FLIGHT).await {
            for (index, result) in chunk? {
                results[index] = Some(result);
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// One `issue/bulk` call and the ledger records of its outcomes.
    ///
    /// A create goes out only while its items' leases hold: a delivery that takes an item over
    /// trusts that nothing of ours was sent after our lease ended (`ItemStart::Resumed`). So a
    /// chunk that waited (for the bulk bound, the governor, lookups) past a third of the lease
    /// renews its items first and leaves out any another delivery took over meanwhile, and every
    /// chunk keeps its leases renewed while the call — with its retries — is in flight.
    async fn create_chunk(
        &self,
        chunk: &[(Pending<'_>, super::Prepared)],
        owner: &str,
        slots: &Semaphore,
        claimed_at: Instant,
    ) -> Result<Vec<(usize, ItemResult)>, StoreError> {
        let mut taken_over = Vec::new();
        let chunk: Vec<&(Pending<'_>, super::Prepared)> = if claimed_at.elapsed() > self.lease / 3 {
            let items: Vec<&ActionItem> = chunk.iter().map(|(p, _)| p.item).collect();
            let ours = self.renew(&items, owner, slots).await?;
            let mut held = Vec::new();
            for (entry, ours) in chunk.iter().zip(ours) {
                if ours {
                    held.push(entry);
                } else {
                    let message = "another delivery of this event took this item over".to_owned();
                    taken_over.push((
                        entry.0.index,
                        self.result(entry.0.item, ItemStatus::Failed, None, Some(message), true),
                    ));
                }
            }
            held
        } else {
            chunk.iter().collect()
        };
        if chunk.is_empty() {
            return Ok(taken_over);
        }
        let fields: Vec<_> = chunk.iter().map(|(_, p)| p.fields.clone()).collect();
        let items: Vec<&ActionItem> = chunk.iter().map(|(p, _)| p.item).collect();
        let sent = self.holding(bulk_create(self.ctx.session, &fields), &items, owner, slots).await?;
        let records: Vec<_> = match sent {
            Ok(outcomes) => {
                crate::faults::crash_point("issues_created").await;
                chunk
                    .iter()
                    .zip(outcomes)
                    .map(|((pending, prepared), outcome)| {
                        let item = pending.item;
                        match outcome {
                            BulkOutcome::Created(issue) => {
                                let result = self.result(
                                    item,
                                    ItemStatus::Created,
                                    Some(&issue.key),
                                    prepared.note.clone(),
                                    false,
                                );
                                (pending.index, item, Record::Complete(self.recorded(item, &issue)), result)
                            }
                            BulkOutcome::Failed { message, retryable } => {
                                let result = self.result(item, ItemStatus::Failed, None, Some(message.clone()), retryable);
                                (pending.index, item, Record::Fail(message), result)
                            }
                            BulkOutcome::Unknown => {
                                let message = "Jira's answer did not account for this issue; it will be looked up by its marker on retry";
                                let result = self.result(item, ItemStatus::Failed, None, Some(message.into()), true);
                                (pending.index, item, Record::Release, result)
                            }
                        }
                    })
                    .collect()
            }
            Err(e) => {
                // The request may or may not have reached Jira: the items stay pending, so the
                // next attempt looks for their markers before creating anything.
                tracing::warn!(error = %e, items = chunk.len(), "bulk create failed");
                chunk.iter().map(|(p, _)| (p.index, p.item, Record::Release, self.failure(p.item, &e))).collect()
            }
        };
        let mut answered = self.record_all(records, owner, slots).await?;
        answered.extend(taken_over);
        Ok(answered)
    }

    /// Renews the leases of `items` to a full lease from now; answers, per item, whether it is
    /// still ours.
    async fn renew(&self, items: &[&ActionItem], owner: &str, slots: &Semaphore) -> Result<Vec<bool>, StoreError> {
        let until = OffsetDateTime::now_utc() + self.lease;
        let renewals: Vec<_> = items
            .iter()
            .map(|item| async move {
                let _slot = slots.acquire().await.ok();
                self.ledger.extend(self.tenant, &item_id(item), owner, until).await
            })
            .collect();
        bounded(renewals, LEDGER_IN_FLIGHT).await.into_iter().collect()
    }

    /// Runs `work`, renewing the leases of `items` every third of a lease until it is done. A
    /// renewal that fails ends the work (dropped, as a crash would): its items stay pending and
    /// the next attempt looks for their markers first.
    async fn holding<T>(
        &self,
        work: impl std::future::Future<Output = T>,
        items: &[&ActionItem],
        owner: &str,
        slots: &Semaphore,
    ) -> Result<T, StoreError> {
        tokio::pin!(work);
        let beat = self.lease / 3;
        loop {
            tokio::select! {
                done = &mut work => return Ok(done),
                _ = tokio::time::sleep(beat) => {
                    self.renew(items, owner, slots).await?;
                }
            }
        }
    }

    /// Writes each item's outcome to the ledger: the created ones together
    /// ([`IssueLedger::complete_all`]), the rest [`LEDGER_IN_FLIGHT`] at a time; answers the
    /// results by item index once their record is written (a result is never reported for an
    /// outcome the ledger does not hold).
    async fn record_all(
        &self,
        records: impl IntoIterator<Item = (usize, &ActionItem, Record, ItemResult)>,
        owner: &str,
        slots: &Semaphore,
    ) -> Result<Vec<(usize, ItemResult)>, StoreError> {
        let mut completed = Vec::new();
        let mut issues = Vec::new();
        let mut others = Vec::new();
        for (index, item, record, result) in records {
            match record {
                Record::Complete(issue) => {
                    issues.push((item_id(item), issue));
                    completed.push((index, result));
                }
                record => others.push((index, item, record, result)),
            }
        }
        let writes: Vec<_> = others
            .into_iter()
            .map(|(index, item, record, result)| async move {
                // Never closed, so acquiring can't fail; a closed semaphore would only lift the bound.
                let _slot = slots.acquire().await.ok();
                let id = item_id(item);
                match &record {
                    Record::Fail(message) => {
                        self.ledger.fail(self.tenant, &id, owner, message).await?;
                        metrics::record(Sample::count(Metric::ItemsFailed));
                    }
                    Record::Release => self.ledger.release(self.tenant, &id, owner).await?,
                    Record::Complete(issue) => self.ledger.complete(self.tenant, &id, owner, issue).await?,
                }
                Ok((index, result))
            })
            .collect();
        // The completions of one chunk go to the ledger together (one transaction in DynamoDB).
        let completions = async {
            let _slot = slots.acquire().await.ok();
            self.ledger.complete_all(self.tenant, owner, &issues).await
        };
        let (written, completions) = tokio::join!(bounded(writes, LEDGER_IN_FLIGHT), completions);
        completions?;
        // Counted once recorded: what the ledger holds is what the metrics say.
        if !issues.is_empty() {
            metrics::record(Sample::new(Metric::ItemsCreated, issues.len() as f64));
        }
        let mut answered: Vec<(usize, ItemResult)> = written.into_iter().collect::<Result<_, StoreError>>()?;
        answered.extend(completed);
        Ok(answered)
    }

    /// Looks for the issues interrupted attempts may have created; answers the items not found,
    /// with when their attempt ended.
    async fn look_up<'i>(
        &self,
        resumed: Vec<(Pending<'i>, OffsetDateTime)>,
        owner: &str,
        results: &mut [Option<ItemResult>],
    ) -> Result<Unseen<'i>, StoreError> {
        let mut unseen = Vec::new();
        let mut trusted = Vec::new();
        for (pending, attempted_before) in resumed {
            let item = pending.item;
            // A miss says nothing about an issue the index could not show yet when the search
            // started: such a miss keeps its attempt time and is searched again after the wait.
            let searched_at = OffsetDateTime::now_utc();
            // The old, guessable form only for records that predate keyed markers: anyone could
            // plant an issue carrying it.
            let [keyed, legacy] = self.ctx.markers.issue_forms(self.ctx.tenant, &item.id);
            let markers = if pending.legacy_marker { vec![keyed, legacy] } else { vec![keyed] };
            match find_by_marker(self.ctx.session, &self.ctx.settings.project_key, &markers).await {
                Ok(Some(found)) => {
                    tracing::info!(item = %item.id, key = %found.key, "found the issue an interrupted attempt created");
                    self.ledger.complete(self.tenant, &item_id(item), owner, &self.recorded(item, &found)).await?;
                    // Its creator never recorded it (its answer was lost, or it died): counted here.
                    metrics::record(Sample::count(Metric::ItemsCreated));
                    results[pending.index] =
                        Some(self.result(item, ItemStatus::Existing, Some(&found.key), None, false));
                }
                Ok(None) if searched_at >= attempted_before + self.search_index.delay => trusted.push(pending),
                Ok(None) => unseen.push((pending, attempted_before)),
                Err(e) => {
                    self.ledger.release(self.tenant, &item_id(item), owner).await?;
                    results[pending.index] = Some(self.failure(item, &e));
                }
            }
        }
        Ok(Unseen { waiting: unseen, trusted })
    }

    /// A miss is trusted only once Jira's index had time to show what the interrupted attempt
    /// may have created: the job waits for that once (not per item) when it fits in the wait
    /// budget and searches again; otherwise the items end retryable — never created blind.
    async fn after_the_index_caught_up<'i>(
        &self,
        unseen: Unseen<'i>,
        also_held: &[Pending<'_>],
        owner: &str,
        results: &mut [Option<ItemResult>],
    ) -> Result<Vec<Pending<'i>>, StoreError> {
        let Unseen { waiting: unseen, mut trusted } = unseen;
        // Every miss left was searched before the index could show its attempt: search again
        // once it can, even when that moment has passed during the searches (no wait left).
        let Some(latest) = unseen.iter().map(|(_, at)| *at).max() else { return Ok(trusted) };
        let wait = (latest + self.search_index.delay - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        if wait > self.search_index.max_wait {
            for (pending, _) in unseen {
                self.ledger.release(self.tenant, &item_id(pending.item), owner).await?;
                let message = "an interrupted attempt may have created this issue and Jira's search may not show it yet; it will be looked up again".to_owned();
                results[pending.index] = Some(self.result(pending.item, ItemStatus::Failed, None, Some(message), true));
            }
            return Ok(trusted);
        }
        // Hold every claimed item through the wait and the creates that follow, so no other
        // delivery takes one over meanwhile.
        let until = OffsetDateTime::now_utc() + wait + self.lease;
        let held = unseen.iter().map(|(p, _)| p.item).chain(also_held.iter().map(|p| p.item));
        let extends: Vec<_> = held
            .map(|item| async move { self.ledger.extend(self.tenant, &item_id(item), owner, until).await })
            .collect();
        // An item lost here is found again before its create: `create_chunk` renews a late chunk.
        bounded(extends, LEDGER_IN_FLIGHT).await.into_iter().collect::<Result<Vec<bool>, _>>()?;
        tracing::info!(
            items = unseen.len(),
            wait_ms = wait.whole_milliseconds() as u64,
            "waiting for Jira's search index before creating"
        );
        tokio::time::sleep(wait.unsigned_abs()).await;
        let again = self.look_up(unseen, owner, results).await?;
        // Searched after the wait, so each miss now started after the index caught up.
        trusted.extend(again.trusted);
        trusted.extend(again.waiting.into_iter().map(|(pending, _)| pending));
        Ok(trusted)
    }

    fn failure(&self, item: &ActionItem, error: &AtlassianError) -> ItemResult {
        self.result(item, ItemStatus::Failed, None, Some(error.to_string()), error.is_retryable())
    }
}
