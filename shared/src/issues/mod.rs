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

pub mod edit;
mod job;
pub mod lookups;
pub mod markup;
pub mod read;
pub mod state;

pub use job::{BULK_IN_FLIGHT, IssueJob, LEDGER_IN_FLIGHT};
pub use lookups::{Lookups, create_screen};

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::atlassian::jira::issues::{BulkAnswer, BulkCreated, BulkError};
use crate::atlassian::jira::users::UserQuery;
use crate::atlassian::jira::{self, CreateMetaField, FIELDS_WE_ALWAYS_SET};
use crate::atlassian::{AtlassianError, ErrorPayload, Flavour, Session};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{AccountId, ProjectKey, ReportId};
use crate::markers::Markers;
use crate::settings::JiraSettings;
use markup::BackLink;

/// Limits that keep one job inside a Lambda invocation and Jira's field limits.
pub const MAX_ITEMS: usize = 500;
const MAX_DESCRIPTION: usize = 30_000;
/// Jira's bulk create takes at most 50 issues per call.
pub const BULK_CHUNK: usize = 50;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItem {
    /// Stable id in the SaaS; the idempotency key per issue.
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Assigned when one assignable user matches this email (with `assignee_matching: email`):
    /// exactly, where Jira shows the user's email; where it hides it, only when a search for the
    /// full address finds exactly one active user. Otherwise unassigned, with a note. At most one
    /// of `assignee_email`, `assignee_account_id` and `assignee_username`.
    #[serde(default)]
    pub assignee_email: Option<String>,
    /// Jira Cloud only: the assignee's Atlassian account id, for callers that already store it
    /// (no email matching needed, whatever `assignee_matching` says). One the project cannot
    /// assign leaves the issue unassigned, with a note.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9:_-]{1,128}$")]
    pub assignee_account_id: Option<String>,
    /// Jira Server/Data Center only: the assignee's user name (`name`), as for
    /// `assignee_account_id`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub assignee_username: Option<String>,
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
    /// The report (page) this action item came from, if any: recorded with its issue, echoed in
    /// its result, and a filter of `GET /v1/tenants/{tenant}/action-items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_id: Option<ReportId>,
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

/// `Action Items Deferred`: one part of an issue job that `POST /v1/tenants/{tenant}/issues`
/// answered with `202`. The bridge sends it to itself (its rule matches only the bridge's own
/// source); the part's results go into the job (`GET /v1/tenants/{tenant}/jobs/{job}`) and an
/// `Issues Created` event.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItemsDeferred {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub job_id: String,
    /// 1, 2, …: part 0 is what the HTTP request did itself.
    pub part: u32,
    #[serde(default)]
    pub project_key: Option<String>,
    #[serde(default)]
    pub issue_type_id: Option<String>,
    #[serde(default)]
    pub retrospective: Option<RetrospectiveRef>,
    pub action_items: Vec<ActionItem>,
}

impl ActionItemsDeferred {
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
pub enum JobStatus {
    /// Parts of the job are still being worked on.
    Running,
    /// Every part has its results.
    Done,
    /// A part gave up for good: its event failed on every delivery and is in the dead-letter
    /// queue (`reason` says so; its items are `failed`, or `existing` where another delivery
    /// created them). A redrive of the event may still create them; the job keeps saying this.
    Failed,
}

/// An issue job answered with `202` (and `GET /v1/tenants/{tenant}/jobs/{job}`): the results of
/// the parts finished so far, in request order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuesJob {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub job_id: String,
    pub status: JobStatus,
    /// Parts whose results are not in yet.
    pub pending_parts: u32,
    /// One result per action item of the finished parts, in request order.
    pub results: Vec<ItemResult>,
    /// Why the job is `failed`, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
    /// The item's `report_id`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_id: Option<ReportId>,
}

