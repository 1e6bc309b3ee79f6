//! The keep-alive sweep: grants that don't die quietly.
//!
//! Atlassian's rotating refresh tokens expire after 90 days without use and 365 days after the
//! consent however often they are refreshed ("Rotating refresh tokens expire after 90 days of
//! user inactivity. Each time a new rotating refresh token is used, the inactive expiry time is
//! reset to 90 days." and "All tokens have an absolute expiry time of 365 days. After a year,
//! users must re-consent": <https://community.developer.atlassian.com/t/updated-31-january-2022-action-required-deprecating-persistent-refresh-tokens/54172>;
//! the 365 days count from the first consent, not the last refresh:
//! <https://community.developer.atlassian.com/t/refresh-token-expire-after-36000-seconds/60806/2>).
//! A tenant that publishes nothing for three months would find its connection dead, and every
//! tenant finds it dead after a year, unless someone says so first. So, once a day for every
//! connection:
//!
//! - an OAuth grant idle for [`IDLE_REFRESH`] (no refresh since) is refreshed through the token
//!   provider, under the same single-refresher lease as every refresh;
//! - `Connection Expiring` goes out [`NOTICE_DAYS`] (30 and 7) days before the consent's
//!   absolute limit, once each per consent;
//! - token, basic, PAT and OIDC connections are verified again (who-am-I, as registration does,
//!   but straight through the shared verification: these checks never count towards the
//!   destination lockout, which counts failed registrations);
//! - `Connection Broken` goes out when a check fails, with what a person must do, once until the
//!   connection works again.
//!
//! Runs are slices of one round: each takes the connections after the last one the round did, a
//! page at a time (in tenant order, each check bounded in time, a page's checks concurrent), and
//! stops before the function's deadline; the next run resumes there. A tenant costs at most
//! [`CHECK_TIMEOUT`] per connection per round, however slow its server, so none starves the rest.
//! A new round starts [`ROUND_EVERY`] after the last one started (the schedule runs hourly), so
//! every connection is visited at least once a day.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::access::{AccessError, Connector};
use crate::atlassian::{AtlassianError, Class};
use crate::clock::Clock;
use crate::domain::{AuthType, Connection, ConnectionStatus, Product};
use crate::events::{ConnectionBroken, ConnectionExpiring, DetailType, EventBus};
use crate::oauth::{TokenError, TokenSet};
use crate::store::{
    ConnectionStore, CredentialStore, KeepAliveStore, RefreshLeaseStore, StoreError, SweepRound, Verification,
    sweep_key,
};

/// Refresh a grant unused this long: a third of Atlassian's 90 days, so two missed days (or
/// weeks) of sweeps still leave it alive.
pub const IDLE_REFRESH: time::Duration = time::Duration::days(30);
/// Atlassian's absolute limit of one consent, however often it is refreshed.
pub const ABSOLUTE_LIFETIME: time::Duration = time::Duration::days(365);
/// `Connection Expiring` goes out this many days before the absolute limit, once each.
pub const NOTICE_DAYS: [u32; 2] = [30, 7];
/// A new round begins this long after the last one began. The schedule runs every hour, so
/// a round starts every 23 to 24 hours: every connection is visited at least once a day.
pub const ROUND_EVERY: time::Duration = time::Duration::hours(23);
/// The longest one connection's check may take (a token refresh, or a who-am-I with its
/// retries); a tarpit costs this once per round.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections checked at once (one page).
pub const PAGE_SIZE: usize = 8;
/// Only one run at a time (EventBridge Scheduler delivers at least once): a lease in the
/// refresh-lease store, on the system clock like every lease.
const RUN_LEASE: &str = "keep-alive#run";

/// What one invocation asks for: the schedule sends `{"sweep": "scheduled"}`; an operator (or a
/// test) may send `{"sweep": "restart"}` to begin a new round now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    #[default]
    Scheduled,
    Restart,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunRequest {
    #[serde(default)]
    pub sweep: RunKind,
}

