//! The one HTTP stack every Atlassian request goes through: a reqwest client built once per
//! instance, per-connection credentials, timeouts, and retries with exponential backoff and
//! jitter that honour `Retry-After` and repeat only what is safe to repeat.
//!
//! A customer's Server/DC is any server on the internet, so a slow or hostile one (a tarpit) must
//! cost bounded time and memory: each attempt waits at most the first-byte timeout for headers
//! and at most what is left of the request's retry budget in all; a body is read only up to the
//! cap (`BRIDGE_HTTP_MAX_BODY_BYTES`), refused by its Content-Length before reading, else as soon
//! as the stream passes it ([`read_body`]).

use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Client, Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use super::egress::{EgressError, EgressPolicy, GuardedResolver};
use super::error::{AtlassianError, ErrorPayload};
use super::governor::{Governor, Governors};
use crate::config::HttpConfig;
use crate::domain::Product;
use crate::metrics::{self, Metric, Sample};

/// What a request carries.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    None,
    Json(&'a serde_json::Value),
    /// A multipart upload in a `file` part (Confluence attachments), rebuilt for every attempt.
    File(&'a FileUpload),
}

#[derive(Debug, Clone)]
pub struct FileUpload {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// Other form fields, e.g. `minorEdit`.
    pub fields: Vec<(String, String)>,
}

/// How a request authenticates. Debug output never shows the secret.
#[derive(Debug, Clone)]
pub enum Credentials {
    Bearer(SecretString),
    Basic {
        username: String,
        password: SecretString,
    },
    /// No Authorization header (a site's public `/_edge/tenant_info`).
    Anonymous,
    /// A Connect installation: every attempt carries a fresh HS256 JWT (`iss` = our app key,
    /// `qsh` of that exact method and URL under the installation's `base_url`, 3-minute `exp`;
    /// `crate::connect::jwt::sign`). Atlassian, "Understanding JWT for Connect apps"
    /// (<https://developer.atlassian.com/cloud/jira/platform/understanding-jwt-for-connect-apps/>):
    /// the token is bound to one request, so a retry (or a redirect, which is never followed)
    /// cannot reuse it elsewhere.
    ConnectJwt {
        app_key: String,
        secret: crate::connect::jwt::SharedSecret,
        /// The installation's `baseUrl` (its path, e.g. `/wiki`, is the context path).
        base_url: String,
    },
}

impl Credentials {
    /// The `Authorization` value of a Connect JWT for one request at `now` (unix seconds).
    pub(crate) fn connect_authorization(
        app_key: &str,
        secret: &crate::connect::jwt::SharedSecret,
        base_url: &str,
        method: &Method,
        url: &Url,
        now: i64,
    ) -> SecretString {
        let request = crate::connect::qsh::Request::from_url(method.as_str(), url.as_str());
        crate::connect::jwt::sign(app_key, secret, &request, base_url, now)
    }
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is handed back to the caller instead of waited out.
    pub max_retry_wait: Duration,
    /// No retry starts once the request (all attempts and waits) would pass this.
    pub budget: Duration,
}

impl RetryPolicy {
    /// Exponential backoff for `attempt` (1-based) with ×0.7–1.3 jitter, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        exp.min(self.max_delay).mul_f64(rand::random_range(0.7..1.3))
    }
}

#[derive(Clone)]
pub struct Transport {
    client: Client,
    retry: RetryPolicy,
    egress: EgressPolicy,
    /// The instance's per-tenant rate governors, shared by every clone of this transport.
    governors: Governors,
    /// Per attempt: for the headers, and for the whole exchange body included.
    first_byte_timeout: Duration,
    timeout: Duration,
    max_body: usize,
}

/// The body cap of the transport that answered a response, carried in the response's extensions
/// so that every reader of it ([`read_body`]) applies the configured cap.
#[derive(Debug, Clone, Copy)]
struct BodyLimit(usize);

/// The cap for a response that did not come through [`Transport::send_governed`].
const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;
/// An error answer is read only this far: its message is kept to 2 KB anyway.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

