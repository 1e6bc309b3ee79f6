//! The Connect app's outgoing and install-time HTTP, against an in-process server: every attempt
//! of a request to an installation carries a Connect JWT for that exact request (retries
//! included, Confluence's `/wiki` context path stripped from the qsh), and install keys come from
//! the CDN once per `kid` (`shared/src/connect/install.rs`).

mod helpers;

use bridge::atlassian::jira::users::myself;
use bridge::atlassian::{Credentials, Payload};
use bridge::connect::install::{InstallJwtError, InstallKeys, KeySource};
use bridge::connect::jwt::{self, ClientKey, QshRule, SharedSecret};
use bridge::connect::qsh::Request;
use bridge::domain::Product;
use helpers::{session_with, transport};
use reqwest::Method;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use serde_json::json;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP_KEY: &str = "com.example.atlassian-bridge";
const SECRET: &str = "installation-shared-secret-0123456789";

fn connect(base_url: &str) -> Credentials {
    Credentials::ConnectJwt {
        app_key: APP_KEY.into(),
        secret: SharedSecret::from(SECRET.to_owned()),
        base_url: base_url.into(),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The Connect JWT of a received request, verified as the product verifies it.
fn verify(req: &wiremock::Request, base_url: &str) -> Result<jwt::VerifiedClaims, jwt::ConnectJwtError> {
    let header = req.headers.get("authorization").and_then(|v| v.to_str().ok());
    let token = jwt::token_from_header(header)?;
    let request = Request::new(req.method.as_str(), req.url.path(), req.url.query().unwrap_or(""));
    let issuer = ClientKey::new(APP_KEY);
    let expected = jwt::Expected { issuer: &issuer, request: &request, base_url, qsh: QshRule::Request };
    jwt::verify(token, &SharedSecret::from(SECRET.to_owned()), &expected, now())
}

#[tokio::test]
async fn every_attempt_of_a_jira_request_is_signed_for_that_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"accountId": "557058:app", "displayName": "App"})),
        )
        .mount(&server)
        .await;
    let base = server.uri();
    let session = session_with(&server, Product::Jira, connect(&base));
    let me = myself(&session).await.unwrap();
    assert_eq!(me.display_name.as_deref(), Some("App"));
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2, "the 503 was retried");
    for req in &received {
        let claims = verify(req, &base).unwrap();
        assert_eq!(claims.issuer().as_str(), APP_KEY);
        assert_eq!(claims.expires_at() - claims.issued_at(), 180);
        assert!((claims.issued_at() - now()).abs() <= 2);
    }
    // Bound to the request: under another path or method the same token fails.
    let token_req = &received[0];
    let header = token_req.headers.get("authorization").unwrap().to_str().unwrap();
    let token = jwt::token_from_header(Some(header)).unwrap();
    let other = Request::new("POST", "/rest/api/3/myself", "");
    let issuer = ClientKey::new(APP_KEY);
    let expected = jwt::Expected { issuer: &issuer, request: &other, base_url: &base, qsh: QshRule::Request };
    assert_eq!(
        jwt::verify(token, &SharedSecret::from(SECRET.to_owned()), &expected, now()).unwrap_err(),
        jwt::ConnectJwtError::QshMismatch
    );
}

#[tokio::test]
async fn a_confluence_request_hashes_below_the_wiki_context_path_with_its_query() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/wiki/api/v2/spaces"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .mount(&server)
        .await;
    let base_url = format!("{}/wiki", server.uri());
    let url = Url::parse(&format!("{}/wiki/api/v2/spaces?limit=5&keys=A%20B&keys=C", server.uri())).unwrap();
    transport().send(Method::GET, url, &connect(&base_url), Payload::None).await.unwrap();
    let [req] = &server.received_requests().await.unwrap()[..] else { panic!("one request") };
    assert!(verify(req, &base_url).is_ok());
    // The qsh is of `/api/v2/spaces`: verifying as if there were no context path fails.
    assert_eq!(verify(req, &server.uri()).unwrap_err(), jwt::ConnectJwtError::QshMismatch);
    let header = req.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(header.starts_with("JWT ") && !header.contains(SECRET));
}

fn public_pem() -> String {
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("fixtures/rs256-test-key.pem")).expect("test key");
    private.to_public_key().to_public_key_pem(Default::default()).unwrap()
}

#[tokio::test]
async fn install_keys_are_fetched_once_per_kid_and_an_unknown_kid_once_a_while() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/keys/k1"))
        .respond_with(ResponseTemplate::new(200).set_body_string(public_pem()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/keys/gone"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/keys/junk"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not a key"))
        .mount(&server)
        .await;
    let keys = InstallKeys::new(transport(), Url::parse(&format!("{}/keys/", server.uri())).unwrap());
    for _ in 0..3 {
        assert!(keys.key("k1").await.is_ok());
        assert_eq!(keys.key("gone").await.unwrap_err(), InstallJwtError::UnknownKey);
    }
    assert_eq!(keys.cached(), 1);
    assert_eq!(keys.key("junk").await.unwrap_err(), InstallJwtError::UnknownKey);
    // A kid that would leave the key path is never fetched.
    assert_eq!(keys.key("../admin").await.unwrap_err(), InstallJwtError::NoKeyId);
    assert_eq!(keys.key("a/b").await.unwrap_err(), InstallJwtError::NoKeyId);
    assert!(server.received_requests().await.unwrap().iter().all(|r| r.url.path().starts_with("/keys/")));
}

#[tokio::test]
async fn a_cdn_that_is_down_is_no_unknown_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let keys = InstallKeys::new(transport(), Url::parse(&server.uri()).unwrap());
    assert_eq!(keys.key("k1").await.unwrap_err(), InstallJwtError::KeysUnavailable);
}

/// The fuzz target's named seeds (`fuzz/corpus/connect_install`, `token \n client \n aud \n
/// path`) decide as they are named: only `valid` and `aud_array` verify. The corpus also holds
/// what the fuzzer grew (files named by their SHA-1), which the fuzzer itself replays.
#[test]
fn the_install_fuzz_seeds_decide_as_named() {
    use bridge::connect::install::{Expected, verify_with};
    let key = bridge::rs256::RsaKey::from_pem(include_str!("fixtures/rs256-test-key.pub.pem")).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/connect_install");
    let seeds = [
        ("valid", None),
        ("aud_array", None),
        ("replayed_client_key", Some(InstallJwtError::WrongIssuer)),
        ("wrong_aud", Some(InstallJwtError::WrongAudience)),
        ("expired", Some(InstallJwtError::Expired)),
        ("unknown_kid", Some(InstallJwtError::UnknownKey)),
        ("traversal_kid", Some(InstallJwtError::NoKeyId)),
        ("hs256", Some(InstallJwtError::WrongAlgorithm)),
    ];
    for (name, want) in seeds {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        let lines: Vec<&str> = text.splitn(4, '\n').collect();
        let client = ClientKey::new(lines[1]);
        let request = Request::new("POST", lines[3], "");
        let expected = Expected { audience: lines[2], client_key: &client, request: &request };
        let result = verify_with(lines[0], |kid| (kid == "k1").then(|| key.clone()), &expected, 1_800_000_000);
        assert_eq!(result.err(), want, "{name}");
    }
}
