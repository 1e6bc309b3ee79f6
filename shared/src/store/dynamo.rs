//! DynamoDB adapter: one table, `pk`/`sk` keys, a `ttl` attribute for expiring items.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | connection | `TENANT#{tenant}` | `CONNECTION#{product}` |
//! | OAuth state | `OAUTH_STATE#{id}` | `STATE` |
//! | refresh lease | `LEASE#{key}` | `LEASE` |
//! | settings | `TENANT#{tenant}` | `SETTINGS#{product}` |
//! | action item → issue (+ `site` it was written to) | `TENANT#{tenant}` | `ACTION#{item id}` |
//! | issue → action item (+ `site`) | `TENANT#{tenant}` | `ISSUE#{key}` |
//! | publication | `TENANT#{tenant}` | `PUBLICATION#{id}` |
//! | report → page | `TENANT#{tenant}` | `REPORT#{report id}` |

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    Claim, ConnectionStore, IssueLedger, KeyRecord, OAuthStateStore, PendingAuthorization, PublicationClaim,
    PublicationStore, RecordedIssue, RefreshLeaseStore, ReportPage, SettingsStore, StoreError, Verification,
};
use crate::domain::{AuthType, Connection, ConnectionStatus, ConsentTarget, Deployment, Product, Site, TenantId};

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A strongly consistent read of one item by its keys.
    async fn get(
        &self,
        (pk, sk): (AttributeValue, AttributeValue),
    ) -> Result<aws_sdk_dynamodb::operation::get_item::GetItemOutput, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .consistent_read(true)
            .send()
            .await
            .map_err(service_error)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn connection_sk(product: Product) -> String {
    format!("CONNECTION#{product}")
}

