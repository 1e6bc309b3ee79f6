//! In-memory fakes of every store port, with the DynamoDB adapter's semantics: the same
//! conditional claims, owner-conditioned updates, lease expiry at millisecond resolution, and
//! reads that see every write before them (the adapter reads consistently). Each operation runs
//! under one `Mutex`, which is what a DynamoDB conditional write is: atomic per item.
//!
//! ```
//! use std::sync::Arc;
//! use bridge::store::{IssueLedger, RefreshLeaseStore};
//! use bridge::store::memory::MemoryStore;
//!
//! let store = MemoryStore::new();
//! let ledger: Arc<dyn IssueLedger> = store.ledger.clone();
//! let leases: Arc<dyn RefreshLeaseStore> = store.leases.clone();
//! // Every lease the fakes hold lapses as if this much time had passed.
//! store.clock.advance(std::time::Duration::from_secs(60));
//! // The next `IssueLedger::complete` fails as if DynamoDB had.
//! store.faults.fail_next("IssueLedger::complete");
//! ```
//!
//! What the fakes don't model: DynamoDB's TTL sweeper deletes expired items at some point after
//! they expire, so until then reads still return them (the fakes keep them until
//! [`MemoryStore::sweep_expired`]). There is no stale read to model: the adapter reads and
//! queries with `consistent_read`.

use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;

use super::StoreError;
use crate::domain::TenantId;

mod connections;
mod credentials;
mod dead_letters;
mod destination_failures;
mod installations;
mod issue_jobs;
mod issue_ledger;
mod keep_alive;
mod lookup_cache;
mod oauth_states;
mod publications;
mod refresh_leases;
mod settings;
mod tenant_slots;
mod webhooks;

pub use connections::MemoryConnections;
pub use credentials::MemoryCredentials;
pub use dead_letters::MemoryDeadLetters;
pub use destination_failures::MemoryDestinationFailures;
pub use installations::MemoryInstallations;
pub use issue_jobs::MemoryIssueJobs;
pub use issue_ledger::MemoryIssueLedger;
pub use keep_alive::MemoryKeepAlive;
pub use lookup_cache::MemoryLookupCache;
pub use oauth_states::MemoryStates;
pub use publications::MemoryPublications;
pub use refresh_leases::MemoryLeases;
pub use settings::MemorySettings;
pub use tenant_slots::MemoryTenantSlots;
pub use webhooks::MemoryWebhooks;

/// The map key of a record that belongs to one tenant.
fn key(tenant: &TenantId, id: &str) -> (String, String) {
    (tenant.to_string(), id.to_owned())
}

/// One fake per port, sharing one [`Clock`] and one set of [`Faults`]. Each field coerces to
/// its port: `let ledger: Arc<dyn IssueLedger> = store.ledger.clone();`.
#[derive(Clone, Default)]
pub struct MemoryStore {
    pub connections: Arc<MemoryConnections>,
    pub settings: Arc<MemorySettings>,
    pub ledger: Arc<MemoryIssueLedger>,
    pub jobs: Arc<MemoryIssueJobs>,
    pub publications: Arc<MemoryPublications>,
    pub states: Arc<MemoryStates>,
    pub leases: Arc<MemoryLeases>,
    pub credentials: Arc<MemoryCredentials>,
    pub lookups: Arc<MemoryLookupCache>,
    /// Fair-share slots per tenant and function.
    pub slots: Arc<MemoryTenantSlots>,
    /// Refused credential checks per destination, and destination locks.
    pub destinations: Arc<MemoryDestinationFailures>,
    pub keep_alive: Arc<MemoryKeepAlive>,
    /// The terminal notices of dead-lettered events (`app::settle_dead_letter`).
    pub dead_letters: Arc<MemoryDeadLetters>,
    /// Dynamic webhook registrations and handled deliveries.
    pub webhooks: Arc<MemoryWebhooks>,
    /// Connect and Forge installations, and the codes that link them to tenants.
    pub installations: Arc<MemoryInstallations>,
    pub clock: Clock,
    pub faults: Faults,
    /// How many ledger round trips overlapped at most (see [`RoundTrips`]).
    pub round_trips: RoundTrips,
}

