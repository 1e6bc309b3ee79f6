//! A report built from the fuzzer's bytes (through `arbitrary`), shaped like what the SaaS sends
//! so that most inputs pass `Report::validate` and reach the renderers; the strings are whatever
//! the bytes make (markup, control characters, emoji, CJK, right-to-left text).

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use bridge::atlassian::Flavour;
use bridge::reports::{IssueLink, Locale, Report};
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
pub struct Item {
    pub text: String,
    pub votes: u8,
    pub author: Option<String>,
}

#[derive(Arbitrary, Debug)]
pub struct Section {
    pub title: String,
    pub items: Vec<Item>,
}

#[derive(Arbitrary, Debug)]
pub struct Dimension {
    pub name: String,
    /// Tenths: 0..=100 is a valid score.
    pub score: u8,
    pub trend: u8,
    pub previous: Option<u8>,
    pub comments: Vec<String>,
}

#[derive(Arbitrary, Debug)]
pub struct ActionItem {
    pub title: String,
    pub linked: bool,
    pub key: String,
}

#[derive(Arbitrary, Debug)]
pub struct Spec {
    pub health_check: bool,
    pub title: String,
    pub team: String,
    pub facilitator: Option<String>,
    pub participants: Vec<String>,
    pub sections: Vec<Section>,
    pub action_items: Vec<ActionItem>,
    pub dimensions: Vec<Dimension>,
    pub locale: u8,
    pub data_center: bool,
}

pub struct Built {
    pub report: Report,
    pub issues: BTreeMap<String, IssueLink>,
    pub locale: Locale,
    pub flavour: Flavour,
    /// Every piece of user text the report holds (what the renderers must show as typed).
    /// Read by storage_render; pdf_render includes this module too and checks the PDF parses.
    #[allow(dead_code)]
    pub texts: Vec<String>,
}

/// A report sent as JSON: every action item linked to an issue; locale and flavour from its size.
fn from_json(report: Report, n: usize) -> Built {
    let c = report.common();
    let mut texts = vec![c.title.clone(), c.team.clone()];
    texts.extend(c.facilitator.iter().cloned());
    texts.extend(c.participants.iter().cloned());
    let mut issues = BTreeMap::new();
    match &report {
        Report::Retrospective(r) => {
            for s in &r.sections {
                texts.push(s.title.clone());
                texts.extend(s.items.iter().map(|i| i.text.clone()));
            }
            for (i, a) in r.action_items.iter().enumerate() {
                texts.push(a.title.clone());
                let link = IssueLink { key: format!("X-{i}"), url: format!("https://acme.atlassian.net/browse/X-{i}") };
                issues.insert(a.id.clone(), link);
            }
        }
        Report::HealthCheck(h) => {
            for d in &h.dimensions {
                texts.push(d.name.clone());
                texts.extend(d.comments.iter().cloned());
            }
        }
    }
    let locale = c.locale.unwrap_or(LOCALES[n % LOCALES.len()]);
    let flavour = if n % 3 == 0 { Flavour::DataCenter } else { Flavour::Cloud };
    Built { report, issues, locale, flavour, texts }
}

const LOCALES: [Locale; 6] = [Locale::En, Locale::De, Locale::Fr, Locale::Es, Locale::Pt, Locale::Ja];

/// The report the bytes describe, if it deserialises and validates as the handler requires: a
/// report's JSON as `POST /reports` takes it (the seed corpus: the tests' reports), else the
/// bytes read through `arbitrary` as a [`Spec`].
pub fn build(data: &[u8]) -> Option<Built> {
    if let Ok(report) = serde_json::from_slice::<Report>(data) {
        report.validate().ok()?;
        return Some(from_json(report, data.len()));
    }
    let spec = Spec::arbitrary(&mut Unstructured::new(data)).ok()?;
    let mut texts = vec![spec.title.clone(), spec.team.clone()];
    let mut issues = BTreeMap::new();
    let mut common = json!({
        "report_id": "r-fuzz-1", "title": spec.title, "team": spec.team, "date": "2026-11-20",
        "participants": spec.participants, "link": "https://app.example.test/retros/r-1",
    });
    texts.extend(spec.participants.iter().cloned());
    if let Some(f) = &spec.facilitator {
        common["facilitator"] = json!(f);
        texts.push(f.clone());
    }
    if spec.health_check {
        common["kind"] = json!("health_check");
        common["dimensions"] = Value::Array(
            spec.dimensions
                .iter()
                .map(|d| {
                    texts.push(d.name.clone());
                    texts.extend(d.comments.iter().cloned());
                    let trend = ["up", "down", "flat"][usize::from(d.trend % 3)];
                    let mut v = json!({"name": d.name, "score": f32::from(d.score) / 10.0, "trend": trend,
                                       "comments": d.comments});
                    if let Some(p) = d.previous {
                        v["previous_score"] = json!(f32::from(p) / 10.0);
                    }
                    v
                })
                .collect(),
        );
    } else {
        common["kind"] = json!("retrospective");
        common["sections"] = Value::Array(
            spec.sections
                .iter()
                .map(|s| {
                    texts.push(s.title.clone());
                    json!({"title": s.title, "items": s.items.iter().map(|i| {
                        texts.push(i.text.clone());
                        json!({"text": i.text, "votes": i.votes, "author": i.author})
                    }).collect::<Vec<_>>()})
                })
                .collect(),
        );
        common["action_items"] = Value::Array(
            spec.action_items
                .iter()
                .enumerate()
                .map(|(n, a)| {
                    texts.push(a.title.clone());
                    let id = format!("a-{n}");
                    if a.linked {
                        issues.insert(
                            id.clone(),
                            IssueLink { key: a.key.clone(), url: format!("https://acme.atlassian.net/browse/X-{n}") },
                        );
                    }
                    json!({"id": id, "title": a.title})
                })
                .collect(),
        );
    }
    let report: Report = serde_json::from_value(common).ok()?;
    report.validate().ok()?;
    Some(Built {
        report,
        issues,
        locale: LOCALES[usize::from(spec.locale) % LOCALES.len()],
        flavour: if spec.data_center { Flavour::DataCenter } else { Flavour::Cloud },
        texts,
    })
}
