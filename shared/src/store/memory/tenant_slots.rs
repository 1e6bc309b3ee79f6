use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Clock, Faults, from_ms, lock, ms};
use crate::domain::TenantId;
use crate::store::{SlotClaim, StoreError, TenantSlots};

#[derive(Default)]
struct Pool {
    /// Lease end (ms) by holder.
    holders: HashMap<String, i64>,
    paused_until_ms: Option<i64>,
}

/// Pools by (tenant, pool), with the adapter's semantics: a lease counts until its end (ms), and
/// lapsed ones are dropped by the next acquire that needs their place.
#[derive(Default)]
pub struct MemoryTenantSlots {
    pools: Mutex<HashMap<(String, String), Pool>>,
    clock: Clock,
    faults: Faults,
}

impl MemoryTenantSlots {
    pub(super) fn sharing(clock: &Clock, faults: &Faults) -> Self {
        Self { clock: clock.clone(), faults: faults.clone(), ..Self::default() }
    }

    /// The holders of unexpired leases in a pool: what a test inspects.
    pub fn holders(&self, tenant: &TenantId, pool: &str) -> Vec<String> {
        let now = self.clock.now_ms();
        let pools = lock(&self.pools);
        let mut holders: Vec<String> = pools
            .get(&(tenant.to_string(), pool.to_owned()))
            .map(|p| p.holders.iter().filter(|(_, until)| **until >= now).map(|(h, _)| h.clone()).collect())
            .unwrap_or_default();
        holders.sort();
        holders
    }
}

#[async_trait]
impl TenantSlots for MemoryTenantSlots {
    async fn acquire(
        &self,
        tenant: &TenantId,
        pool: &str,
        holder: &str,
        slots: u32,
        until: OffsetDateTime,
        may_wait_until: OffsetDateTime,
    ) -> Result<SlotClaim, StoreError> {
        self.faults.check("TenantSlots::acquire")?;
        let now = self.clock.now_ms();
        let mut pools = lock(&self.pools);
        let entry = pools.entry((tenant.to_string(), pool.to_owned())).or_default();
        if let Some(paused) = entry.paused_until_ms.filter(|p| *p > ms(may_wait_until)) {
            return Ok(SlotClaim::Paused { until: from_ms(paused) });
        }
        entry.holders.retain(|_, lease| *lease >= now);
        if entry.holders.len() >= slots as usize {
            return Ok(SlotClaim::Full);
        }
        entry.holders.insert(holder.to_owned(), ms(until));
        Ok(SlotClaim::Granted)
    }

    async fn renew(
        &self,
        tenant: &TenantId,
        pool: &str,
        holder: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.faults.check("TenantSlots::renew")?;
        let mut pools = lock(&self.pools);
        let held = pools.get_mut(&(tenant.to_string(), pool.to_owned())).and_then(|p| p.holders.get_mut(holder));
        Ok(match held {
            Some(lease) => {
                *lease = ms(until);
                true
            }
            None => false,
        })
    }

    async fn release(
        &self,
        tenant: &TenantId,
        pool: &str,
        holder: &str,
        paused_until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        self.faults.check("TenantSlots::release")?;
        let mut pools = lock(&self.pools);
        if let Some(entry) = pools.get_mut(&(tenant.to_string(), pool.to_owned())) {
            entry.holders.remove(holder);
            if let Some(paused) = paused_until {
                entry.paused_until_ms = Some(ms(paused));
            }
        }
        Ok(())
    }
}
