//! The report as Confluence storage format (XHTML). Every piece of user text goes through
//! [`escape`], so no markup, macro or CDATA section can be injected, and the result is always
//! well-formed XML. Confluence refuses bodies over 5 MB; a report that would pass that limit is
//! refused whole rather than truncated.

use super::{Rendering, Report, Trend};

/// Confluence's page body limit.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the rendered page is {size} bytes; Confluence accepts at most {MAX_BODY_BYTES}: split the report or shorten its items"
)]
pub struct TooLarge {
    pub size: usize,
}

/// XML text: `&`, `<`, `>`, quotes escaped; characters XML 1.0 forbids (most control
/// characters) dropped. Emoji and right-to-left text stay as they are.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The anchor that marks a page as this report's, so a retry can tell our page from another
/// page with the same title.
pub fn marker_macro(marker: &str) -> String {
    format!(
        "<ac:structured-macro ac:name=\"anchor\" ac:schema-version=\"1\"><ac:parameter ac:name=\"\">{}</ac:parameter></ac:structured-macro>",
        escape(marker)
    )
}

pub fn render(report: &Report, marker: &str, _rendering: &Rendering<'_>) -> Result<String, TooLarge> {
    let c = report.common();
    let mut out = String::new();
    out.push_str(&marker_macro(marker));
    out.push_str(&format!("<h1>{}</h1>", escape(&c.title)));
    out.push_str("<table><tbody>");
    let mut meta = |label: &str, value: &str| {
        out.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", escape(label), escape(value)));
    };
    meta("Type", report.kind_label());
    meta("Team", &c.team);
    meta("Date", &c.date);
    if let Some(f) = &c.facilitator {
        meta("Facilitator", f);
    }
    if !c.participants.is_empty() {
        meta("Participants", &c.participants.join(", "));
    }
    out.push_str("</tbody></table>");
    out.push_str(&format!("<p><a href=\"{}\">Open in the app</a></p>", escape(&c.link)));

    match report {
        Report::Retrospective(r) => {
            for section in &r.sections {
                out.push_str(&format!("<h2>{}</h2><ul>", escape(&section.title)));
                for item in section.items_by_votes() {
                    out.push_str(&format!("<li>{}", escape(&item.text)));
                    let mut notes = vec![format!("{} vote{}", item.votes, if item.votes == 1 { "" } else { "s" })];
                    if let Some(author) = &item.author {
                        notes.push(format!("by {author}"));
                    }
                    if let Some(group) = &item.group {
                        notes.push(format!("group: {group}"));
                    }
                    out.push_str(&format!(" <em>({})</em></li>", escape(&notes.join(", "))));
                }
                out.push_str("</ul>");
            }
            if !r.action_items.is_empty() {
                out.push_str("<h2>Action items</h2><ac:task-list>");
                for (i, a) in r.action_items.iter().enumerate() {
                    let mut body = escape(&a.title);
                    if let Some(email) = &a.assignee_email {
                        body.push_str(&format!(" — {}", escape(email)));
                    }
                    if let Some(due) = &a.due_date {
                        body.push_str(&format!(" (due {})", escape(due)));
                    }
                    out.push_str(&format!(
                        "<ac:task><ac:task-id>{}</ac:task-id><ac:task-status>incomplete</ac:task-status><ac:task-body>{body}</ac:task-body></ac:task>",
                        i + 1
                    ));
                }
                out.push_str("</ac:task-list>");
            }
        }
        Report::HealthCheck(h) => {
            out.push_str("<h2>Dimensions</h2><table><tbody><tr><th>Dimension</th><th>Score</th><th>Trend</th><th>Comments</th></tr>");
            for d in &h.dimensions {
                let trend = match d.trend {
                    Trend::Up => "↑ up",
                    Trend::Down => "↓ down",
                    Trend::Flat => "→ flat",
                };
                let comments: String = d.comments.iter().map(|c| format!("<p>{}</p>", escape(c))).collect();
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{:.1} / 10</td><td>{trend}</td><td>{comments}</td></tr>",
                    escape(&d.name),
                    d.score
                ));
            }
            out.push_str("</tbody></table>");
        }
    }
    if out.len() > MAX_BODY_BYTES {
        return Err(TooLarge { size: out.len() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use quick_xml::Reader;
    use quick_xml::events::Event;

    use super::*;
    use crate::reports::tests::{health_check, retrospective};

    /// Parses the body (inside a root that declares Confluence's namespaces) and returns its text.
    fn well_formed_text(body: &str) -> String {
        let doc = format!(
            "<root xmlns:ac=\"http://atlassian.com/content\" xmlns:ri=\"http://atlassian.com/resource/identifier\">{body}</root>"
        );
        let mut reader = Reader::from_str(&doc);
        let mut text = String::new();
        let mut depth = 0i32;
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth -= 1,
                Event::Text(t) => text.push_str(&t.decode().unwrap()),
                Event::GeneralRef(r) => {
                    let name = r.decode().unwrap();
                    text.push_str(match name.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "#39" => "'",
                        other => panic!("unexpected entity {other}"),
                    });
                }
                Event::CData(_) => panic!("user text produced a CDATA section"),
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
        text
    }

    #[test]
    fn hostile_text_stays_text_and_the_page_stays_well_formed() {
        let hostile = [
            "<ac:structured-macro ac:name=\"html\"><ac:plain-text-body><![CDATA[<script>alert(1)</script>]]></ac:plain-text-body></ac:structured-macro>",
            "]]> & <script>alert('x')</script>",
            "ctrl\u{0}\u{1}\u{1b}chars\u{7f}",
            "emoji 🎉🚀 and RTL שלום עולם مرحبا",
            "Ελληνικά и кириллица",
        ];
        let body = render(&retrospective(&hostile), "bridge-report-x", &Rendering::plain()).unwrap();
        let text = well_formed_text(&body);
        assert!(text.contains("<ac:structured-macro ac:name=\"html\">"), "macro shown as text");
        assert!(text.contains("]]> & <script>alert('x')</script>"));
        assert!(text.contains("ctrlchars\u{7f}"));
        assert!(text.contains("emoji 🎉🚀 and RTL שלום עולם مرحبا"));
        assert!(text.contains("Ελληνικά и кириллица"));
        // The only macros in the page are ours.
        assert_eq!(body.matches("<ac:structured-macro").count(), 1);
        assert!(!body.contains("<script"));
    }

    #[test]
    fn retrospectives_have_sections_votes_and_a_task_list() {
        let body = render(&retrospective(&["Good pairing", "Fast CI"]), "m", &Rendering::plain()).unwrap();
        assert!(body.contains("<h2>Went well</h2>"));
        assert!(body.contains("3 votes, by Ben"));
        assert!(body.contains("<ac:task-list><ac:task><ac:task-id>1</ac:task-id>"));
        assert!(body.contains("Fix the flaky test — ben@example.test (due 2026-12-01)"));
        well_formed_text(&body);
    }

    #[test]
    fn health_checks_are_a_table_of_scores_and_trends() {
        let body = render(&health_check(), "m", &Rendering::plain()).unwrap();
        assert!(body.contains("<td>Speed</td><td>7.5 / 10</td><td>↑ up</td><td><p>Faster builds</p></td>"));
        well_formed_text(&body);
    }

    #[test]
    fn a_report_over_the_body_limit_is_refused_not_truncated() {
        let big = "x".repeat(super::super::MAX_TEXT);
        let items: Vec<&str> = (0..1500).map(|_| big.as_str()).collect();
        let err = render(&retrospective(&items), "m", &Rendering::plain()).unwrap_err();
        assert!(err.size > MAX_BODY_BYTES);
    }
}
