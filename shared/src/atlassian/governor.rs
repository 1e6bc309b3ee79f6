//! The per-tenant rate governor: how much Atlassian work one tenant may have in flight from this
//! instance, and when it may send again after Atlassian said "too many".
//!
//! One governor per tenant and site, shared by every request of that tenant the instance sends
//! (bulk chunks, lookups, searches, page writes), so a 429 slows the tenant's whole job instead
//! of only the one request that got it. It is an AIMD limiter, the scheme TCP uses for the same
//! problem: the concurrency limit grows by one per limit's worth of successes and halves on a
//! 429; a 429's wait (`Retry-After`, Jira Cloud's `Beta-Retry-After` for its points-based quota,
//! or `X-RateLimit-Reset`) pauses every request of the tenant until it has passed — Atlassian
//! documents that a request resent before then "will fail and return the same or longer
//! Retry-After period" (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/).
//! `X-RateLimit-NearLimit: true` on a success (less than 20 % of the budget left) halves the limit
//! before a 429 comes at all: the page's "balance your load" half.
//!
//! The limits ([`START`], [`CEILING`]) and why are in the README ("Rate limits we keep").
//!
//! Its state is per Lambda instance, and an instance serves one invocation at a time, so no
//! per-instance limit can stop one tenant from occupying every instance of a function. The
//! governor's second stage, [`FairShares`], admits each job of a tenant (an HTTP request or an
//! event that reaches Atlassian) into one of the tenant's few slots per function, leased in
//! DynamoDB across instances, and refuses it — with the wait — when they are all taken or when
//! Atlassian paused the tenant for longer than a request waits. The arithmetic of what that
//! leaves for other tenants is in the README ("Fair shares").

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::domain::TenantId;
use crate::error::{ApiError, ErrorCode};
use crate::store::{SlotClaim, TenantSlots};

/// Requests of one tenant in flight at first: the issue job's four bulk chunks.
pub const START: f64 = 4.0;
/// At most this many: Jira Cloud's burst limits are per tenant and endpoint at ~10 requests a
/// second for writes; eight overlapping requests of a few hundred ms each stay near that.
pub const CEILING: f64 = 8.0;
/// Never fewer than one in flight: a limit of zero would stall the job instead of pacing it.
const FLOOR: f64 = 1.0;
/// After a 429 the limit stays below the one that was refused for this long: plain AIMD would
/// climb straight back into the same refusals within a few requests (each costing the tenant a
/// whole `Retry-After`), where the server's capacity is what it just showed it to be.
const REMEMBER: Duration = Duration::from_secs(60);

/// The governors of this instance's tenants, created on first use and kept for its lifetime (a
/// Lambda instance serves few tenants; each governor is a few words).
#[derive(Clone, Default)]
pub struct Governors {
    by_key: Arc<Mutex<HashMap<String, Arc<Governor>>>>,
}

impl Governors {
    /// The governor of `tenant`'s work on `site` (the Cloud cloudId or the DC base URL).
    pub fn of(&self, tenant: &str, site: &str) -> Arc<Governor> {
        let mut by_key = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        by_key.entry(format!("{tenant}\0{site}")).or_insert_with(|| Arc::new(Governor::new(START))).clone()
    }

    /// How long the longest pause of `tenant` on any site still runs on this instance (a 429's
    /// wait), if one does.
    pub fn paused(&self, tenant: &str) -> Option<Duration> {
        let prefix = format!("{tenant}\0");
        let by_key = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        by_key.iter().filter(|(key, _)| key.starts_with(&prefix)).filter_map(|(_, g)| g.paused_for()).max()
    }
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    /// No request starts before this (a 429's wait).
    paused_until: Option<Instant>,
    /// Below the limit that was refused last, until the instant given.
    ceiling: Option<(f64, Instant)>,
    throttled: u64,
}

/// One tenant's limiter. See the module documentation.
#[derive(Debug)]
pub struct Governor {
    state: Mutex<State>,
    freed: Notify,
}