impl MemoryStore {
    pub fn new() -> Self {
        let clock = Clock::default();
        let faults = Faults::default();
        let round_trips = RoundTrips::default();
        Self {
            connections: Arc::new(MemoryConnections::sharing(&faults)),
            settings: Arc::new(MemorySettings::sharing(&faults)),
            ledger: Arc::new(MemoryIssueLedger::sharing(&clock, &faults, &round_trips)),
            jobs: Arc::new(MemoryIssueJobs::sharing(&faults)),
            publications: Arc::new(MemoryPublications::sharing(&clock, &faults)),
            states: Arc::new(MemoryStates::sharing(&clock, &faults)),
            leases: Arc::new(MemoryLeases::sharing(&clock, &faults)),
            credentials: Arc::new(MemoryCredentials::sharing(&faults)),
            lookups: Arc::new(MemoryLookupCache::sharing(&clock, &faults)),
            slots: Arc::new(MemoryTenantSlots::sharing(&clock, &faults)),
            destinations: Arc::new(MemoryDestinationFailures::sharing(&faults)),
            keep_alive: Arc::new(MemoryKeepAlive::sharing(&faults)),
            dead_letters: Arc::new(MemoryDeadLetters::sharing(&faults)),
            webhooks: Arc::new(MemoryWebhooks::sharing(&faults)),
            installations: Arc::new(MemoryInstallations::sharing(&faults)),
            clock,
            faults,
            round_trips,
        }
    }

    /// Deletes what DynamoDB's TTL sweeper may have deleted by now (OAuth states, refresh leases).
    pub fn sweep_expired(&self) {
        self.states.sweep_expired();
        self.leases.sweep_expired();
    }
}

/// The time the fakes compare leases and TTLs against: the wall clock (which the code under
/// test also reads), plus however far a test has [`advance`](Clock::advance)d it, so a test can
/// let a lease lapse without sleeping.
#[derive(Clone, Default)]
pub struct Clock(Arc<Mutex<time::Duration>>);

impl Clock {
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *lock(&self.0)
    }

    pub fn advance(&self, by: std::time::Duration) {
        *lock(&self.0) += by;
    }

    /// Now at the adapter's resolution: leases are stored and compared in milliseconds.
    fn now_ms(&self) -> i64 {
        ms(self.now())
    }
}

/// Failures a test schedules: the next call of the named operation (`"Trait::method"`, e.g.
/// `"IssueLedger::complete"`) fails with [`StoreError::Service`] without changing anything,
/// like a DynamoDB request that never arrived.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<Vec<&'static str>>>);

impl Faults {
    pub fn fail_next(&self, operation: &'static str) {
        lock(&self.0).push(operation);
    }

    fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        let mut scheduled = lock(&self.0);
        match scheduled.iter().position(|o| *o == operation) {
            Some(at) => {
                scheduled.remove(at);
                Err(StoreError::Service { service: "memory", message: format!("injected failure of {operation}") })
            }
            None => Ok(()),
        }
    }
}

/// A round trip to the table, as the ledger fake models it: counted while in flight, and
/// yielding once to the scheduler (as a network request does) before it answers, so that calls a
/// job makes concurrently really overlap and [`peak`](RoundTrips::peak) shows how many did. No
/// time passes: the yield only lets the other ready futures run first.
#[derive(Clone, Default)]
pub struct RoundTrips(Arc<Mutex<(usize, usize)>>);

impl RoundTrips {
    /// The most round trips that were in flight at once so far.
    pub fn peak(&self) -> usize {
        lock(&self.0).1
    }

    async fn go(&self) -> InFlight {
        {
            let mut counts = lock(&self.0);
            counts.0 += 1;
            counts.1 = counts.1.max(counts.0);
        }
        tokio::task::yield_now().await;
        InFlight(self.clone())
    }
}

/// One round trip in flight; it lands when dropped.
struct InFlight(RoundTrips);

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&(self.0).0).0 -= 1;
    }
}

/// A panicking test thread must not turn every later call into a second panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// What DynamoDB answers a refused conditional write that the adapter passes on as an error.
fn condition_failed(what: &str) -> StoreError {
    StoreError::Service { service: "memory", message: format!("ConditionalCheckFailedException: {what}") }
}