/// What a run did (the function answers it, and logs it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    /// Another run held the run lease: this one did nothing.
    pub busy: bool,
    pub visited: usize,
    pub refreshed: usize,
    pub verified: usize,
    pub expiring_sent: usize,
    pub broken_sent: usize,
    /// Checks that failed for a passing reason (timeouts, outages): tried again next round.
    pub deferred: usize,
    /// The round this run worked on is complete.
    pub round_complete: bool,
    /// Chores that failed (their names); the sweep ran anyway.
    pub failed_chores: Vec<String>,
}

/// What the sweep asks of a connection, as a port so the slicing and the notices are
/// unit-tested without HTTP.
#[async_trait]
pub trait Checks: Send + Sync {
    /// Refreshes an OAuth grant now, under the refresh lease.
    async fn keep_alive(&self, connection: &Connection) -> Result<(), TokenError>;
    /// Proves a token connection's stored credentials: who they act as.
    async fn verify(&self, connection: &Connection) -> Result<Option<String>, AccessError>;
}

/// The real checks: through the [`Connector`] (its token provider and sessions), as every request.
pub struct ConnectorChecks(pub Arc<Connector>);

#[async_trait]
impl Checks for ConnectorChecks {
    async fn keep_alive(&self, connection: &Connection) -> Result<(), TokenError> {
        self.0.keep_alive(connection).await
    }

    async fn verify(&self, connection: &Connection) -> Result<Option<String>, AccessError> {
        let session = self.0.session_for(connection).await?;
        Ok(crate::verify::whoami(&session, connection.auth_type, connection.scoped_token).await?)
    }
}

/// Other periodic work that rides along with each run (before the sweep): e.g. deleting
/// consents that were never confirmed. A failed chore is logged and reported; the sweep runs.
pub trait Chore: Send + Sync {
    fn name(&self) -> &'static str;
    /// Does the chore at `now` (the business clock); how many things it handled.
    fn run(&self, now: OffsetDateTime) -> Pin<Box<dyn Future<Output = Result<usize, StoreError>> + Send + '_>>;
}

/// Gives connections stored before the sweep's index existed their index keys (a one-off,
/// resumable table scan, a few pages a run; nothing once it is complete).
pub struct BackfillSweepIndex(pub Arc<dyn ConnectionStore>);

impl Chore for BackfillSweepIndex {
    fn name(&self) -> &'static str {
        "backfill-sweep-index"
    }

    fn run(&self, _now: OffsetDateTime) -> Pin<Box<dyn Future<Output = Result<usize, StoreError>> + Send + '_>> {
        Box::pin(async move { self.0.backfill_sweep_index(5).await.map(usize::from) })
    }
}

/// Deletes OAuth consents nobody confirmed within their window, with their secrets
/// (`crate::consent`): the tenant that started one may never come back to confirm or restart it.
pub struct ExpirePendingConsents {
    pub connections: Arc<dyn ConnectionStore>,
    pub credentials: Arc<dyn CredentialStore>,
}

impl Chore for ExpirePendingConsents {
    fn name(&self) -> &'static str {
        "expire-pending-consents"
    }

    /// On the wall clock, as the callback and the confirm set and judge the window (a shifted
    /// test clock must not end other consents early).
    fn run(&self, _now: OffsetDateTime) -> Pin<Box<dyn Future<Output = Result<usize, StoreError>> + Send + '_>> {
        Box::pin(async move {
            let stores = crate::consent::Stores {
                connections: self.connections.as_ref(),
                credentials: self.credentials.as_ref(),
            };
            crate::consent::expire_pending(stores, OffsetDateTime::now_utc()).await
        })
    }
}

pub struct Sweep {
    pub connections: Arc<dyn ConnectionStore>,
    pub credentials: Arc<dyn CredentialStore>,
    pub store: Arc<dyn KeepAliveStore>,
    pub leases: Arc<dyn RefreshLeaseStore>,
    pub checks: Arc<dyn Checks>,
    pub events: Arc<dyn EventBus>,
    pub clock: Clock,
    pub page_size: usize,
    pub check_timeout: Duration,
    pub chores: Vec<Arc<dyn Chore>>,
}

/// How one connection's visit ended.
#[derive(Debug, Default)]
struct Visit {
    refreshed: bool,
    verified: bool,
    expiring_sent: bool,
    broken_sent: bool,
    deferred: bool,
}

