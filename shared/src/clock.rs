//! The business clock: what "now" is for token expiry, grant ages and the keep-alive sweep.
//!
//! In production it is the system clock. Test builds (the `fault-injection` feature, which
//! `make package` leaves out) may shift it by `BRIDGE_TEST_CLOCK_OFFSET_SECONDS`, so an
//! end-to-end test can live through a year of a grant (90-day inactivity, 365-day absolute
//! expiry) in seconds, with the simulator's clock shifted by the same amount. The offset is read
//! once at cold start into the [`Config`](crate::config::Config) and the value is passed down:
//! there is no global.
//!
//! What it is not for: leases and TTLs. They order real instances in real time (DynamoDB
//! compares them against its own requests), so they keep reading the system clock.

use time::OffsetDateTime;

/// "Now", possibly shifted (test builds only). Cheap to copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset: time::Duration,
}

impl Clock {
    /// The system clock.
    pub const fn system() -> Self {
        Self { offset: time::Duration::ZERO }
    }

    /// The system clock shifted by `offset`: for tests only (a release build never shifts it,
    /// see [`Config`](crate::config::Config)).
    pub const fn shifted(offset: time::Duration) -> Self {
        Self { offset }
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset
    }

    /// How far it is shifted (zero in production).
    pub fn offset(&self) -> time::Duration {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_runs_ahead_by_its_offset() {
        let ahead = Clock::shifted(time::Duration::days(60));
        let gap = ahead.now() - Clock::system().now();
        assert!(gap > time::Duration::days(60) - time::Duration::seconds(5), "{gap}");
        assert!(gap <= time::Duration::days(60), "{gap}");
        assert_eq!(Clock::default(), Clock::system());
    }
}
