//! [`InstallationStore`](crate::store::InstallationStore) on the table; its keys are in the schema
//! table in `mod.rs`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DynamoStore, conditional, corrupt, ms, service_error, tenant_pk, unless_condition_failed};
use crate::domain::{Product, TenantId};
use crate::store::StoreError;
use crate::store::installations::{AppKind, Installation, InstallationStatus, InstallationStore, LinkCode};

fn installation_key(kind: AppKind, id: &str) -> (AttributeValue, AttributeValue) {
    (AttributeValue::S(format!("APP#{}#{id}", kind.as_str())), AttributeValue::S("INSTALLATION".into()))
}

fn code_key(digest: &str) -> (AttributeValue, AttributeValue) {
    (AttributeValue::S(format!("APP_LINK_CODE#{digest}")), AttributeValue::S("CODE".into()))
}

fn pointer_key(tenant: &TenantId, product: Product) -> (AttributeValue, AttributeValue) {
    (AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(format!("APP_LINK_CODE#{product}")))
}

fn at(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|_| corrupt("time out of range"))
}

#[derive(Serialize, Deserialize)]
struct InstallationItem {
    kind: AppKind,
    id: String,
    product: Product,
    base_url: String,
    #[serde(default)]
    cloud_id: Option<String>,
    secret_name: String,
    status: InstallationStatus,
    #[serde(default)]
    tenant: Option<String>,
    generation: u64,
    installed_at_ms: i64,
    updated_at_ms: i64,
}

impl InstallationItem {
    fn into_installation(self) -> Result<Installation, StoreError> {
        Ok(Installation {
            kind: self.kind,
            id: self.id,
            product: self.product,
            base_url: self.base_url,
            cloud_id: self.cloud_id,
            secret_name: self.secret_name,
            status: self.status,
            tenant: self.tenant.as_deref().map(TenantId::parse).transpose().map_err(corrupt)?,
            generation: self.generation,
            installed_at: at(self.installed_at_ms)?,
            updated_at: at(self.updated_at_ms)?,
        })
    }
}

fn installation_of(item: HashMap<String, AttributeValue>) -> Result<Installation, StoreError> {
    serde_dynamo::from_item::<_, InstallationItem>(item).map_err(corrupt)?.into_installation()
}

#[derive(Serialize, Deserialize)]
struct CodeItem {
    digest: String,
    tenant: String,
    product: Product,
    created_at_ms: i64,
    expires_at_ms: i64,
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn status_value(status: InstallationStatus) -> AttributeValue {
    s(match status {
        InstallationStatus::Installed => "installed",
        InstallationStatus::Uninstalled => "uninstalled",
    })
}

impl DynamoStore {
    /// An update of one installation's item, its table and keys set.
    fn update_installation(
        &self,
        kind: AppKind,
        id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let (pk, sk) = installation_key(kind, id);
        self.client.update_item().table_name(&self.table).key("pk", pk).key("sk", sk)
    }
}

#[async_trait]
impl InstallationStore for DynamoStore {
    async fn installation(&self, kind: AppKind, id: &str) -> Result<Option<Installation>, StoreError> {
        self.get(installation_key(kind, id)).await?.item.map(installation_of).transpose()
    }

    async fn put_installation(&self, i: &Installation) -> Result<bool, StoreError> {
        let mut update = self
            .update_installation(i.kind, &i.id)
            .expression_attribute_values(":kind", s(i.kind.as_str()))
            .expression_attribute_values(":id", s(&i.id))
            .expression_attribute_values(":product", s(i.product.as_str()))
            .expression_attribute_values(":base", s(&i.base_url))
            .expression_attribute_values(":secret", s(&i.secret_name))
            .expression_attribute_values(":status", status_value(i.status))
            .expression_attribute_values(":generation", n(i.generation))
            .expression_attribute_values(":installed", n(ms(i.installed_at)))
            .expression_attribute_values(":updated", n(ms(i.updated_at)));
        let mut set = "SET kind = :kind, id = :id, product = :product, base_url = :base, secret_name = :secret, \
                       #status = :status, generation = :generation, updated_at_ms = :updated, \
                       installed_at_ms = if_not_exists(installed_at_ms, :installed)"
            .to_owned();
        match &i.cloud_id {
            Some(cloud_id) => {
                set.push_str(", cloud_id = :cloud");
                update = update.expression_attribute_values(":cloud", s(cloud_id));
            }
            None => set.push_str(" REMOVE cloud_id"),
        }
        update = if i.generation <= 1 {
            update.condition_expression("attribute_not_exists(pk)")
        } else {
            update
                .condition_expression("generation = :previous")
                .expression_attribute_values(":previous", n(i.generation - 1))
        };
        conditional(update.update_expression(set).expression_attribute_names("#status", "status").send().await)
    }