impl Transport {
    pub fn new(config: &HttpConfig, egress: &EgressPolicy) -> Result<Self, reqwest::Error> {
        let client = Client::builder()
            .dns_resolver(GuardedResolver::new(egress.clone()))
            .user_agent(concat!("atlassian-bridge/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // HTTP(S)_PROXY / ALL_PROXY would send requests to a proxy that resolves the host
            // itself, around the egress guard's resolver: never use one.
            .no_proxy()
            // A redirect could carry the Authorization header to another host: follow none.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(false)
            .build()?;
        let retry = RetryPolicy {
            max_attempts: config.max_attempts,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_wait: config.max_retry_wait,
            budget: config.retry_budget,
        };
        Ok(Self {
            client,
            retry,
            egress: egress.clone(),
            governors: Governors::default(),
            first_byte_timeout: config.first_byte_timeout.min(config.timeout),
            timeout: config.timeout,
            max_body: config.max_body_bytes,
        })
    }

    /// The largest response body this transport reads.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// The longest one request may take with all its retries; a walk over a list's pages is
    /// held to it too (it is one answer to the caller, who has the same deadline).
    pub fn budget(&self) -> Duration {
        self.retry.budget
    }

    /// The longest wait for a response's headers.
    pub fn first_byte_timeout(&self) -> Duration {
        self.first_byte_timeout
    }

    /// The per-tenant rate governors every session of this instance shares.
    pub fn governors(&self) -> &Governors {
        &self.governors
    }

    /// The egress guard's checks that need no DNS (scheme, userinfo, IP literals).
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        self.egress.check_url(url)
    }

    /// The underlying client, for adapters (the OAuth token endpoint) that bring their own flow.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        credentials: &Credentials,
    ) -> Result<T, AtlassianError> {
        let response = self.send(Method::GET, url, credentials, Payload::None).await?;
        let bytes = read_body(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| AtlassianError::Decode(e.to_string()))
    }

