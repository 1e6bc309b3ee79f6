//! Pages: title lookups in a space, one page by id, create and update. Cloud v2 `pages`
//! (`spaceId`, `parentId`), Server/DC `content` (`spaceKey`, `ancestors`).

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::super::{AtlassianError, Class, Flavour, Payload, Session, answer, encode, loose};
use super::{Links, Space};
use crate::ids::PageId;

/// A page as we need it: id, title, status, current version and storage body.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub id: PageId,
    pub title: String,
    /// `current`, `archived`, `draft`, ... (Cloud v2 `status`, DC `status`).
    pub status: String,
    pub version: u64,
    /// Empty unless asked for.
    pub body: String,
    /// The web UI path (relative; see [`Links`]).
    pub webui: Option<String>,
}

impl Page {
    /// Archived, draft or trashed pages are no place for new children (Cloud v2 title lookups
    /// list archived pages by default). A page without a status is taken as current.
    pub fn is_current(&self) -> bool {
        self.status.is_empty() || self.status == "current"
    }
}

/// Confluence's answer when the title is held by another page of the space — including pages the
/// connected user cannot find: restricted ones, drafts, archived ones. Cloud: 400 `{"errors":[{"title":
/// "A page with this title already exists: ..."}]}` (hunyadi/md2conf#149); Server/DC: 400
/// `RestError` "A page with this title already exists: A page already exists with the title ..."
/// (docToolchain/docToolchain#435). The status alone cannot tell it from other refusals.
pub fn is_title_taken(error: &AtlassianError) -> bool {
    (error.is(Class::BadRequest) || error.is(Class::Conflict))
        && error
            .atlassian_message()
            .is_some_and(|m| m.to_ascii_lowercase().contains("a page with this title already exists"))
}

/// A page in either API's shape: `version.number` and `body.storage.value` are at the same
/// place in Cloud v2 and in Server/DC content.
#[derive(Debug, Default, Deserialize)]
struct PageJson {
    #[serde(default, deserialize_with = "loose::id")]
    id: Option<PageId>,
    #[serde(default, deserialize_with = "loose::text")]
    title: Option<String>,
    #[serde(default, deserialize_with = "loose::text")]
    status: Option<String>,
    #[serde(default)]
    version: Option<Version>,
    #[serde(default)]
    body: Option<Body>,
    #[serde(rename = "_links", default)]
    links: Option<Links>,
}

#[derive(Debug, Default, Deserialize)]
struct Version {
    #[serde(default, deserialize_with = "loose::count")]
    number: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default)]
    storage: Option<Storage>,
}

#[derive(Debug, Default, Deserialize)]
struct Storage {
    #[serde(default, deserialize_with = "loose::text")]
    value: Option<String>,
}

impl PageJson {
    /// `None` for an entry without id.
    fn into_page(self) -> Option<Page> {
        Some(Page {
            id: self.id?,
            title: self.title.unwrap_or_default(),
            status: self.status.unwrap_or_default(),
            version: self.version.and_then(|v| v.number).unwrap_or(1),
            body: self.body.and_then(|b| b.storage).and_then(|s| s.value).unwrap_or_default(),
            webui: self.links.and_then(|l| l.webui),
        })
    }
}

#[derive(Deserialize)]
struct Results {
    #[serde(default, deserialize_with = "loose::list")]
    results: Option<Vec<PageJson>>,
}

/// What a title lookup reads of each page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Id, title and link.
    Summary,
    /// With the current version and the storage body, for writing.
    Body,
}

/// Pages titled `title` in the space, as Confluence answers the lookup (at most `limit`; Cloud v2
/// may list archived ones; callers compare titles exactly, as Confluence's match need not).
pub async fn by_title(
    session: &Session,
    space: &Space,
    title: &str,
    read: Read,
    limit: usize,
) -> Result<Vec<Page>, AtlassianError> {
    let path = match (session.flavour(), read) {
        (Flavour::Cloud, Read::Body) => session.confluence_v2_path(&format!(
            "pages?space-id={}&title={}&body-format=storage&limit={limit}",
            encode(space.id.as_ref().map(|id| id.as_str()).unwrap_or_default()),
            encode(title)
        )),
        (Flavour::Cloud, Read::Summary) => session.confluence_v2_path(&format!(
            "pages?space-id={}&title={}&limit={limit}",
            encode(space.id.as_ref().map(|id| id.as_str()).unwrap_or_default()),
            encode(title)
        )),
        (Flavour::DataCenter, Read::Body) => session.confluence_v1_path(&format!(
            "content?spaceKey={}&title={}&type=page&expand=version,body.storage&limit={limit}",
            encode(space.key.as_str()),
            encode(title)
        )),
        (Flavour::DataCenter, Read::Summary) => session.confluence_v1_path(&format!(
            "content?spaceKey={}&title={}&type=page&limit={limit}",
            encode(space.key.as_str()),
            encode(title)
        )),
    };
    let page: Results = session.get_json(&path).await?;
    Ok(page.results.unwrap_or_default().into_iter().filter_map(PageJson::into_page).collect())
}

