//! The few words we write ourselves on a report page and in its PDF, in the tenant's language.
//! The report's `locale` wins over the tenant's settings; English is the default.
//!
//! Skeleton: English only so far; the other languages fill the same table.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    De,
    Fr,
    Es,
    Pt,
    Ja,
}

/// Every label, one field per use.
#[derive(Debug)]
pub struct Labels {
    pub retrospective: &'static str,
    pub health_check: &'static str,
    pub kind: &'static str,
    pub team: &'static str,
    pub date: &'static str,
    pub facilitator: &'static str,
    pub participants: &'static str,
    pub open_in_app: &'static str,
    pub action_items: &'static str,
    pub dimensions: &'static str,
    pub dimension: &'static str,
    pub score: &'static str,
    pub trend: &'static str,
    pub comments: &'static str,
    pub summary: &'static str,
    /// Before the mean score in a health check's summary line: "Mean 6.2 / 10".
    pub mean: &'static str,
    pub top_items: &'static str,
    pub assignee: &'static str,
    pub due: &'static str,
    pub issue: &'static str,
    pub by: &'static str,
    pub group: &'static str,
    pub previous: &'static str,
    pub trend_up: &'static str,
    pub trend_down: &'static str,
    pub trend_flat: &'static str,
    /// Score bands: below 4, 4 to below 7, 7 and above.
    pub band_low: &'static str,
    pub band_mid: &'static str,
    pub band_high: &'static str,
    pub contents: &'static str,
    pub pdf_summary: &'static str,
    /// "page {n} of {total}": `{n}` and `{total}` are replaced.
    pub page_of: &'static str,
    /// "1 vote" / "{n} votes".
    pub vote_one: &'static str,
    pub vote_many: &'static str,
}

const EN: Labels = Labels {
    retrospective: "Retrospective",
    health_check: "Health check",
    kind: "Type",
    team: "Team",
    date: "Date",
    facilitator: "Facilitator",
    participants: "Participants",
    open_in_app: "Open in the app",
    action_items: "Action items",
    dimensions: "Dimensions",
    dimension: "Dimension",
    score: "Score",
    trend: "Trend",
    comments: "Comments",
    summary: "Summary",
    mean: "Mean",
    top_items: "Top items",
    assignee: "Assignee",
    due: "Due",
    issue: "Issue",
    by: "by",
    group: "group",
    previous: "previous",
    trend_up: "up",
    trend_down: "down",
    trend_flat: "flat",
    band_low: "Needs attention",
    band_mid: "Fair",
    band_high: "Good",
    contents: "Contents",
    pdf_summary: "PDF summary",
    page_of: "page {n} of {total}",
    vote_one: "1 vote",
    vote_many: "{n} votes",
};

impl Locale {
    pub fn labels(self) -> &'static Labels {
        &EN
    }

    /// `YYYY-MM-DD` as people of this locale write dates; anything unparsable as it is.
    pub fn date(self, iso: &str) -> String {
        iso.to_owned()
    }
}

impl Labels {
    pub fn votes(&self, n: u32) -> String {
        if n == 1 { self.vote_one.to_owned() } else { self.vote_many.replace("{n}", &n.to_string()) }
    }

    pub fn page_of(&self, n: usize, total: usize) -> String {
        self.page_of.replace("{n}", &n.to_string()).replace("{total}", &total.to_string())
    }
}