/// `Issues Created` (and the HTTP answer): one result per action item, in request order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuesCreated {
    pub tenant_id: String,
    pub idempotency_key: String,
    /// For a part of a job answered with `202`: the job it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
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
            validate_assignee(item).map_err(at)?;
        }
        if let Some(retro) = &self.retrospective {
            if !(retro.url.starts_with("https://") || retro.url.starts_with("http://")) {
                return Err(invalid("retrospective.url must be an http(s) URL"));
            }
        }
        Ok(())
    }
}

fn validate_assignee(item: &ActionItem) -> Result<(), &'static str> {
    let given = [item.assignee_email.is_some(), item.assignee_account_id.is_some(), item.assignee_username.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err("give at most one of assignee_email, assignee_account_id and assignee_username");
    }
    if item.assignee_email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err("assignee_email is not an email address");
    }
    let account_id_ok = |id: &str| {
        (1..=128).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
    };
    if item.assignee_account_id.as_deref().is_some_and(|id| !account_id_ok(id)) {
        return Err("assignee_account_id must be 1 to 128 letters, digits, ':', '_' or '-'");
    }
    // Jira DC user names may hold most characters, but not surrounding spaces or control characters.
    let username_ok =
        |n: &str| (1..=255).contains(&n.chars().count()) && n.trim() == n && !n.chars().any(char::is_control);
    if item.assignee_username.as_deref().is_some_and(|n| !username_ok(n)) {
        return Err("assignee_username must be 1 to 255 characters without surrounding spaces");
    }
    Ok(())
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

/// Who an action item asks to be assigned: the assignee's id (Cloud `accountId`, DC `name`), or
/// why it is left unassigned. Never an email address in the note: callers log and show it.
pub type Assignee = Result<String, String>;

/// Assignees looked up once per invocation, by email or by the id the caller passed.
///
/// The email rule (README, "Assignees"): where Jira shows a user's email (Cloud profile
/// visibility, DC `jira.option.emailvisible` = show or mask) the match is exact. Where it hides
/// it — Cloud hidden emails, which a query for the complete address still finds
/// (https://developer.atlassian.com/cloud/jira/platform/profile-visibility/), and DC with emails
/// hidden — the user is accepted only when that query returns exactly one active user whose
/// display name is not the query itself: Atlassian documents that `displayName` "may return an
/// alternative value" under privacy settings, and an answer that merely repeats the address proves
/// nothing about who it is.
pub struct Assignees;

/// At most this many assignee lookups of one job are in flight at once: enough to hide the
/// network's latency (100 distinct emails cost ~13 round trips instead of 100), few enough that
/// one tenant's job stays far below Jira Cloud's documented per-user burst rates.
pub const LOOKUPS_IN_FLIGHT: usize = 8;

/// What one item asks of the lookup: nothing, an answer known without asking Jira, or a lookup
/// under a key that items asking for the same person share.
enum Wanted<'i> {
    Nobody,
    Known(Assignee),
    Look { key: String, how: How<'i> },
}

enum How<'i> {
    Id { id: &'i str, field: &'static str },
    Email(String),
}

