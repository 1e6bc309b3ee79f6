//! [`OAuthStateStore`](crate::store::OAuthStateStore) on the table; its keys are in the schema table in `mod.rs`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DynamoStore, corrupt, is_condition_failure, service_error};
use crate::domain::{ConsentTarget, TenantId};
use crate::store::{OAuthStateStore, PendingAuthorization, StoreError};

#[derive(Serialize, Deserialize)]
struct StateItem {
    pk: String,
    sk: String,
    tenant_id: String,
    target: ConsentTarget,
    return_url: String,
    expires_at: i64,
    ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_center: Option<String>,
}

fn state_pk(id: &str) -> String {
    format!("OAUTH_STATE#{id}")
}

#[async_trait]
impl OAuthStateStore for DynamoStore {
    async fn put(&self, pending: &PendingAuthorization) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(StateItem {
            pk: state_pk(&pending.id),
            sk: "STATE".into(),
            tenant_id: pending.tenant.to_string(),
            target: pending.target,
            return_url: pending.return_url.clone(),
            expires_at: pending.expires_at.unix_timestamp(),
            ttl: pending.expires_at.unix_timestamp(),
            data_center: pending.data_center.clone(),
        })
        .map_err(corrupt)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(service_error)?;
        Ok(())
    }

    async fn take(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(state_pk(id)))
            .key("sk", AttributeValue::S("STATE".into()))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let attributes = match result {
            Ok(out) => out.attributes,
            Err(e) if is_condition_failure(&e) => return Ok(None),
            Err(e) => return Err(service_error(e)),
        };
        let Some(attributes) = attributes else {
            return Ok(None);
        };
        let item: StateItem = serde_dynamo::from_item(attributes).map_err(corrupt)?;
        Ok(Some(PendingAuthorization {
            id: id.to_owned(),
            tenant: TenantId::parse(&item.tenant_id).map_err(corrupt)?,
            target: item.target,
            return_url: item.return_url,
            expires_at: OffsetDateTime::from_unix_timestamp(item.expires_at).map_err(corrupt)?,
            data_center: item.data_center,
        }))
    }
}
