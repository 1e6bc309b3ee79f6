//! Issues: bulk create (`POST issue/bulk`, at most 50 per call), delete (`DELETE issue/{key}`),
//! the edits forward: read some fields, the edit screen (`editmeta`), and `PUT issue/{key}`;
//! and remote links (`POST issue/{key}/remotelink`).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::{AtlassianError, Class, ErrorPayload, Payload, Session, answer, encode, loose};
use crate::ids::{IssueId, IssueKey};

/// An issue as a create or search answer names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IssueRef {
    #[serde(default, deserialize_with = "loose::text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "loose::text")]
    pub key: Option<String>,
}

impl IssueRef {
    /// Its id and key, when the answer has both.
    pub fn ids(&self) -> Option<(IssueId, IssueKey)> {
        Some((IssueId::new(self.id.clone()?), IssueKey::new(self.key.clone()?)))
    }
}

/// `issue/bulk`'s answer (201), or the body of its 400: the created issues, in the order of the
/// elements that succeeded, and the errors, numbered by element where Jira names one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkAnswer {
    #[serde(default, deserialize_with = "loose::list")]
    pub issues: Option<Vec<IssueRef>>,
    #[serde(default, deserialize_with = "loose::list")]
    pub errors: Option<Vec<BulkError>>,
    /// Only in a 400's body: messages for the request as a whole.
    #[serde(default, deserialize_with = "loose::list")]
    pub error_messages: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkError {
    #[serde(default, deserialize_with = "loose::count")]
    pub status: Option<u64>,
    #[serde(default, deserialize_with = "loose::count")]
    pub failed_element_number: Option<u64>,
    /// Jira's error body for the element (`errorMessages`, `errors`), summarized by
    /// [`ErrorPayload::summary`].
    #[serde(default)]
    pub element_errors: Option<Value>,
}

/// What a bulk create came to: Jira took the request (some elements may have failed), or
/// refused all of it with per-element or whole-request errors.
#[derive(Debug, Clone)]
pub enum BulkCreated {
    Answered(BulkAnswer),
    Refused(BulkAnswer),
}

/// `POST issue/bulk` with each element's `fields`. Jira answers 201 when any element succeeded
/// and 400 when all failed, both with `errors[].failedElementNumber`.
pub async fn bulk_create(session: &Session, fields: &[Value]) -> Result<BulkCreated, AtlassianError> {
    let body = json!({"issueUpdates": fields.iter().map(|f| json!({"fields": f})).collect::<Vec<_>>()});
    match session.send(Method::POST, &session.jira_path("issue/bulk"), Payload::Json(&body)).await {
        Ok(response) => Ok(BulkCreated::Answered(answer(response, "bulk create answer: ").await?)),
        // A 400 created nothing. Its `errors[]` name the failed elements; an error without
        // `failedElementNumber` refused the request as a whole. Any other 400 body refused it as a
        // whole too, and keeps Jira's message through the error.
        Err(AtlassianError::Api { class: Class::BadRequest, payload: ErrorPayload::Json(v), .. })
            if v.get("errors").and_then(Value::as_array).is_some_and(|errors| !errors.is_empty()) =>
        {
            serde_json::from_value(v)
                .map(BulkCreated::Refused)
                .map_err(|e| AtlassianError::Decode(format!("bulk create answer: {e}")))
        }
        Err(e) => Err(e),
    }
}

/// `DELETE issue/{key}`; Jira refuses (400) an issue with subtasks unless `delete_subtasks`.
pub async fn delete(session: &Session, key: &IssueKey, delete_subtasks: bool) -> Result<(), AtlassianError> {
    let path = session.jira_path(&format!("issue/{}?deleteSubtasks={delete_subtasks}", encode(key.as_str())));
    session.send(Method::DELETE, &path, Payload::None).await?;
    Ok(())
}

