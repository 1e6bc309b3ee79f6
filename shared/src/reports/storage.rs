//! The report as Confluence storage format (XHTML). Every piece of user text goes through
//! [`escape`], so no markup, macro or CDATA section can be injected, and the result is always
//! well-formed XML. Confluence refuses bodies over 5 MB; a report that would pass that limit is
//! refused whole rather than truncated.
//!
//! The page uses Confluence's own macros, each only with the parameters Confluence documents
//! for its storage format (the tests hold every page against that list): a summary in an `info`
//! panel, `status` lozenges coloured by score band and trend, the PDF inline (`view-file`), a
//! `toc` on long retrospectives, `expand` for the long tail of a section or comment list, and
//! each action item's Jira issue — a smart link on Cloud, the `jira` macro on Data Center when
//! the tenant's settings name the application link, else a plain link. The words we write
//! ourselves come from the report's [`Labels`](super::labels::Labels).
//!
//! The body depends on the report and the [`Rendering`] only — no clock, no random ids (the
//! editor's `ac:macro-id` is left out), no hash-map order — so republishing the same report
//! writes the same bytes.
//!
//! Reference: Confluence Storage Format,
//! <https://confluence.atlassian.com/doc/confluence-storage-format-790796544.html>.

use super::labels::{Band, Labels};
use super::{IssueLink, Rendering, Report, Trend};
use crate::atlassian::Flavour;

/// Retrospectives with this many sections, or this many items, get a table of contents.
pub const TOC_MIN_SECTIONS: usize = 3;
pub const TOC_MIN_ITEMS: usize = 30;
/// Items of a section shown before the rest collapse into an `expand`.
pub const SHOWN_ITEMS: usize = 10;
/// Comments of a dimension shown before the rest collapse into an `expand`.
pub const SHOWN_COMMENTS: usize = 3;
/// Items of the whole retrospective listed in the summary.
const TOP_ITEMS: usize = 3;

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

