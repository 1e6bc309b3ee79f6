//! Retrospective and health-check reports: the model the SaaS sends, its validation, and its two
//! renderings — a Confluence storage-format page and a PDF summary.

pub mod labels;
pub mod pdf;
mod publish;
pub mod storage;
pub mod text;

pub use publish::{Publication, PublicationState, PublishJob, publication_id};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::atlassian::Flavour;
use crate::error::{ApiError, ErrorCode};
pub use labels::{Band, Locale};
pub use text::FontBook;

/// An action item's Jira issue, once created: what the page and the PDF link to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueLink {
    pub key: String,
    pub url: String,
}

/// What a rendering needs beyond the report itself.
#[derive(Debug, Clone, Copy)]
pub struct Rendering<'a> {
    /// The report's `locale`, else the tenant's, else English.
    pub locale: Locale,
    /// Action item id → its issue, for the items that have one.
    pub issues: &'a BTreeMap<String, IssueLink>,
    /// The PDF attachment's file name (the page shows it inline).
    pub pdf_filename: &'a str,
    /// Where the page is published: Cloud renders issue links as smart links, Data Center as
    /// the `jira` macro when the tenant's settings name the application link.
    pub flavour: Flavour,
    /// Data Center: the tenant's Jira application link (Confluence settings), for the `jira` macro.
    pub jira_link: Option<&'a crate::settings::JiraApplicationLink>,
    /// The fonts the PDF is drawn with (the instance's: the CJK font is read once per instance).
    pub fonts: &'a FontBook,
}

impl Rendering<'static> {
    /// English, no issues, Cloud, the checkout's fonts: what tests and the benchmark render with.
    pub fn plain() -> Self {
        static NONE: BTreeMap<String, IssueLink> = BTreeMap::new();
        Self {
            locale: Locale::En,
            issues: &NONE,
            pdf_filename: "report.pdf",
            flavour: Flavour::Cloud,
            jira_link: None,
            fonts: FontBook::local(),
        }
    }
}

/// Limits that keep a report inside one invocation and Confluence's body limit.
pub const MAX_TEXT: usize = 5_000;
pub const MAX_ITEMS: usize = 2_000;
const MAX_TITLE: usize = 255;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    Retrospective(Retrospective),
    HealthCheck(HealthCheck),
}

/// What every report has. (Flattened into each kind, so serde cannot refuse unknown fields here.)
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct Common {
    /// Stable id in the SaaS: one Confluence page per report id.
    pub report_id: String,
    pub title: String,
    pub team: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    #[serde(default)]
    pub facilitator: Option<String>,
    #[serde(default)]
    pub participants: Vec<String>,
    /// Link back to the report in the SaaS.
    pub link: String,
    /// The language of the labels we write (`en`, `de`, `fr`, `es`, `pt`, `ja`); the tenant's
    /// setting when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct Retrospective {
    #[serde(flatten)]
    pub common: Common,
    pub sections: Vec<Section>,
    #[serde(default)]
    /// The same action items the `Action Items Ready` event carries.
    pub action_items: Vec<crate::issues::ActionItem>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// e.g. "Went well", "To improve".
    pub title: String,
    pub items: Vec<SectionItem>,
}

