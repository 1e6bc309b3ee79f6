//! Status back by dynamic webhook (Cloud OAuth 2.0, opt-in): registration, refresh, removal, and
//! what a delivery becomes.
//!
//! A tenant opts in by consenting to `manage:jira-webhook` as well (`StartOAuthRequest`'s
//! `status_webhooks`). Its Jira connection then carries the scope, and [`Webhooks::ensure`]
//! registers one webhook on its site for `jira:issue_updated` and `jira:issue_deleted`, filtered
//! to its project(s) — after the consent is confirmed, when its Jira settings are saved, and on
//! the scheduled run ([`Webhooks::refresh_due`]) for anyone the others missed. Jira stops sending
//! 30 days after the registration or the last refresh (`PUT /rest/api/3/webhook/refresh`), so the
//! scheduled run refreshes every registration [`REFRESH_AHEAD`] before its expiry; refresh ignores
//! unknown ids silently, so the run lists the app's webhooks first and registers again when ours
//! is gone. A disconnect removes it ([`Webhooks::deregister`]).
//!
//! Deliveries ([`receive`]) carry a JWT signed with the app's client secret (`webhook_jwt`); the
//! issue's fields become a `JiraState` and go to the same recorder as the poll, which writes and
//! emits a change only when its `updated` is newer than the ledger's: a Jira retry, a
//! redelivery and the poll seeing the same change emit nothing twice. Polling stays on as the
//! safety net (deliveries are best effort).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use time::Duration;

use crate::access::{AccessError, Connector};
use crate::atlassian::jira::webhooks::{self as api, Registered};
use crate::atlassian::{AtlassianError, Session};
use crate::clock::Clock;
use crate::domain::{AuthType, Connection, ConnectionStatus, Deployment, Product, TenantId};
use crate::ids::{IssueKey, SiteId};
use crate::issues::state::JiraState;
use crate::settings::JiraSettings;
use crate::store::{ConnectionStore, IssueLedger, SettingsStore, StoreError, WebhookRegistration, WebhookStore};

/// The scope a tenant grants to let us register webhooks (Jira Cloud v3: every webhook operation
/// needs `read:jira-work` and `manage:jira-webhook`).
pub const SCOPE: &str = "manage:jira-webhook";

/// Refresh a registration this long before it expires (Jira: 30 days after the last refresh).
pub const REFRESH_AHEAD: Duration = Duration::days(7);

/// Registrations refreshed per scheduled run at most; the rest wait for the next run.
pub const REFRESH_BATCH: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Atlassian(#[from] AtlassianError),
    #[error("Jira refused the webhook registration: {0}")]
    Refused(String),
}

/// Whether the connection lets us register webhooks: Cloud, OAuth 2.0, connected, and granted
/// the scope.
pub fn allows_webhooks(connection: &Connection) -> bool {
    connection.product == Product::Jira
        && connection.deployment == Deployment::Cloud
        && connection.auth_type == AuthType::Oauth2
        && connection.status == ConnectionStatus::Connected
        && connection.site.is_some()
        && connection.scopes.iter().any(|s| s == SCOPE)
}

/// What [`Webhooks::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The tenant did not opt in (or is not a Cloud OAuth connection): nothing registered.
    NotAllowed,
    /// No Jira project configured yet: registered once settings are saved.
    NoProject,
    /// Already registered for these projects.
    Current,
    Registered(Vec<i64>),
}

/// What one scheduled refresh run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RefreshReport {
    pub refreshed: usize,
    pub reregistered: usize,
    /// Registrations of tenants that no longer allow webhooks, forgotten.
    pub dropped: usize,
    pub failed: usize,
}

/// Registration, refresh and removal of tenants' webhooks.
pub struct Webhooks {
    pub connector: Arc<Connector>,
    pub connections: Arc<dyn ConnectionStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub store: Arc<dyn WebhookStore>,
    /// Where Jira delivers: the public `POST /v1/webhooks/jira` of this deployment.
    pub url: String,
    pub clock: Clock,
}

impl Webhooks {
    /// The deployment's registrar; `None` when `BRIDGE_JIRA_WEBHOOK_URL` is unset (no webhooks).
    pub fn from_app(app: &crate::app::App) -> Option<Self> {
        Some(Self {
            connector: app.connector.clone(),
            connections: app.connections.clone(),
            settings: app.settings.clone(),
            store: app.webhooks.clone(),
            url: app.config.jira_webhook_url.as_ref()?.to_string(),
            clock: app.config.clock,
        })
    }