impl Sweep {
    /// One run, ending before `deadline` (leave room to answer).
    pub async fn run(&self, request: &RunRequest, deadline: Instant) -> Result<RunReport, StoreError> {
        let mut report = RunReport::default();
        let work = self.run_holding_lease(request, deadline, &mut report);
        let ran = crate::jobs::single_run(self.leases.as_ref(), RUN_LEASE, deadline, work).await?;
        report.busy = ran.is_none();
        Ok(report)
    }

    async fn run_holding_lease(
        &self,
        request: &RunRequest,
        deadline: Instant,
        report: &mut RunReport,
    ) -> Result<(), StoreError> {
        for chore in &self.chores {
            match chore.run(self.clock.now()).await {
                Ok(n) => tracing::info!(chore = chore.name(), handled = n, "chore done"),
                Err(e) => {
                    tracing::error!(chore = chore.name(), error = %e, "chore failed");
                    report.failed_chores.push(chore.name().to_owned());
                }
            }
        }
        let now = self.clock.now();
        let mut round = match self.store.sweep_round().await? {
            Some(round) if request.sweep == RunKind::Scheduled && round.completed_at.is_none() => round,
            Some(round) if request.sweep == RunKind::Scheduled && now - round.started_at < ROUND_EVERY => {
                report.round_complete = true;
                return Ok(());
            }
            _ => SweepRound { started_at: now, after: None, completed_at: None },
        };
        self.store.save_sweep_round(&round).await?;
        // A page is started only when all of it can finish before the deadline.
        while deadline.saturating_duration_since(Instant::now()) > self.check_timeout + Duration::from_secs(2) {
            let page = self.connections.sweep_page(round.after.as_deref(), self.page_size).await?;
            let visits = futures::future::join_all(page.connections.iter().map(|c| self.visit_bounded(c))).await;
            for visit in visits {
                report.visited += 1;
                report.refreshed += usize::from(visit.refreshed);
                report.verified += usize::from(visit.verified);
                report.expiring_sent += usize::from(visit.expiring_sent);
                report.broken_sent += usize::from(visit.broken_sent);
                report.deferred += usize::from(visit.deferred);
            }
            match page.next {
                Some(next) => round.after = Some(next),
                None => {
                    round.after = page.connections.last().map(sweep_key).or(round.after.take());
                    round.completed_at = Some(self.clock.now());
                }
            }
            self.store.save_sweep_round(&round).await?;
            if round.completed_at.is_some() {
                report.round_complete = true;
                break;
            }
        }
        Ok(())
    }

    /// One connection, in at most `check_timeout`; a store failure defers it to the next round.
    async fn visit_bounded(&self, connection: &Connection) -> Visit {
        match tokio::time::timeout(self.check_timeout, self.visit(connection)).await {
            Ok(Ok(visit)) => visit,
            Ok(Err(e)) => {
                tracing::warn!(tenant = %connection.tenant, product = %connection.product, error = %e, "keep-alive check deferred");
                Visit { deferred: true, ..Visit::default() }
            }
            Err(_) => {
                tracing::warn!(tenant = %connection.tenant, product = %connection.product, "keep-alive check timed out; deferred");
                Visit { deferred: true, ..Visit::default() }
            }
        }
    }

    async fn visit(&self, connection: &Connection) -> Result<Visit, StoreError> {
        let mut visit = Visit::default();
        match connection.status {
            // Data Center grants too: the provider retires a refresh token after its lifetime
            // (90 days by default), and each refresh issues a new one (`oauth/dc.rs`).
            ConnectionStatus::Connected if matches!(connection.auth_type, AuthType::Oauth2 | AuthType::DcOauth2) => {
                self.keep_oauth_alive(connection, &mut visit).await?;
            }
            ConnectionStatus::Connected => self.verify_token(connection, &mut visit).await?,
            // Found broken by a request before this round: say so once too.
            ConnectionStatus::ReconnectRequired | ConnectionStatus::InvalidCredentials => {
                visit.broken_sent = self.broken(connection, connection.status).await?;
            }
            // Nothing to keep alive yet: an admin picks a site first, or confirms the consent.
            _ => {}
        }
        Ok(visit)
    }

