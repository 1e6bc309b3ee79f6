use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Clock, Faults, condition_failed, lock};
use crate::store::{OAuthStateStore, PendingAuthorization, StoreError};

#[derive(Default)]
pub struct MemoryStates {
    items: Mutex<HashMap<String, PendingAuthorization>>,
    clock: Clock,
    faults: Faults,
}

impl MemoryStates {
    pub(super) fn sharing(clock: &Clock, faults: &Faults) -> Self {
        Self { clock: clock.clone(), faults: faults.clone(), ..Self::default() }
    }

    /// Deletes the states whose TTL (their expiry) passed, as DynamoDB's sweeper eventually does.
    /// Until then an expired state is still taken: the callback checks `expires_at` itself.
    pub fn sweep_expired(&self) {
        let now = self.clock.now().unix_timestamp();
        lock(&self.items).retain(|_, p| p.expires_at.unix_timestamp() >= now);
    }
}

#[async_trait]
impl OAuthStateStore for MemoryStates {
    async fn put(&self, pending: &PendingAuthorization) -> Result<(), StoreError> {
        self.faults.check("OAuthStateStore::put")?;
        let mut items = lock(&self.items);
        if items.contains_key(&pending.id) {
            return Err(condition_failed("the OAuth state exists"));
        }
        // The adapter keeps the expiry in whole seconds (it doubles as the TTL).
        let expires_at = OffsetDateTime::from_unix_timestamp(pending.expires_at.unix_timestamp())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        items.insert(pending.id.clone(), PendingAuthorization { expires_at, ..pending.clone() });
        Ok(())
    }

    async fn take(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError> {
        self.faults.check("OAuthStateStore::take")?;
        Ok(lock(&self.items).remove(id))
    }
}
