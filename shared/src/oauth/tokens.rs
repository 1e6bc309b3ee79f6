//! The token provider: a valid access token for (tenant, product), refreshed ahead of expiry.
//!
//! Atlassian rotates refresh tokens: each refresh retires the old one. So across every Lambda
//! instance exactly one refresh per grant may run at a time. A DynamoDB conditional lease elects
//! the refresher; the others re-read the secret until the new pair appears. The new pair is stored
//! before it is used, so a crash after the refresh never loses the only valid refresh token
//! (and Atlassian's reuse leeway lets a retry refresh again with the old one).

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use super::client::{OAuthError, TokenEndpoint, TokenSet};
use crate::clock::Clock;
use crate::domain::{Connection, ConnectionStatus, Product};
use crate::metrics::{self, Metric, Sample};
use crate::store::{ConnectionStore, CredentialStore, RefreshLeaseStore, StoreError, StoredSecret};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the {0} connection must be re-authorized: Atlassian refused its refresh token")]
    ReconnectRequired(Product),
    #[error("could not refresh the access token: {0}")]
    RefreshFailed(String),
    /// The grant was disconnected or replaced by a new consent while we refreshed it.
    #[error("the {0} connection was removed or connected again meanwhile")]
    Disconnected(Product),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct TokenProvider {
    connections: Arc<dyn ConnectionStore>,
    credentials: Arc<dyn CredentialStore>,
    leases: Arc<dyn RefreshLeaseStore>,
    endpoint: Arc<dyn TokenEndpoint>,
    /// Refresh when the token expires within this.
    leeway: Duration,
    /// How long a refresher may hold the lease; longer than one token request can take.
    lease_duration: Duration,
    /// How often a waiter re-reads the secret.
    poll_interval: Duration,
    /// Token expiry is judged on this clock; leases stay on the system clock (see `clock`).
    clock: Clock,
}

