//! Started OAuth authorizations, each taken at most once by its callback.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{ConsentTarget, TenantId};

/// A started OAuth authorization, waiting for its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    pub id: String,
    pub tenant: TenantId,
    pub target: ConsentTarget,
    pub return_url: String,
    pub expires_at: OffsetDateTime,
    /// A Data Center OAuth consent's application link (base URL, client id and secret), sealed
    /// under a key derived from the state id (`oauth::dc::seal`): opaque to the store, and
    /// unreadable without the deployment's state key. `None` for Cloud consents.
    pub data_center: Option<String>,
}

#[async_trait]
pub trait OAuthStateStore: Send + Sync {
    async fn put(&self, pending: &PendingAuthorization) -> Result<(), StoreError>;
    /// Removes and returns the record, at most once across all callers (a conditional delete).
    async fn take(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError>;
}
