//! Action items → Jira issues: validated, checked against the project's create screen, assigned by
//! exact email, created in bulk (chunks of 50), recorded per item so a redelivered or concurrent
//! event never creates a second issue.
//!
//! Crash safety between Jira's commit and our record: before an item is sent, the ledger records
//! the intent (state `pending`), and the issue carries a marker label derived from tenant and
//! action item id. A later attempt that finds the item still `pending` first searches Jira for
//! the marker (JQL works the same on Cloud and Server/DC) and records what it finds instead of
//! creating again. Labels are the one creation-time attribute both deployments index for search
//! without an app descriptor; issue properties are not searchable for OAuth or token clients.

mod job;
pub mod markup;

pub use job::IssueJob;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::atlassian::jira::{CreateMetaField, FIELDS_WE_ALWAYS_SET, encode};
use crate::atlassian::{AtlassianError, Class, ErrorPayload, Flavour, Payload, Session};
use crate::error::{ApiError, ErrorCode};
use crate::markers::Markers;
use crate::settings::JiraSettings;
use markup::BackLink;

/// Limits that keep one job inside a Lambda invocation and Jira's field limits.
pub const MAX_ITEMS: usize = 500;
const MAX_DESCRIPTION: usize = 30_000;
/// Jira's bulk create takes at most 50 issues per call.
pub(crate) const BULK_CHUNK: usize = 50;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItem {
    /// Stable id in the SaaS; the idempotency key per issue.
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Assigned when exactly one assignable user has this email (with `assignee_matching: email`).
    #[serde(default)]
    pub assignee_email: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub due_date: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    /// A priority name, e.g. `High`.
    #[serde(default)]
    pub priority: Option<String>,
    /// Component names.
    #[serde(default)]
    pub components: Vec<String>,
}

/// Where the action items came from, linked from every issue's description.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrospectiveRef {
    pub title: String,
    pub url: String,
}

/// `POST /v1/tenants/{tenant}/issues`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuesRequest {
    /// Overrides the settings' project.
    #[serde(default)]
    pub project_key: Option<String>,
    /// Overrides the settings' issue type.
    #[serde(default)]
    pub issue_type_id: Option<String>,
    #[serde(default)]
    pub retrospective: Option<RetrospectiveRef>,
    pub action_items: Vec<ActionItem>,
}

/// The `Action Items Ready` event's detail. It repeats [`IssuesRequest`]'s fields rather than
/// flattening it, because serde cannot refuse unknown fields through `flatten`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItemsReady {
    pub tenant_id: String,
    pub idempotency_key: String,
    #[serde(default)]
    pub project_key: Option<String>,
    #[serde(default)]
    pub issue_type_id: Option<String>,
    #[serde(default)]
    pub retrospective: Option<RetrospectiveRef>,
    pub action_items: Vec<ActionItem>,
}

impl ActionItemsReady {
    pub fn request(self) -> IssuesRequest {
        IssuesRequest {
            project_key: self.project_key,
            issue_type_id: self.issue_type_id,
            retrospective: self.retrospective,
            action_items: self.action_items,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Created by this request.
    Created,
    /// Created earlier for the same action item; nothing new was created.
    Existing,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemResult {
    pub action_item_id: String,
    pub status: ItemStatus,
    pub key: Option<String>,
    pub url: Option<String>,
    /// Why the item failed, or a note (e.g. why it was left unassigned).
    pub message: Option<String>,
    /// For failures: whether trying again may succeed.
    pub retryable: bool,
}

/// `Issues Created` (and the HTTP answer): one result per action item, in request order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuesCreated {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub results: Vec<ItemResult>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidActionItems, message)
}

impl IssuesRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.action_items.is_empty() || self.action_items.len() > MAX_ITEMS {
            return Err(invalid(format!("action_items must hold 1 to {MAX_ITEMS} items")));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, item) in self.action_items.iter().enumerate() {
            let at = |what: &str| invalid(format!("action_items[{i}]: {what}"));
            let id_ok = (1..=128).contains(&item.id.len())
                && item.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
            if !id_ok {
                return Err(at("id must be 1 to 128 characters of letters, digits, '-', '_', '.' or ':'"));
            }
            if !seen.insert(item.id.as_str()) {
                return Err(at("id repeats an earlier item's id"));
            }
            if item.title.trim().is_empty() || item.title.chars().count() > 2000 {
                return Err(at("title must be 1 to 2000 characters"));
            }
            if item.description.as_deref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
                return Err(at(&format!("description must be at most {MAX_DESCRIPTION} characters")));
            }
            if let Some(date) = &item.due_date {
                let format = time::macros::format_description!("[year]-[month]-[day]");
                if time::Date::parse(date, &format).is_err() {
                    return Err(at("due_date must be a date like 2026-12-31"));
                }
            }
            for label in &item.labels {
                if label.is_empty() || label.chars().count() > 255 || label.chars().any(char::is_whitespace) {
                    return Err(at(&format!("label {label:?} must be 1 to 255 characters without spaces")));
                }
            }
            if item.assignee_email.as_deref().is_some_and(|e| !e.contains('@')) {
                return Err(at("assignee_email is not an email address"));
            }
        }
        if let Some(retro) = &self.retrospective {
            if !(retro.url.starts_with("https://") || retro.url.starts_with("http://")) {
                return Err(invalid("retrospective.url must be an http(s) URL"));
            }
        }
        Ok(())
    }
}

