//! Confluence REST, one module per area: Cloud v2 (v1 for attachments and the current user) and
//! the Server/DC REST API. Each call builds its path for the deployment, sends it through the
//! session and reads the answer into the models here (only the fields we read).

pub mod attachments;
pub mod pages;
pub mod spaces;
pub mod users;

pub use pages::{Page, is_title_taken};
pub use spaces::Space;

use serde::Deserialize;

/// `_links` as both APIs send it: `webui` is relative to the site's `/wiki` (Cloud) or the base
/// URL (Server/DC); `next` is the next page of a list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Links {
    #[serde(default, deserialize_with = "super::loose::text")]
    pub webui: Option<String>,
    #[serde(default, deserialize_with = "super::loose::text")]
    pub next: Option<String>,
}
