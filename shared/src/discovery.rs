//! Discovery: the questions an admin asks before publishing (which space, parent page, project,
//! issue type, field defaults), answered in one normalized shape for Cloud and Server/DC. It reads
//! only what those answers need. Lists page with an opaque cursor that hides Atlassian's cursor or
//! start offset.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::atlassian::jira::{CreateMetaField, create_meta_fields, create_meta_issue_types, encode};
use crate::atlassian::{AtlassianError, Flavour, Session, confluence};
use crate::error::{ApiError, ErrorCode};

/// Items per page we ask Atlassian for (Cloud caps project search at 100).
const PAGE: usize = 50;

/// Where the next page starts: Atlassian's own cursor (Confluence Cloud) or an offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cursor {
    Token(String),
    Start(usize),
}

impl Cursor {
    pub fn encode(&self) -> String {
        B64.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(value: &str) -> Result<Self, ApiError> {
        B64.decode(value).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidCursor, "cursor is not one this API returned; start without it")
        })
    }

    fn start(cursor: Option<&Cursor>) -> usize {
        match cursor {
            Some(Cursor::Start(n)) => *n,
            _ => 0,
        }
    }
}

macro_rules! list {
    ($name:ident, $item:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }

        impl $name {
            fn new(items: Vec<$item>, next: Option<Cursor>) -> Self {
                Self { items, next_cursor: next.map(|c| c.encode()) }
            }
        }
    };
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Space {
    /// Cloud's numeric space id; absent on Server/DC.
    pub id: Option<String>,
    pub key: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageRef {
    pub id: String,
    pub title: String,
    pub url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Project {
    pub id: String,
    pub key: String,
    pub name: String,
    pub url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectDetails {
    pub id: String,
    pub key: String,
    pub name: String,
    pub url: Option<String>,
    pub lead: Option<User>,
    pub issue_types: Vec<IssueType>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssueType {
    pub id: String,
    pub name: String,
    pub subtask: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Field {
    pub id: String,
    pub name: String,
    pub required: bool,
    pub has_default: bool,
    /// Jira's schema type (`string`, `array`, `option`, `user`, `date`, ...).
    pub schema_type: Option<String>,
    /// For select-like fields: what may be set.
    #[schema(value_type = Option<Vec<Object>>)]
    pub allowed_values: Option<Vec<Value>>,
    /// Cloud rich-text fields take Atlassian Document Format; everything else a plain value.
    pub accepts_adf: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Component {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    /// What an assignee field takes on this deployment: `accountId` on Cloud, `name` on Server/DC.
    pub id: String,
    pub display_name: String,
    /// Absent when the user's privacy settings hide it; never guessed.
    pub email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Priority {
    pub id: String,
    pub name: String,
}

list!(SpaceList, Space, "Confluence spaces.");
list!(PageList, PageRef, "Pages matching a title.");
list!(ProjectList, Project, "Jira projects.");
list!(IssueTypeList, IssueType, "Issue types that can be created in a project.");
list!(FieldList, Field, "Fields of an issue type's create screen.");
list!(ComponentList, Component, "A project's components.");
list!(UserList, User, "Users.");

/// Users who can be assigned issues in a project.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignableUserList {
    pub items: Vec<User>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Jira Server/DC answers at most 100 assignable users per search and cannot page past them:
    /// `true` when it answered exactly 100, so more users may match. Always `false` on Cloud,
    /// which pages.
    pub possibly_incomplete: bool,
    /// With `possibly_incomplete`: what to do about it.
    pub message: Option<String>,
}

/// Jira DC 10.3's cap on `user/assignable/search` (`maxResults`: "The maximum allowed value is
/// 100"; the operation takes no `startAt`).
pub const DC_ASSIGNABLE_MAX: usize = 100;
list!(PriorityList, Priority, "Priorities.");

fn str_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn matches(query: Option<&str>, fields: &[&str]) -> bool {
    let Some(q) = query.map(str::trim).filter(|q| !q.is_empty()) else { return true };
    let q = q.to_lowercase();
    fields.iter().any(|f| f.to_lowercase().contains(&q))
}

fn web_link(session: &Session, relative: Option<String>) -> Option<String> {
    let relative = relative?;
    let root = match (session.product(), session.flavour()) {
        (crate::domain::Product::Confluence, Flavour::Cloud) => {
            format!("{}/wiki", session.web_root().trim_end_matches('/'))
        }
        _ => session.web_root().trim_end_matches('/').to_owned(),
    };
    Some(format!("{root}{relative}"))
}

/// Confluence spaces, optionally filtered by name or key (client side: neither API searches names).
pub async fn spaces(
    session: &Session,
    query: Option<&str>,
    cursor: Option<Cursor>,
) -> Result<SpaceList, AtlassianError> {
    let (results, next) = match session.flavour() {
        Flavour::Cloud => {
            let mut path = session.confluence_v2_path(&format!("spaces?limit={PAGE}"));
            if let Some(Cursor::Token(token)) = &cursor {
                path.push_str(&format!("&cursor={}", encode(token)));
            }
            let page: Value = session.get_json(&path).await?;
            let next = page.pointer("/_links/next").and_then(Value::as_str).and_then(cursor_param).map(Cursor::Token);
            (page.get("results").and_then(Value::as_array).cloned().unwrap_or_default(), next)
        }
        Flavour::DataCenter => {
            let start = Cursor::start(cursor.as_ref());
            let page: Value =
                session.get_json(&session.confluence_v1_path(&format!("space?start={start}&limit={PAGE}"))).await?;
            let results = page.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
            let more = page.pointer("/_links/next").is_some() && !results.is_empty();
            let next = more.then(|| Cursor::Start(start + results.len()));
            (results, next)
        }
    };
    let items = results
        .iter()
        .filter_map(|s| {
            let key = str_of(s, "key")?;
            let name = str_of(s, "name").unwrap_or_default();
            matches(query, &[&key, &name]).then(|| Space {
                id: if session.flavour() == Flavour::Cloud { str_of(s, "id") } else { None },
                kind: str_of(s, "type"),
                url: web_link(session, s.pointer("/_links/webui").and_then(Value::as_str).map(str::to_owned)),
                key,
                name,
            })
        })
        .collect();
    Ok(SpaceList::new(items, next))
}

/// The `cursor` query parameter of a Confluence Cloud `_links.next` URL.
fn cursor_param(next: &str) -> Option<String> {
    let query = next.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "cursor").map(|(_, v)| v.into_owned())
}

/// Pages with exactly this title in a space (the parent-page check). `None`: no such space.
pub async fn pages_by_title(
    session: &Session,
    space_key: &str,
    title: &str,
) -> Result<Option<PageList>, AtlassianError> {
    let results = match session.flavour() {
        Flavour::Cloud => {
            let Some(space) = confluence::space_by_key(session, space_key).await? else { return Ok(None) };
            let space_id = str_of(&space, "id").unwrap_or_default();
            let path = session.confluence_v2_path(&format!(
                "pages?space-id={}&title={}&limit={PAGE}",
                encode(&space_id),
                encode(title)
            ));
            let page: Value = session.get_json(&path).await?;
            page.get("results").and_then(Value::as_array).cloned().unwrap_or_default()
        }
        Flavour::DataCenter => {
            if confluence::space_by_key(session, space_key).await?.is_none() {
                return Ok(None);
            }
            let path = session.confluence_v1_path(&format!(
                "content?spaceKey={}&title={}&type=page&limit={PAGE}",
                encode(space_key),
                encode(title)
            ));
            let page: Value = session.get_json(&path).await?;
            page.get("results").and_then(Value::as_array).cloned().unwrap_or_default()
        }
    };
    let items = results
        .iter()
        .filter(|p| str_of(p, "title").as_deref() == Some(title))
        .filter_map(|p| {
            Some(PageRef {
                id: str_of(p, "id")?,
                title: title.to_owned(),
                url: web_link(session, p.pointer("/_links/webui").and_then(Value::as_str).map(str::to_owned)),
            })
        })
        .collect();
    Ok(Some(PageList::new(items, None)))
}

fn project_of(session: &Session, p: &Value) -> Option<Project> {
    let key = str_of(p, "key")?;
    Some(Project {
        id: str_of(p, "id")?,
        name: str_of(p, "name").unwrap_or_default(),
        url: Some(format!("{}/browse/{key}", session.web_root().trim_end_matches('/'))),
        key,
    })
}

/// Jira projects, filtered by name or key. Cloud searches server side (`project/search`); Server/DC
/// lists every project in one answer, which we filter and page here.
pub async fn projects(
    session: &Session,
    query: Option<&str>,
    cursor: Option<Cursor>,
) -> Result<ProjectList, AtlassianError> {
    let start = Cursor::start(cursor.as_ref());
    match session.flavour() {
        Flavour::Cloud => {
            let mut path = session.jira_path(&format!("project/search?startAt={start}&maxResults={PAGE}"));
            if let Some(q) = query.map(str::trim).filter(|q| !q.is_empty()) {
                path.push_str(&format!("&query={}", encode(q)));
            }
            let page: Value = session.get_json(&path).await?;
            let values = page.get("values").and_then(Value::as_array).cloned().unwrap_or_default();
            let end = start + values.len();
            // `isLast` is not always present: then `total`, then a short page, decide.
            let last = match (page.get("isLast").and_then(Value::as_bool), page.get("total").and_then(Value::as_u64)) {
                (Some(is_last), _) => is_last,
                (None, Some(total)) => end as u64 >= total,
                (None, None) => values.len() < PAGE,
            };
            let items = values.iter().filter_map(|p| project_of(session, p)).collect();
            Ok(ProjectList::new(items, (!last && !values.is_empty()).then_some(Cursor::Start(end))))
        }
        Flavour::DataCenter => {
            let all: Vec<Value> = session.get_json(&session.jira_path("project")).await?;
            let filtered: Vec<Project> = all
                .iter()
                .filter_map(|p| project_of(session, p))
                .filter(|p| matches(query, &[&p.key, &p.name]))
                .collect();
            Ok(local_page(filtered, start, ProjectList::new))
        }
    }
}

/// One page of a list we hold whole, with an offset cursor.
fn local_page<T, L>(all: Vec<T>, start: usize, make: impl Fn(Vec<T>, Option<Cursor>) -> L) -> L {
    let total = all.len();
    let items: Vec<T> = all.into_iter().skip(start).take(PAGE).collect();
    let end = start + items.len();
    make(items, (end < total).then_some(Cursor::Start(end)))
}

fn user_of(session: &Session, u: &Value) -> Option<User> {
    let id = match session.flavour() {
        Flavour::Cloud => str_of(u, "accountId")?,
        Flavour::DataCenter => str_of(u, "name")?,
    };
    Some(User {
        id,
        display_name: str_of(u, "displayName").unwrap_or_default(),
        email: str_of(u, "emailAddress").filter(|e| !e.is_empty()),
    })
}

pub async fn project_details(session: &Session, key: &str) -> Result<ProjectDetails, AtlassianError> {
    let p: Value = session.get_json(&session.jira_path(&format!("project/{}", encode(key)))).await?;
    let project = project_of(session, &p).ok_or_else(|| AtlassianError::Decode("project without id or key".into()))?;
    let issue_types = p
        .get("issueTypes")
        .and_then(Value::as_array)
        .map(|types| types.iter().filter_map(issue_type_of).collect())
        .unwrap_or_default();
    Ok(ProjectDetails {
        id: project.id,
        key: project.key,
        name: project.name,
        url: project.url,
        lead: p.get("lead").and_then(|l| user_of(session, l)),
        issue_types,
    })
}

fn issue_type_of(t: &Value) -> Option<IssueType> {
    Some(IssueType {
        id: str_of(t, "id")?,
        name: str_of(t, "name").unwrap_or_default(),
        subtask: t.get("subtask").and_then(Value::as_bool).unwrap_or(false),
    })
}

pub async fn issue_types(session: &Session, project: &str) -> Result<IssueTypeList, AtlassianError> {
    let types = create_meta_issue_types(session, project).await?;
    let items = types.into_iter().map(|t| IssueType { id: t.id, name: t.name, subtask: t.subtask }).collect();
    Ok(IssueTypeList::new(items, None))
}

/// Custom field types whose values are rich text (ADF on Cloud v3).
const RICH_TEXT_CUSTOM: &str = "com.atlassian.jira.plugin.system.customfieldtypes:textarea";

pub fn field_of(flavour: Flavour, f: &CreateMetaField) -> Field {
    let schema_type = f.schema.as_ref().and_then(|s| str_of(s, "type"));
    let system = f.schema.as_ref().and_then(|s| str_of(s, "system"));
    let custom = f.schema.as_ref().and_then(|s| str_of(s, "custom"));
    let rich =
        matches!(system.as_deref(), Some("description" | "environment")) || custom.as_deref() == Some(RICH_TEXT_CUSTOM);
    Field {
        id: f.field_id.clone(),
        name: f.name.clone(),
        required: f.required,
        has_default: f.has_default_value,
        schema_type,
        allowed_values: f.allowed_values.clone(),
        accepts_adf: flavour == Flavour::Cloud && rich,
    }
}

pub async fn fields(session: &Session, project: &str, issue_type_id: &str) -> Result<FieldList, AtlassianError> {
    let fields = create_meta_fields(session, project, issue_type_id).await?;
    Ok(FieldList::new(fields.iter().map(|f| field_of(session.flavour(), f)).collect(), None))
}

fn component_of(c: &Value) -> Option<Component> {
    Some(Component {
        id: str_of(c, "id")?,
        name: str_of(c, "name").unwrap_or_default(),
        description: str_of(c, "description").filter(|d| !d.is_empty()),
    })
}

pub async fn components(
    session: &Session,
    project: &str,
    cursor: Option<Cursor>,
) -> Result<ComponentList, AtlassianError> {
    let start = Cursor::start(cursor.as_ref());
    match session.flavour() {
        Flavour::Cloud => {
            let path =
                session.jira_path(&format!("project/{}/component?startAt={start}&maxResults={PAGE}", encode(project)));
            let page: Value = session.get_json(&path).await?;
            let values = page.get("values").and_then(Value::as_array).cloned().unwrap_or_default();
            let end = start + values.len();
            let last = page.get("isLast").and_then(Value::as_bool).unwrap_or_else(|| {
                page.get("total").and_then(Value::as_u64).map_or(values.len() < PAGE, |t| end as u64 >= t)
            });
            let items = values.iter().filter_map(component_of).collect();
            Ok(ComponentList::new(items, (!last && !values.is_empty()).then_some(Cursor::Start(end))))
        }
        Flavour::DataCenter => {
            let all: Vec<Value> =
                session.get_json(&session.jira_path(&format!("project/{}/components", encode(project)))).await?;
            Ok(local_page(all.iter().filter_map(component_of).collect(), start, ComponentList::new))
        }
    }
}

/// The user picker (names and, where visible, emails).
pub async fn user_picker(session: &Session, query: &str) -> Result<UserList, AtlassianError> {
    let page: Value =
        session.get_json(&session.jira_path(&format!("user/picker?query={}&maxResults={PAGE}", encode(query)))).await?;
    let items = page
        .get("users")
        .and_then(Value::as_array)
        .map(|users| users.iter().filter_map(|u| user_of(session, u)).collect())
        .unwrap_or_default();
    Ok(UserList::new(items, None))
}

/// Users who can be assigned issues in a project. Cloud pages with `startAt`. Server/DC takes no
/// offset and answers at most 100, so we ask for 100 and page here; an answer of exactly 100 is
/// flagged `possibly_incomplete`. The caller must give DC a query (checked by the handler).
pub async fn assignable_users(
    session: &Session,
    project: &str,
    query: &str,
    cursor: Option<Cursor>,
) -> Result<AssignableUserList, AtlassianError> {
    let start = Cursor::start(cursor.as_ref());
    match session.flavour() {
        Flavour::Cloud => {
            let path = session.jira_path(&format!(
                "user/assignable/search?query={}&project={}&startAt={start}&maxResults={PAGE}",
                encode(query),
                encode(project)
            ));
            let users: Vec<Value> = session.get_json(&path).await?;
            // Jira Cloud filters a window of `maxResults` matches (inactive users, permissions)
            // and may answer fewer while more follow: the next window starts a whole page on, and
            // only an empty answer ends the list.
            let next = (!users.is_empty()).then_some(Cursor::Start(start + PAGE).encode());
            let items = users.iter().filter_map(|u| user_of(session, u)).collect();
            Ok(AssignableUserList { items, next_cursor: next, possibly_incomplete: false, message: None })
        }
        Flavour::DataCenter => {
            let path = session.jira_path(&format!(
                "user/assignable/search?username={}&project={}&maxResults={DC_ASSIGNABLE_MAX}",
                encode(query),
                encode(project)
            ));
            let users: Vec<Value> = session.get_json(&path).await?;
            let full = users.len() >= DC_ASSIGNABLE_MAX;
            let (items, next) =
                local_page(users.iter().filter_map(|u| user_of(session, u)).collect(), start, |items, next| {
                    (items, next)
                });
            Ok(AssignableUserList {
                items,
                next_cursor: next.map(|c| c.encode()),
                possibly_incomplete: full,
                message: full.then(|| {
                    format!(
                        "Jira Server/Data Center answers at most {DC_ASSIGNABLE_MAX} assignable users per search and this query matched at least that many; more users may match: use a narrower query (more of the name, or the user name)"
                    )
                }),
            })
        }
    }
}

/// Priorities. Cloud: the priority field's `allowedValues` in an issue type's createmeta, because
/// `/priority/search` needs `manage:jira-configuration`, which we do not ask for; so Cloud needs
/// (project, issue type). Server/DC: `/priority`.
pub async fn priorities(session: &Session, scope: Option<(&str, &str)>) -> Result<PriorityList, AtlassianError> {
    let values: Vec<Value> =
        match (session.flavour(), scope) {
            (Flavour::Cloud, Some((project, issue_type))) => create_meta_fields(session, project, issue_type)
                .await?
                .into_iter()
                .find(|f| f.field_id == "priority")
                .and_then(|f| f.allowed_values)
                .unwrap_or_default(),
            (Flavour::Cloud, None) => {
                return Err(AtlassianError::api(400, crate::atlassian::ErrorPayload::Text(
                    "on Jira Cloud, priorities come from an issue type's create screen: pass project and issue_type"
                        .into(),
                )));
            }
            (Flavour::DataCenter, _) => session.get_json(&session.jira_path("priority")).await?,
        };
    let items = values
        .iter()
        .filter_map(|p| Some(Priority { id: str_of(p, "id")?, name: str_of(p, "name").unwrap_or_default() }))
        .collect();
    Ok(PriorityList::new(items, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        for cursor in [Cursor::Start(150), Cursor::Token("abc==/+".into())] {
            assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        }
        for junk in ["", "!!", "eyJ4IjoxfQ"] {
            assert_eq!(Cursor::decode(junk).unwrap_err().code, "invalid_cursor");
        }
    }

    #[test]
    fn confluence_next_links_yield_their_cursor() {
        assert_eq!(cursor_param("/wiki/api/v2/spaces?limit=50&cursor=a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(cursor_param("/wiki/api/v2/spaces?limit=50"), None);
    }

    #[test]
    fn local_pages_cover_everything_once() {
        let all: Vec<usize> = (0..123).collect();
        let mut seen = Vec::new();
        let mut start = 0;
        loop {
            let (items, next) = local_page(all.clone(), start, |items, next| (items, next));
            seen.extend(items);
            match next {
                Some(Cursor::Start(n)) => start = n,
                _ => break,
            }
        }
        assert_eq!(seen, all);
    }
}