    /// [`ensure`](Self::ensure) for a request that just changed what it depends on (a confirmed
    /// consent, saved settings): a failure is logged, never the request's answer; the scheduled
    /// run tries again.
    pub async fn ensure_logged(&self, tenant: &TenantId) {
        match self.ensure(tenant).await {
            Ok(outcome) => tracing::debug!(?outcome, "webhook registration checked"),
            Err(e) => tracing::warn!(error = %e, "webhook registration failed; the scheduled run retries"),
        }
    }

    /// The scheduled run's catch-up: every connection that allows webhooks and has no
    /// registration yet gets one (a consent whose registration failed, a project configured
    /// later). Pages through every tenant's connections (the sweep index), at most `pages` pages.
    pub async fn ensure_missing(&self, pages: usize) -> Result<usize, WebhookError> {
        let (mut after, mut registered) = (None::<String>, 0);
        for _ in 0..pages {
            let page = self.connections.sweep_page(after.as_deref(), 100).await?;
            for connection in page.connections.iter().filter(|c| allows_webhooks(c)) {
                if self.store.registration(&connection.tenant).await?.is_some() {
                    continue;
                }
                match self.ensure(&connection.tenant).await {
                    Ok(Ensured::Registered(_)) => registered += 1,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(tenant = %connection.tenant, error = %e, "webhook registration failed"),
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(registered)
    }

    /// Registers the tenant's webhook if it opted in and has none for its current project(s).
    pub async fn ensure(&self, tenant: &TenantId) -> Result<Ensured, WebhookError> {
        let Some(connection) = self.connections.get(tenant, Product::Jira).await? else {
            return Ok(Ensured::NotAllowed);
        };
        if !allows_webhooks(&connection) {
            return Ok(Ensured::NotAllowed);
        }
        let existing = self.store.registration(tenant).await?;
        let projects = self.projects(tenant, existing.as_ref()).await?;
        if projects.is_empty() {
            return Ok(Ensured::NoProject);
        }
        let site = connection.site.clone().unwrap_or_else(unreachable_site);
        if let Some(current) = &existing
            && current.cloud_id == site.cloud_id
            && current.projects == projects
        {
            return Ok(Ensured::Current);
        }
        let session = self.connector.session_for(&connection).await?;
        let registration = self.register(&session, tenant, &site.cloud_id, &site.url, projects).await?;
        // The old webhook (other projects or another site) goes once the new one is stored.
        if let Some(old) = existing
            && old.cloud_id == site.cloud_id
        {
            let stale: Vec<i64> =
                old.webhook_ids.iter().copied().filter(|id| !registration.webhook_ids.contains(id)).collect();
            if !stale.is_empty()
                && let Err(e) = api::delete(&session, &stale).await
            {
                tracing::warn!(error = %e, "could not delete the tenant's previous webhook; Jira expires it in 30 days");
            }
        }
        Ok(Ensured::Registered(registration.webhook_ids))
    }

    /// The projects to filter on: the configured project, plus those of the existing
    /// registration (issues created there before the project changed still matter).
    async fn projects(
        &self,
        tenant: &TenantId,
        existing: Option<&WebhookRegistration>,
    ) -> Result<Vec<String>, StoreError> {
        let mut projects: BTreeSet<String> = existing.map(|r| r.projects.iter().cloned().collect()).unwrap_or_default();
        if let Some(value) = self.settings.get_settings(tenant, Product::Jira).await?
            && let Ok(settings) = serde_json::from_value::<JiraSettings>(value)
        {
            projects.insert(settings.project_key);
        }
        Ok(projects.into_iter().collect())
    }

    async fn register(
        &self,
        session: &Session,
        tenant: &TenantId,
        cloud_id: &str,
        site_url: &str,
        projects: Vec<String>,
    ) -> Result<WebhookRegistration, WebhookError> {
        let id = match api::register(session, &self.url, &projects).await? {
            Registered::Created(id) => id,
            Registered::Refused(errors) => return Err(WebhookError::Refused(errors.join("; "))),
        };
        let now = self.clock.now();
        // Jira's registration answer has no expiry; it is 30 days from now (refresh says exactly).
        let registration = WebhookRegistration {
            tenant: tenant.clone(),
            cloud_id: cloud_id.to_owned(),
            site_url: site_url.trim_end_matches('/').to_owned(),
            webhook_ids: vec![id],
            projects,
            expires_at: now + Duration::days(30),
            registered_at: now,
        };
        self.store.put_registration(&registration).await?;
        tracing::info!(webhook = id, projects = registration.projects.len(), "Jira webhook registered");
        Ok(registration)
    }

    /// The scheduled step: every registration expiring within [`REFRESH_AHEAD`] is refreshed,
    /// registered again when Jira no longer lists it, or forgotten when its tenant no longer
    /// allows webhooks. A failure is counted and left for the next run.
    pub async fn refresh_due(&self) -> Result<RefreshReport, WebhookError> {
        let mut report = RefreshReport::default();
        let due = self.store.expiring(self.clock.now() + REFRESH_AHEAD, REFRESH_BATCH).await?;
        for registration in due {
            match self.refresh_one(&registration).await {
                Ok(Refresh::Refreshed) => report.refreshed += 1,
                Ok(Refresh::Reregistered) => report.reregistered += 1,
                Ok(Refresh::Dropped) => report.dropped += 1,
                Err(e) => {
                    tracing::warn!(tenant = %registration.tenant, error = %e, "webhook refresh failed; the next run retries");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    async fn refresh_one(&self, registration: &WebhookRegistration) -> Result<Refresh, WebhookError> {
        let tenant = &registration.tenant;
        let connection = self.connections.get(tenant, Product::Jira).await?;
        let Some(connection) = connection.filter(allows_webhooks) else {
            // Disconnected or re-consented without the scope: Jira lets it lapse.
            self.store.delete_registration(tenant).await?;
            return Ok(Refresh::Dropped);
        };
        let session = self.connector.session_for(&connection).await?;
        let listed: BTreeSet<i64> = api::list(&session).await?.into_iter().map(|w| w.id).collect();
        let alive: Vec<i64> = registration.webhook_ids.iter().copied().filter(|id| listed.contains(id)).collect();
        let site = connection.site.clone().unwrap_or_else(unreachable_site);
        if alive.is_empty() || site.cloud_id != registration.cloud_id {
            tracing::info!("the tenant's webhook is gone from Jira; registering it again");
            self.register(&session, tenant, &site.cloud_id, &site.url, registration.projects.clone()).await?;
            return Ok(Refresh::Reregistered);
        }
        let expires_at = api::refresh(&session, &alive).await?.unwrap_or_else(|| self.clock.now() + Duration::days(30));
        let mut refreshed = registration.clone();
        refreshed.webhook_ids = alive;
        refreshed.expires_at = expires_at;
        self.store.put_registration(&refreshed).await?;
        Ok(Refresh::Refreshed)
    }

    /// Removes the tenant's webhook at Jira (while the connection still works) and forgets it.
    /// Jira's part is best effort: a webhook we fail to delete stops when it expires.
    pub async fn deregister(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let Some(registration) = self.store.registration(tenant).await? else { return Ok(false) };
        if let Some(connection) = self.connections.get(tenant, Product::Jira).await?
            && connection.site.as_ref().is_some_and(|s| s.cloud_id == registration.cloud_id)
        {
            let deleted = match self.connector.session_for(&connection).await {
                Ok(session) => api::delete(&session, &registration.webhook_ids).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = deleted {
                tracing::warn!(error = %e, "could not delete the tenant's webhook at Jira; it expires in 30 days");
            }
        }
        self.store.delete_registration(tenant).await?;
        tracing::info!("Jira webhook deregistered");
        Ok(true)
    }
}

enum Refresh {
    Refreshed,
    Reregistered,
    Dropped,
}

/// `allows_webhooks` checked the site is there.
fn unreachable_site() -> crate::domain::Site {
    crate::domain::Site { cloud_id: String::new(), url: String::new(), name: String::new() }
}

// ---------------------------------------------------------------------------------- deliveries

/// Where the states a delivery carries go: the sync recorder (`sync::Recorder`), which writes and
/// emits only what is newer than the ledger's.
#[async_trait]
pub trait Sightings: Send + Sync {
    async fn updated(
        &self,
        tenant: &TenantId,
        site: &SiteId,
        seen: Vec<(IssueKey, JiraState)>,
    ) -> Result<usize, String>;
    async fn deleted(&self, tenant: &TenantId, site: &SiteId, keys: Vec<IssueKey>) -> Result<usize, String>;
}

/// The sync recorder takes webhook sightings as it takes the poll's.
#[async_trait]
impl Sightings for crate::sync::Recorder<'_> {
    async fn updated(
        &self,
        tenant: &TenantId,
        site: &SiteId,
        seen: Vec<(IssueKey, JiraState)>,
    ) -> Result<usize, String> {
        self.record(tenant, site, seen, crate::sync::Source::Webhook).await.map_err(|e| e.to_string())
    }

    async fn deleted(&self, tenant: &TenantId, site: &SiteId, keys: Vec<IssueKey>) -> Result<usize, String> {
        self.record_deleted(tenant, site, keys, crate::sync::Source::Webhook).await.map_err(|e| e.to_string())
    }
}

/// The keep-alive run's webhook chore (hourly): refresh what expires within [`REFRESH_AHEAD`],
/// register what is missing.
pub struct RefreshWebhooks(pub Arc<Webhooks>);

impl crate::keep_alive::Chore for RefreshWebhooks {
    fn name(&self) -> &'static str {
        "refresh-jira-webhooks"
    }

    fn run(
        &self,
        _now: time::OffsetDateTime,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, StoreError>> + Send + '_>> {
        Box::pin(async move {
            let failed = |e: WebhookError| match e {
                WebhookError::Store(e) => e,
                other => StoreError::Service { service: "Jira webhooks", message: other.to_string() },
            };
            let report = self.0.refresh_due().await.map_err(failed)?;
            let registered = self.0.ensure_missing(20).await.map_err(failed)?;
            tracing::info!(?report, registered, "Jira webhooks refreshed");
            Ok(report.refreshed + report.reregistered + registered)
        })
    }
}

/// A Jira webhook delivery as the receiver reads it (Jira sends more; it is ignored).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JiraWebhookDelivery {
    /// `jira:issue_updated` or `jira:issue_deleted` (anything else is acknowledged and ignored).
    pub webhook_event: String,
    /// The registrations this delivery matched.
    #[serde(default)]
    pub matched_webhook_ids: Vec<i64>,
    /// The issue: `key`, `self`, `fields`.
    #[schema(value_type = Object)]
    pub issue: Option<Value>,
}

/// The receiver's answer: Jira only needs the 2xx.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookAccepted {
    /// `recorded`, `repeated` (a retry of a delivery handled before) or `ignored`.
    pub outcome: String,
}

/// What a verified delivery came to (the answer is 2xx whatever it is, except `Failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Recorded for these tenants; `new` changes were emitted.
    Recorded { tenants: usize, new: usize },
    /// This delivery (same identifier) was handled before: a Jira retry.
    Repeated,
    /// Not for us: another event, an issue we did not create, no registration of ours.
    Ignored(&'static str),
}

/// One delivery's parts the receiver reads.
pub struct Delivery<'a> {
    pub body: &'a Value,
    /// `X-Atlassian-Webhook-Identifier`: unique per site, the same on Jira's retries.
    pub identifier: Option<&'a str>,
}

/// The stores and sink a delivery needs.
pub struct Receiver<'a> {
    pub store: &'a dyn WebhookStore,
    pub ledger: &'a dyn IssueLedger,
    pub sightings: &'a dyn Sightings,
    pub clock: Clock,
}

impl Receiver<'_> {
    /// Handles a delivery whose JWT was verified: finds the tenant(s) by the webhook ids it
    /// matched and the issue's site, keeps the issues each tenant created, and records them.
    pub async fn receive(&self, delivery: Delivery<'_>) -> Result<Received, String> {
        let body = delivery.body;
        let event = body.get("webhookEvent").and_then(Value::as_str).unwrap_or_default();
        if event != "jira:issue_updated" && event != "jira:issue_deleted" {
            return Ok(Received::Ignored("event"));
        }
        let Some(issue) = body.get("issue") else { return Ok(Received::Ignored("no issue")) };
        let Some(key) = issue.get("key").and_then(Value::as_str).filter(|k| valid_key(k)) else {
            return Ok(Received::Ignored("no issue key"));
        };
        let key = IssueKey::new(key);
        let self_url = issue.get("self").and_then(Value::as_str).unwrap_or_default();
        let ids: Vec<i64> = body
            .get("matchedWebhookIds")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_i64).take(20).collect())
            .unwrap_or_default();
        let mut candidates: Vec<WebhookRegistration> = Vec::new();
        for id in ids {
            for registration in self.store.registrations_with(id).await.map_err(|e| e.to_string())? {
                // Webhook ids are per site: the issue's link says which site sent it.
                if same_site(self_url, &registration) && !candidates.iter().any(|c| c.tenant == registration.tenant) {
                    candidates.push(registration);
                }
            }
        }
        let Some(first) = candidates.first() else { return Ok(Received::Ignored("no registration")) };
        let cloud_id = first.cloud_id.clone();
        let identifier = delivery.identifier.filter(|i| valid_identifier(i));
        let now = self.clock.now();
        if let Some(identifier) = identifier
            && self.store.delivery_seen(&cloud_id, identifier, now).await.map_err(|e| e.to_string())?
        {
            return Ok(Received::Repeated);
        }
        let state = if event == "jira:issue_updated" {
            let fields = issue.get("fields").cloned().unwrap_or(Value::Null);
            Some(JiraState::from_fields(&fields).map_err(|e| e.to_string())?)
        } else {
            None
        };
        let (mut tenants, mut new) = (0, 0);
        for registration in &candidates {
            let site = SiteId::new(registration.cloud_id.clone());
            let Some(record) = self.ledger.item_for_key(&registration.tenant, &key).await.map_err(|e| e.to_string())?
            else {
                continue;
            };
            if record.site.as_ref().is_some_and(|s| *s != site) {
                continue;
            }
            tenants += 1;
            new += match &state {
                Some(state) => self.sightings.updated(&registration.tenant, &site, vec![(key.clone(), state.clone())]),
                None => self.sightings.deleted(&registration.tenant, &site, vec![key.clone()]),
            }
            .await?;
        }
        // Remembered only once recorded: a crash before this leaves Jira's retry to do it again.
        if let Some(identifier) = identifier {
            self.store.delivery_handled(&cloud_id, identifier, now).await.map_err(|e| e.to_string())?;
        }
        if tenants == 0 {
            return Ok(Received::Ignored("not an issue we created"));
        }
        Ok(Received::Recorded { tenants, new })
    }
}

