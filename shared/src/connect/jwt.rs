//! Connect JWTs signed with an installation's shared secret (HS256): verifying the ones the product
//! sends us, signing the ones we send it.
//!
//! Atlassian, "Understanding JWT for Connect apps"
//! (<https://developer.atlassian.com/cloud/jira/platform/understanding-jwt-for-connect-apps/>):
//!
//! - a request carries `Authorization: JWT <token>` (or a `jwt` query parameter for iframes);
//! - the token's `iss` is the installation's `clientKey` on requests to the app, and the app's key
//!   on requests the app makes; the app finds the shared secret by that `iss`, then checks the
//!   signature with it ("Decode the JWT token, without verification ... look up the sharedSecret
//!   for the clientKey ... verify the signature");
//! - `iat` and `exp` are required (refused without them here), and Atlassian's own tokens last three minutes (`exp` = `iat` +
//!   180 s), which is what [`sign`] issues;
//! - `qsh` is the hash of the canonical request ([`super::qsh`]), or [`CONTEXT_QSH`] for context
//!   tokens, which only routes called by the app's own front end accept.
//!
//! So that no claim can be used before the signature is checked, [`peek_issuer`] returns only the
//! issuer (to look the secret up by), and the claims come only out of [`verify`], as a
//! [`VerifiedClaims`] that nothing else can build. The algorithm must be HS256 (`none` and every
//! other value refused before the signature is even decoded), the signature is compared in
//! constant time, and no error or `Debug` output holds a token or a secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sha2::Sha256;

use super::qsh::{CONTEXT_QSH, Request};
use crate::error::ApiError;

/// Clock skew tolerated on `exp`, `iat` and `nbf`, in seconds: the one tolerance of every JWT we
/// verify (30 s).
pub use crate::webhook_jwt::LEEWAY_SECONDS;

/// Lifetime of the tokens we sign, in seconds: Atlassian's three minutes.
pub const TOKEN_LIFETIME_SECONDS: i64 = 180;

/// Why a Connect JWT was refused: a stable reason for logs (never the token or the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectJwtError {
    #[error("no Connect JWT")]
    Missing,
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    WrongAlgorithm,
    #[error("the token's signature does not match the installation's shared secret")]
    BadSignature,
    #[error("the token has no iss claim")]
    NoIssuer,
    #[error("the token's issuer is not the installation it was checked for")]
    WrongIssuer,
    #[error("the token has no exp claim")]
    NoExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token has no iat claim")]
    NoIssuedAt,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token has no qsh claim")]
    NoQsh,
    #[error("the token's qsh does not match the request")]
    QshMismatch,
    #[error("a context token (context-qsh) is not accepted on this route")]
    ContextQshRefused,
}

impl ConnectJwtError {
    /// The reason as one word, for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::BadSignature => "bad_signature",
            Self::NoIssuer => "no_issuer",
            Self::WrongIssuer => "wrong_issuer",
            Self::NoExpiry => "no_expiry",
            Self::Expired => "expired",
            Self::NoIssuedAt => "no_issued_at",
            Self::IssuedInFuture => "issued_in_future",
            Self::NoQsh => "no_qsh",
            Self::QshMismatch => "qsh_mismatch",
            Self::ContextQshRefused => "context_qsh_refused",
        }
    }
}

/// Every refusal is a 401 without detail: the reason goes to the log, not to the caller
/// (Atlassian: "apps that detect a bad QSH claim should respond with HTTP status 401").
impl From<ConnectJwtError> for ApiError {
    fn from(_: ConnectJwtError) -> Self {
        ApiError::unauthorized()
    }
}

/// An installation's `clientKey` (the `iss` of the product's tokens). Not a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(String);

impl ClientKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An installation's `sharedSecret` (from the `installed` lifecycle event).
#[derive(Clone)]
pub struct SharedSecret(SecretString);

impl SharedSecret {
    pub fn new(secret: SecretString) -> Self {
        Self(secret)
    }

    fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl From<String> for SharedSecret {
    fn from(secret: String) -> Self {
        Self(SecretString::from(secret))
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret([redacted])")
    }
}

/// Which `qsh` a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QshRule {
    /// Only the hash of this very request (every route the product calls).
    Request,
    /// The hash of this request, or [`CONTEXT_QSH`] (routes the app's own front end calls with a
    /// token from `AP.context.getToken()`).
    RequestOrContext,
}

/// What the request being verified must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The installation whose secret is passed in: the token's `iss` must be it.
    pub issuer: &'a ClientKey,
    /// The request as it arrived.
    pub request: &'a Request,
    /// Our base URL from the app descriptor: its path is the context path.
    pub base_url: &'a str,
    pub qsh: QshRule,
}

/// The claims of a token whose signature, issuer, times and qsh were checked. Only [`verify`]
/// makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    issuer: ClientKey,
    subject: Option<String>,
    issued_at: i64,
    expires_at: i64,
    context_token: bool,
    context: Option<serde_json::Value>,
}

impl VerifiedClaims {
    pub fn issuer(&self) -> &ClientKey {
        &self.issuer
    }

    /// The user's account id, when the request is made for a user.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Whether the token was a context token (`qsh` = `context-qsh`) rather than bound to the
    /// request.
    pub fn is_context_token(&self) -> bool {
        self.context_token
    }

    /// The `context` claim (user, product context), when the product sent one.
    pub fn context(&self) -> Option<&serde_json::Value> {
        self.context.as_ref()
    }
}

/// The token of an `Authorization` header value `JWT <token>` (scheme case-insensitive).
pub fn token_from_header(header: Option<&str>) -> Result<&str, ConnectJwtError> {
    let value = header.map(str::trim).unwrap_or_default();
    match value.get(..4) {
        Some(scheme) if scheme.eq_ignore_ascii_case("jwt ") && !value[4..].trim().is_empty() => Ok(value[4..].trim()),
        _ => Err(ConnectJwtError::Missing),
    }
}

/// A JWT header or claims set: a JSON object, read by name.
type Claims = serde_json::Map<String, serde_json::Value>;

/// Largest token looked at: a real one is well under a kilobyte.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The three parts of a compact JWS, and the signed input (`header.payload`).
struct Parts<'t> {
    signed: &'t str,
    header: &'t str,
    payload: &'t str,
    signature: &'t str,
}

fn split(token: &str) -> Result<Parts<'_>, ConnectJwtError> {
    let (signed, header, payload, signature) =
        crate::rs256::split_compact(token, MAX_TOKEN_BYTES).ok_or(ConnectJwtError::Malformed)?;
    Ok(Parts { signed, header, payload, signature })
}

fn decode_json<T: DeserializeOwned>(part: &str) -> Result<T, ConnectJwtError> {
    let raw = B64.decode(part).map_err(|_| ConnectJwtError::Malformed)?;
    serde_json::from_slice(&raw).map_err(|_| ConnectJwtError::Malformed)
}

/// The unverified `iss` of a token, to look the installation's shared secret up by. Nothing else
/// of the token is returned: its claims come only out of [`verify`].
pub fn peek_issuer(token: &str) -> Result<ClientKey, ConnectJwtError> {
    let parts = split(token)?;
    let claims: Claims = decode_json(parts.payload)?;
    match claims.get("iss") {
        Some(serde_json::Value::String(iss)) if !iss.is_empty() => Ok(ClientKey(iss.clone())),
        None => Err(ConnectJwtError::NoIssuer),
        Some(_) => Err(ConnectJwtError::Malformed),
    }
}

