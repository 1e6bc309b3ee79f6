//! The destination lockout around registration's credential check, against Atlassian as an
//! in-process server: what is counted against which destination (a Cloud site by its cloudId,
//! never the API gateway; an identity provider by its token endpoint), what is not (the probe
//! that tells a classic API token from a scoped one, a 403), and that a locked destination is
//! refused before any credential is sent to it.

mod helpers;

use std::sync::Arc;
use std::time::Duration;

use bridge::config::DestinationLockout;
use bridge::credentials::ConnectionAuth;
use bridge::domain::{Deployment, Product};
use bridge::error::ErrorCode;
use bridge::events::RecordingBus;
use bridge::lockout::Lockout;
use bridge::store::{Destination, DestinationKind};
use helpers::{CLOUD_ID, Stores, oauth, tenant};
use serde_json::json;
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EMAIL: &str = "admin@acme.test";
const SCOPED: &str = "scoped-token-1";
const CLASSIC: &str = "classic-token-1";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn api_token(token: &str) -> ConnectionAuth {
    serde_json::from_value(json!({"type": "api_token", "email": EMAIL, "token": token})).unwrap()
}

fn policy(threshold: u32) -> DestinationLockout {
    DestinationLockout { threshold, window: Duration::from_secs(900), cool_down: Duration::from_secs(900) }
}

/// A Cloud site `acme` on the mock server: its public tenant_info names [`CLOUD_ID`]; the API
/// gateway (`/ex/jira/{cloudId}`) takes the scoped token only, the site URL the classic one only,
/// as Atlassian does. Anything else is refused with 401.
async fn cloud_site(with_cloud_id: bool) -> MockServer {
    let server = MockServer::start().await;
    mount_site(&server, with_cloud_id).await;
    server
}

async fn mount_site(server: &MockServer, with_cloud_id: bool) {
    let tenant_info = if with_cloud_id {
        ResponseTemplate::new(200).set_body_json(json!({"cloudId": CLOUD_ID}))
    } else {
        ResponseTemplate::new(404)
    };
    Mock::given(method("GET")).and(path("/site/acme/_edge/tenant_info")).respond_with(tenant_info).mount(server).await;
    let me = ResponseTemplate::new(200).set_body_json(json!({"accountId": "a-1", "displayName": "Acme Admin"}));
    Mock::given(method("GET"))
        .and(path(format!("/ex/jira/{CLOUD_ID}/rest/api/3/myself")))
        .and(header("authorization", basic(EMAIL, SCOPED).as_str()))
        .respond_with(me.clone())
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/site/acme/rest/api/3/myself"))
        .and(header("authorization", basic(EMAIL, CLASSIC).as_str()))
        .respond_with(me)
        .mount(server)
        .await;
    let refused = ResponseTemplate::new(401).set_body_json(json!({"code": 401, "message": "Unauthorized"}));
    Mock::given(method("GET")).respond_with(refused).mount(server).await;
}

fn site_url(server: &MockServer) -> Url {
    Url::parse(&format!("{}/site/acme", server.uri())).unwrap()
}

struct Harness {
    stores: Stores,
    bus: Arc<RecordingBus>,
    lockout: Lockout,
    connector: bridge::access::Connector,
}

fn harness(server: &MockServer, threshold: u32) -> Harness {
    let stores = Stores::new();
    let bus = Arc::new(RecordingBus::default());
    let lockout = Lockout::new(stores.destinations.clone(), bus.clone(), policy(threshold));
    let connector = oauth::connector(server, &stores);
    Harness { stores, bus, lockout, connector }
}

impl Harness {
    async fn register(
        &self,
        server: &MockServer,
        token: &str,
    ) -> Result<bridge::lockout::CheckedCredentials, ErrorCode> {
        self.lockout
            .check_new_credentials(
                &self.connector,
                &tenant(),
                Product::Jira,
                Deployment::Cloud,
                &site_url(server),
                &api_token(token),
            )
            .await
            .map_err(|e| e.code)
    }
}

