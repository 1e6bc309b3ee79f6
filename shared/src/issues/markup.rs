//! Text for Jira fields: summaries cut cleanly, descriptions as Atlassian Document Format (Cloud
//! REST v3) or escaped wiki markup (Server/DC REST v2). User text is always data, never markup.

use serde_json::{Value, json};

/// Jira's summary limit, in characters.
pub const SUMMARY_MAX: usize = 255;

/// One line, at most 255 characters, cut at a word boundary when one is near, with an ellipsis.
pub fn summary(title: &str) -> String {
    let line: String = title.split_whitespace().collect::<Vec<_>>().join(" ");
    let line: String = line.chars().filter(|c| !c.is_control()).collect();
    if line.chars().count() <= SUMMARY_MAX {
        return line;
    }
    let budget = SUMMARY_MAX - 1; // room for the ellipsis
    let cut: String = line.chars().take(budget).collect();
    let at_word = match cut.rfind(' ') {
        Some(i) if cut[..i].chars().count() >= budget - 40 => cut[..i].trim_end().to_owned(),
        _ => cut,
    };
    format!("{at_word}…")
}

/// A link back to where the action item came from.
#[derive(Debug, Clone)]
pub struct BackLink<'a> {
    pub title: &'a str,
    pub url: &'a str,
}

/// The description as an ADF document: the item's text as paragraphs, then the link back.
pub fn adf(text: Option<&str>, link: Option<&BackLink<'_>>) -> Value {
    let mut content: Vec<Value> = text
        .unwrap_or_default()
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            // Line breaks inside a paragraph become hardBreak nodes; ADF text may not hold "\n".
            let mut nodes = Vec::new();
            for (i, line) in p.lines().enumerate() {
                if i > 0 {
                    nodes.push(json!({"type": "hardBreak"}));
                }
                let line = clean(line);
                if !line.is_empty() {
                    nodes.push(json!({"type": "text", "text": line}));
                }
            }
            json!({"type": "paragraph", "content": nodes})
        })
        .collect();
    if let Some(link) = link {
        let title = clean(link.title);
        content.push(json!({"type": "paragraph", "content": [
            {"type": "text", "text": "From retrospective: "},
            {"type": "text", "text": if title.is_empty() { link.url.to_owned() } else { title },
             "marks": [{"type": "link", "attrs": {"href": link.url}}]}
        ]}));
    }
    json!({"type": "doc", "version": 1, "content": content})
}

/// Control characters other than newlines and tabs have no place in a description.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() || *c == '\t').collect()
}

/// Characters with a meaning in Jira wiki markup, escaped with a backslash so they print as typed
/// (`\X` prints X: https://jira.atlassian.com/secure/WikiRendererHelpAction.jspa?section=all).
const WIKI_SPECIAL: &[char] = &['{', '}', '[', ']', '*', '_', '|', '-', '+', '^', '~', '?', '#', '!', '(', ')'];

/// A backslash cannot be escaped with a backslash: `\\` is Jira's line break. It is written as a
/// numeric character reference, which the renderer prints as the character (the approach of
/// pandoc's Jira writer and tarleb/jira-wiki-markup's printer, which call it "unescapable").
const BACKSLASH: &str = "&#92;";

/// Block markers Jira recognises only at the start of a line (after optional spaces) and that
/// contain no character of [`WIKI_SPECIAL`]: `h1.`…`h6.` and `bq.`. Their dot becomes `&#46;`,
/// so the line no longer starts with the marker. Lists, tables, `{macro}` and `----` start with
/// a special character, which the per-character escape already covers.
fn neutralise_block_marker(line: &str) -> String {
    let indent = line.len() - line.trim_start().len();
    let (lead, rest) = line.split_at(indent);
    let bytes = rest.as_bytes();
    let heading = bytes.len() >= 3 && bytes[0] == b'h' && (b'1'..=b'6').contains(&bytes[1]) && bytes[2] == b'.';
    let quote = rest.starts_with("bq.");
    if heading || quote {
        let marker = if heading { &rest[..2] } else { "bq" };
        format!("{lead}{marker}&#46;{}", &rest[marker.len() + 1..])
    } else {
        line.to_owned()
    }
}

