//! The scheduled poll: status back with no new scope, on Cloud and Server/DC.
//!
//! Every [`SCHEDULE`] the `issue-sync` function walks the tenants that created issues (their
//! `SYNC` items in the `sweep` index), a page of [`TENANTS_PER_PAGE`] at a time, each visit
//! bounded by [`VISIT_TIMEOUT`]; a run stops before its deadline and the next one resumes after
//! the last tenant it finished (the `ISSUE_SYNC/ROUND` item), so no tenant starves the rest.
//! One visit of a tenant's Jira site:
//!
//! 1. publishes what a crashed run left in the tenant's outbox;
//! 2. one search for the issues we created that changed since the cursor — the label every one
//!    of them carries (`Markers::tenant_label`, so one search covers every project the tenant
//!    wrote to), `updated >= "-Nm"` where N counts the minutes since the last search plus
//!    [`OVERLAP_MINUTES`], `ORDER BY updated ASC`, only [`STATE_FIELDS`], paged to the end. JQL
//!    compares dates at the minute and reads absolute dates in the searching user's time zone
//!    (<https://support.atlassian.com/jira-software-cloud/docs/jql-fields/#Updated>); a
//!    relative period is neither, and counts on Jira's own clock, so a skew between our clock
//!    and Jira's cancels out;
//! 3. records what it saw through the [`Recorder`] (only newer states, exactly once);
//! 4. a slice of the deletion check: up to [`DELETION_SEARCHES_PER_VISIT`] searches of
//!    `id in (…)` over [`IDS_PER_SEARCH`] of our issues each (ids, not keys: an unknown key is a
//!    400 for the whole JQL, an unknown id is just not found, and a moved issue keeps its id);
//!    what a search misses is confirmed gone by reading it (searches lag behind writes), then
//!    recorded deleted;
//! 5. only then moves the cursor to when step 2 began.
//!
//! A tenant whose connection needs re-authorization (`reconnect_required`) is skipped and
//! counted: asking again would only repeat the refusal. Every request goes through the tenant's
//! rate governor (`atlassian::governor`), which honours Atlassian's `Retry-After` and the
//! tenant's share of the rate (<https://developer.atlassian.com/cloud/jira/platform/rate-limiting/>).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{Recorder, Source, SyncError};
use crate::access::{AccessError, Connector};
use crate::atlassian::jira::search::{FieldsPage, PageAt};
use crate::atlassian::{AtlassianError, Session};
use crate::clock::Clock;
use crate::domain::{Connection, ConnectionStatus, Product, TenantId};
use crate::events::EventBus;
use crate::ids::{IssueId, IssueKey, SiteId};
use crate::issues::state::{JiraState, STATE_FIELDS};
use crate::markers::Markers;
use crate::store::{ConnectionStore, IssueSyncStore, RefreshLeaseStore, StoreError, SyncCursor, SyncRound};

/// How often the schedule runs the poll (shared/src/api/routes.rs `SCHEDULES`).
pub const SCHEDULE: &str = "rate(5 minutes)";
/// Minutes searched before the cursor: JQL compares minutes, and a search index lags a little
/// behind writes; a change seen twice is recorded once.
pub const OVERLAP_MINUTES: i64 = 2;
/// Issues asked per search page: Cloud answers at most 100 when fields are asked for.
pub const PAGE_SIZE: usize = 100;
/// `id in (…)` takes at most this many ids per deletion-check search.
pub const IDS_PER_SEARCH: usize = 100;
/// Deletion-check searches per visit: 500 issues, so with a visit every 5 minutes every
/// tenant's issues are checked at least daily up to 144,000 issues per tenant.
pub const DELETION_SEARCHES_PER_VISIT: usize = 5;
/// Tenants visited at once (one page of the round).
pub const TENANTS_PER_PAGE: usize = 8;
/// The longest one tenant's visit may take; a slow site costs this once per run.
pub const VISIT_TIMEOUT: Duration = Duration::from_secs(60);
/// One run at a time (EventBridge Scheduler delivers at least once, and the function's
/// reserved concurrency of 1 is not a lock across retries).
const RUN_LEASE: &str = "issue-sync#run";
/// Pages of the enrollment backfill per run.
const BACKFILL_PAGES: usize = 5;

