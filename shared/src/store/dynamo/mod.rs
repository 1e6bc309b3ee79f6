//! DynamoDB adapter: one table, `pk`/`sk` keys, a `ttl` attribute for expiring items.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | connection | `TENANT#{tenant}` | `CONNECTION#{product}` |
//! | OAuth state | `OAUTH_STATE#{id}` | `STATE` |
//! | OAuth consent waiting for its confirmation (grant, secret name, code digest, `expires_at_ms`, the connections it becomes; `ttl` a week later as a backstop) | `CONSENT_PENDING` | `TENANT#{tenant}#{target}` |
//! | refresh lease | `LEASE#{key}` | `LEASE` |
//! | settings | `TENANT#{tenant}` | `SETTINGS#{product}` |
//! | action item → issue (+ `site` it was written to, `report_id` when the item named one; listed in item-id order by `GET .../action-items`, a Query of `begins_with(sk, ACTION#)` at most 200 records a page) | `TENANT#{tenant}` | `ACTION#{item id}` |
//! | issue → action item (+ `site`) | `TENANT#{tenant}` | `ISSUE#{key}` |
//! | publication | `TENANT#{tenant}` | `PUBLICATION#{id}` |
//! | report → page (`page_id`, `page_site` (`site` on older records), `page_url`, `page_title`; `links_digest` of the issue links last written on the page; `report_gz`, the report as last published, gzip'd JSON, binary, ≤ 300 KiB or absent; the links lease `links_owner`, `links_until_ms`, held by every write of the page) | `TENANT#{tenant}` | `REPORT#{report id}` |
//! | issue job accepted with 202 (+ `parts`; `ttl` a week) | `TENANT#{tenant}` | `JOB#{job id}` |
//! | a part's results | `TENANT#{tenant}` | `JOB#{job id}#PART#{nnnnn}` |
//! | assignee lookup (`value`, `ttl`) | `TENANT#{tenant}` | `CACHE#ASSIGNEE#{site}#{keyed hash of project + email or id}` |
//! | create screen (`value`, `ttl`) | `TENANT#{tenant}` | `CACHE#CREATEMETA#{site}#{project}#{issue type id}` |
//! | an issue's edit screen, the field ids the connected user may edit (`value`, `ttl` 10 min) | `TENANT#{tenant}` | `CACHE#EDITMETA#{site}#{issue key}` |
//! | an `Action Items Changed` event's results, once per idempotency key (an issue-job record, `ttl` a week) | `TENANT#{tenant}` | `JOB#EDITS-{keyed hash of the idempotency key}`, `…#PART#00000` |
//! | fair-share slots of a function (`holders` map holder → lease end ms, `paused_until_ms`, `ttl` a day after the last lease) | `TENANT#{tenant}` | `SLOTS#{function}` |
//! | refused credential checks per destination, all tenants (`window_start_ms`, `failures`, `tenants` set, `ttl` the window's end) | `DESTINATION#{host\|site\|token_url}#{key}` | `FAILURES` |
//! | destination lock (`locked_until_ms`, `ttl` its end) | `DESTINATION#{host\|site\|token_url}#{key}` | `LOCK` |
//! | keep-alive notice sent (`ttl`: until it can't matter) | `TENANT#{tenant}` | `NOTICE#EXPIRING#{grant}#{consent epoch}#{30 or 7}`, `NOTICE#BROKEN#{product}#{created epoch}` |
//! | keep-alive round (`started_at`, `after`, `completed_at`) | `KEEP_ALIVE` | `ROUND` |
//! | the `sweep` index's one-off backfill (`after_pk`, `after_sk`, or `done`) | `KEEP_ALIVE` | `BACKFILL` |
//! | dynamic Jira webhook registration (`tenant`, `cloud_id`, `site_url`, `webhook_ids`, `projects`, `expires_at_ms`, `registered_at_ms`); all in one partition, so the refresh step finds the expiring ones with one query | `JIRA_WEBHOOKS` | `TENANT#{tenant}` |
//! | the same registration, found by a webhook id a delivery names (`matchedWebhookIds`; ids are per site, so several tenants may share one) | `JIRA_WEBHOOK#{webhook id}` | `TENANT#{tenant}` |
//! | Connect or Forge installation (`kind`, `id`, `product`, `base_url`, `cloud_id`, `secret_name`, `status` installed/uninstalled (kept for audit), `tenant` it is linked to, `generation` (+1 per install: conditional writes), `installed_at_ms`, `updated_at_ms`) | `APP#{connect\|forge}#{clientKey or installation id}` | `INSTALLATION` |
//! | one-time app-link code (`digest` is an HMAC of the code, never the code; `tenant`, `product`, `expires_at_ms`, `ttl`) | `APP_LINK_CODE#{digest}` | `CODE` |
//! | the tenant's current app-link code for a product (`digest`; a new code deletes the one it names) | `TENANT#{tenant}` | `APP_LINK_CODE#{product}` |
//! | a handled webhook delivery (`until_ms`, `ttl` three days: Jira retries for hours) | `JIRA_DELIVERY#{cloudId}#{X-Atlassian-Webhook-Identifier}` | `DELIVERY` |
//! | last known Jira state of an item's issue (on the item above: `jira_state` JSON, `jira_updated_ms`, `synced_at_ms`) | `TENANT#{tenant}` | `ACTION#{item id}` |
//! | tenant followed by the issue sync (`tenant_id`; `sweep_pk` `SYNC`, `sweep_sk` `{tenant}`) | `TENANT#{tenant}` | `SYNC` |
//! | issue sync cursor of a site (`updated_since_ms`, `deletion_after`, `deletion_pass_done_ms`) | `TENANT#{tenant}` | `SYNC_CURSOR#{site}` |
//! | change recorded, not yet published (`change_id`, `site`, `kind`, `payload`) | `TENANT#{tenant}` | `SYNC_OUTBOX#{key}@{updated ms or deleted}` |
//! | issue sync round (`after`, `started_at_ms`) | `ISSUE_SYNC` | `ROUND` |
//! | the sync enrollment's one-off backfill (`after_pk`, `after_sk`, or `done`) | `ISSUE_SYNC` | `BACKFILL` |
//! | the terminal `Publish Failed` of a dead-lettered event, claimed then sent once (`holder`, `until_ms` the claim's lease, `sent_ms` once it went out; `ttl` 15 days after, past the DLQ's 14-day retention, or a day after an unmarked claim) | `TENANT#{tenant}` | `DEAD_LETTER#{function}#{job}#{SHA-256 of the idempotency key}` |
//!
//! One sparse global secondary index, `sweep` (hash `sweep_pk`, range `sweep_sk`, all attributes
//! projected): connection items carry its keys, `CONNECTION` and `{tenant}#{product}` (and the
//! sync's `SYNC` items `SYNC` and `{tenant}`, so the issue sync walks its tenants the same way), so
//! the keep-alive sweep pages through every tenant's connections in that order (resuming after
//! the last key it did) without scanning the ledger, cache and job items. Connection items
//! written before the index existed get the keys once, from a resumable one-off scan
//! (`DynamoStore::backfill_sweep_index`, a chore of the keep-alive function).
//!
//! Pending consents share one partition on purpose: each lives at most the confirmation window
//! (10 minutes) unless nobody confirms it, so the partition stays small, and the scheduled sweep
//! (`consent::expire_pending`) finds every tenant's expired ones, and deletes their secrets,
//! with a single query.
//!
//! `site` is the session's site id: the cloudId on Cloud, the base URL on Server/DC (what the
//! ledger records too). Cache items carry `ttl` in epoch seconds; reads skip expired ones
//! themselves, since DynamoDB deletes them only some time after they expire.
//!
//! A destination's `key` is a lower-cased host without port, a cloudId, or a token endpoint's
//! host and path (see `lockout.rs`); its items belong to no tenant, on purpose: they count across
//! all of them. Lock checks read them themselves against their end, like the cache.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::TenantId;

