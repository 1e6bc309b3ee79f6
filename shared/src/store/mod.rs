//! Ports for state: small traits with DynamoDB / Secrets Manager adapters and in-memory fakes.

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::domain::{Connection, ConnectionStatus, ConsentTarget, Product, TenantId};

pub mod dynamo;
#[cfg(any(test, feature = "fakes"))]
pub mod memory;
pub mod secrets;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service failed; the message never includes item contents or secrets.
    #[error("{service} request failed: {message}")]
    Service { service: &'static str, message: String },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// Our lease on a record lapsed and another delivery took the job over; it finishes it.
    #[error("the lease was taken over by another delivery")]
    LeaseLost,
}

impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::internal()
    }
}

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
}

/// Tenant settings per product, stored as the JSON the API accepted (typed at the edges).
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn get_settings(&self, tenant: &TenantId, product: Product) -> Result<Option<serde_json::Value>, StoreError>;
    async fn put_settings(
        &self,
        tenant: &TenantId,
        product: Product,
        settings: &serde_json::Value,
    ) -> Result<(), StoreError>;
}

/// An issue as the ledger records it: where it was written, so that a key is never taken for
/// another site's issue after the tenant connects another site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedIssue {
    pub key: String,
    pub id: String,
    /// The site it was written to: the Cloud cloudId, or the Server/DC base URL.
    pub site: String,
}

/// What the ledger knows of an issue key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub item_id: String,
    /// `None` for records written before sites were recorded (taken as the current site).
    pub site: Option<String>,
}

/// Where an action item stands in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Never attempted: create it.
    Fresh,
    /// An earlier attempt recorded its intent and did not finish: it may have created the issue,
    /// so look for the marker before creating. Anything it created was sent before
    /// `attempted_before` (the end of its lease, or when it gave the item back).
    /// `legacy_marker`: the record predates keyed markers, so the issue may carry the old form.
    Resumed { attempted_before: OffsetDateTime, legacy_marker: bool },
    /// Jira refused it before: try again.
    Retry,
    /// Already created (or created and deleted): nothing to do.
    Done { key: String, id: String, deleted: bool, site: Option<String> },
    /// Another invocation holds it until this instant.
    Busy { until: OffsetDateTime },
}

/// The per-action-item record of what was created: `(tenant, action item id) → issue`.
#[async_trait]
pub trait IssueLedger: Send + Sync {
    async fn claim(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim, StoreError>;
    async fn complete(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        issue: &RecordedIssue,
    ) -> Result<(), StoreError>;
    async fn fail(&self, tenant: &TenantId, item_id: &str, owner: &str, message: &str) -> Result<(), StoreError>;
    /// Gives an unfinished item back (it stays `pending`, so the next attempt looks for it first).
    async fn release(&self, tenant: &TenantId, item_id: &str, owner: &str) -> Result<(), StoreError>;
    /// Records that a claimed item's issue may carry the marker form used before keyed markers.
    async fn mark_legacy_marker(&self, tenant: &TenantId, item_id: &str, owner: &str) -> Result<(), StoreError>;
    /// Holds a claimed item longer (while the job waits for Jira's search index).
    async fn extend(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The action item an issue key was created for, if this system created it for this tenant.
    async fn item_for_key(&self, tenant: &TenantId, key: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn mark_deleted(&self, tenant: &TenantId, key: &str, item_id: &str) -> Result<(), StoreError>;
}

/// Where a publication stands when a delivery claims it.
#[derive(Debug, Clone)]
pub enum PublicationClaim {
    /// New, or unfinished by an earlier attempt: continue from the record.
    Go(crate::reports::Publication),
    /// Published, or failed for good: answer with the record.
    Done(crate::reports::Publication),
    /// Another invocation holds it until this instant.
    Busy { until: OffsetDateTime },
}

/// Publication records, one per (tenant, idempotency key), with a lease so one delivery at a
/// time works on it; and the page each report was published to.
#[async_trait]
pub trait PublicationStore: Send + Sync {
    async fn claim_publication(
        &self,
        tenant: &TenantId,
        fresh: &crate::reports::Publication,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<PublicationClaim, StoreError>;
    /// Records progress; `release` also gives the lease back.
    async fn save_publication(
        &self,
        tenant: &TenantId,
        publication: &crate::reports::Publication,
        owner: &str,
        release: bool,
    ) -> Result<(), StoreError>;
    async fn get_publication(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<crate::reports::Publication>, StoreError>;
    async fn report_page(&self, tenant: &TenantId, report_id: &str) -> Result<Option<ReportPage>, StoreError>;
    async fn set_report_page(&self, tenant: &TenantId, report_id: &str, page: &ReportPage) -> Result<(), StoreError>;
}

/// The page a report was published to, and where: page ids are numbered per site, so an id is
/// only meaningful on the site that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPage {
    pub page_id: String,
    /// A Cloud cloudId or a base URL ([`crate::atlassian::Session::site`]); `None` for records
    /// written before sites were stored, which belong to the current site.
    pub site: Option<String>,
}

/// What a verification found: applied only while the connection still uses `secret_name`.
#[derive(Debug, Clone)]
pub struct Verification {
    pub at: OffsetDateTime,
    pub status: ConnectionStatus,
    pub acting_as: Option<String>,
    pub secret_name: String,
}

/// A started OAuth authorization, waiting for its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    pub id: String,
    pub tenant: TenantId,
    pub target: ConsentTarget,
    pub return_url: String,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait OAuthStateStore: Send + Sync {
    async fn put(&self, pending: &PendingAuthorization) -> Result<(), StoreError>;
    /// Removes and returns the record, at most once across all callers (a conditional delete).
    async fn take(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError>;
}

/// Cross-instance mutual exclusion for refreshing one grant's tokens.
#[async_trait]
pub trait RefreshLeaseStore: Send + Sync {
    /// Takes the lease if nobody holds it or the holder's lease expired.
    async fn try_acquire(&self, lease_key: &str, owner: &str, until: OffsetDateTime) -> Result<bool, StoreError>;
    /// Releases the lease if `owner` still holds it.
    async fn release(&self, lease_key: &str, owner: &str) -> Result<(), StoreError>;
}

/// A secret's current value and the version that identifies it.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    pub version: String,
    pub value: SecretString,
}

/// Credentials: one Secrets Manager secret per grant or connection, KMS-encrypted.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn get(&self, name: &str) -> Result<Option<StoredSecret>, StoreError>;
    /// Creates the secret or makes `value` its current version.
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), StoreError>;
    async fn delete(&self, name: &str) -> Result<(), StoreError>;
}
