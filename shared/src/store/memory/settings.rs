use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Faults, lock};
use crate::domain::{Product, TenantId};
use crate::store::{SettingsStore, StoreError};

/// Kept as the JSON text the adapter stores, so what a test reads back went through the same
/// serialization.
#[derive(Default)]
pub struct MemorySettings {
    items: Mutex<HashMap<(String, Product), String>>,
    faults: Faults,
}

impl MemorySettings {
    pub(super) fn sharing(faults: &Faults) -> Self {
        Self { faults: faults.clone(), ..Self::default() }
    }
}

#[async_trait]
impl SettingsStore for MemorySettings {
    async fn get_settings(&self, tenant: &TenantId, product: Product) -> Result<Option<serde_json::Value>, StoreError> {
        self.faults.check("SettingsStore::get_settings")?;
        let Some(json) = lock(&self.items).get(&(tenant.to_string(), product)).cloned() else { return Ok(None) };
        serde_json::from_str(&json).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn put_settings(
        &self,
        tenant: &TenantId,
        product: Product,
        settings: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.faults.check("SettingsStore::put_settings")?;
        lock(&self.items).insert((tenant.to_string(), product), settings.to_string());
        Ok(())
    }
}
