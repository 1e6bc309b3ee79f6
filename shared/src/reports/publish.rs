//! One publication: report → Confluence page (found or created under its parent) + PDF
//! attachment, recorded step by step so that any number of deliveries of the same idempotency
//! key — in a row, concurrently, or after a crash at any step — end with one page and one
//! attachment.
//!
//! Why no duplicate can appear:
//! - deliveries of one idempotency key take turns through a lease on the publication record;
//! - the page is found before it is created: first through the report → page record, then by
//!   title, accepted only if its body carries this report's marker (an invisible anchor macro),
//!   so a page created just before a crash is found and updated, not created again;
//! - a title Confluence refuses as taken — possibly by a page we cannot see — moves on to the
//!   next candidate title, and the candidates are the same on every delivery;
//! - page ids are numbered per site, so the records remember the site they were written to and
//!   are not followed onto another one (the tenant may connect Confluence elsewhere);
//! - the PDF goes up with `PUT .../child/attachment` under a fixed file name, which adds a
//!   version to the existing attachment instead of a second one.
//!
//! Every write of a report's page — a publication's, or [`PublishJob::relink`]'s when the
//! report's issues change — holds the report's links lease, renders the action items' issues
//! from the ledger, and records the digest of those links with the page (see `links.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{IssueLink, Rendering, Report, links, pdf, storage};
use crate::atlassian::confluence::{Page as PageInfo, Space as SpaceRef, attachments, is_title_taken, pages, spaces};
use crate::atlassian::{AtlassianError, Class, FileUpload, Flavour, Session};
use crate::domain::{Connection, TenantId};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{PageId, ReportId, SiteId, SpaceKey};
use crate::jobs::JobOutcome;
use crate::jobs::lease::Lease;
use crate::markers::Markers;
use crate::settings::ConfluenceSettings;
use crate::store::{Claim, IssueLedger, PublicationStore, ReportPage, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PublicationState {
    Accepted,
    PageWritten,
    AttachmentUploaded,
    Published,
    /// Failed for good; a redelivery answers with this record and does not try again.
    Failed,
}

impl PublicationState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Published | Self::Failed)
    }
}

/// `GET /v1/tenants/{tenant}/publications/{id}`, the HTTP answer, and `Page Published`'s core.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Publication {
    /// Derived from tenant and idempotency key.
    pub id: String,
    pub idempotency_key: String,
    pub report_id: String,
    pub state: PublicationState,
    pub title: Option<String>,
    pub page_id: Option<String>,
    pub page_url: Option<String>,
    /// The page version this publication wrote.
    pub version: Option<u64>,
    pub attachment_id: Option<String>,
    pub last_error: Option<String>,
    /// The error code that goes with `last_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<ErrorCode>,
    /// Which marker its page carries; records from before keyed markers lack it (`legacy`).
    #[serde(default)]
    #[schema(ignore)]
    pub marker_form: MarkerForm,
    /// The site the page is on: a Cloud cloudId, or the base URL (Cloud API-token connections,
    /// Server/DC). Absent on records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

pub fn publication_id(tenant: &TenantId, idempotency_key: &str) -> String {
    hex(&Sha256::digest(format!("{tenant}\0{idempotency_key}").as_bytes()), 12)
}

fn hex(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

/// The marker a publication's page carries: keyed (unforgeable), or the guessable form written
/// before, which only a publication begun before may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerForm {
    Keyed,
    #[default]
    Legacy,
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Upstream(#[from] AtlassianError),
    #[error("{0}")]
    Permanent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another delivery holds the report's page (its links lease) past the wait.
    #[error("another delivery is still writing this report's page")]
    Busy,
}

pub struct PublishJob<'a> {
    pub session: &'a Session,
    pub store: &'a dyn PublicationStore,
    pub tenant: &'a TenantId,
    pub settings: &'a ConfluenceSettings,
    pub lease: Duration,
    pub markers: &'a Markers,
    /// The instance's fonts for the PDF.
    pub fonts: &'a super::FontBook,
    /// The issue ledger: which of the report's action items have issues, for the page's links.
    pub ledger: &'a dyn IssueLedger,
    /// The tenant's Jira connection, if any: where its issues are opened (`links::browse_root`).
    pub jira: Option<&'a Connection>,
}

