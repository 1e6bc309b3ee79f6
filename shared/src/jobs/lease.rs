//! Deliveries of one job take turns through leases on its records. A store's conditional claim
//! takes a record for a lease (until an instant) unless another delivery holds it; a delivery
//! that finds it held waits for the holder — its lease is the upper bound — and claims again,
//! for at most [`MAX_WAIT`] per job run.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

use crate::metrics::{self, Metric, Sample};
use crate::store::{Claim, StoreError};

/// How long a job run waits, in all, for other deliveries that hold its records.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// The leases of one job run: how long each claim holds, and when waiting for holders is over.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    duration: Duration,
    give_up: OffsetDateTime,
}

impl Lease {
    /// Leases of `duration` (longer than any one step takes); the wait budget starts now.
    pub fn new(duration: Duration) -> Self {
        Self { duration, give_up: OffsetDateTime::now_utc() + MAX_WAIT }
    }

    /// The end of a lease taken now.
    pub fn until(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.duration
    }

    /// Claims a record with `claim` (the store's conditional claim, given the lease's end),
    /// waiting while another delivery holds it. Answers what the store answered last: the record
    /// is ours, or finished, or — once the wait is over — still held.
    pub async fn claim<W, D, F, Fut>(&self, mut claim: F) -> Result<Claim<W, D>, StoreError>
    where
        F: FnMut(OffsetDateTime) -> Fut,
        Fut: Future<Output = Result<Claim<W, D>, StoreError>>,
    {
        let mut waited: Option<std::time::Instant> = None;
        loop {
            match claim(self.until()).await? {
                Claim::Held { until } if OffsetDateTime::now_utc() < self.give_up => {
                    waited.get_or_insert_with(std::time::Instant::now);
                    tokio::time::sleep(pause(until)).await
                }
                answer => {
                    if let Some(since) = waited {
                        metrics::record(Sample::millis(Metric::JobLeaseWait, since.elapsed()));
                    }
                    return Ok(answer);
                }
            }
        }
    }
}

/// How long to wait before claiming a held record again: until its lease ends, looking again
/// at least every second (the holder may finish early) and at most ten times a second.
fn pause(until: OffsetDateTime) -> Duration {
    (until - OffsetDateTime::now_utc())
        .clamp(time::Duration::milliseconds(100), time::Duration::seconds(1))
        .unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_held_record_is_claimed_again_once_its_holder_lets_go() {
        let lease = Lease::new(Duration::from_secs(60));
        let mut asked = Vec::new();
        let answer = lease
            .claim(|until| {
                asked.push(until);
                let answer =
                    if asked.len() < 3 { Claim::Held { until: OffsetDateTime::now_utc() } } else { Claim::Ours(()) };
                async move { Ok::<Claim<()>, StoreError>(answer) }
            })
            .await
            .unwrap();
        assert_eq!(answer, Claim::Ours(()));
        assert_eq!(asked.len(), 3);
    }

    #[tokio::test]
    async fn a_record_still_held_when_the_wait_is_over_is_answered_as_held() {
        let lease = Lease { duration: Duration::from_secs(60), give_up: OffsetDateTime::now_utc() };
        let mut claims = 0;
        let answer = lease
            .claim(|_| {
                claims += 1;
                async {
                    Ok::<Claim<()>, StoreError>(Claim::Held {
                        until: OffsetDateTime::now_utc() + time::Duration::hours(1),
                    })
                }
            })
            .await
            .unwrap();
        assert!(matches!(answer, Claim::Held { .. }));
        assert_eq!(claims, 1);
    }
}
