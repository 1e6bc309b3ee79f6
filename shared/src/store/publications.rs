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
    /// Writes the record's page fields, leaving its links lease as it is.
    async fn set_report_page(&self, tenant: &TenantId, report_id: &str, page: &ReportPage) -> Result<(), StoreError>;
    /// Takes the report's links lease for `owner` until `until`: every write of the report's
    /// page (a publication's, or a links update's) holds it, so two never interleave and a
    /// redelivery finds the link digest its twin recorded. `Ours` with the record as it is
    /// (`None` before the report's page was first written), or `Held` by another delivery.
    async fn claim_report_links(
        &self,
        tenant: &TenantId,
        report_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim<Option<ReportPage>, ()>, StoreError>;
    /// Writes the record (page, links digest, kept report) and gives the lease back, only while
    /// `owner` holds it ([`StoreError::LeaseLost`] otherwise, and nothing is written).
    async fn save_report_links(
        &self,
        tenant: &TenantId,
        report_id: &str,
        page: &ReportPage,
        owner: &str,
    ) -> Result<(), StoreError>;
    /// Gives the lease back unchanged when `owner` holds it (after a failure: the next delivery
    /// need not wait for it to lapse).
    async fn release_report_links(&self, tenant: &TenantId, report_id: &str, owner: &str) -> Result<(), StoreError>;
}

/// The page a report was published to, and where: page ids are numbered per site, so an id is
/// only meaningful on the site that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPage {
    pub page_id: PageId,
    /// A Cloud cloudId or a base URL ([`crate::atlassian::Session::site`]); `None` for records
    /// written before sites were stored, which belong to the current site.
    pub site: Option<SiteId>,
    /// The page's web address and title: what the remote links on the report's issues show.
    /// `None` on records written before they were kept.
    pub url: Option<String>,
    pub title: Option<String>,
    /// The digest of the issue links the page was last written with
    /// ([`crate::reports::links::digest`]); `None` before links were rendered.
    pub links: Option<String>,
    /// The report as last published, gzip-compressed JSON, so that the page can be written again
    /// when the report's issues change without the SaaS sending the report again; `None` when it
    /// did not fit ([`crate::reports::links::MAX_KEPT_REPORT`]) or before reports were kept.
    pub report: Option<Vec<u8>>,
}

impl ReportPage {
    /// A record of a page and its site alone.
    pub fn at(page_id: impl Into<PageId>, site: Option<SiteId>) -> Self {
        Self { page_id: page_id.into(), site, url: None, title: None, links: None, report: None }
    }
}