impl Assignees {
    /// The assignee of each of `items` (same order), or why there is none; `None` for an item
    /// that asks for none. Each distinct person is looked up once, [`LOOKUPS_IN_FLIGHT`] at a time,
    /// unless an earlier job of the tenant on this site remembered Jira's answer in `lookups`
    /// (see [`lookups`]); the answers looked up now are remembered for the next job.
    pub async fn resolve_all(
        session: &Session,
        project: &str,
        items: &[&ActionItem],
        match_emails: bool,
        lookups: &Lookups<'_>,
    ) -> Vec<Option<Assignee>> {
        let wanted: Vec<Wanted<'_>> =
            items.iter().map(|item| Self::wanted(session.flavour(), item, match_emails)).collect();
        let mut distinct: HashMap<&str, &How<'_>> = HashMap::new();
        for w in &wanted {
            if let Wanted::Look { key, how } = w {
                distinct.entry(key.as_str()).or_insert(how);
            }
        }
        let keys: Vec<&str> = distinct.keys().copied().collect();
        let mut found: HashMap<&str, Assignee> = lookups.recall_assignees(session, project, &keys).await;
        let asks: Vec<_> = distinct
            .into_iter()
            .filter(|(key, _)| !found.contains_key(key))
            .map(|(key, how)| async move {
                let looked = match how {
                    How::Id { id, field } => by_id(session, project, id, field).await,
                    How::Email(email) => by_email(session, project, email).await,
                };
                (key, looked)
            })
            .collect();
        let asked = asks.len();
        let looked: Vec<(&str, lookups::Looked)> = crate::jobs::bounded(asks, LOOKUPS_IN_FLIGHT).await;
        tracing::info!(remembered = found.len(), asked, "assignee lookups");
        lookups.remember_assignees(session, project, &looked).await;
        found.extend(looked.into_iter().map(|(key, looked)| (key, looked.and_then(|answer| answer))));
        wanted
            .iter()
            .map(|w| match w {
                Wanted::Nobody => None,
                Wanted::Known(answer) => Some(answer.clone()),
                Wanted::Look { key, .. } => found.get(key.as_str()).cloned(),
            })
            .collect()
    }

    fn wanted(flavour: Flavour, item: &ActionItem, match_emails: bool) -> Wanted<'_> {
        if let Some(id) = &item.assignee_account_id {
            if flavour != Flavour::Cloud {
                return Wanted::Known(Err("assignee_account_id is for Jira Cloud and this connection is Jira Server/Data Center; left unassigned".into()));
            }
            return Wanted::Look { key: format!("id\0{id}"), how: How::Id { id, field: "assignee_account_id" } };
        }
        if let Some(name) = &item.assignee_username {
            if flavour != Flavour::DataCenter {
                return Wanted::Known(Err("assignee_username is for Jira Server/Data Center and this connection is Jira Cloud; left unassigned".into()));
            }
            return Wanted::Look {
                key: format!("name\0{}", name.to_lowercase()),
                how: How::Id { id: name, field: "assignee_username" },
            };
        }
        match item.assignee_email.as_deref().filter(|_| match_emails) {
            None => Wanted::Nobody,
            Some(email) => {
                let email = email.trim().to_lowercase();
                Wanted::Look { key: format!("email\0{email}"), how: How::Email(email) }
            }
        }
    }
}

/// The users assignable in the project whom `query` finds (at most 100: DC 10.3's cap); `Err`
/// with the note for the item when the request failed.
async fn assignable(session: &Session, project: &str, query: UserQuery<'_>) -> Result<Vec<jira::User>, String> {
    jira::users::assignable(session, &ProjectKey::new(project), query, None, 100)
        .await
        .map_err(|e| format!("assignee lookup failed ({e}); left unassigned"))
}

fn id_of(user: &jira::User) -> Option<String> {
    user.id.as_ref().map(|id| id.as_str().to_owned())
}

fn active(user: &jira::User) -> bool {
    user.active.unwrap_or(true)
}

/// The id the caller passed, confirmed assignable in the project (else Jira would refuse the whole
/// element with `errors.assignee`, and the issue would not be created at all).
async fn by_id(session: &Session, project: &str, id: &str, field: &str) -> lookups::Looked {
    let same: fn(&str, &str) -> bool = match session.flavour() {
        Flavour::Cloud => |a, b| a == b,
        // DC user names are case-insensitive; `username` is a prefix search.
        Flavour::DataCenter => |a, b| a.eq_ignore_ascii_case(b),
    };
    let users = assignable(session, project, UserQuery::Id(&AccountId::new(id))).await?;
    Ok(users
        .iter()
        .filter(|u| active(u))
        .filter_map(id_of)
        .find(|found| same(found, id))
        .ok_or_else(|| format!("the user given by {field} cannot be assigned issues in this project; left unassigned")))
}

async fn by_email(session: &Session, project: &str, email: &str) -> lookups::Looked {
    let users = assignable(session, project, UserQuery::Text(email)).await?;
    Ok(match_email(&users, email).and_then(|user| id_of(user).ok_or_else(|| "user without id".to_owned())))
}