    /// Sends a request, retrying what is safe: 429s always (the request was not processed),
    /// 5xx and timeouts only for idempotent methods, connection failures always (nothing was sent).
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        credentials: &Credentials,
        payload: Payload<'_>,
    ) -> Result<Response, AtlassianError> {
        self.send_governed(method, url, credentials, payload, None, None).await
    }

    /// [`send`](Self::send) under a tenant's [`Governor`]: every attempt waits for a place in
    /// flight and for the tenant's pause; a 429 pauses and slows the whole tenant, and a pause
    /// longer than this request may wait is answered as rate limited without sending. With the
    /// `product` the request is for, each attempt's latency and each 429 are metrics of it.
    pub async fn send_governed(
        &self,
        method: Method,
        url: Url,
        credentials: &Credentials,
        payload: Payload<'_>,
        governor: Option<&Governor>,
        product: Option<Product>,
    ) -> Result<Response, AtlassianError> {
        self.check_url(&url).map_err(AtlassianError::Egress)?;
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS);
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.max_attempts;
            let mut request = self.client.request(method.clone(), url.clone()).header(ACCEPT, "application/json");
            request = match credentials {
                Credentials::Bearer(token) => request.bearer_auth(token.expose_secret()),
                Credentials::Basic { username, password } => {
                    request.basic_auth(username, Some(password.expose_secret()))
                }
                Credentials::Anonymous => request,
                Credentials::ConnectJwt { app_key, secret, base_url } => {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let value = Credentials::connect_authorization(app_key, secret, base_url, &method, &url, now);
                    let mut value = reqwest::header::HeaderValue::from_str(value.expose_secret())
                        .map_err(|_| AtlassianError::Decode("a Connect JWT that is no header value".into()))?;
                    value.set_sensitive(true);
                    request.header(reqwest::header::AUTHORIZATION, value)
                }
            };
            request = match payload {
                Payload::None => request,
                Payload::Json(body) => request.json(body),
                Payload::File(file) => {
                    let part = reqwest::multipart::Part::bytes(file.bytes.clone())
                        .file_name(file.filename.clone())
                        .mime_str(&file.content_type)
                        .map_err(|e| AtlassianError::Decode(e.to_string()))?;
                    let mut form = reqwest::multipart::Form::new().part("file", part);
                    for (name, value) in &file.fields {
                        form = form.text(name.clone(), value.clone());
                    }
                    // Confluence's XSRF guard refuses multipart uploads without this header.
                    request.header("X-Atlassian-Token", "no-check").multipart(form)
                }
            };
            let permit = match governor {
                Some(governor) => {
                    let may_wait = self.retry.max_retry_wait.min(self.retry.budget.saturating_sub(started.elapsed()));
                    let permit = governor.acquire(may_wait).await.map_err(|paused| AtlassianError::RateLimited {
                        retry_after: paused.remaining,
                        reason: Some("tenant-paused".into()),
                    })?;
                    Some(permit)
                }
                None => None,
            };
            // No attempt outlives the request's budget: a tarpit costs the budget, not
            // attempts × timeout. The floor keeps a last attempt meaningful.
            let left = self.retry.budget.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
            let request = request.timeout(self.timeout.min(left));
            let first_byte = self.first_byte_timeout.min(left);
            let sending = std::time::Instant::now();
            let sent = tokio::time::timeout(first_byte, request.send()).await;
            if let Some(product) = product {
                metrics::record(Sample::millis(Metric::AtlassianLatency, sending.elapsed()).product(product));
                if matches!(&sent, Ok(Ok(r)) if r.status() == StatusCode::TOO_MANY_REQUESTS) {
                    metrics::record(Sample::count(Metric::AtlassianThrottled).product(product));
                }
            }
            let sent = match sent {
                Ok(sent) => sent,
                // No headers in time: a server that accepted and does not answer (or one far
                // too slow to wait for). Retried like any timeout.
                Err(_) => {
                    tracing::info!(
                        first_byte_ms = first_byte.as_millis() as u64,
                        host = url.host_str().unwrap_or(""),
                        "no response headers in time"
                    );
                    if !idempotent || last {
                        return Err(AtlassianError::Timeout);
                    }
                    drop(permit);
                    let wait = self.retry.backoff(attempt);
                    if started.elapsed() + wait > self.retry.budget {
                        return Err(AtlassianError::Timeout);
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let (error, wait) = match sent {
                Ok(mut response) if response.status().is_success() => {
                    if let Some(length) = response.content_length().filter(|n| *n > self.max_body as u64) {
                        return Err(too_large(self.max_body, Some(length)));
                    }
                    response.extensions_mut().insert(BodyLimit(self.max_body));
                    if let Some(governor) = governor {
                        governor.succeeded();
                        if header_str(response.headers(), "X-RateLimit-NearLimit").is_some_and(|v| v == "true") {
                            governor.near_limit();
                        }
                    }
                    return Ok(response);
                }
                Ok(response) if response.status().is_redirection() => {
                    // Never followed: a redirect could lead anywhere, credentials included.
                    let location = header_str(response.headers(), "location").unwrap_or_default();
                    return Err(AtlassianError::Redirected {
                        status: response.status().as_u16(),
                        location: strip_query(&location),
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = if status == StatusCode::TOO_MANY_REQUESTS {
                        rate_limit_wait(response.headers())
                    } else {
                        retry_after(response.headers())
                    };
                    let reason = header_str(response.headers(), "RateLimit-Reason");
                    let payload = ErrorPayload::from_bytes(&read_prefix(response, ERROR_BODY_LIMIT).await);
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        // Retry-After is a minimum and at least a second; jittered backoff on top.
                        let wait = retry_after
                            .unwrap_or(Duration::ZERO)
                            .max(Duration::from_secs(1))
                            .max(self.retry.backoff(attempt));
                        if let Some(governor) = governor {
                            governor.throttled(wait);
                        }
                        let error = AtlassianError::RateLimited { retry_after: wait, reason };
                        if last || wait > self.retry.max_retry_wait {
                            return Err(error);
                        }
                        (error, wait)
                    } else if status.is_server_error() && idempotent && !last {
                        let wait = retry_after.unwrap_or(Duration::ZERO).max(self.retry.backoff(attempt));
                        if wait > self.retry.max_retry_wait {
                            return Err(AtlassianError::api(status.as_u16(), payload));
                        }
                        (AtlassianError::api(status.as_u16(), payload), wait)
                    } else {
                        return Err(AtlassianError::api(status.as_u16(), payload));
                    }
                }
                Err(e) if egress_refusal(&e).is_some() => {
                    let refusal = egress_refusal(&e).cloned();
                    return Err(
                        refusal.map_or_else(|| AtlassianError::Unreachable(e.to_string()), AtlassianError::Egress)
                    );
                }
                Err(e) if e.is_connect() && !last => {
                    (AtlassianError::Unreachable(e.without_url().to_string()), self.retry.backoff(attempt))
                }
                Err(e) if e.is_timeout() && idempotent && !last => {
                    (AtlassianError::Timeout, self.retry.backoff(attempt))
                }
                Err(e) if e.is_timeout() => return Err(AtlassianError::Timeout),
                Err(e) => return Err(AtlassianError::Unreachable(e.without_url().to_string())),
            };
            // The place in flight is not held while waiting to retry.
            drop(permit);
            if started.elapsed() + wait > self.retry.budget {
                return Err(error);
            }
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %error, host = url.host_str().unwrap_or(""), "retrying Atlassian request");
            match (governor, &error) {
                // The governor holds the tenant's pause: the next acquire waits it out, together
                // with every other request of the tenant.
                (Some(_), AtlassianError::RateLimited { .. }) => {}
                _ => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// Reads a successful answer's body, at most the cap of the transport that answered it: a larger
/// one is refused as soon as the stream passes the cap, so no more than the cap and one chunk is
/// ever held (the connection is dropped with the rest unread).
pub(crate) async fn read_body(response: Response) -> Result<Vec<u8>, AtlassianError> {
    let limit = response.extensions().get::<BodyLimit>().map_or(DEFAULT_MAX_BODY, |l| l.0);
    read_capped(response, limit).await
}

/// [`read_body`] with an explicit cap (for responses the transport's retry loop did not answer).
pub(crate) async fn read_capped(mut response: Response, limit: usize) -> Result<Vec<u8>, AtlassianError> {
    if let Some(length) = response.content_length().filter(|n| *n > limit as u64) {
        return Err(too_large(limit, Some(length)));
    }
    let mut body = Vec::with_capacity(response.content_length().map_or(0, |n| n as usize).min(limit));
    while let Some(chunk) = response.chunk().await.map_err(body_error)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit, None));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first `limit` bytes of an error answer (the rest is not read); empty if it fails.
async fn read_prefix(mut response: Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]),
            _ => break,
        }
    }
    body
}

