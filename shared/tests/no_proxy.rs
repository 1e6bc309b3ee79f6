//! Proxy environment variables would send every request to a proxy that resolves the target's
//! name itself, around the egress guard's resolver. The transport ignores them. Its own test
//! binary: the variables are process-wide.

mod helpers;

use bridge::atlassian::{Credentials, Transport};
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn http_proxy_and_https_proxy_are_ignored() {
    let target = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "bot"})))
        .mount(&target)
        .await;
    // A "proxy" that answers everything it is sent with something else.
    let proxy = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "the proxy"})))
        .mount(&proxy)
        .await;
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        // SAFETY: this binary's only test sets them before any client is built; nothing else
        // reads the environment concurrently.
        unsafe { std::env::set_var(name, proxy.uri()) };
    }
    unsafe {
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let transport = Transport::new(&helpers::http_config(), &helpers::egress()).unwrap();
    let url = Url::parse(&format!("{}/rest/api/2/myself", target.uri())).unwrap();
    let answer: Value = transport.get_json(url, &Credentials::Anonymous).await.unwrap();
    assert_eq!(answer["name"], "bot");
    assert_eq!(target.received_requests().await.unwrap().len(), 1);
    assert!(proxy.received_requests().await.unwrap().is_empty(), "a request went through the proxy");
}