/// Jira DC's masked form (`jira.option.emailvisible` = mask): `ben dot abbott at corp dot test`.
fn masked(email: &str) -> String {
    email.replace('@', " at ").replace('.', " dot ")
}

fn shown(user: &jira::User) -> Option<&str> {
    user.email_address.as_deref().filter(|e| !e.trim().is_empty())
}

/// The one user `email` designates among a search's answer, by the rule on [`Assignees`].
pub fn match_email<'u>(users: &'u [jira::User], email: &str) -> Result<&'u jira::User, String> {
    let exact: Vec<&jira::User> = users
        .iter()
        .filter(|u| active(u))
        .filter(|u| shown(u).is_some_and(|e| e.eq_ignore_ascii_case(email) || e.eq_ignore_ascii_case(&masked(email))))
        .collect();
    match exact.as_slice() {
        [one] => return Ok(one),
        [_, _, ..] => return Err("several assignable users have this email; left unassigned".into()),
        [] => {}
    }
    let actives: Vec<&jira::User> = users.iter().filter(|u| active(u)).collect();
    match actives.as_slice() {
        [] => Err("no assignable user in the project has this email (Jira may hide it); left unassigned".into()),
        [one] if shown(one).is_some() => {
            Err("no assignable user in the project has this email; left unassigned".into())
        }
        [one] => {
            let name = one.display_name.as_deref().unwrap_or_default().trim();
            if name.is_empty() || name.eq_ignore_ascii_case(email) {
                Err("Jira hides this user's email and name, so the match cannot be confirmed; left unassigned".into())
            } else {
                Ok(one)
            }
        }
        _ => Err("Jira hides the email and several assignable users answer to it; left unassigned".into()),
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
    Ok(match jira::issues::bulk_create(session, fields).await? {
        BulkCreated::Answered(answer) => map_bulk_answer(fields.len(), &answer),
        BulkCreated::Refused(answer) => map_refused_bulk(fields.len(), &answer),
    })
}

/// The element an error names, if it names one within the request.
fn failed_element(error: &BulkError, sent: usize) -> Option<usize> {
    error.failed_element_number.map(|i| i as usize).filter(|i| *i < sent)
}

fn element_failure(error: &BulkError) -> BulkOutcome {
    let status = error.status.unwrap_or(400);
    let message = element_message(error);
    BulkOutcome::Failed {
        message: if message.is_empty() { format!("Jira refused the issue ({status})") } else { message },
        retryable: status == 429 || status >= 500,
    }
}

fn element_message(error: &BulkError) -> String {
    error.element_errors.as_ref().map(|e| ErrorPayload::Json(e.clone()).summary()).unwrap_or_default()
}

/// A 201's answer. `issues` is in the order of the elements that succeeded, so it can be matched
/// to elements only when every other element is a numbered failure; otherwise (an error without
/// `failedElementNumber`, an element the answer leaves out) no created issue can be pinned to an
/// element, and every element not reported failed stays unknown: the retry finds it by marker.
pub fn map_bulk_answer(sent: usize, answer: &BulkAnswer) -> Vec<BulkOutcome> {
    let errors: &[BulkError] = answer.errors.as_deref().unwrap_or_default();
    let mut failures: HashMap<usize, BulkOutcome> =
        errors.iter().filter_map(|e| Some((failed_element(e, sent)?, element_failure(e)))).collect();
    let created: Vec<CreatedIssue> = answer.issues.iter().flatten().filter_map(created_issue).collect();
    let unnumbered = errors.iter().any(|e| failed_element(e, sent).is_none());
    let accounted = !unnumbered && failures.len() + created.len() == sent;
    let mut created = created.into_iter();
    (0..sent)
        .map(|i| match failures.remove(&i) {
            Some(failure) => failure,
            None if accounted => created.next().map(BulkOutcome::Created).unwrap_or(BulkOutcome::Unknown),
            None => BulkOutcome::Unknown,
        })
        .collect()
}