/// One item, ready to send: its fields, or why it cannot be sent.
pub struct Prepared {
    pub fields: Value,
    pub note: Option<String>,
}

/// The job's fixed context: the resolved settings and the create screen's fields.
pub struct CreateContext<'a> {
    pub session: &'a Session,
    pub tenant: &'a str,
    pub settings: &'a JiraSettings,
    pub fields: &'a [CreateMetaField],
    pub retrospective: Option<&'a RetrospectiveRef>,
    pub markers: &'a Markers,
}

impl CreateContext<'_> {
    fn field(&self, id: &str) -> Option<&CreateMetaField> {
        self.fields.iter().find(|f| f.field_id == id)
    }

    /// Builds one item's fields, checking them against the create screen first so that a
    /// missing required field is reported for that item, not as one opaque 400.
    pub fn prepare(
        &self,
        item: &ActionItem,
        assignee: Option<&str>,
        mut note: Option<String>,
    ) -> Result<Prepared, String> {
        let link = self.retrospective.map(|r| BackLink { title: &r.title, url: &r.url });
        let description = match self.session.flavour() {
            Flavour::Cloud => markup::adf(item.description.as_deref(), link.as_ref()),
            Flavour::DataCenter => Value::String(markup::wiki(item.description.as_deref(), link.as_ref())),
        };
        let mut fields: BTreeMap<String, Value> = self.settings.field_defaults.clone().into_iter().collect();
        fields.insert("project".into(), json!({"key": self.settings.project_key}));
        fields.insert("issuetype".into(), json!({"id": self.settings.issue_type_id}));
        fields.insert("summary".into(), Value::String(markup::summary(&item.title)));
        let mut optional = |id: &str, value: Value, fields: &mut BTreeMap<String, Value>| {
            if self.field(id).is_some() {
                fields.insert(id.to_owned(), value);
            } else {
                let skipped = format!("{id} is not on the create screen and was left out");
                note = Some(note.take().map_or(skipped.clone(), |n| format!("{n}; {skipped}")));
            }
        };
        let has_description = item.description.is_some() || link.is_some();
        if has_description {
            optional("description", description, &mut fields);
        }
        if let Some(due) = &item.due_date {
            optional("duedate", Value::String(due.clone()), &mut fields);
        }
        let mut labels: Vec<String> = self.settings.labels.clone();
        labels.extend(item.labels.iter().cloned());
        labels.push(self.markers.issue(self.tenant, &item.id));
        labels.push(self.markers.tenant_label(self.tenant));
        labels.dedup();
        // The marker label must be set, or a retry could not find the issue: no labels field, no create.
        if self.field("labels").is_none() {
            return Err(
                "the create screen has no labels field, which this integration needs to create issues exactly once"
                    .into(),
            );
        }
        fields.insert("labels".into(), json!(labels));
        if let Some(name) = &item.priority {
            let id = self
                .allowed_id("priority", name)
                .ok_or_else(|| format!("priority {name:?} is not one of the issue type's priorities"))?;
            fields.insert("priority".into(), json!({"id": id}));
        }
        if !item.components.is_empty() {
            let ids = item
                .components
                .iter()
                .map(|name| {
                    self.allowed_id("components", name)
                        .ok_or_else(|| format!("component {name:?} does not exist in the project"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            fields.insert("components".into(), Value::Array(ids.into_iter().map(|id| json!({"id": id})).collect()));
        }
        if let Some(assignee) = assignee {
            let value = match self.session.flavour() {
                Flavour::Cloud => json!({"accountId": assignee}),
                Flavour::DataCenter => json!({"name": assignee}),
            };
            fields.insert("assignee".into(), value);
        }
        let missing: Vec<String> = self
            .fields
            .iter()
            .filter(|f| f.required && !f.has_default_value && !FIELDS_WE_ALWAYS_SET.contains(&f.field_id.as_str()))
            .filter(|f| !fields.contains_key(&f.field_id))
            .map(|f| format!("{} ({})", f.name, f.field_id))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "required fields have no value: {}; set them in the Jira settings' field_defaults",
                missing.join(", ")
            ));
        }
        Ok(Prepared { fields: Value::Object(fields.into_iter().collect()), note })
    }

    fn allowed_id(&self, field: &str, name: &str) -> Option<String> {
        self.field(field)?.allowed_values.as_ref()?.iter().find_map(|v| {
            let matches = v.get("name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(name));
            matches.then(|| v.get("id").and_then(Value::as_str).map(str::to_owned)).flatten()
        })
    }
}

/// Assignee ids by email, looked up once per invocation. Exact email only; hidden or ambiguous
/// emails leave the issue unassigned, with a note saying why.
#[derive(Default)]
pub struct AssigneeCache(HashMap<String, Result<String, String>>);

impl AssigneeCache {
    pub async fn lookup(&mut self, session: &Session, project: &str, email: &str) -> Result<String, String> {
        let email = email.trim().to_lowercase();
        if let Some(found) = self.0.get(&email) {
            return found.clone();
        }
        let path = match session.flavour() {
            Flavour::Cloud => session.jira_path(&format!(
                "user/assignable/search?query={}&project={}&maxResults=50",
                encode(&email),
                encode(project)
            )),
            Flavour::DataCenter => session.jira_path(&format!(
                "user/assignable/search?username={}&project={}&maxResults=50",
                encode(&email),
                encode(project)
            )),
        };
        let id_key = if session.flavour() == Flavour::Cloud { "accountId" } else { "name" };
        let found = match session.get_json::<Vec<Value>>(&path).await {
            Ok(users) => {
                let exact: Vec<&Value> = users
                    .iter()
                    .filter(|u| {
                        u.get("emailAddress").and_then(Value::as_str).is_some_and(|e| e.eq_ignore_ascii_case(&email))
                    })
                    .collect();
                match exact.as_slice() {
                    [one] => one
                        .get(id_key)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| "user without id".to_owned()),
                    [] => Err(format!("no assignable user has the email {email} visible; left unassigned")),
                    _ => Err(format!("several assignable users have the email {email}; left unassigned")),
                }
            }
            Err(e) => Err(format!("assignee lookup failed ({e}); left unassigned")),
        };
        self.0.insert(email, found.clone());
        found
    }
}

