//! [`LookupCache`](crate::store::LookupCache) on the table; its keys are in the schema table in
//! `mod.rs`. Reads are `BatchGetItem` (100 keys per call), writes `BatchWriteItem` (25 per call);
//! what DynamoDB leaves unprocessed (throttling, the 16 MB answer limit) is sent again with a
//! short backoff, a few times: this is a cache, so a key still unread after that is a miss.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use time::OffsetDateTime;

use super::{DynamoStore, corrupt, service_error, tenant_pk};
use crate::domain::TenantId;
use crate::store::{CacheEntry, LookupCache, LookupKey, StoreError};

/// DynamoDB's limits per call.
const GET_BATCH: usize = 100;
const PUT_BATCH: usize = 25;
/// Calls per batch, the first included, before what is still unprocessed is given up on.
const ATTEMPTS: u32 = 4;

type Item = HashMap<String, AttributeValue>;

fn cache_sk(key: &LookupKey) -> String {
    format!("CACHE#{key}")
}

fn item_key(pk: &str, sk: String) -> Item {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk.to_owned())), ("sk".to_owned(), AttributeValue::S(sk))])
}

/// Before the next call for what a batch left unprocessed: 50, 100, 200 ms (AWS asks for an
/// exponential backoff here; these are cheap reads and writes, so it stays short).
async fn back_off(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
}

impl DynamoStore {
    /// One batch of at most 100 distinct keys, with its unprocessed keys asked again.
    async fn get_batch(&self, mut keys: Vec<Item>, found: &mut Vec<Item>) -> Result<(), StoreError> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                back_off(attempt - 1).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                // Consistent like every other read of the adapter; a cache entry is one small item.
                .consistent_read(true)
                .projection_expression("sk, #value, #ttl")
                .expression_attribute_names("#value", "value")
                .expression_attribute_names("#ttl", "ttl")
                .build()
                .map_err(corrupt)?;
            let out =
                self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(service_error)?;
            found.extend(out.responses().and_then(|r| r.get(&self.table)).into_iter().flatten().cloned());
            keys =
                out.unprocessed_keys().and_then(|u| u.get(&self.table)).map(|k| k.keys().to_vec()).unwrap_or_default();
            if keys.is_empty() {
                return Ok(());
            }
        }
        tracing::warn!(keys = keys.len(), "DynamoDB left cache keys unread after retries; they count as misses");
        Ok(())
    }

    /// One batch of at most 25 writes of distinct keys, with its unprocessed ones sent again.
    async fn put_batch(&self, mut writes: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                back_off(attempt - 1).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::take(&mut writes))
                .send()
                .await
                .map_err(service_error)?;
            writes = out.unprocessed_items().and_then(|u| u.get(&self.table)).cloned().unwrap_or_default();
            if writes.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Service {
            service: "DynamoDB",
            message: format!("{} cache entries still unprocessed after {ATTEMPTS} attempts", writes.len()),
        })
    }
}

#[async_trait]
impl LookupCache for DynamoStore {
    async fn get_many(&self, tenant: &TenantId, keys: &[LookupKey]) -> Result<HashMap<LookupKey, String>, StoreError> {
        let pk = tenant_pk(tenant);
        // BatchGetItem refuses a request that names one key twice.
        let mut by_sk: HashMap<String, LookupKey> = keys.iter().map(|k| (cache_sk(k), k.clone())).collect();
        let sks: Vec<String> = by_sk.keys().cloned().collect();
        let mut found = Vec::new();
        for batch in sks.chunks(GET_BATCH) {
            self.get_batch(batch.iter().map(|sk| item_key(&pk, sk.clone())).collect(), &mut found).await?;
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut answer = HashMap::new();
        for item in found {
            let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) else { continue };
            let ttl = item.get("ttl").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
            // Expired but not yet swept by DynamoDB's TTL: as good as gone.
            if ttl.is_none_or(|ttl| ttl <= now) {
                continue;
            }
            let (Some(key), Some(value)) = (by_sk.remove(sk), item.get("value").and_then(|v| v.as_s().ok())) else {
                continue;
            };
            answer.insert(key, value.clone());
        }
        Ok(answer)
    }

    async fn put_many(&self, tenant: &TenantId, entries: &[CacheEntry]) -> Result<(), StoreError> {
        let pk = tenant_pk(tenant);
        // BatchWriteItem refuses a batch that names one key twice: the last entry for a key wins.
        let mut latest: HashMap<String, &CacheEntry> = HashMap::new();
        for entry in entries {
            latest.insert(cache_sk(&entry.key), entry);
        }
        let mut writes = Vec::with_capacity(latest.len());
        for (sk, entry) in latest {
            let mut item = item_key(&pk, sk);
            item.insert("value".into(), AttributeValue::S(entry.value.clone()));
            // Whole seconds: DynamoDB's TTL reads epoch seconds.
            item.insert("ttl".into(), AttributeValue::N(entry.expires_at.unix_timestamp().to_string()));
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(corrupt)?;
            writes.push(WriteRequest::builder().put_request(put).build());
        }
        while !writes.is_empty() {
            let rest = writes.split_off(writes.len().min(PUT_BATCH));
            self.put_batch(std::mem::replace(&mut writes, rest)).await?;
        }
        Ok(())
    }
}
