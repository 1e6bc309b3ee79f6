//! Our egress IPs are no platform for guessing passwords.
//!
//! Customers allow-list the bridge's egress IPs on their Server/DC firewalls, and any tenant may
//! register any base URL with any credentials: without a limit, one tenant (or many, working
//! together) could guess passwords at a victim's server from addresses the victim trusts. So
//! refused credential checks are counted per **destination**, across all tenants, in DynamoDB
//! (see [`DestinationFailureStore`]); past [`DestinationLockout::threshold`] refusals within the
//! window, the destination is locked for the cool-down: new registrations and verifications
//! against it are refused with `429 destination_locked` — with correct credentials too, and
//! before anything is sent to it — and one `Egress Abuse Suspected` event goes to the bus.
//!
//! **The destination** is where a credential is judged:
//! - Server/DC: the base URL's host, lower-cased, **without the port**. One server answers on
//!   several ports (a proxy on 443, Tomcat on 8080) with one user directory; with the port in the
//!   key, each port would give an attacker a fresh allowance. (A server known by several names
//!   still has one counter per name: we count what we are asked to reach, not what it resolves to.)
//! - Cloud API tokens: the site, by its cloudId (from the site's public `/_edge/tenant_info`) —
//!   never `api.atlassian.com` as a whole, which every scoped token goes through (as
//!   `api.atlassian.com/ex/{product}/{cloudId}`) and which one tenant must not lock for all. A site
//!   that answers no cloudId is keyed by its host.
//! - OIDC client credentials: a client the identity provider refuses (`invalid_client`) is
//!   counted against the **token endpoint** (its host and path), not the Server/DC host, since the
//!   provider is what judged the guess; the host alone would not do, because providers such as
//!   Microsoft Entra ID serve every customer from one host (`login.microsoftonline.com`) and tell
//!   them apart by path. A Bearer token the provider issued but the server refuses counts against
//!   the server's host. A registration checks both locks.
//!
//! **What counts:** the final verdict of a credential check that the product (or the customer's
//! identity provider) refuses as unauthorized — 401, a persisting 401, `invalid_client` — in the
//! connections function's registration and verification. Not the probe that tells a classic Cloud
//! API token from a scoped one (a refusal at the gateway there means "classic: try the site"), not
//! a 403 (a permission, or a CAPTCHA the server already put up), not a network failure. OAuth
//! (3LO) connections are neither counted nor locked: their tokens come from Atlassian's consent
//! flow, so there is nothing a tenant could guess.
//!
//! **Who calls this:** only the connections function's `PUT .../connections/{product}` and
//! `POST .../verify` (through [`Lockout::check_new_credentials`] and [`Lockout::verify`]).
//! Sessions of stored connections (publishing, issues, discovery) never read the table, and a
//! scheduled re-check of stored credentials (the keep-alive sweep) must call
//! [`crate::verify::whoami`] itself, not these: its checks neither count nor are refused.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;
use utoipa::ToSchema;

use crate::access::{AccessError, Connector};
use crate::atlassian::{AtlassianError, Class};
use crate::config::DestinationLockout;
use crate::credentials::ConnectionAuth;
use crate::domain::{AuthType, Connection, Deployment, Product, Site, TenantId};
use crate::error::{ApiError, ErrorCode};
use crate::events::EventBus;
use crate::jobs::JobOutcome;
use crate::store::{Destination, DestinationFailureStore, DestinationKind};

/// The longest token-endpoint key kept (host and path): a longer path is cut, which can only
/// merge two endpoints' counts, never split one.
const MAX_TOKEN_URL_KEY: usize = 256;

impl Destination {
    /// A Server/DC base URL's (or a Cloud site's) host: lower-cased (the `url` crate lower-cases
    /// domain names and writes IDNs as punycode), without a trailing dot, without the port.
    pub fn host_of(url: &Url) -> Option<Self> {
        let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
        (!host.is_empty()).then_some(Self { kind: DestinationKind::Host, key: host })
    }

    /// A Cloud site, by its cloudId.
    pub fn site(cloud_id: &str) -> Self {
        Self { kind: DestinationKind::Site, key: cloud_id.trim().to_ascii_lowercase() }
    }

