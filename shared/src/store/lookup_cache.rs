//! What an issue job learned from Jira and may reuse for a while: assignee lookups and create
//! screens (createmeta), per tenant and site, each entry with its own expiry.
//!
//! A cache, not a record: every caller treats a failure of this port as a miss (it logs and asks
//! Jira), so nothing here can fail a job. Reads check the expiry themselves, because DynamoDB's
//! TTL sweeper deletes expired items lazily (typically within days), and until then they are read.

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::TenantId;

/// The name of one cache entry within a tenant (the part after `CACHE#` in the sort key). Built
/// only by the constructors below, so that no caller can name an entry by an email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupKey(String);

impl LookupKey {
    /// One assignee lookup on `site` (the session's site id: cloudId, or the DC base URL), named
    /// by `digest`: a keyed hash of what was looked up (see `issues::lookups`), never the email
    /// or user name itself.
    pub fn assignee(site: &str, digest: &str) -> Self {
        Self(format!("ASSIGNEE#{site}#{digest}"))
    }

    /// The create screen of one issue type in one project on `site`.
    pub fn create_meta(site: &str, project: &str, issue_type: &str) -> Self {
        Self(format!("CREATEMETA#{site}#{project}#{issue_type}"))
    }

    /// The edit screen (`editmeta`) of one issue on `site`: which fields the connected user may
    /// edit there. Per issue, because Jira's edit screen follows the issue's project, type and
    /// workflow status.
    pub fn edit_meta(site: &str, issue_key: &str) -> Self {
        Self(format!("EDITMETA#{site}#{issue_key}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LookupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry to remember: its value (JSON text, opaque to the store) until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub key: LookupKey,
    pub value: String,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait LookupCache: Send + Sync {
    /// The values of those of `keys` that are stored and not expired; the others are absent from
    /// the answer. Any number of keys (the adapter splits them into batches of 100).
    async fn get_many(&self, tenant: &TenantId, keys: &[LookupKey]) -> Result<HashMap<LookupKey, String>, StoreError>;

    /// Stores `entries`, replacing what their keys held. Any number (batches of 25).
    async fn put_many(&self, tenant: &TenantId, entries: &[CacheEntry]) -> Result<(), StoreError>;
}
