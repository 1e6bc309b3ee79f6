//! The per-tenant rate governor against a server that limits like Jira's concurrency rule: a
//! request that arrives while `CAPACITY` others are being served is refused with 429 and
//! `Retry-After: 1`. A job that retries each refused request on its own goes back to its full
//! concurrency after every wait and is refused again and again; one whose governor halves the
//! tenant's concurrency on a 429 (and pauses it for the wait) settles below the capacity.

mod helpers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge::atlassian::governor::Governor;
use bridge::atlassian::jira::users::myself;
use bridge::domain::Product;
use bridge::jobs::bounded;
use helpers::session;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Requests of the job, and how many of them it keeps in flight (the issue job's bulk bound).
const REQUESTS: usize = 30;
const IN_FLIGHT: usize = 4;
/// Requests the server serves at once, and how long each takes.
const CAPACITY: usize = 2;
const SERVICE: Duration = Duration::from_millis(50);

#[derive(Default)]
struct ConcurrencyLimiter {
    refused: AtomicUsize,
    /// When each request being served is done.
    serving: Mutex<Vec<Instant>>,
}

impl Respond for ConcurrencyLimiter {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let now = Instant::now();
        let mut serving = self.serving.lock().unwrap();
        serving.retain(|done| *done > now);
        if serving.len() >= CAPACITY {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"errorMessages": ["Rate limit exceeded."]}));
        }
        serving.push(now + SERVICE);
        ResponseTemplate::new(200)
            .set_delay(SERVICE)
            .set_body_json(json!({"accountId": "557058:bot", "displayName": "Bridge Bot"}))
    }
}

struct Shared(Arc<ConcurrencyLimiter>);

impl Respond for Shared {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request)
    }
}

/// Runs the job and answers (requests that succeeded, 429s the server sent).
async fn job(governor: Option<Arc<Governor>>) -> (usize, usize) {
    let server = MockServer::start().await;
    let limiter = Arc::new(ConcurrencyLimiter::default());
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(Shared(limiter.clone()))
        .mount(&server)
        .await;
    let session = match governor {
        Some(governor) => session(&server, Product::Jira).with_governor(governor),
        None => session(&server, Product::Jira),
    };
    let requests: Vec<_> = (0..REQUESTS).map(|_| myself(&session)).collect();
    let succeeded = bounded(requests, IN_FLIGHT).await.into_iter().filter(Result::is_ok).count();
    (succeeded, limiter.refused.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_429_pauses_the_tenant_instead_of_only_the_one_request() {
    let governor = Arc::new(Governor::new(IN_FLIGHT as f64));
    // Side by side, each against its own server: the same job with each request retrying on its
    // own keeps sending into the refusals.
    let ((succeeded, refused), (_, refused_alone)) = tokio::join!(job(Some(governor.clone())), job(None));
    assert_eq!(succeeded, REQUESTS, "every request gets through");
    assert_eq!(governor.throttled_count(), refused as u64);
    eprintln!("429s: {refused} with the governor, {refused_alone} without");
    assert!(refused * 2 <= refused_alone, "{refused} 429s with the governor, {refused_alone} without");
}
