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

/// Characters with a meaning in Jira wiki markup, escaped with a backslash so they print as typed.
const WIKI_SPECIAL: &[char] = &['\\', '{', '}', '[', ']', '*', '_', '|', '-', '+', '^', '~', '?', '#', '!', '(', ')'];

pub fn wiki_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if !out.is_empty() {
            out.push('\n');
        }
        for c in clean(line).chars() {
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
        assert_eq!(wiki_escape(r"back\slash"), r"back\\slash");
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
