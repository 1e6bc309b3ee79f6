//! One create-issues job: claim each action item in the ledger, find what an interrupted attempt
//! may have created, create the rest in bulk, record every outcome.

use std::time::Duration;

use time::OffsetDateTime;

use super::{
    ActionItem, AssigneeCache, BULK_CHUNK, BulkOutcome, CreateContext, ItemResult, ItemStatus, bulk_create,
    find_by_marker, marker_label,
};
use crate::atlassian::AtlassianError;
use crate::domain::TenantId;
use crate::settings::AssigneeMatching;
use crate::store::{Claim, IssueLedger, StoreError};

/// How long a job waits for another invocation that holds an item, at most.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub struct IssueJob<'a> {
    pub ctx: CreateContext<'a>,
    pub ledger: &'a dyn IssueLedger,
    pub tenant: &'a TenantId,
    /// How long a claim holds an item: longer than one bulk request can take.
    pub lease: Duration,
}

struct Pending<'i> {
    index: usize,
    item: &'i ActionItem,
}

impl IssueJob<'_> {
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
        let give_up = OffsetDateTime::now_utc() + MAX_WAIT;

        for (index, item) in items.iter().enumerate() {
            loop {
                let until = OffsetDateTime::now_utc() + self.lease;
                match self.ledger.claim(self.tenant, &item.id, &owner, until).await? {
                    Claim::Fresh | Claim::Retry => to_create.push(Pending { index, item }),
                    Claim::Resumed => {
                        match find_by_marker(self.ctx.session, &marker_label(self.ctx.tenant, &item.id)).await {
                            Ok(Some(found)) => {
                                tracing::info!(item = %item.id, key = %found.key, "found the issue an interrupted attempt created");
                                self.ledger.complete(self.tenant, &item.id, &owner, &found.key, &found.id).await?;
                                results[index] =
                                    Some(self.result(item, ItemStatus::Existing, Some(&found.key), None, false));
                            }
                            Ok(None) => to_create.push(Pending { index, item }),
                            Err(e) => {
                                self.ledger.release(self.tenant, &item.id, &owner).await?;
                                results[index] = Some(self.failure(item, &e));
                            }
                        }
                    }
                    Claim::Done { key, deleted, .. } => {
                        let note = deleted
                            .then(|| "the issue created for this item was deleted; it is not created again".to_owned());
                        results[index] = Some(self.result(item, ItemStatus::Existing, Some(&key), note, false));
                    }
                    Claim::Busy { until } => {
                        if OffsetDateTime::now_utc() >= give_up {
                            let message = "another delivery of this event is still creating this issue".to_owned();
                            results[index] = Some(self.result(item, ItemStatus::Failed, None, Some(message), true));
                        } else {
                            // Wait for the holder to finish (its lease is the upper bound), then look again.
                            let wait = (until - OffsetDateTime::now_utc())
                                .clamp(time::Duration::milliseconds(100), time::Duration::seconds(1));
                            tokio::time::sleep(wait.unsigned_abs()).await;
                            continue;
                        }
                    }
                }
                break;
            }
        }

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
                    self.ledger.fail(self.tenant, &pending.item.id, &owner, &message).await?;
                    results[pending.index] =
                        Some(self.result(pending.item, ItemStatus::Failed, None, Some(message), false));
                }
            }
        }

        for chunk in ready.chunks(BULK_CHUNK) {
            let fields: Vec<_> = chunk.iter().map(|(_, p)| p.fields.clone()).collect();
            match bulk_create(self.ctx.session, &fields).await {
                Ok(outcomes) => {
                    crate::faults::crash_point("issues_created");
                    for ((pending, prepared), outcome) in chunk.iter().zip(outcomes) {
                        let item = pending.item;
                        results[pending.index] = Some(match outcome {
                            BulkOutcome::Created(issue) => {
                                self.ledger.complete(self.tenant, &item.id, &owner, &issue.key, &issue.id).await?;
                                self.result(item, ItemStatus::Created, Some(&issue.key), prepared.note.clone(), false)
                            }
                            BulkOutcome::Failed { message, retryable } => {
                                self.ledger.fail(self.tenant, &item.id, &owner, &message).await?;
                                self.result(item, ItemStatus::Failed, None, Some(message), retryable)
                            }
                            BulkOutcome::Unknown => {
                                self.ledger.release(self.tenant, &item.id, &owner).await?;
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
                        self.ledger.release(self.tenant, &pending.item.id, &owner).await?;
                        results[pending.index] = Some(self.failure(pending.item, &e));
                    }
                }
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    fn failure(&self, item: &ActionItem, error: &AtlassianError) -> ItemResult {
        self.result(item, ItemStatus::Failed, None, Some(error.to_string()), error.is_retryable())
    }
}
