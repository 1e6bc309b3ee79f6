//! What an issue job remembers from Jira for the next job of the same tenant and site: assignee
//! lookups, the create screen and an issue's edit screen, in the [`LookupCache`] (README, "Assignees" and "How a big issue
//! job runs"). Settings are never cached: a saved change applies to the next job.
//!
//! The cache only ever saves Jira requests. Every failure of it is logged and answered as a miss,
//! so the job asks Jira as it did before the cache existed; a lookup that failed (network, 5xx,
//! any error answer) is not remembered, only Jira's answers are.
//!
//! No entry holds an email address: an assignee entry is named by an HMAC of project and lookup
//! under the deployment's key ([`Markers::lookup_digest`]) and holds the id Jira assigns by
//! (Cloud `accountId`, DC `name`) or the note why there is none, whose wording never includes
//! the address ([`match_email`](super::match_email)). A DC user name that contains `@` (DC
//! allows an email as the user name) is not remembered at all.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Assignee;
use crate::atlassian::jira::{CreateMetaField, issues, meta};
use crate::atlassian::{AtlassianError, Session};
use crate::domain::TenantId;
use crate::ids::{IssueKey, IssueTypeId, ProjectKey};
use crate::markers::Markers;
use crate::store::{CacheEntry, LookupCache, LookupKey};

/// How long a found assignee is remembered. Half of the day issue 12 allows: the next job of a
/// team (retrospectives run through the day across a company's teams) costs no lookup, and a
/// person removed from the project or Jira is assigned from the cache for at most 12 h, after
/// which Jira refuses the element with `errors.assignee` (the item fails, with Jira's message).
pub const ASSIGNEE_FOUND_TTL: Duration = Duration::from_secs(12 * 3600);

/// How long "no such assignable user" (or an ambiguous or unconfirmable match) is remembered:
/// long enough that the retries and redeliveries of one job, and a burst of jobs, ask once;
/// short enough that someone just invited to Jira or added to the project is found within
/// minutes.
pub const ASSIGNEE_MISS_TTL: Duration = Duration::from_secs(10 * 60);

/// How long a project's create screen is remembered: an admin who adds a required field or
/// takes one off the screen sees it apply within minutes (meanwhile Jira itself refuses an element
/// that lacks a newly required field, with its own message), while a burst of jobs asks once.
pub const CREATE_SCREEN_TTL: Duration = Duration::from_secs(10 * 60);

/// DynamoDB refuses items over 400 KB; a create screen larger than this is not remembered.
const MAX_VALUE_BYTES: usize = 300 * 1024;

/// Fields whose `allowedValues` the job reads ([`CreateContext`](super::CreateContext)'s
/// `allowed_id`); the others' are dropped from the screen it uses, cached or not, which keeps
/// entries small (a select field may list thousands of options).
const FIELDS_WHOSE_VALUES_WE_READ: &[&str] = &["priority", "components"];

/// One tenant's cache, and the key its assignee entries are named with.
#[derive(Clone, Copy)]
pub struct Lookups<'a> {
    pub cache: &'a dyn LookupCache,
    pub tenant: &'a TenantId,
    pub markers: &'a Markers,
}

/// What a lookup learned: Jira's answer (an assignee, or why there is none), or `Err` with a note
/// when the lookup itself failed — which is never remembered.
pub(super) type Looked = Result<Assignee, String>;

/// An assignee entry's value.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Remembered {
    Id(String),
    Unassigned(String),
}