fn service_error<E: ProvideErrorMetadata, R>(e: SdkError<E, R>) -> StoreError {
    let message = match e.as_service_error() {
        Some(se) => format!("{}: {}", se.code().unwrap_or("error"), se.message().unwrap_or("")),
        None => format!("{e}"),
    };
    StoreError::Service { service: "DynamoDB", message }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException")
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

#[derive(Serialize, Deserialize)]
struct ConnectionItem {
    pk: String,
    sk: String,
    tenant_id: String,
    product: Product,
    deployment: Deployment,
    auth_type: AuthType,
    status: ConnectionStatus,
    site: Option<Site>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    scoped_token: bool,
    #[serde(default)]
    acting_as: Option<String>,
    #[serde(default)]
    candidate_sites: Vec<Site>,
    #[serde(default)]
    scopes: Vec<String>,
    grant_id: String,
    secret_name: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    last_verified_at: Option<OffsetDateTime>,
}

impl From<&Connection> for ConnectionItem {
    fn from(c: &Connection) -> Self {
        Self {
            pk: tenant_pk(&c.tenant),
            sk: connection_sk(c.product),
            tenant_id: c.tenant.to_string(),
            product: c.product,
            deployment: c.deployment,
            auth_type: c.auth_type,
            status: c.status,
            site: c.site.clone(),
            base_url: c.base_url.clone(),
            scoped_token: c.scoped_token,
            acting_as: c.acting_as.clone(),
            candidate_sites: c.candidate_sites.clone(),
            scopes: c.scopes.clone(),
            grant_id: c.grant_id.clone(),
            secret_name: c.secret_name.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_verified_at: c.last_verified_at,
        }
    }
}

impl TryFrom<ConnectionItem> for Connection {
    type Error = StoreError;
    fn try_from(i: ConnectionItem) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: TenantId::parse(&i.tenant_id).map_err(corrupt)?,
            product: i.product,
            deployment: i.deployment,
            auth_type: i.auth_type,
            status: i.status,
            site: i.site,
            base_url: i.base_url,
            scoped_token: i.scoped_token,
            acting_as: i.acting_as,
            candidate_sites: i.candidate_sites,
            scopes: i.scopes,
            grant_id: i.grant_id,
            secret_name: i.secret_name,
            created_at: i.created_at,
            updated_at: i.updated_at,
            last_verified_at: i.last_verified_at,
        })
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn get(&self, tenant: &TenantId, product: Product) -> Result<Option<Connection>, StoreError> {
        let out = self.get((AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(connection_sk(product)))).await?;
        out.item.map(|item| serde_dynamo::from_item::<_, ConnectionItem>(item).map_err(corrupt)?.try_into()).transpose()
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        let mut connections = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(tenant_pk(tenant)))
            .expression_attribute_values(":prefix", AttributeValue::S("CONNECTION#".into()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(service_error)?;
            connections.push(serde_dynamo::from_item::<_, ConnectionItem>(item).map_err(corrupt)?.try_into()?);
        }
        Ok(connections)
    }

    async fn put_all(&self, connections: &[Connection]) -> Result<(), StoreError> {
        let mut request = self.client.transact_write_items();
        for connection in connections {
            let item = serde_dynamo::to_item(ConnectionItem::from(connection)).map_err(corrupt)?;
            let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(corrupt)?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        request.send().await.map_err(service_error)?;
        Ok(())
    }

    async fn delete(&self, tenant: &TenantId, product: Product) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(connection_sk(product)))
            .send()
            .await
            .map_err(service_error)?;
        Ok(())
    }

    async fn record_verified(
        &self,
        tenant: &TenantId,
        product: Product,
        outcome: &Verification,
    ) -> Result<(), StoreError> {
        let at = outcome.at.format(&time::format_description::well_known::Rfc3339).map_err(corrupt)?;
        let status = serde_dynamo::to_attribute_value(outcome.status).map_err(corrupt)?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(connection_sk(product)))
            // Never resurrect a connection deleted meanwhile, nor touch one whose credentials
            // were replaced since this verification started.
            .condition_expression("attribute_exists(pk) AND secret_name = :secret")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":at", AttributeValue::S(at))
            .expression_attribute_values(":status", status)
            .expression_attribute_values(":secret", AttributeValue::S(outcome.secret_name.clone()));
        update = match &outcome.acting_as {
            Some(who) => update
                .update_expression("SET last_verified_at = :at, #status = :status, acting_as = :who")
                .expression_attribute_values(":who", AttributeValue::S(who.clone())),
            None => update.update_expression("SET last_verified_at = :at, #status = :status"),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(service_error(e)),
        }
    }

    async fn mark_reconnect_required(
        &self,
        tenant: &TenantId,
        grant_id: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let at = at.format(&time::format_description::well_known::Rfc3339).map_err(corrupt)?;
        for connection in self.list(tenant).await?.into_iter().filter(|c| c.grant_id == grant_id) {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(tenant_pk(tenant)))
                .key("sk", AttributeValue::S(connection_sk(connection.product)))
                .update_expression("SET #status = :status, updated_at = :at")
                // The connection may have been re-consented (new grant) meanwhile: leave that one alone.
                .condition_expression("grant_id = :grant")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", AttributeValue::S("reconnect_required".into()))
                .expression_attribute_values(":at", AttributeValue::S(at.clone()))
                .expression_attribute_values(":grant", AttributeValue::S(grant_id.into()))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(service_error(e)),
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct StateItem {
    pk: String,
    sk: String,
    tenant_id: String,
    target: ConsentTarget,
    return_url: String,
    expires_at: i64,
    ttl: i64,
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
        }))
    }
}

#[async_trait]
impl RefreshLeaseStore for DynamoStore {
    async fn try_acquire(&self, lease_key: &str, owner: &str, until: OffsetDateTime) -> Result<bool, StoreError> {
        let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let until_ms = (until.unix_timestamp_nanos() / 1_000_000) as i64;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("LEASE#{lease_key}")))
            .item("sk", AttributeValue::S("LEASE".into()))
            .item("owner", AttributeValue::S(owner.into()))
            .item("until_ms", AttributeValue::N(until_ms.to_string()))
            // TTL cleans up leases whose holder died; expiry itself is enforced by the condition.
            .item("ttl", AttributeValue::N((until.unix_timestamp() + 3600).to_string()))
            .condition_expression("attribute_not_exists(pk) OR until_ms < :now")
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(service_error(e)),
        }
    }

    async fn release(&self, lease_key: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("LEASE#{lease_key}")))
            .key("sk", AttributeValue::S("LEASE".into()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(service_error(e)),
        }
    }
}

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

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Until when the holder's lease on a claimed item runs (the epoch when nobody holds it).
fn lease_until(item: &std::collections::HashMap<String, AttributeValue>) -> Result<OffsetDateTime, StoreError> {
    let until_ms =
        item.get("lease_until_ms").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok()).unwrap_or(0);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(until_ms) * 1_000_000).map_err(corrupt)
}

