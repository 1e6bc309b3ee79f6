use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Faults, lock};
use crate::domain::TenantId;
use crate::store::webhooks::DELIVERY_MEMORY;
use crate::store::{StoreError, WebhookRegistration, WebhookStore};

#[derive(Default)]
pub struct MemoryWebhooks {
    registrations: Mutex<HashMap<String, WebhookRegistration>>,
    /// (cloudId, identifier) -> remembered until.
    deliveries: Mutex<HashMap<(String, String), OffsetDateTime>>,
    faults: Faults,
}

impl MemoryWebhooks {
    pub(super) fn sharing(faults: &Faults) -> Self {
        Self { faults: faults.clone(), ..Self::default() }
    }
}

#[async_trait]
impl WebhookStore for MemoryWebhooks {
    async fn put_registration(&self, registration: &WebhookRegistration) -> Result<(), StoreError> {
        self.faults.check("WebhookStore::put_registration")?;
        lock(&self.registrations).insert(registration.tenant.to_string(), registration.clone());
        Ok(())
    }

    async fn registration(&self, tenant: &TenantId) -> Result<Option<WebhookRegistration>, StoreError> {
        self.faults.check("WebhookStore::registration")?;
        Ok(lock(&self.registrations).get(tenant.as_str()).cloned())
    }

    async fn delete_registration(&self, tenant: &TenantId) -> Result<Option<WebhookRegistration>, StoreError> {
        self.faults.check("WebhookStore::delete_registration")?;
        Ok(lock(&self.registrations).remove(tenant.as_str()))
    }

    async fn registrations_with(&self, webhook_id: i64) -> Result<Vec<WebhookRegistration>, StoreError> {
        self.faults.check("WebhookStore::registrations_with")?;
        let mut found: Vec<_> =
            lock(&self.registrations).values().filter(|r| r.webhook_ids.contains(&webhook_id)).cloned().collect();
        found.sort_by(|a, b| a.tenant.as_str().cmp(b.tenant.as_str()));
        Ok(found)
    }

    async fn expiring(&self, before: OffsetDateTime, limit: usize) -> Result<Vec<WebhookRegistration>, StoreError> {
        self.faults.check("WebhookStore::expiring")?;
        let mut found: Vec<_> = lock(&self.registrations).values().filter(|r| r.expires_at < before).cloned().collect();
        found.sort_by_key(|r| (r.expires_at, r.tenant.to_string()));
        found.truncate(limit);
        Ok(found)
    }

    async fn delivery_handled(
        &self,
        cloud_id: &str,
        identifier: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.faults.check("WebhookStore::delivery_handled")?;
        let mut deliveries = lock(&self.deliveries);
        let key = (cloud_id.to_owned(), identifier.to_owned());
        if deliveries.get(&key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        deliveries.insert(key, now + DELIVERY_MEMORY);
        Ok(true)
    }

    async fn delivery_seen(&self, cloud_id: &str, identifier: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.faults.check("WebhookStore::delivery_seen")?;
        let key = (cloud_id.to_owned(), identifier.to_owned());
        Ok(lock(&self.deliveries).get(&key).is_some_and(|until| *until > now))
    }
}
