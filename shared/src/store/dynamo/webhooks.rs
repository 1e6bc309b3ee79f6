//! [`WebhookStore`](crate::store::WebhookStore) on the table; its keys are in the schema table in `mod.rs`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DynamoStore, conditional, corrupt, ms, service_error};
use crate::domain::TenantId;
use crate::store::webhooks::DELIVERY_MEMORY;
use crate::store::{StoreError, WebhookRegistration, WebhookStore};

/// Every registration lives in this one partition: one small item per opted-in tenant, so the
/// refresh step finds the expiring ones with one query.
const REGISTRATIONS_PK: &str = "JIRA_WEBHOOKS";

fn tenant_sk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn lookup_pk(webhook_id: i64) -> String {
    format!("JIRA_WEBHOOK#{webhook_id}")
}

#[derive(Serialize, Deserialize)]
struct RegistrationItem {
    pk: String,
    sk: String,
    tenant: String,
    cloud_id: String,
    site_url: String,
    webhook_ids: Vec<i64>,
    projects: Vec<String>,
    expires_at_ms: i64,
    registered_at_ms: i64,
}

impl RegistrationItem {
    fn new(pk: String, r: &WebhookRegistration) -> Self {
        Self {
            pk,
            sk: tenant_sk(&r.tenant),
            tenant: r.tenant.to_string(),
            cloud_id: r.cloud_id.clone(),
            site_url: r.site_url.clone(),
            webhook_ids: r.webhook_ids.clone(),
            projects: r.projects.clone(),
            expires_at_ms: ms(r.expires_at),
            registered_at_ms: ms(r.registered_at),
        }
    }

    fn into_registration(self) -> Result<WebhookRegistration, StoreError> {
        let at = |ms: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map_err(|_| corrupt("webhook registration time out of range"))
        };
        Ok(WebhookRegistration {
            tenant: TenantId::parse(&self.tenant).map_err(corrupt)?,
            cloud_id: self.cloud_id,
            site_url: self.site_url,
            webhook_ids: self.webhook_ids,
            projects: self.projects,
            expires_at: at(self.expires_at_ms)?,
            registered_at: at(self.registered_at_ms)?,
        })
    }
}

impl DynamoStore {
    fn put_of(&self, item: RegistrationItem) -> Result<TransactWriteItem, StoreError> {
        let item = serde_dynamo::to_item(item).map_err(corrupt)?;
        let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(corrupt)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete_of(&self, pk: String, sk: String) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(HashMap::from([("pk".into(), AttributeValue::S(pk)), ("sk".into(), AttributeValue::S(sk))])))
            .build()
            .map_err(corrupt)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    async fn registrations_in(
        &self,
        pk: String,
        before: Option<OffsetDateTime>,
    ) -> Result<Vec<WebhookRegistration>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .consistent_read(true);
        if let Some(before) = before {
            query = query
                .filter_expression("expires_at_ms < :before")
                .expression_attribute_values(":before", AttributeValue::N(ms(before).to_string()));
        }
        let mut found = Vec::new();
        let mut pages = query.into_paginator().items().send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(service_error)?;
            found.push(serde_dynamo::from_item::<_, RegistrationItem>(item).map_err(corrupt)?.into_registration()?);
        }
        Ok(found)
    }
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn put_registration(&self, registration: &WebhookRegistration) -> Result<(), StoreError> {
        let old = self.registration(&registration.tenant).await?;
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(self.put_of(RegistrationItem::new(REGISTRATIONS_PK.into(), registration))?);
        for id in &registration.webhook_ids {
            request = request.transact_items(self.put_of(RegistrationItem::new(lookup_pk(*id), registration))?);
        }
        for id in old.iter().flat_map(|o| &o.webhook_ids).filter(|id| !registration.webhook_ids.contains(id)) {
            request = request.transact_items(self.delete_of(lookup_pk(*id), tenant_sk(&registration.tenant))?);
        }
        request.send().await.map_err(service_error)?;
        Ok(())
    }

    async fn registration(&self, tenant: &TenantId) -> Result<Option<WebhookRegistration>, StoreError> {
        let out = self.get((AttributeValue::S(REGISTRATIONS_PK.into()), AttributeValue::S(tenant_sk(tenant)))).await?;
        let Some(item) = out.item else { return Ok(None) };
        serde_dynamo::from_item::<_, RegistrationItem>(item).map_err(corrupt)?.into_registration().map(Some)
    }

    async fn delete_registration(&self, tenant: &TenantId) -> Result<Option<WebhookRegistration>, StoreError> {
        let Some(old) = self.registration(tenant).await? else { return Ok(None) };
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(self.delete_of(REGISTRATIONS_PK.into(), tenant_sk(tenant))?);
        for id in &old.webhook_ids {
            request = request.transact_items(self.delete_of(lookup_pk(*id), tenant_sk(tenant))?);
        }
        request.send().await.map_err(service_error)?;
        Ok(Some(old))
    }

    async fn registrations_with(&self, webhook_id: i64) -> Result<Vec<WebhookRegistration>, StoreError> {
        self.registrations_in(lookup_pk(webhook_id), None).await
    }

    async fn expiring(&self, before: OffsetDateTime, limit: usize) -> Result<Vec<WebhookRegistration>, StoreError> {
        let mut found = self.registrations_in(REGISTRATIONS_PK.into(), Some(before)).await?;
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
        let until = now + DELIVERY_MEMORY;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("JIRA_DELIVERY#{cloud_id}#{identifier}")))
            .item("sk", AttributeValue::S("DELIVERY".into()))
            .item("until_ms", AttributeValue::N(ms(until).to_string()))
            .item("ttl", AttributeValue::N(until.unix_timestamp().to_string()))
            .condition_expression("attribute_not_exists(pk) OR until_ms < :now")
            .expression_attribute_values(":now", AttributeValue::N(ms(now).to_string()))
            .send()
            .await;
        conditional(result)
    }

    async fn delivery_seen(&self, cloud_id: &str, identifier: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let out = self
            .get((
                AttributeValue::S(format!("JIRA_DELIVERY#{cloud_id}#{identifier}")),
                AttributeValue::S("DELIVERY".into()),
            ))
            .await?;
        let until = out
            .item
            .as_ref()
            .and_then(|item| item.get("until_ms"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok());
        Ok(until.is_some_and(|until| until > ms(now)))
    }
}
