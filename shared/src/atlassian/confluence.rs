//! Confluence REST calls shared by several functions: Cloud v2 (v1 for attachments) and the
//! Server/DC REST API.

use serde_json::Value;

use super::jira::encode;
use reqwest::Method;
use serde_json::json;

use super::{AtlassianError, Class, FileUpload, Flavour, Payload, Session};

/// A space by key: Cloud `GET /wiki/api/v2/spaces?keys=`, DC `GET /rest/api/space/{key}`.
/// `None` when it does not exist (or the connection may not see it).
pub async fn space_by_key(session: &Session, key: &str) -> Result<Option<Value>, AtlassianError> {
    match session.flavour() {
        Flavour::Cloud => {
            let page: Value =
                session.get_json(&session.confluence_v2_path(&format!("spaces?keys={}", encode(key)))).await?;
            Ok(page.get("results").and_then(Value::as_array).and_then(|r| r.first()).cloned())
        }
        Flavour::DataCenter => {
            match session.get_json(&session.confluence_v1_path(&format!("space/{}", encode(key)))).await {
                Ok(space) => Ok(Some(space)),
                Err(e) if e.is(Class::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

/// A page as we need it: id, title, status, current version and storage body.
#[derive(Debug, Clone, PartialEq)]
pub struct PageInfo {
    pub id: String,
    pub title: String,
    /// `current`, `archived`, `draft`, ... (Cloud v2 `status`, DC `status`).
    pub status: String,
    pub version: u64,
    pub body: String,
}

impl PageInfo {
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

fn page_info(flavour: Flavour, v: &Value) -> Option<PageInfo> {
    let id = match v.get("id")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let body = match flavour {
        Flavour::Cloud => v.pointer("/body/storage/value"),
        Flavour::DataCenter => v.pointer("/body/storage/value"),
    }
    .and_then(Value::as_str)
    .unwrap_or_default()
    .to_owned();
    Some(PageInfo {
        id,
        title: v.get("title").and_then(Value::as_str).unwrap_or_default().to_owned(),
        status: v.get("status").and_then(Value::as_str).unwrap_or_default().to_owned(),
        version: v.pointer("/version/number").and_then(Value::as_u64).unwrap_or(1),
        body,
    })
}

/// The space's id (Cloud) and homepage id, for creating top-level parent pages under the home page.
pub struct SpaceRef {
    pub key: String,
    pub id: Option<String>,
    pub homepage_id: Option<String>,
}

pub async fn space(session: &Session, key: &str) -> Result<Option<SpaceRef>, AtlassianError> {
    match session.flavour() {
        Flavour::Cloud => Ok(space_by_key(session, key).await?.map(|s| SpaceRef {
            key: key.to_owned(),
            id: s.get("id").map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())),
            homepage_id: s
                .get("homepageId")
                .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string()))),
        })),
        Flavour::DataCenter => {
            match session
                .get_json::<Value>(&session.confluence_v1_path(&format!("space/{}?expand=homepage", encode(key))))
                .await
            {
                Ok(s) => Ok(Some(SpaceRef {
                    key: key.to_owned(),
                    id: None,
                    homepage_id: s
                        .pointer("/homepage/id")
                        .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string()))),
                })),
                Err(e) if e.is(Class::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

/// The page with exactly this title in the space (titles are unique per space), with its body.
pub async fn find_page(session: &Session, space: &SpaceRef, title: &str) -> Result<Option<PageInfo>, AtlassianError> {
    let path = match session.flavour() {
        Flavour::Cloud => session.confluence_v2_path(&format!(
            "pages?space-id={}&title={}&body-format=storage&limit=5",
            encode(space.id.as_deref().unwrap_or_default()),
            encode(title)
        )),
        Flavour::DataCenter => session.confluence_v1_path(&format!(
            "content?spaceKey={}&title={}&type=page&expand=version,body.storage&limit=5",
            encode(&space.key),
            encode(title)
        )),
    };
    let page: Value = session.get_json(&path).await?;
    Ok(page
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| page_info(session.flavour(), p))
        .find(|p| p.title == title))
}

/// A page by id; `None` when it was deleted.
pub async fn get_page(session: &Session, id: &str) -> Result<Option<PageInfo>, AtlassianError> {
    let path = match session.flavour() {
        Flavour::Cloud => session.confluence_v2_path(&format!("pages/{}?body-format=storage", encode(id))),
        Flavour::DataCenter => {
            session.confluence_v1_path(&format!("content/{}?expand=version,body.storage", encode(id)))
        }
    };
    match session.get_json::<Value>(&path).await {
        Ok(v) => Ok(page_info(session.flavour(), &v)),
        Err(e) if e.is(Class::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a page under `parent_id`. Cloud v2 answers 200, DC 200 as well.
pub async fn create_page(
    session: &Session,
    space: &SpaceRef,
    parent_id: Option<&str>,
    title: &str,
    body: &str,
) -> Result<PageInfo, AtlassianError> {
    let (path, request) = match session.flavour() {
        Flavour::Cloud => {
            let mut request = json!({
                "spaceId": space.id, "status": "current", "title": title,
                "body": {"representation": "storage", "value": body}
            });
            if let Some(parent) = parent_id {
                request["parentId"] = json!(parent);
            }
            (session.confluence_v2_path("pages"), request)
        }
        Flavour::DataCenter => {
            let mut request = json!({
                "type": "page", "title": title, "space": {"key": space.key},
                "body": {"storage": {"value": body, "representation": "storage"}}
            });
            if let Some(parent) = parent_id {
                request["ancestors"] = json!([{"id": parent}]);
            }
            (session.confluence_v1_path("content"), request)
        }
    };
    let response = session.send(Method::POST, &path, Payload::Json(&request)).await?;
    let created: Value = response.json().await.map_err(|e| AtlassianError::Decode(e.without_url().to_string()))?;
    let mut info = page_info(session.flavour(), &created)
        .ok_or_else(|| AtlassianError::Decode("created page without id".into()))?;
    info.body = body.to_owned();
    Ok(info)
}

/// Replaces a page's title and body as version `version` (the current version + 1). Confluence
/// answers 409 when someone else wrote that version first.
pub async fn update_page(
    session: &Session,
    id: &str,
    title: &str,
    body: &str,
    version: u64,
) -> Result<(), AtlassianError> {
    let (path, request) = match session.flavour() {
        Flavour::Cloud => (
            session.confluence_v2_path(&format!("pages/{}", encode(id))),
            json!({"id": id, "status": "current", "title": title,
                   "body": {"representation": "storage", "value": body}, "version": {"number": version}}),
        ),
        Flavour::DataCenter => (
            session.confluence_v1_path(&format!("content/{}", encode(id))),
            json!({"id": id, "type": "page", "title": title,
                   "body": {"storage": {"value": body, "representation": "storage"}}, "version": {"number": version}}),
        ),
    };
    session.send(Method::PUT, &path, Payload::Json(&request)).await?;
    Ok(())
}

/// Uploads a file to a page, or adds a new version when the page already has a file of that name,
/// so one attachment never becomes two. Cloud: `PUT .../child/attachment` (REST v1: v2 has no
/// upload). Data Center has no PUT there: `POST ...?allowDuplicated=true` does the same.
/// Returns the attachment id.
pub async fn put_attachment(session: &Session, page_id: &str, file: &FileUpload) -> Result<String, AtlassianError> {
    let path = session.confluence_v1_path(&format!("content/{}/child/attachment", encode(page_id)));
    let response = match session.flavour() {
        Flavour::Cloud => session.send(Method::PUT, &path, Payload::File(file)).await?,
        Flavour::DataCenter => {
            session.send(Method::POST, &format!("{path}?allowDuplicated=true"), Payload::File(file)).await?
        }
    };
    let answer: Value = response.json().await.map_err(|e| AtlassianError::Decode(e.without_url().to_string()))?;
    let first = answer.get("results").and_then(Value::as_array).and_then(|r| r.first()).unwrap_or(&answer);
    first
        .get("id")
        .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
        .ok_or_else(|| AtlassianError::Decode("attachment answer without id".into()))
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
}