/// `&name;`, `&#123;` or `&#x7b;` at the start of `text`.
fn starts_character_reference(text: &str) -> bool {
    let Some(end) = text.find(';') else { return false };
    let body = &text[1..end];
    match body.strip_prefix('#') {
        Some(num) => match num.strip_prefix(['x', 'X']) {
            Some(hex) => !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
            None => !num.is_empty() && num.chars().all(|c| c.is_ascii_digit()),
        },
        None => {
            body.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && body.chars().all(|c| c.is_ascii_alphanumeric())
        }
    }
}

pub fn wiki_escape(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(|line| neutralise_block_marker(&escape_line(&clean(line)))).collect();
    lines.join("\n")
}

/// Every character that means something inline, escaped. The block markers' letters, digits and
/// dots are not touched, so a marker still leads the escaped line for [`neutralise_block_marker`].
fn escape_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for (at, c) in line.char_indices() {
        if c == '\\' {
            out.push_str(BACKSLASH);
        } else if c == '&' && starts_character_reference(&line[at..]) {
            // Typed text that reads as a character reference would print as its character.
            out.push_str("&amp;");
        } else {
            if WIKI_SPECIAL.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// How Jira's wiki renderer reads what [`wiki_escape`] writes — the text a reader sees: `\X`
/// prints X, `&#92;` a backslash, `&#46;` a dot, `&amp;` an ampersand, any other character
/// itself. An error names what Jira would act on instead of printing: a special character
/// without its backslash, a backslash that escapes nothing (`\\` is a line break), a character
/// reference we do not write, or a line that opens with a block marker (`h1.`…`h6.`, `bq.`).
/// The fuzz target and the property tests hold [`wiki_escape`] against it.
pub fn wiki_shown(markup: &str) -> Result<String, String> {
    let mut out = String::with_capacity(markup.len());
    for (n, line) in markup.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        if neutralise_block_marker(line) != line {
            return Err(format!("line {n} opens with a block marker"));
        }
        let mut chars = line.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, x)) if WIKI_SPECIAL.contains(&x) => out.push(x),
                    _ => return Err(format!("line {n}: a backslash at {at} escapes nothing")),
                },
                '&' if starts_character_reference(&line[at..]) => {
                    let end = at + line[at..].find(';').unwrap_or(0);
                    out.push(match &line[at..=end] {
                        "&#92;" => '\\',
                        "&#46;" => '.',
                        "&amp;" => '&',
                        other => return Err(format!("line {n}: character reference {other}")),
                    });
                    while chars.next_if(|(i, _)| *i <= end).is_some() {}
                }
                c if WIKI_SPECIAL.contains(&c) => return Err(format!("line {n}: {c:?} without its backslash")),
                c => out.push(c),
            }
        }
    }
    Ok(out)
}

/// The description in wiki markup: the escaped text, then `[title|url]` (URL checked to be a
/// plain http(s) URL, since it cannot be escaped inside a link).
pub fn wiki(text: Option<&str>, link: Option<&BackLink<'_>>) -> String {
    let mut out = wiki_escape(text.unwrap_or_default().trim());
    if let Some(link) = link.filter(|l| safe_link(l.url)) {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        // A wiki link ends at its line: the title goes on one line (its whitespace runs as one
        // space); an empty one shows the URL, as in ADF.
        let title = wiki_escape(&link.title.split_whitespace().collect::<Vec<_>>().join(" "));
        if title.is_empty() {
            out.push_str(&format!("From retrospective: [{}]", link.url));
        } else {
            out.push_str(&format!("From retrospective: [{title}|{}]", link.url));
        }
    }
    out
}

