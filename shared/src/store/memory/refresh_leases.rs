use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Clock, Faults, lock, ms};
use crate::store::{RefreshLeaseStore, StoreError};

struct Lease {
    owner: String,
    until_ms: i64,
    /// Seconds: when DynamoDB may delete the lease of a holder that died.
    ttl: i64,
}

#[derive(Default)]
pub struct MemoryLeases {
    items: Mutex<HashMap<String, Lease>>,
    clock: Clock,
    faults: Faults,
}

impl MemoryLeases {
    pub(super) fn sharing(clock: &Clock, faults: &Faults) -> Self {
        Self { clock: clock.clone(), faults: faults.clone(), ..Self::default() }
    }

    /// Deletes the leases whose TTL passed, as DynamoDB's sweeper eventually does.
    pub fn sweep_expired(&self) {
        let now = self.clock.now().unix_timestamp();
        lock(&self.items).retain(|_, lease| lease.ttl >= now);
    }

    /// Who holds the lease, if anyone does now.
    pub fn holder(&self, lease_key: &str) -> Option<String> {
        let now = self.clock.now_ms();
        lock(&self.items).get(lease_key).filter(|l| l.until_ms >= now).map(|l| l.owner.clone())
    }
}

#[async_trait]
impl RefreshLeaseStore for MemoryLeases {
    async fn try_acquire(&self, lease_key: &str, owner: &str, until: OffsetDateTime) -> Result<bool, StoreError> {
        self.faults.check("RefreshLeaseStore::try_acquire")?;
        let now = self.clock.now_ms();
        let mut items = lock(&self.items);
        // Free, or its holder's lease ended; a holder asking again is refused like anyone else.
        if items.get(lease_key).is_some_and(|held| held.until_ms >= now) {
            return Ok(false);
        }
        let lease = Lease { owner: owner.to_owned(), until_ms: ms(until), ttl: until.unix_timestamp() + 3600 };
        items.insert(lease_key.to_owned(), lease);
        Ok(true)
    }

    async fn release(&self, lease_key: &str, owner: &str) -> Result<(), StoreError> {
        self.faults.check("RefreshLeaseStore::release")?;
        let mut items = lock(&self.items);
        // Only our own lease: a lapsed holder must not end the lease of the one that took over.
        if items.get(lease_key).is_some_and(|held| held.owner == owner) {
            items.remove(lease_key);
        }
        Ok(())
    }
}