/// What the schedule sends: `{"sync": "scheduled"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    #[default]
    Scheduled,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunRequest {
    #[serde(default)]
    pub sync: RunKind,
}

/// What a run did (the function answers it, and logs it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Another run held the run lease: this one did nothing.
    pub busy: bool,
    pub tenants_visited: usize,
    /// New states recorded (and published).
    pub changes: usize,
    pub deleted: usize,
    /// Update searches (one per page).
    pub searches: usize,
    pub deletion_searches: usize,
    /// Skipped: the connection must be re-authorized.
    pub reconnect_required: usize,
    /// Skipped: no usable Jira connection (none, or its credentials refused, or no site yet).
    pub unavailable: usize,
    /// Visits that failed (Jira refused or timed out, or our store or bus failed): tried again
    /// next run, from the same cursor.
    pub failed: usize,
    /// Visits that failed on our side (store, event bus): the run reports failure for them.
    pub failed_internal: usize,
    pub round_complete: bool,
    pub backfill_failed: bool,
}

/// One tenant's Jira site, as the poll asks it (a port, so the slicing is unit-tested).
#[async_trait]
pub trait JiraSite: Send + Sync {
    /// The site the ledger records for issues written here.
    fn site(&self) -> SiteId;
    async fn search(&self, jql: &str, fields: &str, at: Option<&PageAt>) -> Result<FieldsPage, AtlassianError>;
    async fn exists(&self, id: &IssueId) -> Result<bool, AtlassianError>;
}

/// Opens a tenant's stored Jira connection.
#[async_trait]
pub trait Sites: Send + Sync {
    async fn open(&self, connection: &Connection) -> Result<Box<dyn JiraSite>, AccessError>;
}

/// The real sites: sessions from the [`Connector`] (governed, refreshing tokens).
pub struct ConnectorSites(pub Arc<Connector>);

struct SessionSite(Session);

#[async_trait]
impl JiraSite for SessionSite {
    fn site(&self) -> SiteId {
        SiteId::new(self.0.site_id())
    }

    async fn search(&self, jql: &str, fields: &str, at: Option<&PageAt>) -> Result<FieldsPage, AtlassianError> {
        crate::atlassian::jira::search::fields_page(&self.0, jql, fields, PAGE_SIZE, at).await
    }

    async fn exists(&self, id: &IssueId) -> Result<bool, AtlassianError> {
        crate::atlassian::jira::issues::exists(&self.0, id).await
    }
}

#[async_trait]
impl Sites for ConnectorSites {
    async fn open(&self, connection: &Connection) -> Result<Box<dyn JiraSite>, AccessError> {
        Ok(Box::new(SessionSite(self.0.session_for(connection).await?)))
    }
}

pub struct Poller {
    pub store: Arc<dyn IssueSyncStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub leases: Arc<dyn RefreshLeaseStore>,
    pub sites: Arc<dyn Sites>,
    pub events: Arc<dyn EventBus>,
    pub markers: Arc<Markers>,
    pub clock: Clock,
    pub tenants_per_page: usize,
    pub visit_timeout: Duration,
}

/// How one visit ended.
#[derive(Debug, Default)]
struct Visit {
    changes: usize,
    deleted: usize,
    searches: usize,
    deletion_searches: usize,
    reconnect_required: bool,
    unavailable: bool,
    failed: bool,
    failed_internal: bool,
}

#[derive(Debug, thiserror::Error)]
enum VisitError {
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Jira(#[from] AtlassianError),
}

impl From<StoreError> for VisitError {
    fn from(e: StoreError) -> Self {
        Self::Sync(SyncError::Store(e))
    }
}

/// The update search of a tenant: its label, and the changes since `since` less the overlap
/// (everything on the first visit), oldest first.
pub fn changes_jql(label: &str, since: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    match since {
        Some(since) => {
            // Whole minutes back to the cursor, rounded up, plus the overlap.
            let seconds = (now - since).whole_seconds().max(0);
            let minutes = (seconds + 59) / 60 + OVERLAP_MINUTES;
            format!("labels = \"{label}\" AND updated >= \"-{minutes}m\" ORDER BY updated ASC")
        }
        None => format!("labels = \"{label}\" ORDER BY updated ASC"),
    }
}

impl Poller {
    /// One run, ending before `deadline` (leave room to answer).
    pub async fn run(&self, _request: &RunRequest, deadline: Instant) -> Result<RunReport, StoreError> {
        let mut report = RunReport::default();
        let work = self.run_holding_lease(deadline, &mut report);
        let ran = crate::jobs::single_run(self.leases.as_ref(), RUN_LEASE, deadline, work).await?;
        report.busy = ran.is_none();
        Ok(report)
    }

