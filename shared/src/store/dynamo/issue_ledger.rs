//! [`IssueLedger`](crate::store::IssueLedger) on the table; its keys are in the schema table in `mod.rs`.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use time::OffsetDateTime;

use super::{DynamoStore, corrupt, is_condition_failure, lease_until, ms, now_ms, service_error, tenant_pk};
use crate::domain::TenantId;
use crate::ids::{IssueId, IssueKey, ItemId, ReportId, SiteId};
use crate::issues::state::JiraState;
use crate::jobs::bounded;
use crate::store::{
    Claim, CreatedItem, IssueLedger, ItemDone, ItemFilter, ItemPage, ItemStart, KeyRecord, LEDGER_IN_FLIGHT, LIST_SCAN,
    RecordedIssue, StoreError,
};

fn action_sk(item_id: &ItemId) -> String {
    format!("ACTION#{item_id}")
}

/// The read model's view of an `ACTION#` record whose issue was created (or deleted since).
/// A stored state that does not read (written by a newer version, say) counts as none yet.
fn created_item(item: &HashMap<String, AttributeValue>) -> Option<CreatedItem> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let number = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
    let done = done(item)?;
    let item_id = ItemId::new(text("sk")?.strip_prefix("ACTION#")?);
    let state = text("jira_state").and_then(|json| match serde_json::from_str::<JiraState>(&json) {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::warn!(item = %item_id, error = %e, "stored Jira state unreadable; listed as not synced");
            None
        }
    });
    Some(CreatedItem {
        item_id,
        key: done.key,
        id: done.id,
        site: done.site,
        report_id: text("report_id").and_then(|r| ReportId::parse(r).ok()),
        deleted: done.deleted,
        state,
        synced_at: number("synced_at_ms")
            .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()),
    })
}

/// Completions written in one transaction: two actions each, DynamoDB takes 100 per transaction.
const COMPLETIONS_PER_TRANSACTION: usize = 50;

/// Fresh items claimed in one transaction (one action each; DynamoDB's limit is 100), and how
/// many of those transactions of a job are in flight at once.
const CLAIMS_PER_TRANSACTION: usize = 100;
const CLAIM_TRANSACTIONS_IN_FLIGHT: usize = 4;

/// What a batched claim learnt of one item.
enum BatchClaim {
    Answered(Claim<ItemStart, ItemDone>),
    /// Not decided by the batch: claim it on its own, under the full condition.
    Alone,
}

/// The item's outcome if its record says it is done (`created`, or `deleted` since).
fn done(item: &HashMap<String, AttributeValue>) -> Option<ItemDone> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let state = text("state");
    (state == "created" || state == "deleted").then(|| ItemDone {
        key: IssueKey::new(text("issue_key")),
        id: IssueId::new(text("issue_id")),
        deleted: state == "deleted",
        site: Some(text("site")).filter(|s| !s.is_empty()).map(SiteId::new),
    })
}