impl TokenProvider {
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        credentials: Arc<dyn CredentialStore>,
        leases: Arc<dyn RefreshLeaseStore>,
        endpoint: Arc<dyn TokenEndpoint>,
        leeway: Duration,
    ) -> Self {
        Self {
            connections,
            credentials,
            leases,
            endpoint,
            leeway,
            lease_duration: Duration::from_secs(20),
            poll_interval: Duration::from_millis(100),
            clock: Clock::system(),
        }
    }

    /// Judges token expiry on `clock` (the configured one; shifted only in test builds).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same stores, lease and timings with another token endpoint: a Data Center grant's
    /// own (each application link is its own authorization server). Its refreshes go through
    /// the same single-refresher lease, keyed by tenant and grant like every refresh.
    pub fn with_endpoint(&self, endpoint: Arc<dyn TokenEndpoint>) -> Self {
        Self {
            connections: self.connections.clone(),
            credentials: self.credentials.clone(),
            leases: self.leases.clone(),
            endpoint,
            leeway: self.leeway,
            lease_duration: self.lease_duration,
            poll_interval: self.poll_interval,
            clock: self.clock,
        }
    }

    /// The clock token expiry is judged on, for an endpoint that dates the pairs it issues (Forge's
    /// app system tokens are judged on it too).
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Keeps an idle grant alive: a refresh now, under the same single-refresher lease as
    /// every refresh, even though the access token may still be valid. Atlassian retires a
    /// rotating refresh token unused for 90 days; each refresh issues a new one with the
    /// inactivity countdown reset. When another instance refreshed meanwhile, its refresh
    /// counts: the grant was used just now, and no second refresh runs.
    pub async fn keep_alive(&self, connection: &Connection) -> Result<(), TokenError> {
        let (_, current) = self.read(connection).await?;
        self.token(connection, Some(current.access_token.expose_secret())).await.map(drop)
    }

    /// A valid access token for an OAuth connection, refreshed when it is due.
    pub async fn access_token(&self, connection: &Connection) -> Result<SecretString, TokenError> {
        self.token(connection, None).await
    }

    /// After Atlassian refused `rejected` (revoked or expired early): a token other than it —
    /// the one another instance refreshed meanwhile, or a refresh of our own, under the same
    /// lease as every refresh.
    pub async fn renewed_token(
        &self,
        connection: &Connection,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, TokenError> {
        self.token(connection, Some(rejected.map_or("", |r| r.expose_secret()))).await
    }

    async fn token(&self, connection: &Connection, rejected: Option<&str>) -> Result<SecretString, TokenError> {
        let usable = |tokens: &TokenSet| {
            !self.needs_refresh(tokens) && rejected.is_none_or(|r| tokens.access_token.expose_secret() != r)
        };
        let seen = self.read(connection).await?;
        if usable(&seen.1) {
            return Ok(seen.1.access_token);
        }
        let lease_key = format!("{}#{}", connection.tenant, connection.grant_id);
        let owner = uuid::Uuid::new_v4().to_string();
        let give_up_at = OffsetDateTime::now_utc() + self.lease_duration * 2;
        // Time spent waiting for another instance's refresh, a metric once the wait is over.
        let mut waited = LeaseWait { tenant: &connection.tenant, since: None };
        loop {
            let until = OffsetDateTime::now_utc() + self.lease_duration;
            if self.leases.try_acquire(&lease_key, &owner, until).await? {
                waited.over();
                let result = self.refresh_holding_lease(connection, &seen.0).await;
                if let Err(e) = self.leases.release(&lease_key, &owner).await {
                    // The lease expires by itself; a failed release only delays the next refresh.
                    tracing::warn!(error = %e, "could not release the refresh lease");
                }
                return result;
            }
            waited.since.get_or_insert_with(std::time::Instant::now);
            tokio::time::sleep(self.poll_interval).await;
            let latest = self.read(connection).await?;
            if latest.0 != seen.0 && latest.1.expires_at > self.clock.now() {
                tracing::info!(grant = %connection.grant_id, "using the token another instance refreshed");
                return Ok(latest.1.access_token);
            }
            if self.status(connection).await? == Some(ConnectionStatus::ReconnectRequired) {
                return Err(TokenError::ReconnectRequired(connection.product));
            }
            if OffsetDateTime::now_utc() > give_up_at {
                return Err(TokenError::RefreshFailed("another instance's refresh did not finish in time".into()));
            }
        }
    }

    async fn refresh_holding_lease(
        &self,
        connection: &Connection,
        seen_version: &str,
    ) -> Result<SecretString, TokenError> {
        // Between our first read and the lease, another instance may have refreshed already.
        let (version, current) = self.read(connection).await?;
        if version != seen_version && current.expires_at > self.clock.now() {
            tracing::info!(grant = %connection.grant_id, "another instance refreshed first; using its token");
            return Ok(current.access_token);
        }
        // Its refresher may have been refused for good: then don't refresh again.
        if self.status(connection).await? == Some(ConnectionStatus::ReconnectRequired) {
            return Err(TokenError::ReconnectRequired(connection.product));
        }
        // Disconnected or re-consented since the caller read the record: don't spend the
        // grant's refresh token, and never write its secret again.
        if !self.grant_in_use(connection).await? {
            return Err(TokenError::Disconnected(connection.product));
        }
        let refreshed = self.endpoint.refresh(&current.refresh_token).await;
        let metric = if refreshed.is_ok() { Metric::TokenRefreshes } else { Metric::TokenRefreshFailures };
        metrics::record(Sample::count(metric).tenant(&connection.tenant));
        match refreshed {
            Ok(fresh) => {
                // Stored before use: the old refresh token is retired now.
                self.store_refreshed(connection, &fresh).await?;
                tracing::info!(grant = %connection.grant_id, "access token refreshed");
                Ok(fresh.access_token)
            }
            Err(OAuthError::InvalidGrant) => {
                tracing::warn!(grant = %connection.grant_id, "refresh token refused (invalid_grant); connection needs a new consent");
                self.connections
                    .mark_reconnect_required(&connection.tenant, &connection.grant_id, self.clock.now())
                    .await?;
                Err(TokenError::ReconnectRequired(connection.product))
            }
            Err(e) => Err(TokenError::RefreshFailed(e.to_string())),
        }
    }

    /// Writes a refreshed pair only while a connection record still names its grant, so a
    /// refresh that finishes after a disconnect (or after a re-consent moved the products to a
    /// new grant) never resurrects the old secret. Secrets Manager has no conditional write, so
    /// the record is checked before the write and again after it: a disconnect deletes the
    /// record before (and again after) the secret, so whichever lands last, the second check
    /// sees the record gone and deletes the orphan.
    async fn store_refreshed(&self, connection: &Connection, fresh: &TokenSet) -> Result<(), TokenError> {
        if !self.grant_in_use(connection).await? {
            tracing::info!(grant = %connection.grant_id, "grant disconnected during its refresh; new pair dropped");
            return Err(TokenError::Disconnected(connection.product));
        }
        self.credentials.put(&connection.secret_name, &self.endpoint.to_secret(fresh)).await?;
        if !self.grant_in_use(connection).await? {
            tracing::info!(grant = %connection.grant_id, "grant disconnected while its refresh was stored; secret deleted");
            self.credentials.delete(&connection.secret_name).await?;
            return Err(TokenError::Disconnected(connection.product));
        }
        Ok(())
    }

    /// Whether a connection of the tenant still uses this grant's secret.
    async fn grant_in_use(&self, connection: &Connection) -> Result<bool, TokenError> {
        let all = self.connections.list(&connection.tenant).await?;
        Ok(all.iter().any(|c| c.grant_id == connection.grant_id && c.secret_name == connection.secret_name))
    }

    fn needs_refresh(&self, tokens: &TokenSet) -> bool {
        tokens.expires_at - self.leeway <= self.clock.now()
    }

    async fn status(&self, connection: &Connection) -> Result<Option<ConnectionStatus>, TokenError> {
        Ok(self.connections.get(&connection.tenant, connection.product).await?.map(|c| c.status))
    }

    async fn read(&self, connection: &Connection) -> Result<(String, TokenSet), TokenError> {
        let StoredSecret { version, value } = self
            .credentials
            .get(&connection.secret_name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("secret {} is missing", connection.secret_name)))?;
        let tokens = TokenSet::from_secret(&value).map_err(StoreError::Corrupt)?;
        Ok((version, tokens))
    }
}