    /// An identity provider's token endpoint: host (as [`host_of`](Self::host_of)) and path,
    /// without port, query or trailing slash.
    pub fn token_endpoint(url: &Url) -> Option<Self> {
        let Self { key: host, .. } = Self::host_of(url)?;
        let mut key = format!("{host}{}", url.path().trim_end_matches('/'));
        if key.len() > MAX_TOKEN_URL_KEY {
            let mut end = MAX_TOKEN_URL_KEY;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            key.truncate(end);
        }
        Some(Self { kind: DestinationKind::TokenUrl, key })
    }
}

/// `Egress Abuse Suspected`: a destination was locked after too many refused credential checks
/// from this deployment. Emitted once per lock. Names no tenant and no credential: the count of
/// tenants says whether one tenant or several were involved; which tenant tried what is in the
/// connections function's logs (each refusal is logged with its tenant and destination).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EgressAbuseSuspected {
    /// The destination's key: a host (lower-cased, no port), a cloudId, or a token endpoint's
    /// host and path.
    pub destination: String,
    pub kind: DestinationKind,
    /// Refused credential checks counted in the window that reached the threshold.
    pub failures: u32,
    /// The counting window, in seconds.
    pub window_seconds: u64,
    /// Until when new registrations and verifications against it are refused (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub locked_until: OffsetDateTime,
    /// How many different tenants the refusals came from.
    pub tenants: u32,
}

/// What new credentials proved at registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCredentials {
    pub acting_as: Option<String>,
    /// The Cloud site (API tokens), when it answered its cloudId.
    pub site: Option<Site>,
    /// A scoped Cloud API token (works through `api.atlassian.com` only).
    pub scoped: bool,
}

/// A refusal that counts: the credentials themselves were refused as unauthorized.
fn refused(error: &AtlassianError) -> bool {
    error.is(Class::Unauthorized) || matches!(error, AtlassianError::CredentialsRefused { .. })
}

/// The destination lockout, built once at cold start by the connections function.
pub struct Lockout {
    store: Arc<dyn DestinationFailureStore>,
    bus: Arc<dyn EventBus>,
    policy: DestinationLockout,
}

impl Lockout {
    pub fn new(store: Arc<dyn DestinationFailureStore>, bus: Arc<dyn EventBus>, policy: DestinationLockout) -> Self {
        Self { store, bus, policy }
    }

    /// Refuses with `429 destination_locked` (and `Retry-After`) when any of `destinations` is
    /// locked: one consistent read each. Called before anything is sent to them.
    pub async fn check(&self, destinations: &[Destination]) -> Result<(), ApiError> {
        self.check_at(destinations, OffsetDateTime::now_utc()).await
    }

    async fn check_at(&self, destinations: &[Destination], now: OffsetDateTime) -> Result<(), ApiError> {
        for destination in destinations {
            if let Some(until) = self.store.locked_until(destination, now).await? {
                tracing::warn!(destination = %destination, "refused: the destination is locked");
                return Err(locked(destination, until, now));
            }
        }
        Ok(())
    }

    /// Counts one refused credential check by `tenant` against `destination`; the refusal that
    /// reaches the threshold locks it (stored first) and then reports the lock on the bus. An
    /// event that cannot be put is logged; the lock holds regardless. A store failure fails the
    /// request (500): a refusal we cannot count must not be free.
    pub async fn record_refusal(&self, destination: &Destination, tenant: &TenantId) -> Result<(), ApiError> {
        self.record_refusal_at(destination, tenant, OffsetDateTime::now_utc()).await
    }

    async fn record_refusal_at(
        &self,
        destination: &Destination,
        tenant: &TenantId,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let tally = self.store.add_failure(destination, tenant, now, self.policy.window).await?;
        tracing::warn!(
            destination = %destination,
            failures = tally.failures,
            threshold = self.policy.threshold,
            "credentials refused; counted against the destination"
        );
        if tally.failures < self.policy.threshold {
            return Ok(());
        }
        let until = now + self.policy.cool_down;
        if !self.store.lock(destination, now, until).await? {
            // Locked already (a refusal racing ours got there first): reported once, by it.
            return Ok(());
        }
        tracing::warn!(
            destination = %destination,
            failures = tally.failures,
            tenants = tally.tenants,
            cool_down_s = self.policy.cool_down.as_secs(),
            "destination locked: too many refused credential checks"
        );
        let event = EgressAbuseSuspected {
            destination: destination.key.clone(),
            kind: destination.kind,
            failures: tally.failures,
            window_seconds: self.policy.window.as_secs(),
            locked_until: until,
            tenants: tally.tenants,
        };
        if let JobOutcome::Stopped(e) = crate::app::publish(self.bus.as_ref(), &event).await {
            tracing::error!(error = %e.message, destination = %destination, "Egress Abuse Suspected could not be put; the lock holds");
        }
        Ok(())
    }

