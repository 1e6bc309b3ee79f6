//! Leases that elect one refresher per grant across instances.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// Cross-instance mutual exclusion for refreshing one grant's tokens.
#[async_trait]
pub trait RefreshLeaseStore: Send + Sync {
    /// Takes the lease if nobody holds it or the holder's lease expired.
    async fn try_acquire(&self, lease_key: &str, owner: &str, until: OffsetDateTime) -> Result<bool, StoreError>;
    /// Releases the lease if `owner` still holds it.
    async fn release(&self, lease_key: &str, owner: &str) -> Result<(), StoreError>;
}
