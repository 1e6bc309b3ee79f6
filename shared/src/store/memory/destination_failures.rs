use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Faults, from_ms, lock, ms};
use crate::domain::TenantId;
use crate::store::{Destination, DestinationFailureStore, FailureTally, StoreError};

/// One destination's count in its window, as the adapter's `FAILURES` item holds it.
struct Window {
    started_ms: i64,
    failures: u32,
    tenants: BTreeSet<String>,
}

/// Counts and locks by destination, at the adapter's millisecond resolution. Time is what the
/// caller passes (the port takes `now`), so the shared [`Clock`](super::Clock) is not consulted.
#[derive(Default)]
pub struct MemoryDestinationFailures {
    windows: Mutex<HashMap<Destination, Window>>,
    locks: Mutex<HashMap<Destination, i64>>,
    faults: Faults,
}

impl MemoryDestinationFailures {
    pub(super) fn sharing(faults: &Faults) -> Self {
        Self { faults: faults.clone(), ..Self::default() }
    }

    /// The destinations with a stored count or lock: what a test inspects to see which keys a
    /// refusal was counted against (and that nothing else was).
    pub fn destinations(&self) -> Vec<Destination> {
        let mut all: Vec<Destination> = lock(&self.windows).keys().chain(lock(&self.locks).keys()).cloned().collect();
        all.sort_by(|a, b| (a.kind.as_str(), &a.key).cmp(&(b.kind.as_str(), &b.key)));
        all.dedup();
        all
    }

    /// The refusals counted in `destination`'s current window (0 when none is stored).
    pub fn failures(&self, destination: &Destination) -> u32 {
        lock(&self.windows).get(destination).map_or(0, |w| w.failures)
    }
}

#[async_trait]
impl DestinationFailureStore for MemoryDestinationFailures {
    async fn locked_until(
        &self,
        destination: &Destination,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        self.faults.check("DestinationFailureStore::locked_until")?;
        let until = lock(&self.locks).get(destination).copied();
        Ok(until.filter(|until| *until > ms(now)).map(from_ms))
    }

    async fn add_failure(
        &self,
        destination: &Destination,
        tenant: &TenantId,
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> Result<FailureTally, StoreError> {
        self.faults.check("DestinationFailureStore::add_failure")?;
        let floor = ms(now - window);
        let mut windows = lock(&self.windows);
        let entry = windows.entry(destination.clone()).or_insert_with(|| Window {
            started_ms: i64::MIN,
            failures: 0,
            tenants: BTreeSet::new(),
        });
        if entry.started_ms <= floor {
            *entry = Window { started_ms: ms(now), failures: 0, tenants: BTreeSet::new() };
        }
        entry.failures += 1;
        entry.tenants.insert(tenant.to_string());
        Ok(FailureTally {
            failures: entry.failures,
            tenants: u32::try_from(entry.tenants.len()).unwrap_or(u32::MAX),
            window_started: from_ms(entry.started_ms),
        })
    }

    async fn lock(
        &self,
        destination: &Destination,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.faults.check("DestinationFailureStore::lock")?;
        let mut locks = lock(&self.locks);
        if locks.get(destination).is_some_and(|held| *held > ms(now)) {
            return Ok(false);
        }
        locks.insert(destination.clone(), ms(until));
        Ok(true)
    }
}