/// Verifies a Connect JWT against the installation's shared secret and the request it came with,
/// at `now` (unix seconds). Never panics, whatever the input.
pub fn verify(
    token: &str,
    secret: &SharedSecret,
    expected: &Expected<'_>,
    now: i64,
) -> Result<VerifiedClaims, ConnectJwtError> {
    let parts = split(token)?;
    // The algorithm first: the token never chooses how it is checked.
    let header: Claims = decode_json(parts.header)?;
    if header.get("alg").and_then(serde_json::Value::as_str) != Some("HS256") {
        return Err(ConnectJwtError::WrongAlgorithm);
    }
    let signature = B64.decode(parts.signature).map_err(|_| ConnectJwtError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).map_err(|_| ConnectJwtError::BadSignature)?;
    mac.update(parts.signed.as_bytes());
    mac.verify_slice(&signature).map_err(|_| ConnectJwtError::BadSignature)?;

    // Signed by a holder of the shared secret: now the claims may be read.
    let claims: Claims = decode_json(parts.payload)?;
    let issuer = match claims.get("iss") {
        None => return Err(ConnectJwtError::NoIssuer),
        Some(serde_json::Value::String(iss)) if iss == expected.issuer.as_str() => ClientKey(iss.clone()),
        Some(_) => return Err(ConnectJwtError::WrongIssuer),
    };
    let expires_at = seconds(claims.get("exp").ok_or(ConnectJwtError::NoExpiry)?)?;
    if now > expires_at.saturating_add(LEEWAY_SECONDS) {
        return Err(ConnectJwtError::Expired);
    }
    let issued_at = seconds(claims.get("iat").ok_or(ConnectJwtError::NoIssuedAt)?)?;
    let not_before = claims.get("nbf").map(seconds).transpose()?;
    if [Some(issued_at), not_before].into_iter().flatten().any(|at| at > now.saturating_add(LEEWAY_SECONDS)) {
        return Err(ConnectJwtError::IssuedInFuture);
    }
    let qsh = claims.get("qsh").ok_or(ConnectJwtError::NoQsh)?.as_str().ok_or(ConnectJwtError::Malformed)?;
    let context_token = qsh == CONTEXT_QSH;
    if context_token {
        if expected.qsh != QshRule::RequestOrContext {
            return Err(ConnectJwtError::ContextQshRefused);
        }
    } else if qsh != expected.request.qsh(expected.base_url) {
        return Err(ConnectJwtError::QshMismatch);
    }
    let subject = claims.get("sub").and_then(serde_json::Value::as_str).map(str::to_owned);
    let context = claims.get("context").cloned();
    Ok(VerifiedClaims { issuer, subject, issued_at, expires_at, context_token, context })
}

/// A NumericDate (RFC 7519): seconds, possibly fractional.
fn seconds(value: &serde_json::Value) -> Result<i64, ConnectJwtError> {
    let number = value.as_number().ok_or(ConnectJwtError::Malformed)?;
    number
        .as_i64()
        .or_else(|| number.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f as i64))
        .ok_or(ConnectJwtError::Malformed)
}