/// A place in flight; dropping it frees the place for the next waiting request.
#[must_use]
pub struct Permit<'g> {
    governor: &'g Governor,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.governor.lock().in_flight -= 1;
        self.governor.freed.notify_waiters();
    }
}

/// Why a request could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paused {
    /// How long until the tenant may send again.
    pub remaining: Duration,
}

impl Governor {
    pub fn new(limit: f64) -> Self {
        let state =
            State { limit: limit.clamp(FLOOR, CEILING), in_flight: 0, paused_until: None, ceiling: None, throttled: 0 };
        Self { state: Mutex::new(state), freed: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a place in flight and for any pause to pass. A pause longer than `max_wait` is
    /// not waited out: the caller hands it back (a 429 of its own, or a retryable failure).
    pub async fn acquire(&self, max_wait: Duration) -> Result<Permit<'_>, Paused> {
        loop {
            // Registered before the state is read, so a place freed in between is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let pause = {
                let mut state = self.lock();
                match state.paused_until {
                    Some(until) if until > Instant::now() => Some(until),
                    _ if (state.in_flight as f64) < state.limit.floor() => {
                        state.in_flight += 1;
                        return Ok(Permit { governor: self });
                    }
                    _ => None,
                }
            };
            match pause {
                Some(until) => {
                    let remaining = until - Instant::now();
                    if remaining > max_wait {
                        return Err(Paused { remaining });
                    }
                    tokio::time::sleep_until(until).await;
                }
                None => freed.await,
            }
        }
    }

    /// A request went through: one more in flight per limit's worth of successes, up to the
    /// ceiling (lowered for a while by the last 429).
    pub fn succeeded(&self) {
        let mut state = self.lock();
        let ceiling = match state.ceiling {
            Some((ceiling, until)) if until > Instant::now() => ceiling,
            _ => CEILING,
        };
        state.limit = (state.limit + 1.0 / state.limit).min(ceiling.max(state.limit));
    }

    /// Atlassian says the tenant is near its limit: halve before it says "too many".
    pub fn near_limit(&self) {
        let mut state = self.lock();
        state.limit = (state.limit / 2.0).max(FLOOR);
    }

    /// A 429: halve the limit and pause every request of the tenant for `wait`. Requests that
    /// were in flight together get their 429s together; they halve once, not once each.
    pub fn throttled(&self, wait: Duration) {
        let mut state = self.lock();
        let now = Instant::now();
        let already_paused = state.paused_until.is_some_and(|until| until > now);
        if !already_paused {
            state.ceiling = Some(((state.limit.floor() - 1.0).max(FLOOR), now + REMEMBER));
            state.limit = (state.limit / 2.0).max(FLOOR);
        }
        let until = now + wait;
        state.paused_until = Some(state.paused_until.map_or(until, |current| current.max(until)));
        state.throttled += 1;
    }

    /// The current concurrency limit (whole requests).
    pub fn limit(&self) -> usize {
        self.lock().limit.floor() as usize
    }

    /// 429s this governor has seen.
    pub fn throttled_count(&self) -> u64 {
        self.lock().throttled
    }

    /// How long the tenant's pause still runs, if it is paused.
    pub fn paused_for(&self) -> Option<Duration> {
        let until = self.lock().paused_until?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }
}

/// How long a slot's lease runs before it must be renewed: renewals (every third of it) stay few,
/// and the slot of an instance that crashed or timed out is free again within this.
pub const SLOT_LEASE: Duration = Duration::from_secs(30);
/// The `Retry-After` of a refusal because the tenant's slots are all taken: a slot frees when one
/// of its jobs ends, and a page publish or a slice of bulk creates takes a few seconds.
pub const FULL_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The cross-instance stage of the governor: at most `per_tenant` jobs of one tenant per
/// function at once, whichever instances run them. See the module documentation.
pub struct FairShares {
    slots: Arc<dyn TenantSlots>,
    governors: Governors,
    per_tenant: u32,
    /// The longest Atlassian pause a job waits out instead of being refused.
    max_wait: Duration,
    lease: Duration,
}

