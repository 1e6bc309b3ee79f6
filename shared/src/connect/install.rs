//! The install and uninstall lifecycle callbacks' JWTs, signed asymmetrically by Atlassian.
//!
//! Atlassian, "Understanding JWT for Connect apps"
//! (<https://developer.atlassian.com/cloud/jira/platform/understanding-jwt-for-connect-apps/>),
//! "Asymmetric JWT token": for the `installed` and `uninstalled` callbacks the product signs an
//! RS256 token whose header's `kid` names a public key served, as PEM, at
//! `https://connect-install-keys.atlassian.com/{kid}`; the app opts in with the descriptor's
//! `apiMigrations: {"signed-install": true}`
//! (<https://developer.atlassian.com/cloud/jira/platform/connect-api-migration/>). The app must:
//!
//! - read `kid` from the (unverified) header and fetch that key — never a key the token carries;
//! - verify the signature with it (RS256 only: [`crate::rs256`] refuses every other `alg`);
//! - check `aud` is the app's own `baseUrl` (a token minted for another app's install cannot be
//!   replayed at us);
//! - check `iss` is the `clientKey` of the payload (an install signed for one site cannot install
//!   another site's payload);
//! - check `qsh` against this very request (`POST /connect/installed`, canonical request from
//!   [`super::qsh`]), and `exp` / `iat` like every token (30 s leeway).
//!
//! The same steps appear in Atlassian's announcement's pseudo-code for custom implementations,
//! as quoted by GitLab's implementation (<https://gitlab.com/gitlab-org/gitlab/-/merge_requests/71080>).
//!
//! A key by `kid` never changes (Atlassian publishes a new `kid` when it rotates), so keys are
//! cached per instance, a bounded number of them; an unknown `kid` costs one fetch.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use url::Url;

use super::jwt::{ClientKey, LEEWAY_SECONDS};
use super::qsh::Request;
use crate::atlassian::{Class, Credentials, Payload, Transport};
use crate::rs256::{self, Claims, Rs256Error, RsaKey, Unverified};

/// Why an install or uninstall callback's JWT was refused: a stable reason for logs (never the
/// token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InstallJwtError {
    #[error("no lifecycle JWT")]
    Missing,
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token's algorithm is not RS256")]
    WrongAlgorithm,
    #[error("the token names no usable key id")]
    NoKeyId,
    #[error("the install-key CDN has no key of the token's kid")]
    UnknownKey,
    #[error("the install-key CDN could not be reached")]
    KeysUnavailable,
    #[error("the token's signature does not verify with the key it names")]
    BadSignature,
    #[error("the token's audience is not this app's base URL")]
    WrongAudience,
    #[error("the token's issuer is not the payload's clientKey")]
    WrongIssuer,
    #[error("the token has no exp claim")]
    NoExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token has no iat claim")]
    NoIssuedAt,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token's qsh does not match the request")]
    QshMismatch,
}

impl InstallJwtError {
    /// The reason as one word, for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::NoKeyId => "no_key_id",
            Self::UnknownKey => "unknown_key",
            Self::KeysUnavailable => "keys_unavailable",
            Self::BadSignature => "bad_signature",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::NoExpiry => "no_expiry",
            Self::Expired => "expired",
            Self::NoIssuedAt => "no_issued_at",
            Self::IssuedInFuture => "issued_in_future",
            Self::QshMismatch => "qsh_mismatch",
        }
    }
}

impl From<Rs256Error> for InstallJwtError {
    fn from(e: Rs256Error) -> Self {
        match e {
            Rs256Error::Malformed => Self::Malformed,
            Rs256Error::WrongAlgorithm => Self::WrongAlgorithm,
            Rs256Error::NoKeyId => Self::NoKeyId,
            // A key the CDN served that is no RSA key of 2048 bits or more: as good as none.
            Rs256Error::BadKey => Self::UnknownKey,
            Rs256Error::BadSignature => Self::BadSignature,
        }
    }
}

/// What the callback must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// Our descriptor's `baseUrl` (the deployment's public base URL): the token's `aud`.
    pub audience: &'a str,
    /// The `clientKey` of the callback's payload: the token's `iss`.
    pub client_key: &'a ClientKey,
    /// The request as it arrived.
    pub request: &'a Request,
}

/// The checked claims of a lifecycle token. Only [`verify_with`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInstall {
    client_key: ClientKey,
    key_id: String,
    issued_at: i64,
    expires_at: i64,
}

