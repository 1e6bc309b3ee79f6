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

/// The description in wiki markup: the escaped text, then `[title|url]` (URL checked to be a
/// plain http(s) URL, since it cannot be escaped inside a link).
pub fn wiki(text: Option<&str>, link: Option<&BackLink<'_>>) -> String {
    let mut out = wiki_escape(text.unwrap_or_default().trim());
    if let Some(link) = link.filter(|l| safe_link(l.url)) {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&format!("From retrospective: [{}|{}]", wiki_escape(link.title), link.url));
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

    #[test]
    fn adf_documents_carry_paragraphs_breaks_and_the_link() {
        let doc = adf(Some("one\ntwo\n\nthree"), Some(&BackLink { title: "Retro", url: "https://app.test/r" }));
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["content"].as_array().unwrap().len(), 3);
        assert_eq!(doc["content"][0]["content"][1]["type"], "hardBreak");
        assert_eq!(doc["content"][2]["content"][1]["marks"][0]["attrs"]["href"], "https://app.test/r");
    }
}
