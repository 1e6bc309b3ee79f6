//! The JWT on every Jira webhook delivery to an OAuth 2.0 (3LO) app.
//!
//! Atlassian: "Webhooks registered by OAuth 2.0 apps are sent with an `Authorization: Bearer
//! <JWT>` header, signed with the app's client secret"
//! (<https://developer.atlassian.com/cloud/jira/platform/webhooks/#webhooks-authentication-for-oauth-2-0-apps>).
//! The page names the signing key, not the claims, so this verifier requires only what makes
//! the token safe to trust and checks the rest when it is there:
//!
//! - the header's `alg` is exactly `HS256` (the algorithm of an HMAC with a shared secret); `none`
//!   and every other algorithm are refused before anything else is read, so a token can never
//!   pick how it is checked;
//! - the signature is an HMAC-SHA256 of `header.payload` under the client secret, compared in
//!   constant time, before any claim is parsed;
//! - `exp` must be present and not passed (beyond [`LEEWAY_SECONDS`] of clock skew): a captured
//!   delivery cannot be replayed for ever; `nbf` and `iat`, when present, must not lie in the future;
//! - `iss`, when present, must be our client id, and `aud`, when present, must name it: only
//!   Atlassian and we hold the client secret, so a valid signature already proves the sender, and
//!   these refuse a token minted for another purpose under the same secret.
//!
//! [`verify_bytes`] is pure (time is an argument) so the fuzz target (fuzz/fuzz_targets/webhook_jwt.rs)
//! runs it on any input.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: i64 = 30;

/// Largest token looked at: a real one is a few hundred bytes.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a delivery's token was refused: a stable reason for the log line (never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtRejection {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    WrongAlgorithm,
    #[error("the token's signature does not match the client secret")]
    BadSignature,
    #[error("the token has no exp claim")]
    NoExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not this app")]
    WrongIssuer,
    #[error("the token's audience is not this app")]
    WrongAudience,
}

impl JwtRejection {
    /// The reason as one word, for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::BadSignature => "bad_signature",
            Self::NoExpiry => "no_expiry",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    pub exp: i64,
    pub iss: Option<String>,
    pub sub: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
    iss: Option<serde_json::Value>,
    aud: Option<serde_json::Value>,
    sub: Option<serde_json::Value>,
}

/// Extracts the token from an `Authorization` header value: `Bearer <token>` (scheme
/// case-insensitive, per RFC 6750).
pub fn bearer(header: Option<&str>) -> Result<&str, JwtRejection> {
    let value = header.ok_or(JwtRejection::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(JwtRejection::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(JwtRejection::Missing);
    }
    Ok(token.trim())
}

/// Verifies `token` (the bytes after `Bearer `) against the app's client secret and client id at
/// `now` (unix seconds). Never panics, whatever the input.
pub fn verify_bytes(token: &[u8], secret: &[u8], client_id: &str, now: i64) -> Result<VerifiedClaims, JwtRejection> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(JwtRejection::Malformed);
    }
    let text = std::str::from_utf8(token).map_err(|_| JwtRejection::Malformed)?;
    let mut parts = text.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtRejection::Malformed);
    };
    // The algorithm first: the token never chooses how it is checked.
    let header: Header =
        B64.decode(header).ok().and_then(|raw| serde_json::from_slice(&raw).ok()).ok_or(JwtRejection::Malformed)?;
    if header.alg != "HS256" {
        return Err(JwtRejection::WrongAlgorithm);
    }
    let signature = B64.decode(signature).map_err(|_| JwtRejection::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| JwtRejection::BadSignature)?;
    mac.update(&text.as_bytes()[..text.len() - signature_len(text)]);
    mac.verify_slice(&signature).map_err(|_| JwtRejection::BadSignature)?;

    // Signed by the holder of the client secret: now the claims may be read.
    let claims: Claims =
        B64.decode(payload).ok().and_then(|raw| serde_json::from_slice(&raw).ok()).ok_or(JwtRejection::Malformed)?;
    let exp = match claims.exp {
        None => return Err(JwtRejection::NoExpiry),
        Some(v) => seconds(&v).ok_or(JwtRejection::Malformed)?,
    };
    if now > exp.saturating_add(LEEWAY_SECONDS) {
        return Err(JwtRejection::Expired);
    }
    for not_before in [claims.nbf, claims.iat].into_iter().flatten() {
        let at = seconds(&not_before).ok_or(JwtRejection::Malformed)?;
        if at > now.saturating_add(LEEWAY_SECONDS) {
            return Err(JwtRejection::NotYetValid);
        }
    }
    let iss = match claims.iss {
        None => None,
        Some(serde_json::Value::String(iss)) if iss == client_id => Some(iss),
        Some(_) => return Err(JwtRejection::WrongIssuer),
    };
    match claims.aud {
        None => {}
        Some(serde_json::Value::String(aud)) if aud == client_id => {}
        Some(serde_json::Value::Array(auds)) if auds.iter().any(|a| a.as_str() == Some(client_id)) => {}
        Some(_) => return Err(JwtRejection::WrongAudience),
    }
    let sub = claims.sub.and_then(|s| s.as_str().map(str::to_owned));
    Ok(VerifiedClaims { exp, iss, sub })
}

