//! Confluence REST calls shared by several functions: Cloud v2 (v1 for attachments) and the
//! Server/DC REST API.

use serde_json::Value;

use super::jira::encode;
use super::{AtlassianError, Flavour, Session};

/// A space by key: Cloud `GET /wiki/api/v2/spaces?keys=`, DC `GET /rest/api/space/{key}`.
/// `None` when it does not exist (or the connection may not see it).
pub async fn space_by_key(session: &Session, key: &str) -> Result<Option<Value>, AtlassianError> {
    match session.flavour() {
        Flavour::Cloud => {
            let page: Value =
                session.get_json(&session.confluence_v2_path(&format!("spaces?keys={}", encode(key)))).await?;
            Ok(page.get("results").and_then(Value::as_array).and_then(|r| r.first()).cloned())
        }
        Flavour::DataCenter => {
            match session.get_json(&session.confluence_v1_path(&format!("space/{}", encode(key)))).await {
                Ok(space) => Ok(Some(space)),
                Err(AtlassianError::Api { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}
