//! Tenant connections: what a tenant connected, without its credentials.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{Connection, ConnectionStatus, Product, TenantId};

/// Tenant connections (metadata only; credentials live in the [`CredentialStore`]).
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn get(&self, tenant: &TenantId, product: Product) -> Result<Option<Connection>, StoreError>;
    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError>;
    /// Writes every connection of one consent together, or none of them.
    async fn put_all(&self, connections: &[Connection]) -> Result<(), StoreError>;
    async fn delete(&self, tenant: &TenantId, product: Product) -> Result<(), StoreError>;
    /// Records a verification's outcome (an update, so concurrent verifications never conflict).
    async fn record_verified(
        &self,
        tenant: &TenantId,
        product: Product,
        outcome: &Verification,
    ) -> Result<(), StoreError>;
    /// Marks every connection of the tenant that uses `grant_id` as `reconnect_required`.
    async fn mark_reconnect_required(
        &self,
        tenant: &TenantId,
        grant_id: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Every tenant's connections in [`sweep_key`] order: the first `limit` after `after` (from
    /// the start when `None`), for the keep-alive sweep. Read from an index, so eventually
    /// consistent: a connection written a moment ago may first show up in the next round.
    async fn sweep_page(&self, after: Option<&str>, limit: usize) -> Result<SweepPage, StoreError>;
    /// Puts connections stored before [`sweep_page`](Self::sweep_page)'s index existed into it:
    /// at most `pages` pages of a one-off, resumable pass per call; `true` once it is complete.
    /// Stores without such an index have nothing to do.
    async fn backfill_sweep_index(&self, _pages: usize) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// One page of [`ConnectionStore::sweep_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepPage {
    pub connections: Vec<Connection>,
    /// Where the next page starts (the last connection's [`sweep_key`]); `None` after the last.
    pub next: Option<String>,
}

/// A connection's place in the sweep: `{tenant}#{product}`. `#` sorts below every character a
/// tenant id may hold, so this orders like (tenant, product).
pub fn sweep_key(connection: &Connection) -> String {
    format!("{}#{}", connection.tenant, connection.product)
}

/// What a verification found: applied only while the connection still uses `secret_name`.
#[derive(Debug, Clone)]
pub struct Verification {
    pub at: OffsetDateTime,
    pub status: ConnectionStatus,
    pub acting_as: Option<String>,
    pub secret_name: String,
}
