//! JQL search: Cloud `search/jql` (the enhanced search; `search` is gone there), Server/DC
//! `search`. Both answer `issues[]` with `id` and `key`.

use serde::Deserialize;

use super::super::{AtlassianError, Flavour, Session, encode};
use super::issues::IssueRef;

#[derive(Deserialize)]
struct Found {
    #[serde(default, deserialize_with = "super::super::loose::list")]
    issues: Option<Vec<IssueRef>>,
}

/// The first `max_results` issues matching `jql`, with only `key` (and the id every issue has)
/// asked for.
pub async fn issue_keys(session: &Session, jql: &str, max_results: usize) -> Result<Vec<IssueRef>, AtlassianError> {
    let jql = encode(jql);
    let path = match session.flavour() {
        Flavour::Cloud => session.jira_path(&format!("search/jql?jql={jql}&fields=key&maxResults={max_results}")),
        Flavour::DataCenter => session.jira_path(&format!("search?jql={jql}&fields=key&maxResults={max_results}")),
    };
    let found: Found = session.get_json(&path).await?;
    Ok(found.issues.unwrap_or_default())
}

/// Where the next page of a search starts: Cloud's `nextPageToken`, Server/DC's `startAt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageAt {
    Token(String),
    Offset(u64),
}

/// One page of a search that asked for `fields`: each hit's key and `fields` object, and where
/// the next page starts (`None` on the last).
#[derive(Debug, Clone, Default)]
pub struct FieldsPage {
    pub issues: Vec<(IssueRef, serde_json::Value)>,
    pub next: Option<PageAt>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldsAnswer {
    #[serde(default)]
    issues: Vec<Hit>,
    /// Cloud: absent on the last page.
    #[serde(default)]
    next_page_token: Option<String>,
    /// Server/DC.
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    start_at: Option<u64>,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(flatten)]
    issue: IssueRef,
    #[serde(default)]
    fields: serde_json::Value,
}

/// One page of `jql` with only `fields`: Cloud `GET search/jql` (pages by `nextPageToken`,
/// which is absent on the last page: <https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-get>),
/// Server/DC `GET search` (pages by `startAt` up to `total`).
pub async fn fields_page(
    session: &Session,
    jql: &str,
    fields: &str,
    max_results: usize,
    at: Option<&PageAt>,
) -> Result<FieldsPage, AtlassianError> {
    let (jql_q, fields_q) = (encode(jql), encode(fields));
    let path = match (session.flavour(), at) {
        (Flavour::Cloud, Some(PageAt::Token(token))) => session.jira_path(&format!(
            "search/jql?jql={jql_q}&fields={fields_q}&maxResults={max_results}&nextPageToken={}",
            encode(token)
        )),
        (Flavour::Cloud, _) => {
            session.jira_path(&format!("search/jql?jql={jql_q}&fields={fields_q}&maxResults={max_results}"))
        }
        (Flavour::DataCenter, at) => {
            let start = match at {
                Some(PageAt::Offset(n)) => *n,
                _ => 0,
            };
            session.jira_path(&format!("search?jql={jql_q}&fields={fields_q}&maxResults={max_results}&startAt={start}"))
        }
    };
    let answer: FieldsAnswer = session.get_json(&path).await?;
    let count = answer.issues.len() as u64;
    let next = match session.flavour() {
        Flavour::Cloud => answer.next_page_token.filter(|t| !t.is_empty()).map(PageAt::Token),
        Flavour::DataCenter => {
            let start = answer.start_at.unwrap_or(0);
            // An empty page ends it too, whatever `total` says (it may shrink meanwhile).
            (count > 0 && start + count < answer.total.unwrap_or(0)).then(|| PageAt::Offset(start + count))
        }
    };
    Ok(FieldsPage { issues: answer.issues.into_iter().map(|h| (h.issue, h.fields)).collect(), next })
}