impl DynamoStore {
    /// The two writes that record an item's issue: the item (only while `owner` holds it) and the
    /// issue key's reverse record, in one transaction so neither exists without the other.
    fn completion(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        issue: &RecordedIssue,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let RecordedIssue { key, id, site, report_id } = issue;
        // The report id only where the item named one, so records stay as they were without.
        let (set_report, report) = match report_id {
            Some(report) => (", report_id = :report", Some(AttributeValue::S(report.to_string()))),
            None => ("", None),
        };
        let record = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(action_sk(item_id)))
            .update_expression(format!(
                "SET #state = :created, issue_key = :key, issue_id = :id, site = :site{set_report} REMOVE #owner, lease_until_ms"
            ))
            .set_expression_attribute_values(report.map(|r| HashMap::from([(":report".to_owned(), r)])))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":created", AttributeValue::S("created".into()))
            .expression_attribute_values(":key", AttributeValue::S(key.to_string()))
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .expression_attribute_values(":site", AttributeValue::S(site.to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .build()
            .map_err(corrupt)?;
        let reverse = Put::builder()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(tenant_pk(tenant)))
            .item("sk", AttributeValue::S(format!("ISSUE#{key}")))
            .item("item_id", AttributeValue::S(item_id.to_string()))
            .item("site", AttributeValue::S(site.to_string()))
            .item("state", AttributeValue::S("created".into()))
            .build()
            .map_err(corrupt)?;
        Ok([TransactWriteItem::builder().update(record).build(), TransactWriteItem::builder().put(reverse).build()])
    }

    /// Claims `items` that have no record yet, in one transaction: each a put conditioned on
    /// the record not existing — the first branch of [`IssueLedger::claim`]'s condition, writing
    /// what that claim writes to a fresh record. A refused transaction writes nothing; its
    /// cancellation reasons say which items exist (their old record comes back, so a finished
    /// item is answered without another read) and the others are tried again in a smaller one.
    async fn claim_fresh(
        &self,
        tenant: &TenantId,
        owner: &str,
        until: OffsetDateTime,
        items: &[ItemId],
    ) -> Result<Vec<BatchClaim>, StoreError> {
        let mut answers: Vec<Option<BatchClaim>> = items.iter().map(|_| None).collect();
        let mut remaining: Vec<usize> = (0..items.len()).collect();
        // Each round settles at least one item; two rounds cover a race with one other delivery.
        for _round in 0..3 {
            if remaining.is_empty() {
                break;
            }
            let mut actions = Vec::with_capacity(remaining.len());
            for &i in &remaining {
                let put = Put::builder()
                    .table_name(&self.table)
                    .item("pk", AttributeValue::S(tenant_pk(tenant)))
                    .item("sk", AttributeValue::S(action_sk(&items[i])))
                    .item("state", AttributeValue::S("pending".into()))
                    .item("owner", AttributeValue::S(owner.into()))
                    .item("lease_until_ms", AttributeValue::N(ms(until).to_string()))
                    .item("marker_form", AttributeValue::S("keyed".into()))
                    .condition_expression("attribute_not_exists(pk)")
                    .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                    .build()
                    .map_err(corrupt)?;
                actions.push(TransactWriteItem::builder().put(put).build());
            }
            match self.client.transact_write_items().set_transact_items(Some(actions)).send().await {
                Ok(_) => {
                    for &i in &remaining {
                        answers[i] = Some(BatchClaim::Answered(Claim::Ours(ItemStart::Fresh)));
                    }
                    remaining.clear();
                }
                Err(e) => {
                    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = e.as_service_error()
                    else {
                        return Err(service_error(e));
                    };
                    let reasons = cancelled.cancellation_reasons();
                    let mut again = Vec::new();
                    for (n, &i) in remaining.iter().enumerate() {
                        let reason = reasons.get(n);
                        match reason.and_then(|r| r.code()) {
                            // Refused only because another action was: try it again.
                            Some("None") => again.push(i),
                            Some("ConditionalCheckFailed") => {
                                let finished = reason.and_then(|r| r.item()).and_then(done);
                                answers[i] = Some(match finished {
                                    Some(finished) => BatchClaim::Answered(Claim::Done(finished)),
                                    None => BatchClaim::Alone,
                                });
                            }
                            // A conflict with another delivery's write, or no reason given.
                            _ => answers[i] = Some(BatchClaim::Alone),
                        }
                    }
                    remaining = again;
                }
            }
        }
        Ok(answers.into_iter().map(|a| a.unwrap_or(BatchClaim::Alone)).collect())
    }
}

#[async_trait]
impl IssueLedger for DynamoStore {
    async fn claim_all(
        &self,
        tenant: &TenantId,
        owner: &str,
        until: OffsetDateTime,
        items: &[ItemId],
    ) -> Result<Vec<Claim<ItemStart, ItemDone>>, StoreError> {
        let batches: Vec<_> =
            items.chunks(CLAIMS_PER_TRANSACTION).map(|batch| self.claim_fresh(tenant, owner, until, batch)).collect();
        let mut batched = Vec::with_capacity(items.len());
        for batch in bounded(batches, CLAIM_TRANSACTIONS_IN_FLIGHT).await {
            batched.extend(batch?);
        }
        let claims: Vec<_> = items
            .iter()
            .zip(batched)
            .map(|(id, batched)| async move {
                match batched {
                    BatchClaim::Answered(answer) => Ok(answer),
                    BatchClaim::Alone => self.claim(tenant, id, owner, until).await,
                }
            })
            .collect();
        bounded(claims, LEDGER_IN_FLIGHT).await.into_iter().collect()
    }

