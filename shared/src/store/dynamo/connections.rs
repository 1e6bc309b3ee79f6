//! [`ConnectionStore`](crate::store::ConnectionStore) on the table; its keys are in the schema table in `mod.rs`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DynamoStore, conditional, corrupt, is_condition_failure, ms, service_error, tenant_pk};
use crate::domain::{AuthType, Connection, ConnectionStatus, ConsentTarget, Deployment, Product, Site, TenantId};
use crate::store::{ConnectionStore, PendingConsent, StoreError, SweepPage, Verification, sweep_key};

fn connection_sk(product: Product) -> String {
    format!("CONNECTION#{product}")
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
    /// The sparse `sweep` index's keys (only connection items carry them): the keep-alive sweep
    /// pages every tenant's connections through it instead of scanning the table.
    #[serde(default)]
    sweep_pk: Option<String>,
    #[serde(default)]
    sweep_sk: Option<String>,
}

/// The `sweep` index (a GSI: `sweep_pk` hash, `sweep_sk` range, all attributes projected).
pub(super) const SWEEP_INDEX: &str = "sweep";
const SWEEP_PK: &str = "CONNECTION";

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
            sweep_pk: Some(SWEEP_PK.into()),
            sweep_sk: Some(sweep_key(c)),
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

/// All pending consents share one partition: each lives minutes (until confirmed or expired),
/// so it stays small, and the sweep finds every tenant's expired ones with one query.
const PENDING_PK: &str = "CONSENT_PENDING";

/// DynamoDB's TTL is only a backstop, long after the sweep (which deletes the grant's secret
/// before its record) has run: an item it deletes would leave its secret behind.
const PENDING_TTL_GRACE: time::Duration = time::Duration::days(7);

fn pending_sk(tenant: &TenantId, target: ConsentTarget) -> String {
    format!("TENANT#{tenant}#{}", target.as_str())
}

#[derive(Serialize, Deserialize)]
struct PendingItem {
    pk: String,
    sk: String,
    tenant_id: String,
    target: ConsentTarget,
    grant_id: String,
    secret_name: String,
    /// base64 of the HMAC of the confirmation code.
    digest: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    expires_at_ms: i64,
    connections: Vec<ConnectionItem>,
    #[serde(default)]
    discarding: bool,
    ttl: i64,
}

impl PendingItem {
    fn from_pending(p: &PendingConsent) -> Self {
        use base64::Engine;
        Self {
            pk: PENDING_PK.into(),
            sk: pending_sk(&p.tenant, p.target),
            tenant_id: p.tenant.to_string(),
            target: p.target,
            grant_id: p.grant_id.clone(),
            secret_name: p.secret_name.clone(),
            digest: base64::engine::general_purpose::STANDARD.encode(&p.digest),
            created_at: p.created_at,
            expires_at_ms: ms(p.expires_at),
            connections: p.connections.iter().map(ConnectionItem::from).collect(),
            discarding: p.discarding,
            ttl: (p.expires_at + PENDING_TTL_GRACE).unix_timestamp(),
        }
    }

    fn into_pending(self) -> Result<PendingConsent, StoreError> {
        use base64::Engine;
        Ok(PendingConsent {
            tenant: TenantId::parse(&self.tenant_id).map_err(corrupt)?,
            target: self.target,
            grant_id: self.grant_id,
            secret_name: self.secret_name,
            digest: base64::engine::general_purpose::STANDARD.decode(&self.digest).map_err(corrupt)?,
            created_at: self.created_at,
            expires_at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.expires_at_ms) * 1_000_000)
                .map_err(corrupt)?,
            connections: self.connections.into_iter().map(Connection::try_from).collect::<Result<_, _>>()?,
            discarding: self.discarding,
        })
    }
}

impl DynamoStore {
    async fn query_pending(
        &self,
        prefix: Option<String>,
        before: Option<OffsetDateTime>,
    ) -> Result<Vec<PendingConsent>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", AttributeValue::S(PENDING_PK.into()))
            .consistent_read(true);
        query = match prefix {
            Some(prefix) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(prefix)),
            None => query.key_condition_expression("pk = :pk"),
        };
        if let Some(before) = before {
            query = query
                .filter_expression("expires_at_ms < :before")
                .expression_attribute_values(":before", AttributeValue::N(ms(before).to_string()));
        }
        let mut found = Vec::new();
        let mut pages = query.into_paginator().items().send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(service_error)?;
            found.push(serde_dynamo::from_item::<_, PendingItem>(item).map_err(corrupt)?.into_pending()?);
        }
        Ok(found)
    }

    fn pending_key(tenant: &TenantId, target: ConsentTarget) -> Option<HashMap<String, AttributeValue>> {
        Some(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(PENDING_PK.into())),
            ("sk".to_owned(), AttributeValue::S(pending_sk(tenant, target))),
        ]))
    }
}

