//! RS256 (RSASSA-PKCS1-v1_5 with SHA-256) JWT signatures: Connect install JWTs (keys as PEM from
//! Atlassian's install-key CDN) and Forge Invocation Tokens (keys from Forge's JWKS). One parser
//! for the compact form, so that what a token may choose is checked in one place: the algorithm
//! must be RS256 and the key is looked up by `kid`, never taken from the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::{BigUint, RsaPublicKey};
use sha2::Sha256;

/// Largest token looked at: real ones are a few kilobytes at most (a FIT carries its context).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Smallest modulus accepted (Atlassian's keys are 2048-bit or larger).
const MIN_MODULUS_BITS: usize = 2048;

/// Why a token or key was refused: a stable reason, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rs256Error {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token's algorithm is not RS256")]
    WrongAlgorithm,
    #[error("the token names no key (kid)")]
    NoKeyId,
    #[error("the key is not an RSA public key of at least 2048 bits")]
    BadKey,
    #[error("the token's signature does not verify with the key it names")]
    BadSignature,
}

/// An RSA public key that verifies RS256 signatures.
#[derive(Clone, Debug)]
pub struct RsaKey(VerifyingKey<Sha256>);

impl RsaKey {
    /// A `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) PEM, as the install-key CDN serves.
    pub fn from_pem(pem: &str) -> Result<Self, Rs256Error> {
        Self::checked(RsaPublicKey::from_public_key_pem(pem.trim()).map_err(|_| Rs256Error::BadKey)?)
    }

    /// A JWK's base64url `n` and `e`.
    pub fn from_jwk(n: &str, e: &str) -> Result<Self, Rs256Error> {
        let n = BigUint::from_bytes_be(&B64.decode(n.trim_end_matches('=')).map_err(|_| Rs256Error::BadKey)?);
        let e = BigUint::from_bytes_be(&B64.decode(e.trim_end_matches('=')).map_err(|_| Rs256Error::BadKey)?);
        Self::checked(RsaPublicKey::new(n, e).map_err(|_| Rs256Error::BadKey)?)
    }

    fn checked(key: RsaPublicKey) -> Result<Self, Rs256Error> {
        use rsa::traits::PublicKeyParts;
        if key.n().bits() < MIN_MODULUS_BITS {
            return Err(Rs256Error::BadKey);
        }
        Ok(Self(VerifyingKey::new(key)))
    }

    fn verifies(&self, signed: &[u8], signature: &[u8]) -> bool {
        Signature::try_from(signature).is_ok_and(|sig| self.0.verify(signed, &sig).is_ok())
    }
}

/// A JWT's JSON object (header or claims), read by name.
pub type Claims = serde_json::Map<String, serde_json::Value>;

/// A compact RS256 JWS split and its header read, not yet verified: only the `kid` can be had
/// from it, to find the key by; the claims come only out of [`Unverified::verify`].
pub struct Unverified<'t> {
    signed: &'t str,
    payload: &'t str,
    signature: Vec<u8>,
    kid: String,
}

impl<'t> Unverified<'t> {
    /// Splits `token` and checks its header: `alg` must be RS256 and a `kid` must be named.
    pub fn parse(token: &'t str) -> Result<Self, Rs256Error> {
        let (signed, header, payload, signature) =
            split_compact(token, MAX_TOKEN_BYTES).ok_or(Rs256Error::Malformed)?;
        let header: Claims = decode_json(header)?;
        if header.get("alg").and_then(serde_json::Value::as_str) != Some("RS256") {
            return Err(Rs256Error::WrongAlgorithm);
        }
        let kid = match header.get("kid").and_then(serde_json::Value::as_str) {
            Some(kid) if !kid.is_empty() && kid.len() <= 256 => kid.to_owned(),
            _ => return Err(Rs256Error::NoKeyId),
        };
        let signature = B64.decode(signature).map_err(|_| Rs256Error::Malformed)?;
        Ok(Self { signed, payload, signature, kid })
    }