/// The `Authorization` header value (`JWT <token>`) for one request of ours to an installation:
/// HS256 under its shared secret, `iss` = our app key, `iat` = `now`, `exp` = `now` + 180 s, `qsh`
/// of `request` under the installation's `base_url` (whose path, e.g. `/wiki`, is the context path).
pub fn sign(app_key: &str, secret: &SharedSecret, request: &Request, base_url: &str, now: i64) -> SecretString {
    let claims = serde_json::json!({
        "iss": app_key,
        "iat": now,
        "exp": now.saturating_add(TOKEN_LIFETIME_SECONDS),
        "qsh": request.qsh(base_url),
    });
    let header = serde_json::json!({"typ": "JWT", "alg": "HS256"});
    let signed = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).expect("HMAC accepts any key length");
    mac.update(signed.as_bytes());
    SecretString::from(format!("JWT {signed}.{}", B64.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::webhook_jwt::sign_with_header;

    const NOW: i64 = 1_800_000_000;
    const BASE: &str = "https://bridge.example.com/connect";

    fn secret() -> SharedSecret {
        SharedSecret::from("installation-shared-secret-0123456789".to_owned())
    }

    fn client() -> ClientKey {
        ClientKey::new("client-key-of-the-site")
    }

    fn request() -> Request {
        Request::new("POST", "/connect/webhook/issue", "a=1&b=x+y")
    }

    fn claims() -> serde_json::Value {
        json!({"iss": client().as_str(), "iat": NOW - 5, "exp": NOW + 175, "qsh": request().qsh(BASE), "sub": "557058:abc"})
    }

    fn token(claims: &serde_json::Value) -> String {
        sign_with_header(&json!({"alg": "HS256", "typ": "JWT"}), claims, secret().bytes())
    }

    fn check(token: &str, rule: QshRule) -> Result<VerifiedClaims, ConnectJwtError> {
        let (client, request) = (client(), request());
        verify(token, &secret(), &Expected { issuer: &client, request: &request, base_url: BASE, qsh: rule }, NOW)
    }

    #[test]
    fn a_token_signed_for_this_request_round_trips() {
        let header = sign(client().as_str(), &secret(), &request(), BASE, NOW);
        let token = token_from_header(Some(header.expose_secret())).unwrap();
        assert_eq!(peek_issuer(token), Ok(client()));
        let verified = check(token, QshRule::Request).unwrap();
        assert_eq!(verified.issuer(), &client());
        assert_eq!((verified.issued_at(), verified.expires_at()), (NOW, NOW + TOKEN_LIFETIME_SECONDS));
        assert!(!verified.is_context_token());
        // The claims the product sends are read back.
        let verified = check(&token_of_claims(), QshRule::Request).unwrap();
        assert_eq!(verified.subject(), Some("557058:abc"));
    }

    fn token_of_claims() -> String {
        token(&claims())
    }

    #[test]
    fn the_header_is_jwt_scheme_only() {
        assert_eq!(token_from_header(Some("jwt a.b.c")), Ok("a.b.c"));
        assert_eq!(token_from_header(Some("Bearer a.b.c")), Err(ConnectJwtError::Missing));
        assert_eq!(token_from_header(Some("JWT ")), Err(ConnectJwtError::Missing));
        assert_eq!(token_from_header(None), Err(ConnectJwtError::Missing));
    }

    #[test]
    fn only_hs256_is_accepted() {
        for alg in ["none", "None", "HS384", "HS512", "RS256", "hs256", ""] {
            let forged = sign_with_header(&json!({"alg": alg}), &claims(), secret().bytes());
            assert_eq!(check(&forged, QshRule::Request), Err(ConnectJwtError::WrongAlgorithm), "{alg}");
        }
        let unsigned = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), B64.encode(claims().to_string()));
        assert_eq!(check(&unsigned, QshRule::Request), Err(ConnectJwtError::WrongAlgorithm));
    }

    #[test]
    fn a_wrong_secret_or_a_tampered_token_is_refused() {
        let other = sign_with_header(&json!({"alg": "HS256"}), &claims(), b"another-installation-secret");
        assert_eq!(check(&other, QshRule::Request), Err(ConnectJwtError::BadSignature));
        let good = token_of_claims();
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut forged = claims();
        forged["exp"] = json!(NOW + 99_999);
        let forged = format!("{head}.{}.{sig}", B64.encode(forged.to_string()));
        assert_eq!(check(&forged, QshRule::Request), Err(ConnectJwtError::BadSignature));
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(check(junk, QshRule::Request), Err(ConnectJwtError::Malformed), "{junk:.20}");
        }
    }

    #[test]
    fn expiry_and_issue_time_are_required_and_checked_with_a_small_leeway() {
        let with = |field: &str, value: serde_json::Value| {
            let mut c = claims();
            c[field] = value;
            check(&token(&c), QshRule::Request)
        };
        assert_eq!(with("exp", json!(NOW - LEEWAY_SECONDS - 1)), Err(ConnectJwtError::Expired));
        assert!(with("exp", json!(NOW - LEEWAY_SECONDS + 1)).is_ok());
        assert_eq!(with("exp", json!("tomorrow")), Err(ConnectJwtError::Malformed));
        assert_eq!(with("iat", json!(NOW + LEEWAY_SECONDS + 1)), Err(ConnectJwtError::IssuedInFuture));
        assert!(with("iat", json!(NOW + LEEWAY_SECONDS - 1)).is_ok());
        assert_eq!(with("nbf", json!(NOW + 3600)), Err(ConnectJwtError::IssuedInFuture));
        let without = |field: &str| {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(field);
            check(&token(&c), QshRule::Request)
        };
        assert_eq!(without("exp"), Err(ConnectJwtError::NoExpiry));
        assert_eq!(without("iat"), Err(ConnectJwtError::NoIssuedAt));
        assert_eq!(without("iss"), Err(ConnectJwtError::NoIssuer));
        assert_eq!(without("qsh"), Err(ConnectJwtError::NoQsh));
    }

    #[test]
    fn another_issuer_is_refused_even_under_the_right_secret() {
        let mut c = claims();
        c["iss"] = json!("another-client-key");
        let other = token(&c);
        assert_eq!(peek_issuer(&other), Ok(ClientKey::new("another-client-key")));
        assert_eq!(check(&other, QshRule::Request), Err(ConnectJwtError::WrongIssuer));
        c["iss"] = json!(42);
        assert_eq!(check(&token(&c), QshRule::Request), Err(ConnectJwtError::WrongIssuer));
        assert_eq!(peek_issuer(&token(&c)), Err(ConnectJwtError::Malformed));
    }

    #[test]
    fn a_qsh_of_another_request_is_refused() {
        for other in [
            Request::new("GET", "/connect/webhook/issue", "a=1&b=x+y"),
            Request::new("POST", "/connect/webhook/other", "a=1&b=x+y"),
            Request::new("POST", "/connect/webhook/issue", "a=2&b=x+y"),
            Request::new("POST", "/connect/webhook/issue", "a=1"),
            Request::new("POST", "/connect/webhook/issue", "a=1&b=x+y&c=3"),
        ] {
            let mut c = claims();
            c["qsh"] = json!(other.qsh(BASE));
            assert_eq!(check(&token(&c), QshRule::Request), Err(ConnectJwtError::QshMismatch));
        }
        // The same request under another context path hashes differently too.
        let mut c = claims();
        c["qsh"] = json!(request().qsh(""));
        assert_eq!(check(&token(&c), QshRule::Request), Err(ConnectJwtError::QshMismatch));
        // Reordered parameters and a jwt parameter are the same request.
        c["qsh"] = json!(Request::new("post", "/connect/webhook/issue/", "b=x%20y&jwt=t&a=1").qsh(BASE));
        assert!(check(&token(&c), QshRule::Request).is_ok());
    }

    #[test]
    fn a_context_token_only_where_the_route_allows_it() {
        let mut c = claims();
        c["qsh"] = json!(CONTEXT_QSH);
        assert_eq!(check(&token(&c), QshRule::Request), Err(ConnectJwtError::ContextQshRefused));
        let verified = check(&token(&c), QshRule::RequestOrContext).unwrap();
        assert!(verified.is_context_token());
        // A request-bound token is still fine on such a route.
        assert!(!check(&token_of_claims(), QshRule::RequestOrContext).unwrap().is_context_token());
    }

    #[test]
    fn no_secret_or_token_in_debug_or_errors() {
        let secret = secret();
        assert_eq!(format!("{secret:?}"), "SharedSecret([redacted])");
        let header = sign("app-key", &secret, &request(), BASE, NOW);
        let token = header.expose_secret().trim_start_matches("JWT ").to_owned();
        assert!(!format!("{header:?}").contains(&token));
        let err = check(&token, QshRule::Request).unwrap_err();
        for shown in [format!("{err:?}"), err.to_string(), err.code().to_owned()] {
            assert!(!shown.contains(&token) && !shown.contains("installation-shared-secret"), "{shown}");
        }
        assert_eq!(ApiError::from(err).status(), lambda_http::http::StatusCode::UNAUTHORIZED);
    }
}
