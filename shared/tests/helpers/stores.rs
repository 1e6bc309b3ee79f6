//! The stores the jobs run against: the crate's in-memory fakes of every port, which share one
//! clock a test advances to let a crashed delivery's leases lapse without sleeping.

use std::time::Duration;

pub use bridge::store::memory::MemoryStore as Stores;

/// As if `by` had passed for every lease and TTL the fakes hold.
pub fn advance(stores: &Stores, by: Duration) {
    stores.clock.advance(by);
}
