//! Edits forward: an action item's summary, description, assignee and due date, changed in the
//! retro tool, reach the issue we created for it (`PATCH /v1/tenants/{tenant}/action-items/{id}`
//! and the `Action Items Changed` event run the same [`Editor::apply`]).
//!
//! What one edit does, in order:
//! 1. the ledger's record of the item: none → `404 action_item_not_found`, deleted → `410
//!    issue_deleted`, written to another site than the one connected now → `409
//!    issue_on_another_site`;
//! 2. the issue's edit screen (`GET issue/{key}/editmeta`, remembered like the create screen, and
//!    asked again before a field it lacks is refused, and after Jira refused an edit with 400 —
//!    the field may have left the screen since): a field sent that is not on it →
//!    `422 field_not_editable`, nothing written;
//! 3. one `GET issue/{key}` of the fields the state is made of (and the description when one is
//!    sent): Jira's 404 → the ledger marks the issue deleted and the answer is `410`;
//! 4. the optimistic check (below): `409 issue_changed`, nothing written;
//! 5. `PUT issue/{key}` with only the fields whose value differs from Jira's (nothing sent at
//!    all when none does), then one `GET` of the state fields, recorded in the ledger
//!    (`record_state`, only if newer) so the read model shows the edit at once.
//!
//! **Optimistic rule.** Jira has no conditional edit: `PUT issue` takes no `If-Match` and issues
//! carry no version (the Cloud reference lists only `notifyUsers`, `overrideScreenSecurity`,
//! `overrideEditableFlag`, `returnIssue` and `expand`; its `409` is Jira's own "conflicting
//! update"). So the check is ours, against the last state the ledger knows (from the sync, or
//! read back after our own last edit): if Jira's `updated` is newer than the known one, someone
//! changed the issue since, and an edit is refused when it would overwrite a field whose value
//! in Jira differs from the known one — summary, due date, assignee are in the known state and
//! compared one by one; the description is not kept in it, so an edit of the description is
//! refused whenever the issue changed since. A transition alone (status) blocks no edit of the
//! other fields. With no known state yet (never synced, never edited) there is nothing to
//! compare and the edit goes through. A refused edit writes nothing: read the item again
//! (`GET .../action-items`, or the `Issues Updated` event), decide, and send it again. The
//! window between our read and our `PUT` (milliseconds) stays open: Jira offers nothing to
//! close it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::lookups::{self, Lookups};
use super::state::{JiraState, STATE_FIELDS};
use super::{ActionItem, Assignees, markup};
use crate::atlassian::jira::issues;
use crate::atlassian::{Class, Flavour, Session};
use crate::domain::TenantId;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{IssueKey, ItemId};
use crate::store::{CreatedItem, IssueLedger};

/// The most changes one `Action Items Changed` event may carry: each costs a few Jira calls, one
/// after the other, and the whole event has one invocation.
pub const MAX_CHANGES: usize = 100;
const MAX_DESCRIPTION: usize = 30_000;

/// `PATCH /v1/tenants/{tenant}/action-items/{id}`: the fields to change, at least one. A field
/// left out (or `null`) stays as it is in Jira; clearing a field is not offered.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItemEdit {
    /// The new summary (as a title on creation: 1 to 2000 characters, cut to Jira's 255).
    #[serde(default)]
    pub summary: Option<String>,
    /// The new description, replacing the issue's (the link back to the retrospective that
    /// creation added is not kept unless the text carries it).
    #[serde(default)]
    pub description: Option<String>,
    /// Assigned by the same email matching as on creation (with `assignee_matching: email`); an
    /// email that matches nobody leaves the assignee as it is, with a note.
    #[serde(default)]
    pub assignee_email: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub due_date: Option<String>,
}

/// One change of an `Action Items Changed` event. It repeats [`ActionItemEdit`]'s fields rather
/// than flattening it, because serde cannot refuse unknown fields through `flatten`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItemChange {
    pub action_item_id: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub assignee_email: Option<String>,
    #[serde(default)]
    pub due_date: Option<String>,
}

