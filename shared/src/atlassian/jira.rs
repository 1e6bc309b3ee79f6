//! Jira REST calls shared by several functions, one shape for Cloud (v3) and Server/DC (v2).

use serde::Deserialize;
use serde_json::Value;

use super::{AtlassianError, Flavour, Session};

/// A createmeta field, normalized across Cloud (`fields`) and Server/DC (`values`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateMetaField {
    pub field_id: String,
    pub name: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub has_default_value: bool,
    #[serde(default)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub allowed_values: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateMetaIssueType {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub subtask: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// Fields Jira fills itself or that every create request sets, so settings need no default.
pub const FIELDS_WE_ALWAYS_SET: &[&str] = &["summary", "project", "issuetype", "reporter"];

/// Follows `startAt`/`maxResults` pages to the end. Cloud lists under `list_key_cloud`, DC under
/// `values`; `isLast` is not always present, so an empty or short page ends the walk too.
async fn all_pages<T: for<'de> Deserialize<'de>>(
    session: &Session,
    path: &str,
    list_key_cloud: &str,
    page_size: usize,
) -> Result<Vec<T>, AtlassianError> {
    let list_key = if session.flavour() == Flavour::Cloud { list_key_cloud } else { "values" };
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    loop {
        let page: Value =
            session.get_json(&format!("{path}{separator}startAt={}&maxResults={page_size}", items.len())).await?;
        let list = page.get(list_key).and_then(Value::as_array).cloned().unwrap_or_default();
        let count = list.len();
        for item in list {
            items.push(serde_json::from_value(item).map_err(|e| AtlassianError::Decode(format!("{path}: {e}")))?);
        }
        let total = page.get("total").and_then(Value::as_u64).map(|t| t as usize);
        let is_last = page.get("isLast").and_then(Value::as_bool);
        if count == 0
            || is_last == Some(true)
            || total.is_some_and(|t| items.len() >= t)
            || (is_last.is_none() && total.is_none() && count < page_size)
        {
            return Ok(items);
        }
    }
}

pub async fn create_meta_issue_types(
    session: &Session,
    project: &str,
) -> Result<Vec<CreateMetaIssueType>, AtlassianError> {
    let path = session.jira_path(&format!("issue/createmeta/{}/issuetypes", encode(project)));
    all_pages(session, &path, "issueTypes", 200).await
}

pub async fn create_meta_fields(
    session: &Session,
    project: &str,
    issue_type_id: &str,
) -> Result<Vec<CreateMetaField>, AtlassianError> {
    let path = session.jira_path(&format!("issue/createmeta/{}/issuetypes/{}", encode(project), encode(issue_type_id)));
    all_pages(session, &path, "fields", 200).await
}

/// The project as Jira describes it (`GET project/{key}`); 404 when it does not exist or is hidden.
pub async fn project(session: &Session, key: &str) -> Result<Value, AtlassianError> {
    session.get_json(&session.jira_path(&format!("project/{}", encode(key)))).await
}

/// Percent-encodes one path segment.
pub fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}
