//! [`IssueSyncStore`] on the table; its keys are in the schema table in `mod.rs`.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, Put, TransactWriteItem, Update, WriteRequest,
};
use time::OffsetDateTime;

use super::connections::SWEEP_INDEX;
use super::{DynamoStore, corrupt, ms, service_error, tenant_pk};
use crate::domain::TenantId;
use crate::ids::{IssueId, IssueKey, ItemId, SiteId};
use crate::store::{
    CreatedIssue, CreatedPage, EnrolledPage, IssueSyncStore, KnownIssue, OutboxEntry, Staging, StateWrite, StoreError,
    SyncCursor, SyncRound,
};

/// The `sweep` index partition of enrolled tenants (connections use `CONNECTION`).
const SYNC_PK: &str = "SYNC";
const ROUND: (&str, &str) = ("ISSUE_SYNC", "ROUND");
const BACKFILL: (&str, &str) = ("ISSUE_SYNC", "BACKFILL");
const OUTBOX: &str = "SYNC_OUTBOX#";
/// DynamoDB takes 100 actions per transaction; a deletion is three.
const ACTIONS_PER_TRANSACTION: usize = 99;
/// BatchGetItem takes 100 keys per request.
const KEYS_PER_BATCH: usize = 100;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

type Item = HashMap<String, AttributeValue>;

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn at_ms(value: Option<i64>) -> Option<OffsetDateTime> {
    value.and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
}

fn cursor_sk(site: &SiteId) -> String {
    format!("SYNC_CURSOR#{site}")
}

