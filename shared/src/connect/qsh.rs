//! The canonical request and its query string hash (`qsh`), the claim that binds a Connect JWT to
//! one HTTP request.
//!
//! Atlassian, "Query string hash"
//! (<https://developer.atlassian.com/cloud/bitbucket/query-string-hash/>, the same page for Jira and
//! Confluence): the canonical request is `METHOD&canonical-URI&canonical-query-string`, and the
//! qsh is the lowercase hex SHA-256 of its UTF-8 bytes. The rules, each with where it comes from:
//!
//! - method: "the HTTP method in upper case" (page).
//! - URI: "discards the protocol, server, port, context path, and query parameters"; "always starts
//!   with a `/`"; "the minimum canonical URI is just `/`"; "only ends with a `/` character if it is
//!   the only character"; "any `&` characters should be URL-encoded to `%26`" (page). The context
//!   path is the path of the base URL: the app descriptor's `baseUrl` for requests to us, the
//!   installation's `baseUrl` (e.g. `https://example.atlassian.net/wiki`) for our requests to the
//!   product. The path is otherwise taken as sent, percent-encoding and all.
//! - query: the `jwt` parameter is dropped; parameters are sorted by name; a repeated parameter's
//!   values are sorted and joined by `,`; names and values are percent-encoded per RFC 3986, every
//!   byte of their UTF-8 but the unreserved `A-Z a-z 0-9 - . _ ~` ("`+` is encoded as `%20`, `*` as
//!   `%2A` and `~` as `~`", Atlassian's jwt-api `JwtConstants.Claims.QUERY_HASH`); pairs are
//!   `name=value` joined by `&`.
//!
//! Where the page leaves a detail open, this follows Atlassian's reference implementation, the
//! npm package `atlassian-jwt` (`createCanonicalRequest`, `fromMethodAndUrl`), which
//! tests/test_connect_qsh.py runs against this module on the same requests:
//!
//! - the query is decoded first as a form (`+` is a space, `%XX` a byte, a malformed `%` kept as
//!   is, invalid UTF-8 replaced by U+FFFD), so `a+b`, `a%20b` and `a b` are one value and `%2B` is
//!   a literal `+`; a parameter without `=` has the empty value; empty pieces (`&&`) are skipped;
//! - names and values are compared in UTF-16 code-unit order (JavaScript's `sort()`), on the decoded
//!   text; only the exact name `jwt` is dropped (and `__proto__`, which the reference cannot hold);
//! - from a full URL: surrounding whitespace and the fragment are dropped, `\` before the query is
//!   `/`, and the characters Node's URL parser escapes (space, `"` `'` `<` `>` `\` `^` `` ` ``
//!   `{` `|` `}`, tab, CR, LF) are percent-encoded in the path.
//!
//! One deliberate difference: the reference strips the context path as a plain string prefix, so
//! with the context `/wiki` it would turn `/wikipedia` into `/pedia`; here the context path is
//! stripped only as whole segments (`/wiki` or `/wiki/...`). No real product path is affected.

use sha2::{Digest, Sha256};

/// The `qsh` of a context JWT. Atlassian, "Understanding JWT for Connect apps"
/// (<https://developer.atlassian.com/cloud/jira/platform/understanding-jwt-for-connect-apps/>):
/// tokens that the product's JavaScript API hands to an app's page (`AP.context.getToken()`) are not
/// bound to a request, and carry this fixed value instead of a hash ("Connect Active API
/// migration", `context-qsh`). An app accepts it only on routes that its own front end calls.
pub const CONTEXT_QSH: &str = "context-qsh";

/// An HTTP request as the qsh sees it: method, path and raw query string (without `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    path: String,
    query: String,
}

impl Request {
    /// A request from its parts as they arrived: the path as sent (still percent-encoded), the
    /// query string without `?` (empty when there is none).
    pub fn new(method: &str, path: &str, query: &str) -> Self {
        Self { method: method.to_owned(), path: path.to_owned(), query: query.to_owned() }
    }