impl Lookups<'_> {
    fn assignee_key(&self, session: &Session, project: &str, lookup: &str) -> LookupKey {
        LookupKey::assignee(session.site_id(), &self.markers.lookup_digest(&["assignee", project, lookup]))
    }

    async fn get(&self, keys: &[LookupKey]) -> HashMap<LookupKey, String> {
        if keys.is_empty() {
            return HashMap::new();
        }
        self.cache.get_many(self.tenant, keys).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "lookup cache unreadable; asking Jira");
            HashMap::new()
        })
    }

    async fn put(&self, entries: &[CacheEntry]) {
        if entries.is_empty() {
            return;
        }
        if let Err(e) = self.cache.put_many(self.tenant, entries).await {
            tracing::warn!(error = %e, entries = entries.len(), "lookup cache not written; the next job asks Jira again");
        }
    }

    /// The answers remembered for `lookups` (the keys [`Assignees`](super::Assignees) gives each
    /// distinct person) in `project` on the session's site.
    pub(super) async fn recall_assignees<'k>(
        &self,
        session: &Session,
        project: &str,
        lookups: &[&'k str],
    ) -> HashMap<&'k str, Assignee> {
        let keys: Vec<LookupKey> = lookups.iter().map(|l| self.assignee_key(session, project, l)).collect();
        let mut stored = self.get(&keys).await;
        lookups
            .iter()
            .zip(keys)
            .filter_map(|(lookup, key)| {
                let remembered = serde_json::from_str::<Remembered>(&stored.remove(&key)?).ok()?;
                let answer = match remembered {
                    Remembered::Id(id) => Ok(id),
                    Remembered::Unassigned(note) => Err(note),
                };
                Some((*lookup, answer))
            })
            .collect()
    }

    /// Remembers Jira's answers among `looked`; failed lookups are left out.
    pub(super) async fn remember_assignees(&self, session: &Session, project: &str, looked: &[(&str, Looked)]) {
        let now = OffsetDateTime::now_utc();
        let entries: Vec<CacheEntry> = looked
            .iter()
            .filter_map(|(lookup, looked)| {
                let (value, ttl) = match looked.as_ref().ok()? {
                    // A DC user name may be an email address: not in the table, ever.
                    Ok(id) if id.contains('@') => return None,
                    Ok(id) => (Remembered::Id(id.clone()), ASSIGNEE_FOUND_TTL),
                    Err(note) => (Remembered::Unassigned(note.clone()), ASSIGNEE_MISS_TTL),
                };
                Some(CacheEntry {
                    key: self.assignee_key(session, project, lookup),
                    value: serde_json::to_string(&value).ok()?,
                    expires_at: now + ttl,
                })
            })
            .collect();
        self.put(&entries).await;
    }
}

/// The create screen's fields of `issue_type` in `project` (what the job checks items against),
/// remembered for [`CREATE_SCREEN_TTL`] per tenant and site. Jira's errors pass through
/// unremembered.
pub async fn create_screen(
    session: &Session,
    lookups: &Lookups<'_>,
    project: &ProjectKey,
    issue_type: &IssueTypeId,
) -> Result<Vec<CreateMetaField>, AtlassianError> {
    let key = LookupKey::create_meta(session.site_id(), project.as_str(), issue_type.as_str());
    if let Some(fields) = lookups.get(std::slice::from_ref(&key)).await.remove(&key) {
        match serde_json::from_str(&fields) {
            Ok(fields) => return Ok(fields),
            Err(e) => tracing::warn!(error = %e, "cached create screen unreadable; asking Jira"),
        }
    }
    let fields = what_the_job_reads(meta::fields(session, project, issue_type).await?);
    match serde_json::to_string(&fields) {
        Ok(value) if value.len() <= MAX_VALUE_BYTES => {
            let expires_at = OffsetDateTime::now_utc() + CREATE_SCREEN_TTL;
            lookups.put(&[CacheEntry { key, value, expires_at }]).await;
        }
        Ok(value) => tracing::info!(bytes = value.len(), "create screen too large to cache"),
        Err(e) => tracing::warn!(error = %e, "create screen not serializable; not cached"),
    }
    Ok(fields)
}

/// How long an issue's edit screen is remembered: as long as a create screen, for the same
/// reason (an admin's change applies within minutes, a burst of edits asks once). A field the
/// remembered screen lacks is asked again before an edit is refused for it
/// ([`edit_screen`]'s `fresh`), and again after Jira refused an edit (a field taken off the
/// screen since), so a stale entry costs one refused request, never a wrong answer.
pub const EDIT_SCREEN_TTL: Duration = CREATE_SCREEN_TTL;

/// The ids of the fields the connected user may edit on `key`'s edit screen: remembered for
/// [`EDIT_SCREEN_TTL`] per tenant, site and issue unless `fresh` (then asked, and remembered).
pub async fn edit_screen(
    session: &Session,
    lookups: &Lookups<'_>,
    key: &IssueKey,
    fresh: bool,
) -> Result<Vec<String>, AtlassianError> {
    let cache_key = LookupKey::edit_meta(session.site_id(), key.as_str());
    if !fresh {
        if let Some(fields) = lookups.get(std::slice::from_ref(&cache_key)).await.remove(&cache_key) {
            match serde_json::from_str(&fields) {
                Ok(fields) => return Ok(fields),
                Err(e) => tracing::warn!(error = %e, "cached edit screen unreadable; asking Jira"),
            }
        }
    }
    let fields = issues::editable_fields(session, key).await?;
    if let Ok(value) = serde_json::to_string(&fields) {
        let expires_at = OffsetDateTime::now_utc() + EDIT_SCREEN_TTL;
        lookups.put(&[CacheEntry { key: cache_key, value, expires_at }]).await;
    }
    Ok(fields)
}

fn what_the_job_reads(fields: Vec<CreateMetaField>) -> Vec<CreateMetaField> {
    fields
        .into_iter()
        .map(|mut f| {
            if !FIELDS_WHOSE_VALUES_WE_READ.contains(&f.field_id.as_str()) {
                f.allowed_values = None;
            }
            f
        })
        .collect()
}
