//! The current user (`user/current`, REST v1 on both deployments).

use serde::Deserialize;

use super::super::{AtlassianError, Session, loose};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentUser {
    /// `known`, or `anonymous` when Confluence took the request as no one's.
    #[serde(rename = "type", default, deserialize_with = "loose::text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "loose::text")]
    pub display_name: Option<String>,
}

/// Who the credentials act as. Not for Cloud through `api.atlassian.com`, whose scopes do not
/// include it.
pub async fn current(session: &Session) -> Result<CurrentUser, AtlassianError> {
    Ok(loose::any(session.get_json(&session.confluence_v1_path("user/current")).await?))
}