impl ActionItemChange {
    pub fn edit(&self) -> ActionItemEdit {
        ActionItemEdit {
            summary: self.summary.clone(),
            description: self.description.clone(),
            assignee_email: self.assignee_email.clone(),
            due_date: self.due_date.clone(),
        }
    }
}

/// `Action Items Changed` (in, from the SaaS): edits of action items whose issues we created.
/// Applied once per `idempotency_key`: a redelivery answers the first delivery's results.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItemsChanged {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub changes: Vec<ActionItemChange>,
}

/// What an edit did (the `PATCH` answer).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionItemEdited {
    pub action_item_id: String,
    pub issue_key: String,
    /// The fields written to Jira (`summary`, `description`, `assignee`, `due_date`); a field
    /// sent with the value Jira has already is not written, and not listed.
    pub changed: Vec<String>,
    /// What was not done and why (an assignee email that matched nobody, …); never an email.
    pub notes: Vec<String>,
    /// The issue's state as Jira answered after the edit (`null` if that read failed).
    #[serde(default)]
    pub state: Option<JiraState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EditStatus {
    /// At least one field was written.
    Edited,
    /// Every field sent had the value already (or could not be matched: see `notes`).
    Unchanged,
    Failed,
}

/// One change's outcome in `Action Items Edited`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeResult {
    pub action_item_id: String,
    pub status: EditStatus,
    #[serde(default)]
    pub issue_key: Option<String>,
    pub changed: Vec<String>,
    pub notes: Vec<String>,
    /// For a failure: the error code the `PATCH` route would answer (`action_item_not_found`,
    /// `issue_deleted`, `issue_changed`, `field_not_editable`, …) and its message.
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// For a failure: whether sending the change again may succeed as it is.
    pub retryable: bool,
}

impl ChangeResult {
    pub fn of(action_item_id: &str, outcome: Result<ActionItemEdited, ApiError>) -> Self {
        match outcome {
            Ok(edited) => Self {
                action_item_id: action_item_id.to_owned(),
                status: if edited.changed.is_empty() { EditStatus::Unchanged } else { EditStatus::Edited },
                issue_key: Some(edited.issue_key),
                changed: edited.changed,
                notes: edited.notes,
                code: None,
                message: None,
                retryable: false,
            },
            Err(e) => Self {
                action_item_id: action_item_id.to_owned(),
                status: EditStatus::Failed,
                issue_key: None,
                changed: Vec::new(),
                notes: Vec::new(),
                retryable: e.retried(),
                code: Some(e.code.as_str().to_owned()),
                message: Some(e.message),
            },
        }
    }
}

/// `Action Items Edited` (out): one result per change of an `Action Items Changed`, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionItemsEdited {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub results: Vec<ChangeResult>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

impl ActionItemEdit {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.summary.is_none()
            && self.description.is_none()
            && self.assignee_email.is_none()
            && self.due_date.is_none()
        {
            return Err(invalid("send at least one of summary, description, assignee_email and due_date"));
        }
        if self.summary.as_deref().is_some_and(|s| s.trim().is_empty() || s.chars().count() > 2000) {
            return Err(invalid("summary must be 1 to 2000 characters"));
        }
        if self.description.as_deref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
            return Err(invalid(format!("description must be at most {MAX_DESCRIPTION} characters")));
        }
        if self.assignee_email.as_deref().is_some_and(|e| !e.contains('@')) {
            return Err(invalid("assignee_email is not an email address"));
        }
        if let Some(date) = &self.due_date {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            if time::Date::parse(date, &format).is_err() {
                return Err(invalid("due_date must be a date like 2026-12-31"));
            }
        }
        Ok(())
    }
}