/// A connected Jira or Confluence Cloud OAuth connection on the site `c1` (acme.atlassian.net),
/// its token pair in the secret `s/{tenant}/{grant}`: the record most tests start from. Change
/// fields with struct update syntax where a test needs another one.
pub fn oauth_connection(tenant: &TenantId, product: crate::domain::Product, grant: &str) -> crate::domain::Connection {
    use crate::domain::{AuthType, Connection, ConnectionStatus, Deployment, Site};
    let now = OffsetDateTime::now_utc();
    Connection {
        tenant: tenant.clone(),
        product,
        deployment: Deployment::Cloud,
        auth_type: AuthType::Oauth2,
        status: ConnectionStatus::Connected,
        site: Some(Site { cloud_id: "c1".into(), url: "https://acme.atlassian.net".into(), name: "acme".into() }),
        base_url: None,
        scoped_token: false,
        acting_as: None,
        candidate_sites: vec![],
        scopes: product.oauth_scopes().iter().map(|s| (*s).to_owned()).collect(),
        grant_id: grant.into(),
        secret_name: format!("s/{tenant}/{grant}"),
        created_at: now,
        updated_at: now,
        last_verified_at: None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::TenantId;
    use crate::store::{Claim, IssueLedger, ItemDone, ItemStart, RefreshLeaseStore};

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[tokio::test]
    async fn advancing_the_clock_lets_leases_lapse() {
        let store = MemoryStore::new();
        let until = OffsetDateTime::now_utc() + Duration::from_secs(30);
        assert_eq!(
            store.ledger.claim(&acme(), &"a".into(), "one", until).await.unwrap(),
            Claim::Ours(ItemStart::Fresh)
        );
        assert!(store.leases.try_acquire("g", "one", until).await.unwrap());
        assert_eq!(store.leases.holder("g").as_deref(), Some("one"));
        assert!(matches!(store.ledger.claim(&acme(), &"a".into(), "two", until).await.unwrap(), Claim::Held { .. }));

        store.clock.advance(Duration::from_secs(31));
        assert!(matches!(
            store.ledger.claim(&acme(), &"a".into(), "two", until).await.unwrap(),
            Claim::Ours(ItemStart::Resumed { .. })
        ));
        assert_eq!(store.leases.holder("g"), None);
        assert!(store.leases.try_acquire("g", "two", until).await.unwrap());
    }

    #[tokio::test]
    async fn a_scheduled_fault_fails_one_call_and_changes_nothing() {
        let store = MemoryStore::new();
        let until = OffsetDateTime::now_utc() + Duration::from_secs(30);
        store.faults.fail_next("IssueLedger::claim");
        assert!(matches!(
            store.ledger.claim(&acme(), &"a".into(), "one", until).await,
            Err(StoreError::Service { .. })
        ));
        assert_eq!(
            store.ledger.claim(&acme(), &"a".into(), "one", until).await.unwrap(),
            Claim::Ours(ItemStart::Fresh)
        );
    }

    #[tokio::test]
    async fn seeded_records_read_like_the_old_ones() {
        let store = MemoryStore::new();
        let lapsed = OffsetDateTime::now_utc() - Duration::from_secs(1);
        store.ledger.seed_legacy_pending(&acme(), &"a".into(), "old", lapsed);
        let claim = store.ledger.claim(&acme(), &"a".into(), "new", lapsed).await.unwrap();
        assert!(matches!(claim, Claim::Ours(ItemStart::Resumed { legacy_marker: true, .. })), "{claim:?}");

        store.ledger.seed_without_site(&acme(), &"b".into(), &"ENG-1".into(), &"10001".into());
        let claim = store.ledger.claim(&acme(), &"b".into(), "new", lapsed).await.unwrap();
        assert_eq!(
            claim,
            Claim::Done(ItemDone { key: "ENG-1".into(), id: "10001".into(), deleted: false, site: None })
        );
        assert_eq!(store.ledger.item_for_key(&acme(), &"ENG-1".into()).await.unwrap().unwrap().site, None);
    }

    #[tokio::test]
    async fn an_expired_state_stays_until_swept() {
        use crate::domain::ConsentTarget;
        use crate::store::{OAuthStateStore, PendingAuthorization};

        let store = MemoryStore::new();
        let state = |id: &str| PendingAuthorization {
            id: id.into(),
            tenant: acme(),
            target: ConsentTarget::Jira,
            return_url: "https://app.example".into(),
            expires_at: OffsetDateTime::now_utc() + Duration::from_secs(1),
            data_center: None,
        };
        store.states.put(&state("a")).await.unwrap();
        store.states.put(&state("b")).await.unwrap();
        store.clock.advance(Duration::from_secs(2));
        // DynamoDB deletes expired items some time after they expire: until then they are read.
        assert!(store.states.take("a").await.unwrap().is_some());
        store.sweep_expired();
        assert!(store.states.take("b").await.unwrap().is_none());
    }
}