/// A created issue as Jira reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedIssue {
    pub id: String,
    pub key: String,
}

/// One element's outcome in a bulk create.
#[derive(Debug, Clone)]
pub enum BulkOutcome {
    Created(CreatedIssue),
    Failed {
        message: String,
        retryable: bool,
    },
    /// Jira's answer does not say what became of this element: it may exist, so it stays
    /// pending and the next attempt looks for its marker before creating anything.
    Unknown,
}

/// `POST issue/bulk` for up to 50 prepared items; outcomes in the same order. Jira answers 201
/// when any element succeeded and 400 when all failed, both with `errors[].failedElementNumber`;
/// `issues` lists the created ones in the order of the elements that succeeded.
pub async fn bulk_create(session: &Session, fields: &[Value]) -> Result<Vec<BulkOutcome>, AtlassianError> {
    let body = json!({"issueUpdates": fields.iter().map(|f| json!({"fields": f})).collect::<Vec<_>>()});
    let answer: Value =
        match session.send(reqwest::Method::POST, &session.jira_path("issue/bulk"), Payload::Json(&body)).await {
            Ok(response) => response
                .json()
                .await
                .map_err(|e| AtlassianError::Decode(format!("bulk create answer: {}", e.without_url())))?,
            // Per-element failures (all elements failed): `errors[]` with `failedElementNumber`.
            // Any other 400 refused the request as a whole and keeps Jira's message.
            Err(AtlassianError::Api { class: Class::BadRequest, payload: ErrorPayload::Json(v), .. })
                if v.get("errors").and_then(Value::as_array).is_some_and(|errors| !errors.is_empty()) =>
            {
                v
            }
            Err(e) => return Err(e),
        };
    Ok(map_bulk_answer(fields.len(), &answer))
}

