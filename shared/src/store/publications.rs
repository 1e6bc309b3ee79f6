//! Publication records (one per idempotency key, leased) and the page each report went to.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Claim, StoreError};
use crate::domain::TenantId;
use crate::ids::{PageId, SiteId};

/// Publication records, one per (tenant, idempotency key), with a lease so one delivery at a
/// time works on it; and the page each report was published to.
#[async_trait]
pub trait PublicationStore: Send + Sync {
    /// `Ours`: new, or unfinished by an earlier attempt (continue from the record); `Done`:
    /// published, or failed for good (answer with the record).
    async fn claim_publication(
        &self,
        tenant: &TenantId,
        fresh: &crate::reports::Publication,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim<crate::reports::Publication>, StoreError>;
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
    pub page_id: PageId,
    /// A Cloud cloudId or a base URL ([`crate::atlassian::Session::site`]); `None` for records
    /// written before sites were stored, which belong to the current site.
    pub site: Option<SiteId>,
}