/// Whether a conditional write applied (`false`: its condition did not hold).
fn applied<O, E: ProvideErrorMetadata, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(service_error(e)),
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

    async fn sweep_page(&self, after: Option<&str>, limit: usize) -> Result<SweepPage, StoreError> {
        let limit = i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(SWEEP_INDEX)
            .expression_attribute_values(":pk", AttributeValue::S(SWEEP_PK.into()))
            .limit(limit);
        query = match after {
            Some(after) => query
                .key_condition_expression("sweep_pk = :pk AND sweep_sk > :after")
                .expression_attribute_values(":after", AttributeValue::S(after.to_owned())),
            None => query.key_condition_expression("sweep_pk = :pk"),
        };
        let out = query.send().await.map_err(service_error)?;
        let connections = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item::<_, ConnectionItem>(item).map_err(corrupt)?.try_into())
            .collect::<Result<Vec<Connection>, StoreError>>()?;
        let next = match out.last_evaluated_key {
            Some(_) => connections.last().map(sweep_key),
            None => None,
        };
        Ok(SweepPage { connections, next })
    }

    async fn backfill_sweep_index(&self, pages: usize) -> Result<bool, StoreError> {
        self.backfill_sweep_keys(pages).await
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

    async fn put_pending(&self, pending: &PendingConsent) -> Result<Option<PendingConsent>, StoreError> {
        let item = serde_dynamo::to_item(PendingItem::from_pending(pending)).map_err(corrupt)?;
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(service_error)?;
        out.attributes
            .map(|old| serde_dynamo::from_item::<_, PendingItem>(old).map_err(corrupt)?.into_pending())
            .transpose()
    }

    async fn pending(&self, tenant: &TenantId) -> Result<Vec<PendingConsent>, StoreError> {
        self.query_pending(Some(format!("TENANT#{tenant}#")), None).await
    }

    async fn expired_pending(&self, before: OffsetDateTime) -> Result<Vec<PendingConsent>, StoreError> {
        self.query_pending(None, Some(before)).await
    }

    async fn confirm_pending(&self, pending: &PendingConsent) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Self::pending_key(&pending.tenant, pending.target))
            .condition_expression("grant_id = :grant AND discarding = :no")
            .expression_attribute_values(":grant", AttributeValue::S(pending.grant_id.clone()))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .build()
            .map_err(corrupt)?;
        let mut request =
            self.client.transact_write_items().transact_items(TransactWriteItem::builder().delete(delete).build());
        for connection in &pending.connections {
            let item = serde_dynamo::to_item(ConnectionItem::from(connection)).map_err(corrupt)?;
            let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(corrupt)?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                // The only condition is the pending item's: it was confirmed, replaced or discarded.
                let refused = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                        cancelled.cancellation_reasons().first().and_then(|r| r.code())
                            == Some("ConditionalCheckFailed")
                    }
                    _ => false,
                };
                if refused { Ok(false) } else { Err(service_error(e)) }
            }
        }
    }

    async fn discard_pending(
        &self,
        tenant: &TenantId,
        target: ConsentTarget,
        grant_id: &str,
    ) -> Result<bool, StoreError> {
        let marked = self.client.update_item().table_name(&self.table).set_key(Self::pending_key(tenant, target));
        applied(
            marked
                .update_expression("SET discarding = :yes")
                .condition_expression("grant_id = :grant")
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .expression_attribute_values(":grant", AttributeValue::S(grant_id.into()))
                .send()
                .await,
        )
    }

    async fn remove_pending(&self, tenant: &TenantId, target: ConsentTarget, grant_id: &str) -> Result<(), StoreError> {
        let removed = self.client.delete_item().table_name(&self.table).set_key(Self::pending_key(tenant, target));
        // Gone already, or replaced by a newer consent: nothing of this grant's is left to remove.
        applied(
            removed
                .condition_expression("grant_id = :grant")
                .expression_attribute_values(":grant", AttributeValue::S(grant_id.into()))
                .send()
                .await,
        )?;
        Ok(())
    }
}

/// Where the one-off backfill of the `sweep` index stopped (`KEEP_ALIVE` / `BACKFILL`).
const BACKFILL_SK: &str = "BACKFILL";

impl DynamoStore {
    /// Gives connection items written before the `sweep` index existed its keys, so the
    /// keep-alive sweep finds them. A table scan, so it runs once per deployment: up to `pages`
    /// scan pages a call, resuming where the last call stopped, and answers `true` (at once, on
    /// every later call) once the whole table was done. Items written since carry the keys.
    async fn backfill_sweep_keys(&self, pages: usize) -> Result<bool, StoreError> {
        let scan = |scan: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder| {
            scan.filter_expression("begins_with(sk, :c) AND attribute_not_exists(sweep_pk)")
                .expression_attribute_values(":c", AttributeValue::S("CONNECTION#".into()))
                .projection_expression("pk, sk, tenant_id, product")
        };
        self.resumable_scan(("KEEP_ALIVE", BACKFILL_SK), pages, scan, |items| {
            Box::pin(async move {
                for item in &items {
                    let field = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    let result = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .key("pk", AttributeValue::S(field("pk")))
                        .key("sk", AttributeValue::S(field("sk")))
                        .update_expression("SET sweep_pk = :pk, sweep_sk = :sk")
                        // Deleted or rewritten meanwhile: nothing to do.
                        .condition_expression("attribute_exists(pk) AND attribute_not_exists(sweep_pk)")
                        .expression_attribute_values(":pk", AttributeValue::S(SWEEP_PK.into()))
                        .expression_attribute_values(
                            ":sk",
                            AttributeValue::S(format!("{}#{}", field("tenant_id"), field("product"))),
                        )
                        .send()
                        .await;
                    conditional(result)?;
                }
                Ok(())
            })
        })
        .await
    }
}

#[cfg(test)]
impl DynamoStore {
    /// Makes a connection item look like one written before the `sweep` index existed.
    pub(crate) async fn strip_sweep_keys(&self, tenant: &TenantId, product: Product) {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(connection_sk(product)))
            .update_expression("REMOVE sweep_pk, sweep_sk")
            .send()
            .await
            .unwrap();
    }
}