pub fn map_bulk_answer(sent: usize, answer: &Value) -> Vec<BulkOutcome> {
    let mut failures: HashMap<usize, BulkOutcome> = HashMap::new();
    for error in answer.get("errors").and_then(Value::as_array).into_iter().flatten() {
        let Some(index) = error.get("failedElementNumber").and_then(Value::as_u64) else { continue };
        let status = error.get("status").and_then(Value::as_u64).unwrap_or(400);
        let message = error.get("elementErrors").map(|e| ErrorPayload::Json(e.clone()).summary()).unwrap_or_default();
        failures.insert(
            index as usize,
            BulkOutcome::Failed {
                message: if message.is_empty() { format!("Jira refused the issue ({status})") } else { message },
                retryable: status == 429 || status >= 500,
            },
        );
    }
    let mut created = answer.get("issues").and_then(Value::as_array).into_iter().flatten().filter_map(|i| {
        Some(CreatedIssue { id: i.get("id")?.as_str()?.to_owned(), key: i.get("key")?.as_str()?.to_owned() })
    });
    (0..sent)
        .map(|i| match failures.remove(&i) {
            Some(failure) => failure,
            None => created.next().map(BulkOutcome::Created).unwrap_or(BulkOutcome::Unknown),
        })
        .collect()
}

/// Finds the issue carrying one of an item's marker labels (after a crash between create and
/// record), in the project it was created in only: an issue elsewhere is not ours to take.
pub async fn find_by_marker(
    session: &Session,
    project_key: &str,
    markers: &[String],
) -> Result<Option<CreatedIssue>, AtlassianError> {
    let labels: Vec<String> = markers.iter().map(|m| format!("\"{m}\"")).collect();
    let jql = encode(&format!("project = \"{project_key}\" AND labels in ({})", labels.join(", ")));
    let path = match session.flavour() {
        Flavour::Cloud => session.jira_path(&format!("search/jql?jql={jql}&fields=key&maxResults=2")),
        Flavour::DataCenter => session.jira_path(&format!("search?jql={jql}&fields=key&maxResults=2")),
    };
    let answer: Value = session.get_json(&path).await?;
    Ok(answer.get("issues").and_then(Value::as_array).and_then(|issues| issues.first()).and_then(|i| {
        Some(CreatedIssue { id: i.get("id")?.as_str()?.to_owned(), key: i.get("key")?.as_str()?.to_owned() })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_answers_map_back_to_their_elements() {
        let answer = json!({
            "issues": [{"id": "1", "key": "P-1"}, {"id": "3", "key": "P-3"}],
            "errors": [{"status": 400, "failedElementNumber": 1, "elementErrors": {"errors": {"summary": "too long"}}},
                       {"status": 503, "failedElementNumber": 3, "elementErrors": {"errorMessages": ["busy"]}}]
        });
        let outcomes = map_bulk_answer(5, &answer);
        assert!(matches!(&outcomes[0], BulkOutcome::Created(i) if i.key == "P-1"));
        assert!(
            matches!(&outcomes[1], BulkOutcome::Failed { retryable: false, message } if message.contains("summary"))
        );
        assert!(matches!(&outcomes[2], BulkOutcome::Created(i) if i.key == "P-3"));
        assert!(matches!(&outcomes[3], BulkOutcome::Failed { retryable: true, .. }));
        // Neither created nor failed in the answer: it may exist, so it is looked up, not retried blind.
        assert!(matches!(&outcomes[4], BulkOutcome::Unknown));
    }

    #[test]
    fn requests_are_validated_per_item() {
        let request = |items: Value| serde_json::from_value::<IssuesRequest>(json!({"action_items": items})).unwrap();
        assert!(request(json!([{"id": "a", "title": "t"}])).validate().is_ok());
        for bad in [
            json!([]),
            json!([{"id": "a", "title": " "}]),
            json!([{"id": "a b", "title": "t"}]),
            json!([{"id": "a", "title": "t"}, {"id": "a", "title": "u"}]),
            json!([{"id": "a", "title": "t", "due_date": "31/12/2026"}]),
            json!([{"id": "a", "title": "t", "labels": ["two words"]}]),
        ] {
            assert_eq!(request(bad.clone()).validate().unwrap_err().code, "invalid_action_items", "{bad}");
        }
    }
}