/// Length of the signature part plus its dot (the signed input is everything before it).
fn signature_len(text: &str) -> usize {
    text.rsplit_once('.').map_or(0, |(_, sig)| sig.len() + 1)
}

/// A NumericDate (RFC 7519): seconds, possibly fractional.
fn seconds(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f as i64))
        }
        _ => None,
    }
}

/// Signs `claims` with HS256 under `secret`, as Jira does (for tests and the simulator's twin).
pub fn sign_hs256(claims: &serde_json::Value, secret: &[u8]) -> String {
    sign_with_header(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), claims, secret)
}

/// Signs with any header (tests use it to forge other algorithms).
pub fn sign_with_header(header: &serde_json::Value, claims: &serde_json::Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"client-secret-of-the-app";
    const CLIENT: &str = "client-id-1";
    const NOW: i64 = 1_800_000_000;

    fn claims() -> serde_json::Value {
        json!({"iss": CLIENT, "iat": NOW - 5, "exp": NOW + 180, "sub": "557058:abc"})
    }

    fn verify(token: &str) -> Result<VerifiedClaims, JwtRejection> {
        verify_bytes(token.as_bytes(), SECRET, CLIENT, NOW)
    }

    #[test]
    fn a_token_jira_signed_with_our_client_secret_is_accepted() {
        let verified = verify(&sign_hs256(&claims(), SECRET)).unwrap();
        assert_eq!(verified.exp, NOW + 180);
        assert_eq!(verified.iss.as_deref(), Some(CLIENT));
        assert_eq!(verified.sub.as_deref(), Some("557058:abc"));
        // iss and aud are optional; when aud is there it must name us.
        let bare = json!({"exp": NOW + 60, "aud": [CLIENT, "other"]});
        assert!(verify(&sign_hs256(&bare, SECRET)).is_ok());
    }

    #[test]
    fn a_token_under_another_secret_or_tampered_is_refused() {
        assert_eq!(verify(&sign_hs256(&claims(), b"other-secret")), Err(JwtRejection::BadSignature));
        let token = sign_hs256(&claims(), SECRET);
        let (head, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = B64.encode(json!({"iss": CLIENT, "exp": NOW + 99_999}).to_string());
        assert_eq!(verify(&format!("{head}.{forged}.{sig}")), Err(JwtRejection::BadSignature));
    }

    #[test]
    fn only_hs256_is_accepted_whatever_the_header_says() {
        for alg in ["none", "HS512", "RS256", "hs256", ""] {
            let token = sign_with_header(&json!({"alg": alg, "typ": "JWT"}), &claims(), SECRET);
            assert_eq!(verify(&token), Err(JwtRejection::WrongAlgorithm), "{alg}");
        }
        // The classic `none` token: no signature at all.
        let unsigned =
            format!("{}.{}.", B64.encode(json!({"alg": "none"}).to_string()), B64.encode(claims().to_string()));
        assert_eq!(verify(&unsigned), Err(JwtRejection::WrongAlgorithm));
    }

    #[test]
    fn expiry_is_required_and_checked_with_a_small_leeway() {
        let mut c = claims();
        c["exp"] = json!(NOW - LEEWAY_SECONDS - 1);
        assert_eq!(verify(&sign_hs256(&c, SECRET)), Err(JwtRejection::Expired));
        c["exp"] = json!(NOW - LEEWAY_SECONDS + 1);
        assert!(verify(&sign_hs256(&c, SECRET)).is_ok());
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(verify(&sign_hs256(&c, SECRET)), Err(JwtRejection::NoExpiry));
        let mut early = claims();
        early["nbf"] = json!(NOW + 3600);
        assert_eq!(verify(&sign_hs256(&early, SECRET)), Err(JwtRejection::NotYetValid));
    }

    #[test]
    fn another_issuer_or_audience_is_refused() {
        let mut c = claims();
        c["iss"] = json!("someone-else");
        assert_eq!(verify(&sign_hs256(&c, SECRET)), Err(JwtRejection::WrongIssuer));
        c["iss"] = json!(42);
        assert_eq!(verify(&sign_hs256(&c, SECRET)), Err(JwtRejection::WrongIssuer));
        let mut c = claims();
        c["aud"] = json!("another-app");
        assert_eq!(verify(&sign_hs256(&c, SECRET)), Err(JwtRejection::WrongAudience));
    }

    #[test]
    fn malformed_tokens_are_refused_without_a_panic() {
        for bad in ["", "a", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.", &"x".repeat(10_000)] {
            assert!(verify(bad).is_err(), "{bad}");
        }
        // Signed, but the claims are not JSON or exp is not a number.
        let odd = sign_hs256(&json!({"exp": "tomorrow"}), SECRET);
        assert_eq!(verify(&odd), Err(JwtRejection::Malformed));
    }

    #[test]
    fn the_bearer_scheme_is_required() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        for bad in [None, Some(""), Some("Basic abc"), Some("JWT abc"), Some("Bearer "), Some("abc")] {
            assert_eq!(bearer(bad), Err(JwtRejection::Missing), "{bad:?}");
        }
    }
}
