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
