//! Discovery: the questions an admin asks before publishing (which space, parent page, project,
//! issue type, field defaults), answered in one normalized shape for Cloud and Server/DC. It reads
//! only what those answers need. Lists page with an opaque cursor that hides Atlassian's cursor or
//! start offset.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::atlassian::confluence::{pages, spaces};
use crate::atlassian::jira::{self, CreateMetaField, Listing, meta, projects, users};
use crate::atlassian::{AtlassianError, Flavour, Session};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{IssueTypeId, ProjectKey, SpaceKey};

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
    let token = match &cursor {
        Some(Cursor::Token(token)) => Some(token.as_str()),
        _ => None,
    };
    let page = spaces::list(session, token, Cursor::start(cursor.as_ref()), PAGE).await?;
    let next = page.next.map(|next| match next {
        spaces::Next::Cursor(token) => Cursor::Token(token),
        spaces::Next::Start(start) => Cursor::Start(start),
    });
    let items = page
        .spaces
        .into_iter()
        .filter_map(|s| {
            let key = s.key.into_string();
            let name = s.name.unwrap_or_default();
            matches(query, &[&key, &name]).then(|| Space {
                id: s.id.map(|id| id.into_string()),
                kind: s.kind,
                url: web_link(session, s.webui),
                key,
                name,
            })
        })
        .collect();
    Ok(SpaceList::new(items, next))
}

/// Pages with exactly this title in a space (the parent-page check). `None`: no such space.
pub async fn pages_by_title(
    session: &Session,
    space_key: &str,
    title: &str,
) -> Result<Option<PageList>, AtlassianError> {
    let Some(space) = spaces::by_key(session, &SpaceKey::new(space_key)).await? else { return Ok(None) };
    let found = pages::by_title(session, &space, title, pages::Read::Summary, PAGE).await?;
    let items = found
        .into_iter()
        .filter(|p| p.title == title)
        .map(|p| PageRef { id: p.id.into_string(), title: title.to_owned(), url: web_link(session, p.webui) })
        .collect();
    Ok(Some(PageList::new(items, None)))
}

