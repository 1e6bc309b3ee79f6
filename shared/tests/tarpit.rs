//! A customer's Server/DC is any server on the internet: one that accepts and never answers, one
//! that streams an endless body, or one whose list never ends must cost bounded time and memory
//! (`shared/src/atlassian/transport.rs`, `jira/meta.rs`). Each test is against a local server
//! that behaves that way.

mod helpers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bridge::atlassian::jira::meta;
use bridge::atlassian::{AtlassianError, Credentials, Transport};
use bridge::config::HttpConfig;
use bridge::domain::Product;
use bridge::error::{ApiError, ErrorCode};
use bridge::ids::{IssueTypeId, ProjectKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FIFTY_MB: usize = 50 * 1024 * 1024;
const CAP: usize = 1024 * 1024;

/// The deployed settings' shape with small numbers: 300 ms for the headers, 5 s per attempt,
/// three attempts within a 1 s budget, a 1 MB body cap.
fn config() -> HttpConfig {
    HttpConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        max_attempts: 3,
        max_retry_wait: Duration::from_secs(1),
        retry_budget: Duration::from_secs(1),
        first_byte_timeout: Duration::from_millis(300),
        max_body_bytes: CAP,
    }
}

fn transport() -> Transport {
    Transport::new(&config(), &helpers::egress()).unwrap()
}

/// A local server whose every connection gets `serve`; answers its URL.
async fn server<F, Fut>(serve: F) -> Url
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    url
}

/// Reads the request's head, so that the client has sent it before the server misbehaves.
async fn read_head(stream: &mut tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_costs_the_budget_not_attempts_times_the_timeout() {
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    let url = server(move |mut stream| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move {
            read_head(&mut stream).await;
            // Holds the connection open, answering nothing.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(stream);
        }
    })
    .await;
    let started = Instant::now();
    let error = transport().get_json::<Value>(url.join("rest/api/2/myself").unwrap(), &Credentials::Anonymous).await;
    let elapsed = started.elapsed();
    assert!(matches!(error, Err(AtlassianError::Timeout)), "{error:?}");
    assert_eq!(ApiError::from(error.unwrap_err()).code, ErrorCode::UpstreamError);
    // The first-byte timeout is 300 ms, the budget 1 s: never the 5 s timeout per attempt.
    assert!(elapsed < Duration::from_millis(1_600), "{elapsed:?}");
    assert!(connections.load(Ordering::SeqCst) >= 2, "a timed-out GET is tried again within the budget");
}

#[tokio::test]
async fn a_body_streaming_past_the_cap_is_refused_before_it_is_all_sent() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let done = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let url = server(move |mut stream| {
        let (counter, done) = (counter.clone(), done.clone());
        async move {
            read_head(&mut stream).await;
            // No Content-Length: the size shows only while it streams (chunked), slowly.
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 64 * 1024];
            let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk, b"\r\n".to_vec()].concat();
            while counter.load(Ordering::SeqCst) < FIFTY_MB {
                if stream.write_all(&framed).await.is_err() || stream.flush().await.is_err() {
                    break;
                }
                counter.fetch_add(64 * 1024, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if let Some(done) = done.lock().unwrap().take() {
                let _ = done.send(());
            }
        }
    })
    .await;
    let error = transport().get_json::<Value>(url.join("rest/api/2/myself").unwrap(), &Credentials::Anonymous).await;
    assert!(matches!(error, Err(AtlassianError::TooLarge(_))), "{error:?}");
    let api = ApiError::from(error.unwrap_err());
    assert_eq!((api.code, api.status().as_u16(), api.retried()), (ErrorCode::UpstreamTooLarge, 502, false));
    // The client hung up once the cap was passed: the server's writes failed long before 50 MB.
    done_rx.await.unwrap();
    let total = sent.load(Ordering::SeqCst);
    assert!(total < 10 * CAP, "the server got to send {total} bytes");
}

#[tokio::test]
async fn a_content_length_past_the_cap_is_refused_before_the_body_is_read() {
    let url = server(|mut stream| async move {
        read_head(&mut stream).await;
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {FIFTY_MB}\r\n\r\n[");
        let _ = stream.write_all(head.as_bytes()).await;
        // The rest never comes: waiting for it would cost the whole timeout.
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let started = Instant::now();
    let error = transport().get_json::<Value>(url.join("rest/api/2/myself").unwrap(), &Credentials::Anonymous).await;
    assert!(
        matches!(&error, Err(AtlassianError::TooLarge(reason)) if reason.contains(&FIFTY_MB.to_string())),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_list_that_never_ends_is_refused_after_the_page_cap() {
    let server = MockServer::start().await;
    let page: Vec<Value> = (0..200).map(|n| json!({"fieldId": format!("customfield_{n}"), "name": "F"})).collect();
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/createmeta/OPS/issuetypes/10001"))
        // Always a full page, never `isLast` or a `total`: a list without end.
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"fields": page, "maxResults": 200})))
        .mount(&server)
        .await;
    let session = helpers::session(&server, Product::Jira);
    let error = meta::fields(&session, &ProjectKey::new("OPS"), &IssueTypeId::new("10001")).await;
    assert!(matches!(&error, Err(AtlassianError::TooLarge(reason)) if reason.contains("100 pages")), "{error:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), meta::MAX_PAGES);
}
