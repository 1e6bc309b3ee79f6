//! Create metadata (`issue/createmeta/{project}/issuetypes[/{id}]`) and what is read from it:
//! the issue types a project can create, their create screens' fields, and priorities.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::{AtlassianError, ErrorPayload, Flavour, Session, encode, loose};
use crate::ids::{IssueTypeId, ProjectKey};

/// A createmeta field, normalized across Cloud (`fields`) and Server/DC (`values`). Serialized in
/// the same shape it is read from, so an issue job's cache of it reads back as Jira's answer did.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateMetaField {
    pub field_id: String,
    pub name: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub has_default_value: bool,
    #[serde(default)]
    pub schema: Option<FieldSchema>,
    /// For select-like fields: what may be set, as Jira describes it (passed on to callers as is).
    #[serde(default)]
    pub allowed_values: Option<Vec<Value>>,
}

/// A field's `schema`: its type, and which system or custom field it is.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FieldSchema {
    #[serde(rename = "type", default, deserialize_with = "loose::id")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "loose::id")]
    pub system: Option<String>,
    #[serde(default, deserialize_with = "loose::id")]
    pub custom: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateMetaIssueType {
    pub id: IssueTypeId,
    pub name: String,
    #[serde(default)]
    pub subtask: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// A priority: `GET priority` (Server/DC), or an `allowedValues` entry of the priority field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Priority {
    #[serde(default, deserialize_with = "loose::id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "loose::id")]
    pub name: Option<String>,
}

/// Fields Jira fills itself or that every create request sets, so settings need no default.
pub const FIELDS_WE_ALWAYS_SET: &[&str] = &["summary", "project", "issuetype", "reporter"];

/// A createmeta page: Cloud lists under `issueTypes` or `fields`, DC under `values`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound = "T: Deserialize<'de>")]
struct MetaPage<T> {
    #[serde(default)]
    issue_types: Option<Vec<T>>,
    #[serde(default)]
    fields: Option<Vec<T>>,
    #[serde(default)]
    values: Option<Vec<T>>,
    #[serde(default, deserialize_with = "loose::count")]
    total: Option<u64>,
    #[serde(default, deserialize_with = "loose::flag")]
    is_last: Option<bool>,
}

#[derive(Clone, Copy)]
enum CloudList {
    IssueTypes,
    Fields,
}

/// The most pages [`all_pages`] follows: 100 pages of 200 are 20,000 issue types or fields on one
/// create screen, far past any real project; a server that still answers full pages after that
/// is broken or hostile (a list that never ends), and the walk is refused instead of running to
/// the Lambda's timeout.
pub const MAX_PAGES: usize = 100;

/// Follows `startAt`/`maxResults` pages to the end. Cloud lists under `list_key_cloud`, DC under
/// `values`; `isLast` is not always present, so an empty or short page ends the walk too. At most
/// [`MAX_PAGES`] pages, and no longer than one request's budget in all (set below the function's
/// timeout), so the walk ends before the Lambda deadline.
async fn all_pages<T: for<'de> Deserialize<'de>>(
    session: &Session,
    path: &str,
    list_key_cloud: CloudList,
    page_size: usize,
) -> Result<Vec<T>, AtlassianError> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let started = std::time::Instant::now();
    for pages in 0..MAX_PAGES {
        if pages > 0 && started.elapsed() > session.budget() {
            return Err(AtlassianError::Timeout);
        }
        let page: MetaPage<T> =
            session.get_json(&format!("{path}{separator}startAt={}&maxResults={page_size}", items.len())).await?;
        let list = match (session.flavour(), list_key_cloud) {
            (Flavour::Cloud, CloudList::IssueTypes) => page.issue_types,
            (Flavour::Cloud, CloudList::Fields) => page.fields,
            (Flavour::DataCenter, _) => page.values,
        }
        .unwrap_or_default();
        let count = list.len();
        items.extend(list);
        let total = page.total.map(|t| t as usize);
        let is_last = page.is_last;
        if count == 0
            || is_last == Some(true)
            || total.is_some_and(|t| items.len() >= t)
            || (is_last.is_none() && total.is_none() && count < page_size)
        {
            return Ok(items);
        }
    }
    Err(AtlassianError::TooLarge(format!(
        "{} did not end within {MAX_PAGES} pages",
        path.split('?').next().unwrap_or(path)
    )))
}

/// The issue types that can be created in the project.
pub async fn issue_types(session: &Session, project: &ProjectKey) -> Result<Vec<CreateMetaIssueType>, AtlassianError> {
    let path = session.jira_path(&format!("issue/createmeta/{}/issuetypes", encode(project.as_str())));
    all_pages(session, &path, CloudList::IssueTypes, 200).await
}

/// The create screen's fields of one issue type in the project.
pub async fn fields(
    session: &Session,
    project: &ProjectKey,
    issue_type: &IssueTypeId,
) -> Result<Vec<CreateMetaField>, AtlassianError> {
    let path = session.jira_path(&format!(
        "issue/createmeta/{}/issuetypes/{}",
        encode(project.as_str()),
        encode(issue_type.as_str())
    ));
    all_pages(session, &path, CloudList::Fields, 200).await
}

/// Priorities. Cloud: the priority field's `allowedValues` in an issue type's createmeta, because
/// `/priority/search` needs `manage:jira-configuration`, which we do not ask for; so Cloud needs
/// (project, issue type). Server/DC: `/priority`.
pub async fn priorities(
    session: &Session,
    scope: Option<(&ProjectKey, &IssueTypeId)>,
) -> Result<Vec<Priority>, AtlassianError> {
    match (session.flavour(), scope) {
        (Flavour::Cloud, Some((project, issue_type))) => Ok(fields(session, project, issue_type)
            .await?
            .into_iter()
            .find(|f| f.field_id == "priority")
            .and_then(|f| f.allowed_values)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect()),
        (Flavour::Cloud, None) => Err(AtlassianError::api(
            400,
            ErrorPayload::Text(
                "on Jira Cloud, priorities come from an issue type's create screen: pass project and issue_type".into(),
            ),
        )),
        (Flavour::DataCenter, _) => session.get_json(&session.jira_path("priority")).await,
    }
}