    async fn claim(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim<ItemStart, ItemDone>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(action_sk(item_id)))
            // Records made since markers are keyed say so; older ones lack `marker_form`.
            .update_expression(
                "SET #state = :pending, #owner = :owner, lease_until_ms = :until, marker_form = if_not_exists(marker_form, :keyed)",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (#state IN (:pending, :failed) AND lease_until_ms < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .expression_attribute_values(":keyed", AttributeValue::S("keyed".into()))
            .expression_attribute_values(":failed", AttributeValue::S("failed".into()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .expression_attribute_values(":until", AttributeValue::N(ms(until).to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms().to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(
                match out
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("state"))
                    .and_then(|s| s.as_s().ok())
                    .map(String::as_str)
                {
                    None => Claim::Ours(ItemStart::Fresh),
                    Some("failed") => Claim::Ours(ItemStart::Retry),
                    // The old lease end bounds when the interrupted attempt sent its create:
                    // it held the item until then, and a release stamps the moment it gave up.
                    Some(_) => Claim::Ours(ItemStart::Resumed {
                        legacy_marker: out
                            .attributes
                            .as_ref()
                            .and_then(|a| a.get("marker_form"))
                            .and_then(|v| v.as_s().ok())
                            .is_none_or(|form| form == "legacy"),
                        attempted_before: out
                            .attributes
                            .as_ref()
                            .map(lease_until)
                            .transpose()?
                            .unwrap_or_else(OffsetDateTime::now_utc),
                    }),
                },
            ),
            Err(e) if is_condition_failure(&e) => {
                let item = self
                    .get((AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(action_sk(item_id))))
                    .await?
                    .item
                    .unwrap_or_default();
                if let Some(done) = done(&item) {
                    return Ok(Claim::Done(done));
                }
                let until = lease_until(&item)?;
                Ok(Claim::Held { until })
            }
            Err(e) => Err(service_error(e)),
        }
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        issue: &RecordedIssue,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(self.completion(tenant, item_id, owner, issue)?.into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Our lease lapsed and another attempt took the item over; it finds the issue by its
            // marker and records it, so there is nothing to undo here.
            Err(e) if e.as_service_error().and_then(|se| se.code()) == Some("TransactionCanceledException") => {
                tracing::warn!(%item_id, "lease lost before recording; the next owner records the issue");
                Ok(())
            }
            Err(e) => Err(service_error(e)),
        }
    }

    /// Up to 50 completions per transaction (DynamoDB's limit is 100 actions; each completion is
    /// two). The same conditions as one by one: a transaction refused as a whole (one item's lease
    /// lost, or a conflict with another writer) is redone item by item, so each item ends exactly
    /// as `complete` would have left it.
    async fn complete_all(
        &self,
        tenant: &TenantId,
        owner: &str,
        issues: &[(ItemId, RecordedIssue)],
    ) -> Result<(), StoreError> {
        for batch in issues.chunks(COMPLETIONS_PER_TRANSACTION) {
            let mut actions = Vec::with_capacity(batch.len() * 2);
            for (item_id, issue) in batch {
                actions.extend(self.completion(tenant, item_id, owner, issue)?);
            }
            match self.client.transact_write_items().set_transact_items(Some(actions)).send().await {
                Ok(_) => {}
                Err(e) if e.as_service_error().and_then(|se| se.code()) == Some("TransactionCanceledException") => {
                    tracing::info!(items = batch.len(), "batched completion refused; recording item by item");
                    for (item_id, issue) in batch {
                        self.complete(tenant, item_id, owner, issue).await?;
                    }
                }
                Err(e) => return Err(service_error(e)),
            }
        }
        Ok(())
    }

    async fn fail(&self, tenant: &TenantId, item_id: &ItemId, owner: &str, message: &str) -> Result<(), StoreError> {
        let update = "SET #state = :failed, message = :message, lease_until_ms = :zero";
        let values = [
            (":failed", AttributeValue::S("failed".into())),
            (":message", AttributeValue::S(message.into())),
            (":zero", AttributeValue::N("0".into())),
        ];
        self.settle(tenant, item_id, owner, update, &values).await.map(drop)
    }

    async fn release(&self, tenant: &TenantId, item_id: &ItemId, owner: &str) -> Result<(), StoreError> {
        let values = [(":now", AttributeValue::N(now_ms().to_string()))];
        self.settle(tenant, item_id, owner, "SET lease_until_ms = :now", &values).await.map(drop)
    }

    async fn mark_legacy_marker(&self, tenant: &TenantId, item_id: &ItemId, owner: &str) -> Result<(), StoreError> {
        let values = [(":legacy", AttributeValue::S("legacy".into()))];
        self.settle(tenant, item_id, owner, "SET marker_form = :legacy", &values).await.map(drop)
    }

    async fn extend(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // Taken over meanwhile (a condition failure): answered as not ours.
        let values = [(":until", AttributeValue::N(ms(until).to_string()))];
        self.settle(tenant, item_id, owner, "SET lease_until_ms = :until", &values).await
    }

    async fn item_for_key(&self, tenant: &TenantId, key: &IssueKey) -> Result<Option<KeyRecord>, StoreError> {
        let out = self.get((AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(format!("ISSUE#{key}")))).await?;
        let Some(item) = out.item else { return Ok(None) };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        if text("state").as_deref() != Some("created") {
            return Ok(None);
        }
        Ok(text("item_id")
            .map(|item_id| KeyRecord { item_id: ItemId::new(item_id), site: text("site").map(SiteId::new) }))
    }

    async fn mark_deleted(&self, tenant: &TenantId, key: &IssueKey, item_id: &ItemId) -> Result<(), StoreError> {
        for sk in [format!("ISSUE#{key}"), action_sk(item_id)] {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(tenant_pk(tenant)))
                .key("sk", AttributeValue::S(sk))
                .update_expression("SET #state = :deleted")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":deleted", AttributeValue::S("deleted".into()))
                .send()
                .await
                .map_err(service_error)?;
        }
        Ok(())
    }

    /// One Query of the tenant's `ACTION#` records after `after`, at most [`LIST_SCAN`] looked
    /// at; created and deleted ones (and the report, when filtered by one) are kept by the
    /// Query's filter, the status category by [`ItemFilter::admits`] after it.
    async fn list_items(
        &self,
        tenant: &TenantId,
        filter: &ItemFilter,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<ItemPage, StoreError> {
        let mut filter_expression = "#state IN (:created, :deleted)".to_owned();
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :action)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pk", AttributeValue::S(tenant_pk(tenant)))
            .expression_attribute_values(":action", AttributeValue::S("ACTION#".into()))
            .expression_attribute_values(":created", AttributeValue::S("created".into()))
            .expression_attribute_values(":deleted", AttributeValue::S("deleted".into()))
            .limit(LIST_SCAN as i32)
            .consistent_read(true);
        if let Some(report) = &filter.report_id {
            filter_expression.push_str(" AND report_id = :report");
            request = request.expression_attribute_values(":report", AttributeValue::S(report.to_string()));
        }
        if let Some(after) = after {
            request = request
                .exclusive_start_key("pk", AttributeValue::S(tenant_pk(tenant)))
                .exclusive_start_key("sk", AttributeValue::S(action_sk(after)));
        }
        let out = request.filter_expression(filter_expression).send().await.map_err(service_error)?;
        let admitted: Vec<CreatedItem> =
            out.items().iter().filter_map(created_item).filter(|item| filter.admits(item)).collect();
        let stopped_after = out
            .last_evaluated_key()
            .and_then(|k| k.get("sk"))
            .and_then(|sk| sk.as_s().ok())
            .and_then(|sk| sk.strip_prefix("ACTION#"))
            .map(ItemId::new);
        Ok(ItemPage::cut(admitted, stopped_after, limit))
    }

    async fn issue_for_item(&self, tenant: &TenantId, item_id: &ItemId) -> Result<Option<CreatedItem>, StoreError> {
        let out = self.get((AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(action_sk(item_id)))).await?;
        Ok(out.item.as_ref().and_then(created_item))
    }

    async fn record_state(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        state: &crate::issues::state::JiraState,
        synced_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(state).map_err(corrupt)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(action_sk(item_id)))
            .update_expression("SET jira_state = :state, jira_updated_ms = :updated, synced_at_ms = :at")
            // The same condition as the sync's staging (store/dynamo/issue_sync.rs).
            .condition_expression(
                "#state = :created AND (attribute_not_exists(jira_updated_ms) OR jira_updated_ms < :updated)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":created", AttributeValue::S("created".into()))
            .expression_attribute_values(":state", AttributeValue::S(json))
            .expression_attribute_values(":updated", AttributeValue::N(ms(state.updated).to_string()))
            .expression_attribute_values(":at", AttributeValue::N(ms(synced_at).to_string()))
            .send()
            .await;
        super::conditional(result)
    }
}

impl DynamoStore {
    /// An update to an item we hold, applied only while we still hold it.
    async fn settle(
        &self,
        tenant: &TenantId,
        item_id: &ItemId,
        owner: &str,
        update: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(action_sk(item_id)))
            .update_expression(update)
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()));
        if update.contains("#state") {
            request = request.expression_attribute_names("#state", "state");
        }
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(service_error(e)),
        }
    }
}
