//! The transport's retry policy and the session's 401 rule, against an in-process server: what
//! is repeated (429 always, after its `Retry-After`; 5xx for idempotent methods, a bounded
//! number of times), what never is (other 4xx; a 5xx on POST, which may have been processed),
//! and how a 401 is tried once more before it counts.

mod helpers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bridge::atlassian::jira::users::myself;
use bridge::atlassian::{AtlassianError, Class, CredentialWatch, Credentials, Payload, TokenRenewal};
use bridge::domain::{ConnectionStatus, Product};
use helpers::{http_config, session_with, transport};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::json;
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PATH: &str = "/rest/api/3/myself";

fn bearer() -> Credentials {
    Credentials::Bearer(SecretString::from("access-1"))
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"accountId": "557058:bot", "displayName": "Bridge Bot"}))
}

/// Answers `first` to the first `times` requests, `then` afterwards.
async fn answer(server: &MockServer, verb: &str, first: ResponseTemplate, times: u64, then: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path(PATH))
        .respond_with(first)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method(verb)).and(path(PATH)).respond_with(then).mount(server).await;
}

async fn send(server: &MockServer, verb: Method) -> Result<reqwest::Response, AtlassianError> {
    let url = Url::parse(&format!("{}{PATH}", server.uri())).unwrap();
    let body = json!({"issueUpdates": []});
    let payload = if verb == Method::POST { Payload::Json(&body) } else { Payload::None };
    transport().send(verb, url, &bearer(), payload).await
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

fn rate_limited(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("Retry-After", retry_after)
        .set_body_json(json!({"errorMessages": ["Rate limit exceeded."]}))
}

#[tokio::test]
async fn a_429_is_retried_once_its_retry_after_has_passed() {
    let server = MockServer::start().await;
    answer(&server, "GET", rate_limited("2"), 1, ok()).await;

    let started = Instant::now();
    let response = send(&server, Method::GET).await.expect("retried after the 429");

    assert_eq!(response.status(), 200);
    assert_eq!(requests(&server).await, 2);
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After honoured: {:?}", started.elapsed());
}

/// A 429 means Jira did not process the request, so even a bulk create is sent again.
#[tokio::test]
async fn a_429_on_a_post_is_retried_too() {
    let server = MockServer::start().await;
    answer(&server, "POST", rate_limited("1"), 1, ResponseTemplate::new(201).set_body_json(json!({}))).await;

    let response = send(&server, Method::POST).await.expect("retried after the 429");

    assert_eq!(response.status(), 201);
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_wait_limit_goes_back_to_the_caller_at_once() {
    let server = MockServer::start().await;
    answer(&server, "GET", rate_limited("120"), 1, ok()).await;

    let started = Instant::now();
    let error = send(&server, Method::GET).await.expect_err("not waited out");

    assert!(
        matches!(error, AtlassianError::RateLimited { retry_after, .. } if retry_after >= Duration::from_secs(120)),
        "{error:?}"
    );
    assert_eq!(requests(&server).await, 1);
    assert!(started.elapsed() < http_config().max_retry_wait, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_persisting_429_stops_after_the_last_attempt() {
    let server = MockServer::start().await;
    answer(&server, "GET", rate_limited("1"), u64::MAX, ok()).await;

    let error = send(&server, Method::GET).await.expect_err("gave up");

    assert!(matches!(error, AtlassianError::RateLimited { .. }), "{error:?}");
    assert_eq!(requests(&server).await, http_config().max_attempts as usize);
}

#[tokio::test]
async fn a_5xx_on_a_get_is_retried_a_bounded_number_of_times() {
    let server = MockServer::start().await;
    answer(&server, "GET", ResponseTemplate::new(503), u64::MAX, ok()).await;

    let error = send(&server, Method::GET).await.expect_err("gave up");

    assert!(matches!(error, AtlassianError::Api { status: 503, .. }), "{error:?}");
    assert_eq!(requests(&server).await, http_config().max_attempts as usize);
}

#[tokio::test]
async fn a_passing_5xx_on_a_get_is_retried_away() {
    let server = MockServer::start().await;
    answer(&server, "GET", ResponseTemplate::new(502), 1, ok()).await;

    let response = send(&server, Method::GET).await.expect("retried");

    assert_eq!(response.status(), 200);
    assert_eq!(requests(&server).await, 2);
}

/// A POST that failed with 5xx may have been committed (a bulk create): repeating it could
/// create twice, so it goes back to the job, which looks for markers first.
#[tokio::test]
async fn a_5xx_on_a_post_is_not_repeated() {
    let server = MockServer::start().await;
    answer(&server, "POST", ResponseTemplate::new(503), u64::MAX, ResponseTemplate::new(201)).await;

    let error = send(&server, Method::POST).await.expect_err("not retried");

    assert!(matches!(error, AtlassianError::Api { status: 503, .. }), "{error:?}");
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    for status in [400u16, 401, 403, 404, 409, 422] {
        let server = MockServer::start().await;
        let refusal = ResponseTemplate::new(status).set_body_json(json!({"errorMessages": ["refused"], "errors": {}}));
        answer(&server, "GET", refusal, u64::MAX, ok()).await;

        let error = send(&server, Method::GET).await.expect_err("refused");

        assert!(matches!(error, AtlassianError::Api { status: s, .. } if s == status), "{status}: {error:?}");
        assert_eq!(requests(&server).await, 1, "{status} was retried");
    }
}

// ------------------------------------------------------------------- the session's 401 rule

#[derive(Default)]
struct Watch(AtomicUsize);

#[async_trait::async_trait]
impl CredentialWatch for Watch {
    async fn refused(&self) -> ConnectionStatus {
        self.0.fetch_add(1, Ordering::SeqCst);
        ConnectionStatus::InvalidCredentials
    }
}

#[derive(Default)]
struct Renewal(AtomicUsize);

#[async_trait::async_trait]
impl TokenRenewal for Renewal {
    async fn renew(&self, rejected: &Credentials) -> Result<SecretString, AtlassianError> {
        assert!(matches!(rejected, Credentials::Bearer(t) if secrecy::ExposeSecret::expose_secret(t) == "access-1"));
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(SecretString::from("access-2"))
    }
}

fn unauthorized() -> ResponseTemplate {
    ResponseTemplate::new(401)
        .set_body_json(json!({"code": 401, "message": "Client must be authenticated to access this resource."}))
}

/// A fixed credential (API token, PAT): a 401 is tried once more as is; one that persists is
/// the connection's credentials refused, recorded by its watcher.
#[tokio::test]
async fn a_persisting_401_is_tried_once_more_then_recorded() {
    let server = MockServer::start().await;
    answer(&server, "GET", unauthorized(), u64::MAX, ok()).await;
    let watch = Arc::new(Watch::default());
    let session = session_with(&server, Product::Jira, bearer()).with_watch(watch.clone());

    let error = myself(&session).await.expect_err("refused");

    assert!(
        matches!(
            error,
            AtlassianError::CredentialsRefused { product: Product::Jira, status: ConnectionStatus::InvalidCredentials }
        ),
        "{error:?}"
    );
    assert_eq!(requests(&server).await, 2, "one retry, no more");
    assert_eq!(watch.0.load(Ordering::SeqCst), 1);
}

/// Atlassian answers the odd transient 401: the one retry keeps it from disabling a connection.
#[tokio::test]
async fn a_passing_401_disables_nothing() {
    let server = MockServer::start().await;
    answer(&server, "GET", unauthorized(), 1, ok()).await;
    let watch = Arc::new(Watch::default());
    let session = session_with(&server, Product::Jira, bearer()).with_watch(watch.clone());

    let me = myself(&session).await.expect("the retry succeeded");

    assert_eq!(me.display_name.as_deref(), Some("Bridge Bot"));
    assert_eq!(requests(&server).await, 2);
    assert_eq!(watch.0.load(Ordering::SeqCst), 0, "nothing recorded");
}

/// A token source (OAuth, an identity provider): the retry goes with a renewed token, which the
/// session keeps for what follows.
#[tokio::test]
async fn a_401_with_a_token_source_is_retried_with_the_renewed_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .and(header("authorization", "Bearer access-2"))
        .respond_with(ok())
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path(PATH)).respond_with(unauthorized()).mount(&server).await;
    let renewal = Arc::new(Renewal::default());
    let session = session_with(&server, Product::Jira, bearer()).with_renewal(renewal.clone());

    myself(&session).await.expect("retried with the renewed token");
    myself(&session).await.expect("the renewed token is kept");

    assert_eq!(renewal.0.load(Ordering::SeqCst), 1);
    let seen: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, ["Bearer access-1", "Bearer access-2", "Bearer access-2"]);
}

/// The transport itself never repeats a 401: only the session knows whether new credentials
/// exist, and it must not count a 401 twice.
#[tokio::test]
async fn the_transport_alone_answers_a_401_as_is() {
    let server = MockServer::start().await;
    answer(&server, "GET", unauthorized(), u64::MAX, ok()).await;

    let error = send(&server, Method::GET).await.expect_err("refused");

    assert!(error.is(Class::Unauthorized), "{error:?}");
    assert_eq!(requests(&server).await, 1);
}
