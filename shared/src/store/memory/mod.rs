//! In-memory fakes of the store ports, for unit tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::domain::{Connection, ConnectionStatus, Product, TenantId};
use crate::store::{
    ConnectionStore, CredentialStore, OAuthStateStore, PendingAuthorization, RefreshLeaseStore, StoreError,
    StoredSecret, Verification,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub struct MemoryConnections(Mutex<HashMap<(String, Product), Connection>>);

#[async_trait]
impl ConnectionStore for MemoryConnections {
    async fn get(&self, tenant: &TenantId, product: Product) -> Result<Option<Connection>, StoreError> {
        Ok(lock(&self.0).get(&(tenant.to_string(), product)).cloned())
    }
    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        Ok(lock(&self.0).values().filter(|c| &c.tenant == tenant).cloned().collect())
    }
    async fn put_all(&self, connections: &[Connection]) -> Result<(), StoreError> {
        let mut map = lock(&self.0);
        for c in connections {
            map.insert((c.tenant.to_string(), c.product), c.clone());
        }
        Ok(())
    }
    async fn delete(&self, tenant: &TenantId, product: Product) -> Result<(), StoreError> {
        lock(&self.0).remove(&(tenant.to_string(), product));
        Ok(())
    }
    async fn record_verified(
        &self,
        tenant: &TenantId,
        product: Product,
        outcome: &Verification,
    ) -> Result<(), StoreError> {
        let mut map = lock(&self.0);
        let connection = map.get_mut(&(tenant.to_string(), product));
        if let Some(c) = connection.filter(|c| c.secret_name == outcome.secret_name) {
            c.last_verified_at = Some(outcome.at);
            c.status = outcome.status;
            if outcome.acting_as.is_some() {
                c.acting_as = outcome.acting_as.clone();
            }
        }
        Ok(())
    }
    async fn mark_reconnect_required(
        &self,
        tenant: &TenantId,
        grant_id: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        for c in lock(&self.0).values_mut().filter(|c| &c.tenant == tenant && c.grant_id == grant_id) {
            c.status = ConnectionStatus::ReconnectRequired;
            c.updated_at = at;
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryStates(Mutex<HashMap<String, PendingAuthorization>>);

#[async_trait]
impl OAuthStateStore for MemoryStates {
    async fn put(&self, pending: &PendingAuthorization) -> Result<(), StoreError> {
        lock(&self.0).insert(pending.id.clone(), pending.clone());
        Ok(())
    }
    async fn take(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError> {
        Ok(lock(&self.0).remove(id))
    }
}

#[derive(Default)]
pub struct MemoryLeases(Mutex<HashMap<String, (String, OffsetDateTime)>>);

#[async_trait]
impl RefreshLeaseStore for MemoryLeases {
    async fn try_acquire(&self, key: &str, owner: &str, until: OffsetDateTime) -> Result<bool, StoreError> {
        let mut map = lock(&self.0);
        let free = map.get(key).is_none_or(|(_, held_until)| *held_until < OffsetDateTime::now_utc());
        if free {
            map.insert(key.to_owned(), (owner.to_owned(), until));
        }
        Ok(free)
    }
    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut map = lock(&self.0);
        if map.get(key).is_some_and(|(held_by, _)| held_by == owner) {
            map.remove(key);
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryCredentials {
    secrets: Mutex<HashMap<String, StoredSecret>>,
    versions: AtomicU64,
}

#[async_trait]
impl CredentialStore for MemoryCredentials {
    async fn get(&self, name: &str) -> Result<Option<StoredSecret>, StoreError> {
        Ok(lock(&self.secrets).get(name).cloned())
    }
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), StoreError> {
        let version = self.versions.fetch_add(1, Ordering::SeqCst).to_string();
        lock(&self.secrets).insert(name.to_owned(), StoredSecret { version, value: value.clone() });
        Ok(())
    }
    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        lock(&self.secrets).remove(name);
        Ok(())
    }
}
