//! [`PublicationStore`](crate::store::PublicationStore) on the table; its keys are in the schema table in `mod.rs`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use time::OffsetDateTime;

use super::{DynamoStore, corrupt, is_condition_failure, lease_until, ms, now_ms, service_error, tenant_pk};
use crate::domain::TenantId;
use crate::ids::{PageId, SiteId};
use crate::reports::Publication;
use crate::store::{Claim, PublicationStore, ReportPage, StoreError};

fn publication_key(tenant: &TenantId, id: &str) -> [(&'static str, AttributeValue); 2] {
    [("pk", AttributeValue::S(tenant_pk(tenant))), ("sk", AttributeValue::S(format!("PUBLICATION#{id}")))]
}

fn publication_of(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<crate::reports::Publication, StoreError> {
    let record = item.get("record").and_then(|v| v.as_s().ok()).ok_or_else(|| corrupt("publication without record"))?;
    serde_json::from_str(record).map_err(corrupt)
}

#[async_trait]
impl PublicationStore for DynamoStore {
    async fn claim_publication(
        &self,
        tenant: &TenantId,
        fresh: &crate::reports::Publication,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim<Publication>, StoreError> {
        let [pk, sk] = publication_key(tenant, &fresh.id);
        let record = serde_json::to_string(fresh).map_err(corrupt)?;
        // Create the record, or take over an unfinished one whose lease lapsed; keep its progress.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression("SET #owner = :owner, lease_until_ms = :until, #record = if_not_exists(#record, :record), #done = if_not_exists(#done, :no)")
            .condition_expression("attribute_not_exists(pk) OR (#done = :no AND lease_until_ms < :now)")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#record", "record")
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .expression_attribute_values(":until", AttributeValue::N(ms(until).to_string()))
            .expression_attribute_values(":record", AttributeValue::S(record))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":now", AttributeValue::N(now_ms().to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Claim::Ours(publication_of(&out.attributes.unwrap_or_default())?)),
            Err(e) if is_condition_failure(&e) => {
                let [pk, sk] = publication_key(tenant, &fresh.id);
                let item = self.get((pk.1, sk.1)).await?.item.unwrap_or_default();
                if item.get("done").and_then(|v| v.as_bool().ok()).copied() == Some(true) {
                    return Ok(Claim::Done(publication_of(&item)?));
                }
                let until = lease_until(&item)?;
                Ok(Claim::Held { until })
            }
            Err(e) => Err(service_error(e)),
        }
    }

    async fn save_publication(
        &self,
        tenant: &TenantId,
        publication: &crate::reports::Publication,
        owner: &str,
        release: bool,
    ) -> Result<(), StoreError> {
        let [pk, sk] = publication_key(tenant, &publication.id);
        let done = publication.state.is_final();
        let update = if release || done {
            "SET #record = :record, #done = :done, lease_until_ms = :zero"
        } else {
            "SET #record = :record, #done = :done"
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression(update)
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#record", "record")
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .expression_attribute_values(
                ":record",
                AttributeValue::S(serde_json::to_string(publication).map_err(corrupt)?),
            )
            .expression_attribute_values(":done", AttributeValue::Bool(done));
        if release || done {
            request = request.expression_attribute_values(":zero", AttributeValue::N("0".into()));
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::LeaseLost),
            Err(e) => Err(service_error(e)),
        }
    }

    async fn get_publication(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<crate::reports::Publication>, StoreError> {
        let [pk, sk] = publication_key(tenant, id);
        let out = self.get((pk.1, sk.1)).await?;
        out.item.as_ref().map(publication_of).transpose()
    }

    async fn report_page(&self, tenant: &TenantId, report_id: &str) -> Result<Option<ReportPage>, StoreError> {
        let out =
            self.get((AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(format!("REPORT#{report_id}")))).await?;
        let text = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
            item.get(name).and_then(|v| v.as_s().ok()).cloned()
        };
        Ok(out.item.and_then(|i| {
            Some(ReportPage { page_id: PageId::new(text(&i, "page_id")?), site: text(&i, "site").map(SiteId::new) })
        }))
    }

    async fn set_report_page(&self, tenant: &TenantId, report_id: &str, page: &ReportPage) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(tenant_pk(tenant)))
            .item("sk", AttributeValue::S(format!("REPORT#{report_id}")))
            .item("page_id", AttributeValue::S(page.page_id.to_string()));
        if let Some(site) = &page.site {
            put = put.item("site", AttributeValue::S(site.to_string()));
        }
        put.send().await.map_err(service_error)?;
        Ok(())
    }
}