/// The page with exactly this title in the space (titles are unique per space), with its body.
pub async fn find(session: &Session, space: &Space, title: &str) -> Result<Option<Page>, AtlassianError> {
    Ok(by_title(session, space, title, Read::Body, 5).await?.into_iter().find(|p| p.title == title))
}

/// A page by id, with its body; `None` when it was deleted.
pub async fn get(session: &Session, id: &PageId) -> Result<Option<Page>, AtlassianError> {
    let path = match session.flavour() {
        Flavour::Cloud => session.confluence_v2_path(&format!("pages/{}?body-format=storage", encode(id.as_str()))),
        Flavour::DataCenter => {
            session.confluence_v1_path(&format!("content/{}?expand=version,body.storage", encode(id.as_str())))
        }
    };
    match session.get_json::<PageJson>(&path).await {
        Ok(v) => Ok(v.into_page()),
        Err(e) if e.is(Class::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a page under `parent`. Cloud v2 answers 200, DC 200 as well.
pub async fn create(
    session: &Session,
    space: &Space,
    parent: Option<&PageId>,
    title: &str,
    body: &str,
) -> Result<Page, AtlassianError> {
    let (path, request) = match session.flavour() {
        Flavour::Cloud => {
            let mut request = json!({
                "spaceId": space.id, "status": "current", "title": title,
                "body": {"representation": "storage", "value": body}
            });
            if let Some(parent) = parent {
                request["parentId"] = json!(parent);
            }
            (session.confluence_v2_path("pages"), request)
        }
        Flavour::DataCenter => {
            let mut request = json!({
                "type": "page", "title": title, "space": {"key": space.key},
                "body": {"storage": {"value": body, "representation": "storage"}}
            });
            if let Some(parent) = parent {
                request["ancestors"] = json!([{"id": parent}]);
            }
            (session.confluence_v1_path("content"), request)
        }
    };
    let response = session.send(Method::POST, &path, Payload::Json(&request)).await?;
    let created: PageJson = answer(response, "").await?;
    let mut page = created.into_page().ok_or_else(|| AtlassianError::Decode("created page without id".into()))?;
    page.body = body.to_owned();
    Ok(page)
}

/// Replaces a page's title and body as version `version` (the current version + 1). Confluence
/// answers 409 when someone else wrote that version first.
pub async fn update(
    session: &Session,
    id: &PageId,
    title: &str,
    body: &str,
    version: u64,
) -> Result<(), AtlassianError> {
    let (path, request) = match session.flavour() {
        Flavour::Cloud => (
            session.confluence_v2_path(&format!("pages/{}", encode(id.as_str()))),
            json!({"id": id, "status": "current", "title": title,
                   "body": {"representation": "storage", "value": body}, "version": {"number": version}}),
        ),
        Flavour::DataCenter => (
            session.confluence_v1_path(&format!("content/{}", encode(id.as_str()))),
            json!({"id": id, "type": "page", "title": title,
                   "body": {"storage": {"value": body, "representation": "storage"}}, "version": {"number": version}}),
        ),
    };
    session.send(Method::PUT, &path, Payload::Json(&request)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atlassian::ErrorPayload;

    #[test]
    fn a_held_title_is_told_apart_from_other_refusals() {
        let cloud = br#"{"errors":[{"status":400,"code":"BAD_REQUEST","title":"A page with this title already exists: A page already exists with the same TITLE in this space","detail":null}]}"#;
        assert!(is_title_taken(&AtlassianError::api(400, ErrorPayload::from_bytes(cloud))));
        let dc = br#"{"statusCode":400,"message":"A page with this title already exists: A page already exists with the title x in the space with key SPA"}"#;
        assert!(is_title_taken(&AtlassianError::api(400, ErrorPayload::from_bytes(dc))));
        let other = br#"{"errors":[{"status":400,"code":"BAD_REQUEST","title":"Error parsing xhtml","detail":null}]}"#;
        assert!(!is_title_taken(&AtlassianError::api(400, ErrorPayload::from_bytes(other))));
        assert!(!is_title_taken(&AtlassianError::api(503, ErrorPayload::from_bytes(cloud))));
    }

    #[test]
    fn pages_read_the_same_from_either_api() {
        let cloud: PageJson = serde_json::from_value(json!({"id": "42", "title": "T", "status": "archived",
            "version": {"number": 3}, "body": {"storage": {"value": "<p/>"}}}))
        .unwrap();
        let dc: PageJson = serde_json::from_value(json!({"id": 42, "title": "T", "status": "archived",
            "version": {"number": 3}, "body": {"storage": {"value": "<p/>"}}}))
        .unwrap();
        assert_eq!(cloud.into_page(), dc.into_page());
        let bare: PageJson = serde_json::from_value(json!({"id": "7"})).unwrap();
        let bare = bare.into_page().unwrap();
        assert_eq!((bare.version, bare.is_current()), (1, true));
    }
}
