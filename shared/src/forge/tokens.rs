//! App system tokens: what a remote calls Atlassian's APIs with, as the app's bot user.
//!
//! Atlassian, "Calling Atlassian app APIs from a remote"
//! (<https://developer.atlassian.com/platform/forge/remote/calling-product-apis/>): with
//! `auth.appSystemToken: true` on the manifest's endpoint, a request from Forge carries an
//! `x-forge-oauth-system` header with a token for Atlassian's APIs; "both of these tokens are
//! encoded in JWT. The exp claim in their payload represents the expiration time."
//!
//! Forge hands us a token only when it invokes us, and a publish started by the SaaS comes
//! between invocations: so the latest token of each installation is kept in Secrets Manager
//! (KMS-encrypted, like every credential) under `{secret_prefix}apps/forge/{digest of the
//! installation id}`, with its expiry, and replaced only by one that lasts longer. The app's
//! scheduled trigger invokes us often enough that one is always valid.
//!
//! The token is Atlassian's, for Atlassian: we read its `exp` only to know when it stops
//! working, never trust anything else in it, and never log it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::store::{CredentialStore, StoreError};

/// The request header that carries the app system token.
pub const SYSTEM_TOKEN_HEADER: &str = "x-forge-oauth-system";

/// A token whose `exp` is further ahead than this is refused as not Forge's (real ones last
/// minutes to hours): a replayed invocation cannot pin a token for longer than this.
pub const MAX_LIFETIME_SECONDS: i64 = 24 * 3600;

/// Largest token header accepted.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The secret of an installation's app system token.
pub fn secret_name(prefix: &str, installation_id: &str) -> String {
    let digest = Sha256::digest(installation_id.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}apps/forge/{hex}")
}

/// An app system token and when it expires (unix seconds).
#[derive(Clone)]
pub struct AppSystemToken {
    token: SecretString,
    expires_at: i64,
}

impl std::fmt::Debug for AppSystemToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSystemToken").field("token", &"[redacted]").field("expires_at", &self.expires_at).finish()
    }
}

/// Why a header's token was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SystemTokenError {
    #[error("the app system token is not a JWT with an exp")]
    Malformed,
    #[error("the app system token's exp is implausibly far ahead")]
    TooLong,
}

impl AppSystemToken {
    /// The token of an `x-forge-oauth-system` header (a bare JWT, or `Bearer <JWT>`), its expiry
    /// read from its `exp`.
    pub fn from_header(value: &str, now: i64) -> Result<Self, SystemTokenError> {
        let value = value.trim();
        let token = match value.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => value[7..].trim(),
            _ => value,
        };
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SystemTokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(SystemTokenError::Malformed);
        };
        let raw = B64.decode(payload).map_err(|_| SystemTokenError::Malformed)?;
        let claims: crate::rs256::Claims = serde_json::from_slice(&raw).map_err(|_| SystemTokenError::Malformed)?;
        let expires_at = crate::rs256::seconds(&claims, "exp").ok_or(SystemTokenError::Malformed)?;
        if expires_at > now.saturating_add(MAX_LIFETIME_SECONDS) {
            return Err(SystemTokenError::TooLong);
        }
        Ok(Self { token: SecretString::from(token.to_owned()), expires_at })
    }

    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// Usable at `now` for a request of up to `margin` seconds.
    pub fn valid_at(&self, now: i64, margin: i64) -> bool {
        self.expires_at > now.saturating_add(margin)
    }

    fn to_secret(&self) -> SecretString {
        SecretString::from(
            serde_json::json!({"type": "forge_app_system_token", "token": self.token.expose_secret(),
                "expires_at": self.expires_at})
            .to_string(),
        )
    }

    fn from_secret(secret: &SecretString) -> Result<Self, StoreError> {
        #[derive(serde::Deserialize)]
        struct Stored {
            token: String,
            expires_at: i64,
        }
        let stored: Stored = serde_json::from_str(secret.expose_secret())
            .map_err(|_| StoreError::Corrupt("an app system token secret is unreadable".into()))?;
        Ok(Self { token: SecretString::from(stored.token), expires_at: stored.expires_at })
    }
}

/// The installation's token we hold, if any (expired or not).
pub async fn held(credentials: &dyn CredentialStore, secret_name: &str) -> Result<Option<AppSystemToken>, StoreError> {
    match credentials.get(secret_name).await? {
        Some(stored) => AppSystemToken::from_secret(&stored.value).map(Some),
        None => Ok(None),
    }
}

/// Keeps `token` when it lasts longer than the one held (or none is): `true` when written.
pub async fn keep_fresher(
    credentials: &dyn CredentialStore,
    secret_name: &str,
    token: &AppSystemToken,
) -> Result<bool, StoreError> {
    // Two invocations racing may both write; each wrote a valid token, and the next one
    // restores the longest-lived.
    let fresher = match held(credentials, secret_name).await {
        Ok(Some(current)) => token.expires_at > current.expires_at,
        Ok(None) => true,
        // An unreadable secret is replaced by a readable one.
        Err(StoreError::Corrupt(_)) => true,
        Err(e) => return Err(e),
    };
    if fresher {
        credentials.put(secret_name, &token.to_secret()).await?;
    }
    Ok(fresher)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn jwt_with_exp(exp: i64) -> String {
        format!("{}.{}.sig", B64.encode(r#"{"alg":"RS256"}"#), B64.encode(format!(r#"{{"exp":{exp}}}"#)))
    }

    #[tokio::test]
    async fn only_a_longer_lived_token_replaces_the_one_held() {
        let store = crate::store::memory::MemoryCredentials::default();
        let name = secret_name("bridge/", "ari:cloud:ecosystem::installation/1");
        assert!(name.starts_with("bridge/apps/forge/") && !name.contains("installation"), "{name}");
        let now = 1_800_000_000;
        let a = AppSystemToken::from_header(&jwt_with_exp(now + 600), now).unwrap();
        assert!(keep_fresher(&store, &name, &a).await.unwrap());
        let older = AppSystemToken::from_header(&format!("Bearer {}", jwt_with_exp(now + 300)), now).unwrap();
        assert!(!keep_fresher(&store, &name, &older).await.unwrap());
        assert_eq!(held(&store, &name).await.unwrap().unwrap().expires_at(), now + 600);
        let newer = AppSystemToken::from_header(&jwt_with_exp(now + 900), now).unwrap();
        assert!(keep_fresher(&store, &name, &newer).await.unwrap());
        let kept = held(&store, &name).await.unwrap().unwrap();
        assert_eq!(kept.token().expose_secret(), &jwt_with_exp(now + 900));
        assert!(kept.valid_at(now, 60) && !kept.valid_at(now + 900, 0));
        assert!(!format!("{kept:?}").contains(&jwt_with_exp(now + 900)));
    }

    #[test]
    fn tokens_without_an_exp_or_lasting_too_long_are_not_kept() {
        let now = 1_800_000_000;
        for bad in ["", "abc", "a.b", "a.!!.c", "a.e30.c", "a b.c.d"] {
            assert_eq!(AppSystemToken::from_header(bad, now).unwrap_err(), SystemTokenError::Malformed, "{bad}");
        }
        assert_eq!(
            AppSystemToken::from_header(&jwt_with_exp(now + MAX_LIFETIME_SECONDS + 1), now).unwrap_err(),
            SystemTokenError::TooLong
        );
    }
}