/// Whether an issue's `self` link is on the registration's site: the site URL
/// (`https://acme.atlassian.net/rest/api/...`, how Jira links in webhook bodies) or the API
/// gateway's `/ex/jira/{cloudId}/`.
fn same_site(self_url: &str, registration: &WebhookRegistration) -> bool {
    let Ok(url) = url::Url::parse(self_url) else { return false };
    let origin = url.origin().ascii_serialization();
    let site = url::Url::parse(&registration.site_url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    origin == site || url.path().starts_with(&format!("/ex/jira/{}/", registration.cloud_id))
}

fn valid_key(key: &str) -> bool {
    (3..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An identifier we may put in a table key: short, printable, no `#`.
fn valid_identifier(identifier: &str) -> bool {
    (1..=128).contains(&identifier.len()) && identifier.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::ids::{IssueId, ItemId};
    use crate::store::memory::MemoryStore;
    use crate::store::{Claim, RecordedIssue};
    use time::OffsetDateTime;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, String, Option<String>)>>);

    #[async_trait]
    impl Sightings for Seen {
        async fn updated(
            &self,
            tenant: &TenantId,
            _site: &SiteId,
            seen: Vec<(IssueKey, JiraState)>,
        ) -> Result<usize, String> {
            let mut all = self.0.lock().unwrap();
            for (key, state) in seen {
                all.push((tenant.to_string(), key.to_string(), Some(state.status)));
            }
            Ok(1)
        }
        async fn deleted(&self, tenant: &TenantId, _site: &SiteId, keys: Vec<IssueKey>) -> Result<usize, String> {
            let mut all = self.0.lock().unwrap();
            for key in keys {
                all.push((tenant.to_string(), key.to_string(), None));
            }
            Ok(1)
        }
    }

    async fn created(store: &MemoryStore, tenant: &TenantId, key: &str, site: &str) {
        let item = ItemId::new(format!("item-{key}"));
        let until = OffsetDateTime::now_utc() + Duration::minutes(1);
        assert!(matches!(store.ledger.claim(tenant, &item, "o", until).await.unwrap(), Claim::Ours(_)));
        let issue =
            RecordedIssue { key: IssueKey::new(key), id: IssueId::new("1"), site: SiteId::new(site), report_id: None };
        store.ledger.complete(tenant, &item, "o", &issue).await.unwrap();
    }

    fn registration(tenant: &TenantId, cloud_id: &str, url: &str, id: i64) -> WebhookRegistration {
        WebhookRegistration {
            tenant: tenant.clone(),
            cloud_id: cloud_id.into(),
            site_url: url.into(),
            webhook_ids: vec![id],
            projects: vec!["OPS".into()],
            expires_at: OffsetDateTime::now_utc() + Duration::days(30),
            registered_at: OffsetDateTime::now_utc(),
        }
    }

    fn body(event: &str, key: &str, self_url: &str, ids: &[i64]) -> Value {
        json!({"webhookEvent": event, "matchedWebhookIds": ids, "timestamp": 1,
            "issue": {"key": key, "self": self_url, "fields": {
                "status": {"name": "Done", "statusCategory": {"key": "done"}},
                "summary": "s", "updated": "2026-12-02T18:40:12.345+0000"}}})
    }

    /// Two sites use the same webhook id; the issue's link picks the site, the ledger the
    /// tenant; an issue nobody created is ignored; a retry with the same identifier is repeated.
    #[tokio::test]
    async fn a_delivery_reaches_the_tenant_that_created_the_issue_once() {
        let store = MemoryStore::new();
        let (acme, globex) = (TenantId::parse("acme").unwrap(), TenantId::parse("globex").unwrap());
        store.webhooks.put_registration(&registration(&acme, "c-acme", "https://acme.atlassian.net", 7)).await.unwrap();
        store
            .webhooks
            .put_registration(&registration(&globex, "c-globex", "https://globex.atlassian.net", 7))
            .await
            .unwrap();
        created(&store, &acme, "OPS-1", "c-acme").await;
        created(&store, &globex, "OPS-1", "c-globex").await;
        let seen = Seen::default();
        let receiver =
            Receiver { store: &*store.webhooks, ledger: &*store.ledger, sightings: &seen, clock: Clock::system() };
        let b = body("jira:issue_updated", "OPS-1", "https://acme.atlassian.net/rest/api/2/issue/10001", &[7]);
        let got = receiver.receive(Delivery { body: &b, identifier: Some("d-1") }).await.unwrap();
        assert_eq!(got, Received::Recorded { tenants: 1, new: 1 });
        assert_eq!(*seen.0.lock().unwrap(), vec![("acme".into(), "OPS-1".into(), Some("Done".into()))]);
        let again = receiver.receive(Delivery { body: &b, identifier: Some("d-1") }).await.unwrap();
        assert_eq!(again, Received::Repeated);

        let stranger = body("jira:issue_updated", "OPS-2", "https://acme.atlassian.net/rest/api/2/issue/1", &[7]);
        let got = receiver.receive(Delivery { body: &stranger, identifier: Some("d-2") }).await.unwrap();
        assert_eq!(got, Received::Ignored("not an issue we created"));
        let elsewhere = body("jira:issue_updated", "OPS-1", "https://evil.example.com/rest/api/2/issue/1", &[7]);
        let got = receiver.receive(Delivery { body: &elsewhere, identifier: None }).await.unwrap();
        assert_eq!(got, Received::Ignored("no registration"));

        let gone =
            body("jira:issue_deleted", "OPS-1", "https://api.atlassian.com/ex/jira/c-globex/rest/api/3/issue/9", &[7]);
        let got = receiver.receive(Delivery { body: &gone, identifier: Some("d-3") }).await.unwrap();
        assert_eq!(got, Received::Recorded { tenants: 1, new: 1 });
        assert_eq!(seen.0.lock().unwrap()[1], ("globex".into(), "OPS-1".into(), None));
    }

    #[test]
    fn only_a_cloud_oauth_connection_with_the_scope_allows_webhooks() {
        let now = OffsetDateTime::now_utc();
        let mut c = Connection {
            tenant: TenantId::parse("acme").unwrap(),
            product: Product::Jira,
            deployment: Deployment::Cloud,
            auth_type: AuthType::Oauth2,
            status: ConnectionStatus::Connected,
            site: Some(crate::domain::Site { cloud_id: "c".into(), url: "https://a".into(), name: "a".into() }),
            base_url: None,
            scoped_token: false,
            acting_as: None,
            candidate_sites: vec![],
            scopes: vec!["read:jira-work".into()],
            grant_id: "g".into(),
            secret_name: "s".into(),
            created_at: now,
            updated_at: now,
            last_verified_at: None,
        };
        assert!(!allows_webhooks(&c), "no scope, no webhook");
        c.scopes.push(SCOPE.into());
        assert!(allows_webhooks(&c));
        c.auth_type = AuthType::ApiToken;
        assert!(!allows_webhooks(&c));
    }
}