impl VerifiedInstall {
    pub fn client_key(&self) -> &ClientKey {
        &self.client_key
    }

    /// The install key that signed it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

/// Where install keys come from: the CDN ([`InstallKeys`]), or a fixed set in tests.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync {
    /// The public key of `kid` (already checked by [`valid_kid`]).
    async fn key(&self, kid: &str) -> Result<RsaKey, InstallJwtError>;
}

/// A `kid` we are willing to put in the CDN's path: 1 to 128 of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot, so a token cannot steer the fetch elsewhere on the host (`..`, `/`,
/// `?`, `#`, `%`).
pub fn valid_kid(kid: &str) -> bool {
    (1..=128).contains(&kid.len())
        && !kid.starts_with('.')
        && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The RS256 token split, its header checked, and the `kid` it names when that is a safe one.
fn parse(token: &str) -> Result<(Unverified<'_>, String), InstallJwtError> {
    let parsed = Unverified::parse(token)?;
    if !valid_kid(parsed.kid()) {
        return Err(InstallJwtError::NoKeyId);
    }
    let kid = parsed.kid().to_owned();
    Ok((parsed, kid))
}

/// Verifies a lifecycle callback's JWT: the key its `kid` names from `keys`, then
/// [`verify_with`].
pub async fn verify(
    token: &str,
    keys: &dyn KeySource,
    expected: &Expected<'_>,
    now: i64,
) -> Result<VerifiedInstall, InstallJwtError> {
    let (_, kid) = parse(token)?;
    let key = keys.key(&kid).await?;
    verify_with(token, |_| Some(key.clone()), expected, now)
}

/// The synchronous core of [`verify`] (also the fuzz target's): `key_of` finds the key of a
/// `kid`. Never panics, whatever the input.
pub fn verify_with(
    token: &str,
    key_of: impl FnOnce(&str) -> Option<RsaKey>,
    expected: &Expected<'_>,
    now: i64,
) -> Result<VerifiedInstall, InstallJwtError> {
    let (parsed, key_id) = parse(token)?;
    let key = key_of(&key_id).ok_or(InstallJwtError::UnknownKey)?;
    let claims = parsed.verify(&key)?;
    check_claims(&claims, expected, now).map(|(issued_at, expires_at)| VerifiedInstall {
        client_key: expected.client_key.clone(),
        key_id,
        issued_at,
        expires_at,
    })
}

/// `aud`, `iss`, `exp`, `iat` / `nbf` and `qsh` of a verified token; answers (`iat`, `exp`).
fn check_claims(claims: &Claims, expected: &Expected<'_>, now: i64) -> Result<(i64, i64), InstallJwtError> {
    // `aud` is a string or an array of strings (RFC 7519 §4.1.3); ours must be among them.
    // Compared without a trailing slash: the descriptor's baseUrl has none, and Atlassian
    // sends it as registered.
    let ours = expected.audience.trim_end_matches('/');
    let audience_ok = match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => aud.trim_end_matches('/') == ours,
        Some(serde_json::Value::Array(auds)) => {
            auds.iter().any(|a| a.as_str().is_some_and(|a| a.trim_end_matches('/') == ours))
        }
        _ => false,
    };
    if !audience_ok || ours.is_empty() {
        return Err(InstallJwtError::WrongAudience);
    }
    match claims.get("iss").and_then(serde_json::Value::as_str) {
        Some(iss) if !iss.is_empty() && iss == expected.client_key.as_str() => {}
        _ => return Err(InstallJwtError::WrongIssuer),
    }
    if !claims.contains_key("exp") {
        return Err(InstallJwtError::NoExpiry);
    }
    let expires_at = rs256::seconds(claims, "exp").ok_or(InstallJwtError::Malformed)?;
    if now > expires_at.saturating_add(LEEWAY_SECONDS) {
        return Err(InstallJwtError::Expired);
    }
    if !claims.contains_key("iat") {
        return Err(InstallJwtError::NoIssuedAt);
    }
    let issued_at = rs256::seconds(claims, "iat").ok_or(InstallJwtError::Malformed)?;
    let not_before = match claims.get("nbf") {
        None => None,
        Some(_) => Some(rs256::seconds(claims, "nbf").ok_or(InstallJwtError::Malformed)?),
    };
    if [Some(issued_at), not_before].into_iter().flatten().any(|at| at > now.saturating_add(LEEWAY_SECONDS)) {
        return Err(InstallJwtError::IssuedInFuture);
    }
    // The lifecycle callbacks are called by the product itself: only the request's own hash (a
    // context token has no business here). The canonical URI is the path below our baseUrl.
    let qsh = claims.get("qsh").and_then(serde_json::Value::as_str).ok_or(InstallJwtError::QshMismatch)?;
    if qsh != expected.request.qsh(expected.audience) {
        return Err(InstallJwtError::QshMismatch);
    }
    Ok((issued_at, expires_at))
}

