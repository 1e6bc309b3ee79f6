//! [`DestinationFailureStore`](crate::store::DestinationFailureStore) on the table; its keys are in
//! the schema table in `mod.rs`. A refusal is one `UpdateItem` (`ADD` to the count, conditioned on
//! the window still being open), a second one only when the window has to start over; a lock
//! check is one consistent `GetItem`; a lock one conditional `PutItem`. The count and the lock are
//! two items so that each carries its own `ttl`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use time::OffsetDateTime;

use super::{DynamoStore, corrupt, ms, unless_condition_failed};
use crate::domain::TenantId;
use crate::store::{Destination, DestinationFailureStore, FailureTally, StoreError};

const FAILURES: &str = "FAILURES";
const LOCK: &str = "LOCK";
/// Rounds of "add, else start a new window" before giving up: another caller starting the same
/// window in between is the only reason for a second round.
const ROUNDS: usize = 3;

fn destination_pk(destination: &Destination) -> AttributeValue {
    AttributeValue::S(format!("DESTINATION#{}#{}", destination.kind.as_str(), destination.key))
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("destination item without {name}")))
}

fn from_ms(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(corrupt)
}

/// Epoch seconds for DynamoDB's TTL, rounded up so the item outlives what it records.
fn ttl_of(at: OffsetDateTime) -> AttributeValue {
    let seconds = at.unix_timestamp() + i64::from(at.nanosecond() > 0);
    AttributeValue::N(seconds.to_string())
}

fn tally(item: &HashMap<String, AttributeValue>) -> Result<FailureTally, StoreError> {
    let tenants = item.get("tenants").and_then(|v| v.as_ss().ok()).map_or(0, Vec::len);
    Ok(FailureTally {
        failures: u32::try_from(number(item, "failures")?).unwrap_or(u32::MAX),
        tenants: u32::try_from(tenants).unwrap_or(u32::MAX),
        window_started: from_ms(number(item, "window_start_ms")?)?,
    })
}

#[async_trait]
impl DestinationFailureStore for DynamoStore {
    async fn locked_until(
        &self,
        destination: &Destination,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let out = self.get((destination_pk(destination), AttributeValue::S(LOCK.into()))).await?;
        let Some(item) = out.item() else { return Ok(None) };
        // A lock past its end may still be stored until DynamoDB's TTL sweeper deletes it.
        let until = from_ms(number(item, "locked_until_ms")?)?;
        Ok((until > now).then_some(until))
    }

    async fn add_failure(
        &self,
        destination: &Destination,
        tenant: &TenantId,
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> Result<FailureTally, StoreError> {
        let tenant = AttributeValue::Ss(vec![tenant.to_string()]);
        let count = || {
            // Both writes below: this destination's count, the window's floor, this refusal.
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", destination_pk(destination))
                .key("sk", AttributeValue::S(FAILURES.into()))
                .expression_attribute_values(":floor", AttributeValue::N(ms(now - window).to_string()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":tenant", tenant.clone())
                .return_values(ReturnValue::AllNew)
        };
        for _ in 0..ROUNDS {
            // The common case: the window is open, one more refusal in it.
            let added = count()
                .condition_expression("window_start_ms > :floor")
                .update_expression("ADD failures :one, tenants :tenant")
                .send()
                .await;
            if let Some(out) = unless_condition_failed(added)? {
                return tally(out.attributes().unwrap_or(&HashMap::new()));
            }
            // No window, or it ended: this refusal starts one, unless another caller just did
            // (then the next round adds to theirs).
            let started = count()
                .condition_expression("attribute_not_exists(window_start_ms) OR window_start_ms <= :floor")
                .update_expression("SET window_start_ms = :now, failures = :one, tenants = :tenant, #ttl = :ttl")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":now", AttributeValue::N(ms(now).to_string()))
                .expression_attribute_values(":ttl", ttl_of(now + window))
                .send()
                .await;
            if let Some(out) = unless_condition_failed(started)? {
                return tally(out.attributes().unwrap_or(&HashMap::new()));
            }
        }
        Err(StoreError::Service {
            service: "DynamoDB",
            message: format!("the failure count of {destination} kept changing; not counted after {ROUNDS} rounds"),
        })
    }

    async fn lock(
        &self,
        destination: &Destination,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", destination_pk(destination))
            .item("sk", AttributeValue::S(LOCK.into()))
            .item("locked_until_ms", AttributeValue::N(ms(until).to_string()))
            .item("ttl", ttl_of(until))
            .condition_expression("attribute_not_exists(pk) OR locked_until_ms <= :now")
            .expression_attribute_values(":now", AttributeValue::N(ms(now).to_string()))
            .send()
            .await;
        Ok(unless_condition_failed(result)?.is_some())
    }
}
