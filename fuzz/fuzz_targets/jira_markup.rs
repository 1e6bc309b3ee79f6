//! Jira descriptions and summaries on any text: never panic; the wiki markup (Server/DC) reads
//! back, through `markup::wiki_shown` (how Jira's renderer reads what we escape), as exactly
//! the text typed, with no markup active, and the back link is one `[title|url]` on its own
//! line with a plain http(s) URL; the ADF document (Cloud) holds only paragraphs of non-empty
//! text nodes without line breaks or control characters, whose text is the text typed; the
//! summary is one line of at most 255 characters. The input is `text \x1e title \x1e url`
//! (any bytes, read as UTF-8 with replacement), so the seeds are plain text.
#![no_main]

use bridge::issues::markup::{self, BackLink, SUMMARY_MAX};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Input {
    text: String,
    title: String,
    url: String,
    https: bool,
}

impl Input {
    fn of(data: &[u8]) -> Self {
        let all = String::from_utf8_lossy(data);
        let mut parts = all.splitn(3, '\u{1e}');
        let text = parts.next().unwrap_or_default().to_owned();
        let title = parts.next().unwrap_or("Sprint 42 retro").to_owned();
        let url = parts.next().unwrap_or("r/1").to_owned();
        Self { text, title, url, https: data.len() % 5 != 0 }
    }
}

fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() || *c == '\t').collect()
}

/// The typed text as the wiki shows it: lines (`\n`, `\r\n`), control characters dropped.
fn as_lines(text: &str) -> String {
    text.lines().map(clean).collect::<Vec<_>>().join("\n")
}

/// The paragraphs of an ADF document as text: hard breaks as `\n`, paragraphs apart by `\n\n`.
fn adf_text(doc: &Value) -> Vec<String> {
    assert_eq!(doc["type"], "doc");
    assert_eq!(doc["version"], 1);
    let mut paragraphs = Vec::new();
    for p in doc["content"].as_array().expect("doc content") {
        assert_eq!(p["type"], "paragraph", "{doc}");
        let mut text = String::new();
        for node in p["content"].as_array().expect("paragraph content") {
            match node["type"].as_str() {
                Some("text") => {
                    let t = node["text"].as_str().expect("text");
                    assert!(!t.is_empty(), "an empty text node: {doc}");
                    assert!(!t.chars().any(|c| c.is_control() && c != '\t'), "a control character: {t:?}");
                    text.push_str(t);
                }
                Some("hardBreak") => text.push('\n'),
                other => panic!("node {other:?} in {doc}"),
            }
        }
        paragraphs.push(text);
    }
    paragraphs
}

fuzz_target!(|data: &[u8]| {
    let input = Input::of(data);
    let url = if input.https { format!("https://app.example.test/{}", input.url) } else { input.url.clone() };
    let link = BackLink { title: &input.title, url: &url };

    // Wiki markup: the text reads back as typed, and nothing in it is markup.
    let escaped = markup::wiki_escape(&input.text);
    let shown = markup::wiki_shown(&escaped).unwrap_or_else(|e| panic!("{e}: {escaped:?}"));
    assert_eq!(shown, as_lines(&input.text));

    let wiki = markup::wiki(Some(&input.text), Some(&link));
    let body = markup::wiki_escape(input.text.trim());
    match wiki.strip_prefix(body.as_str()).map(|rest| rest.trim_start_matches('\n')) {
        Some("") => {}
        Some(rest) => {
            let title = if rest == format!("From retrospective: [{url}]") {
                ""
            } else {
                rest.strip_prefix("From retrospective: [")
                    .and_then(|r| r.strip_suffix(&format!("|{url}]")))
                    .unwrap_or_else(|| panic!("not one back link: {rest:?}"))
            };
            assert!(!title.contains('\n'), "a back link across lines: {rest:?}");
            wiki_shown_ok(title);
            assert!(url.starts_with("https://") || url.starts_with("http://"));
            assert!(!url.chars().any(|c| c.is_whitespace() || "|[]{}".contains(c)), "{url:?}");
        }
        None => panic!("the description does not start with the escaped text: {wiki:?}"),
    }

    // ADF: paragraphs of clean text nodes that hold the text typed.
    let doc = markup::adf(Some(&input.text), None);
    let want: Vec<String> = input
        .text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.lines().map(clean).collect::<Vec<_>>().join("\n"))
        .collect();
    assert_eq!(adf_text(&doc), want);
    let with_link = markup::adf(Some(&input.text), Some(&link));
    let n = with_link["content"].as_array().map_or(0, Vec::len);
    assert_eq!(with_link["content"][n - 1]["content"][1]["marks"][0]["attrs"]["href"], url.as_str());
    let reparsed: Value = serde_json::from_str(&with_link.to_string()).expect("ADF is JSON");
    assert_eq!(reparsed, with_link);

    // The summary: one clean line within Jira's limit.
    let summary = markup::summary(&input.title);
    assert!(summary.chars().count() <= SUMMARY_MAX);
    assert!(!summary.chars().any(char::is_control), "{summary:?}");
});

fn wiki_shown_ok(title: &str) {
    if let Err(e) = markup::wiki_shown(title) {
        panic!("the link title is markup: {e}: {title:?}");
    }
}
