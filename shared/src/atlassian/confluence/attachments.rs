//! Attachments: upload to a page (REST v1 on both: Cloud v2 has no upload).

use reqwest::Method;
use serde::Deserialize;

use super::super::{AtlassianError, FileUpload, Flavour, Payload, Session, answer, encode, loose};
use crate::ids::{AttachmentId, PageId};

/// An upload's answer: a list of attachments (`results`), or one attachment.
#[derive(Debug, Deserialize)]
struct Uploaded {
    #[serde(default, deserialize_with = "loose::list")]
    results: Option<Vec<Attachment>>,
    #[serde(default, deserialize_with = "loose::id")]
    id: Option<AttachmentId>,
}

#[derive(Debug, Default, Deserialize)]
struct Attachment {
    #[serde(default, deserialize_with = "loose::id")]
    id: Option<AttachmentId>,
}

/// Uploads a file to a page, or adds a new version when the page already has a file of that name,
/// so one attachment never becomes two. Cloud: `PUT .../child/attachment` (REST v1: v2 has no
/// upload). Data Center has no PUT there: `POST ...?allowDuplicated=true` does the same.
/// Returns the attachment id.
pub async fn put(session: &Session, page: &PageId, file: &FileUpload) -> Result<AttachmentId, AtlassianError> {
    let path = session.confluence_v1_path(&format!("content/{}/child/attachment", encode(page.as_str())));
    let response = match session.flavour() {
        Flavour::Cloud => session.send(Method::PUT, &path, Payload::File(file)).await?,
        Flavour::DataCenter => {
            session.send(Method::POST, &format!("{path}?allowDuplicated=true"), Payload::File(file)).await?
        }
    };
    let uploaded: Uploaded = answer(response, "").await?;
    let id = match uploaded.results.and_then(|r| r.into_iter().next()) {
        Some(first) => first.id,
        None => uploaded.id,
    };
    id.ok_or_else(|| AtlassianError::Decode("attachment answer without id".into()))
}
