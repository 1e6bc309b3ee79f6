//! The keys that sign Forge Invocation Tokens, from Forge's JWKS, cached per instance.
//!
//! Atlassian, "Forge remote essentials" / "Verifying remote requests"
//! (<https://developer.atlassian.com/platform/forge/forge-remote-invocation-contract>): a remote
//! verifies the FIT's RS256 signature with the key its `kid` names in the JWKS Forge publishes
//! (`https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json`, our `forge_jwks_url`).
//!
//! Rotation: a token naming a `kid` we do not hold makes us fetch the JWKS again, once. The `kid`
//! comes from the token's header before any signature is checked, so anyone can send made-up
//! ones: a refetch happens at most once per [`REFETCH_COOL_DOWN`] (as jose's
//! `createRemoteJWKSet` `cooldownDuration`), and a flood of unknown kids costs the JWKS one
//! request per cool-down, not one per request. Keys also age out after [`MAX_AGE`], so a key
//! Forge withdrew stops verifying within that time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use url::Url;

use crate::atlassian::{Credentials, Transport};
use crate::rs256::RsaKey;

/// Least time between two fetches caused by an unknown `kid`.
pub const REFETCH_COOL_DOWN: Duration = Duration::from_secs(30);
/// A fetched key set is used this long before it is fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// Longest wait for the JWKS (Forge gives an event 5 s in all).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Most keys kept from one JWKS (Forge publishes a couple).
const MAX_KEYS: usize = 32;

/// Why no key could be had for a `kid`: a stable reason, never a key or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the JWKS names no such key")]
    UnknownKey,
    #[error("the JWKS could not be fetched: {0}")]
    Unavailable(String),
}

/// Where the key set comes from (the bridge's Transport in production, a fake in tests).
#[async_trait::async_trait]
pub trait JwksSource: Send + Sync {
    async fn fetch(&self) -> Result<serde_json::Value, String>;
}

/// Fetches the JWKS through the bridge's transport (egress guard, timeouts, no redirects).
pub struct TransportSource {
    pub transport: Transport,
    pub url: Url,
}

#[async_trait::async_trait]
impl JwksSource for TransportSource {
    async fn fetch(&self) -> Result<serde_json::Value, String> {
        // Forge waits 5 s for an event: a slow CDN must not eat that (the transport would retry).
        let fetch = self.transport.get_json(self.url.clone(), &Credentials::Anonymous);
        match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())),
        }
    }
}

#[derive(Default)]
struct Held {
    keys: HashMap<String, RsaKey>,
    fetched_at: Option<Instant>,
}

/// The instance's cache of Forge's signing keys.
pub struct JwksCache {
    source: Box<dyn JwksSource>,
    held: tokio::sync::Mutex<Held>,
}

impl JwksCache {
    pub fn new(source: Box<dyn JwksSource>) -> Self {
        Self { source, held: tokio::sync::Mutex::new(Held::default()) }
    }

    /// Through the transport, from `url`.
    pub fn from_url(transport: Transport, url: Url) -> Self {
        Self::new(Box::new(TransportSource { transport, url }))
    }

    /// The key `kid` names.
    pub async fn key(&self, kid: &str) -> Result<RsaKey, JwksError> {
        self.key_at(kid, Instant::now()).await
    }

    /// [`key`](Self::key) at `now` (tests move time).
    pub async fn key_at(&self, kid: &str, now: Instant) -> Result<RsaKey, JwksError> {
        // One fetch at a time: concurrent misses wait for it and then find the key (or not).
        let mut held = self.held.lock().await;
        let stale = held.fetched_at.is_none_or(|at| now.saturating_duration_since(at) >= MAX_AGE);
        if !stale && let Some(key) = held.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_refetch = held.fetched_at.is_none_or(|at| now.saturating_duration_since(at) >= REFETCH_COOL_DOWN);
        if !may_refetch {
            // An unknown kid within the cool-down: refused without asking the JWKS again.
            return Err(JwksError::UnknownKey);
        }
        match self.source.fetch().await {
            Ok(doc) => {
                held.keys = parse(&doc);
                held.fetched_at = Some(now);
                tracing::info!(keys = held.keys.len(), "Forge JWKS fetched");
            }
            Err(e) => {
                // Keep what we had (an outage of the CDN must not stop known keys verifying),
                // but count the attempt so that failures are not retried on every request.
                held.fetched_at = Some(now);
                return held.keys.get(kid).cloned().ok_or(JwksError::Unavailable(e));
            }
        }
        held.keys.get(kid).cloned().ok_or(JwksError::UnknownKey)
    }
}

