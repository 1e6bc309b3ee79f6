//! Tenant settings per product.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Product, TenantId};

/// Tenant settings per product, stored as the JSON the API accepted (typed at the edges).
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn get_settings(&self, tenant: &TenantId, product: Product) -> Result<Option<serde_json::Value>, StoreError>;
    async fn put_settings(
        &self,
        tenant: &TenantId,
        product: Product,
        settings: &serde_json::Value,
    ) -> Result<(), StoreError>;
}
