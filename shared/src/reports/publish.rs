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
//! - the PDF goes up with `PUT .../child/attachment` under a fixed file name, which adds a
//!   version to the existing attachment instead of a second one.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Report, pdf, storage};
use crate::atlassian::confluence::{self, PageInfo, SpaceRef};
use crate::atlassian::{AtlassianError, Class, FileUpload, Flavour, Session};
use crate::domain::TenantId;
use crate::error::{ApiError, ErrorCode};
use crate::markers::Markers;
use crate::settings::ConfluenceSettings;
use crate::store::{PublicationClaim, PublicationStore, StoreError};

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

/// How a publication ended, for the trigger.
pub enum Outcome {
    Published(Publication),
    /// Recorded as failed for good (`last_error_code` says why); redeliveries answer the same.
    Failed(Publication),
    /// Not finished, and not failed for good: the same idempotency key may be sent again —
    /// by the trigger when the error's code is retried (Atlassian busy), or by the caller once
    /// an admin fixed what the error names (a permission, the credentials).
    Stopped {
        publication: Option<Publication>,
        error: ApiError,
    },
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Upstream(#[from] AtlassianError),
    #[error("{0}")]
    Permanent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct PublishJob<'a> {
    pub session: &'a Session,
    pub store: &'a dyn PublicationStore,
    pub tenant: &'a TenantId,
    pub settings: &'a ConfluenceSettings,
    pub lease: Duration,
    pub markers: &'a Markers,
}

/// How long a delivery waits for another one that holds the same publication.
const MAX_WAIT: Duration = Duration::from_secs(30);

impl PublishJob<'_> {
    pub async fn run(&self, report: &Report, idempotency_key: &str) -> Result<Outcome, StoreError> {
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
            updated_at: OffsetDateTime::now_utc(),
        };
        let give_up = OffsetDateTime::now_utc() + MAX_WAIT;
        let mut publication = loop {
            match self
                .store
                .claim_publication(self.tenant, &fresh, &owner, OffsetDateTime::now_utc() + self.lease)
                .await?
            {
                PublicationClaim::Go(p) => break p,
                PublicationClaim::Done(p) if p.state == PublicationState::Failed => return Ok(Outcome::Failed(p)),
                PublicationClaim::Done(p) => return Ok(Outcome::Published(p)),
                PublicationClaim::Busy { until } => {
                    if OffsetDateTime::now_utc() >= give_up {
                        return Ok(Outcome::Stopped {
                            publication: None,
                            error: ApiError::new(
                                ErrorCode::JobInProgress,
                                "another delivery is still publishing this report",
                            ),
                        });
                    }
                    let wait = (until - OffsetDateTime::now_utc())
                        .clamp(time::Duration::milliseconds(100), time::Duration::seconds(1));
                    tokio::time::sleep(wait.unsigned_abs()).await;
                }
            }
        };
        match self.steps(report, &mut publication, &owner).await {
            Ok(()) => Ok(Outcome::Published(publication)),
            Err(StepError::Store(e)) => Err(e),
            Err(StepError::Permanent(reason)) => {
                self.fail(publication, ApiError::new(ErrorCode::PublishFailed, reason), &owner).await
            }
            Err(StepError::Upstream(e)) => self.fail(publication, e.into(), &owner).await,
        }
    }

    /// Records a failure: for good when only other content could fix it, else as the last
    /// error of a publication that the same key may finish later.
    async fn fail(&self, mut publication: Publication, error: ApiError, owner: &str) -> Result<Outcome, StoreError> {
        let final_ = !error.retried() && !fixable_in_atlassian(error.code);
        publication.last_error = Some(error.message.clone());
        publication.last_error_code = Some(error.code);
        publication.updated_at = OffsetDateTime::now_utc();
        if final_ {
            publication.state = PublicationState::Failed;
        }
        self.store.save_publication(self.tenant, &publication, owner, true).await?;
        Ok(if final_ {
            Outcome::Failed(publication)
        } else {
            Outcome::Stopped { publication: Some(publication), error }
        })
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
        let space = confluence::space(self.session, &self.settings.space_key).await?.ok_or_else(|| {
            StepError::Permanent(format!(
                "space {} does not exist or the connection cannot see it",
                self.settings.space_key
            ))
        })?;
        // New pages carry the keyed marker; pages written before carry the old form, still ours.
        let [keyed, legacy] = self.markers.page_forms(self.tenant.as_str(), &c.report_id);
        let body = storage::render(report, &keyed).map_err(|e| StepError::Permanent(e.to_string()))?;
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
            let parent = self.parent(&space, parent_title).await?;
            let (page, title) = self.our_page(&space, &c.report_id, &c.title, &c.date, marker).await?;
            let (id, version) = match page {
                Some(page) => (page.id.clone(), self.update(&page, &title, &body).await?),
                None => match confluence::create_page(self.session, &space, Some(&parent), &title, &body).await {
                    Ok(created) => (created.id, created.version),
                    // Another delivery (another idempotency key for the same report) created it
                    // first: find it by its marker and update it instead.
                    Err(e) if e.is(Class::BadRequest) || e.is(Class::Conflict) => {
                        let (page, title) = self.our_page(&space, &c.report_id, &c.title, &c.date, marker).await?;
                        let page = page.ok_or_else(|| {
                            StepError::Permanent(format!("Confluence refused the page title {title:?}"))
                        })?;
                        (page.id.clone(), self.update(&page, &title, &body).await?)
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            crate::faults::crash_point("page_created");
            self.store.set_report_page(self.tenant, &c.report_id, &id).await?;
            publication.page_url = Some(self.page_url(&space, &id));
            publication.page_id = Some(id);
            publication.version = Some(version);
            publication.title = Some(title);
            self.save(publication, owner, PublicationState::PageWritten).await?;
        }

        if publication.state == PublicationState::PageWritten {
            let page_id = publication.page_id.clone().unwrap_or_default();
            let file = FileUpload {
                filename: format!("{}-{}.pdf", slug(report.kind_label()), slug(&c.report_id)),
                content_type: "application/pdf".into(),
                bytes: pdf::render(report).map_err(|e| StepError::Permanent(e.to_string()))?,
                fields: vec![("minorEdit".into(), "true".into()), ("comment".into(), "PDF summary".into())],
            };
            publication.attachment_id = Some(confluence::put_attachment(self.session, &page_id, &file).await?);
            crate::faults::crash_point("attachment_uploaded");
            self.save(publication, owner, PublicationState::AttachmentUploaded).await?;
        }

        if publication.state == PublicationState::AttachmentUploaded {
            self.save(publication, owner, PublicationState::Published).await?;
            crate::faults::crash_point("record_written");
        }
        Ok(())
    }

    /// The parent page by title, created under the space's home page when it is missing.
    async fn parent(&self, space: &SpaceRef, title: &str) -> Result<String, StepError> {
        if let Some(page) = confluence::find_page(self.session, space, title).await? {
            return Ok(page.id);
        }
        let body = "<p>Reports published by Atlassian Bridge.</p>";
        match confluence::create_page(self.session, space, space.homepage_id.as_deref(), title, body).await {
            Ok(page) => Ok(page.id),
            // Created meanwhile by a concurrent publication: use that one.
            Err(e) if e.is(Class::BadRequest) || e.is(Class::Conflict) => {
                confluence::find_page(self.session, space, title).await?.map(|p| p.id).ok_or_else(|| {
                    StepError::Permanent(format!("Confluence refused to create the parent page {title:?}"))
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// This report's page and the title it goes under. Titles are unique per space: when another
    /// page holds the report's title, the title gains the date, then the report id — choices
    /// that are the same on every retry.
    async fn our_page(
        &self,
        space: &SpaceRef,
        report_id: &str,
        title: &str,
        date: &str,
        markers: &[String],
    ) -> Result<(Option<PageInfo>, String), StepError> {
        if let Some(id) = self.store.report_page(self.tenant, report_id).await? {
            if let Some(page) = confluence::get_page(self.session, &id).await? {
                let title = page.title.clone();
                return Ok((Some(page), title));
            }
        }
        let candidates = [title.to_owned(), format!("{title} ({date})"), format!("{title} ({report_id})")];
        for candidate in candidates.iter() {
            match confluence::find_page(self.session, space, candidate).await? {
                Some(page) if markers.iter().any(|m| page.body.contains(m.as_str())) => {
                    return Ok((Some(page), candidate.clone()));
                }
                Some(_) => continue,
                None => return Ok((None, candidate.clone())),
            }
        }
        Err(StepError::Permanent(format!("the titles {candidates:?} are all taken by other pages in the space")))
    }

    /// Writes the page as the next version, re-reading once per conflict (someone edited it).
    async fn update(&self, page: &PageInfo, title: &str, body: &str) -> Result<u64, StepError> {
        let mut current = page.clone();
        for _ in 0..3 {
            match confluence::update_page(self.session, &current.id, title, body, current.version + 1).await {
                Ok(()) => return Ok(current.version + 1),
                Err(e) if e.is(Class::Conflict) => {
                    current = confluence::get_page(self.session, &current.id).await?.ok_or_else(|| {
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

fn slug(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
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