/// A token request's wait for another instance's refresh: recorded once, when it is over (the
/// lease taken, a token found, or given up — on drop).
struct LeaseWait<'a> {
    tenant: &'a crate::domain::TenantId,
    since: Option<std::time::Instant>,
}

impl LeaseWait<'_> {
    fn over(&mut self) {
        if let Some(since) = self.since.take() {
            metrics::record(Sample::millis(Metric::RefreshLeaseWait, since.elapsed()).tenant(self.tenant));
        }
    }
}

impl Drop for LeaseWait<'_> {
    fn drop(&mut self) {
        self.over();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::domain::TenantId;
    use crate::store::memory::oauth_connection;
    use crate::store::memory::{MemoryConnections, MemoryCredentials, MemoryLeases};

    /// Counts refreshes; answers slowly so that concurrent callers really overlap.
    struct CountingEndpoint {
        calls: AtomicUsize,
        invalid_grant: bool,
    }

    #[async_trait]
    impl TokenEndpoint for CountingEndpoint {
        async fn refresh(&self, _: &SecretString) -> Result<TokenSet, OAuthError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.invalid_grant {
                return Err(OAuthError::InvalidGrant);
            }
            Ok(tokens(&format!("fresh-{n}"), 3600))
        }
    }

    fn tokens(access: &str, expires_in: i64) -> TokenSet {
        TokenSet {
            access_token: SecretString::from(access.to_owned()),
            refresh_token: SecretString::from(format!("refresh-for-{access}")),
            expires_at: OffsetDateTime::now_utc() + time::Duration::seconds(expires_in),
            scopes: vec![],
            issued_at: None,
        }
    }

    async fn connection(connections: &MemoryConnections) -> Connection {
        connections.get(&TenantId::parse("acme").unwrap(), Product::Jira).await.unwrap().unwrap()
    }

    async fn setup(
        invalid_grant: bool,
        expires_in: i64,
    ) -> (Arc<TokenProvider>, Arc<CountingEndpoint>, Arc<MemoryConnections>) {
        let connections = Arc::new(MemoryConnections::default());
        let credentials = Arc::new(MemoryCredentials::default());
        let connection = oauth_connection(&TenantId::parse("acme").unwrap(), Product::Jira, "oauth-jira");
        connections.put_all(&[connection]).await.unwrap();
        credentials.put("s/acme/oauth-jira", &tokens("old", expires_in).to_secret()).await.unwrap();
        let endpoint = Arc::new(CountingEndpoint { calls: AtomicUsize::new(0), invalid_grant });
        let provider = TokenProvider::new(
            connections.clone(),
            credentials,
            Arc::new(MemoryLeases::default()),
            endpoint.clone(),
            Duration::from_secs(300),
        );
        (Arc::new(provider), endpoint, connections)
    }

    #[tokio::test]
    async fn a_fresh_token_is_used_without_refreshing() {
        let (provider, endpoint, connections) = setup(false, 3600).await;
        let token = provider.access_token(&connection(&connections).await).await.unwrap();
        assert_eq!(token.expose_secret(), "old");
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn fifty_concurrent_callers_cause_one_refresh_and_share_its_token() {
        let (provider, endpoint, connections) = setup(false, 60).await;
        let connection = connection(&connections).await;
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let provider = provider.clone();
                let connection = connection.clone();
                tokio::spawn(async move { provider.access_token(&connection).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().expose_secret(), "fresh-0");
        }
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalid_grant_marks_the_connection_and_stops_refreshing() {
        let (provider, endpoint, connections) = setup(true, 60).await;
        let tenant = TenantId::parse("acme").unwrap();
        let first = connection(&connections).await;
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let provider = provider.clone();
                let connection = first.clone();
                tokio::spawn(async move { provider.access_token(&connection).await })
            })
            .collect();
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Err(TokenError::ReconnectRequired(Product::Jira))));
        }
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
        let stored = connections.get(&tenant, Product::Jira).await.unwrap().unwrap();
        assert_eq!(stored.status, ConnectionStatus::ReconnectRequired);
        assert!(matches!(provider.access_token(&first).await, Err(TokenError::ReconnectRequired(_))));
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn keep_alive_refreshes_a_valid_token_once_under_the_lease() {
        let (provider, endpoint, connections) = setup(false, 3600).await;
        let connection = connection(&connections).await;
        // Ten sweeps (duplicate deliveries) and ten requests at once: one refresh between them.
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let provider = provider.clone();
                let connection = connection.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        provider.keep_alive(&connection).await.map(|()| None)
                    } else {
                        provider.access_token(&connection).await.map(Some)
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
        let token = provider.access_token(&connection).await.unwrap();
        assert_eq!(token.expose_secret(), "fresh-0");
    }

    #[tokio::test]
    async fn keep_alive_of_a_refused_grant_asks_for_a_new_consent() {
        let (provider, _, connections) = setup(true, 3600).await;
        let first = connection(&connections).await;
        assert!(matches!(provider.keep_alive(&first).await, Err(TokenError::ReconnectRequired(Product::Jira))));
        let stored = connections.get(&first.tenant, Product::Jira).await.unwrap().unwrap();
        assert_eq!(stored.status, ConnectionStatus::ReconnectRequired);
    }

    /// Expiry is judged on the configured clock: a token valid for an hour is due on a clock
    /// two hours ahead.
    #[tokio::test]
    async fn a_shifted_clock_makes_a_valid_token_due() {
        let (provider, endpoint, connections) = setup(false, 3600).await;
        let provider = Arc::try_unwrap(provider).ok().unwrap().with_clock(Clock::shifted(time::Duration::hours(2)));
        provider.access_token(&connection(&connections).await).await.unwrap();
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
    }

    /// A token endpoint that holds one refresh until the test releases it, so that a test can
    /// land a disconnect or a re-consent while the refresh is in flight.
    #[derive(Default)]
    struct GatedEndpoint {
        arrived: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    #[async_trait]
    impl TokenEndpoint for GatedEndpoint {
        async fn refresh(&self, _: &SecretString) -> Result<TokenSet, OAuthError> {
            self.arrived.notify_one();
            self.release.notified().await;
            Ok(tokens("fresh", 3600))
        }
    }

    /// What runs just before a write lands.
    type Interleaved = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

    /// A Secrets Manager whose next write lands just after `before_put` ran (the interleaving
    /// where a disconnect slips between the refresh's check and its write).
    struct InterleavedCredentials {
        inner: Arc<MemoryCredentials>,
        before_put: std::sync::Mutex<Option<Interleaved>>,
    }

    #[async_trait]
    impl CredentialStore for InterleavedCredentials {
        async fn get(&self, name: &str) -> Result<Option<StoredSecret>, StoreError> {
            self.inner.get(name).await
        }
        async fn put(&self, name: &str, value: &SecretString) -> Result<(), StoreError> {
            let hook = self.before_put.lock().unwrap().take();
            if let Some(hook) = hook {
                hook().await;
            }
            self.inner.put(name, value).await
        }
        async fn delete(&self, name: &str) -> Result<(), StoreError> {
            self.inner.delete(name).await
        }
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    /// An expired Jira connection on grant `g1` (secret `s/acme/g1`), refreshed through `endpoint`.
    async fn expired_grant(
        credentials: Arc<dyn CredentialStore>,
        endpoint: Arc<dyn TokenEndpoint>,
    ) -> (Arc<TokenProvider>, Arc<MemoryConnections>, Connection) {
        let connections = Arc::new(MemoryConnections::default());
        let connection = oauth_connection(&acme(), Product::Jira, "g1");
        connections.put_all(std::slice::from_ref(&connection)).await.unwrap();
        credentials.put("s/acme/g1", &tokens("old", 60).to_secret()).await.unwrap();
        let provider = TokenProvider::new(
            connections.clone(),
            credentials,
            Arc::new(MemoryLeases::default()),
            endpoint,
            Duration::from_secs(300),
        );
        (Arc::new(provider), connections, connection)
    }

    #[tokio::test]
    async fn a_refresh_that_finishes_after_a_disconnect_leaves_no_secret() {
        let credentials = Arc::new(MemoryCredentials::default());
        let gate = Arc::new(GatedEndpoint::default());
        let (provider, connections, connection) = expired_grant(credentials.clone(), gate.clone()).await;
        let refresh = tokio::spawn({
            let (provider, connection) = (provider.clone(), connection.clone());
            async move { provider.access_token(&connection).await }
        });
        gate.arrived.notified().await;
        // The disconnect, as `DELETE .../connections/jira` does it, while the refresh is in flight.
        credentials.delete("s/acme/g1").await.unwrap();
        connections.delete(&acme(), Product::Jira).await.unwrap();
        credentials.delete("s/acme/g1").await.unwrap();
        gate.release.notify_one();
        assert!(matches!(refresh.await.unwrap(), Err(TokenError::Disconnected(Product::Jira))));
        assert!(credentials.get("s/acme/g1").await.unwrap().is_none(), "the refresh resurrected the secret");
    }

    #[tokio::test]
    async fn a_disconnect_between_the_check_and_the_write_has_its_orphan_deleted() {
        let inner = Arc::new(MemoryCredentials::default());
        let credentials =
            Arc::new(InterleavedCredentials { inner: inner.clone(), before_put: std::sync::Mutex::new(None) });
        let endpoint = Arc::new(CountingEndpoint { calls: AtomicUsize::new(0), invalid_grant: false });
        let (provider, connections, connection) = expired_grant(credentials.clone(), endpoint).await;
        let disconnect = {
            let (connections, inner) = (connections.clone(), inner.clone());
            move || -> futures::future::BoxFuture<'static, ()> {
                Box::pin(async move {
                    inner.delete("s/acme/g1").await.unwrap();
                    connections.delete(&acme(), Product::Jira).await.unwrap();
                    inner.delete("s/acme/g1").await.unwrap();
                })
            }
        };
        *credentials.before_put.lock().unwrap() = Some(Box::new(disconnect));
        assert!(matches!(provider.access_token(&connection).await, Err(TokenError::Disconnected(_))));
        assert!(inner.get("s/acme/g1").await.unwrap().is_none(), "an orphaned secret was left behind");
    }

    #[tokio::test]
    async fn a_refresh_of_an_old_grant_racing_a_re_consent_leaves_the_new_secret_alone() {
        let credentials = Arc::new(MemoryCredentials::default());
        let gate = Arc::new(GatedEndpoint::default());
        let (provider, connections, old) = expired_grant(credentials.clone(), gate.clone()).await;
        let refresh = tokio::spawn({
            let (provider, old) = (provider.clone(), old.clone());
            async move { provider.access_token(&old).await }
        });
        gate.arrived.notified().await;
        // A confirmed re-consent: a new grant and secret, the old secret retired.
        let new = oauth_connection(&acme(), Product::Jira, "g2");
        credentials.put(&new.secret_name, &tokens("re-consented", 3600).to_secret()).await.unwrap();
        connections.put_all(std::slice::from_ref(&new)).await.unwrap();
        credentials.delete(&old.secret_name).await.unwrap();
        gate.release.notify_one();
        assert!(matches!(refresh.await.unwrap(), Err(TokenError::Disconnected(_))));

        let stored = credentials.get(&new.secret_name).await.unwrap().unwrap();
        let stored = TokenSet::from_secret(&stored.value).unwrap();
        assert_eq!(stored.access_token.expose_secret(), "re-consented");
        assert!(credentials.get(&old.secret_name).await.unwrap().is_none(), "the old grant's secret came back");
        assert_eq!(provider.access_token(&new).await.unwrap().expose_secret(), "re-consented");
    }
}