fn body_error(e: reqwest::Error) -> AtlassianError {
    if e.is_timeout() { AtlassianError::Timeout } else { AtlassianError::Decode(e.without_url().to_string()) }
}

fn too_large(limit: usize, length: Option<u64>) -> AtlassianError {
    AtlassianError::TooLarge(match length {
        Some(length) => format!("the answer announces {length} bytes; the bridge reads at most {limit}"),
        None => format!("the answer is larger than {limit} bytes, the most the bridge reads"),
    })
}

/// The egress guard's refusal inside a client error (it surfaces from the DNS resolver).
fn egress_refusal(e: &reqwest::Error) -> Option<&EgressError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(refusal) = err.downcast_ref::<EgressError>() {
            return Some(refusal);
        }
        source = err.source();
    }
    None
}

/// A Location without its query string, which could carry tokens.
fn strip_query(location: &str) -> String {
    location.split(['?', '#']).next().unwrap_or_default().to_owned()
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// How long a 429 asks us to wait. `Retry-After` (seconds) and, for Jira Cloud's points-based
/// quota, `Beta-Retry-After` — the longer of the two; without either, `X-RateLimit-Reset`, the
/// ISO 8601 instant (`yyyy-MM-ddTHH:mmZ`) the limit resets
/// (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/).
fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    let beta = header_str(headers, "Beta-Retry-After").and_then(|v| v.trim().parse::<u64>().ok());
    match (retry_after(headers), beta.map(Duration::from_secs)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (Some(a), None) | (None, Some(a)) => Some(a),
        (None, None) => {
            let reset = header_str(headers, "X-RateLimit-Reset")?;
            let at = time::OffsetDateTime::parse(reset.trim(), &time::format_description::well_known::Rfc3339)
                .ok()
                .or_else(|| {
                    let minutes = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]Z");
                    time::PrimitiveDateTime::parse(reset.trim(), &minutes).ok().map(|at| at.assume_utc())
                })?;
            let secs = (at - time::OffsetDateTime::now_utc()).whole_seconds();
            Some(Duration::from_secs(secs.max(0) as u64))
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (date - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_retry_wait: Duration::from_secs(10),
            budget: Duration::from_secs(20),
        };
        for _ in 0..100 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(70) && first <= Duration::from_millis(130), "{first:?}");
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(280) && third <= Duration::from_millis(520), "{third:?}");
            assert!(policy.backoff(30) <= Duration::from_millis(1300));
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn a_429s_wait_takes_the_longer_of_retry_after_and_beta_retry_after_else_the_reset() {
        let mut headers = HeaderMap::new();
        headers.insert("Beta-Retry-After", "12".parse().unwrap());
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(12)));
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(12)));
        headers.insert(RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(30)));
        let mut headers = HeaderMap::new();
        let in_two_minutes = time::OffsetDateTime::now_utc() + time::Duration::minutes(2);
        let minutes = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]Z");
        headers.insert("X-RateLimit-Reset", in_two_minutes.format(&minutes).unwrap().parse().unwrap());
        let wait = rate_limit_wait(&headers).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(120), "{wait:?}");
        headers.insert("X-RateLimit-Reset", "2020-01-01T00:00Z".parse().unwrap());
        assert_eq!(rate_limit_wait(&headers), Some(Duration::ZERO));
        assert_eq!(rate_limit_wait(&HeaderMap::new()), None);
    }
}
