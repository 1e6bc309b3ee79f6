//! The OAuth token provider against Atlassian's token endpoint (an in-process server): one
//! refresh per grant however many callers need it at once, and what a refused refresh does.

mod helpers;

use std::sync::Arc;

use bridge::domain::{ConnectionStatus, Product};
use bridge::oauth::TokenError;
use bridge::store::ConnectionStore;
use helpers::Stores;
use helpers::oauth::{self, connect, stored_tokens, tokens};
use helpers::{CLOUD_ID, concurrently, tenant};
use secrecy::ExposeSecret;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Atlassian's answer to a refresh: a new access token and a rotated refresh token.
fn refreshed(access: &str, refresh: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"access_token": access, "refresh_token": refresh, "expires_in": 3600,
                              "token_type": "Bearer", "scope": "read:jira-work write:jira-work offline_access"}))
        // Slow enough that every caller arrives while the refresh is in flight.
        .set_delay(std::time::Duration::from_millis(200))
}

/// Exactly one refresh, with the stored refresh token; any other token request fails the test.
async fn expect_one_refresh(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_partial_json(json!({"grant_type": "refresh_token", "refresh_token": "refresh-1",
                                      "client_id": "bridge-client"})))
        .respond_with(response)
        .expect(1)
        .named("the one refresh")
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .expect(0)
        .named("any other token request")
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_callers_with_an_expired_token_cause_one_refresh_and_all_get_its_token() {
    let server = MockServer::start().await;
    expect_one_refresh(&server, refreshed("access-2", "refresh-2")).await;
    let stores = Stores::new();
    let connection = connect(&stores, &tokens("access-1", "refresh-1", time::Duration::seconds(-5))).await;
    // Fifty callers across five instances (each its own provider), sharing the stores.
    let providers: Vec<_> = (0..5).map(|_| Arc::new(oauth::provider(&server, &stores))).collect();

    let tokens = concurrently(50, |i| {
        let (provider, connection) = (providers[i % 5].clone(), connection.clone());
        async move { provider.access_token(&connection).await }
    })
    .await;

    for token in tokens {
        assert_eq!(token.expect("a token").expose_secret(), "access-2");
    }
    server.verify().await;
    // The rotated refresh token was stored: the old one is retired at Atlassian.
    let stored = stored_tokens(&stores).await;
    assert_eq!((stored.access_token.expose_secret(), stored.refresh_token.expose_secret()), ("access-2", "refresh-2"));

    assert_eq!(stores.leases.holder(&format!("{}#{}", connection.tenant, connection.grant_id)), None, "lease released");

    // Fresh now: the next caller uses it without a refresh (verified again when the server drops).
    let again = providers[0].access_token(&connection).await.unwrap();
    assert_eq!(again.expose_secret(), "access-2");
}

/// Atlassian refuses the refresh token: one request, every caller told to reconnect, the
/// connection marked, and no caller tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_marks_the_connection_once_for_every_caller() {
    let server = MockServer::start().await;
    let refused = ResponseTemplate::new(403)
        .set_body_json(json!({"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}));
    expect_one_refresh(&server, refused).await;
    let stores = Stores::new();
    let connection = connect(&stores, &tokens("access-1", "refresh-1", time::Duration::seconds(-5))).await;
    let provider = Arc::new(oauth::provider(&server, &stores));

    let answers = concurrently(20, |_| {
        let (provider, connection) = (provider.clone(), connection.clone());
        async move { provider.access_token(&connection).await }
    })
    .await;

    for answer in answers {
        assert!(matches!(answer, Err(TokenError::ReconnectRequired(Product::Jira))), "{answer:?}");
    }
    let stored = stores.connections.get(&tenant(), Product::Jira).await.unwrap().unwrap();
    assert_eq!(stored.status, ConnectionStatus::ReconnectRequired);
    server.verify().await;
}

/// Fifty requests through OAuth sessions get 401 for a token Atlassian revoked early: the
/// session renews through the same single-refresher lease, so one refresh serves them all and
/// every request is retried with the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_requests_refused_with_401_share_one_renewal() {
    let server = MockServer::start().await;
    expect_one_refresh(&server, refreshed("access-2", "refresh-2")).await;
    let myself = format!("/ex/jira/{CLOUD_ID}/rest/api/3/myself");
    Mock::given(method("GET"))
        .and(path(myself.as_str()))
        .and(header("authorization", "Bearer access-2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"accountId": "557058:bot", "displayName": "Bridge Bot", "active": true})),
        )
        .expect(50)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(myself.as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"code": 401, "message": "Unauthorized"})))
        .expect(50)
        .mount(&server)
        .await;
    let stores = Stores::new();
    // Valid for an hour as far as we know; Atlassian revoked it anyway.
    connect(&stores, &tokens("access-1", "refresh-1", time::Duration::hours(1))).await;
    let connector = Arc::new(oauth::connector(&server, &stores));

    let answers = concurrently(50, |_| {
        let connector = connector.clone();
        async move {
            let session = connector.session(&tenant(), Product::Jira).await.expect("a session");
            bridge::atlassian::jira::users::myself(&session).await
        }
    })
    .await;

    for answer in answers {
        assert_eq!(answer.expect("the retried request").display_name.as_deref(), Some("Bridge Bot"));
    }
    server.verify().await;
    let stored = stores.connections.get(&tenant(), Product::Jira).await.unwrap().unwrap();
    assert_eq!(stored.status, ConnectionStatus::Connected, "a renewed 401 changes nothing");
}