impl FairShares {
    /// `governors` are the instance's (the transport's), whose pauses the admission reads and
    /// records; `max_wait` is `BRIDGE_HTTP_MAX_RETRY_WAIT_SECONDS`, the longest wait a request
    /// sits out inside an invocation.
    pub fn new(slots: Arc<dyn TenantSlots>, governors: Governors, per_tenant: u32, max_wait: Duration) -> Self {
        Self { slots, governors, per_tenant: per_tenant.max(1), max_wait, lease: SLOT_LEASE }
    }

    /// A shorter lease (tests: renewals without waiting 10 s).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Runs `work`, one job of `tenant` in `pool` (the function), inside one of the tenant's
    /// slots: taken before the work starts, renewed every third of a lease while it runs, given
    /// back when it ends, with the tenant's Atlassian pause (if the work met a 429) recorded for
    /// the other instances. Refused with `429 tenant_rate_limited` and the wait when every slot is
    /// taken, or when Atlassian paused the tenant longer than a request waits — before anything
    /// is sent. A store failure is an internal (retried) error: the work does not run unadmitted.
    pub async fn run<T>(&self, tenant: &TenantId, pool: &str, work: impl Future<Output = T>) -> Result<T, ApiError> {
        let refused = |error: ApiError| {
            crate::metrics::record(crate::metrics::Sample::count(crate::metrics::Metric::TenantSlotRefused));
            Err(error)
        };
        if let Some(remaining) = self.governors.paused(tenant.as_str()).filter(|r| *r > self.max_wait) {
            return refused(paused(remaining));
        }
        let holder = uuid::Uuid::new_v4().to_string();
        let now = OffsetDateTime::now_utc();
        let asked = std::time::Instant::now();
        let claim =
            self.slots.acquire(tenant, pool, &holder, self.per_tenant, now + self.lease, now + self.max_wait).await?;
        crate::metrics::record(crate::metrics::Sample::millis(crate::metrics::Metric::TenantSlotWait, asked.elapsed()));
        match claim {
            SlotClaim::Granted => {}
            SlotClaim::Full => {
                tracing::warn!(pool, slots = self.per_tenant, "fair share: every slot of the tenant is taken");
                return refused(ApiError::new(
                    ErrorCode::TenantRateLimited,
                    format!(
                        "this tenant already has {} jobs reaching Atlassian in {pool}, its fair share; retry after Retry-After",
                        self.per_tenant
                    ),
                )
                .with_retry_after(FULL_RETRY_AFTER.as_secs()));
            }
            SlotClaim::Paused { until } => {
                let remaining = (until - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                return refused(paused(Duration::from_millis(remaining.whole_milliseconds() as u64)));
            }
        }
        let outcome = self.holding(tenant, pool, &holder, work).await;
        let paused_until = self.governors.paused(tenant.as_str()).map(|r| OffsetDateTime::now_utc() + r);
        if let Err(e) = self.slots.release(tenant, pool, &holder, paused_until).await {
            // The lease lapses on its own; until then the tenant has one slot fewer.
            tracing::warn!(error = %e, pool, "fair share: the slot could not be given back");
        }
        Ok(outcome)
    }

    /// Runs `work`, renewing the slot's lease every third of a lease until it is done. A lost or
    /// failed renewal is logged and the work goes on: a slot is a share, not a lock, and the
    /// work's own records (ledger, publications) guard its correctness.
    async fn holding<T>(&self, tenant: &TenantId, pool: &str, holder: &str, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        let beat = self.lease / 3;
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = tokio::time::sleep(beat) => {
                    match self.slots.renew(tenant, pool, holder, OffsetDateTime::now_utc() + self.lease).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(pool, "fair share: the slot's lease lapsed before it was renewed"),
                        Err(e) => tracing::warn!(error = %e, pool, "fair share: the slot's lease could not be renewed"),
                    }
                }
            }
        }
    }
}

