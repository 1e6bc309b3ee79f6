//! What we last knew of an issue we created: the few fields the two-way sync reads (status and
//! its category, resolution, assignee, summary, due date, `updated`). One parser for the three
//! places Jira shows them — a search hit, a webhook delivery's `issue`, a `GET issue` — since all
//! three carry the same `fields` object.
//!
//! Stored on the ledger's `ACTION#{item}` item as `jira_state` (this struct as JSON, a string
//! attribute), with `jira_updated_ms` beside it for the "only newer" write condition and
//! `synced_at_ms` for when we saw it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Jira's three status categories (`statusCategory.key`); `done` is what a retro shows as done.
/// A key Jira adds later is `unknown` rather than an error: the rest of the state still counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusCategory {
    New,
    Indeterminate,
    Done,
    #[serde(other)]
    Unknown,
}

impl StatusCategory {
    pub fn from_key(key: &str) -> Self {
        match key {
            "new" => Self::New,
            "indeterminate" => Self::Indeterminate,
            "done" => Self::Done,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Indeterminate => "indeterminate",
            Self::Done => "done",
            Self::Unknown => "unknown",
        }
    }
}

/// The assignee as Jira shows it: the Cloud account id or the Server/DC user name, and
/// the display name. Never the email (hidden by many tenants, and not ours to copy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assignee {
    /// Cloud `accountId`, or Server/DC `name`.
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// An issue's last known Jira state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JiraState {
    /// The status's name in this tenant's workflow, e.g. `In Review`.
    pub status: String,
    pub status_category: StatusCategory,
    #[serde(default)]
    pub resolution: Option<String>,
    #[serde(default)]
    pub assignee: Option<Assignee>,
    pub summary: String,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub due_date: Option<String>,
    /// Jira's `updated` (when the issue last changed), RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated: OffsetDateTime,
}

/// The `fields` a search must ask for to build a [`JiraState`]: nothing else is read.
pub const STATE_FIELDS: &str = "status,resolution,assignee,summary,duedate,updated";

/// Why a `fields` object could not be read as a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("issue fields: {0}")]
pub struct StateError(pub &'static str);

impl JiraState {
    /// Reads an issue's `fields` (as asked with [`STATE_FIELDS`]). Jira writes `updated` as
    /// `2026-12-02T18:40:12.345+0000` (no colon in the offset, which RFC 3339 needs); both forms
    /// are read.
    pub fn from_fields(fields: &Value) -> Result<Self, StateError> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let status = fields.get("status").ok_or(StateError("no status"))?;
        let updated = text(fields.get("updated")).ok_or(StateError("no updated"))?;
        let assignee = fields.get("assignee").filter(|a| !a.is_null()).and_then(|a| {
            let id = text(a.get("accountId")).or_else(|| text(a.get("name")))?;
            Some(Assignee { id, display_name: text(a.get("displayName")) })
        });
        Ok(Self {
            status: text(status.get("name")).ok_or(StateError("no status name"))?,
            status_category: status
                .get("statusCategory")
                .and_then(|c| c.get("key"))
                .and_then(Value::as_str)
                .map_or(StatusCategory::Unknown, StatusCategory::from_key),
            resolution: fields.get("resolution").and_then(|r| text(r.get("name"))),
            assignee,
            summary: text(fields.get("summary")).unwrap_or_default(),
            due_date: text(fields.get("duedate")),
            updated: parse_jira_time(&updated).ok_or(StateError("updated is not a date-time"))?,
        })
    }
}

/// `2026-12-02T18:40:12.345+0000` (Jira) or RFC 3339.
pub fn parse_jira_time(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    // Insert the offset's colon: `+0000` → `+00:00`.
    let (head, tail) = text.split_at(text.len().checked_sub(5)?);
    if !(tail.starts_with('+') || tail.starts_with('-')) || !tail[1..].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    OffsetDateTime::parse(&format!("{head}{}:{}", &tail[..3], &tail[3..]), &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cloud_search_hit_reads_as_a_state() {
        let fields = json!({
            "summary": "Quarantine flaky tests",
            "status": {"name": "Done", "statusCategory": {"key": "done", "id": 3}},
            "resolution": {"name": "Done"},
            "assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Mia"},
            "duedate": "2026-12-24",
            "updated": "2026-12-02T18:40:12.345+0000"
        });
        let state = JiraState::from_fields(&fields).unwrap();
        assert_eq!(state.status_category, StatusCategory::Done);
        assert_eq!(state.resolution.as_deref(), Some("Done"));
        assert_eq!(state.assignee.unwrap().id, "5b10ac8d82e05b22cc7d4ef5");
        assert_eq!(state.updated.unix_timestamp(), 1_796_236_812);
        assert_eq!(state.updated.millisecond(), 345);
    }

    #[test]
    fn a_dc_hit_with_no_assignee_and_an_unknown_category_still_reads() {
        let fields = json!({
            "summary": "s", "assignee": null, "resolution": null, "duedate": null,
            "status": {"name": "Triage", "statusCategory": {"key": "undefined"}},
            "updated": "2026-12-02T18:40:12.000-0500"
        });
        let state = JiraState::from_fields(&fields).unwrap();
        assert_eq!(state.status_category, StatusCategory::Unknown);
        assert_eq!(state.assignee, None);
        assert_eq!(state.updated.unix_timestamp(), 1_796_254_812);
    }

    #[test]
    fn fields_without_status_or_updated_are_refused_not_guessed() {
        assert!(JiraState::from_fields(&json!({"updated": "2026-12-02T18:40:12.000+0000"})).is_err());
        assert!(JiraState::from_fields(&json!({"status": {"name": "x"}})).is_err());
        assert!(parse_jira_time("yesterday").is_none());
        assert!(parse_jira_time("").is_none());
    }

    #[test]
    fn a_state_round_trips_through_its_stored_json() {
        let state = JiraState {
            status: "In Progress".into(),
            status_category: StatusCategory::Indeterminate,
            resolution: None,
            assignee: Some(Assignee { id: "jdoe".into(), display_name: None }),
            summary: "s".into(),
            due_date: Some("2026-12-24".into()),
            updated: parse_jira_time("2026-12-02T18:40:12.345+0000").unwrap(),
        };
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains("\"status_category\":\"indeterminate\""), "{text}");
        assert_eq!(serde_json::from_str::<JiraState>(&text).unwrap(), state);
    }
}