fn project_of(session: &Session, p: &jira::Project) -> Option<Project> {
    let key = p.key.clone()?.into_string();
    Some(Project {
        id: p.id.clone()?.into_string(),
        name: p.name.clone().unwrap_or_default(),
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
    match projects::list(session, query, start, PAGE).await? {
        Listing::Page { values, is_last, total } => {
            let end = start + values.len();
            // `isLast` is not always present: then `total`, then a short page, decide.
            let last = match (is_last, total) {
                (Some(is_last), _) => is_last,
                (None, Some(total)) => end as u64 >= total,
                (None, None) => values.len() < PAGE,
            };
            let items = values.iter().filter_map(|p| project_of(session, p)).collect();
            Ok(ProjectList::new(items, (!last && !values.is_empty()).then_some(Cursor::Start(end))))
        }
        Listing::Whole(all) => {
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

fn user_of(u: &jira::User) -> Option<User> {
    Some(User {
        id: u.id.clone()?.into_string(),
        display_name: u.display_name.clone().unwrap_or_default(),
        email: u.email_address.clone().filter(|e| !e.is_empty()),
    })
}

pub async fn project_details(session: &Session, key: &str) -> Result<ProjectDetails, AtlassianError> {
    let p = projects::get(session, &ProjectKey::new(key)).await?;
    let project = project_of(session, &p).ok_or_else(|| AtlassianError::Decode("project without id or key".into()))?;
    let issue_types = p.issue_types.iter().filter_map(issue_type_of).collect();
    Ok(ProjectDetails {
        id: project.id,
        key: project.key,
        name: project.name,
        url: project.url,
        lead: p.lead.as_ref().and_then(user_of),
        issue_types,
    })
}

fn issue_type_of(t: &jira::IssueTypeRef) -> Option<IssueType> {
    Some(IssueType {
        id: t.id.clone()?.into_string(),
        name: t.name.clone().unwrap_or_default(),
        subtask: t.subtask.unwrap_or(false),
    })
}

pub async fn issue_types(session: &Session, project: &str) -> Result<IssueTypeList, AtlassianError> {
    let types = meta::issue_types(session, &ProjectKey::new(project)).await?;
    let items =
        types.into_iter().map(|t| IssueType { id: t.id.into_string(), name: t.name, subtask: t.subtask }).collect();
    Ok(IssueTypeList::new(items, None))
}

/// Custom field types whose values are rich text (ADF on Cloud v3).
const RICH_TEXT_CUSTOM: &str = "com.atlassian.jira.plugin.system.customfieldtypes:textarea";

pub fn field_of(flavour: Flavour, f: &CreateMetaField) -> Field {
    let schema = f.schema.clone().unwrap_or_default();
    let rich = matches!(schema.system.as_deref(), Some("description" | "environment"))
        || schema.custom.as_deref() == Some(RICH_TEXT_CUSTOM);
    Field {
        id: f.field_id.clone(),
        name: f.name.clone(),
        required: f.required,
        has_default: f.has_default_value,
        schema_type: schema.kind,
        allowed_values: f.allowed_values.clone(),
        accepts_adf: flavour == Flavour::Cloud && rich,
    }
}

pub async fn fields(session: &Session, project: &str, issue_type_id: &str) -> Result<FieldList, AtlassianError> {
    let fields = meta::fields(session, &ProjectKey::new(project), &IssueTypeId::new(issue_type_id)).await?;
    Ok(FieldList::new(fields.iter().map(|f| field_of(session.flavour(), f)).collect(), None))
}

fn component_of(c: &jira::Component) -> Option<Component> {
    Some(Component {
        id: c.id.clone()?,
        name: c.name.clone().unwrap_or_default(),
        description: c.description.clone().filter(|d| !d.is_empty()),
    })
}

pub async fn components(
    session: &Session,
    project: &str,
    cursor: Option<Cursor>,
) -> Result<ComponentList, AtlassianError> {
    let start = Cursor::start(cursor.as_ref());
    match projects::components(session, &ProjectKey::new(project), start, PAGE).await? {
        Listing::Page { values, is_last, total } => {
            let end = start + values.len();
            let last = is_last.unwrap_or_else(|| total.map_or(values.len() < PAGE, |t| end as u64 >= t));
            let items = values.iter().filter_map(component_of).collect();
            Ok(ComponentList::new(items, (!last && !values.is_empty()).then_some(Cursor::Start(end))))
        }
        Listing::Whole(all) => Ok(local_page(all.iter().filter_map(component_of).collect(), start, ComponentList::new)),
    }
}

/// The user picker (names and, where visible, emails).
pub async fn user_picker(session: &Session, query: &str) -> Result<UserList, AtlassianError> {
    let users = users::picker(session, query, PAGE).await?;
    Ok(UserList::new(users.iter().filter_map(user_of).collect(), None))
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
    let project = ProjectKey::new(project);
    let query = users::UserQuery::Text(query);
    match session.flavour() {
        Flavour::Cloud => {
            let users = users::assignable(session, &project, query, Some(start), PAGE).await?;
            // Jira Cloud filters a window of `maxResults` matches (inactive users, permissions)
            // and may answer fewer while more follow: the next window starts a whole page on, and
            // only an empty answer ends the list.
            let next = (!users.is_empty()).then_some(Cursor::Start(start + PAGE).encode());
            let items = users.iter().filter_map(user_of).collect();
            Ok(AssignableUserList { items, next_cursor: next, possibly_incomplete: false, message: None })
        }
        Flavour::DataCenter => {
            let users = users::assignable(session, &project, query, None, DC_ASSIGNABLE_MAX).await?;
            let full = users.len() >= DC_ASSIGNABLE_MAX;
            let (items, next) =
                local_page(users.iter().filter_map(user_of).collect(), start, |items, next| (items, next));
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

/// Priorities: from the issue type's create screen on Cloud (which needs the scope), from
/// `/priority` on Server/DC (see [`meta::priorities`]).
pub async fn priorities(session: &Session, scope: Option<(&str, &str)>) -> Result<PriorityList, AtlassianError> {
    let scope = scope.map(|(project, issue_type)| (ProjectKey::new(project), IssueTypeId::new(issue_type)));
    let values = meta::priorities(session, scope.as_ref().map(|(p, t)| (p, t))).await?;
    let items =
        values.into_iter().filter_map(|p| Some(Priority { id: p.id?, name: p.name.unwrap_or_default() })).collect();
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