impl DynamoStore {
    /// The transaction actions of one change: the conditional ledger write(s) and the outbox put.
    fn staging_actions(&self, tenant: &TenantId, change: &Staging) -> Result<Vec<TransactWriteItem>, StoreError> {
        let pk = tenant_pk(tenant);
        let mut actions = Vec::with_capacity(3);
        match &change.write {
            StateWrite::Seen { state, synced_at } => {
                let json = serde_json::to_string(state).map_err(corrupt)?;
                let update = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(&pk))
                    .key("sk", s(format!("ACTION#{}", change.item_id)))
                    .update_expression("SET jira_state = :state, jira_updated_ms = :updated, synced_at_ms = :at")
                    // Only a newer `updated` than the recorded one: a second sighting (the
                    // overlap, a webhook and a poll) changes nothing and publishes nothing.
                    .condition_expression(
                        "#state = :created AND (attribute_not_exists(jira_updated_ms) OR jira_updated_ms < :updated)",
                    )
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":created", s("created"))
                    .expression_attribute_values(":state", s(json))
                    .expression_attribute_values(":updated", n(ms(state.updated)))
                    .expression_attribute_values(":at", n(ms(*synced_at)))
                    .build()
                    .map_err(corrupt)?;
                actions.push(TransactWriteItem::builder().update(update).build());
            }
            StateWrite::Deleted => {
                for (sk, condition) in [
                    (format!("ISSUE#{}", change.key), Some("#state = :created")),
                    (format!("ACTION#{}", change.item_id), None),
                ] {
                    let mut update = Update::builder()
                        .table_name(&self.table)
                        .key("pk", s(&pk))
                        .key("sk", s(sk))
                        .update_expression("SET #state = :deleted")
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":deleted", s("deleted"));
                    if let Some(condition) = condition {
                        update = update
                            .condition_expression(condition)
                            .expression_attribute_values(":created", s("created"));
                    }
                    actions.push(TransactWriteItem::builder().update(update.build().map_err(corrupt)?).build());
                }
            }
        }
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s(format!("{OUTBOX}{}", change.change_id)))
            .item("change_id", s(&change.change_id))
            .item("site", s(change.site.as_str()))
            .item("kind", s(if matches!(change.write, StateWrite::Deleted) { "deleted" } else { "state" }))
            .item("payload", s(&change.payload))
            .build()
            .map_err(corrupt)?;
        actions.push(TransactWriteItem::builder().put(put).build());
        Ok(actions)
    }

    /// Stages `changes` in one transaction. `Ok(None)` when it went through; otherwise, per
    /// change, `Some(false)` refused by its condition, `None` to try again (only cancelled
    /// because another change was, or a conflicting write).
    async fn stage_batch(
        &self,
        tenant: &TenantId,
        changes: &[&Staging],
    ) -> Result<Option<Vec<Option<bool>>>, StoreError> {
        let mut actions = Vec::new();
        let mut spans = Vec::with_capacity(changes.len());
        for change in changes {
            let these = self.staging_actions(tenant, change)?;
            spans.push(actions.len()..actions.len() + these.len());
            actions.extend(these);
        }
        match self.client.transact_write_items().set_transact_items(Some(actions)).send().await {
            Ok(_) => Ok(None),
            Err(e) => {
                let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = e.as_service_error()
                else {
                    return Err(service_error(e));
                };
                let reasons = cancelled.cancellation_reasons();
                Ok(Some(
                    spans
                        .into_iter()
                        .map(|span| {
                            let refused = reasons
                                .get(span)
                                .is_some_and(|r| r.iter().any(|r| r.code() == Some("ConditionalCheckFailed")));
                            if refused { Some(false) } else { None }
                        })
                        .collect(),
                ))
            }
        }
    }

    /// Every page of a BatchGetItem of `keys` (sort keys under the tenant's partition), with the
    /// keys DynamoDB left unprocessed asked again.
    async fn batch_get(&self, tenant: &TenantId, sks: &[String]) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for chunk in sks.chunks(KEYS_PER_BATCH) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|sk| HashMap::from([("pk".to_owned(), s(tenant_pk(tenant))), ("sk".to_owned(), s(sk))]))
                .collect();
            let mut request =
                Some(KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build().map_err(corrupt)?);
            // Unprocessed keys come back under throttling; a few rounds, then give up loudly.
            for _ in 0..8 {
                let Some(ask) = request.take() else { break };
                let out =
                    self.client.batch_get_item().request_items(&self.table, ask).send().await.map_err(service_error)?;
                found.extend(out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default());
                request = out.unprocessed_keys.unwrap_or_default().remove(&self.table).filter(|k| !k.keys().is_empty());
            }
            if request.is_some() {
                return Err(StoreError::Service {
                    service: "DynamoDB",
                    message: "BatchGetItem left keys unprocessed".into(),
                });
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl IssueSyncStore for DynamoStore {
    async fn enroll(&self, tenant: &TenantId) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(tenant_pk(tenant)))
            .item("sk", s("SYNC"))
            .item("tenant_id", s(tenant.as_str()))
            .item("sweep_pk", s(SYNC_PK))
            .item("sweep_sk", s(tenant.as_str()))
            .send()
            .await
            .map_err(service_error)?;
        Ok(())
    }

    async fn enrolled(&self, after: Option<&str>, limit: usize) -> Result<EnrolledPage, StoreError> {
        let limit = i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(SWEEP_INDEX)
            .expression_attribute_values(":pk", s(SYNC_PK))
            .limit(limit);
        query = match after {
            Some(after) => query
                .key_condition_expression("sweep_pk = :pk AND sweep_sk > :after")
                .expression_attribute_values(":after", s(after)),
            None => query.key_condition_expression("sweep_pk = :pk"),
        };
        let out = query.send().await.map_err(service_error)?;
        let tenants = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| text(item, "tenant_id"))
            .map(|t| TenantId::parse(&t).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        let next = out.last_evaluated_key.and(tenants.last().map(|t| t.to_string()));
        Ok(EnrolledPage { tenants, next })
    }

    async fn sync_round(&self) -> Result<SyncRound, StoreError> {
        let item = self.get((s(ROUND.0), s(ROUND.1))).await?.item.unwrap_or_default();
        Ok(SyncRound { after: text(&item, "after"), started_at: at_ms(number(&item, "started_at_ms")) })
    }

    async fn save_sync_round(&self, round: &SyncRound) -> Result<(), StoreError> {
        let mut put = self.client.put_item().table_name(&self.table).item("pk", s(ROUND.0)).item("sk", s(ROUND.1));
        if let Some(after) = &round.after {
            put = put.item("after", s(after));
        }
        if let Some(at) = round.started_at {
            put = put.item("started_at_ms", n(ms(at)));
        }
        put.send().await.map_err(service_error)?;
        Ok(())
    }

    async fn cursor(&self, tenant: &TenantId, site: &SiteId) -> Result<SyncCursor, StoreError> {
        let item = self.get((s(tenant_pk(tenant)), s(cursor_sk(site)))).await?.item.unwrap_or_default();
        Ok(SyncCursor {
            updated_since: at_ms(number(&item, "updated_since_ms")),
            deletion_after: text(&item, "deletion_after"),
            deletion_pass_done: at_ms(number(&item, "deletion_pass_done_ms")),
        })
    }

    async fn save_cursor(&self, tenant: &TenantId, site: &SiteId, cursor: &SyncCursor) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(tenant_pk(tenant)))
            .item("sk", s(cursor_sk(site)));
        if let Some(at) = cursor.updated_since {
            put = put.item("updated_since_ms", n(ms(at)));
        }
        if let Some(after) = &cursor.deletion_after {
            put = put.item("deletion_after", s(after));
        }
        if let Some(at) = cursor.deletion_pass_done {
            put = put.item("deletion_pass_done_ms", n(ms(at)));
        }
        put.send().await.map_err(service_error)?;
        Ok(())
    }

    async fn known(&self, tenant: &TenantId, keys: &[IssueKey]) -> Result<Vec<KnownIssue>, StoreError> {
        let unique: BTreeSet<&IssueKey> = keys.iter().collect();
        let sks: Vec<String> = unique.iter().map(|k| format!("ISSUE#{k}")).collect();
        let reverse = self.batch_get(tenant, &sks).await?;
        let mut by_item: HashMap<String, (IssueKey, Option<SiteId>, bool)> = HashMap::new();
        for item in &reverse {
            let (Some(sk), Some(item_id)) = (text(item, "sk"), text(item, "item_id")) else { continue };
            let key = IssueKey::new(sk.trim_start_matches("ISSUE#"));
            let deleted = text(item, "state").as_deref() == Some("deleted");
            by_item.insert(item_id, (key, text(item, "site").map(SiteId::new), deleted));
        }
        let action_sks: Vec<String> = by_item.keys().map(|id| format!("ACTION#{id}")).collect();
        let actions: HashMap<String, Item> = self
            .batch_get(tenant, &action_sks)
            .await?
            .into_iter()
            .filter_map(|item| text(&item, "sk").map(|sk| (sk.trim_start_matches("ACTION#").to_owned(), item)))
            .collect();
        let mut known: Vec<KnownIssue> = by_item
            .into_iter()
            .map(|(item_id, (key, site, deleted))| {
                let action = actions.get(&item_id);
                KnownIssue {
                    key,
                    report_id: action.and_then(|a| text(a, "report_id")),
                    jira_updated_ms: action.and_then(|a| number(a, "jira_updated_ms")),
                    deleted: deleted || action.and_then(|a| text(a, "state")).as_deref() == Some("deleted"),
                    item_id: ItemId::new(item_id),
                    site,
                }
            })
            .collect();
        known.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(known)
    }

    async fn created_issues(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CreatedPage, StoreError> {
        let limit = i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        // `$` sorts right after `#`: every `ACTION#…` key, and nothing else of the tenant's.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .filter_expression("#state = :created")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":from", s("ACTION#"))
            .expression_attribute_values(":to", s("ACTION$"))
            .expression_attribute_values(":created", s("created"))
            .set_exclusive_start_key(
                after.map(|sk| HashMap::from([("pk".to_owned(), s(tenant_pk(tenant))), ("sk".to_owned(), s(sk))])),
            )
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(service_error)?;
        let issues = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                let sk = text(item, "sk")?;
                Some(CreatedIssue {
                    key: IssueKey::new(text(item, "issue_key")?),
                    id: IssueId::new(text(item, "issue_id")?),
                    item_id: ItemId::new(sk.trim_start_matches("ACTION#")),
                    site: text(item, "site").map(SiteId::new),
                })
            })
            .collect();
        let next = out.last_evaluated_key.and_then(|k| k.get("sk").and_then(|v| v.as_s().ok()).cloned());
        Ok(CreatedPage { issues, next })
    }

    async fn stage(&self, tenant: &TenantId, changes: &[Staging]) -> Result<Vec<bool>, StoreError> {
        let mut answers: Vec<Option<bool>> = vec![None; changes.len()];
        let mut start = 0;
        while start < changes.len() {
            // As many changes as fit in one transaction.
            let mut end = start;
            let mut actions = 0;
            while end < changes.len() {
                let cost = if matches!(changes[end].write, StateWrite::Deleted) { 3 } else { 2 };
                if actions + cost > ACTIONS_PER_TRANSACTION {
                    break;
                }
                actions += cost;
                end += 1;
            }
            let mut remaining: Vec<usize> = (start..end).collect();
            // Each refused round settles at least the refused changes; a change that keeps
            // conflicting with another writer ends up in a transaction of its own.
            for round in 0..4 {
                if remaining.is_empty() {
                    break;
                }
                let batch: Vec<&Staging> = if round < 3 {
                    remaining.iter().map(|&i| &changes[i]).collect()
                } else {
                    vec![&changes[remaining[0]]]
                };
                match self.stage_batch(tenant, &batch).await? {
                    None => {
                        for &i in remaining.iter().take(batch.len()) {
                            answers[i] = Some(true);
                        }
                        remaining.drain(..batch.len());
                    }
                    Some(outcomes) => {
                        let mut again = Vec::new();
                        for (&i, outcome) in remaining.iter().zip(outcomes) {
                            match outcome {
                                Some(refused) => answers[i] = Some(refused),
                                None => again.push(i),
                            }
                        }
                        again.extend(remaining.iter().skip(batch.len()));
                        remaining = again;
                    }
                }
            }
            // Still conflicting: one at a time, so each gets a definite answer.
            for i in remaining {
                answers[i] = Some(match self.stage_batch(tenant, &[&changes[i]]).await? {
                    None => true,
                    Some(outcome) => match outcome.first().copied().flatten() {
                        Some(answer) => answer,
                        None => {
                            return Err(StoreError::Service {
                                service: "DynamoDB",
                                message: "a sync change kept conflicting with another write".into(),
                            });
                        }
                    },
                });
            }
            start = end;
        }
        Ok(answers.into_iter().map(|a| a.unwrap_or(false)).collect())
    }

    async fn outbox(&self, tenant: &TenantId) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :outbox)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant)))
                .expression_attribute_values(":outbox", s(OUTBOX))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(service_error)?;
            for item in out.items.unwrap_or_default() {
                entries.push(OutboxEntry {
                    change_id: text(&item, "change_id").ok_or_else(|| corrupt("outbox entry without change_id"))?,
                    site: SiteId::new(text(&item, "site").unwrap_or_default()),
                    deleted: text(&item, "kind").as_deref() == Some("deleted"),
                    payload: text(&item, "payload").unwrap_or_default(),
                });
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(entries)
    }

    async fn clear_outbox(&self, tenant: &TenantId, change_ids: &[String]) -> Result<(), StoreError> {
        // BatchWriteItem takes 25 requests.
        for chunk in change_ids.chunks(25) {
            let mut requests: Vec<WriteRequest> = Vec::with_capacity(chunk.len());
            for id in chunk {
                let delete = DeleteRequest::builder()
                    .key("pk", s(tenant_pk(tenant)))
                    .key("sk", s(format!("{OUTBOX}{id}")))
                    .build()
                    .map_err(corrupt)?;
                requests.push(WriteRequest::builder().delete_request(delete).build());
            }
            for _ in 0..8 {
                if requests.is_empty() {
                    break;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests.clone())
                    .send()
                    .await
                    .map_err(service_error)?;
                requests = out.unprocessed_items.unwrap_or_default().remove(&self.table).unwrap_or_default();
            }
            if !requests.is_empty() {
                return Err(StoreError::Service {
                    service: "DynamoDB",
                    message: "BatchWriteItem left outbox deletions unprocessed".into(),
                });
            }
        }
        Ok(())
    }

    async fn backfill_enrollment(&self, pages: usize) -> Result<bool, StoreError> {
        let scan = |scan: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder| {
            scan.filter_expression("begins_with(sk, :action) AND #state = :created")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":action", s("ACTION#"))
                .expression_attribute_values(":created", s("created"))
                .projection_expression("pk")
        };
        self.resumable_scan(BACKFILL, pages, scan, |items| {
            Box::pin(async move {
                let tenants: BTreeSet<&str> = items
                    .iter()
                    .filter_map(|item| item.get("pk").and_then(|v| v.as_s().ok()))
                    .filter_map(|pk| pk.strip_prefix("TENANT#"))
                    .collect();
                for tenant in tenants {
                    self.enroll(&TenantId::parse(tenant).map_err(corrupt)?).await?;
                }
                Ok(())
            })
        })
        .await
    }
}