impl ActionItemsChanged {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.changes.is_empty() || self.changes.len() > MAX_CHANGES {
            return Err(invalid(format!("changes must hold 1 to {MAX_CHANGES} changes")));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, change) in self.changes.iter().enumerate() {
            if !seen.insert(change.action_item_id.as_str()) {
                return Err(invalid(format!("changes[{i}]: action_item_id repeats an earlier change's")));
            }
            change.edit().validate().map_err(|e| invalid(format!("changes[{i}]: {}", e.message)))?;
        }
        Ok(())
    }
}

/// The ledger's created item for `item_id`, or the answer for one we never created (404) or
/// whose issue is gone (410).
pub async fn created_item(
    ledger: &dyn IssueLedger,
    tenant: &TenantId,
    item_id: &ItemId,
) -> Result<CreatedItem, ApiError> {
    let item = ledger.issue_for_item(tenant, item_id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::ActionItemNotFound,
            format!(
                "no issue was created for action item {item_id} for this tenant; create it first (POST .../issues)"
            ),
        )
    })?;
    if item.deleted {
        return Err(deleted(&item.key));
    }
    Ok(item)
}

fn deleted(key: &IssueKey) -> ApiError {
    ApiError::new(ErrorCode::IssueDeleted, format!("{key}, the issue of this action item, was deleted in Jira"))
}

fn not_editable(fields: &[&str], key: &IssueKey) -> ApiError {
    ApiError::new(
        ErrorCode::FieldNotEditable,
        format!(
            "{} cannot be edited on {key}: not on its edit screen for the connected user (a Jira admin adds it to the screen, or grants Edit Issues); nothing was changed",
            fields.join(", ")
        ),
    )
}

/// The API's field names, and Jira's.
const FIELDS: [(&str, &str); 4] =
    [("summary", "summary"), ("description", "description"), ("assignee", "assignee"), ("due_date", "duedate")];

fn jira_id(ours: &str) -> &'static str {
    FIELDS.iter().find(|(o, _)| *o == ours).map_or("", |(_, j)| *j)
}

/// What edits use: the connection's session, the ledger, the tenant's lookup cache, and whether
/// the tenant's settings match assignees by email.
pub struct Editor<'a> {
    pub session: &'a Session,
    pub ledger: &'a dyn IssueLedger,
    pub lookups: Lookups<'a>,
    pub match_emails: bool,
}

