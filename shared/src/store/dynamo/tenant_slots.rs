//! [`TenantSlots`](crate::store::TenantSlots) on the table: one item per tenant and pool holding
//! the map `holders` (holder → lease end, epoch ms) and `paused_until_ms`; its keys are in the
//! schema table in `mod.rs`.
//!
//! The happy path is one conditional update to take a slot (`size(holders) < slots`) and one to
//! give it back. Only when that condition fails is the item read, to tell a full pool from one
//! whose places are held by lapsed leases (a crashed instance's): those are removed in the same
//! conditional update that adds the new holder, conditioned on their being unchanged, so two
//! instances never both count the same lapsed place as free.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{DynamoStore, corrupt, is_condition_failure, ms, now_ms, service_error, tenant_pk};
use crate::domain::TenantId;
use crate::store::{SlotClaim, StoreError, TenantSlots};

/// How often an acquire re-reads after losing a race for the last places before it says "full".
const ATTEMPTS: usize = 4;
/// Lapsed leases removed per acquire at most (keeps the condition expression small).
const SWEEP: usize = 10;
/// DynamoDB deletes a pool no job has touched for this long (the `ttl`, epoch seconds).
const IDLE_TTL_SECONDS: i64 = 24 * 3600;

fn sk(pool: &str) -> String {
    format!("SLOTS#{pool}")
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn ttl(until: OffsetDateTime) -> AttributeValue {
    n(until.unix_timestamp() + IDLE_TTL_SECONDS)
}

/// Until when the pool's pause runs, when it has one.
fn paused_until(item: &HashMap<String, AttributeValue>) -> Option<i64> {
    item.get("paused_until_ms").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn holders(item: &HashMap<String, AttributeValue>) -> Result<Option<HashMap<String, i64>>, StoreError> {
    let Some(map) = item.get("holders") else { return Ok(None) };
    let map = map.as_m().map_err(|_| corrupt("slot holders are not a map"))?;
    map.iter()
        .map(|(holder, until)| {
            let until = until.as_n().ok().and_then(|v| v.parse().ok()).ok_or_else(|| corrupt("slot lease end"))?;
            Ok((holder.clone(), until))
        })
        .collect::<Result<HashMap<_, _>, StoreError>>()
        .map(Some)
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl DynamoStore {
    /// An update of `holder`'s place in the pool's item (`#h` names the holder).
    fn slot_update(&self, tenant: &TenantId, pool: &str, holder: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(sk(pool)))
            .expression_attribute_names("#h", holder)
    }
}

/// Whether a conditional write went through (`false`: its condition did not hold).
fn went_through<T, E: ProvideErrorMetadata, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(service_error(e)),
    }
}

/// The pause part of an acquire's condition.
const NOT_PAUSED: &str = "(attribute_not_exists(paused_until_ms) OR paused_until_ms <= :wait)";

#[async_trait]
impl TenantSlots for DynamoStore {
    async fn acquire(
        &self,
        tenant: &TenantId,
        pool: &str,
        holder: &str,
        slots: u32,
        until: OffsetDateTime,
        may_wait_until: OffsetDateTime,
    ) -> Result<SlotClaim, StoreError> {
        let key = || (AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(sk(pool)));
        // The common case: a place is free and no lapsed lease is in the way.
        let first = self
            .slot_update(tenant, pool, holder)
            .update_expression("SET holders.#h = :until, #ttl = :ttl")
            .condition_expression(format!("attribute_exists(holders) AND size(holders) < :slots AND {NOT_PAUSED}"))
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":until", n(ms(until)))
            .expression_attribute_values(":ttl", ttl(until))
            .expression_attribute_values(":slots", n(i64::from(slots)))
            .expression_attribute_values(":wait", n(ms(may_wait_until)))
            .send()
            .await;
        if went_through(first)? {
            return Ok(SlotClaim::Granted);
        }
        for _ in 0..ATTEMPTS {
            let item = self.get(key()).await?.item.unwrap_or_default();
            if let Some(paused) = paused_until(&item).filter(|p| *p > ms(may_wait_until)) {
                return Ok(SlotClaim::Paused { until: from_ms(paused) });
            }
            let Some(held) = holders(&item)? else {
                // The pool's first job (or the first after DynamoDB expired the idle item).
                let created = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", key().0)
                    .item("sk", key().1)
                    .item("holders", AttributeValue::M(HashMap::from([(holder.to_owned(), n(ms(until)))])))
                    .item("ttl", ttl(until))
                    .condition_expression("attribute_not_exists(holders)")
                    .send()
                    .await;
                if went_through(created)? {
                    return Ok(SlotClaim::Granted);
                }
                continue;
            };
            let now = now_ms();
            let lapsed: Vec<(&String, &i64)> = held.iter().filter(|(_, end)| **end < now).take(SWEEP).collect();
            if held.len() - lapsed.len() >= slots as usize {
                return Ok(SlotClaim::Full);
            }
            let mut update = self
                .slot_update(tenant, pool, holder)
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":until", n(ms(until)))
                .expression_attribute_values(":ttl", ttl(until))
                .expression_attribute_values(":cap", n(i64::from(slots) + lapsed.len() as i64))
                .expression_attribute_values(":wait", n(ms(may_wait_until)));
            let mut condition = format!("size(holders) < :cap AND {NOT_PAUSED}");
            let mut removes = Vec::new();
            for (i, (lapsed_holder, end)) in lapsed.iter().enumerate() {
                update = update
                    .expression_attribute_names(format!("#l{i}"), lapsed_holder.as_str())
                    .expression_attribute_values(format!(":l{i}"), n(**end));
                condition.push_str(&format!(" AND holders.#l{i} = :l{i}"));
                removes.push(format!("holders.#l{i}"));
            }
            let mut expression = String::from("SET holders.#h = :until, #ttl = :ttl");
            if !removes.is_empty() {
                expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
            }
            // Not held: someone else took a place or swept first; look again.
            if went_through(update.update_expression(expression).condition_expression(condition).send().await)? {
                return Ok(SlotClaim::Granted);
            }
        }
        Ok(SlotClaim::Full)
    }

    async fn renew(
        &self,
        tenant: &TenantId,
        pool: &str,
        holder: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let renewed = self
            .slot_update(tenant, pool, holder)
            .update_expression("SET holders.#h = :until, #ttl = :ttl")
            .condition_expression("attribute_exists(holders.#h)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":until", n(ms(until)))
            .expression_attribute_values(":ttl", ttl(until))
            .send()
            .await;
        went_through(renewed)
    }

    async fn release(
        &self,
        tenant: &TenantId,
        pool: &str,
        holder: &str,
        paused_until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .slot_update(tenant, pool, holder)
            // Only an existing pool: an update would otherwise create an item without holders.
            .condition_expression("attribute_exists(holders)");
        let expression = match paused_until {
            Some(until) => {
                update = update.expression_attribute_values(":paused", n(ms(until)));
                "REMOVE holders.#h SET paused_until_ms = :paused"
            }
            None => "REMOVE holders.#h",
        };
        // Not held: there was no pool, so nothing to give back.
        went_through(update.update_expression(expression).send().await).map(|_| ())
    }
}