/// How many install keys an instance keeps (Atlassian has a handful in use at a time).
const MAX_CACHED_KEYS: usize = 32;
/// How long a `kid` the CDN did not know is answered unknown without asking again.
const UNKNOWN_KID_TTL: Duration = Duration::from_secs(60);
/// A PEM public key is well under this.
const MAX_KEY_BYTES: usize = 16 * 1024;

/// Atlassian's install-key CDN (`{base}/{kid}` → PEM), through the bridge's transport (so the
/// egress guard and its timeouts apply), with a per-instance cache.
pub struct InstallKeys {
    transport: Transport,
    base: Url,
    cache: Mutex<KeyCache>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, RsaKey>,
    /// Insertion order, for evicting the oldest once full.
    order: VecDeque<String>,
    unknown: HashMap<String, Instant>,
}

impl KeyCache {
    fn insert(&mut self, kid: &str, key: RsaKey) {
        if self.keys.insert(kid.to_owned(), key).is_none() {
            self.order.push_back(kid.to_owned());
        }
        while self.order.len() > MAX_CACHED_KEYS {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
    }

    fn known_unknown(&mut self, kid: &str) -> bool {
        let now = Instant::now();
        self.unknown.retain(|_, at| now.duration_since(*at) < UNKNOWN_KID_TTL);
        self.unknown.contains_key(kid)
    }

    fn mark_unknown(&mut self, kid: &str) {
        if self.unknown.len() >= MAX_CACHED_KEYS {
            self.unknown.clear();
        }
        self.unknown.insert(kid.to_owned(), Instant::now());
    }
}

impl InstallKeys {
    pub fn new(transport: Transport, base: Url) -> Self {
        Self { transport, base, cache: Mutex::new(KeyCache::default()) }
    }

    /// How many keys are cached (tests).
    pub fn cached(&self) -> usize {
        self.lock().keys.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn url_of(&self, kid: &str) -> Result<Url, InstallJwtError> {
        Url::parse(&format!("{}/{kid}", self.base.as_str().trim_end_matches('/'))).map_err(|_| InstallJwtError::NoKeyId)
    }

    async fn fetch(&self, kid: &str) -> Result<RsaKey, InstallJwtError> {
        let url = self.url_of(kid)?;
        let response = match self.transport.send(Method::GET, url, &Credentials::Anonymous, Payload::None).await {
            Ok(response) => response,
            Err(e) if matches!(e.class(), Some(Class::NotFound | Class::PermissionDenied)) => {
                // The CDN answers an unknown key with 404 (S3 behind it may say 403).
                return Err(InstallJwtError::UnknownKey);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the install-key CDN did not answer");
                return Err(InstallJwtError::KeysUnavailable);
            }
        };
        let body = crate::atlassian::read_capped(response, MAX_KEY_BYTES)
            .await
            .map_err(|_| InstallJwtError::KeysUnavailable)?;
        let pem = std::str::from_utf8(&body).map_err(|_| InstallJwtError::UnknownKey)?;
        Ok(RsaKey::from_pem(pem)?)
    }
}

#[async_trait::async_trait]
impl KeySource for InstallKeys {
    async fn key(&self, kid: &str) -> Result<RsaKey, InstallJwtError> {
        if !valid_kid(kid) {
            return Err(InstallJwtError::NoKeyId);
        }
        {
            let mut cache = self.lock();
            if let Some(key) = cache.keys.get(kid) {
                return Ok(key.clone());
            }
            if cache.known_unknown(kid) {
                return Err(InstallJwtError::UnknownKey);
            }
        }
        match self.fetch(kid).await {
            Ok(key) => {
                self.lock().insert(kid, key.clone());
                tracing::info!(kid, "install key fetched");
                Ok(key)
            }
            Err(InstallJwtError::UnknownKey) => {
                self.lock().mark_unknown(kid);
                Err(InstallJwtError::UnknownKey)
            }
            Err(e) => Err(e),
        }
    }
}

/// A fixed set of keys by `kid` (tests, the fuzz target).
#[derive(Default)]
pub struct StaticKeys(pub HashMap<String, RsaKey>);

#[async_trait::async_trait]
impl KeySource for StaticKeys {
    async fn key(&self, kid: &str) -> Result<RsaKey, InstallJwtError> {
        self.0.get(kid).cloned().ok_or(InstallJwtError::UnknownKey)
    }
}

/// The lifecycle callback's JSON body (`installed` and `uninstalled`), as Atlassian documents it
/// on the app descriptor's lifecycle page
/// (<https://developer.atlassian.com/cloud/jira/platform/connect-app-descriptor/#lifecycle>).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePayload {
    /// The app key the product installed (ours).
    pub key: String,
    /// The installation's identifier: the `iss` of the product's JWTs.
    pub client_key: String,
    /// HS256 secret of the installation (only on `installed`). Never logged.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub shared_secret: Option<Secretish>,
    /// The product's base URL (Confluence's ends in `/wiki`).
    pub base_url: String,
    #[serde(default)]
    pub display_url: Option<String>,
    /// `jira` or `confluence`.
    pub product_type: String,
    #[serde(default)]
    pub cloud_id: Option<String>,
    /// `installed` or `uninstalled`.
    pub event_type: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A string that never shows in `Debug`.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secretish(pub String);

impl std::fmt::Debug for Secretish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl LifecyclePayload {
    /// The product the installation is on (`productType`).
    pub fn product(&self) -> Option<crate::domain::Product> {
        match self.product_type.as_str() {
            "jira" => Some(crate::domain::Product::Jira),
            "confluence" => Some(crate::domain::Product::Confluence),
            _ => None,
        }
    }