fn site() -> Destination {
    Destination::site(CLOUD_ID)
}

#[tokio::test]
async fn a_classic_token_refused_by_the_gateway_probe_and_accepted_by_the_site_counts_nothing() {
    let server = cloud_site(true).await;
    let h = harness(&server, 1);
    let checked = h.register(&server, CLASSIC).await.unwrap();
    assert!(!checked.scoped);
    assert_eq!(checked.site.map(|s| s.cloud_id).as_deref(), Some(CLOUD_ID));
    // The gateway did refuse it (the probe), and nothing was counted for that.
    let gateway_refusals =
        server.received_requests().await.unwrap().iter().filter(|r| r.url.path().starts_with("/ex/jira/")).count();
    assert!(gateway_refusals >= 1);
    assert_eq!(h.stores.destinations.destinations(), vec![]);
    // With a threshold of 1, a counted probe would have locked the site.
    assert!(h.register(&server, CLASSIC).await.is_ok());
}

#[tokio::test]
async fn a_wrong_token_counts_once_against_the_sites_cloud_id_not_the_gateway_or_the_host() {
    let server = cloud_site(true).await;
    let h = harness(&server, 5);
    assert_eq!(h.register(&server, "wrong-token").await.unwrap_err(), ErrorCode::CredentialsRejected);
    // Refused at the gateway (as a scoped token) and at the site (as a classic one): one verdict.
    assert_eq!(h.stores.destinations.destinations(), vec![site()]);
    assert_eq!(h.stores.destinations.failures(&site()), 1);
    // A scoped token that works is not counted either.
    assert!(h.register(&server, SCOPED).await.unwrap().scoped);
    assert_eq!(h.stores.destinations.failures(&site()), 1);
}

#[tokio::test]
async fn wrong_tokens_lock_the_site_and_then_even_the_right_one_is_refused_before_it_is_sent() {
    let server = cloud_site(true).await;
    let h = harness(&server, 2);
    for _ in 0..2 {
        assert_eq!(h.register(&server, "wrong-token").await.unwrap_err(), ErrorCode::CredentialsRejected);
    }
    let published = h.bus.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].0, "Egress Abuse Suspected");
    assert_eq!(
        (published[0].1["kind"].as_str(), published[0].1["destination"].as_str(), published[0].1["failures"].as_u64()),
        (Some("site"), Some(CLOUD_ID), Some(2))
    );
    server.reset().await;
    mount_site(&server, true).await;
    // The right scoped token: only the anonymous tenant_info (which names the site) was sent.
    assert_eq!(h.register(&server, SCOPED).await.unwrap_err(), ErrorCode::DestinationLocked);
    let sent: Vec<String> = server.received_requests().await.unwrap().iter().map(|r| r.url.path().to_owned()).collect();
    assert_eq!(sent, ["/site/acme/_edge/tenant_info"]);
}

#[tokio::test]
async fn a_site_without_a_cloud_id_is_counted_by_its_host() {
    let server = cloud_site(false).await;
    let h = harness(&server, 5);
    assert_eq!(h.register(&server, "wrong-token").await.unwrap_err(), ErrorCode::CredentialsRejected);
    let host = Destination::host_of(&site_url(&server)).unwrap();
    assert_eq!((host.kind, host.key.as_str()), (DestinationKind::Host, "127.0.0.1"));
    assert_eq!(h.stores.destinations.destinations(), vec![host]);
}

