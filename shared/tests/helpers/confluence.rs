//! Confluence Cloud as an in-process server that keeps its pages and attachments, answering in
//! the shapes of the official specs (REST v2 `PageSingle`/`MultiEntityResult<Page>`, REST v1
//! `ContentArray` for attachments) and with Confluence's rules that matter for exactly-once:
//! titles are unique per space (a second create is refused with Confluence's "A page with this
//! title already exists" 400), a page update must name the next version (409 otherwise), and
//! `PUT .../child/attachment` adds a version to the attachment of the same file name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const SPACE_KEY: &str = "ENG";
const SPACE_ID: &str = "98305";
const HOMEPAGE_ID: &str = "65537";

#[derive(Debug, Clone)]
pub struct Page {
    pub id: String,
    pub title: String,
    pub parent_id: Option<String>,
    pub version: u64,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub id: String,
    pub page_id: String,
    pub filename: String,
    /// One per upload of this file name.
    pub versions: u64,
}

#[derive(Default)]
struct State {
    pages: BTreeMap<u64, Page>,
    attachments: Vec<Attachment>,
    next_id: u64,
    /// Every page a `POST /pages` created (the home page is not one).
    created: Vec<String>,
}

/// Handle on the simulated site: mount it on a server, then inspect what the job left there.
#[derive(Clone)]
pub struct Confluence(Arc<Mutex<State>>);

fn lock(c: &Confluence) -> std::sync::MutexGuard<'_, State> {
    c.0.lock().unwrap_or_else(|p| p.into_inner())
}

impl Confluence {
    pub async fn mount(server: &MockServer) -> Self {
        let mut state = State { next_id: 70000, ..State::default() };
        let home =
            Page { id: HOMEPAGE_ID.into(), title: "ENG Home".into(), parent_id: None, version: 1, body: String::new() };
        state.pages.insert(HOMEPAGE_ID.parse().unwrap(), home);
        let site = Self(Arc::new(Mutex::new(state)));
        let route = |op| Route { site: site.clone(), op };
        Mock::given(method("GET")).and(path("/wiki/api/v2/spaces")).respond_with(route(Op::Spaces)).mount(server).await;
        Mock::given(method("GET"))
            .and(path("/wiki/api/v2/pages"))
            .respond_with(route(Op::ListPages))
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path("/wiki/api/v2/pages"))
            .respond_with(route(Op::CreatePage))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/wiki/api/v2/pages/[0-9]+$"))
            .respond_with(route(Op::GetPage))
            .mount(server)
            .await;
        Mock::given(method("PUT"))
            .and(path_regex(r"^/wiki/api/v2/pages/[0-9]+$"))
            .respond_with(route(Op::UpdatePage))
            .mount(server)
            .await;
        Mock::given(method("PUT"))
            .and(path_regex(r"^/wiki/rest/api/content/[0-9]+/child/attachment$"))
            .respond_with(route(Op::PutAttachment))
            .mount(server)
            .await;
        site
    }

    /// Every page but the space's home page.
    pub fn pages(&self) -> Vec<Page> {
        lock(self).pages.values().filter(|p| p.id != HOMEPAGE_ID).cloned().collect()
    }

    /// The pages whose body carries `marker` (the report's anchor).
    pub fn pages_carrying(&self, marker: &str) -> Vec<Page> {
        self.pages().into_iter().filter(|p| p.body.contains(marker)).collect()
    }

    pub fn page(&self, id: &str) -> Option<Page> {
        lock(self).pages.values().find(|p| p.id == id).cloned()
    }

    /// How many pages `POST /pages` created, parents included.
    pub fn created(&self) -> usize {
        lock(self).created.len()
    }

    pub fn attachments_of(&self, page_id: &str) -> Vec<Attachment> {
        lock(self).attachments.iter().filter(|a| a.page_id == page_id).cloned().collect()
    }
}

#[derive(Clone, Copy)]
enum Op {
    Spaces,
    ListPages,
    CreatePage,
    GetPage,
    UpdatePage,
    PutAttachment,
}

struct Route {
    site: Confluence,
    op: Op,
}

fn query(request: &Request, name: &str) -> Option<String> {
    request.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Confluence v2's error body (`{"errors":[{status, code, title, detail}]}`).
fn v2_error(status: u16, code: &str, title: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"errors": [{"status": status, "code": code, "title": title, "detail": null}]}))
}

fn page_json(page: &Page, with_body: bool) -> Value {
    let mut v = json!({
        "id": page.id, "status": "current", "title": page.title, "spaceId": SPACE_ID,
        "parentId": page.parent_id, "parentType": "page", "authorId": "557058:bridge",
        "createdAt": "2026-11-20T09:00:00.000Z",
        "version": {"number": page.version, "message": "", "minorEdit": false, "authorId": "557058:bridge",
                    "createdAt": "2026-11-20T09:00:00.000Z"},
        "_links": {"webui": format!("/spaces/{SPACE_KEY}/pages/{}", page.id)}
    });
    if with_body {
        v["body"] = json!({"storage": {"representation": "storage", "value": page.body}});
    }
    v
}

const TITLE_TAKEN: &str =
    "A page with this title already exists: A page already exists with the same TITLE in this space";