    /// Counts `error` against `destination` when it is a refusal that counts, then answers it.
    async fn counted<E>(
        &self,
        error: AtlassianError,
        destination: &Destination,
        tenant: &TenantId,
        answer: E,
    ) -> ApiError
    where
        E: FnOnce(AtlassianError) -> ApiError,
    {
        if refused(&error) {
            if let Err(e) = self.record_refusal(destination, tenant).await {
                return e;
            }
        }
        answer(error)
    }

    /// Registration's credential check (the connections function's `PUT`, nothing else): the
    /// destination's lock checked before any credential is sent, the credentials proved, and a
    /// refusal counted. Cloud API tokens first learn their site's cloudId from its public
    /// `/_edge/tenant_info` (anonymous, no credential: it is what names the destination); the
    /// probe's gateway refusal of a classic token is not counted, only the final verdict.
    pub async fn check_new_credentials(
        &self,
        connector: &Connector,
        tenant: &TenantId,
        product: Product,
        deployment: Deployment,
        base_url: &Url,
        auth: &ConnectionAuth,
    ) -> Result<CheckedCredentials, ApiError> {
        let failure = |e| crate::verify::failure(product, e);
        let host = Destination::host_of(base_url)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidRequest, "base_url must name a host"))?;
        if deployment == Deployment::Cloud && auth.auth_type() == AuthType::ApiToken {
            let site = connector.tenant_info(base_url).await.map_err(failure)?;
            let destination = site.as_ref().map_or(host, |s| Destination::site(&s.cloud_id));
            self.check(std::slice::from_ref(&destination)).await?;
            return match connector.probe_cloud_token_on(product, base_url, site, auth).await {
                Ok(probe) => {
                    tracing::info!(product = %product, scoped = probe.scoped, "API token verified");
                    Ok(CheckedCredentials { acting_as: probe.acting_as, site: probe.site, scoped: probe.scoped })
                }
                Err(e) => Err(self.counted(e, &destination, tenant, failure).await),
            };
        }
        let provider = match auth {
            ConnectionAuth::OidcClientCredentials { token_url, .. } => Some(
                Url::parse(token_url)
                    .ok()
                    .and_then(|u| Destination::token_endpoint(&u))
                    .ok_or_else(|| ApiError::new(ErrorCode::InvalidRequest, "auth.token_url must name a host"))?,
            ),
            _ => None,
        };
        self.check(&[Some(host.clone()), provider.clone()].into_iter().flatten().collect::<Vec<_>>()).await?;
        // For OIDC this fetches a token: a refusal here is the identity provider's.
        let session = match connector.session_with(deployment, product, base_url.clone(), auth, None).await {
            Ok(session) => session,
            Err(AccessError::Upstream(e)) => {
                return Err(self.counted(e, provider.as_ref().unwrap_or(&host), tenant, failure).await);
            }
            Err(other) => return Err(other.into()),
        };
        match crate::verify::whoami(&session, auth.auth_type(), false).await {
            Ok(acting_as) => Ok(CheckedCredentials { acting_as, site: None, scoped: false }),
            Err(e) => Err(self.counted(e, &host, tenant, failure).await),
        }
    }

    /// Verification of a stored connection (the connections function's `POST .../verify`,
    /// nothing else: the keep-alive sweep calls [`crate::verify::whoami`] itself). Token, Basic,
    /// PAT and OIDC connections check and count against their destinations as registration does;
    /// OAuth connections neither. Answers who the credentials act as.
    pub async fn verify(&self, connector: &Connector, connection: &Connection) -> Result<Option<String>, ApiError> {
        let whoami = |session| async move {
            crate::verify::whoami(&session, connection.auth_type, connection.scoped_token).await
        };
        // A Data Center OAuth grant's tokens come from a consent too: nothing to guess with them
        // (its client secret was judged, and counted, when the consent's code was exchanged).
        if matches!(connection.auth_type, AuthType::Oauth2 | AuthType::DcOauth2) {
            let session = connector.session_for(connection).await?;
            return whoami(session).await.map_err(Into::into);
        }
        let product_side = match (&connection.site, connection.base_url.as_deref()) {
            (Some(site), _) => Destination::site(&site.cloud_id),
            (None, Some(base)) => Url::parse(base).ok().and_then(|u| Destination::host_of(&u)).ok_or_else(|| {
                tracing::error!("stored connection with an unusable base URL");
                ApiError::internal()
            })?,
            (None, None) => return Err(ApiError::internal()),
        };
        let provider = match connection.auth_type {
            AuthType::OidcClientCredentials => match connector.stored_auth(connection).await? {
                ConnectionAuth::OidcClientCredentials { token_url, .. } => {
                    Url::parse(&token_url).ok().and_then(|u| Destination::token_endpoint(&u))
                }
                _ => None,
            },
            _ => None,
        };
        self.check(&[Some(product_side.clone()), provider.clone()].into_iter().flatten().collect::<Vec<_>>()).await?;
        let session = match connector.session_for(connection).await {
            Ok(session) => session,
            Err(AccessError::Upstream(e)) => {
                let destination = provider.as_ref().unwrap_or(&product_side);
                return Err(self.counted(e, destination, &connection.tenant, Into::into).await);
            }
            Err(other) => return Err(other.into()),
        };
        match whoami(session).await {
            Ok(acting_as) => Ok(acting_as),
            Err(e) => Err(self.counted(e, &product_side, &connection.tenant, Into::into).await),
        }
    }
}