/// What [`PublishJob::relink`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relinked {
    /// The page was written again with a new set of links (its new version).
    Updated { page_id: String, page_url: Option<String>, version: u64, issues: usize },
    /// The page already links exactly these issues.
    Unchanged { page_id: String, page_url: Option<String>, issues: usize },
    /// Nothing to write: no page yet (its first publication links the issues), the page is gone
    /// or on another site, or its report was not kept (too large; its next publication links
    /// them).
    Skipped(&'static str),
}

impl PublishJob<'_> {
    /// How the publication ended: `Done` published, `Failed` recorded as failed for good
    /// (`last_error_code` says why; redeliveries answer the same), or `Stopped` for the same
    /// idempotency key to be sent again — by the trigger when the error's code is retried
    /// (Atlassian busy), or by the caller once an admin fixed what the error names.
    pub async fn run(&self, report: &Report, idempotency_key: &str) -> Result<JobOutcome<Publication>, StoreError> {
        let owner = uuid::Uuid::new_v4().to_string();
        let fresh = Publication {
            id: publication_id(self.tenant, idempotency_key),
            idempotency_key: idempotency_key.to_owned(),
            report_id: report.common().report_id.clone(),
            state: PublicationState::Accepted,
            title: None,
            page_id: None,
            page_url: None,
            version: None,
            attachment_id: None,
            last_error: None,
            last_error_code: None,
            marker_form: MarkerForm::Keyed,
            site: None,
            updated_at: OffsetDateTime::now_utc(),
        };
        let lease = Lease::new(self.lease);
        loop {
            let mut publication = match self.claim(&fresh, &owner, &lease).await? {
                Ok(publication) => publication,
                Err(answer) => return Ok(answer),
            };
            self.start_over_if_moved(&mut publication);
            let outcome = match self.steps(report, &mut publication, &owner).await {
                Ok(()) => Ok(JobOutcome::Done(publication)),
                Err(StepError::Store(e)) => Err(e),
                Err(StepError::Permanent(reason)) => {
                    self.fail(publication, ApiError::new(ErrorCode::PublishFailed, reason), &owner).await
                }
                Err(StepError::Upstream(e)) => self.fail(publication, e.into(), &owner).await,
                Err(StepError::Busy) => self.fail(publication, busy(), &owner).await,
            };
            match outcome {
                // A step outlasted our lease and another delivery took the job over: it finishes
                // from the record, so wait for it like any other holder and answer its outcome.
                Err(StoreError::LeaseLost) => {
                    tracing::warn!("the publication's lease lapsed and another delivery took over; waiting for it");
                }
                other => return other,
            }
        }
    }

    /// Takes the publication, waiting while another delivery holds it; `Err` is the answer when
    /// it is finished, or still held when the wait is over.
    async fn claim(
        &self,
        fresh: &Publication,
        owner: &str,
        lease: &Lease,
    ) -> Result<Result<Publication, JobOutcome<Publication>>, StoreError> {
        let claim = lease.claim(|until| self.store.claim_publication(self.tenant, fresh, owner, until)).await?;
        Ok(match claim {
            Claim::Ours(p) => Ok(p),
            Claim::Done(p) if p.state == PublicationState::Failed => Err(JobOutcome::Failed(p)),
            Claim::Done(p) => Err(JobOutcome::Done(p)),
            Claim::Held { .. } => Err(JobOutcome::Stopped(ApiError::new(
                ErrorCode::JobInProgress,
                "another delivery is still publishing this report",
            ))),
        })
    }

    /// Records a failure: for good when only other content could fix it, else as the last
    /// error of a publication that the same key may finish later.
    async fn fail(
        &self,
        mut publication: Publication,
        error: ApiError,
        owner: &str,
    ) -> Result<JobOutcome<Publication>, StoreError> {
        let final_ = !error.retried() && !fixable_in_atlassian(error.code);
        publication.last_error = Some(error.message.clone());
        publication.last_error_code = Some(error.code);
        publication.updated_at = OffsetDateTime::now_utc();
        if final_ {
            publication.state = PublicationState::Failed;
        }
        self.store.save_publication(self.tenant, &publication, owner, true).await?;
        Ok(if final_ { JobOutcome::Failed(publication) } else { JobOutcome::Stopped(error) })
    }

    /// A publication left halfway on another site (the tenant connected Confluence elsewhere
    /// since) starts over here: its page id names nothing of ours on this site, and uploading
    /// to it could touch someone else's page.
    fn start_over_if_moved(&self, publication: &mut Publication) {
        if publication.state == PublicationState::Accepted || self.on_this_site(publication.site.as_deref()) {
            return;
        }
        tracing::info!(publication = %publication.id, "Confluence moved to another site; publishing there afresh");
        publication.state = PublicationState::Accepted;
        publication.title = None;
        publication.page_id = None;
        publication.page_url = None;
        publication.version = None;
        publication.attachment_id = None;
        publication.site = None;
    }

    /// Whether a record's site is the session's; records without one predate sites being kept
    /// and were written to the only site the tenant had then, the current one.
    fn on_this_site(&self, site: Option<&str>) -> bool {
        site.is_none_or(|s| s == self.session.site_id())
    }

    async fn save(&self, publication: &mut Publication, owner: &str, state: PublicationState) -> Result<(), StepError> {
        publication.state = state;
        publication.last_error = None;
        publication.last_error_code = None;
        publication.updated_at = OffsetDateTime::now_utc();
        self.store.save_publication(self.tenant, publication, owner, false).await?;
        Ok(())
    }

    async fn steps(&self, report: &Report, publication: &mut Publication, owner: &str) -> Result<(), StepError> {
        let c = report.common();
        let space = spaces::by_key(self.session, &SpaceKey::new(&self.settings.space_key)).await?.ok_or_else(|| {
            StepError::Permanent(format!(
                "space {} does not exist or the connection cannot see it",
                self.settings.space_key
            ))
        })?;
        // New pages carry the keyed marker; pages written before carry the old form, still ours.
        let [keyed, legacy] = self.markers.page_forms(self.tenant.as_str(), &c.report_id);
        let filename = pdf_filename(report);
        let issues = self.issues(&c.report_id).await?;
        let rendering = self.rendering(report, &issues, &filename);
        let body = storage::render(report, &keyed, &rendering).map_err(|e| StepError::Permanent(e.to_string()))?;
        let markers = match publication.marker_form {
            MarkerForm::Keyed => vec![keyed],
            MarkerForm::Legacy => vec![keyed, legacy],
        };
        let marker = &markers[..];

        if publication.state == PublicationState::Accepted {
            let parent_title = match report {
                Report::Retrospective(_) => &self.settings.parent_titles.retrospective,
                Report::HealthCheck(_) => &self.settings.parent_titles.health_check,
            };
            let parent = self.parent(&space, &title_candidates(parent_title, &c.date, &c.report_id)).await?;
            // The page is written under the report's links lease, with the links read above.
            let links_owner = self.claim_links(&c.report_id, owner).await?;
            let written = self.write_page(&space, &parent, c, marker, &body).await;
            let (id, version, title) = match written {
                Ok(written) => written,
                Err(e) => {
                    self.store.release_report_links(self.tenant, &c.report_id, &links_owner).await?;
                    return Err(e);
                }
            };
            crate::faults::crash_point("page_created").await;
            let site = self.session.site_id().to_owned();
            let record = ReportPage {
                url: Some(self.page_url(&space, &id)),
                title: Some(title.clone()),
                links: Some(links::digest(&issues)),
                report: links::keep(report),
                ..ReportPage::at(PageId::new(id.clone()), Some(SiteId::new(site.clone())))
            };
            self.store.save_report_links(self.tenant, &c.report_id, &record, &links_owner).await?;
            publication.page_url = Some(self.page_url(&space, &id));
            publication.page_id = Some(id);
            publication.version = Some(version);
            publication.title = Some(title);
            publication.site = Some(site);
            self.save(publication, owner, PublicationState::PageWritten).await?;
        }

        if publication.state == PublicationState::PageWritten {
            let page_id = publication.page_id.clone().unwrap_or_default();
            let file = pdf_file(report, &rendering)?;
            publication.attachment_id =
                Some(attachments::put(self.session, &PageId::new(page_id), &file).await?.into_string());
            crate::faults::crash_point("attachment_uploaded").await;
            self.save(publication, owner, PublicationState::AttachmentUploaded).await?;
        }

        if publication.state == PublicationState::AttachmentUploaded {
            self.save(publication, owner, PublicationState::Published).await?;
            // Counted by the run that made it published (once per publication, kills aside).
            crate::metrics::record(crate::metrics::Sample::count(crate::metrics::Metric::PagesPublished));
            crate::faults::crash_point("record_written").await;
            // Issues created while the page was being written (after it read the ledger, before
            // create-issue could find the page) are linked now: at most one more version.
            self.relink_steps(report, &c.report_id, owner).await?;
        }
        Ok(())
    }

    /// How the page and the PDF render `report` here, linking `issues`.
    fn rendering<'r>(
        &'r self,
        report: &Report,
        issues: &'r BTreeMap<String, IssueLink>,
        filename: &'r str,
    ) -> Rendering<'r> {
        Rendering {
            locale: report.common().locale.or(self.settings.locale).unwrap_or_default(),
            issues,
            pdf_filename: filename,
            flavour: self.session.flavour(),
            jira_link: self.settings.jira_application_link.as_ref(),
            fonts: self.fonts,
        }
    }

    /// The report's action items that have issues, as its page links them.
    async fn issues(&self, report_id: &str) -> Result<BTreeMap<String, IssueLink>, StepError> {
        let Ok(report_id) = ReportId::parse(report_id) else { return Ok(BTreeMap::new()) };
        Ok(links::issues_for_report(self.ledger, self.tenant, &report_id, self.jira).await?)
    }

    /// Takes the report's links lease, waiting while another delivery writes the page; answers
    /// the owner it was taken for.
    async fn claim_links(&self, report_id: &str, owner: &str) -> Result<String, StepError> {
        let links_owner = format!("{owner}#links");
        let lease = Lease::new(self.lease);
        let holder = links_owner.as_str();
        let claim = lease
            .claim(|until| async move {
                Ok::<_, StoreError>(
                    match self.store.claim_report_links(self.tenant, report_id, holder, until).await? {
                        Claim::Ours(_) => Claim::Ours(()),
                        Claim::Done(()) => Claim::Done(()),
                        Claim::Held { until } => Claim::Held { until },
                    },
                )
            })
            .await?;
        match claim {
            Claim::Ours(()) | Claim::Done(()) => Ok(links_owner),
            Claim::Held { .. } => Err(StepError::Busy),
        }
    }

    /// `Report Issues Created`: writes the report's page again when the set of its issues changed
    /// since the page was last written — once per new set, so redeliveries and repeats change
    /// nothing — from the report kept with the page record. The PDF goes up again too (its
    /// action-items table shows the keys).
    pub async fn relink(&self, report_id: &str) -> Result<Relinked, ApiError> {
        let owner = uuid::Uuid::new_v4().to_string();
        let record = self.store.report_page(self.tenant, report_id).await?;
        let Some(report) = record.as_ref().and_then(|r| r.report.as_deref()).and_then(links::kept) else {
            return Ok(Relinked::Skipped(if record.is_some() { "report not kept" } else { "no page yet" }));
        };
        match self.relink_steps(&report, report_id, &owner).await {
            Ok(relinked) => Ok(relinked),
            Err(StepError::Store(e)) => Err(e.into()),
            Err(StepError::Permanent(reason)) => Err(ApiError::new(ErrorCode::PublishFailed, reason)),
            Err(StepError::Upstream(e)) => Err(e.into()),
            Err(StepError::Busy) => Err(busy()),
        }
    }

    async fn relink_steps(&self, report: &Report, report_id: &str, owner: &str) -> Result<Relinked, StepError> {
        let links_owner = self.claim_links(report_id, owner).await?;
        let outcome = self.relink_held(report, report_id, &links_owner).await;
        if !matches!(outcome, Ok(Relinked::Updated { .. })) {
            self.store.release_report_links(self.tenant, report_id, &links_owner).await?;
        }
        outcome
    }

    /// [`relink`](Self::relink)'s work under the links lease; an `Updated` answer has saved the
    /// record and given the lease back.
    async fn relink_held(&self, report: &Report, report_id: &str, links_owner: &str) -> Result<Relinked, StepError> {
        let Some(record) = self.store.report_page(self.tenant, report_id).await? else {
            return Ok(Relinked::Skipped("no page yet"));
        };
        if !self.on_this_site(record.site.as_ref().map(SiteId::as_str)) {
            return Ok(Relinked::Skipped("the page is on another site"));
        }
        let issues = self.issues(report_id).await?;
        let digest = links::digest(&issues);
        let page_id = record.page_id.to_string();
        if record.links.as_deref() == Some(digest.as_str()) {
            return Ok(Relinked::Unchanged { page_id, page_url: record.url.clone(), issues: issues.len() });
        }
        let Some(page) = pages::get(self.session, &record.page_id).await? else {
            return Ok(Relinked::Skipped("the page is gone"));
        };
        let c = report.common();
        let [keyed, _] = self.markers.page_forms(self.tenant.as_str(), &c.report_id);
        let filename = pdf_filename(report);
        let rendering = self.rendering(report, &issues, &filename);
        let body = storage::render(report, &keyed, &rendering).map_err(|e| StepError::Permanent(e.to_string()))?;
        let version = self.update(&page, &page.title, &body).await?;
        attachments::put(self.session, &record.page_id, &pdf_file(report, &rendering)?).await?;
        let saved = ReportPage { links: Some(digest), title: Some(page.title.clone()), ..record };
        self.store.save_report_links(self.tenant, report_id, &saved, links_owner).await?;
        tracing::info!(page = %page_id, version, issues = issues.len(), "report page linked to its issues");
        Ok(Relinked::Updated { page_id, page_url: saved.url, version, issues: issues.len() })
    }

    /// The parent page: the first candidate title under which a current page exists or can be
    /// created under the space's home page. An archived page is never a parent (Cloud title
    /// lookups list archived pages), and a title held by a page we cannot see moves on too.
    async fn parent(&self, space: &SpaceRef, candidates: &[String]) -> Result<String, StepError> {
        for title in candidates {
            if let Some(id) = self.parent_under(space, title).await? {
                return Ok(id);
            }
        }
        Err(StepError::Permanent(format!(
            "the parent page titles {candidates:?} are all held by pages that cannot take reports (archived, drafts, or pages the connection cannot see); choose another parent title in the Confluence settings"
        )))
    }

    /// The current page titled `title`, created when the title is free; `None` when another
    /// page holds it.
    async fn parent_under(&self, space: &SpaceRef, title: &str) -> Result<Option<String>, StepError> {
        if let Some(page) = pages::find(self.session, space, title).await? {
            return Ok(page.is_current().then_some(page.id.into_string()));
        }
        let body = "<p>Reports published by Atlassian Bridge.</p>";
        match pages::create(self.session, space, space.homepage_id.as_ref(), title, body).await {
            Ok(page) => Ok(Some(page.id.into_string())),
            // Created meanwhile by a concurrent publication (then found now), or held by a page
            // we cannot see: restricted, a draft, archived on DC.
            Err(e) if is_title_taken(&e) => Ok(pages::find(self.session, space, title)
                .await?
                .filter(PageInfo::is_current)
                .map(|p| p.id.into_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the report's page: its recorded page on this site, else the page under the first
    /// candidate title that is ours or free. Returns the page id, the version written and the title.
    async fn write_page(
        &self,
        space: &SpaceRef,
        parent: &str,
        c: &super::Common,
        markers: &[String],
        body: &str,
    ) -> Result<(String, u64, String), StepError> {
        if let Some(page) = self.recorded_page(&c.report_id).await? {
            let title = page.title.clone();
            let version = self.update(&page, &title, body).await?;
            return Ok((page.id.into_string(), version, title));
        }
        let candidates = title_candidates(&c.title, &c.date, &c.report_id);
        for title in &candidates {
            match self.place(space, parent, title, markers, body).await? {
                Placed::Ours(page) => {
                    let version = self.update(&page, title, body).await?;
                    return Ok((page.id.into_string(), version, title.clone()));
                }
                Placed::Created(page) => return Ok((page.id.into_string(), page.version, title.clone())),
                Placed::Held => continue,
            }
        }
        Err(StepError::Permanent(format!("the titles {candidates:?} are all taken by other pages in the space")))
    }

    /// The page this report was published to, when its record is of this site and the page
    /// still exists. A record of another site is not followed: the same id may name someone
    /// else's page here.
    async fn recorded_page(&self, report_id: &str) -> Result<Option<PageInfo>, StepError> {
        let Some(record) = self.store.report_page(self.tenant, report_id).await? else {
            return Ok(None);
        };
        if !self.on_this_site(record.site.as_ref().map(SiteId::as_str)) {
            return Ok(None);
        }
        Ok(pages::get(self.session, &record.page_id).await?)
    }

    /// One candidate title: our page is under it (a crash after creating, or another delivery
    /// of this report), or it is free and the page is created now, or another page holds it —
    /// one we see without our marker, or one Confluence names only by refusing the title.
    async fn place(
        &self,
        space: &SpaceRef,
        parent: &str,
        title: &str,
        markers: &[String],
        body: &str,
    ) -> Result<Placed, StepError> {
        match pages::find(self.session, space, title).await? {
            Some(page) if carries(&page, markers) => return Ok(Placed::Ours(page)),
            Some(_) => return Ok(Placed::Held),
            None => {}
        }
        match pages::create(self.session, space, Some(&PageId::new(parent)), title, body).await {
            Ok(page) => Ok(Placed::Created(page)),
            Err(e) if is_title_taken(&e) => match pages::find(self.session, space, title).await? {
                // Another delivery of this report (another idempotency key) created it just now.
                Some(page) if carries(&page, markers) => Ok(Placed::Ours(page)),
                _ => Ok(Placed::Held),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the page as the next version, re-reading once per conflict (someone edited it).
    async fn update(&self, page: &PageInfo, title: &str, body: &str) -> Result<u64, StepError> {
        let mut current = page.clone();
        for _ in 0..3 {
            match pages::update(self.session, &current.id, title, body, current.version + 1).await {
                Ok(()) => return Ok(current.version + 1),
                Err(e) if e.is(Class::Conflict) => {
                    current = pages::get(self.session, &current.id).await?.ok_or_else(|| {
                        StepError::Permanent("the page was deleted while it was being updated".into())
                    })?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StepError::Upstream(AtlassianError::api(
            409,
            crate::atlassian::ErrorPayload::Text("the page kept changing; try again".into()),
        )))
    }

    fn page_url(&self, space: &SpaceRef, id: &str) -> String {
        let root = self.session.web_root().trim_end_matches('/').to_owned();
        match self.session.flavour() {
            Flavour::Cloud => format!("{root}/wiki/spaces/{}/pages/{id}", space.key),
            Flavour::DataCenter => format!("{root}/pages/viewpage.action?pageId={id}"),
        }
    }
}

/// What one candidate title gave.
enum Placed {
    Ours(PageInfo),
    Created(PageInfo),
    Held,
}

/// Confluence refuses longer titles ("Title cannot be longer than 255 characters").
const MAX_TITLE_CHARS: usize = 255;

/// The titles a page may take, in order: the title, then with the date, then with the report id
/// — the same on every delivery. A suffix never pushes a title past Confluence's limit: the
/// title is shortened (by whole characters) to make room.
fn title_candidates(title: &str, date: &str, report_id: &str) -> Vec<String> {
    vec![fit(title, ""), fit(title, &format!(" ({date})")), fit(title, &format!(" ({report_id})"))]
}

fn fit(title: &str, suffix: &str) -> String {
    let room = MAX_TITLE_CHARS.saturating_sub(suffix.chars().count());
    title.chars().take(room).chain(suffix.chars()).collect()
}

/// The PDF summary as the page's attachment (a new version of the one file name).
fn pdf_file(report: &Report, rendering: &Rendering<'_>) -> Result<FileUpload, StepError> {
    Ok(FileUpload {
        filename: rendering.pdf_filename.to_owned(),
        content_type: "application/pdf".into(),
        bytes: pdf::render(report, rendering).map_err(|e| StepError::Permanent(e.to_string()))?,
        fields: vec![("minorEdit".into(), "true".into()), ("comment".into(), "PDF summary".into())],
    })
}

fn pdf_filename(report: &Report) -> String {
    format!("{}-{}.pdf", slug(report.kind_label()), slug(&report.common().report_id))
}

fn busy() -> ApiError {
    ApiError::new(ErrorCode::JobInProgress, "another delivery is still writing this report's page")
}

fn slug(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// Whether a page carries one of our markers for the report.
fn carries(page: &PageInfo, markers: &[String]) -> bool {
    markers.iter().any(|m| page.body.contains(m.as_str()))
}

/// Failures an admin fixes in Atlassian or in the connection, after which the same key should
/// publish: a missing permission, refused credentials.
fn fixable_in_atlassian(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::AtlassianPermissionDenied
            | ErrorCode::ReconnectRequired
            | ErrorCode::InvalidCredentials
            | ErrorCode::UpstreamUnauthorized
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_keep_their_suffix_within_the_title_limit() {
        let long = "Ä".repeat(200) + &"🎉".repeat(55);
        let [plain, dated, with_id] = title_candidates(&long, "2026-11-20", "r-1").try_into().unwrap();
        assert_eq!(plain, long);
        assert_eq!(dated, format!("{}{}", long.chars().take(242).collect::<String>(), " (2026-11-20)"));
        assert!(with_id.ends_with(" (r-1)") && with_id.chars().count() == MAX_TITLE_CHARS);
        assert_eq!(title_candidates("Retro", "2026-11-20", "r-1"), ["Retro", "Retro (2026-11-20)", "Retro (r-1)"]);
    }
}
