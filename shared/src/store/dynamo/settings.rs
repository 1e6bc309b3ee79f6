//! [`SettingsStore`](crate::store::SettingsStore) on the table; its keys are in the schema table in `mod.rs`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{DynamoStore, corrupt, service_error, tenant_pk};
use crate::domain::{Product, TenantId};
use crate::store::{SettingsStore, StoreError};

#[async_trait]
impl SettingsStore for DynamoStore {
    async fn get_settings(&self, tenant: &TenantId, product: Product) -> Result<Option<serde_json::Value>, StoreError> {
        let out =
            self.get((AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(format!("SETTINGS#{product}")))).await?;
        let Some(item) = out.item else { return Ok(None) };
        let json =
            item.get("settings").and_then(|v| v.as_s().ok()).ok_or_else(|| corrupt("settings item has no body"))?;
        serde_json::from_str(json).map(Some).map_err(corrupt)
    }

    async fn put_settings(
        &self,
        tenant: &TenantId,
        product: Product,
        settings: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(tenant_pk(tenant)))
            .item("sk", AttributeValue::S(format!("SETTINGS#{product}")))
            .item("settings", AttributeValue::S(settings.to_string()))
            .item("updated_at", AttributeValue::S(OffsetDateTime::now_utc().to_string()))
            .send()
            .await
            .map_err(service_error)?;
        Ok(())
    }
}