    /// A request from a full URL (`https://host/path?query`) or a path with a query
    /// (`/path?query`), parsed the way the reference's `fromMethodAndUrl` does.
    pub fn from_url(method: &str, url: &str) -> Self {
        let url = url.trim();
        let url = url.split_once('#').map_or(url, |(before, _)| before);
        let (before_query, query) = url.split_once('?').unwrap_or((url, ""));
        let before_query = before_query.replace('\\', "/");
        let path = strip_origin(&before_query);
        Self { method: method.to_owned(), path: escape_like_node(path), query: query.to_owned() }
    }

    /// `METHOD&canonical-URI&canonical-query`, with the path of `base_url` (a full URL, a path or
    /// empty) as the context path.
    pub fn canonical(&self, base_url: &str) -> String {
        format!(
            "{}&{}&{}",
            self.method.to_ascii_uppercase(),
            canonical_uri(&self.path, context_path(base_url)),
            canonical_query(&self.query)
        )
    }

    /// The query string hash of this request: lowercase hex SHA-256 of [`Request::canonical`].
    pub fn qsh(&self, base_url: &str) -> String {
        hash(&self.canonical(base_url))
    }
}

/// Lowercase hex SHA-256 of a canonical request.
pub fn hash(canonical_request: &str) -> String {
    Sha256::digest(canonical_request.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The path of a base URL (`https://example.atlassian.net/wiki` → `/wiki`), or the input when it
/// is already a path.
pub fn context_path(base_url: &str) -> &str {
    let base = base_url.trim();
    let base = base.split(['?', '#']).next().unwrap_or_default();
    strip_origin(base)
}

/// `scheme://authority` removed from the front, when it is there.
fn strip_origin(url: &str) -> &str {
    let Some((scheme, rest)) = url.split_once("://") else { return url };
    let is_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return url;
    }
    rest.find('/').map_or("", |at| &rest[at..])
}

/// Percent-encodes the characters Node's legacy URL parser escapes in a path.
fn escape_like_node(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '\t' | '\n' | '\r' | ' ' | '"' | '\'' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}' => {
                out.push_str(&format!("%{:02X}", c as u32))
            }
            _ => out.push(c),
        }
    }
    out
}

/// The canonical URI of `path` under `context` (a context path like `/wiki`, or empty).
pub fn canonical_uri(path: &str, context: &str) -> String {
    let context = context.trim_end_matches('/');
    let path = match path.strip_prefix(context) {
        Some(rest) if !context.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => path,
    };
    if path.is_empty() {
        return "/".to_owned();
    }
    // "any & characters should be URL-encoded to %26": otherwise `/a&b?c` and `/a?b&c` would
    // hash alike.
    let mut uri = path.replace('&', "%26");
    if !uri.starts_with('/') {
        uri.insert(0, '/');
    }
    if uri.len() > 1 && uri.ends_with('/') {
        uri.pop();
    }
    uri
}

/// The canonical query string of a raw query string (without `?`).
pub fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for piece in query.split('&').filter(|piece| !piece.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let (name, value) = (form_decode(name), form_decode(value));
        if name == "jwt" || name == "__proto__" {
            continue;
        }
        match params.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => params.push((name, vec![value])),
        }
    }
    params.sort_by(|(a, _), (b, _)| utf16_order(a, b));
    let pairs: Vec<String> = params
        .into_iter()
        .map(|(name, mut values)| {
            values.sort_by(|a, b| utf16_order(a, b));
            let values: Vec<String> = values.iter().map(|v| encode_rfc3986(v)).collect();
            format!("{}={}", encode_rfc3986(&name), values.join(","))
        })
        .collect();
    pairs.join("&")
}