mod connections;
mod dead_letters;
mod destination_failures;
mod installations;
mod issue_jobs;
mod issue_ledger;
mod issue_sync;
mod keep_alive;
mod lookup_cache;
mod oauth_states;
mod publications;
mod refresh_leases;
mod settings;
mod tenant_slots;
mod webhooks;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A strongly consistent read of one item by its keys.
    async fn get(
        &self,
        (pk, sk): (AttributeValue, AttributeValue),
    ) -> Result<aws_sdk_dynamodb::operation::get_item::GetItemOutput, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .consistent_read(true)
            .send()
            .await
            .map_err(service_error)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

type Item = std::collections::HashMap<String, AttributeValue>;

impl DynamoStore {
    /// A one-off table scan that resumes across calls (the backfills): up to `pages` scan pages
    /// a call, each page's items handed to `visit`, from where the last call stopped (kept in the
    /// `marker` item as `after_pk`/`after_sk`, then `done`). Answers `true` once the whole table
    /// was done, at once on every later call.
    // `'s` ties the visits' futures to the store they borrow.
    #[allow(clippy::needless_lifetimes)]
    async fn resumable_scan<'s, V>(
        &'s self,
        marker: (&str, &str),
        pages: usize,
        scan: impl Fn(
            aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
        ) -> aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
        mut visit: V,
    ) -> Result<bool, StoreError>
    where
        V: FnMut(Vec<Item>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 's>>,
    {
        let marker = (AttributeValue::S(marker.0.into()), AttributeValue::S(marker.1.into()));
        let state = self.get(marker.clone()).await?.item.unwrap_or_default();
        if state.get("done").and_then(|v| v.as_bool().ok()).copied() == Some(true) {
            return Ok(true);
        }
        let mut start = match (state.get("after_pk"), state.get("after_sk")) {
            (Some(pk), Some(sk)) => Some(Item::from([("pk".to_owned(), pk.clone()), ("sk".to_owned(), sk.clone())])),
            _ => None,
        };
        for _ in 0..pages {
            let out = scan(self.client.scan().table_name(&self.table))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(service_error)?;
            visit(out.items.unwrap_or_default()).await?;
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let mut put = self.client.put_item().table_name(&self.table).item("pk", marker.0).item("sk", marker.1);
        put = match &start {
            Some(key) => put
                .item("after_pk", key.get("pk").cloned().unwrap_or(AttributeValue::Null(true)))
                .item("after_sk", key.get("sk").cloned().unwrap_or(AttributeValue::Null(true))),
            None => put.item("done", AttributeValue::Bool(true)),
        };
        put.send().await.map_err(service_error)?;
        Ok(start.is_none())
    }
}

fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn service_error<E: ProvideErrorMetadata, R>(e: SdkError<E, R>) -> StoreError {
    let message = match e.as_service_error() {
        Some(se) => format!("{}: {}", se.code().unwrap_or("error"), se.message().unwrap_or("")),
        None => format!("{e}"),
    };
    StoreError::Service { service: "DynamoDB", message }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException")
}

/// A conditional write's answer: `None` when its condition failed (someone else's write won).
fn unless_condition_failed<T, E: ProvideErrorMetadata, R>(
    result: Result<T, SdkError<E, R>>,
) -> Result<Option<T>, StoreError> {
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if is_condition_failure(&e) => Ok(None),
        Err(e) => Err(service_error(e)),
    }
}

/// A conditional write's answer: `true` when it was made, `false` when its condition refused it.
fn conditional<T, E: ProvideErrorMetadata, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError> {
    unless_condition_failed(result).map(|made| made.is_some())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Until when the holder's lease on a claimed item runs (the epoch when nobody holds it).
fn lease_until(item: &std::collections::HashMap<String, AttributeValue>) -> Result<OffsetDateTime, StoreError> {
    let until_ms =
        item.get("lease_until_ms").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok()).unwrap_or(0);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(until_ms) * 1_000_000).map_err(corrupt)
}
