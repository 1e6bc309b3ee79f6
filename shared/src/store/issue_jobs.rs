//! Issue jobs the HTTP request could not finish inside its budget: accepted with `202`, their
//! remaining parts finished through `Action Items Deferred` events, read back by
//! `GET /v1/tenants/{tenant}/jobs/{job}`.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::TenantId;

/// What the store knows of one job: how many parts it has, and the results (JSON, as the job
/// wrote them) of each part finished so far. Part 0 is what the HTTP request did itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueJobRecord {
    pub idempotency_key: String,
    pub parts: u32,
    pub results: BTreeMap<u32, String>,
}

#[async_trait]
pub trait IssueJobStore: Send + Sync {
    /// Records an accepted job of `parts` parts with part 0's results. Its records expire a week
    /// later (a caller polls within minutes; a week covers redeliveries and DLQ redrives).
    async fn accept_job(
        &self,
        tenant: &TenantId,
        job: &str,
        idempotency_key: &str,
        parts: u32,
        first: &str,
    ) -> Result<(), StoreError>;
    /// Records a part's final results. The first write wins: a redelivered part (which the
    /// ledger answers as `existing`) does not overwrite what it created.
    async fn record_part(&self, tenant: &TenantId, job: &str, part: u32, results: &str) -> Result<(), StoreError>;
    async fn job(&self, tenant: &TenantId, job: &str) -> Result<Option<IssueJobRecord>, StoreError>;
}