fn action_sk(item_id: &str) -> String {
    format!("ACTION#{item_id}")
}

#[async_trait]
impl IssueLedger for DynamoStore {
    async fn claim(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(action_sk(item_id)))
            // Records made since markers are keyed say so; older ones lack `marker_form`.
            .update_expression(
                "SET #state = :pending, #owner = :owner, lease_until_ms = :until, marker_form = if_not_exists(marker_form, :keyed)",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (#state IN (:pending, :failed) AND lease_until_ms < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .expression_attribute_values(":keyed", AttributeValue::S("keyed".into()))
            .expression_attribute_values(":failed", AttributeValue::S("failed".into()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .expression_attribute_values(":until", AttributeValue::N(ms(until).to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms().to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(
                match out
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("state"))
                    .and_then(|s| s.as_s().ok())
                    .map(String::as_str)
                {
                    None => Claim::Fresh,
                    Some("failed") => Claim::Retry,
                    // The old lease end bounds when the interrupted attempt sent its create:
                    // it held the item until then, and a release stamps the moment it gave up.
                    Some(_) => Claim::Resumed {
                        legacy_marker: out
                            .attributes
                            .as_ref()
                            .and_then(|a| a.get("marker_form"))
                            .and_then(|v| v.as_s().ok())
                            .is_none_or(|form| form == "legacy"),
                        attempted_before: out
                            .attributes
                            .as_ref()
                            .map(lease_until)
                            .transpose()?
                            .unwrap_or_else(OffsetDateTime::now_utc),
                    },
                },
            ),
            Err(e) if is_condition_failure(&e) => {
                let item = self
                    .get((AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(action_sk(item_id))))
                    .await?
                    .item
                    .unwrap_or_default();
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let state = text("state");
                if state == "created" || state == "deleted" {
                    return Ok(Claim::Done {
                        key: text("issue_key"),
                        id: text("issue_id"),
                        deleted: state == "deleted",
                        site: Some(text("site")).filter(|s| !s.is_empty()),
                    });
                }
                let until = lease_until(&item)?;
                Ok(Claim::Busy { until })
            }
            Err(e) => Err(service_error(e)),
        }
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        issue: &RecordedIssue,
    ) -> Result<(), StoreError> {
        let RecordedIssue { key, id, site } = issue;
        let record = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(action_sk(item_id)))
            .update_expression(
                "SET #state = :created, issue_key = :key, issue_id = :id, site = :site REMOVE #owner, lease_until_ms",
            )
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":created", AttributeValue::S("created".into()))
            .expression_attribute_values(":key", AttributeValue::S(key.clone()))
            .expression_attribute_values(":id", AttributeValue::S(id.clone()))
            .expression_attribute_values(":site", AttributeValue::S(site.clone()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .build()
            .map_err(corrupt)?;
        let reverse = Put::builder()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(tenant_pk(tenant)))
            .item("sk", AttributeValue::S(format!("ISSUE#{key}")))
            .item("item_id", AttributeValue::S(item_id.into()))
            .item("site", AttributeValue::S(site.clone()))
            .item("state", AttributeValue::S("created".into()))
            .build()
            .map_err(corrupt)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(record).build())
            .transact_items(TransactWriteItem::builder().put(reverse).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Our lease lapsed and another attempt took the item over; it finds the issue by its
            // marker and records it, so there is nothing to undo here.
            Err(e) if e.as_service_error().and_then(|se| se.code()) == Some("TransactionCanceledException") => {
                tracing::warn!(item_id, "lease lost before recording; the next owner records the issue");
                Ok(())
            }
            Err(e) => Err(service_error(e)),
        }
    }

    async fn fail(&self, tenant: &TenantId, item_id: &str, owner: &str, message: &str) -> Result<(), StoreError> {
        let update = "SET #state = :failed, message = :message, lease_until_ms = :zero";
        let values = [
            (":failed", AttributeValue::S("failed".into())),
            (":message", AttributeValue::S(message.into())),
            (":zero", AttributeValue::N("0".into())),
        ];
        self.settle(tenant, item_id, owner, update, &values).await
    }

    async fn release(&self, tenant: &TenantId, item_id: &str, owner: &str) -> Result<(), StoreError> {
        let values = [(":now", AttributeValue::N(now_ms().to_string()))];
        self.settle(tenant, item_id, owner, "SET lease_until_ms = :now", &values).await
    }

    async fn mark_legacy_marker(&self, tenant: &TenantId, item_id: &str, owner: &str) -> Result<(), StoreError> {
        let values = [(":legacy", AttributeValue::S("legacy".into()))];
        self.settle(tenant, item_id, owner, "SET marker_form = :legacy", &values).await
    }

    async fn extend(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // Taken over meanwhile (a condition failure): the completion's own owner condition will
        // refuse our record.
        let values = [(":until", AttributeValue::N(ms(until).to_string()))];
        self.settle(tenant, item_id, owner, "SET lease_until_ms = :until", &values).await
    }

    async fn item_for_key(&self, tenant: &TenantId, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        let out = self.get((AttributeValue::S(tenant_pk(tenant)), AttributeValue::S(format!("ISSUE#{key}")))).await?;
        let Some(item) = out.item else { return Ok(None) };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        if text("state").as_deref() != Some("created") {
            return Ok(None);
        }
        Ok(text("item_id").map(|item_id| KeyRecord { item_id, site: text("site") }))
    }

    async fn mark_deleted(&self, tenant: &TenantId, key: &str, item_id: &str) -> Result<(), StoreError> {
        for sk in [format!("ISSUE#{key}"), action_sk(item_id)] {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(tenant_pk(tenant)))
                .key("sk", AttributeValue::S(sk))
                .update_expression("SET #state = :deleted")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":deleted", AttributeValue::S("deleted".into()))
                .send()
                .await
                .map_err(service_error)?;
        }
        Ok(())
    }
}