    async fn run_holding_lease(&self, deadline: Instant, report: &mut RunReport) -> Result<(), StoreError> {
        // Tenants that created issues before enrollment existed (a one-off, resumable).
        if let Err(e) = self.store.backfill_enrollment(BACKFILL_PAGES).await {
            tracing::error!(error = %e, "the sync enrollment backfill failed; the poll runs anyway");
            report.backfill_failed = true;
        }
        let mut round = self.store.sync_round().await?;
        if round.started_at.is_none() {
            round.started_at = Some(self.clock.now());
        }
        while deadline.saturating_duration_since(Instant::now()) > self.visit_timeout + Duration::from_secs(2) {
            let page = self.store.enrolled(round.after.as_deref(), self.tenants_per_page).await?;
            let visits = futures::future::join_all(page.tenants.iter().map(|t| self.visit_bounded(t))).await;
            for visit in visits {
                report.tenants_visited += 1;
                report.changes += visit.changes;
                report.deleted += visit.deleted;
                report.searches += visit.searches;
                report.deletion_searches += visit.deletion_searches;
                report.reconnect_required += usize::from(visit.reconnect_required);
                report.unavailable += usize::from(visit.unavailable);
                report.failed += usize::from(visit.failed);
                report.failed_internal += usize::from(visit.failed_internal);
            }
            let complete = page.next.is_none();
            round = match page.next {
                Some(next) => SyncRound { after: Some(next), started_at: round.started_at },
                // Every tenant visited: the next run starts a new round from the first.
                None => SyncRound { after: None, started_at: None },
            };
            self.store.save_sync_round(&round).await?;
            if complete {
                report.round_complete = true;
                break;
            }
        }
        Ok(())
    }

    async fn visit_bounded(&self, tenant: &TenantId) -> Visit {
        match tokio::time::timeout(self.visit_timeout, self.visit(tenant)).await {
            Ok(visit) => visit,
            Err(_) => {
                tracing::warn!(tenant = %tenant, "issue-sync visit timed out; the next run resumes from the same cursor");
                Visit { failed: true, ..Visit::default() }
            }
        }
    }

    async fn visit(&self, tenant: &TenantId) -> Visit {
        let mut visit = Visit::default();
        let connection = match self.connections.get(tenant, Product::Jira).await {
            Ok(Some(connection)) => connection,
            Ok(None) => {
                visit.unavailable = true;
                return visit;
            }
            Err(e) => {
                tracing::error!(tenant = %tenant, error = %e, "issue-sync could not read the connection");
                return Visit { failed: true, failed_internal: true, ..visit };
            }
        };
        match connection.status {
            ConnectionStatus::Connected => {}
            ConnectionStatus::ReconnectRequired => {
                tracing::info!(tenant = %tenant, "issue-sync skips a connection that must be re-authorized");
                visit.reconnect_required = true;
                return visit;
            }
            _ => {
                visit.unavailable = true;
                return visit;
            }
        }
        let site = match self.sites.open(&connection).await {
            Ok(site) => site,
            Err(
                AccessError::ReconnectRequired(_) | AccessError::Token(crate::oauth::TokenError::ReconnectRequired(_)),
            ) => {
                visit.reconnect_required = true;
                return visit;
            }
            Err(AccessError::Store(e)) => {
                tracing::error!(tenant = %tenant, error = %e, "issue-sync could not open the site");
                return Visit { failed: true, failed_internal: true, ..visit };
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "issue-sync could not open the site");
                visit.unavailable = true;
                return visit;
            }
        };
        match self.sync_site(tenant, site.as_ref(), &mut visit).await {
            Ok(()) => {}
            Err(VisitError::Jira(e)) => {
                tracing::warn!(tenant = %tenant, error = %e, "issue-sync visit failed at Jira; the next run tries again");
                visit.failed = true;
            }
            Err(VisitError::Sync(e)) => {
                tracing::error!(tenant = %tenant, error = %e, "issue-sync visit failed");
                visit.failed = true;
                visit.failed_internal = true;
            }
        }
        visit
    }

