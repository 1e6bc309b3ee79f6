//! [`IssueJobStore`](crate::store::IssueJobStore) on the table; its keys are in the schema table in `mod.rs`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{DynamoStore, corrupt, is_condition_failure, service_error, tenant_pk};
use crate::domain::TenantId;
use crate::store::{IssueJobRecord, IssueJobStore, StoreError};

/// How long a job's records are kept (see [`IssueJobStore::accept_job`]).
const KEPT: time::Duration = time::Duration::days(7);

fn job_sk(job: &str) -> String {
    format!("JOB#{job}")
}

fn part_sk(job: &str, part: u32) -> String {
    // Zero-padded so the parts come back from the query in order.
    format!("JOB#{job}#PART#{part:05}")
}

fn expiry() -> AttributeValue {
    AttributeValue::N((OffsetDateTime::now_utc() + KEPT).unix_timestamp().to_string())
}

#[async_trait]
impl IssueJobStore for DynamoStore {
    async fn accept_job(
        &self,
        tenant: &TenantId,
        job: &str,
        idempotency_key: &str,
        parts: u32,
        first: &str,
    ) -> Result<(), StoreError> {
        // The part first: a job record is never seen without the results the 202 answered with.
        self.record_part(tenant, job, 0, first).await?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(tenant_pk(tenant)))
            .item("sk", AttributeValue::S(job_sk(job)))
            .item("idempotency_key", AttributeValue::S(idempotency_key.into()))
            .item("parts", AttributeValue::N(parts.to_string()))
            .item("ttl", expiry())
            .send()
            .await
            .map_err(service_error)?;
        Ok(())
    }

    async fn record_part(&self, tenant: &TenantId, job: &str, part: u32, results: &str) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(tenant_pk(tenant)))
            .item("sk", AttributeValue::S(part_sk(job, part)))
            .item("results", AttributeValue::S(results.into()))
            .item("ttl", expiry())
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // Recorded by an earlier delivery of the same part: that one stands.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(service_error(e)),
        }
    }

    async fn job(&self, tenant: &TenantId, job: &str) -> Result<Option<IssueJobRecord>, StoreError> {
        let mut meta = None;
        let mut results = BTreeMap::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :job)")
                .expression_attribute_values(":pk", AttributeValue::S(tenant_pk(tenant)))
                .expression_attribute_values(":job", AttributeValue::S(job_sk(job)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(service_error)?;
            for item in page.items() {
                let sk = item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let number = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u32>().ok());
                if sk == job_sk(job) {
                    let parts = number("parts").ok_or_else(|| corrupt("job without parts"))?;
                    meta = Some((text("idempotency_key").unwrap_or_default(), parts));
                } else if let Some(part) = sk.strip_prefix(&format!("{}#PART#", job_sk(job))) {
                    let part = part.parse::<u32>().map_err(corrupt)?;
                    results.insert(part, text("results").ok_or_else(|| corrupt("job part without results"))?);
                }
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(meta.map(|(idempotency_key, parts)| IssueJobRecord { idempotency_key, parts, results }))
    }
}