impl Respond for Route {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.site);
        let last_segment = || request.url.path_segments().and_then(|mut s| s.nth(4)).unwrap_or_default().to_owned();
        match self.op {
            Op::Spaces => {
                let wanted = query(request, "keys").unwrap_or_default();
                let results: Vec<Value> = wanted
                    .split(',')
                    .filter(|k| *k == SPACE_KEY)
                    .map(|_| {
                        json!({"id": SPACE_ID, "key": SPACE_KEY, "name": "Engineering", "type": "global",
                                    "status": "current", "homepageId": HOMEPAGE_ID, "authorId": "557058:admin",
                                    "createdAt": "2026-01-01T00:00:00.000Z"})
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"results": results, "_links": {}}))
            }
            Op::ListPages => {
                let space = query(request, "space-id");
                let title = query(request, "title");
                let with_body = query(request, "body-format").as_deref() == Some("storage");
                let results: Vec<Value> = state
                    .pages
                    .values()
                    .filter(|_| space.as_deref().is_none_or(|s| s == SPACE_ID))
                    .filter(|p| title.as_deref().is_none_or(|t| t == p.title))
                    .map(|p| page_json(p, with_body))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"results": results, "_links": {}}))
            }
            Op::CreatePage => {
                let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                    return v2_error(400, "INVALID_REQUEST_PARAMETER", "Invalid request body");
                };
                if body["spaceId"] != json!(SPACE_ID) {
                    return v2_error(404, "NOT_FOUND", "Space not found");
                }
                let title = body["title"].as_str().unwrap_or_default().to_owned();
                if state.pages.values().any(|p| p.title == title) {
                    return v2_error(400, "BAD_REQUEST", TITLE_TAKEN);
                }
                let parent_id = body["parentId"].as_str().map(str::to_owned);
                if parent_id.as_ref().is_some_and(|p| !state.pages.values().any(|page| &page.id == p)) {
                    return v2_error(404, "NOT_FOUND", "Parent page not found");
                }
                state.next_id += 1;
                let id = state.next_id;
                let page = Page {
                    id: id.to_string(),
                    title,
                    parent_id,
                    version: 1,
                    body: body.pointer("/body/value").and_then(Value::as_str).unwrap_or_default().to_owned(),
                };
                state.created.push(page.id.clone());
                let answer = page_json(&page, false);
                state.pages.insert(id, page);
                ResponseTemplate::new(200).set_body_json(answer)
            }
            Op::GetPage => {
                let id = last_segment();
                match state.pages.values().find(|p| p.id == id) {
                    Some(p) => ResponseTemplate::new(200).set_body_json(page_json(p, true)),
                    None => v2_error(404, "NOT_FOUND", "Not Found"),
                }
            }
            Op::UpdatePage => {
                let id = last_segment();
                let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                    return v2_error(400, "INVALID_REQUEST_PARAMETER", "Invalid request body");
                };
                let title = body["title"].as_str().unwrap_or_default().to_owned();
                if state.pages.values().any(|p| p.title == title && p.id != id) {
                    return v2_error(400, "BAD_REQUEST", TITLE_TAKEN);
                }
                let Some(page) = state.pages.values_mut().find(|p| p.id == id) else {
                    return v2_error(404, "NOT_FOUND", "Not Found");
                };
                let version = body.pointer("/version/number").and_then(Value::as_u64).unwrap_or_default();
                if version != page.version + 1 {
                    return v2_error(409, "CONFLICT", "Version must be incremented on update");
                }
                page.version = version;
                page.title = title;
                page.body = body.pointer("/body/value").and_then(Value::as_str).unwrap_or_default().to_owned();
                ResponseTemplate::new(200).set_body_json(page_json(page, false))
            }
            Op::PutAttachment => {
                let page_id = request.url.path_segments().and_then(|mut s| s.nth(4)).unwrap_or_default().to_owned();
                // Confluence's XSRF guard: uploads without this header are refused.
                if request.headers.get("X-Atlassian-Token").and_then(|v| v.to_str().ok()) != Some("no-check") {
                    return ResponseTemplate::new(403).set_body_string("XSRF check failed");
                }
                if !state.pages.values().any(|p| p.id == page_id) {
                    return ResponseTemplate::new(404).set_body_json(json!({"statusCode": 404,
                        "message": format!("No content found with id: ContentId{{id={page_id}}}")}));
                }
                let Some(filename) = multipart_filename(&request.body) else {
                    return ResponseTemplate::new(400).set_body_json(json!({"statusCode": 400, "message": "no file"}));
                };
                let next_id = state.attachments.len() + 1;
                let attachment =
                    match state.attachments.iter_mut().find(|a| a.page_id == page_id && a.filename == filename) {
                        Some(existing) => {
                            existing.versions += 1;
                            existing.clone()
                        }
                        None => {
                            let new =
                                Attachment { id: format!("att{}", 900 + next_id), page_id, filename, versions: 1 };
                            state.attachments.push(new.clone());
                            new
                        }
                    };
                ResponseTemplate::new(200).set_body_json(json!({
                    "results": [{"id": attachment.id, "type": "attachment", "status": "current",
                                 "title": attachment.filename, "version": {"number": attachment.versions},
                                 "container": {"id": attachment.page_id, "type": "page"},
                                 "_links": {}}],
                    "size": 1, "_links": {"base": "", "context": "/wiki"}
                }))
            }
        }
    }
}

/// The `filename` of the multipart body's `file` part.
fn multipart_filename(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let start = text.find("name=\"file\"; filename=\"")? + "name=\"file\"; filename=\"".len();
    let end = text[start..].find('"')?;
    Some(text[start..start + end].to_owned())
}