    /// The `baseUrl`, when it is an absolute http(s) URL without credentials, query or fragment,
    /// without its trailing slash. Where it may point is the egress guard's business on every
    /// request made to it.
    pub fn checked_base_url(&self) -> Option<String> {
        let url = Url::parse(self.base_url.trim()).ok()?;
        let fine = matches!(url.scheme(), "https" | "http")
            && url.host_str().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none();
        fine.then(|| url.as_str().trim_end_matches('/').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::signature::{SignatureEncoding, Signer};
    use serde_json::json;
    use sha2::Sha256;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const AUD: &str = "https://bridge.example.com";

    fn private() -> rsa::RsaPrivateKey {
        rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../../tests/fixtures/rs256-test-key.pem")).unwrap()
    }

    fn public() -> RsaKey {
        RsaKey::from_pem(&private().to_public_key().to_public_key_pem(Default::default()).unwrap()).unwrap()
    }

    fn token(header: serde_json::Value, claims: serde_json::Value) -> String {
        let signed = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = SigningKey::<Sha256>::new(private()).sign(signed.as_bytes()).to_vec();
        format!("{signed}.{}", B64.encode(sig))
    }

    fn request() -> Request {
        Request::new("POST", "/connect/installed", "")
    }

    fn claims() -> serde_json::Value {
        json!({"iss": "client-a", "aud": AUD, "iat": NOW - 2, "exp": NOW + 178, "qsh": request().qsh(AUD), "sub": "x"})
    }

    fn keys() -> StaticKeys {
        StaticKeys(HashMap::from([("k1".to_owned(), public())]))
    }

    async fn check(token: &str, client: &str) -> Result<VerifiedInstall, InstallJwtError> {
        let client = ClientKey::new(client);
        let request = request();
        verify(token, &keys(), &Expected { audience: AUD, client_key: &client, request: &request }, NOW).await
    }

    fn with(field: &str, value: serde_json::Value) -> String {
        let mut c = claims();
        c[field] = value;
        token(json!({"alg": "RS256", "kid": "k1"}), c)
    }

    #[tokio::test]
    async fn an_install_signed_by_the_named_key_for_us_verifies() {
        let verified = check(&token(json!({"alg": "RS256", "kid": "k1"}), claims()), "client-a").await.unwrap();
        assert_eq!(verified.client_key().as_str(), "client-a");
        assert_eq!(verified.key_id(), "k1");
        // aud as an array, with a trailing slash, is ours too.
        assert!(check(&with("aud", json!(["other", "https://bridge.example.com/"])), "client-a").await.is_ok());
    }

    #[tokio::test]
    async fn each_wrong_claim_is_refused_with_its_reason() {
        use InstallJwtError::*;
        let cases = [
            (with("aud", json!("https://evil.example.com")), WrongAudience),
            (with("aud", json!(42)), WrongAudience),
            (with("iss", json!("client-b")), WrongIssuer),
            (with("exp", json!(NOW - LEEWAY_SECONDS - 1)), Expired),
            (with("iat", json!(NOW + LEEWAY_SECONDS + 5)), IssuedInFuture),
            (with("nbf", json!(NOW + 3600)), IssuedInFuture),
            (with("qsh", json!(Request::new("POST", "/connect/uninstalled", "").qsh(AUD))), QshMismatch),
            (with("qsh", json!("context-qsh")), QshMismatch),
            (with("exp", json!("soon")), Malformed),
        ];
        for (token, reason) in cases {
            assert_eq!(check(&token, "client-a").await, Err(reason));
        }
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(check(&token(json!({"alg": "RS256", "kid": "k1"}), c), "client-a").await, Err(NoExpiry));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("iat");
        assert_eq!(check(&token(json!({"alg": "RS256", "kid": "k1"}), c), "client-a").await, Err(NoIssuedAt));
        // Just inside the leeway passes.
        assert!(check(&with("exp", json!(NOW - LEEWAY_SECONDS + 1)), "client-a").await.is_ok());
    }

    #[tokio::test]
    async fn a_replay_for_another_client_key_is_refused() {
        // A genuine token of client-a, sent with client-b's payload.
        let genuine = token(json!({"alg": "RS256", "kid": "k1"}), claims());
        assert_eq!(check(&genuine, "client-b").await, Err(InstallJwtError::WrongIssuer));
    }

    #[tokio::test]
    async fn keys_come_only_from_the_source_by_a_safe_kid() {
        use InstallJwtError::*;
        assert_eq!(check(&token(json!({"alg": "RS256", "kid": "k2"}), claims()), "client-a").await, Err(UnknownKey));
        for kid in ["../k1", "k1/../x", ".k1", "k1?x", "k%31", "", &"k".repeat(129)] {
            let t = token(json!({"alg": "RS256", "kid": kid}), claims());
            assert_eq!(check(&t, "client-a").await, Err(NoKeyId), "{kid}");
        }
        // A key in the token's header (jwk, x5u) is never used; HS256 under the public key is refused.
        let t = token(json!({"alg": "RS256", "kid": "k2", "jwk": {"kty": "RSA"}}), claims());
        assert_eq!(check(&t, "client-a").await, Err(UnknownKey));
        let hs = crate::webhook_jwt::sign_with_header(&json!({"alg": "HS256", "kid": "k1"}), &claims(), b"k");
        assert_eq!(check(&hs, "client-a").await, Err(WrongAlgorithm));
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none","kid":"k1"}"#), B64.encode(claims().to_string()));
        assert_eq!(check(&none, "client-a").await, Err(WrongAlgorithm));
        // Signed by another key under k1's name.
        let good = token(json!({"alg": "RS256", "kid": "k1"}), claims());
        let (signed, _) = good.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", B64.encode([7u8; 256]));
        assert_eq!(check(&forged, "client-a").await, Err(BadSignature));
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_the_newest() {
        let mut cache = KeyCache::default();
        for i in 0..(MAX_CACHED_KEYS + 5) {
            cache.insert(&format!("k{i}"), public());
        }
        assert_eq!(cache.keys.len(), MAX_CACHED_KEYS);
        assert!(!cache.keys.contains_key("k0"));
        assert!(cache.keys.contains_key(&format!("k{}", MAX_CACHED_KEYS + 4)));
        cache.mark_unknown("gone");
        assert!(cache.known_unknown("gone"));
        assert!(!cache.known_unknown("other"));
    }

    #[test]
    fn no_secret_in_the_payloads_debug() {
        let payload: LifecyclePayload = serde_json::from_value(json!({
            "key": "app", "clientKey": "c", "sharedSecret": "s3cr3t-value", "baseUrl": "https://x.atlassian.net",
            "productType": "jira", "eventType": "installed"
        }))
        .unwrap();
        assert!(!format!("{payload:?}").contains("s3cr3t-value"));
    }
}
