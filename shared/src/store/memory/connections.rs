use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Faults, from_ms, lock, ms};
use crate::domain::{Connection, ConnectionStatus, ConsentTarget, Product, TenantId};
use crate::store::{ConnectionStore, PendingConsent, StoreError, SweepPage, Verification, sweep_key};

/// Keyed like the table (`TENANT#…`, `CONNECTION#{product}`), so `list` answers in the order a
/// DynamoDB query does: by sort key.
#[derive(Default)]
pub struct MemoryConnections {
    items: Mutex<BTreeMap<(String, String), Connection>>,
    /// Pending consents by (tenant, target). Locked after `items` where both are needed.
    pending: Mutex<BTreeMap<(String, &'static str), PendingConsent>>,
    faults: Faults,
}

fn pending_key(tenant: &TenantId, target: ConsentTarget) -> (String, &'static str) {
    (tenant.to_string(), target.as_str())
}

fn key(tenant: &TenantId, product: Product) -> (String, String) {
    (tenant.to_string(), format!("CONNECTION#{product}"))
}

impl MemoryConnections {
    pub(super) fn sharing(faults: &Faults) -> Self {
        Self { faults: faults.clone(), ..Self::default() }
    }
}

#[async_trait]
impl ConnectionStore for MemoryConnections {
    async fn get(&self, tenant: &TenantId, product: Product) -> Result<Option<Connection>, StoreError> {
        self.faults.check("ConnectionStore::get")?;
        Ok(lock(&self.items).get(&key(tenant, product)).cloned())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        self.faults.check("ConnectionStore::list")?;
        let tenant = tenant.to_string();
        Ok(lock(&self.items).iter().filter(|((t, _), _)| *t == tenant).map(|(_, c)| c.clone()).collect())
    }

    async fn put_all(&self, connections: &[Connection]) -> Result<(), StoreError> {
        self.faults.check("ConnectionStore::put_all")?;
        // A transaction: DynamoDB refuses an empty one, and one naming an item twice.
        let keys: std::collections::BTreeSet<_> = connections.iter().map(|c| key(&c.tenant, c.product)).collect();
        if connections.is_empty() || keys.len() != connections.len() {
            return Err(StoreError::Service {
                service: "memory",
                message: "ValidationException: a transaction needs 1 to 100 distinct items".into(),
            });
        }
        let mut items = lock(&self.items);
        for c in connections {
            items.insert(key(&c.tenant, c.product), c.clone());
        }
        Ok(())
    }

    async fn delete(&self, tenant: &TenantId, product: Product) -> Result<(), StoreError> {
        self.faults.check("ConnectionStore::delete")?;
        lock(&self.items).remove(&key(tenant, product));
        Ok(())
    }

    async fn record_verified(
        &self,
        tenant: &TenantId,
        product: Product,
        outcome: &Verification,
    ) -> Result<(), StoreError> {
        self.faults.check("ConnectionStore::record_verified")?;
        let mut items = lock(&self.items);
        // Never resurrect a deleted connection, nor touch one whose credentials were replaced.
        if let Some(c) = items.get_mut(&key(tenant, product)).filter(|c| c.secret_name == outcome.secret_name) {
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
        self.faults.check("ConnectionStore::mark_reconnect_required")?;
        for c in lock(&self.items).values_mut().filter(|c| &c.tenant == tenant && c.grant_id == grant_id) {
            c.status = ConnectionStatus::ReconnectRequired;
            c.updated_at = at;
        }
        Ok(())
    }

    async fn sweep_page(&self, after: Option<&str>, limit: usize) -> Result<SweepPage, StoreError> {
        self.faults.check("ConnectionStore::sweep_page")?;
        // The map's (tenant, product) order is the sweep key's order.
        let items = lock(&self.items);
        let mut rest = items.values().filter(|c| after.is_none_or(|a| sweep_key(c).as_str() > a));
        let connections: Vec<Connection> = rest.by_ref().take(limit).cloned().collect();
        let next = match rest.next() {
            Some(_) => connections.last().map(sweep_key),
            None => None,
        };
        Ok(SweepPage { connections, next })
    }

    async fn put_pending(&self, pending: &PendingConsent) -> Result<Option<PendingConsent>, StoreError> {
        self.faults.check("ConnectionStore::put_pending")?;
        // The adapter keeps the expiry in milliseconds.
        let stored = PendingConsent { expires_at: from_ms(ms(pending.expires_at)), ..pending.clone() };
        Ok(lock(&self.pending).insert(pending_key(&pending.tenant, pending.target), stored))
    }

    async fn pending(&self, tenant: &TenantId) -> Result<Vec<PendingConsent>, StoreError> {
        self.faults.check("ConnectionStore::pending")?;
        Ok(lock(&self.pending).values().filter(|p| &p.tenant == tenant).cloned().collect())
    }

    async fn expired_pending(&self, before: OffsetDateTime) -> Result<Vec<PendingConsent>, StoreError> {
        self.faults.check("ConnectionStore::expired_pending")?;
        Ok(lock(&self.pending).values().filter(|p| p.expires_at < before).cloned().collect())
    }

    async fn confirm_pending(&self, pending: &PendingConsent) -> Result<bool, StoreError> {
        self.faults.check("ConnectionStore::confirm_pending")?;
        let mut items = lock(&self.items);
        let mut all = lock(&self.pending);
        let key = pending_key(&pending.tenant, pending.target);
        match all.get(&key) {
            Some(p) if p.grant_id == pending.grant_id && !p.discarding => {}
            _ => return Ok(false),
        }
        all.remove(&key);
        for c in &pending.connections {
            items.insert(self::key(&c.tenant, c.product), c.clone());
        }
        Ok(true)
    }

    async fn discard_pending(
        &self,
        tenant: &TenantId,
        target: ConsentTarget,
        grant_id: &str,
    ) -> Result<bool, StoreError> {
        self.faults.check("ConnectionStore::discard_pending")?;
        match lock(&self.pending).get_mut(&pending_key(tenant, target)) {
            Some(p) if p.grant_id == grant_id => {
                p.discarding = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove_pending(&self, tenant: &TenantId, target: ConsentTarget, grant_id: &str) -> Result<(), StoreError> {
        self.faults.check("ConnectionStore::remove_pending")?;
        let mut all = lock(&self.pending);
        if all.get(&pending_key(tenant, target)).is_some_and(|p| p.grant_id == grant_id) {
            all.remove(&pending_key(tenant, target));
        }
        Ok(())
    }
}