    async fn keep_oauth_alive(&self, connection: &Connection, visit: &mut Visit) -> Result<(), StoreError> {
        let now = self.clock.now();
        let Some(stored) = self.credentials.get(&connection.secret_name).await? else {
            // Disconnected meanwhile (the secret goes first): nothing to keep.
            return Ok(());
        };
        let issued_at = TokenSet::from_secret(&stored.value).map_err(StoreError::Corrupt)?.issued_at;
        if now - issued_at.unwrap_or(connection.created_at) >= IDLE_REFRESH {
            match self.checks.keep_alive(connection).await {
                Ok(()) => {
                    tracing::info!(tenant = %connection.tenant, grant = %connection.grant_id, "idle grant refreshed");
                    visit.refreshed = true;
                }
                Err(TokenError::ReconnectRequired(_)) => {
                    visit.broken_sent = self.broken(connection, ConnectionStatus::ReconnectRequired).await?;
                    return Ok(());
                }
                Err(TokenError::Store(e)) => return Err(e),
                // Disconnected while we refreshed: the token provider left no secret behind.
                Err(TokenError::Disconnected(_)) => return Ok(()),
                Err(e @ TokenError::RefreshFailed(_)) => {
                    tracing::warn!(tenant = %connection.tenant, error = %e, "idle grant not refreshed; next round tries again");
                    visit.deferred = true;
                }
            }
        }
        // Atlassian Cloud's one-year limit on a consent; a Data Center instance sets no such limit.
        if connection.auth_type == AuthType::Oauth2 {
            visit.expiring_sent = self.expiring(connection, now).await?;
        }
        Ok(())
    }

    /// `Connection Expiring` when the consent is within a notice's days of its absolute limit:
    /// the most urgent notice that applies, once per consent.
    async fn expiring(&self, connection: &Connection, now: OffsetDateTime) -> Result<bool, StoreError> {
        let expires_at = connection.created_at + ABSOLUTE_LIFETIME;
        let left = expires_at - now;
        if left <= time::Duration::ZERO {
            return Ok(false);
        }
        let mut notices = NOTICE_DAYS;
        notices.sort_unstable();
        let Some(days) = notices.into_iter().find(|d| left <= time::Duration::days(i64::from(*d))) else {
            return Ok(false);
        };
        let key = format!("EXPIRING#{}#{}#{days}", connection.grant_id, connection.created_at.unix_timestamp());
        let products: Vec<Product> = self
            .connections
            .list(&connection.tenant)
            .await?
            .into_iter()
            .filter(|c| c.grant_id == connection.grant_id)
            .map(|c| c.product)
            .collect();
        let names: Vec<&str> = products.iter().map(|p| product_name(*p)).collect();
        let event = ConnectionExpiring {
            tenant_id: connection.tenant.to_string(),
            reason: format!(
                "Atlassian ends the {} authorization on {} (a year after consent, however often it is used): \
                 re-authorize the connection before then",
                names.join(" and "),
                expires_at.date()
            ),
            products,
            expires_at,
            days_left: days,
        };
        self.notify(connection, &key, expires_at + time::Duration::days(30), &event).await
    }

    async fn verify_token(&self, connection: &Connection, visit: &mut Visit) -> Result<(), StoreError> {
        let outcome = self.checks.verify(connection).await;
        let refused = match &outcome {
            Ok(_) => false,
            Err(AccessError::InvalidCredentials(_) | AccessError::ReconnectRequired(_)) => true,
            Err(AccessError::Upstream(e)) => refused(e),
            Err(_) => false,
        };
        match outcome {
            Ok(acting_as) => {
                let verification = Verification {
                    at: self.clock.now(),
                    status: ConnectionStatus::Connected,
                    acting_as,
                    secret_name: connection.secret_name.clone(),
                };
                self.connections.record_verified(&connection.tenant, connection.product, &verification).await?;
                // It works: a later failure is news again.
                self.store.forget_notice(&connection.tenant, &broken_key(connection)).await?;
                visit.verified = true;
            }
            Err(_) if refused => {
                let verification = Verification {
                    at: self.clock.now(),
                    status: ConnectionStatus::InvalidCredentials,
                    acting_as: None,
                    secret_name: connection.secret_name.clone(),
                };
                self.connections.record_verified(&connection.tenant, connection.product, &verification).await?;
                visit.broken_sent = self.broken(connection, ConnectionStatus::InvalidCredentials).await?;
            }
            Err(AccessError::Store(e)) => return Err(e),
            Err(e) => {
                // A 403 (the user lacks a permission), an outage, a timeout: not proof the
                // credentials are gone. The next round checks again.
                tracing::warn!(tenant = %connection.tenant, product = %connection.product, error = %e, "verification inconclusive");
                visit.deferred = true;
            }
        }
        Ok(())
    }