    /// The key id the header names (untrusted: only a key we fetched ourselves can verify).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The claims, once the signature verifies with `key`.
    pub fn verify(self, key: &RsaKey) -> Result<Claims, Rs256Error> {
        if !key.verifies(self.signed.as_bytes(), &self.signature) {
            return Err(Rs256Error::BadSignature);
        }
        decode_json(self.payload)
    }
}

/// A compact JWS's parts — `(signed input, header, payload, signature)`, base64url still — when
/// it is one (exactly three parts) of at most `max` bytes: the one split of every JWT we verify.
pub(crate) fn split_compact(token: &str, max: usize) -> Option<(&str, &str, &str, &str)> {
    if token.is_empty() || token.len() > max {
        return None;
    }
    let (signed, signature) = token.rsplit_once('.')?;
    let (header, payload) = signed.split_once('.')?;
    (!payload.contains('.')).then_some((signed, header, payload, signature))
}

fn decode_json(part: &str) -> Result<Claims, Rs256Error> {
    let raw = B64.decode(part).map_err(|_| Rs256Error::Malformed)?;
    serde_json::from_slice(&raw).map_err(|_| Rs256Error::Malformed)
}

/// A NumericDate claim (RFC 7519: seconds, possibly fractional), or `None` when absent or not a
/// number.
pub fn seconds(claims: &Claims, name: &str) -> Option<i64> {
    let number = claims.get(name)?.as_number()?;
    number.as_i64().or_else(|| number.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::signature::{SignatureEncoding, Signer};

    /// A 2048-bit test key (generated for these tests only).
    pub(crate) fn test_key() -> rsa::RsaPrivateKey {
        rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../tests/fixtures/rs256-test-key.pem")).unwrap()
    }

    fn token(key: &rsa::RsaPrivateKey, header: serde_json::Value, claims: serde_json::Value) -> String {
        let signed = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let signature = SigningKey::<Sha256>::new(key.clone()).sign(signed.as_bytes()).to_vec();
        format!("{signed}.{}", B64.encode(signature))
    }

    #[test]
    fn a_token_signed_by_the_key_it_names_verifies_and_nothing_else_does() {
        let private = test_key();
        let pem = private.to_public_key().to_public_key_pem(Default::default()).unwrap();
        let key = RsaKey::from_pem(&pem).unwrap();
        let good = token(&private, serde_json::json!({"alg": "RS256", "kid": "k1"}), serde_json::json!({"iss": "x"}));
        let parsed = Unverified::parse(&good).unwrap();
        assert_eq!(parsed.kid(), "k1");
        assert_eq!(parsed.verify(&key).unwrap()["iss"], "x");

        // A changed payload, HS256 or none, no kid, garbage: refused with their reasons.
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = format!("{head}.{}.{sig}", B64.encode(r#"{"iss":"y"}"#));
        assert_eq!(Unverified::parse(&forged).unwrap().verify(&key).unwrap_err(), Rs256Error::BadSignature);
        for alg in ["HS256", "none", "RS512"] {
            let t = token(&private, serde_json::json!({"alg": alg, "kid": "k1"}), serde_json::json!({}));
            assert_eq!(Unverified::parse(&t).err(), Some(Rs256Error::WrongAlgorithm), "{alg}");
        }
        let t = token(&private, serde_json::json!({"alg": "RS256"}), serde_json::json!({}));
        assert_eq!(Unverified::parse(&t).err(), Some(Rs256Error::NoKeyId));
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(Unverified::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jwk_components_make_the_same_key_and_small_keys_are_refused() {
        use rsa::traits::PublicKeyParts;
        let public = test_key().to_public_key();
        let key =
            RsaKey::from_jwk(&B64.encode(public.n().to_bytes_be()), &B64.encode(public.e().to_bytes_be())).unwrap();
        let private = test_key();
        let t = token(&private, serde_json::json!({"alg": "RS256", "kid": "a"}), serde_json::json!({"n": 1}));
        assert!(Unverified::parse(&t).unwrap().verify(&key).is_ok());
        assert_eq!(RsaKey::from_jwk("AQAB", "AQAB").unwrap_err(), Rs256Error::BadKey);
        assert_eq!(
            RsaKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").unwrap_err(),
            Rs256Error::BadKey
        );
    }
}
