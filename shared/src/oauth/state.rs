//! The OAuth `state`: random, bound to tenant and consent target, expiring, HMAC-signed so a
//! forged one is refused before any lookup. Single use is enforced by the state store.
//!
//! Format: `base64url(json claims) "." base64url(HMAC-SHA256(key, first part))`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::domain::{ConsentTarget, TenantId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateClaims {
    /// Random id; the key of the stored pending authorization.
    pub sid: String,
    pub tenant: TenantId,
    pub target: ConsentTarget,
    /// Unix seconds.
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("the state parameter is malformed")]
    Malformed,
    #[error("the state parameter's signature does not match")]
    BadSignature,
    #[error("the state parameter has expired; start the connection again")]
    Expired,
}

pub struct StateSigner {
    key: SecretSlice<u8>,
}

impl StateSigner {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key: SecretSlice::from(key) }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        Hmac::<Sha256>::new_from_slice(self.key.expose_secret()).expect("HMAC accepts any key length")
    }

    pub fn sign(&self, claims: &StateClaims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!("{payload}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Checks the signature (in constant time) before reading anything, then the expiry.
    pub fn verify(&self, state: &str, now: OffsetDateTime) -> Result<StateClaims, StateError> {
        let (payload, signature) = state.split_once('.').ok_or(StateError::Malformed)?;
        let signature = B64.decode(signature).map_err(|_| StateError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| StateError::BadSignature)?;
        let claims: StateClaims = serde_json::from_slice(&B64.decode(payload).map_err(|_| StateError::Malformed)?)
            .map_err(|_| StateError::Malformed)?;
        if claims.exp <= now.unix_timestamp() {
            return Err(StateError::Expired);
        }
        Ok(claims)
    }
}

impl StateSigner {
    /// The digest a consent's confirmation code is stored as: HMAC-SHA256 under the
    /// deployment's key, over a prefix no state payload has (`:` is not base64url), so a code's
    /// digest is never a valid state signature and the table never holds the code itself.
    pub fn confirmation_digest(&self, code: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(b"consent-confirmation:");
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The key an app-link code is stored under (base64url HMAC-SHA256 under the deployment's key, over
    /// its own prefix): looked up by digest, so the table never holds a usable code.
    pub fn link_code_digest(&self, code: &str) -> String {
        let mut mac = self.mac();
        mac.update(b"app-link-code:");
        mac.update(code.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// A 256-bit value derived from the deployment's key for one `purpose` and one `input`
    /// (HMAC-SHA256 over `purpose ":" input`; `:` never occurs in a state payload, so no derived
    /// value is a state signature). The Data Center OAuth consent derives its PKCE verifier and
    /// the key that seals the client secret while the consent is under way from the state id,
    /// so neither is ever stored (`oauth/dc.rs`).
    pub fn derive(&self, purpose: &str, input: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(input.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `code` is the one `digest` was made from, compared in constant time.
    pub fn confirmation_matches(&self, code: &str, digest: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(b"consent-confirmation:");
        mac.update(code.as_bytes());
        mac.verify_slice(digest).is_ok()
    }
}

/// A fresh one-time confirmation code for a consent (256 random bits, base64url).
pub fn new_confirmation_code() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

/// A fresh random id for a pending authorization (128 bits).
pub fn new_state_id() -> String {
    B64.encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> StateClaims {
        StateClaims { sid: new_state_id(), tenant: TenantId::parse("acme").unwrap(), target: ConsentTarget::Jira, exp }
    }

    #[test]
    fn a_signed_state_verifies_until_it_expires() {
        let signer = StateSigner::new(b"k".repeat(32));
        let now = OffsetDateTime::now_utc();
        let c = claims(now.unix_timestamp() + 600);
        let state = signer.sign(&c);
        assert_eq!(signer.verify(&state, now), Ok(c));
        assert_eq!(signer.verify(&state, now + time::Duration::seconds(601)), Err(StateError::Expired));
    }

    #[test]
    fn forged_and_tampered_states_are_refused() {
        let signer = StateSigner::new(b"k".repeat(32));
        let other = StateSigner::new(b"x".repeat(32));
        let now = OffsetDateTime::now_utc();
        let forged = other.sign(&claims(now.unix_timestamp() + 600));
        assert_eq!(signer.verify(&forged, now), Err(StateError::BadSignature));

        let genuine = signer.sign(&claims(now.unix_timestamp() + 600));
        let (_, sig) = genuine.split_once('.').unwrap();
        let mut evil = claims(now.unix_timestamp() + 600);
        evil.tenant = TenantId::parse("victim").unwrap();
        let tampered = format!("{}.{sig}", B64.encode(serde_json::to_vec(&evil).unwrap()));
        assert_eq!(signer.verify(&tampered, now), Err(StateError::BadSignature));

        for junk in ["", "abc", "a.b.c", "!!.??"] {
            assert!(signer.verify(junk, now).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_confirmation_code_matches_only_its_own_digest_under_the_same_key() {
        let signer = StateSigner::new(b"k".repeat(32));
        let code = new_confirmation_code();
        assert!(code.len() >= 43, "256 bits in base64url");
        assert_ne!(code, new_confirmation_code());
        let digest = signer.confirmation_digest(&code);
        assert!(!digest.windows(code.len()).any(|w| w == code.as_bytes()));
        assert!(signer.confirmation_matches(&code, &digest));
        assert!(!signer.confirmation_matches(&new_confirmation_code(), &digest));
        assert!(!signer.confirmation_matches("", &digest));
        assert!(!StateSigner::new(b"x".repeat(32)).confirmation_matches(&code, &digest));
    }
}