    /// `Connection Broken`, once until the connection works again.
    async fn broken(&self, connection: &Connection, status: ConnectionStatus) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let event = ConnectionBroken {
            tenant_id: connection.tenant.to_string(),
            product: connection.product,
            auth_type: connection.auth_type,
            status,
            reason: broken_reason(connection, status),
            detected_at: now,
        };
        self.notify(connection, &broken_key(connection), now + ABSOLUTE_LIFETIME, &event).await
    }

    /// Claims the notice, then sends it; a notice that could not be sent is given back, so the
    /// next run sends it (a crash between the two loses it: once at most, never twice).
    async fn notify<E: DetailType + serde::Serialize>(
        &self,
        connection: &Connection,
        key: &str,
        keep_until: OffsetDateTime,
        event: &E,
    ) -> Result<bool, StoreError> {
        if !self.store.claim_notice(&connection.tenant, key, keep_until).await? {
            return Ok(false);
        }
        let detail = serde_json::to_value(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match self.events.publish(E::DETAIL_TYPE, &detail).await {
            Ok(()) => {
                tracing::info!(tenant = %connection.tenant, product = %connection.product, event = E::DETAIL_TYPE, "notice sent");
                Ok(true)
            }
            Err(reason) => {
                tracing::error!(tenant = %connection.tenant, event = E::DETAIL_TYPE, reason = %reason, "notice not sent; next run tries again");
                self.store.forget_notice(&connection.tenant, key).await?;
                Ok(false)
            }
        }
    }
}

/// The credentials themselves were refused (not a permission, not an outage).
fn refused(e: &AtlassianError) -> bool {
    matches!(e, AtlassianError::CredentialsRefused { .. }) || e.is(Class::Unauthorized)
}

fn broken_key(connection: &Connection) -> String {
    format!("BROKEN#{}#{}", connection.product, connection.created_at.unix_timestamp())
}

/// What happened and what a person does about it. Never the credentials.
fn broken_reason(connection: &Connection, _status: ConnectionStatus) -> String {
    let product = product_name(connection.product);
    match connection.auth_type {
        AuthType::Oauth2 => format!(
            "Atlassian no longer accepts the {product} authorization (it expired or was revoked): re-authorize the {product} connection"
        ),
        AuthType::ApiToken => format!(
            "{product} refused the API token: the API token was revoked or expired; create a new one and register it again"
        ),
        AuthType::Basic => format!(
            "{product} refused the username and password (the password changed, or the account was deactivated or locked): register the current credentials again"
        ),
        AuthType::Pat => format!(
            "{product} refused the personal access token: the token was revoked or expired; create a new one and register it again"
        ),
        AuthType::OidcClientCredentials => format!(
            "{product} refused the identity provider's token: check the client's credentials and its access to {product}, then register again"
        ),
        AuthType::Connect => format!(
            "{product} refused the Connect app's signed requests (the app was uninstalled, or its installation was replaced): install the app again and link it"
        ),
        AuthType::Forge => format!(
            "{product} refused the Forge app's system token (the app was uninstalled or lost its scopes): install the app again and link it"
        ),
        AuthType::DcOauth2 => format!(
            "{product} no longer accepts the application link's authorization (it expired, was revoked, or the link was deleted): re-authorize the {product} connection"
        ),
    }
}

fn product_name(product: Product) -> &'static str {
    match product {
        Product::Jira => "Jira",
        Product::Confluence => "Confluence",
    }
}

#[cfg(test)]
mod tests;
