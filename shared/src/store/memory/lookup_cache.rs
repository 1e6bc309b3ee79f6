use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Clock, Faults, lock};
use crate::domain::TenantId;
use crate::store::{CacheEntry, LookupCache, LookupKey, StoreError};

/// Entries by tenant and key, each with its expiry in the whole epoch seconds the adapter's
/// `ttl` holds; a read skips the expired ones (as the adapter does), and they stay stored, as in
/// DynamoDB before its sweeper runs.
#[derive(Default)]
pub struct MemoryLookupCache {
    items: Mutex<HashMap<(String, LookupKey), (String, i64)>>,
    clock: Clock,
    faults: Faults,
}

impl MemoryLookupCache {
    pub(super) fn sharing(clock: &Clock, faults: &Faults) -> Self {
        Self { clock: clock.clone(), faults: faults.clone(), ..Self::default() }
    }

    /// Everything stored, expired or not, as (tenant, key, value): what a test inspects to see
    /// that no key or value holds what it must not.
    pub fn entries(&self) -> Vec<(String, String, String)> {
        let mut all: Vec<_> = lock(&self.items)
            .iter()
            .map(|((tenant, key), (value, _))| (tenant.clone(), key.to_string(), value.clone()))
            .collect();
        all.sort();
        all
    }
}

#[async_trait]
impl LookupCache for MemoryLookupCache {
    async fn get_many(&self, tenant: &TenantId, keys: &[LookupKey]) -> Result<HashMap<LookupKey, String>, StoreError> {
        self.faults.check("LookupCache::get_many")?;
        let now = self.clock.now().unix_timestamp();
        let items = lock(&self.items);
        Ok(keys
            .iter()
            .filter_map(|key| {
                let (value, ttl) = items.get(&(tenant.to_string(), key.clone()))?;
                (*ttl > now).then(|| (key.clone(), value.clone()))
            })
            .collect())
    }

    async fn put_many(&self, tenant: &TenantId, entries: &[CacheEntry]) -> Result<(), StoreError> {
        self.faults.check("LookupCache::put_many")?;
        let mut items = lock(&self.items);
        for entry in entries {
            items.insert(
                (tenant.to_string(), entry.key.clone()),
                (entry.value.clone(), entry.expires_at.unix_timestamp()),
            );
        }
        Ok(())
    }
}