pub fn render(report: &Report, marker: &str, rendering: &Rendering<'_>) -> Result<String, TooLarge> {
    let c = report.common();
    let locale = rendering.locale;
    let l = locale.labels();
    let mut out = String::new();
    out.push_str(&marker_macro(marker));
    out.push_str(&format!("<h1>{}</h1>", escape(&c.title)));
    if let Report::Retrospective(r) = report {
        let items: usize = r.sections.iter().map(|s| s.items.len()).sum();
        if r.sections.len() >= TOC_MIN_SECTIONS || items >= TOC_MIN_ITEMS {
            out.push_str(&toc());
        }
    }

    // The summary panel: who, when, the headline, and the way back to the app.
    let mut summary = String::from("<table><tbody>");
    let mut meta = |label: &str, value: &str| {
        summary.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", escape(label), escape(value)));
    };
    meta(l.kind, kind(report, l));
    meta(l.team, &c.team);
    meta(l.date, &locale.date(&c.date));
    if let Some(f) = &c.facilitator {
        meta(l.facilitator, f);
    }
    if !c.participants.is_empty() {
        meta(l.participants, &c.participants.join(", "));
    }
    summary.push_str("</tbody></table>");
    match report {
        Report::Retrospective(r) => {
            let mut all: Vec<&super::SectionItem> = r.sections.iter().flat_map(|s| s.items.iter()).collect();
            all.sort_by_key(|item| std::cmp::Reverse(item.votes));
            let top: Vec<_> = all.into_iter().filter(|item| item.votes > 0).take(TOP_ITEMS).collect();
            if !top.is_empty() {
                summary.push_str(&format!("<p><strong>{}</strong></p><ol>", escape(l.top_items)));
                for item in top {
                    summary.push_str(&format!(
                        "<li>{} <em>({})</em></li>",
                        escape(&item.text),
                        escape(&l.votes(item.votes))
                    ));
                }
                summary.push_str("</ol>");
            }
        }
        Report::HealthCheck(h) => {
            if !h.dimensions.is_empty() {
                let mean = h.dimensions.iter().map(|d| d.score).sum::<f32>() / h.dimensions.len() as f32;
                summary.push_str(&format!(
                    "<p><strong>{}</strong> {}</p>",
                    escape(l.mean),
                    score_status(mean, rendering)
                ));
            }
        }
    }
    summary.push_str(&format!("<p><a href=\"{}\">{}</a></p>", escape(&c.link), escape(l.open_in_app)));
    out.push_str(&info(l.summary, &summary));

    out.push_str(&format!("<h2>{}</h2>", escape(l.pdf_summary)));
    out.push_str(&view_file(rendering.pdf_filename));

    match report {
        Report::Retrospective(r) => {
            for section in &r.sections {
                out.push_str(&format!("<h2>{}</h2>", escape(&section.title)));
                let items = section.items_by_votes();
                let (shown, rest) = items.split_at(items.len().min(SHOWN_ITEMS));
                let list = |items: &[&super::SectionItem]| -> String {
                    let mut html = String::from("<ul>");
                    for item in items {
                        let mut notes = vec![l.votes(item.votes)];
                        if let Some(author) = &item.author {
                            notes.push(format!("{} {author}", l.by));
                        }
                        if let Some(group) = &item.group {
                            notes.push(format!("{}: {group}", l.group));
                        }
                        html.push_str(&format!(
                            "<li>{} <em>({})</em></li>",
                            escape(&item.text),
                            escape(&notes.join(", "))
                        ));
                    }
                    html.push_str("</ul>");
                    html
                };
                if !shown.is_empty() {
                    out.push_str(&list(shown));
                }
                if !rest.is_empty() {
                    out.push_str(&expand(&l.more_items(rest.len()), &list(rest)));
                }
            }
            if !r.action_items.is_empty() {
                out.push_str(&format!("<h2>{}</h2><ac:task-list>", escape(l.action_items)));
                for (i, a) in r.action_items.iter().enumerate() {
                    let mut body = escape(&a.title);
                    if let Some(email) = &a.assignee_email {
                        body.push_str(&format!(" — {}", escape(email)));
                    }
                    if let Some(due) = &a.due_date {
                        body.push_str(&format!(" · {} {}", escape(l.due), escape(&locale.date(due))));
                    }
                    if let Some(link) = rendering.issues.get(&a.id) {
                        body.push_str(&format!(" · {}", issue_link(link, rendering)));
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
            out.push_str(&format!(
                "<h2>{}</h2><table><tbody><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
                escape(l.dimensions),
                escape(l.dimension),
                escape(l.score),
                escape(l.trend),
                escape(l.comments)
            ));
            for d in &h.dimensions {
                let mut score = score_status(d.score, rendering);
                if let Some(previous) = d.previous_score {
                    score.push_str(&format!(" <em>({} {})</em>", escape(l.previous), locale.decimal(previous)));
                }
                let paragraphs = |comments: &[String]| -> String {
                    comments.iter().map(|c| format!("<p>{}</p>", escape(c))).collect()
                };
                let (shown, rest) = d.comments.split_at(d.comments.len().min(SHOWN_COMMENTS));
                let mut comments = paragraphs(shown);
                if !rest.is_empty() {
                    comments.push_str(&expand(&l.more_items(rest.len()), &paragraphs(rest)));
                }
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{score}</td><td>{}</td><td>{comments}</td></tr>",
                    escape(&d.name),
                    trend_status(d.trend, l)
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

fn kind(report: &Report, l: &Labels) -> &'static str {
    match report {
        Report::Retrospective(_) => l.retrospective,
        Report::HealthCheck(_) => l.health_check,
    }
}

/// `<ac:structured-macro>` with parameters (already XML) and, when given, a rich-text body.
/// No `ac:macro-id`: the editor adds one, but a random id would change the body on every publish.
fn structured(name: &str, params: &str, body: Option<&str>) -> String {
    let body = body.map(|b| format!("<ac:rich-text-body>{b}</ac:rich-text-body>")).unwrap_or_default();
    format!("<ac:structured-macro ac:name=\"{name}\" ac:schema-version=\"1\">{params}{body}</ac:structured-macro>")
}

/// A text parameter.
fn param(name: &str, value: &str) -> String {
    format!("<ac:parameter ac:name=\"{name}\">{}</ac:parameter>", escape(value))
}

/// The Status macro's colours (documented: Grey, Red, Yellow, Green, Blue).
#[derive(Debug, Clone, Copy)]
enum Colour {
    Grey,
    Red,
    Yellow,
    Green,
}

/// A lozenge. Status Macro, parameters `colour`, `title`, `subtle`:
/// <https://confluence.atlassian.com/doc/status-macro-223222355.html>.
fn status(colour: Colour, title: &str) -> String {
    let colour = match colour {
        Colour::Grey => "Grey",
        Colour::Red => "Red",
        Colour::Yellow => "Yellow",
        Colour::Green => "Green",
    };
    structured("status", &format!("{}{}", param("colour", colour), param("title", title)), None)
}

/// The score as a lozenge in its band's colour, with the number and the band's name written in
/// it, so colour is never the only cue: "7.5 / 10 · Good".
fn score_status(score: f32, rendering: &Rendering<'_>) -> String {
    let band = Band::of(score);
    let colour = match band {
        Band::Low => Colour::Red,
        Band::Mid => Colour::Yellow,
        Band::High => Colour::Green,
    };
    let l = rendering.locale.labels();
    status(colour, &format!("{} / 10 · {}", rendering.locale.decimal(score), l.band(band)))
}

fn trend_status(trend: Trend, l: &Labels) -> String {
    match trend {
        Trend::Up => status(Colour::Green, &format!("↑ {}", l.trend_up)),
        Trend::Down => status(Colour::Red, &format!("↓ {}", l.trend_down)),
        Trend::Flat => status(Colour::Grey, &format!("→ {}", l.trend_flat)),
    }
}

/// Info macro, parameters `title`, `icon`, rich-text body:
/// <https://confluence.atlassian.com/doc/info-tip-note-and-warning-macros-51872369.html>.
fn info(title: &str, body: &str) -> String {
    structured("info", &param("title", title), Some(body))
}

/// Expand macro, parameter `title`, rich-text body:
/// <https://confluence.atlassian.com/doc/expand-macro-223222352.html>.
fn expand(title: &str, body: &str) -> String {
    structured("expand", &param("title", title), Some(body))
}

/// Table of Contents macro over the section headings (`minLevel`, `maxLevel`):
/// <https://confluence.atlassian.com/doc/table-of-contents-macro-182682099.html>.
fn toc() -> String {
    structured("toc", &format!("{}{}", param("minLevel", "2"), param("maxLevel", "2")), None)
}

/// View File macro: the attachment (`name`, an `ri:attachment` resource identifier) shown
/// inline, `height` in pixels, in the form Confluence's editor writes. Confluence documents the
/// file viewer macros' parameters as `name`, `page`, `height`, `width` (e.g. the PowerPoint
/// viewer: <https://confluence.atlassian.com/plugins/viewsource/viewpagesrc.action?pageId=428803136>)
/// and `ri:attachment ri:filename` in the Storage Format page (module docs).
fn view_file(filename: &str) -> String {
    let name =
        format!("<ac:parameter ac:name=\"name\"><ri:attachment ri:filename=\"{}\" /></ac:parameter>", escape(filename));
    structured("view-file", &format!("{name}{}", param("height", "250")), None)
}

/// An action item's issue. Cloud: a smart link — an ordinary link with the one attribute
/// Confluence Cloud's editor writes for an inline card (`data-card-appearance="inline"`),
/// which the storage-format reference predates. Data Center with the application link: the
/// Jira Issues macro for one issue (`key`, `server`, `serverId`),
/// <https://confluence.atlassian.com/doc/jira-issues-macro-139380.html>. Else a plain link; a
/// URL that is not http(s) is never written as a link.
fn issue_link(link: &IssueLink, rendering: &Rendering<'_>) -> String {
    let web = link.url.starts_with("https://") || link.url.starts_with("http://");
    match (rendering.flavour, rendering.jira_link) {
        (Flavour::DataCenter, Some(app)) => structured(
            "jira",
            &format!(
                "{}{}{}",
                param("server", &app.server_name),
                param("serverId", &app.server_id),
                param("key", &link.key)
            ),
            None,
        ),
        (Flavour::Cloud, _) if web => {
            format!("<a href=\"{}\" data-card-appearance=\"inline\">{}</a>", escape(&link.url), escape(&link.key))
        }
        _ if web => format!("<a href=\"{}\">{}</a>", escape(&link.url), escape(&link.key)),
        _ => escape(&link.key),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use quick_xml::Reader;
    use quick_xml::events::{BytesStart, Event};

    use super::*;
    use crate::reports::tests::{health_check, retrospective};
    use crate::reports::{IssueLink, Locale};
    use crate::settings::JiraApplicationLink;

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

    // ---- user text through an XML parser: property tests and the fuzz seeds --------------

    use proptest::prelude::*;

    /// What XML 1.0 can carry of a text: [`escape`] drops the characters it forbids.
    fn xml_chars(text: &str) -> String {
        text.chars()
            .filter(|&c| matches!(c, '\t' | '\n' | '\r') || !((c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}'))
            .collect()
    }

    fn xml_text() -> impl Strategy<Value = String> {
        let pieces = prop_oneof![
            "[<>&\"';#/ a-z]{1,6}",
            Just("]]>".to_owned()),
            Just("<![CDATA[".to_owned()),
            Just("&amp;".to_owned()),
            Just("<ac:structured-macro ac:name=\"html\">".to_owned()),
            Just("\u{0}\u{1}\u{1f}\u{fffe}\u{ffff}".to_owned()),
            Just("🎉 שלום 日本語".to_owned()),
            any::<String>(),
        ];
        proptest::collection::vec(pieces, 0..16).prop_map(|p| p.concat())
    }

    proptest! {
        /// Text in → the same text out of an XML parser (less what XML cannot carry), as element
        /// text and as a macro parameter, and never markup.
        #[test]
        fn escaped_text_round_trips_through_an_xml_parser(text in xml_text()) {
            prop_assert_eq!(well_formed_text(&format!("<p>{}</p>", escape(&text))), xml_chars(&text));
            prop_assert_eq!(well_formed_text(&marker_macro(&text)), xml_chars(&text));
        }

        /// Any titles and items: the page holds only what the storage format documents, and
        /// shows each text as typed.
        #[test]
        fn any_report_text_renders_a_documented_page(title in xml_text(), items in proptest::collection::vec(xml_text(), 1..4)) {
            let title = if title.trim().is_empty() { "t".to_owned() } else { title };
            let items: Vec<String> = items.into_iter().map(|i| if i.trim().is_empty() { "i".to_owned() } else { i }).collect();
            let mut report = retrospective(&items.iter().map(String::as_str).collect::<Vec<_>>());
            if let Report::Retrospective(r) = &mut report {
                r.common.title = title.clone();
            }
            prop_assume!(report.validate().is_ok());
            let body = render(&report, "m", &Rendering::plain()).unwrap();
            prop_assert_eq!(documented(&body), Ok(()));
            let shown = well_formed_text(&body);
            for t in items.iter().chain([&title]) {
                prop_assert!(shown.contains(&xml_chars(t.trim())), "{:?} not shown", t);
            }
        }
    }

    /// The storage_render and pdf_render fuzz targets' corpora: each report in them that the
    /// API accepts renders a documented page (the rest of the corpus is `arbitrary` bytes).
    #[test]
    fn the_fuzz_corpus_renders_documented_pages() {
        let mut rendered = 0;
        for target in ["storage_render", "pdf_render"] {
            let dir = format!("{}/../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
            for entry in std::fs::read_dir(dir).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                let Ok(report) = serde_json::from_slice::<Report>(&bytes) else { continue };
                if report.validate().is_err() {
                    continue;
                }
                let body = render(&report, "m", &Rendering::plain()).unwrap();
                assert_eq!(documented(&body), Ok(()), "{body}");
                rendered += 1;
            }
        }
        assert!(rendered >= 10, "the seed corpus is there ({rendered})");
    }

    // ---- what Confluence documents for its storage format ---------------------------------

    /// XHTML elements and Confluence elements of the storage format, with the attributes each may
    /// carry. Confluence Storage Format:
    /// <https://confluence.atlassian.com/doc/confluence-storage-format-790796544.html>
    /// (headings, text effects, lists, task lists, links, tables, resource identifiers, macros).
    /// The one attribute beyond it is `data-card-appearance` on `<a>`, which Confluence Cloud's
    /// editor writes for a smart link (issue 17 allows that one).
    const ELEMENTS: &[(&str, &[&str])] = &[
        ("h1", &[]),
        ("h2", &[]),
        ("h3", &[]),
        ("p", &[]),
        ("strong", &[]),
        ("em", &[]),
        ("ul", &[]),
        ("ol", &[]),
        ("li", &[]),
        ("table", &[]),
        ("tbody", &[]),
        ("tr", &[]),
        ("th", &[]),
        ("td", &[]),
        ("a", &["href", "data-card-appearance"]),
        ("ac:structured-macro", &["ac:name", "ac:schema-version"]),
        ("ac:parameter", &["ac:name"]),
        ("ac:rich-text-body", &[]),
        ("ac:task-list", &[]),
        ("ac:task", &[]),
        ("ac:task-id", &[]),
        ("ac:task-status", &[]),
        ("ac:task-body", &[]),
        ("ri:attachment", &["ri:filename"]),
    ];

    struct MacroDoc {
        name: &'static str,
        /// The parameters its storage format documents ("" is the unnamed default parameter).
        params: &'static [&'static str],
        /// Whether it takes an `ac:rich-text-body`.
        body: bool,
        #[allow(dead_code)]
        reference: &'static str,
    }

    const MACROS: &[MacroDoc] = &[
        MacroDoc {
            name: "anchor",
            params: &[""],
            body: false,
            reference: "https://confluence.atlassian.com/plugins/viewsource/viewpagesrc.action?pageId=658736844",
        },
        MacroDoc {
            name: "status",
            params: &["colour", "title", "subtle"],
            body: false,
            reference: "https://confluence.atlassian.com/doc/status-macro-223222355.html",
        },
        MacroDoc {
            name: "info",
            params: &["title", "icon"],
            body: true,
            reference: "https://confluence.atlassian.com/doc/info-tip-note-and-warning-macros-51872369.html",
        },
        MacroDoc {
            name: "expand",
            params: &["title"],
            body: true,
            reference: "https://confluence.atlassian.com/doc/expand-macro-223222352.html",
        },
        MacroDoc {
            name: "toc",
            params: &[
                "type",
                "outline",
                "style",
                "indent",
                "separator",
                "minLevel",
                "maxLevel",
                "include",
                "exclude",
                "printable",
                "class",
                "absoluteUrl",
            ],
            body: false,
            reference: "https://confluence.atlassian.com/doc/table-of-contents-macro-182682099.html",
        },
        MacroDoc {
            name: "view-file",
            params: &["name", "page", "height", "width"],
            body: false,
            reference: "https://confluence.atlassian.com/plugins/viewsource/viewpagesrc.action?pageId=428803136",
        },
        MacroDoc {
            name: "jira",
            params: &["key", "server", "serverId", "jqlQuery", "columns", "count", "maximumIssues", "cache"],
            body: false,
            reference: "https://confluence.atlassian.com/doc/jira-issues-macro-139380.html",
        },
    ];

    fn attributes(e: &BytesStart<'_>) -> Result<Vec<(String, String)>, String> {
        e.attributes()
            .map(|a| {
                let a = a.map_err(|e| e.to_string())?;
                let value = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
                Ok((String::from_utf8_lossy(a.key.as_ref()).into_owned(), value))
            })
            .collect()
    }

    /// Holds a body against the lists above: every element, attribute, macro and parameter must
    /// be documented, macro bodies only where the macro takes one, `ri:attachment` only as the
    /// file of a `view-file`, and the values the status macro and task lists document.
    fn documented(body: &str) -> Result<(), String> {
        let doc = format!(
            "<root xmlns:ac=\"http://atlassian.com/content\" xmlns:ri=\"http://atlassian.com/resource/identifier\">{body}</root>"
        );
        let mut reader = Reader::from_str(&doc);
        // (element, macro name or parameter name)
        let mut stack: Vec<(String, String)> = Vec::new();
        let mut text = String::new();
        let mut first = true;
        loop {
            let event = reader.read_event().map_err(|e| format!("not well-formed: {e}"))?;
            let (start, empty) = match &event {
                Event::Start(e) => (Some(e.clone()), false),
                Event::Empty(e) => (Some(e.clone()), true),
                _ => (None, false),
            };
            if let Some(e) = start {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if first {
                    first = false;
                    stack.push((name, String::new()));
                    continue;
                }
                let Some((_, allowed)) = ELEMENTS.iter().find(|(n, _)| *n == name) else {
                    return Err(format!("element <{name}> is not in the storage format"));
                };
                let attrs = attributes(&e)?;
                for (key, _) in &attrs {
                    if !allowed.contains(&key.as_str()) {
                        return Err(format!("attribute {key} is not documented on <{name}>"));
                    }
                }
                let attr = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                let parent = stack.last().cloned().unwrap_or_default();
                let context = match name.as_str() {
                    "ac:structured-macro" => {
                        let macro_name = attr("ac:name").ok_or("a macro without ac:name")?;
                        if !MACROS.iter().any(|m| m.name == macro_name) {
                            return Err(format!("macro {macro_name:?} is not on the documented list"));
                        }
                        macro_name
                    }
                    "ac:parameter" => {
                        let param = attr("ac:name").ok_or("a parameter without ac:name")?;
                        if parent.0 != "ac:structured-macro" {
                            return Err(format!("parameter {param:?} outside a macro"));
                        }
                        let doc = MACROS.iter().find(|m| m.name == parent.1).ok_or("unknown macro")?;
                        if !doc.params.contains(&param.as_str()) {
                            return Err(format!("macro {:?} documents no parameter {param:?}", doc.name));
                        }
                        format!("{}.{param}", parent.1)
                    }
                    "ac:rich-text-body" => {
                        let doc = MACROS.iter().find(|m| m.name == parent.1 && parent.0 == "ac:structured-macro");
                        if !doc.is_some_and(|d| d.body) {
                            return Err(format!("a rich-text body in {:?}, which takes none", parent.1));
                        }
                        String::new()
                    }
                    "ri:attachment" => {
                        if parent.1 != "view-file.name" {
                            return Err("ri:attachment outside a view-file's name".into());
                        }
                        String::new()
                    }
                    "a" => {
                        if let Some(appearance) = attr("data-card-appearance") {
                            if appearance != "inline" {
                                return Err(format!("data-card-appearance {appearance:?}"));
                            }
                        }
                        let href = attr("href").ok_or("a link without href")?;
                        if !(href.starts_with("https://") || href.starts_with("http://")) {
                            return Err(format!("link to {href:?}"));
                        }
                        String::new()
                    }
                    _ => String::new(),
                };
                if !empty {
                    stack.push((name, context));
                    text.clear();
                }
                continue;
            }
            match event {
                Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
                Event::GeneralRef(_) => text.push('&'),
                Event::CData(_) => return Err("a CDATA section".into()),
                Event::End(_) => {
                    let (name, context) = stack.pop().ok_or("unbalanced")?;
                    let value = text.trim().to_owned();
                    match (name.as_str(), context.as_str()) {
                        ("ac:parameter", "status.colour")
                            if !["Grey", "Red", "Yellow", "Green", "Blue"].contains(&value.as_str()) =>
                        {
                            return Err(format!("status colour {value:?}"));
                        }
                        ("ac:parameter", "status.subtle") if value != "true" && value != "false" => {
                            return Err(format!("status subtle {value:?}"));
                        }
                        ("ac:task-status", _) if value != "incomplete" && value != "complete" => {
                            return Err(format!("task status {value:?}"));
                        }
                        _ => {}
                    }
                    text.clear();
                }
                Event::Eof => break,
                Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {
                    return Err("comments, processing instructions and doctypes are not page content".into());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn issues() -> BTreeMap<String, IssueLink> {
        BTreeMap::from([(
            "a-1".to_owned(),
            IssueLink { key: "ENG-42".into(), url: "https://jira.example.test/browse/ENG-42".into() },
        )])
    }

    fn applink() -> JiraApplicationLink {
        JiraApplicationLink {
            server_name: "Company Jira".into(),
            server_id: "144880e9-a353-312f-9412-ed028e8166fa".into(),
        }
    }

    /// A retrospective past both thresholds: long sections, many comments.
    fn long_report() -> Report {
        let items: Vec<String> = (0..40).map(|i| format!("item {i}")).collect();
        let mut report = retrospective(&items.iter().map(String::as_str).collect::<Vec<_>>());
        if let Report::Retrospective(r) = &mut report {
            let mut extra = r.sections[0].clone();
            extra.title = "To improve".into();
            r.sections.push(extra.clone());
            extra.title = "Ideas".into();
            r.sections.push(extra);
        }
        report
    }

    fn long_health_check() -> Report {
        let mut report = health_check();
        if let Report::HealthCheck(h) = &mut report {
            h.dimensions[0].comments = (0..12).map(|i| format!("comment {i}")).collect();
            h.dimensions[0].previous_score = Some(6.0);
        }
        report
    }

    const HOSTILE: [&str; 5] = [
        "<ac:structured-macro ac:name=\"html\"><ac:plain-text-body><![CDATA[<script>alert(1)</script>]]></ac:plain-text-body></ac:structured-macro>",
        "]]> & <script>alert('x')</script>",
        "ctrl\u{0}\u{1}\u{1b}chars\u{7f}",
        "emoji 🎉🚀 and RTL שלום עולם مرحبا",
        "Ελληνικά и кириллица",
    ];

    /// Every kind of page we render, in every locale.
    fn every_page() -> Vec<(String, String)> {
        let issues = issues();
        let app = applink();
        let mut pages = Vec::new();
        for locale in Locale::ALL {
            let plain = Rendering { locale, ..Rendering::plain() };
            let cloud = Rendering { issues: &issues, ..plain };
            let dc = Rendering { flavour: Flavour::DataCenter, ..cloud };
            let dc_applink = Rendering { jira_link: Some(&app), ..dc };
            let cases: [(&str, Report, Rendering<'_>); 8] = [
                ("retrospective", retrospective(&["Good pairing", "Fast CI"]), plain),
                ("health check", health_check(), plain),
                ("long retrospective", long_report(), plain),
                ("long health check", long_health_check(), plain),
                ("cloud with links", retrospective(&["a"]), cloud),
                ("dc without applink", retrospective(&["a"]), dc),
                ("dc with applink", retrospective(&["a"]), dc_applink),
                ("hostile text", retrospective(&HOSTILE), dc_applink),
            ];
            for (name, report, rendering) in cases {
                let body = render(&report, "bridge-report-x\"<&", &rendering).unwrap();
                pages.push((format!("{name} ({locale:?})"), body));
            }
        }
        pages
    }

    #[test]
    fn every_page_uses_only_documented_elements_macros_and_parameters() {
        for (name, body) in every_page() {
            well_formed_text(&body);
            if let Err(e) = documented(&body) {
                panic!("{name}: {e}\n{body}");
            }
        }
    }

    #[test]
    fn the_validator_refuses_what_confluence_does_not_document() {
        let ok = render(&health_check(), "m", &Rendering::plain()).unwrap();
        assert_eq!(documented(&ok), Ok(()));
        for (bad, why) in [
            ("<ac:structured-macro ac:name=\"html\"></ac:structured-macro>", "macro \"html\""),
            (
                "<ac:structured-macro ac:name=\"status\"><ac:parameter ac:name=\"color\">Red</ac:parameter></ac:structured-macro>",
                "parameter \"color\"",
            ),
            (
                "<ac:structured-macro ac:name=\"status\"><ac:parameter ac:name=\"colour\">Amber</ac:parameter></ac:structured-macro>",
                "colour \"Amber\"",
            ),
            (
                "<ac:structured-macro ac:name=\"status\"><ac:rich-text-body><p>x</p></ac:rich-text-body></ac:structured-macro>",
                "takes none",
            ),
            ("<ac:structured-macro ac:name=\"info\" ac:macro-id=\"x\"></ac:structured-macro>", "ac:macro-id"),
            ("<p style=\"color: red\">x</p>", "attribute style"),
            ("<p data-card-appearance=\"inline\">x</p>", "data-card-appearance is not documented on <p>"),
            ("<a href=\"https://x.test\" data-card-appearance=\"embed\">x</a>", "embed"),
            ("<a href=\"javascript:alert(1)\">x</a>", "javascript"),
            ("<script>x</script>", "<script>"),
            ("<ri:attachment ri:filename=\"x.pdf\" />", "outside a view-file"),
            ("<div>x</div>", "<div>"),
        ] {
            let err = documented(&format!("{ok}{bad}")).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn rendering_the_same_report_twice_gives_the_same_bytes() {
        let issues = issues();
        let app = applink();
        for (report, rendering) in [
            (long_report(), Rendering { issues: &issues, ..Rendering::plain() }),
            (long_health_check(), Rendering { locale: Locale::Ja, ..Rendering::plain() }),
            (
                retrospective(&HOSTILE),
                Rendering {
                    issues: &issues,
                    flavour: Flavour::DataCenter,
                    jira_link: Some(&app),
                    ..Rendering::plain()
                },
            ),
        ] {
            let first = render(&report, "m", &rendering).unwrap();
            // The same report read again from its JSON, as a redelivery would.
            let again: Report = serde_json::from_value(serde_json::to_value(&report).unwrap()).unwrap();
            assert_eq!(render(&again, "m", &rendering).unwrap(), first);
            assert!(!first.contains("ac:macro-id"));
        }
    }

    #[test]
    fn hostile_text_stays_text_and_the_page_stays_well_formed() {
        let body = render(&retrospective(&HOSTILE), "bridge-report-x", &Rendering::plain()).unwrap();
        let text = well_formed_text(&body);
        assert!(text.contains("<ac:structured-macro ac:name=\"html\">"), "macro shown as text");
        assert!(text.contains("]]> & <script>alert('x')</script>"));
        assert!(text.contains("ctrlchars\u{7f}"));
        assert!(text.contains("emoji 🎉🚀 and RTL שלום עולם مرحبا"));
        assert!(text.contains("Ελληνικά и кириллица"));
        // The only macros in the page are ours.
        assert!(!body.contains("ac:name=\"html\""));
        assert!(!body.contains("<script"));
        assert_eq!(documented(&body), Ok(()));
    }

    #[test]
    fn the_marker_anchor_comes_first_and_is_unchanged() {
        let body = render(&health_check(), "bridge-report-x", &Rendering::plain()).unwrap();
        assert!(body.starts_with(
            "<ac:structured-macro ac:name=\"anchor\" ac:schema-version=\"1\"><ac:parameter ac:name=\"\">bridge-report-x</ac:parameter></ac:structured-macro><h1>"
        ));
    }

    #[test]
    fn retrospectives_have_a_summary_sections_votes_and_a_task_list() {
        let body = render(&retrospective(&["Good pairing", "Fast CI"]), "m", &Rendering::plain()).unwrap();
        assert!(body.contains("<ac:structured-macro ac:name=\"info\" ac:schema-version=\"1\"><ac:parameter ac:name=\"title\">Summary</ac:parameter><ac:rich-text-body><table><tbody><tr><th>Type</th><td>Retrospective</td></tr><tr><th>Team</th><td>Platform</td></tr><tr><th>Date</th><td>20 Nov 2026</td></tr>"));
        assert!(body.contains("<p><strong>Top items</strong></p><ol><li>Good pairing <em>(3 votes)</em></li>"));
        assert!(body.contains("<p><a href=\"https://app.example.test/retros/r-1\">Open in the app</a></p></ac:rich-text-body></ac:structured-macro>"));
        assert!(body.contains("<h2>Went well</h2><ul><li>Good pairing <em>(3 votes, by Ben)</em></li>"));
        assert!(body.contains("<ac:task-list><ac:task><ac:task-id>1</ac:task-id>"));
        assert!(body.contains("Fix the flaky test — ben@example.test · Due 1 Dec 2026</ac:task-body>"));
        // Short: no table of contents, nothing collapsed.
        assert!(!body.contains("ac:name=\"toc\"") && !body.contains("ac:name=\"expand\""));
        well_formed_text(&body);
    }

    #[test]
    fn the_pdf_is_shown_inline_by_its_attachment_name() {
        let rendering = Rendering { pdf_filename: "retrospective-r-1.pdf", ..Rendering::plain() };
        let body = render(&retrospective(&["a"]), "m", &rendering).unwrap();
        assert!(body.contains("<h2>PDF summary</h2><ac:structured-macro ac:name=\"view-file\" ac:schema-version=\"1\"><ac:parameter ac:name=\"name\"><ri:attachment ri:filename=\"retrospective-r-1.pdf\" /></ac:parameter><ac:parameter ac:name=\"height\">250</ac:parameter></ac:structured-macro>"));
    }

    #[test]
    fn health_check_scores_and_trends_are_lozenges_coloured_by_band() {
        let body = render(&health_check(), "m", &Rendering::plain()).unwrap();
        let lozenge = |colour: &str, title: &str| {
            format!(
                "<ac:structured-macro ac:name=\"status\" ac:schema-version=\"1\"><ac:parameter ac:name=\"colour\">{colour}</ac:parameter><ac:parameter ac:name=\"title\">{title}</ac:parameter></ac:structured-macro>"
            )
        };
        assert!(body.contains(&format!(
            "<tr><td>Speed</td><td>{}</td><td>{}</td><td><p>Faster builds</p></td></tr>",
            lozenge("Green", "7.5 / 10 · Good"),
            lozenge("Green", "↑ up")
        )));
        assert!(body.contains(&format!(
            "<tr><td>Fun</td><td>{}</td><td>{}</td><td></td></tr>",
            lozenge("Yellow", "4.0 / 10 · Fair"),
            lozenge("Red", "↓ down")
        )));
        // The summary's mean (5.75) is a lozenge of its band too.
        assert!(body.contains(&format!("<p><strong>Mean</strong> {}</p>", lozenge("Yellow", "5.8 / 10 · Fair"))));
        let mut low = health_check();
        if let Report::HealthCheck(h) = &mut low {
            h.dimensions[0].score = 3.9;
            h.dimensions[0].trend = Trend::Flat;
        }
        let body = render(&low, "m", &Rendering::plain()).unwrap();
        assert!(body.contains(&lozenge("Red", "3.9 / 10 · Needs attention")));
        assert!(body.contains(&lozenge("Grey", "→ flat")));
        well_formed_text(&body);
    }

    #[test]
    fn long_reports_get_a_table_of_contents_and_collapse_their_long_tails() {
        let body = render(&long_report(), "m", &Rendering::plain()).unwrap();
        assert_eq!(
            body.matches("<ac:structured-macro ac:name=\"toc\" ac:schema-version=\"1\"><ac:parameter ac:name=\"minLevel\">2</ac:parameter><ac:parameter ac:name=\"maxLevel\">2</ac:parameter></ac:structured-macro>").count(),
            1
        );
        // Each 40-item section shows 10 and collapses 30.
        assert_eq!(
            body.matches("<ac:parameter ac:name=\"title\">30 more</ac:parameter><ac:rich-text-body><ul>").count(),
            3
        );
        let text = well_formed_text(&body);
        assert!(text.contains("item 39"));
        // Below both thresholds: none (2 sections, 29 items).
        let items: Vec<String> = (0..29).map(|i| format!("item {i}")).collect();
        let short =
            render(&retrospective(&items.iter().map(String::as_str).collect::<Vec<_>>()), "m", &Rendering::plain())
                .unwrap();
        assert!(!short.contains("ac:name=\"toc\""));

        let body = render(&long_health_check(), "m", &Rendering::plain()).unwrap();
        assert!(body.contains("<p>comment 2</p><ac:structured-macro ac:name=\"expand\" ac:schema-version=\"1\"><ac:parameter ac:name=\"title\">9 more</ac:parameter><ac:rich-text-body><p>comment 3</p>"));
        assert!(body.contains("<em>(previous 6.0)</em>"));
    }

    #[test]
    fn action_items_link_to_their_issues_the_way_each_deployment_renders_them() {
        let issues = issues();
        let app = applink();
        let report = retrospective(&["a"]);
        let cloud = render(&report, "m", &Rendering { issues: &issues, ..Rendering::plain() }).unwrap();
        assert!(cloud.contains(
            "· <a href=\"https://jira.example.test/browse/ENG-42\" data-card-appearance=\"inline\">ENG-42</a></ac:task-body>"
        ));
        let dc = Rendering { issues: &issues, flavour: Flavour::DataCenter, ..Rendering::plain() };
        let plain = render(&report, "m", &dc).unwrap();
        assert!(plain.contains("· <a href=\"https://jira.example.test/browse/ENG-42\">ENG-42</a></ac:task-body>"));
        assert!(!plain.contains("data-card-appearance"));
        let with_app = render(&report, "m", &Rendering { jira_link: Some(&app), ..dc }).unwrap();
        assert!(with_app.contains("· <ac:structured-macro ac:name=\"jira\" ac:schema-version=\"1\"><ac:parameter ac:name=\"server\">Company Jira</ac:parameter><ac:parameter ac:name=\"serverId\">144880e9-a353-312f-9412-ed028e8166fa</ac:parameter><ac:parameter ac:name=\"key\">ENG-42</ac:parameter></ac:structured-macro></ac:task-body>"));
        // The application link is a Data Center thing: Cloud keeps its smart link.
        let cloud_app =
            render(&report, "m", &Rendering { issues: &issues, jira_link: Some(&app), ..Rendering::plain() }).unwrap();
        assert_eq!(cloud_app, cloud);
        // No issue yet: no link; a URL that is not http(s) is not made a link.
        let none = render(&report, "m", &Rendering::plain()).unwrap();
        assert!(!none.contains("ENG-42"));
        let odd =
            BTreeMap::from([("a-1".to_owned(), IssueLink { key: "ENG-1".into(), url: "javascript:alert(1)".into() })]);
        let body = render(&report, "m", &Rendering { issues: &odd, ..Rendering::plain() }).unwrap();
        assert!(body.contains("· ENG-1</ac:task-body>") && !body.contains("javascript"));
    }

    #[test]
    fn a_german_page_says_team_and_datum_and_a_japanese_page_writes_its_dates() {
        let de = render(&retrospective(&["a"]), "m", &Rendering { locale: Locale::De, ..Rendering::plain() }).unwrap();
        assert!(de.contains("<tr><th>Art</th><td>Retrospektive</td></tr><tr><th>Team</th><td>Platform</td></tr><tr><th>Datum</th><td>20.11.2026</td></tr>"));
        assert!(de.contains("<h2>Aktionspunkte</h2>"));
        assert!(
            de.contains("In der App öffnen") && de.contains("(3 Stimmen, von Ben)") && de.contains("Fällig 01.12.2026")
        );
        assert!(!de.contains(">Date<") && !de.contains("votes"));

        let ja = render(&health_check(), "m", &Rendering { locale: Locale::Ja, ..Rendering::plain() }).unwrap();
        assert!(ja.contains("<th>日付</th><td>2026年11月21日</td>"));
        assert!(ja.contains("<h2>評価項目</h2>") && ja.contains("7.5 / 10 · 良好") && ja.contains("↑ 上昇"));

        let fr = render(&health_check(), "m", &Rendering { locale: Locale::Fr, ..Rendering::plain() }).unwrap();
        assert!(
            fr.contains("<td>21/11/2026</td>")
                && fr.contains("7,5 / 10 · Bon")
                && fr.contains("Ouvrir dans l’application")
        );
        for locale in [Locale::Es, Locale::Pt] {
            let body = render(&retrospective(&["a"]), "m", &Rendering { locale, ..Rendering::plain() }).unwrap();
            assert!(body.contains("<td>20/11/2026</td>"), "{locale:?}");
            assert!(body.contains(&format!("<h2>{}</h2>", locale.labels().action_items)), "{locale:?}");
        }
    }

    #[test]
    fn a_report_over_the_body_limit_is_refused_not_truncated() {
        let big = "x".repeat(super::super::MAX_TEXT);
        let items: Vec<&str> = (0..1500).map(|_| big.as_str()).collect();
        let err = render(&retrospective(&items), "m", &Rendering::plain()).unwrap_err();
        assert!(err.size > MAX_BODY_BYTES);
    }
}
