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
        let [pk, sk] = report_key(tenant, report_id);
        Ok(self.get((pk.1, sk.1)).await?.item.as_ref().and_then(report_page_of))
    }

    async fn set_report_page(&self, tenant: &TenantId, report_id: &str, page: &ReportPage) -> Result<(), StoreError> {
        let [pk, sk] = report_key(tenant, report_id);
        let (update, values) = page_update(page);
        let mut request =
            self.client.update_item().table_name(&self.table).key(pk.0, pk.1).key(sk.0, sk.1).update_expression(update);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        request.send().await.map_err(service_error)?;
        Ok(())
    }

    async fn claim_report_links(
        &self,
        tenant: &TenantId,
        report_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim<Option<ReportPage>, ()>, StoreError> {
        let [pk, sk] = report_key(tenant, report_id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression("SET links_owner = :owner, links_until_ms = :until")
            .condition_expression("attribute_not_exists(links_until_ms) OR links_until_ms < :now")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .expression_attribute_values(":until", AttributeValue::N(ms(until).to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms().to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Claim::Ours(out.attributes.as_ref().and_then(report_page_of))),
            Err(e) if is_condition_failure(&e) => {
                let [pk, sk] = report_key(tenant, report_id);
                let item = self.get((pk.1, sk.1)).await?.item.unwrap_or_default();
                let until_ms = item
                    .get("links_until_ms")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
                    .unwrap_or(0);
                let until =
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(until_ms) * 1_000_000).map_err(corrupt)?;
                Ok(Claim::Held { until })
            }
            Err(e) => Err(service_error(e)),
        }
    }

    async fn save_report_links(
        &self,
        tenant: &TenantId,
        report_id: &str,
        page: &ReportPage,
        owner: &str,
    ) -> Result<(), StoreError> {
        let [pk, sk] = report_key(tenant, report_id);
        let (update, values) = page_update(page);
        let update =
            update.replacen("SET ", "SET links_until_ms = :zero, ", 1).replace(" REMOVE ", " REMOVE links_owner, ");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression(update)
            .condition_expression("links_owner = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()));
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::LeaseLost),
            Err(e) => Err(service_error(e)),
        }
    }

    async fn release_report_links(&self, tenant: &TenantId, report_id: &str, owner: &str) -> Result<(), StoreError> {
        let [pk, sk] = report_key(tenant, report_id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression("SET links_until_ms = :zero REMOVE links_owner")
            .condition_expression("links_owner = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(service_error(e)),
        }
    }
}

fn report_key(tenant: &TenantId, report_id: &str) -> [(&'static str, AttributeValue); 2] {
    [("pk", AttributeValue::S(tenant_pk(tenant))), ("sk", AttributeValue::S(format!("REPORT#{report_id}")))]
}

/// The page record of a `REPORT#` item; `None` for an item that holds only a links lease.
fn report_page_of(item: &std::collections::HashMap<String, AttributeValue>) -> Option<ReportPage> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    Some(ReportPage {
        page_id: PageId::new(text("page_id")?),
        // `site` on records written before the page's fields were updated one by one.
        site: text("page_site").or_else(|| text("site")).map(SiteId::new),
        url: text("page_url"),
        title: text("page_title"),
        links: text("links_digest"),
        report: item.get("report_gz").and_then(|v| v.as_b().ok()).map(|b| b.as_ref().to_vec()),
    })
}

/// `SET` for the record's fields that have a value, `REMOVE` for those that have none (an
/// update, so the links lease attributes stay as they are).
fn page_update(page: &ReportPage) -> (String, Vec<(&'static str, AttributeValue)>) {
    let mut set = vec!["page_id = :page_id".to_owned()];
    // The site as records before this one kept it: `page_site` replaces it.
    let mut remove = vec!["site"];
    let mut values = vec![(":page_id", AttributeValue::S(page.page_id.to_string()))];
    let optional = [
        ("page_site", ":site", page.site.as_ref().map(|s| AttributeValue::S(s.to_string()))),
        ("page_url", ":url", page.url.clone().map(AttributeValue::S)),
        ("page_title", ":title", page.title.clone().map(AttributeValue::S)),
        ("links_digest", ":links", page.links.clone().map(AttributeValue::S)),
        (
            "report_gz",
            ":report",
            page.report.clone().map(|b| AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b))),
        ),
    ];
    // Attribute names are spelled out as literals below: none is a DynamoDB reserved word
    // (`url`, `title`, `site` and `report` would be, hence the prefixes).
    for (name, placeholder, value) in optional {
        match value {
            Some(value) => {
                set.push(format!("{name} = {placeholder}"));
                values.push((placeholder, value));
            }
            None => remove.push(name),
        }
    }
    let update = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
    (update, values)
}
