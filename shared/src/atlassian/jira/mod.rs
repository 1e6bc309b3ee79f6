//! Jira REST, one module per area, one shape for Cloud (v3) and Server/DC (v2): each call builds
//! its path for the deployment, sends it through the session and reads the answer into the
//! models below (only the fields we read).

pub mod issues;
pub mod meta;
pub mod projects;
pub mod search;
pub mod users;
pub mod webhooks;

pub use meta::{CreateMetaField, CreateMetaIssueType, FIELDS_WE_ALWAYS_SET, FieldSchema, Priority};
pub use projects::{Component, IssueTypeRef, Project};
pub use users::{Myself, User};

/// A list as Jira answers it: one `startAt`/`maxResults` page (Cloud), or the whole list in one
/// answer (Server/DC, where Cloud pages the same list).
#[derive(Debug, Clone, PartialEq)]
pub enum Listing<T> {
    Page {
        values: Vec<T>,
        /// `isLast`, which Jira does not always send.
        is_last: Option<bool>,
        total: Option<u64>,
    },
    Whole(Vec<T>),
}

/// A `startAt`/`maxResults` page: `values`, `isLast`, `total`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", bound = "T: serde::Deserialize<'de>")]
struct PageOf<T> {
    #[serde(default)]
    values: Vec<T>,
    #[serde(default, deserialize_with = "super::loose::flag")]
    is_last: Option<bool>,
    #[serde(default, deserialize_with = "super::loose::count")]
    total: Option<u64>,
}

impl<T> From<PageOf<T>> for Listing<T> {
    fn from(page: PageOf<T>) -> Self {
        Listing::Page { values: page.values, is_last: page.is_last, total: page.total }
    }
}
