//! The terminal `Publish Failed` of a dead-lettered event, sent once per function, job, tenant
//! and idempotency key (see `app::settle_dead_letter`): Lambda's on-failure record of the event
//! may arrive twice (EventBridge delivers at least once), concurrently, or reach an instance
//! that is killed half-way, and the SaaS must still hear exactly once that the job gave up.
//!
//! The protocol is claim → publish → mark sent. A claim is a short lease: whoever holds it
//! publishes; a holder that dies before marking lets its lease lapse, and the next delivery of
//! the record claims and publishes. The narrow window this leaves: a holder that published but
//! died (or lost the table) before marking, whose lease then lapsed while a record was still
//! being delivered, is followed by a second `Publish Failed` — the same terminal outcome twice,
//! never two different ones. DynamoDB cannot publish and write in one transaction; the lease
//! keeps the window to "killed between two calls".

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::TenantId;

/// What a claim on a dead letter's notice found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeClaim {
    /// Ours until the lease asked for: publish, then [`DeadLetterNotices::mark_sent`].
    Ours,
    /// It went out already: send nothing.
    Sent,
    /// Another delivery holds it until this instant (it is publishing now).
    Held { until: OffsetDateTime },
}

#[async_trait]
pub trait DeadLetterNotices: Send + Sync {
    /// Claims the notice `notice` of `tenant` for `holder` until `lease_until`: ours when none
    /// is recorded, or when the recorded one is unsent and its lease ended before `now`. One
    /// conditional write; of concurrent claims exactly one is `Ours`.
    async fn claim_notice(
        &self,
        tenant: &TenantId,
        notice: &str,
        holder: &str,
        lease_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<NoticeClaim, StoreError>;
    /// Records that `holder`'s notice went out; kept until `keep_until` (a TTL: past the DLQ's
    /// retention, after which no record of the event can arrive). `false` when `holder` no
    /// longer holds it (its lease lapsed and another delivery claimed it).
    async fn mark_sent(
        &self,
        tenant: &TenantId,
        notice: &str,
        holder: &str,
        keep_until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Gives an unsent claim back (the publish failed): the next delivery claims it at once.
    async fn release_notice(&self, tenant: &TenantId, notice: &str, holder: &str) -> Result<(), StoreError>;
}