/// JavaScript's default string order: UTF-16 code units.
fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// A form-encoded name or value decoded: `+` is a space, `%XX` a byte (a malformed escape stays as
/// it is), then the bytes as UTF-8 with U+FFFD for what is not.
fn form_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex_digit(bytes.get(i + 1)), hex_digit(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(byte: Option<&u8>) -> Option<u8> {
    match byte? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes every UTF-8 byte but RFC 3986's unreserved characters, uppercase hex.
pub fn encode_rfc3986(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn canonical(method: &str, url: &str, base: &str) -> String {
        Request::from_url(method, url).canonical(base)
    }

    /// The query string hash page's tables: canonical requests, methods and URIs.
    #[test]
    fn atlassian_documented_canonical_requests() {
        assert_eq!(Request::new("GET", "/", "param=foo").canonical(""), "GET&/&param=foo");
        assert_eq!(Request::new("POST", "/user", "").canonical(""), "POST&/user&");
        for method in ["get", "Get", "GET"] {
            assert_eq!(Request::new(method, "/", "").canonical("").split('&').next(), Some("GET"));
        }
        let base = "https://addon.example.com/jira-connector";
        assert_eq!(canonical("GET", "https://addon.example.com/jira-connector", base), "GET&/&");
        assert_eq!(canonical("GET", "https://addon.example.com/jira-connector/", base), "GET&/&");
        assert_eq!(canonical("GET", "https://addon.example.com/jira-connector/issue", base), "GET&/issue&");
        assert_eq!(canonical("GET", "https://addon.example.com/jira-connector/issue/", base), "GET&/issue&");
        assert_eq!(canonical("GET", "https://addon.example.com/jira-connector/a&b", base), "GET&/a%26b&");
    }

    /// Atlassian's jwt-api documentation (`JwtConstants.Claims.QUERY_HASH`): the worked example, and
    /// its SHA-256 of "foo".
    #[test]
    fn atlassian_documented_worked_example() {
        let url = "http://localhost:2990/path/to/service?zee_last=param&repeated=parameter 1&first=param&repeated=parameter 2";
        assert_eq!(
            canonical("GET", url, "http://localhost:2990"),
            "GET&/path/to/service&first=param&repeated=parameter%201,parameter%202&zee_last=param"
        );
        assert_eq!(hash("foo"), "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae");
        assert_eq!(
            Request::from_url("GET", url).qsh(""),
            hash("GET&/path/to/service&first=param&repeated=parameter%201,parameter%202&zee_last=param")
        );
    }

    #[test]
    fn query_encoding_follows_rfc_3986_as_atlassian_does() {
        let q = |query: &str| canonical_query(query);
        assert_eq!(q("a=b+c"), "a=b%20c");
        assert_eq!(q("a=b%20c"), "a=b%20c");
        assert_eq!(q("a=b%2Bc"), "a=b%2Bc");
        assert_eq!(q("a=*~!'()"), "a=%2A~%21%27%28%29");
        assert_eq!(q("k=%C3%A9&j=日本"), "j=%E6%97%A5%E6%9C%AC&k=%C3%A9");
        assert_eq!(q("a=%zz&b=%E9"), "a=%25zz&b=%EF%BF%BD");
        assert_eq!(q("flag&empty=&&=v"), "=v&empty=&flag=");
        assert_eq!(q("b=2&a=1&b=1&jwt=x.y.z"), "a=1&b=1,2");
        assert_eq!(q("a=1&%61=2"), "a=1,2");
        assert_eq!(q(""), "");
    }

    #[test]
    fn the_context_path_is_stripped_as_whole_segments() {
        let base = "https://example.atlassian.net/wiki";
        assert_eq!(context_path(base), "/wiki");
        assert_eq!(context_path("https://example.atlassian.net"), "");
        assert_eq!(Request::new("GET", "/wiki/rest/api/content", "").canonical(base), "GET&/rest/api/content&");
        assert_eq!(Request::new("GET", "/wiki", "").canonical(base), "GET&/&");
        assert_eq!(Request::new("GET", "/wikipedia", "").canonical(base), "GET&/wikipedia&");
        assert_eq!(Request::new("GET", "/wiki/x", "").canonical("https://example.atlassian.net/wiki/"), "GET&/x&");
        assert_eq!(Request::new("GET", "/rest", "").canonical("/wiki"), "GET&/rest&");
    }

    #[test]
    fn urls_are_read_like_the_reference_reads_them() {
        assert_eq!(canonical("get", "  https://x.net/p/?a=1#frag ", ""), "GET&/p&a=1");
        assert_eq!(canonical("GET", "https://x.net", ""), "GET&/&");
        assert_eq!(canonical("GET", "https://x.net?b=1", ""), "GET&/&b=1");
        assert_eq!(canonical("GET", "/relative/path?a=1", ""), "GET&/relative/path&a=1");
        assert_eq!(canonical("GET", "https://x.net/a b\\c?x=1", ""), "GET&/a%20b/c&x=1");
        assert_eq!(canonical("GET", "https://user:pw@x.net:8080/p?x=1", ""), "GET&/p&x=1");
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._~-]{1,8}"
    }

    fn params() -> impl Strategy<Value = Vec<(String, String)>> {
        // Distinct names, so that a change to one parameter is a change to the request.
        proptest::collection::btree_map("[a-z]{1,5}", "[a-zA-Z0-9 é日+*~%/]{0,6}", 1..6)
            .prop_map(|m| m.into_iter().filter(|(name, _)| name != "jwt").collect::<Vec<_>>())
            .prop_filter("at least one parameter", |params| !params.is_empty())
    }

    fn query_of(params: &[(String, String)]) -> String {
        params.iter().map(|(n, v)| format!("{}={}", encode_rfc3986(n), encode_rfc3986(v))).collect::<Vec<_>>().join("&")
    }

    fn qsh_of(method: &str, path: &[String], params: &[(String, String)]) -> String {
        Request::new(method, &format!("/{}", path.join("/")), &query_of(params)).qsh("")
    }

    proptest! {
        #[test]
        fn reordering_parameters_keeps_the_hash(path in proptest::collection::vec(segment(), 1..4), params in params(), seed in any::<u64>()) {
            let mut shuffled = params.clone();
            let n = shuffled.len();
            for i in 0..n {
                shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % n);
            }
            prop_assert_eq!(qsh_of("GET", &path, &params), qsh_of("GET", &path, &shuffled));
        }

        #[test]
        fn any_change_to_the_request_changes_the_hash(
            path in proptest::collection::vec(segment(), 1..4),
            params in params(),
            other_segment in segment(),
            other_value in "[a-zA-Z0-9 é日+*~%/]{0,6}",
            extra in "[a-z]{6,8}",
            which in any::<usize>(),
        ) {
            let original = qsh_of("GET", &path, &params);
            // Another method.
            prop_assert_ne!(&original, &qsh_of("POST", &path, &params));
            // A changed path segment.
            let at = which % path.len();
            if path[at] != other_segment {
                let mut changed = path.clone();
                changed[at] = other_segment.clone();
                prop_assert_ne!(&original, &qsh_of("GET", &changed, &params));
            }
            // An added path segment.
            let mut longer = path.clone();
            longer.push(other_segment.clone());
            prop_assert_ne!(&original, &qsh_of("GET", &longer, &params));
            // A changed value.
            let at = which % params.len();
            if params[at].1 != other_value {
                let mut changed = params.clone();
                changed[at].1 = other_value.clone();
                prop_assert_ne!(&original, &qsh_of("GET", &path, &changed));
            }
            // A removed parameter.
            let mut fewer = params.clone();
            fewer.remove(at);
            prop_assert_ne!(&original, &qsh_of("GET", &path, &fewer));
            // An added parameter (names in `params` are 1 to 5 letters).
            let mut more = params.clone();
            more.push((extra, other_value));
            prop_assert_ne!(&original, &qsh_of("GET", &path, &more));
        }
    }
}