/// `GET issue/{key}?fields=…`: the issue's `fields` object with only `fields` (comma-separated).
/// Jira answers 404 for an issue that is gone and for one the user may no longer browse.
pub async fn fields_of(session: &Session, key: &IssueKey, fields: &str) -> Result<Value, AtlassianError> {
    #[derive(Deserialize)]
    struct Issue {
        #[serde(default)]
        fields: Value,
    }
    let path = session.jira_path(&format!("issue/{}?fields={}", encode(key.as_str()), encode(fields)));
    Ok(session.get_json::<Issue>(&path).await?.fields)
}

/// `GET issue/{key}/editmeta`: the ids of the fields on the issue's edit screen that the
/// connected user may edit ("Fields not in the screen will not be in the editmeta", Jira's
/// REST reference; a user without Edit Issues gets none).
pub async fn editable_fields(session: &Session, key: &IssueKey) -> Result<Vec<String>, AtlassianError> {
    #[derive(Deserialize)]
    struct EditMeta {
        #[serde(default)]
        fields: serde_json::Map<String, Value>,
    }
    let path = session.jira_path(&format!("issue/{}/editmeta", encode(key.as_str())));
    Ok(session.get_json::<EditMeta>(&path).await?.fields.into_iter().map(|(id, _)| id).collect())
}

/// `PUT issue/{key}` with `{"fields": fields}`: sets exactly those fields (Jira answers 204).
/// No `notifyUsers=false`: turning watchers' mail off needs project admin, and an edit from the
/// retro tool is news to the watchers like any other.
pub async fn edit(session: &Session, key: &IssueKey, fields: &Value) -> Result<(), AtlassianError> {
    let path = session.jira_path(&format!("issue/{}", encode(key.as_str())));
    session.send(Method::PUT, &path, Payload::Json(&json!({ "fields": fields }))).await?;
    Ok(())
}

/// Whether the issue `id` exists and the connected user can see it: `GET issue/{id}` (only its
/// key). A search runs on an index that lags behind writes; this read does not, so the issue
/// sync confirms here that an issue missing from a search is really gone. Jira answers 404 both
/// for a deleted issue and for one the user may no longer browse.
pub async fn exists(session: &Session, id: &IssueId) -> Result<bool, AtlassianError> {
    let path = session.jira_path(&format!("issue/{}?fields=key", encode(id.as_str())));
    match session.get_json::<IssueRef>(&path).await {
        Ok(_) => Ok(true),
        Err(e) if e.class() == Some(Class::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A remote issue link: what an issue shows under "Links" for a page outside Jira.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLink<'a> {
    /// The link's identity in Jira: a second POST with the same one updates the link instead of
    /// adding another (at most 255 characters).
    pub global_id: &'a str,
    pub url: &'a str,
    pub title: &'a str,
    /// The application the page is in, e.g. `com.atlassian.confluence` / `Confluence`.
    pub application_type: &'a str,
    pub application_name: &'a str,
    /// How the issue relates to the page, e.g. `Wiki Page`.
    pub relationship: &'a str,
}

/// `POST issue/{key}/remotelink` (Cloud v3, Server/DC v2; scope `write:jira-work`): creates the
/// link, or updates the issue's link with the same `globalId` — "If a globalId is provided and a
/// remote issue link with that global ID is found it is updated. Any fields without values in
/// the request are set to null. Otherwise, the remote issue link is created."
/// (developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-remote-links/, and the
/// DC reference's createOrUpdateRemoteIssueLink), so sending it again never adds a second link.
/// Jira answers 403 without Link Issues and 404 for an issue gone or not browsable.
pub async fn put_remote_link(session: &Session, key: &IssueKey, link: &RemoteLink<'_>) -> Result<(), AtlassianError> {
    let body = json!({
        "globalId": link.global_id,
        "application": {"type": link.application_type, "name": link.application_name},
        "relationship": link.relationship,
        "object": {"url": link.url, "title": link.title},
    });
    let path = session.jira_path(&format!("issue/{}/remotelink", encode(key.as_str())));
    session.send(Method::POST, &path, Payload::Json(&body)).await?;
    Ok(())
}