fn created_issue(issue: &jira::issues::IssueRef) -> Option<CreatedIssue> {
    let (id, key) = issue.ids()?;
    Some(CreatedIssue { id: id.into_string(), key: key.into_string() })
}

/// A 400's answer: nothing was created. Numbered errors fail their element; the others refused
/// the request as a whole, and their message (Jira's) goes to every element not named. Neither
/// is retried: the same request would be refused again.
pub fn map_refused_bulk(sent: usize, answer: &BulkAnswer) -> Vec<BulkOutcome> {
    let errors: &[BulkError] = answer.errors.as_deref().unwrap_or_default();
    let mut failures: HashMap<usize, BulkOutcome> =
        errors.iter().filter_map(|e| Some((failed_element(e, sent)?, element_failure(e)))).collect();
    let mut whole: Vec<String> =
        answer.error_messages.iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    whole.extend(errors.iter().filter(|e| failed_element(e, sent).is_none()).map(element_message));
    whole.retain(|m| !m.is_empty());
    whole.dedup();
    let message = if whole.is_empty() {
        "Jira refused the bulk create request (400) without naming the element".to_owned()
    } else {
        format!("Jira refused the bulk create request: {}", whole.join("; "))
    };
    (0..sent)
        .map(|i| {
            failures.remove(&i).unwrap_or_else(|| BulkOutcome::Failed { message: message.clone(), retryable: false })
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
    let jql = format!("project = \"{project_key}\" AND labels in ({})", labels.join(", "));
    let found = jira::search::issue_keys(session, &jql, 2).await?;
    Ok(found.first().and_then(created_issue))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(answer: Value) -> BulkAnswer {
        serde_json::from_value(answer).unwrap()
    }

    #[test]
    fn bulk_answers_map_back_to_their_elements() {
        let answer = json!({
            "issues": [{"id": "1", "key": "P-1"}, {"id": "3", "key": "P-3"}],
            "errors": [{"status": 400, "failedElementNumber": 1, "elementErrors": {"errors": {"summary": "too long"}}},
                       {"status": 503, "failedElementNumber": 3, "elementErrors": {"errorMessages": ["busy"]}}]
        });
        let outcomes = map_bulk_answer(4, &bulk(answer));
        assert!(matches!(&outcomes[0], BulkOutcome::Created(i) if i.key == "P-1"));
        assert!(
            matches!(&outcomes[1], BulkOutcome::Failed { retryable: false, message } if message.contains("summary"))
        );
        assert!(matches!(&outcomes[2], BulkOutcome::Created(i) if i.key == "P-3"));
        assert!(matches!(&outcomes[3], BulkOutcome::Failed { retryable: true, .. }));
    }

    #[test]
    fn bulk_answers_that_do_not_add_up_pin_no_issue_to_an_element() {
        // Five sent, four accounted for: which element is missing is unknown, so every element
        // not reported failed may or may not be one of the issues, and is looked up by marker.
        let answer = json!({
            "issues": [{"id": "1", "key": "P-1"}, {"id": "3", "key": "P-3"}],
            "errors": [{"status": 400, "failedElementNumber": 1, "elementErrors": {"errors": {"summary": "too long"}}},
                       {"status": 503, "failedElementNumber": 3, "elementErrors": {"errorMessages": ["busy"]}}]
        });
        let outcomes = map_bulk_answer(5, &bulk(answer));
        assert!(matches!(&outcomes[1], BulkOutcome::Failed { retryable: false, .. }));
        assert!(matches!(&outcomes[3], BulkOutcome::Failed { retryable: true, .. }));
        for i in [0, 2, 4] {
            assert!(matches!(&outcomes[i], BulkOutcome::Unknown), "{i}");
        }
        // An error without failedElementNumber: the issues cannot be matched to elements either.
        let answer = json!({
            "issues": [{"id": "1", "key": "P-1"}, {"id": "2", "key": "P-2"}],
            "errors": [{"status": 400, "elementErrors": {"errors": {"summary": "refused"}}}]
        });
        assert!(map_bulk_answer(3, &bulk(answer)).iter().all(|o| matches!(o, BulkOutcome::Unknown)));
    }

    #[test]
    fn a_refused_bulk_request_keeps_jiras_message_and_is_not_retried() {
        let answer = json!({"errors": [{"status": 400, "elementErrors": {"errorMessages": ["Bulk is off"]}}]});
        let outcomes = map_refused_bulk(2, &bulk(answer));
        assert!(outcomes.iter().all(
            |o| matches!(o, BulkOutcome::Failed { retryable: false, message } if message.contains("Bulk is off"))
        ));
        let answer = json!({"errors": [{"status": 400, "failedElementNumber": 0,
                                        "elementErrors": {"errors": {"summary": "required"}}}]});
        let outcomes = map_refused_bulk(1, &bulk(answer));
        assert!(
            matches!(&outcomes[0], BulkOutcome::Failed { retryable: false, message } if message.contains("summary"))
        );
    }

    #[test]
    fn emails_match_exactly_where_shown_and_by_one_hidden_user_otherwise() {
        let user = |id: &str, email: Option<&str>, name: &str, active: bool| jira::User {
            id: Some(AccountId::new(id)),
            display_name: Some(name.to_owned()),
            email_address: email.map(str::to_owned),
            active: Some(active),
        };
        let id = |r: Result<&jira::User, String>| r.map(|u| id_of(u).unwrap_or_default());
        let ben = user("1", Some("Ben@corp.test"), "Ben", true);
        assert_eq!(id(match_email(std::slice::from_ref(&ben), "ben@corp.test")), Ok("1".into()));
        let masked = user("2", Some("ben dot a at corp dot test"), "Ben A", true);
        assert_eq!(id(match_email(&[masked], "ben.a@corp.test")), Ok("2".into()));
        let hidden = user("3", None, "Ana Hidden", true);
        assert_eq!(id(match_email(std::slice::from_ref(&hidden), "ana@corp.test")), Ok("3".into()));
        // An answer that only echoes the query as the name proves nothing.
        let echo = user("4", None, "ana@corp.test", true);
        assert!(match_email(&[echo], "ana@corp.test").is_err());
        // Two hidden users, an inactive one, or one whose shown email differs: no match.
        assert!(match_email(&[hidden.clone(), user("5", None, "Other", true)], "ana@corp.test").is_err());
        assert!(match_email(&[user("6", None, "Gone", false)], "gone@corp.test").is_err());
        assert!(match_email(std::slice::from_ref(&ben), "ana@corp.test").is_err());
        assert!(match_email(&[ben.clone(), user("7", Some("ben@corp.test"), "Ben 2", true)], "ben@corp.test").is_err());
        for note in [match_email(&[], "ana@corp.test"), match_email(&[ben], "ana@corp.test")] {
            assert!(!note.unwrap_err().contains('@'), "a note never holds the email");
        }
    }

    #[test]
    fn assignee_ids_are_validated() {
        let request = |item: Value| serde_json::from_value::<IssuesRequest>(json!({"action_items": [item]})).unwrap();
        for good in [
            json!({"id": "a", "title": "t", "assignee_account_id": "712020:0b6b8a3c-aaaa-4bbb-8ccc-123456789abc"}),
            json!({"id": "a", "title": "t", "assignee_username": "ben.abbott"}),
        ] {
            assert!(request(good.clone()).validate().is_ok(), "{good}");
        }
        for bad in [
            json!({"id": "a", "title": "t", "assignee_account_id": "has space"}),
            json!({"id": "a", "title": "t", "assignee_account_id": ""}),
            json!({"id": "a", "title": "t", "assignee_username": " ben"}),
            json!({"id": "a", "title": "t", "assignee_username": "ben", "assignee_email": "b@x.test"}),
        ] {
            assert_eq!(request(bad.clone()).validate().unwrap_err().code, "invalid_action_items", "{bad}");
        }
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
