//! [`DeadLetterNotices`](crate::store::DeadLetterNotices) on the table; its keys are in the schema table in `mod.rs`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{DynamoStore, conditional, corrupt, is_condition_failure, ms, service_error, tenant_pk};
use crate::domain::TenantId;
use crate::store::{DeadLetterNotices, NoticeClaim, StoreError};

fn notice_sk(notice: &str) -> String {
    format!("DEAD_LETTER#{notice}")
}

#[async_trait]
impl DeadLetterNotices for DynamoStore {
    async fn claim_notice(
        &self,
        tenant: &TenantId,
        notice: &str,
        holder: &str,
        lease_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<NoticeClaim, StoreError> {
        let keys = (AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(notice_sk(notice)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", keys.0.clone())
            .item("sk", keys.1.clone())
            .item("holder", AttributeValue::S(holder.into()))
            .item("until_ms", AttributeValue::N(ms(lease_until).to_string()))
            // A claim nobody marks (its holder died, and no delivery followed) goes after a day.
            .item("ttl", AttributeValue::N((lease_until.unix_timestamp() + 86_400).to_string()))
            .condition_expression("attribute_not_exists(pk) OR (attribute_not_exists(sent_ms) AND until_ms < :now)")
            .expression_attribute_values(":now", AttributeValue::N(ms(now).to_string()))
            .send()
            .await;
        match result {
            Ok(_) => return Ok(NoticeClaim::Ours),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(service_error(e)),
        }
        // Refused: sent already, or held. Which one is read back (the item only ever moves from
        // held to sent, so a read after the refusal cannot find it free for a wrong reason).
        let item = self.get(keys).await?.item.unwrap_or_default();
        if item.contains_key("sent_ms") {
            return Ok(NoticeClaim::Sent);
        }
        let until_ms =
            item.get("until_ms").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok()).unwrap_or(0);
        let until = OffsetDateTime::from_unix_timestamp_nanos(i128::from(until_ms) * 1_000_000).map_err(corrupt)?;
        Ok(NoticeClaim::Held { until })
    }

    async fn mark_sent(
        &self,
        tenant: &TenantId,
        notice: &str,
        holder: &str,
        keep_until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(notice_sk(notice)))
            .update_expression("SET sent_ms = :now, #ttl = :keep")
            .condition_expression("holder = :holder")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", AttributeValue::N(ms(OffsetDateTime::now_utc()).to_string()))
            .expression_attribute_values(":keep", AttributeValue::N(keep_until.unix_timestamp().to_string()))
            .expression_attribute_values(":holder", AttributeValue::S(holder.into()))
            .send()
            .await;
        conditional(result)
    }

    async fn release_notice(&self, tenant: &TenantId, notice: &str, holder: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(notice_sk(notice)))
            .condition_expression("holder = :holder AND attribute_not_exists(sent_ms)")
            .expression_attribute_values(":holder", AttributeValue::S(holder.into()))
            .send()
            .await;
        conditional(result).map(|_| ())
    }
}
