//! [`RefreshLeaseStore`](crate::store::RefreshLeaseStore) on the table; its keys are in the schema table in `mod.rs`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{DynamoStore, conditional, is_condition_failure, service_error};
use crate::store::{RefreshLeaseStore, StoreError};

#[async_trait]
impl RefreshLeaseStore for DynamoStore {
    async fn try_acquire(&self, lease_key: &str, owner: &str, until: OffsetDateTime) -> Result<bool, StoreError> {
        let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let until_ms = (until.unix_timestamp_nanos() / 1_000_000) as i64;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("LEASE#{lease_key}")))
            .item("sk", AttributeValue::S("LEASE".into()))
            .item("owner", AttributeValue::S(owner.into()))
            .item("until_ms", AttributeValue::N(until_ms.to_string()))
            // TTL cleans up leases whose holder died; expiry itself is enforced by the condition.
            .item("ttl", AttributeValue::N((until.unix_timestamp() + 3600).to_string()))
            .condition_expression("attribute_not_exists(pk) OR until_ms < :now")
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        conditional(result)
    }

    async fn release(&self, lease_key: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("LEASE#{lease_key}")))
            .key("sk", AttributeValue::S("LEASE".into()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(service_error(e)),
        }
    }
}