/// `429 destination_locked`: what is happening, since when it may be tried again, and that
/// nothing already connected is affected.
fn locked(destination: &Destination, until: OffsetDateTime, now: OffsetDateTime) -> ApiError {
    let remaining = (until - now).whole_milliseconds().max(0);
    let seconds = u64::try_from((remaining + 999) / 1000).unwrap_or(u64::MAX).max(1);
    let what = match destination.kind {
        DestinationKind::Host => format!("the server {}", destination.key),
        DestinationKind::Site => format!("the Atlassian site {}", destination.key),
        DestinationKind::TokenUrl => format!("the identity provider's token endpoint {}", destination.key),
    };
    let at = until
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    ApiError::new(
        ErrorCode::DestinationLocked,
        format!(
            "{what} refused too many credential checks from this service recently (counted across all its customers), so new registrations and verifications against it are paused to protect it, whatever the credentials; retry after {at} ({seconds} s). Connections already registered keep working."
        ),
    )
    .with_retry_after(seconds)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::events::RecordingBus;
    use crate::store::memory::MemoryStore;

    fn policy() -> DestinationLockout {
        DestinationLockout { threshold: 3, window: Duration::from_secs(900), cool_down: Duration::from_secs(600) }
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    #[test]
    fn destinations_are_keyed_by_lower_cased_host_without_port_and_token_endpoints_by_path() {
        let host = |u: &str| Destination::host_of(&url(u)).unwrap().key;
        assert_eq!(host("https://Jira.Corp.Example:8443/jira"), "jira.corp.example");
        assert_eq!(host("https://jira.corp.example./"), "jira.corp.example");
        assert_eq!(host("http://127.0.0.1:9000/dc/jira-dc/jira"), "127.0.0.1");
        assert_eq!(host("http://[::1]:9000/"), "[::1]");
        assert_eq!(host("https://BÜCHER.example/"), "xn--bcher-kva.example");
        assert_eq!(Destination::site("ABC-1").key, "abc-1");
        let endpoint = |u: &str| Destination::token_endpoint(&url(u)).unwrap();
        let entra = endpoint("https://login.microsoftonline.com/tenant-a/oauth2/v2.0/token/?x=1");
        assert_eq!(
            (entra.kind, entra.key.as_str()),
            (DestinationKind::TokenUrl, "login.microsoftonline.com/tenant-a/oauth2/v2.0/token")
        );
        assert_ne!(entra, endpoint("https://login.microsoftonline.com/tenant-b/oauth2/v2.0/token"));
        let long = endpoint(&format!("https://idp.example/{}", "é".repeat(400)));
        assert!(long.key.len() <= MAX_TOKEN_URL_KEY);
    }

    #[tokio::test]
    async fn the_threshold_locks_once_reports_once_and_the_lock_ends_after_the_cool_down() {
        let store = MemoryStore::new();
        let bus = Arc::new(RecordingBus::default());
        let lockout = Lockout::new(store.destinations.clone(), bus.clone(), policy());
        let host = Destination::host_of(&url("https://jira.corp.example/")).unwrap();
        let other = Destination::host_of(&url("https://wiki.corp.example/")).unwrap();
        let t0 = OffsetDateTime::now_utc();
        for (i, name) in ["a", "b"].iter().enumerate() {
            lockout.record_refusal_at(&host, &tenant(name), t0 + Duration::from_secs(i as u64)).await.unwrap();
            assert!(lockout.check_at(std::slice::from_ref(&host), t0 + Duration::from_secs(2)).await.is_ok());
        }
        assert!(bus.published().is_empty());
        let third = t0 + Duration::from_secs(2);
        lockout.record_refusal_at(&host, &tenant("a"), third).await.unwrap();
        let err = lockout.check_at(&[other.clone(), host.clone()], third + Duration::from_secs(100)).await.unwrap_err();
        assert_eq!((err.code, err.retry_after), (ErrorCode::DestinationLocked, Some(500)));
        assert!(err.message.contains("jira.corp.example") && err.message.contains("retry after"), "{}", err.message);
        assert!(lockout.check_at(std::slice::from_ref(&other), third).await.is_ok());
        // A refusal racing the lock counts, but the lock is reported once.
        lockout.record_refusal_at(&host, &tenant("c"), third).await.unwrap();
        let published = bus.published();
        assert_eq!(published.len(), 1, "{published:?}");
        let (detail_type, detail) = &published[0];
        assert_eq!(detail_type, "Egress Abuse Suspected");
        let event: EgressAbuseSuspected = serde_json::from_value(detail.clone()).unwrap();
        assert_eq!(
            event,
            EgressAbuseSuspected {
                destination: "jira.corp.example".into(),
                kind: DestinationKind::Host,
                failures: 3,
                window_seconds: 900,
                locked_until: third + Duration::from_secs(600),
                tenants: 2,
            }
        );
        // No tenant (nor anything else) beyond these fields.
        let mut fields: Vec<&str> = detail.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["destination", "failures", "kind", "locked_until", "tenants", "window_seconds"]);
        // After the cool-down: open again.
        assert!(lockout.check_at(std::slice::from_ref(&host), third + Duration::from_secs(600)).await.is_ok());
    }

    #[tokio::test]
    async fn a_bus_that_fails_leaves_the_lock_in_place() {
        let store = MemoryStore::new();
        let bus = Arc::new(RecordingBus::default());
        bus.fail_next();
        let lockout = Lockout::new(store.destinations.clone(), bus.clone(), policy());
        let host = Destination::site("cloud-1");
        let now = OffsetDateTime::now_utc();
        for _ in 0..3 {
            lockout.record_refusal_at(&host, &tenant("a"), now).await.unwrap();
        }
        assert!(bus.published().is_empty());
        let err = lockout.check_at(std::slice::from_ref(&host), now).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::DestinationLocked);
    }

    #[tokio::test]
    async fn a_refusal_that_cannot_be_counted_fails_the_request_and_a_lock_that_cannot_be_read_refuses() {
        let store = MemoryStore::new();
        let lockout = Lockout::new(store.destinations.clone(), Arc::new(RecordingBus::default()), policy());
        let host = Destination::site("cloud-1");
        store.faults.fail_next("DestinationFailureStore::add_failure");
        assert_eq!(lockout.record_refusal(&host, &tenant("a")).await.unwrap_err().code, ErrorCode::Internal);
        store.faults.fail_next("DestinationFailureStore::locked_until");
        assert_eq!(lockout.check(std::slice::from_ref(&host)).await.unwrap_err().code, ErrorCode::Internal);
    }
}