impl Section {
    /// Most votes first (stable, so equal votes keep the order the SaaS sent).
    pub fn items_by_votes(&self) -> Vec<&SectionItem> {
        let mut items: Vec<&SectionItem> = self.items.iter().collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.votes));
        items
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionItem {
    pub text: String,
    #[serde(default)]
    pub votes: u32,
    /// Absent for anonymous retrospectives.
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct HealthCheck {
    #[serde(flatten)]
    pub common: Common,
    pub dimensions: Vec<Dimension>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Up,
    Down,
    Flat,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    pub name: String,
    /// 0 to 10.
    pub score: f32,
    pub trend: Trend,
    /// The score of the previous health check, 0 to 10, when the SaaS has it: drawn as a marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_score: Option<f32>,
    #[serde(default)]
    pub comments: Vec<String>,
}

impl Report {
    pub fn common(&self) -> &Common {
        match self {
            Report::Retrospective(r) => &r.common,
            Report::HealthCheck(h) => &h.common,
        }
    }

    pub fn kind_label(&self) -> &'static str {
        match self {
            Report::Retrospective(_) => "Retrospective",
            Report::HealthCheck(_) => "Health check",
        }
    }

    /// Every check a person can fix, with the path of what is wrong.
    pub fn validate(&self) -> Result<(), ApiError> {
        let c = self.common();
        if let Err(rule) = crate::ids::ReportId::parse(c.report_id.as_str()) {
            return Err(invalid(format!("report_id {rule}")));
        }
        text("title", &c.title, MAX_TITLE)?;
        text("team", &c.team, MAX_TITLE)?;
        let format = time::macros::format_description!("[year]-[month]-[day]");
        if time::Date::parse(&c.date, &format).is_err() {
            return Err(invalid("date must be a date like 2026-11-25"));
        }
        if let Some(f) = &c.facilitator {
            text("facilitator", f, MAX_TITLE)?;
        }
        if c.participants.len() > 500 {
            return Err(invalid("at most 500 participants"));
        }
        for (i, p) in c.participants.iter().enumerate() {
            text(&format!("participants[{i}]"), p, MAX_TITLE)?;
        }
        if !(c.link.starts_with("https://") || c.link.starts_with("http://")) || c.link.len() > 2048 {
            return Err(invalid("link must be an http(s) URL of at most 2048 characters"));
        }
        match self {
            Report::Retrospective(r) => {
                if r.sections.is_empty() || r.sections.len() > 50 {
                    return Err(invalid("sections must hold 1 to 50 sections"));
                }
                let count: usize = r.sections.iter().map(|s| s.items.len()).sum::<usize>() + r.action_items.len();
                if count > MAX_ITEMS {
                    return Err(invalid(format!(
                        "a report holds at most {MAX_ITEMS} items and action items; this one has {count}"
                    )));
                }
                for (i, s) in r.sections.iter().enumerate() {
                    text(&format!("sections[{i}].title"), &s.title, MAX_TITLE)?;
                    for (j, item) in s.items.iter().enumerate() {
                        text(&format!("sections[{i}].items[{j}].text"), &item.text, MAX_TEXT)?;
                    }
                }
                for (i, a) in r.action_items.iter().enumerate() {
                    text(&format!("action_items[{i}].title"), &a.title, MAX_TEXT)?;
                }
            }
            Report::HealthCheck(h) => {
                if h.dimensions.is_empty() || h.dimensions.len() > 100 {
                    return Err(invalid("dimensions must hold 1 to 100 dimensions"));
                }
                for (i, d) in h.dimensions.iter().enumerate() {
                    text(&format!("dimensions[{i}].name"), &d.name, MAX_TITLE)?;
                    if !(0.0..=10.0).contains(&d.score) {
                        return Err(invalid(format!("dimensions[{i}].score must be between 0 and 10")));
                    }
                    if d.previous_score.is_some_and(|p| !(0.0..=10.0).contains(&p)) {
                        return Err(invalid(format!("dimensions[{i}].previous_score must be between 0 and 10")));
                    }
                    for (j, comment) in d.comments.iter().enumerate() {
                        text(&format!("dimensions[{i}].comments[{j}]"), comment, MAX_TEXT)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidReport, message)
}

fn text(path: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{path} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(invalid(format!("{path} is longer than {max} characters")));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn retrospective(items: &[&str]) -> Report {
        serde_json::from_value(serde_json::json!({
            "kind": "retrospective", "report_id": "r-1", "title": "Sprint 42 retro", "team": "Platform",
            "date": "2026-11-20", "facilitator": "Ana", "participants": ["Ana", "Ben"],
            "link": "https://app.example.test/retros/r-1",
            "sections": [{"title": "Went well", "items": items.iter().map(|t| serde_json::json!({"text": t, "votes": 3, "author": "Ben"})).collect::<Vec<_>>()}],
            "action_items": [{"id": "a-1", "title": "Fix the flaky test", "assignee_email": "ben@example.test", "due_date": "2026-12-01"}]
        }))
        .unwrap()
    }

    pub fn health_check() -> Report {
        serde_json::from_value(serde_json::json!({
            "kind": "health_check", "report_id": "h-1", "title": "Q4 health check", "team": "Platform",
            "date": "2026-11-21", "link": "https://app.example.test/health/h-1",
            "dimensions": [{"name": "Speed", "score": 7.5, "trend": "up", "comments": ["Faster builds"]},
                           {"name": "Fun", "score": 4.0, "trend": "down", "comments": []}]
        }))
        .unwrap()
    }

    #[test]
    fn valid_reports_pass() {
        assert!(retrospective(&["a"]).validate().is_ok());
        assert!(health_check().validate().is_ok());
    }

    #[test]
    fn bad_reports_say_what_to_fix() {
        let mut r = retrospective(&[""]);
        assert!(r.validate().unwrap_err().message.contains("sections[0].items[0].text"));
        r = retrospective(&[&"x".repeat(MAX_TEXT + 1)]);
        assert!(r.validate().unwrap_err().message.contains("longer than"));
        let too_many: Vec<String> = (0..MAX_ITEMS + 1).map(|i| format!("item {i}")).collect();
        r = retrospective(&too_many.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(r.validate().unwrap_err().message.contains("at most"));
        let missing = serde_json::from_value::<Report>(serde_json::json!({"kind": "health_check", "report_id": "x"}));
        assert!(missing.is_err());
    }
}

/// The `Report Ready` event's detail.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportReady {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub report: Report,
}

/// `Page Published`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PagePublished {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub publication_id: String,
    pub report_id: String,
    pub page_id: String,
    pub page_url: String,
    pub version: u64,
    pub attachment_id: String,
}