/// The RS256 signing keys of a JWKS (RFC 7517): `kty` RSA, a `kid`, `use` sig (or absent), `alg`
/// RS256 (or absent). Anything else is skipped.
pub fn parse(doc: &serde_json::Value) -> HashMap<String, RsaKey> {
    let mut keys = HashMap::new();
    let Some(list) = doc.get("keys").and_then(serde_json::Value::as_array) else { return keys };
    for jwk in list.iter().take(MAX_KEYS) {
        let text = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
        if text("kty") != Some("RSA")
            || text("use").is_some_and(|u| u != "sig")
            || text("alg").is_some_and(|a| a != "RS256")
        {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (text("kid"), text("n"), text("e")) else { continue };
        if kid.is_empty() || kid.len() > 256 {
            continue;
        }
        if let Ok(key) = RsaKey::from_jwk(n, e) {
            keys.insert(kid.to_owned(), key);
        }
    }
    keys
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use rsa::traits::PublicKeyParts;

    use super::*;

    /// A JWKS of the test key under `kids`.
    pub(crate) fn jwks(kids: &[&str]) -> serde_json::Value {
        let public = crate::forge::fit::tests::test_key().to_public_key();
        let keys: Vec<_> = kids
            .iter()
            .map(|kid| {
                serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": B64.encode(public.n().to_bytes_be()), "e": B64.encode(public.e().to_bytes_be())})
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// A JWKS whose contents the test changes, counting fetches.
    #[derive(Clone, Default)]
    pub(crate) struct Fake {
        pub doc: Arc<std::sync::Mutex<serde_json::Value>>,
        pub fetches: Arc<AtomicUsize>,
        pub down: Arc<std::sync::atomic::AtomicBool>,
    }

    #[async_trait::async_trait]
    impl JwksSource for Fake {
        async fn fetch(&self) -> Result<serde_json::Value, String> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err("down".into());
            }
            Ok(self.doc.lock().unwrap().clone())
        }
    }

    pub(crate) fn cache_of(kids: &[&str]) -> (JwksCache, Fake) {
        let fake = Fake::default();
        *fake.doc.lock().unwrap() = jwks(kids);
        (JwksCache::new(Box::new(fake.clone())), fake)
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_once_and_a_flood_of_unknown_kids_fetches_once_per_cool_down() {
        let (cache, fake) = cache_of(&["k1"]);
        let t0 = Instant::now();
        assert!(cache.key_at("k1", t0).await.is_ok());
        assert!(cache.key_at("k1", t0 + Duration::from_secs(1)).await.is_ok());
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 1, "a known kid is served from the cache");

        // Forge rotates to k2; the first token naming it after the cool-down refetches once.
        *fake.doc.lock().unwrap() = jwks(&["k2"]);
        let t1 = t0 + REFETCH_COOL_DOWN;
        assert!(cache.key_at("k2", t1).await.is_ok());
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 2);
        // k1 is gone from the set Forge publishes: no longer accepted.
        assert_eq!(cache.key_at("k1", t1).await.unwrap_err(), JwksError::UnknownKey);
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 2, "within the cool-down: not refetched");

        // A thousand made-up kids within the cool-down: no fetch at all; after it, one.
        for i in 0..1000 {
            let kid = format!("forged-{i}");
            assert_eq!(cache.key_at(&kid, t1 + Duration::from_secs(1)).await.unwrap_err(), JwksError::UnknownKey);
        }
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 2);
        for i in 0..1000 {
            let kid = format!("forged-{i}");
            let _ = cache.key_at(&kid, t1 + REFETCH_COOL_DOWN + Duration::from_secs(1)).await;
        }
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 3, "one refetch per cool-down");
        assert!(cache.key_at("k2", t1 + REFETCH_COOL_DOWN + Duration::from_secs(2)).await.is_ok());
    }

    #[tokio::test]
    async fn keys_age_out_and_an_unreachable_jwks_keeps_the_known_keys() {
        let (cache, fake) = cache_of(&["k1"]);
        let t0 = Instant::now();
        assert!(cache.key_at("k1", t0).await.is_ok());
        // After MAX_AGE the set is fetched again even for a known kid; a withdrawn key goes.
        *fake.doc.lock().unwrap() = jwks(&["k2"]);
        assert_eq!(cache.key_at("k1", t0 + MAX_AGE).await.unwrap_err(), JwksError::UnknownKey);
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 2);

        // The CDN is down: the key we hold still verifies, an unknown one is "unavailable".
        fake.down.store(true, Ordering::SeqCst);
        let t2 = t0 + MAX_AGE * 2;
        assert!(cache.key_at("k2", t2).await.is_ok());
        assert!(matches!(cache.key_at("k3", t2 + REFETCH_COOL_DOWN).await, Err(JwksError::Unavailable(_))));
    }

    #[test]
    fn only_rs256_signing_keys_are_taken() {
        let mut doc = jwks(&["a", "b", "c", "d"]);
        let keys = doc["keys"].as_array_mut().unwrap();
        keys[1]["use"] = "enc".into();
        keys[2]["alg"] = "RS512".into();
        keys[3]["n"] = "AQAB".into();
        let parsed = parse(&doc);
        assert_eq!(parsed.keys().collect::<Vec<_>>(), ["a"]);
        assert!(parse(&serde_json::json!({"keys": "x"})).is_empty());
        assert!(parse(&serde_json::json!([])).is_empty());
    }
}