/// A Server/DC instance behind an identity provider on the mock server: the provider refuses
/// the client (`invalid_client`), or the server refuses a Basic login with a CAPTCHA (403).
#[tokio::test]
async fn a_refused_oidc_client_counts_against_the_token_endpoint_and_a_captcha_counts_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        // The customer wrote the token URL with a trailing slash; the key drops it.
        .and(path("/idp/oauth2/token/"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/dc/jira/rest/api/2/myself"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("X-Seraph-LoginReason", "AUTHENTICATION_DENIED")
                .set_body_json(json!({"errorMessages": ["CAPTCHA_CHALLENGE"], "errors": {}})),
        )
        .mount(&server)
        .await;
    let h = harness(&server, 5);
    let base = Url::parse(&format!("{}/dc/jira", server.uri())).unwrap();
    let oidc: ConnectionAuth = serde_json::from_value(json!({"type": "oidc_client_credentials",
        "token_url": format!("{}/idp/oauth2/token/", server.uri()), "client_id": "c", "client_secret": "guess"}))
    .unwrap();
    let answer = h
        .lockout
        .check_new_credentials(&h.connector, &tenant(), Product::Jira, Deployment::Datacenter, &base, &oidc)
        .await
        .unwrap_err();
    assert_eq!(answer.code, ErrorCode::CredentialsRejected);
    let endpoint = Destination { kind: DestinationKind::TokenUrl, key: "127.0.0.1/idp/oauth2/token".into() };
    assert_eq!(h.stores.destinations.destinations(), vec![endpoint]);

    let captcha: ConnectionAuth =
        serde_json::from_value(json!({"type": "basic", "username": "bot", "password": "right"})).unwrap();
    let answer = h
        .lockout
        .check_new_credentials(&h.connector, &tenant(), Product::Jira, Deployment::Datacenter, &base, &captcha)
        .await
        .unwrap_err();
    assert_eq!(answer.code, ErrorCode::InsufficientPermissions);
    assert_eq!(h.stores.destinations.failures(&Destination::host_of(&base).unwrap()), 0);
}

/// `POST .../verify` of stored connections: a Basic connection whose password the server now
/// refuses counts against its host; an OAuth connection is neither checked nor counted (its token
/// came from Atlassian's consent, nothing a tenant could guess), even on a locked site.
#[tokio::test]
async fn a_refused_verification_counts_against_the_host_and_oauth_verifications_are_left_alone() {
    use bridge::domain::{AuthType, ConnectionStatus};
    use bridge::store::{ConnectionStore, CredentialStore, DestinationFailureStore};

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/dc/jira/rest/api/2/myself"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"errorMessages": ["not authenticated"]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/ex/jira/{CLOUD_ID}/rest/api/3/myself")))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"accountId": "a-1", "displayName": "Acme Admin"})),
        )
        .mount(&server)
        .await;
    let h = harness(&server, 5);
    let base = format!("{}/dc/jira", server.uri());
    let dc = bridge::domain::Connection {
        deployment: Deployment::Datacenter,
        auth_type: AuthType::Basic,
        site: None,
        base_url: Some(base.clone()),
        scopes: vec![],
        secret_name: "bridge/acme/dc-jira".into(),
        ..oauth::connection()
    };
    h.stores.connections.put_all(std::slice::from_ref(&dc)).await.unwrap();
    let password: ConnectionAuth =
        serde_json::from_value(json!({"type": "basic", "username": "bot", "password": "changed-since"})).unwrap();
    h.stores.credentials.put(&dc.secret_name, &password.to_secret()).await.unwrap();
    let answer = h.lockout.verify(&h.connector, &dc).await.unwrap_err();
    assert_eq!(answer.code, ErrorCode::InvalidCredentials);
    let host = Destination::host_of(&Url::parse(&base).unwrap()).unwrap();
    assert_eq!(h.stores.destinations.failures(&host), 1);
    let stored = h.stores.connections.get(&tenant(), Product::Jira).await.unwrap().unwrap();
    assert_eq!(stored.status, ConnectionStatus::InvalidCredentials);

    // The OAuth connection's site is locked; its verification still goes ahead, uncounted.
    let now = time::OffsetDateTime::now_utc();
    assert!(h.stores.destinations.lock(&site(), now, now + Duration::from_secs(900)).await.unwrap());
    let connection = oauth::connect(&h.stores, &oauth::tokens("access-1", "refresh-1", time::Duration::hours(1))).await;
    assert_eq!(h.lockout.verify(&h.connector, &connection).await.unwrap().as_deref(), Some("Acme Admin"));
    assert_eq!(h.stores.destinations.failures(&site()), 0);
}