/// The refusal of a job of a tenant Atlassian paused for `remaining`.
fn paused(remaining: Duration) -> ApiError {
    let seconds = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    ApiError::new(
        ErrorCode::TenantRateLimited,
        format!("Atlassian is rate limiting this tenant for another {seconds} s; retry after Retry-After"),
    )
    .with_retry_after(seconds.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_limit_are_in_flight() {
        let governor = Governor::new(2.0);
        let a = governor.acquire(LONG).await.unwrap();
        let _b = governor.acquire(LONG).await.unwrap();
        let third = governor.acquire(LONG);
        tokio::pin!(third);
        assert!(futures::poll!(third.as_mut()).is_pending());
        drop(a);
        assert!(futures::poll!(third.as_mut()).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_request_and_halves_the_limit_once() {
        let governor = Governor::new(8.0);
        governor.throttled(Duration::from_secs(2));
        governor.throttled(Duration::from_secs(1));
        assert_eq!(governor.limit(), 4);
        let started = Instant::now();
        let _permit = governor.acquire(LONG).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(governor.throttled_count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_429_the_limit_stays_below_the_refused_one_for_a_while() {
        let governor = Governor::new(4.0);
        governor.throttled(Duration::from_millis(1));
        for _ in 0..100 {
            governor.succeeded();
        }
        assert_eq!(governor.limit(), 3);
        tokio::time::advance(REMEMBER).await;
        for _ in 0..100 {
            governor.succeeded();
        }
        assert_eq!(governor.limit(), CEILING as usize);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_caller_can_wait_is_handed_back() {
        let governor = Governor::new(4.0);
        governor.throttled(Duration::from_secs(30));
        let paused = governor.acquire(Duration::from_secs(5)).await.err().unwrap();
        assert_eq!(paused.remaining, Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn successes_grow_the_limit_to_the_ceiling_and_near_limit_halves_it() {
        let governor = Governor::new(1.0);
        for _ in 0..200 {
            governor.succeeded();
        }
        assert_eq!(governor.limit(), CEILING as usize);
        governor.near_limit();
        assert_eq!(governor.limit(), 4);
        for _ in 0..10 {
            governor.near_limit();
        }
        assert_eq!(governor.limit(), 1);
    }

    mod fair_shares {
        use super::*;
        use crate::store::memory::MemoryStore;

        fn tenant(name: &str) -> TenantId {
            TenantId::parse(name).unwrap()
        }

        fn shares(store: &MemoryStore, governors: &Governors, per_tenant: u32) -> FairShares {
            FairShares::new(store.slots.clone(), governors.clone(), per_tenant, Duration::from_secs(5))
        }

        #[tokio::test]
        async fn a_tenant_runs_no_more_jobs_than_its_slots_and_others_are_unaffected() {
            let store = MemoryStore::new();
            let shares = shares(&store, &Governors::default(), 2);
            let (acme, globex) = (tenant("acme"), tenant("globex"));
            let (release, held) = tokio::sync::watch::channel(false);
            let hold = || {
                let mut held = held.clone();
                async move {
                    let _ = held.wait_for(|go| *go).await;
                }
            };
            let first = shares.run(&acme, "publish-page", hold());
            let second = shares.run(&acme, "publish-page", hold());
            tokio::pin!(first, second);
            assert!(futures::poll!(first.as_mut()).is_pending());
            assert!(futures::poll!(second.as_mut()).is_pending());
            assert_eq!(store.slots.holders(&acme, "publish-page").len(), 2);

            let refused = shares.run(&acme, "publish-page", async { unreachable!("not admitted") }).await.unwrap_err();
            assert_eq!((refused.code, refused.retry_after), (ErrorCode::TenantRateLimited, Some(2)));
            assert_eq!(refused.status().as_u16(), 429);
            // Another tenant, and the same tenant in another function, have slots of their own.
            assert_eq!(shares.run(&globex, "publish-page", async { 7 }).await.unwrap(), 7);
            assert_eq!(shares.run(&acme, "create-issue", async { 8 }).await.unwrap(), 8);

            release.send(true).unwrap();
            first.await.unwrap();
            second.await.unwrap();
            assert!(store.slots.holders(&acme, "publish-page").is_empty(), "slots are given back");
            assert_eq!(shares.run(&acme, "publish-page", async { 9 }).await.unwrap(), 9);
        }

        #[tokio::test]
        async fn a_tenant_atlassian_paused_past_the_wait_is_refused_before_it_sends() {
            let store = MemoryStore::new();
            let governors = Governors::default();
            let shares = shares(&store, &governors, 2);
            let acme = tenant("acme");
            governors.of("acme", "cloud-1").throttled(Duration::from_secs(30));
            let refused = shares.run(&acme, "publish-page", async { unreachable!("not admitted") }).await.unwrap_err();
            assert_eq!(refused.code, ErrorCode::TenantRateLimited);
            assert!(refused.retry_after.is_some_and(|s| (29..=30).contains(&s)), "{refused:?}");
            // A pause the job can wait out is not a refusal; another tenant is not paused.
            governors.of("globex", "cloud-2").throttled(Duration::from_secs(2));
            assert!(shares.run(&tenant("globex"), "publish-page", async {}).await.is_ok());
        }

        #[tokio::test]
        async fn a_pause_the_work_met_is_recorded_for_the_other_instances() {
            let store = MemoryStore::new();
            let (here, there) = (Governors::default(), Governors::default());
            let acme = tenant("acme");
            let work = async { here.of("acme", "cloud-1").throttled(Duration::from_secs(30)) };
            shares(&store, &here, 2).run(&acme, "publish-page", work).await.unwrap();
            // Another instance has never seen the 429, and is refused all the same.
            let refused = shares(&store, &there, 2).run(&acme, "publish-page", async {}).await.unwrap_err();
            assert_eq!(refused.code, ErrorCode::TenantRateLimited);
            assert!(refused.message.contains("Atlassian is rate limiting"), "{}", refused.message);
        }

        #[tokio::test]
        async fn a_job_longer_than_the_lease_keeps_its_slot_by_renewing_it() {
            let store = MemoryStore::new();
            let shares = shares(&store, &Governors::default(), 1).with_lease(Duration::from_millis(300));
            let acme = tenant("acme");
            // The work outlives two leases; at its end the slot is still held (renewed).
            let held = shares
                .run(&acme, "publish-page", async {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    store.slots.holders(&acme, "publish-page").len()
                })
                .await
                .unwrap();
            assert_eq!(held, 1);
        }

        #[tokio::test]
        async fn a_store_failure_is_a_retried_error_and_the_work_does_not_run() {
            let store = MemoryStore::new();
            store.faults.fail_next("TenantSlots::acquire");
            let shares = shares(&store, &Governors::default(), 2);
            let error = shares.run(&tenant("acme"), "publish-page", async { unreachable!() }).await.unwrap_err();
            assert!(error.retried(), "{error:?}");
        }
    }

    #[test]
    fn each_tenant_and_site_has_its_own() {
        let governors = Governors::default();
        let a = governors.of("acme", "https://jira.acme.test");
        assert!(Arc::ptr_eq(&a, &governors.of("acme", "https://jira.acme.test")));
        assert!(!Arc::ptr_eq(&a, &governors.of("acme", "cloud-1")));
        assert!(!Arc::ptr_eq(&a, &governors.of("globex", "https://jira.acme.test")));
        a.throttled(Duration::from_secs(1));
        assert_eq!(governors.of("globex", "https://jira.acme.test").throttled_count(), 0);
    }
}