    async fn uninstall(&self, kind: AppKind, id: &str, at: OffsetDateTime) -> Result<Option<Installation>, StoreError> {
        let out = unless_condition_failed(
            self.update_installation(kind, id)
                .update_expression("SET #status = :uninstalled, updated_at_ms = :at REMOVE tenant")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":uninstalled", status_value(InstallationStatus::Uninstalled))
                .expression_attribute_values(":at", n(ms(at)))
                .return_values(ReturnValue::AllOld)
                .send()
                .await,
        )?;
        out.and_then(|out| out.attributes).map(installation_of).transpose()
    }

    async fn link(&self, kind: AppKind, id: &str, tenant: &TenantId, at: OffsetDateTime) -> Result<bool, StoreError> {
        conditional(
            self.update_installation(kind, id)
                .update_expression("SET tenant = :tenant, updated_at_ms = :at")
                .condition_expression(
                    "attribute_exists(pk) AND #status = :installed AND (attribute_not_exists(tenant) OR tenant = :tenant)",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":installed", status_value(InstallationStatus::Installed))
                .expression_attribute_values(":tenant", s(tenant.as_str()))
                .expression_attribute_values(":at", n(ms(at)))
                .send()
                .await,
        )
    }

    async fn unlink(&self, kind: AppKind, id: &str, tenant: &TenantId, at: OffsetDateTime) -> Result<(), StoreError> {
        // A refused condition means it is linked elsewhere or not at all: nothing to do.
        conditional(
            self.update_installation(kind, id)
                .update_expression("SET updated_at_ms = :at REMOVE tenant")
                .condition_expression("tenant = :tenant")
                .expression_attribute_values(":tenant", s(tenant.as_str()))
                .expression_attribute_values(":at", n(ms(at)))
                .send()
                .await,
        )
        .map(|_| ())
    }

    async fn put_link_code(&self, code: &LinkCode) -> Result<(), StoreError> {
        let (pointer_pk, pointer_sk) = pointer_key(&code.tenant, code.product);
        let item = serde_dynamo::to_item(CodeItem {
            digest: code.digest.clone(),
            tenant: code.tenant.to_string(),
            product: code.product,
            created_at_ms: ms(code.created_at),
            expires_at_ms: ms(code.expires_at),
        })
        .map_err(corrupt)?;
        let (pk, sk) = code_key(&code.digest);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .item("pk", pk)
            .item("sk", sk)
            .item("ttl", n(code.expires_at.unix_timestamp()))
            .send()
            .await
            .map_err(service_error)?;
        // The pointer names the tenant's current code for the product; the one it named before
        // is deleted, so only the latest code links.
        let old = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pointer_pk)
            .item("sk", pointer_sk)
            .item("digest", s(&code.digest))
            .item("ttl", n(code.expires_at.unix_timestamp()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(service_error)?;
        let previous = old.attributes.as_ref().and_then(|a| a.get("digest")).and_then(|d| d.as_s().ok());
        if let Some(previous) = previous.filter(|d| **d != code.digest) {
            let (pk, sk) = code_key(previous);
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .send()
                .await
                .map_err(service_error)?;
        }
        Ok(())
    }

    async fn take_link_code(&self, digest: &str, now: OffsetDateTime) -> Result<Option<LinkCode>, StoreError> {
        let (pk, sk) = code_key(digest);
        let out = unless_condition_failed(
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .condition_expression("attribute_exists(pk)")
                .return_values(ReturnValue::AllOld)
                .send()
                .await,
        )?;
        let Some(item) = out.and_then(|o| o.attributes) else { return Ok(None) };
        let code: CodeItem = serde_dynamo::from_item(item).map_err(corrupt)?;
        let code = LinkCode {
            digest: code.digest,
            tenant: TenantId::parse(&code.tenant).map_err(corrupt)?,
            product: code.product,
            created_at: at(code.created_at_ms)?,
            expires_at: at(code.expires_at_ms)?,
        };
        Ok((code.expires_at > now).then_some(code))
    }
}