impl Editor<'_> {
    /// Applies `edit` to `item`'s issue (see the module's steps).
    pub async fn apply(&self, item: &CreatedItem, edit: &ActionItemEdit) -> Result<ActionItemEdited, ApiError> {
        let tenant = self.lookups.tenant;
        // A key is only unique within a site: after a re-connect to another site, the same key
        // may name someone else's issue there.
        if item.site.as_ref().is_some_and(|site| site != self.session.site_id()) {
            return Err(ApiError::new(
                ErrorCode::IssueOnAnotherSite,
                format!(
                    "{} was created on the site connected before, not on the one connected now; it is left alone",
                    item.key
                ),
            ));
        }
        let sent: Vec<&str> = [
            edit.summary.as_ref().map(|_| "summary"),
            edit.description.as_ref().map(|_| "description"),
            edit.assignee_email.as_ref().map(|_| "assignee"),
            edit.due_date.as_ref().map(|_| "due_date"),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.check_edit_screen(item, &sent).await?;

        let wanted =
            if edit.description.is_some() { format!("{STATE_FIELDS},description") } else { STATE_FIELDS.into() };
        let current = self.read(item, &wanted).await?;
        let now = JiraState::from_fields(&current).map_err(|e| {
            tracing::warn!(key = %item.key, error = %e, "issue fields unreadable");
            ApiError::new(
                ErrorCode::UpstreamInvalidResponse,
                format!("Jira's answer for {} was not an issue", item.key),
            )
        })?;
        if let Some(known) = &item.state {
            let overwritten = changed_since(known, &now, &sent);
            if !overwritten.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::IssueChanged,
                    format!(
                        "{} changed in Jira since it was last seen ({}): {} would be overwritten; read the item again (GET .../action-items) and send the edit again",
                        item.key,
                        known.updated,
                        overwritten.join(", ")
                    ),
                ));
            }
        }

        let mut notes = Vec::new();
        let mut fields = serde_json::Map::new();
        if let Some(summary) = &edit.summary {
            let summary = markup::summary(summary);
            if summary != now.summary {
                fields.insert("summary".into(), Value::String(summary));
            }
        }
        if let Some(text) = &edit.description {
            let description = match self.session.flavour() {
                Flavour::Cloud => markup::adf(Some(text), None),
                Flavour::DataCenter => Value::String(markup::wiki(Some(text), None)),
            };
            if current.get("description") != Some(&description) {
                fields.insert("description".into(), description);
            }
        }
        if let Some(due) = &edit.due_date {
            if now.due_date.as_deref() != Some(due.as_str()) {
                fields.insert("duedate".into(), Value::String(due.clone()));
            }
        }
        if let Some(email) = &edit.assignee_email {
            match self.assignee(&item.key, email).await {
                Ok(id) if now.assignee.as_ref().is_some_and(|a| a.id == id) => {}
                Ok(id) => {
                    let value = match self.session.flavour() {
                        Flavour::Cloud => json!({"accountId": id}),
                        Flavour::DataCenter => json!({"name": id}),
                    };
                    fields.insert("assignee".into(), value);
                }
                Err(note) => notes.push(note),
            }
        }
        let changed: Vec<String> =
            FIELDS.iter().filter(|(_, jira)| fields.contains_key(*jira)).map(|(ours, _)| (*ours).to_owned()).collect();
        let state = if fields.is_empty() {
            Some(now)
        } else {
            match issues::edit(self.session, &item.key, &Value::Object(fields)).await {
                Ok(()) => {}
                Err(e) if e.is(Class::NotFound) => return Err(self.gone(item).await),
                // Jira refuses a field taken off the screen since we remembered it with a 400
                // ("cannot be set. It is not on the appropriate screen"): ask the screen again,
                // so the answer names the field rather than passing Jira's message on.
                Err(e) if e.is(Class::BadRequest) => {
                    let screen = self.edit_screen(item, true).await?;
                    let off: Vec<&str> = changed
                        .iter()
                        .map(String::as_str)
                        .filter(|ours| !screen.iter().any(|f| f == jira_id(ours)))
                        .collect();
                    return Err(if off.is_empty() { e.into() } else { not_editable(&off, &item.key) });
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(key = %item.key, changed = ?changed, "issue edited");
            self.read_back(item).await
        };
        if let Some(state) = &state {
            // Only newer than what the ledger holds: a sync that saw a later change keeps its.
            if let Err(e) = self.ledger.record_state(tenant, &item.item_id, state, OffsetDateTime::now_utc()).await {
                tracing::warn!(key = %item.key, error = %e, "state after the edit not recorded; the sync records it");
            }
        }
        Ok(ActionItemEdited {
            action_item_id: item.item_id.to_string(),
            issue_key: item.key.to_string(),
            changed,
            notes,
            state,
        })
    }

    /// Refuses fields that are not on the issue's edit screen, asking Jira again before it does
    /// (the remembered screen may predate an admin adding the field).
    async fn check_edit_screen(&self, item: &CreatedItem, sent: &[&str]) -> Result<(), ApiError> {
        let missing = |screen: &[String]| -> Vec<&str> {
            sent.iter().copied().filter(|ours| !screen.iter().any(|f| f == jira_id(ours))).collect()
        };
        let screen = self.edit_screen(item, false).await?;
        if missing(&screen).is_empty() {
            return Ok(());
        }
        let screen = self.edit_screen(item, true).await?;
        let missing = missing(&screen);
        if missing.is_empty() {
            return Ok(());
        }
        Err(not_editable(&missing, &item.key))
    }

    async fn edit_screen(&self, item: &CreatedItem, fresh: bool) -> Result<Vec<String>, ApiError> {
        match lookups::edit_screen(self.session, &self.lookups, &item.key, fresh).await {
            Ok(screen) => Ok(screen),
            Err(e) if e.is(Class::NotFound) => Err(self.gone(item).await),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, item: &CreatedItem, fields: &str) -> Result<Value, ApiError> {
        match issues::fields_of(self.session, &item.key, fields).await {
            Ok(fields) => Ok(fields),
            Err(e) if e.is(Class::NotFound) => Err(self.gone(item).await),
            Err(e) => Err(e.into()),
        }
    }

    /// The state Jira answers after our edit; `None` (logged) when that read fails: the edit
    /// was made, and the sync will see it.
    async fn read_back(&self, item: &CreatedItem) -> Option<JiraState> {
        let fields = issues::fields_of(self.session, &item.key, STATE_FIELDS)
            .await
            .map_err(|e| tracing::warn!(key = %item.key, error = %e, "state after the edit not read"))
            .ok()?;
        JiraState::from_fields(&fields)
            .map_err(|e| tracing::warn!(key = %item.key, error = %e, "state unreadable"))
            .ok()
    }

    /// Jira says the issue is gone (deleted, or no longer visible to the connected user, which
    /// Jira answers alike): the ledger marks it deleted, and the answer is 410.
    async fn gone(&self, item: &CreatedItem) -> ApiError {
        if let Err(e) = self.ledger.mark_deleted(self.lookups.tenant, &item.key, &item.item_id).await {
            return e.into();
        }
        tracing::info!(key = %item.key, "issue gone in Jira; marked deleted");
        deleted(&item.key)
    }

    /// The assignee `email` designates, by creation's rule, or the note why it stays as it is.
    async fn assignee(&self, key: &IssueKey, email: &str) -> Result<String, String> {
        if !self.match_emails {
            return Err(
                "assignee_email is matched only with assignee_matching: email in the Jira settings; assignee unchanged"
                    .into(),
            );
        }
        // The key's project (`ENG-42` → `ENG`): assignable users are a project's.
        let project = key.as_str().rsplit_once('-').map_or(key.as_str(), |(p, _)| p);
        let probe = ActionItem {
            id: "edit".into(),
            title: String::new(),
            description: None,
            assignee_email: Some(email.to_owned()),
            assignee_account_id: None,
            assignee_username: None,
            due_date: None,
            labels: Vec::new(),
            priority: None,
            components: Vec::new(),
            report_id: None,
        };
        let mut answers = Assignees::resolve_all(self.session, project, &[&probe], true, &self.lookups).await;
        match answers.pop().flatten() {
            Some(Ok(id)) => Ok(id),
            // Creation's notes end with what creation does; an edit leaves the assignee alone.
            Some(Err(note)) => Err(note.replace("left unassigned", "assignee unchanged")),
            None => Err("no assignee lookup was made; assignee unchanged".into()),
        }
    }
}

/// The fields of `sent` (our names) that an edit would overwrite although Jira changed them since
/// `known`: none when Jira's `updated` is not newer.
fn changed_since(known: &JiraState, now: &JiraState, sent: &[&str]) -> Vec<String> {
    if now.updated <= known.updated {
        return Vec::new();
    }
    sent.iter()
        .copied()
        .filter(|field| match *field {
            "summary" => known.summary != now.summary,
            "due_date" => known.due_date != now.due_date,
            "assignee" => known.assignee.as_ref().map(|a| &a.id) != now.assignee.as_ref().map(|a| &a.id),
            // Not in the known state: any change since may have been to it.
            _ => true,
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issues::state::{Assignee, StatusCategory, parse_jira_time};

    fn state(summary: &str, due: Option<&str>, assignee: Option<&str>, updated: &str) -> JiraState {
        JiraState {
            status: "To Do".into(),
            status_category: StatusCategory::New,
            resolution: None,
            assignee: assignee.map(|id| Assignee { id: id.into(), display_name: None }),
            summary: summary.into(),
            due_date: due.map(str::to_owned),
            updated: parse_jira_time(updated).unwrap(),
        }
    }

    #[test]
    fn an_edit_is_refused_only_for_fields_jira_changed_since_we_knew_them() {
        let known = state("Fix CI", Some("2026-12-01"), Some("a"), "2026-12-02T10:00:00.000+0000");
        // Not changed since: anything goes.
        assert!(changed_since(&known, &known, &["summary", "description", "assignee", "due_date"]).is_empty());
        // Moved to another status (same fields, newer updated): the tracked fields still go.
        let moved = JiraState {
            status: "Done".into(),
            ..state("Fix CI", Some("2026-12-01"), Some("a"), "2026-12-02T11:00:00.000+0000")
        };
        assert!(changed_since(&known, &moved, &["summary", "assignee", "due_date"]).is_empty());
        // ... but the description, which the state does not keep, cannot be told apart.
        assert_eq!(changed_since(&known, &moved, &["description"]), ["description"]);
        // A person renamed it: the summary may not be overwritten, the due date may.
        let renamed = state("Fix CI now", Some("2026-12-01"), Some("a"), "2026-12-02T11:00:00.000+0000");
        assert_eq!(changed_since(&known, &renamed, &["summary", "due_date"]), ["summary"]);
        let reassigned = state("Fix CI", Some("2026-12-01"), Some("b"), "2026-12-02T11:00:00.000+0000");
        assert_eq!(changed_since(&known, &reassigned, &["assignee"]), ["assignee"]);
    }

    #[test]
    fn an_edit_needs_a_field_and_each_field_is_checked() {
        let edit = |v: Value| serde_json::from_value::<ActionItemEdit>(v).unwrap().validate();
        assert!(edit(json!({"summary": "New"})).is_ok());
        assert!(edit(json!({"due_date": "2026-12-31", "assignee_email": "a@b.test"})).is_ok());
        for bad in [
            json!({}),
            json!({"summary": " "}),
            json!({"due_date": "31/12/2026"}),
            json!({"assignee_email": "nobody"}),
            json!({"description": "x".repeat(MAX_DESCRIPTION + 1)}),
        ] {
            assert_eq!(edit(bad.clone()).unwrap_err().code, "invalid_request", "{bad}");
        }
        assert!(serde_json::from_value::<ActionItemEdit>(json!({"title": "x"})).is_err());
    }

    #[test]
    fn an_event_names_each_item_once_and_checks_each_change() {
        let event = |changes: Value| {
            serde_json::from_value::<ActionItemsChanged>(
                json!({"tenant_id": "acme", "idempotency_key": "k", "changes": changes}),
            )
            .unwrap()
            .validate()
        };
        assert!(event(json!([{"action_item_id": "a", "summary": "s"}])).is_ok());
        assert!(event(json!([])).is_err());
        assert!(
            event(json!([{"action_item_id": "a", "summary": "s"}, {"action_item_id": "a", "due_date": "2026-01-01"}]))
                .is_err()
        );
        let refused = event(json!([{"action_item_id": "a"}])).unwrap_err();
        assert!(refused.message.starts_with("changes[0]:"), "{}", refused.message);
    }

    #[test]
    fn results_carry_the_routes_code_and_whether_to_retry() {
        let gone = ChangeResult::of("a", Err(deleted(&IssueKey::new("ENG-1"))));
        assert_eq!(
            (gone.status, gone.code.as_deref(), gone.retryable),
            (EditStatus::Failed, Some("issue_deleted"), false)
        );
        let busy = ChangeResult::of("b", Err(ApiError::new(ErrorCode::UpstreamError, "busy")));
        assert!(busy.retryable);
        let same = ActionItemEdited {
            action_item_id: "c".into(),
            issue_key: "ENG-2".into(),
            changed: vec![],
            notes: vec![],
            state: None,
        };
        assert_eq!(ChangeResult::of("c", Ok(same)).status, EditStatus::Unchanged);
    }
}