impl DynamoStore {
    /// An update to an item we hold, applied only while we still hold it.
    async fn settle(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        update: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(action_sk(item_id)))
            .update_expression(update)
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()));
        if update.contains("#state") {
            request = request.expression_attribute_names("#state", "state");
        }
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(service_error(e)),
        }
    }
}

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
    ) -> Result<PublicationClaim, StoreError> {
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
            Ok(out) => Ok(PublicationClaim::Go(publication_of(&out.attributes.unwrap_or_default())?)),
            Err(e) if is_condition_failure(&e) => {
                let [pk, sk] = publication_key(tenant, &fresh.id);
                let item = self.get((pk.1, sk.1)).await?.item.unwrap_or_default();
                if item.get("done").and_then(|v| v.as_bool().ok()).copied() == Some(true) {
                    return Ok(PublicationClaim::Done(publication_of(&item)?));
                }
                let until = lease_until(&item)?;
                Ok(PublicationClaim::Busy { until })
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
        Ok(out.item.and_then(|i| Some(ReportPage { page_id: text(&i, "page_id")?, site: text(&i, "site") })))
    }

    async fn set_report_page(&self, tenant: &TenantId, report_id: &str, page: &ReportPage) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(tenant_pk(tenant)))
            .item("sk", AttributeValue::S(format!("REPORT#{report_id}")))
            .item("page_id", AttributeValue::S(page.page_id.clone()));
        if let Some(site) = &page.site {
            put = put.item("site", AttributeValue::S(site.clone()));
        }
        put.send().await.map_err(service_error)?;
        Ok(())
    }
}
