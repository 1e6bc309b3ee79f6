//! Fair shares across instances: each tenant holds at most N leased slots per pool (a function),
//! so one tenant's flood can't take every instance of a function. A slot is a lease with an end:
//! a crashed instance's slot frees itself when its lease lapses, never leaks.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::TenantId;

/// What [`TenantSlots::acquire`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotClaim {
    /// A slot is the holder's until the lease asked for (renew it before).
    Granted,
    /// Every slot is held by an unexpired lease.
    Full,
    /// Atlassian paused the tenant (a 429's wait, recorded at a release) past what the caller can
    /// wait: until this instant.
    Paused { until: OffsetDateTime },
}

#[async_trait]
pub trait TenantSlots: Send + Sync {
    /// Takes one of `slots` slots of `tenant` in `pool` for `holder` until `until`, unless every
    /// slot is held by an unexpired lease, or the pool is paused past `may_wait_until`. Lapsed
    /// leases are dropped on the way. One round trip when a slot is free.
    async fn acquire(
        &self,
        tenant: &TenantId,
        pool: &str,
        holder: &str,
        slots: u32,
        until: OffsetDateTime,
        may_wait_until: OffsetDateTime,
    ) -> Result<SlotClaim, StoreError>;

    /// Extends `holder`'s lease to `until`; `false` when it no longer holds one (it lapsed and
    /// was dropped by another acquire).
    async fn renew(
        &self,
        tenant: &TenantId,
        pool: &str,
        holder: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Gives `holder`'s slot back (nothing if it holds none), recording until when Atlassian
    /// paused the tenant, when the work saw a 429, so other instances refuse before sending.
    async fn release(
        &self,
        tenant: &TenantId,
        pool: &str,
        holder: &str,
        paused_until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;
}
