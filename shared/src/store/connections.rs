//! Tenant connections: what a tenant connected, without its credentials.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{Connection, ConnectionStatus, ConsentTarget, Product, TenantId};

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

    // OAuth consents waiting for their confirmation (`crate::consent`): at most one per tenant
    // and consent target, kept apart from the connections until confirmed, so that a pending
    // consent never disturbs a working connection and nothing can use it.

    /// Stores a pending consent, replacing the tenant's earlier one for the same target; that
    /// one is returned so that its secret can go (no confirm can install it any more).
    async fn put_pending(&self, pending: &PendingConsent) -> Result<Option<PendingConsent>, StoreError>;
    /// The tenant's pending consents (being discarded or not).
    async fn pending(&self, tenant: &TenantId) -> Result<Vec<PendingConsent>, StoreError>;
    /// Every tenant's pending consents whose confirmation window closed before `before`.
    async fn expired_pending(&self, before: OffsetDateTime) -> Result<Vec<PendingConsent>, StoreError>;
    /// In one transaction: removes the pending consent, only while it is still this grant and
    /// not being discarded, and writes its connections. `false` (and nothing written) otherwise.
    async fn confirm_pending(&self, pending: &PendingConsent) -> Result<bool, StoreError>;
    /// Marks the pending consent as being discarded, so that no confirm can install it any more
    /// while its secret is deleted. `false` when it is gone or now names another grant.
    async fn discard_pending(
        &self,
        tenant: &TenantId,
        target: ConsentTarget,
        grant_id: &str,
    ) -> Result<bool, StoreError>;
    /// Removes the pending consent if it still names `grant_id`.
    async fn remove_pending(&self, tenant: &TenantId, target: ConsentTarget, grant_id: &str) -> Result<(), StoreError>;
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

/// An OAuth grant that came back from Atlassian's consent but waits for the tenant to confirm
/// it (see `crate::consent`). Its token pair is in the secret already; the connections it will
/// become are kept here, not in the connection records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConsent {
    pub tenant: TenantId,
    pub target: ConsentTarget,
    pub grant_id: String,
    pub secret_name: String,
    /// HMAC-SHA256 of the one-time confirmation code (never the code itself).
    pub digest: Vec<u8>,
    pub created_at: OffsetDateTime,
    /// The confirmation must arrive before this instant.
    pub expires_at: OffsetDateTime,
    /// The connections a confirm writes: `connected`, or `site_selection_required`.
    pub connections: Vec<Connection>,
    /// A discard started (and may have been interrupted); no confirm installs it.
    pub discarding: bool,
}

impl PendingConsent {
    pub fn covers(&self, product: Product) -> bool {
        self.target.products().contains(&product)
    }
}

/// What a verification found: applied only while the connection still uses `secret_name`.
#[derive(Debug, Clone)]
pub struct Verification {
    pub at: OffsetDateTime,
    pub status: ConnectionStatus,
    pub acting_as: Option<String>,
    pub secret_name: String,
}