fn safe_link(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '|' | ']' | '[' | '{' | '}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_one_clean_line_within_the_limit() {
        assert_eq!(summary("  Fix\nthe   build \t"), "Fix the build");
        let long = "word ".repeat(100);
        let s = summary(&long);
        assert!(s.chars().count() <= SUMMARY_MAX, "{}", s.chars().count());
        assert!(s.ends_with("word…"));
        let unbroken = "x".repeat(400);
        assert_eq!(summary(&unbroken).chars().count(), SUMMARY_MAX);
        let emoji = "🎉".repeat(300);
        assert_eq!(summary(&emoji).chars().count(), SUMMARY_MAX);
    }

    #[test]
    fn wiki_markup_prints_user_text_as_typed() {
        let escaped =
            wiki_escape("{code}x{code} [link|http://evil] *bold* _it_ a|b {{mono}} -strike- !img.png! h1. ok");
        assert_eq!(
            escaped,
            r"\{code\}x\{code\} \[link\|http://evil\] \*bold\* \_it\_ a\|b \{\{mono\}\} \-strike\- \!img.png\! h1. ok"
        );
        assert_eq!(wiki_escape(r"back\slash"), "back&#92;slash");
        // Two backslashes would be Jira's line break.
        assert_eq!(wiki_escape(r"a\\b"), "a&#92;&#92;b");
    }

    #[test]
    fn line_leading_block_markers_print_as_text() {
        let cases = [
            ("h1. Title", "h1&#46; Title"),
            ("  h6. indented", "  h6&#46; indented"),
            ("bq. quoted", "bq&#46; quoted"),
            ("* item", r"\* item"),
            ("# item", r"\# item"),
            ("- item", r"\- item"),
            ("|| a || b ||", r"\|\| a \|\| b \|\|"),
            ("| a | b |", r"\| a \| b \|"),
            ("{code}", r"\{code\}"),
            ("{noformat}", r"\{noformat\}"),
            ("----", r"\-\-\-\-"),
            // Not a marker: mid-line, or no dot right after.
            ("see h1. here", "see h1. here"),
            ("h7. no", "h7. no"),
            ("bqx", "bqx"),
        ];
        for (text, want) in cases {
            assert_eq!(wiki_escape(text), want, "{text}");
        }
        assert_eq!(wiki_escape("Q&A &#92; &amp; h1. &x"), r"Q&A &amp;\#92; &amp;amp; h1. &x");
        let many = wiki_escape("ok\nh2. second line\nbq. third");
        assert_eq!(many, "ok\nh2&#46; second line\nbq&#46; third");
    }

    #[test]
    fn wiki_links_refuse_urls_that_would_break_out() {
        let bad = BackLink { title: "t", url: "https://x.test/a|javascript:alert(1)]" };
        assert!(!wiki(Some("hi"), Some(&bad)).contains('['));
        let good = BackLink { title: "Retro [1]", url: "https://app.test/r/1" };
        assert_eq!(wiki(None, Some(&good)), r"From retrospective: [Retro \[1\]|https://app.test/r/1]");
    }

    /// Found by the jira_markup fuzz target: a title with a line break split the link over two
    /// lines, where Jira shows `[` and the first line as text; an empty title gave `[|url]`.
    #[test]
    fn the_wiki_back_link_stays_on_one_line() {
        let link = BackLink { title: "Sprint 42\nretro\r\n\tday 2", url: "https://app.test/r/1" };
        assert_eq!(
            wiki(Some("hi"), Some(&link)),
            "hi\n\nFrom retrospective: [Sprint 42 retro day 2|https://app.test/r/1]"
        );
        let empty = BackLink { title: " \n ", url: "https://app.test/r/1" };
        assert_eq!(wiki(None, Some(&empty)), "From retrospective: [https://app.test/r/1]");
    }

    #[test]
    fn adf_documents_carry_paragraphs_breaks_and_the_link() {
        let doc = adf(Some("one\ntwo\n\nthree"), Some(&BackLink { title: "Retro", url: "https://app.test/r" }));
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["content"].as_array().unwrap().len(), 3);
        assert_eq!(doc["content"][0]["content"][1]["type"], "hardBreak");
        assert_eq!(doc["content"][2]["content"][1]["marks"][0]["attrs"]["href"], "https://app.test/r");
    }

    // ---- what Jira shows: property tests and the fuzz seeds ------------------------------

    use proptest::prelude::*;

    /// What the wiki shows of typed text: its lines, control characters dropped.
    fn typed_lines(text: &str) -> String {
        text.lines().map(clean).collect::<Vec<_>>().join("\n")
    }

    /// Text from the characters that mean something to Jira's wiki or to ADF, and others.
    fn markup_text() -> impl Strategy<Value = String> {
        let pieces = prop_oneof![
            Just("\\".to_owned()),
            Just("&".to_owned()),
            Just("&#92;".to_owned()),
            Just("&amp;".to_owned()),
            Just("&#x7b;".to_owned()),
            Just("h1.".to_owned()),
            Just("bq.".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("\n\n".to_owned()),
            Just(" ".to_owned()),
            Just("\u{7}".to_owned()),
            Just("🎉".to_owned()),
            Just("日本語".to_owned()),
            "[{}\\[\\]*_|+^~?#!()a-z;-]{1,4}",
            any::<String>(),
        ];
        proptest::collection::vec(pieces, 0..24).prop_map(|p| p.concat())
    }

    /// ADF paragraphs as text: hard breaks as `\n`; every text node non-empty and clean.
    fn adf_paragraphs(doc: &Value) -> Vec<String> {
        doc["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p["type"], "paragraph");
                let mut text = String::new();
                for node in p["content"].as_array().unwrap() {
                    match node["type"].as_str().unwrap() {
                        "text" => {
                            let t = node["text"].as_str().unwrap();
                            assert!(!t.is_empty() && !t.chars().any(|c| c.is_control() && c != '\t'), "{t:?}");
                            text.push_str(t);
                        }
                        "hardBreak" => text.push('\n'),
                        other => panic!("{other}"),
                    }
                }
                text
            })
            .collect()
    }

    proptest! {
        /// Escaped text reads back, the way Jira's renderer reads it, as the text typed, and
        /// nothing in it is markup (`wiki_shown` refuses any active markup).
        #[test]
        fn wiki_escaping_shows_the_text_typed(text in markup_text()) {
            let escaped = wiki_escape(&text);
            prop_assert_eq!(wiki_shown(&escaped), Ok(typed_lines(&text)));
        }

        /// ADF text nodes keep the text: the paragraphs' text is the text typed.
        #[test]
        fn adf_text_nodes_keep_the_text(text in markup_text()) {
            let doc = adf(Some(&text), None);
            let want: Vec<String> =
                text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).map(typed_lines).collect();
            prop_assert_eq!(adf_paragraphs(&doc), want);
        }

        /// The back link is one `[title|url]` line whose title is plain text.
        #[test]
        fn the_wiki_back_link_is_one_line_of_text(title in markup_text()) {
            let link = BackLink { title: &title, url: "https://app.test/r/1" };
            let out = wiki(None, Some(&link));
            let inner = out.strip_prefix("From retrospective: [").and_then(|r| r.strip_suffix("|https://app.test/r/1]"));
            let inner = inner.unwrap_or_else(|| out.strip_prefix("From retrospective: [").and_then(|r| r.strip_suffix("]")).unwrap());
            prop_assert!(!inner.contains('\n'), "{:?}", out);
            prop_assert!(wiki_shown(inner).is_ok(), "{:?}", out);
        }
    }

    #[test]
    fn wiki_shown_refuses_active_markup() {
        for active in ["*bold*", r"a\\b", "h1. Title", "&#123;", r"\x", "[link]"] {
            assert!(wiki_shown(active).is_err(), "{active}");
        }
        assert_eq!(wiki_shown(r"\*a\* &#92; h1&#46; &amp;"), Ok(r"*a* \ h1. &".to_owned()));
    }

    /// The jira_markup fuzz target's corpus (`text \x1e title \x1e url`): each text reads back.
    #[test]
    fn the_fuzz_corpus_reads_back_as_typed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/jira_markup");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let all = String::from_utf8_lossy(&bytes);
            let mut parts = all.splitn(3, '\u{1e}');
            let text = parts.next().unwrap_or_default();
            assert_eq!(wiki_shown(&wiki_escape(text)), Ok(typed_lines(text)), "{text:?}");
            if let Some(title) = parts.next() {
                let out = wiki(None, Some(&BackLink { title, url: "https://app.test/r/1" }));
                assert!(!out.contains('\n'), "{out:?}");
            }
            seen += 1;
        }
        assert!(seen >= 8, "the seed corpus is there");
    }
}
