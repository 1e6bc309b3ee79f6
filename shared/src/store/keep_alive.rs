//! What the keep-alive sweep remembers between runs: where the round it is in stopped, and
//! which notices went out (so each goes out once, whatever re-runs and duplicate deliveries do).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::TenantId;

/// One pass over every connection, done in slices across runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRound {
    /// When the round began (the business clock): a new one begins a day after it.
    pub started_at: OffsetDateTime,
    /// The sweep key ([`ConnectionStore::sweep_page`](super::ConnectionStore::sweep_page)) of
    /// the last connection done; `None` before the first.
    pub after: Option<String>,
    /// When the round's last connection was done; `None` while it is in progress.
    pub completed_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait KeepAliveStore: Send + Sync {
    /// Records that the notice `key` went out to `tenant`; `false` when it was recorded
    /// already (then it must not go out again). Kept until `keep_until` (a TTL).
    async fn claim_notice(&self, tenant: &TenantId, key: &str, keep_until: OffsetDateTime) -> Result<bool, StoreError>;
    /// Forgets a notice: it could not be sent (the next run tries again), or what it said no
    /// longer holds (a broken connection works again).
    async fn forget_notice(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError>;
    /// The round in progress or last completed; `None` before the first run.
    async fn sweep_round(&self) -> Result<Option<SweepRound>, StoreError>;
    async fn save_sweep_round(&self, round: &SweepRound) -> Result<(), StoreError>;
}