    async fn sync_site(&self, tenant: &TenantId, site: &dyn JiraSite, visit: &mut Visit) -> Result<(), VisitError> {
        let recorder = Recorder { store: self.store.as_ref(), events: self.events.as_ref(), clock: self.clock };
        let site_id = site.site();
        // What a crashed run staged and did not publish goes out first.
        recorder.flush(tenant).await?;
        let mut cursor = self.store.cursor(tenant, &site_id).await?;
        // Jira's `updated` and our cursor are compared on the wall clock (never a shifted
        // business clock): the period is measured here and applied on Jira's clock.
        let started = OffsetDateTime::now_utc();
        let jql = changes_jql(&self.markers.tenant_label(tenant.as_str()), cursor.updated_since, started);
        let mut seen: Vec<(IssueKey, JiraState)> = Vec::new();
        let mut at: Option<PageAt> = None;
        loop {
            let page = site.search(&jql, STATE_FIELDS, at.as_ref()).await?;
            visit.searches += 1;
            for (issue, fields) in page.issues {
                let Some(key) = issue.key.map(IssueKey::new) else { continue };
                match JiraState::from_fields(&fields) {
                    Ok(state) => seen.push((key, state)),
                    // Never the fields themselves: they are the customer's content.
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, issue = %key, error = %e, "issue state unreadable; skipped")
                    }
                }
            }
            match page.next {
                Some(next) => at = Some(next),
                None => break,
            }
        }
        crate::faults::crash_point("issue-sync:after-search").await;
        visit.changes = recorder.record(tenant, &site_id, seen, Source::Poll).await?;
        self.deletion_slice(tenant, site, &recorder, &mut cursor, visit).await?;
        cursor.updated_since = Some(started);
        self.store.save_cursor(tenant, &site_id, &cursor).await?;
        Ok(())
    }

    /// The next slice of the tenant's issues, checked for deletion.
    async fn deletion_slice(
        &self,
        tenant: &TenantId,
        site: &dyn JiraSite,
        recorder: &Recorder<'_>,
        cursor: &mut SyncCursor,
        visit: &mut Visit,
    ) -> Result<(), VisitError> {
        let site_id = site.site();
        for _ in 0..DELETION_SEARCHES_PER_VISIT {
            let page = self.store.created_issues(tenant, cursor.deletion_after.as_deref(), IDS_PER_SEARCH).await?;
            // Issues written to another site (before the tenant moved) are not this site's to judge.
            let here: Vec<_> =
                page.issues.into_iter().filter(|i| i.site.as_ref().is_none_or(|s| *s == site_id)).collect();
            if !here.is_empty() {
                let ids: Vec<&str> = here.iter().map(|i| i.id.as_str()).collect();
                let jql = format!("id in ({})", ids.join(","));
                let found = site.search(&jql, "key", None).await?;
                visit.deletion_searches += 1;
                let present: std::collections::HashSet<String> =
                    found.issues.into_iter().filter_map(|(issue, _)| issue.id).collect();
                let mut gone = Vec::new();
                for issue in here.iter().filter(|i| !present.contains(i.id.as_str())) {
                    // The search index may not show a new issue yet: only a 404 counts.
                    if !site.exists(&issue.id).await? {
                        gone.push(issue.key.clone());
                    }
                }
                if !gone.is_empty() {
                    visit.deleted += recorder.record_deleted(tenant, &site_id, gone, Source::Poll).await?;
                }
            }
            match page.next {
                Some(next) => cursor.deletion_after = Some(next),
                None => {
                    cursor.deletion_after = None;
                    cursor.deletion_pass_done = Some(self.clock.now());
                    break;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
