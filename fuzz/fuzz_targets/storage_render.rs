//! The Confluence storage-format renderer on any report that validates: never panics, and the
//! page is well-formed XML made only of the elements the renderer writes, with no CDATA section
//! and no entity beyond the five it escapes with — so no user text became markup — and every
//! piece of user text shows on the page as typed (less the characters XML 1.0 forbids).
#![no_main]

#[path = "../common/report.rs"]
mod report;

use bridge::reports::storage::{self, TooLarge};
use bridge::reports::{FontBook, Rendering};
use bridge::settings::JiraApplicationLink;
use libfuzzer_sys::fuzz_target;
use quick_xml::Reader;
use quick_xml::events::Event;

/// Every element the renderer writes (a subset of the storage format the unit tests check).
const ELEMENTS: &[&str] = &[
    "root",
    "h1",
    "h2",
    "h3",
    "p",
    "strong",
    "em",
    "ul",
    "ol",
    "li",
    "table",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
    "ac:structured-macro",
    "ac:parameter",
    "ac:rich-text-body",
    "ac:task-list",
    "ac:task",
    "ac:task-id",
    "ac:task-status",
    "ac:task-body",
    "ri:attachment",
];

/// The text a reader of the page sees, or why the body is not what Confluence accepts.
fn shown(body: &str) -> Result<String, String> {
    let doc = format!(
        "<root xmlns:ac=\"http://atlassian.com/content\" xmlns:ri=\"http://atlassian.com/resource/identifier\">{body}</root>"
    );
    let mut reader = Reader::from_str(&doc);
    let mut text = String::new();
    let mut stack = Vec::new();
    loop {
        match reader.read_event().map_err(|e| format!("not well-formed: {e}"))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if !ELEMENTS.contains(&name.as_str()) {
                    return Err(format!("element <{name}>"));
                }
                stack.push(name);
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if !ELEMENTS.contains(&name.as_str()) {
                    return Err(format!("element <{name}/>"));
                }
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if stack.pop().as_deref() != Some(name.as_str()) {
                    return Err(format!("unbalanced </{name}>"));
                }
                // Element boundaries separate texts (a cell from the next).
                text.push('\u{1}');
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| e.to_string())?;
                text.push_str(match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "#39" => "'",
                    other => return Err(format!("entity &{other};")),
                });
            }
            Event::CData(_) => return Err("a CDATA section".into()),
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) | Event::Decl(_) => {
                return Err("a comment, processing instruction or declaration".into());
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("unclosed elements".into());
    }
    Ok(text)
}

/// What XML can carry of a text: [`storage::escape`] drops the characters XML 1.0 forbids.
fn xml_text(text: &str) -> String {
    text.chars()
        .filter(|&c| matches!(c, '\t' | '\n' | '\r') || !((c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}'))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some(built) = report::build(data) else { return };
    let link = JiraApplicationLink { server_name: "Company Jira".into(), server_id: "144880e9-a353".into() };
    let fonts = FontBook::new("/nonexistent");
    let rendering = Rendering {
        locale: built.locale,
        issues: &built.issues,
        pdf_filename: "report <1>.pdf",
        flavour: built.flavour,
        jira_link: (data.len() % 2 == 0).then_some(&link),
        fonts: &fonts,
    };
    let marker = "bridge-marker-0123";
    match storage::render(&built.report, marker, &rendering) {
        Ok(body) => {
            let text = shown(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
            for t in &built.texts {
                let want = xml_text(t.trim());
                assert!(text.contains(&want), "{want:?} is not shown as typed on the page:\n{body}");
            }
        }
        Err(TooLarge { size }) => assert!(size > storage::MAX_BODY_BYTES),
    }
});
