//! [`KeepAliveStore`](crate::store::KeepAliveStore) on the table; its keys are in the schema table in `mod.rs`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{DynamoStore, conditional, corrupt, service_error, tenant_pk};
use crate::domain::TenantId;
use crate::store::{KeepAliveStore, StoreError, SweepRound};

const ROUND_PK: &str = "KEEP_ALIVE";
const ROUND_SK: &str = "ROUND";

fn notice_sk(notice: &str) -> String {
    format!("NOTICE#{notice}")
}

#[async_trait]
impl KeepAliveStore for DynamoStore {
    async fn claim_notice(
        &self,
        tenant: &TenantId,
        notice: &str,
        keep_until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(tenant_pk(tenant)))
            .item("sk", AttributeValue::S(notice_sk(notice)))
            .item("ttl", AttributeValue::N(keep_until.unix_timestamp().to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        conditional(result)
    }

    async fn forget_notice(&self, tenant: &TenantId, notice: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(notice_sk(notice)))
            .send()
            .await
            .map_err(service_error)?;
        Ok(())
    }

    async fn sweep_round(&self) -> Result<Option<SweepRound>, StoreError> {
        let out = self.get((AttributeValue::S(ROUND_PK.into()), AttributeValue::S(ROUND_SK.into()))).await?;
        let Some(item) = out.item else { return Ok(None) };
        let started = item.get("started_at").and_then(|v| v.as_s().ok()).ok_or_else(|| corrupt("round: no start"))?;
        Ok(Some(SweepRound {
            started_at: OffsetDateTime::parse(started, &Rfc3339).map_err(corrupt)?,
            after: item.get("after").and_then(|v| v.as_s().ok()).cloned(),
            completed_at: item
                .get("completed_at")
                .and_then(|v| v.as_s().ok())
                .map(|at| OffsetDateTime::parse(at, &Rfc3339).map_err(corrupt))
                .transpose()?,
        }))
    }

    async fn save_sweep_round(&self, round: &SweepRound) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(ROUND_PK.into()))
            .item("sk", AttributeValue::S(ROUND_SK.into()))
            .item("started_at", AttributeValue::S(round.started_at.format(&Rfc3339).map_err(corrupt)?));
        if let Some(after) = &round.after {
            put = put.item("after", AttributeValue::S(after.clone()));
        }
        if let Some(at) = round.completed_at {
            put = put.item("completed_at", AttributeValue::S(at.format(&Rfc3339).map_err(corrupt)?));
        }
        put.send().await.map_err(service_error)?;
        Ok(())
    }
}
