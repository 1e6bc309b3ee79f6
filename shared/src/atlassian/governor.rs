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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

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
