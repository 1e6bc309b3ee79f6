//! Forge Invocation Tokens (FIT): the `Authorization: Bearer` JWT on every request Forge makes to
//! a remote (`invokeRemote`, product and lifecycle events, scheduled triggers).
//!
//! Atlassian, "Forge remote essentials" — the remote contract and "Verifying remote requests"
//! (<https://developer.atlassian.com/platform/forge/forge-remote-invocation-contract>), and
//! "Calling Atlassian app APIs from a remote"
//! (<https://developer.atlassian.com/platform/forge/remote/calling-product-apis/>):
//!
//! - the token is RS256, signed with a key of Forge's JWKS named by its `kid` ([`super::jwks`]);
//! - `iss` is `forge/invocation-token`;
//! - `aud` is the app's id, `ari:cloud:ecosystem::app/<uuid>` (our `forge_app_id`);
//! - `exp` (and `nbf`, when present) bound its life; we allow the one 30 s leeway of every JWT
//!   we verify ([`crate::connect::jwt::LEEWAY_SECONDS`]);
//! - `app.installationId` names the installation, `app.apiBaseUrl` is "the base URL where all
//!   Atlassian app API requests should be routed" (`https://api.atlassian.com/ex/{product}/{cloudId}`),
//!   `context.cloudId` the site (and `context.siteUrl`, when Forge sends it, the site's URL).
//!
//! Nothing of a token is used before its signature is checked: [`verify`] returns a
//! [`VerifiedInvocation`], which nothing else can build, and every refusal is a [`FitError`]
//! whose [`code`](FitError::code) is what gets logged (never the token).

use url::Url;

use super::jwks::{JwksCache, JwksError};
use crate::connect::jwt::LEEWAY_SECONDS;
use crate::domain::Product;
use crate::rs256::{self, Claims, Rs256Error, RsaKey, Unverified};

/// The `iss` of every FIT.
pub const ISSUER: &str = "forge/invocation-token";

/// The prefix of a Forge app's id (the FIT's `aud`).
pub const APP_ARI_PREFIX: &str = "ari:cloud:ecosystem::app/";

/// Why a FIT was refused: a stable reason for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    #[error("no Forge Invocation Token")]
    Missing,
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token's algorithm is not RS256")]
    WrongAlgorithm,
    #[error("the token names no key")]
    NoKeyId,
    #[error("the token names a key Forge does not publish")]
    UnknownKey,
    #[error("Forge's keys could not be fetched")]
    KeysUnavailable,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token's issuer is not Forge")]
    WrongIssuer,
    #[error("the token is not for this app")]
    WrongAudience,
    #[error("the token has no exp claim")]
    NoExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token names no installation")]
    NoInstallation,
    #[error("the token names no site (cloudId)")]
    NoSite,
    #[error("the token's API base URL is not a Jira or Confluence site's")]
    NoProduct,
}

impl FitError {
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
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::NoExpiry => "no_expiry",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::NoInstallation => "no_installation",
            Self::NoSite => "no_site",
            Self::NoProduct => "no_product",
        }
    }
}

impl From<Rs256Error> for FitError {
    fn from(e: Rs256Error) -> Self {
        match e {
            Rs256Error::Malformed | Rs256Error::BadKey => Self::Malformed,
            Rs256Error::WrongAlgorithm => Self::WrongAlgorithm,
            Rs256Error::NoKeyId => Self::NoKeyId,
            Rs256Error::BadSignature => Self::BadSignature,
        }
    }
}

/// The app id as Forge puts it in `aud`: a bare uuid in the configuration is taken as the app's.
pub fn app_ari(configured: &str) -> String {
    let configured = configured.trim();
    if configured.starts_with("ari:") { configured.to_owned() } else { format!("{APP_ARI_PREFIX}{configured}") }
}

/// A FIT whose signature, issuer, audience and times were checked. Only [`verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInvocation {
    installation_id: String,
    cloud_id: String,
    product: Product,
    api_base_url: String,
    site_url: Option<String>,
    app_id: String,
    environment_id: Option<String>,
    module_key: Option<String>,
    principal: Option<String>,
    expires_at: i64,
}

impl VerifiedInvocation {
    /// `app.installationId` (`ari:cloud:ecosystem::installation/<uuid>`).
    pub fn installation_id(&self) -> &str {
        &self.installation_id
    }

    /// `context.cloudId`: the site.
    pub fn cloud_id(&self) -> &str {
        &self.cloud_id
    }

    /// The product the installation is on (from `app.apiBaseUrl`'s `/ex/{product}/{cloudId}`).
    pub fn product(&self) -> Product {
        self.product
    }

    /// `app.apiBaseUrl`, as Forge sent it.
    pub fn api_base_url(&self) -> &str {
        &self.api_base_url
    }

    /// `context.siteUrl`, when Forge sent one (`https://<site>.atlassian.net`).
    pub fn site_url(&self) -> Option<&str> {
        self.site_url.as_deref()
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// `app.environment.id`.
    pub fn environment_id(&self) -> Option<&str> {
        self.environment_id.as_deref()
    }

    /// `app.module.key`: which module invoked us.
    pub fn module_key(&self) -> Option<&str> {
        self.module_key.as_deref()
    }

    /// `principal`: the user's account id on a user's invocation (none on events and triggers).
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
pub fn bearer(header: Option<&str>) -> Result<&str, FitError> {
    let value = header.map(str::trim).unwrap_or_default();
    match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") && !value[7..].trim().is_empty() => {
            Ok(value[7..].trim())
        }
        _ => Err(FitError::Missing),
    }
}

/// Verifies `token` against Forge's keys for our app (`app_id`, see [`app_ari`]) at `now` (unix
/// seconds).
pub async fn verify(token: &str, keys: &JwksCache, app_id: &str, now: i64) -> Result<VerifiedInvocation, FitError> {
    let unverified = Unverified::parse(token)?;
    let key = keys.key(unverified.kid()).await.map_err(|e| match e {
        JwksError::UnknownKey => FitError::UnknownKey,
        JwksError::Unavailable(_) => FitError::KeysUnavailable,
    })?;
    check(unverified.verify(&key)?, app_id, now)
}

/// [`verify`] with the key already in hand (the fuzz target, and callers that hold one key).
pub fn verify_with_key(token: &str, key: &RsaKey, app_id: &str, now: i64) -> Result<VerifiedInvocation, FitError> {
    let unverified = Unverified::parse(token)?;
    check(unverified.verify(key)?, app_id, now)
}

fn text<'c>(claims: &'c Claims, path: &[&str]) -> Option<&'c str> {
    let (last, parents) = path.split_last()?;
    let mut object = claims;
    for name in parents {
        object = object.get(*name)?.as_object()?;
    }
    object.get(*last)?.as_str().filter(|s| !s.is_empty() && s.len() <= 2048)
}

/// The claims of a token whose signature verified.
fn check(claims: Claims, app_id: &str, now: i64) -> Result<VerifiedInvocation, FitError> {
    if text(&claims, &["iss"]) != Some(ISSUER) {
        return Err(FitError::WrongIssuer);
    }
    let app_id = app_ari(app_id);
    let audience_ok = match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => *aud == app_id,
        Some(serde_json::Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(app_id.as_str())),
        _ => false,
    };
    if !audience_ok {
        return Err(FitError::WrongAudience);
    }
    let expires_at = rs256::seconds(&claims, "exp").ok_or(FitError::NoExpiry)?;
    if now > expires_at.saturating_add(LEEWAY_SECONDS) {
        return Err(FitError::Expired);
    }
    if rs256::seconds(&claims, "nbf").is_some_and(|nbf| nbf.saturating_sub(LEEWAY_SECONDS) > now) {
        return Err(FitError::NotYetValid);
    }
    let installation_id = text(&claims, &["app", "installationId"]).ok_or(FitError::NoInstallation)?.to_owned();
    let api_base_url = text(&claims, &["app", "apiBaseUrl"]).ok_or(FitError::NoProduct)?.to_owned();
    // `/ex/{product}/{cloudId}` of the API base URL names the product and the site.
    let (product, base_cloud_id) = product_of(&api_base_url).ok_or(FitError::NoProduct)?;
    let cloud_id = match text(&claims, &["context", "cloudId"]) {
        Some(cloud_id) if cloud_id == base_cloud_id => cloud_id.to_owned(),
        _ => return Err(FitError::NoSite),
    };
    let site_url = text(&claims, &["context", "siteUrl"])
        .and_then(|u| Url::parse(u).ok())
        .filter(|u| u.scheme() == "https" || u.scheme() == "http")
        .map(|u| u.as_str().trim_end_matches('/').to_owned());
    Ok(VerifiedInvocation {
        installation_id,
        cloud_id,
        product,
        api_base_url,
        site_url,
        app_id,
        environment_id: text(&claims, &["app", "environment", "id"]).map(str::to_owned),
        module_key: text(&claims, &["app", "module", "key"]).map(str::to_owned),
        principal: text(&claims, &["principal"]).map(str::to_owned),
        expires_at,
    })
}

/// The product and cloudId of `…/ex/{product}/{cloudId}`.
fn product_of(api_base_url: &str) -> Option<(Product, String)> {
    let url = Url::parse(api_base_url).ok()?;
    let mut segments = url.path_segments()?.filter(|s| !s.is_empty());
    if segments.next()? != "ex" {
        return None;
    }
    let product = match segments.next()? {
        "jira" => Product::Jira,
        "confluence" => Product::Confluence,
        _ => return None,
    };
    let cloud_id = segments.next()?;
    let valid = !cloud_id.is_empty()
        && cloud_id.len() <= 64
        && cloud_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && segments.next().is_none();
    valid.then(|| (product, cloud_id.to_owned()))
}

#[cfg(test)]
pub(crate) mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    use sha2::Sha256;

    use super::*;

    pub(crate) const APP: &str = "ari:cloud:ecosystem::app/0b8a7a2e-0000-4000-8000-000000000001";
    pub(crate) const INSTALLATION: &str = "ari:cloud:ecosystem::installation/11111111-2222-4333-8444-555555555555";
    pub(crate) const CLOUD_ID: &str = "a436116f-02ce-4520-8fbb-7301462a1674";
    pub(crate) const NOW: i64 = 1_800_000_000;

    pub(crate) fn test_key() -> rsa::RsaPrivateKey {
        rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../../tests/fixtures/rs256-test-key.pem")).unwrap()
    }

    pub(crate) fn sign(header: serde_json::Value, claims: &serde_json::Value) -> String {
        let signed = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let signature = SigningKey::<Sha256>::new(test_key()).sign(signed.as_bytes()).to_vec();
        format!("{signed}.{}", B64.encode(signature))
    }

    /// The claims of a FIT as Forge documents them (the remote invocation contract's example).
    pub(crate) fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": ISSUER, "aud": APP, "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 55,
            "jti": "b1f0c5d2-fit",
            "app": {
                "id": APP, "version": "3", "installationId": INSTALLATION,
                "apiBaseUrl": format!("https://api.atlassian.com/ex/confluence/{CLOUD_ID}"),
                "environment": {"type": "PRODUCTION", "id": "ari:cloud:ecosystem::environment/e1"},
                "module": {"type": "core:endpoint", "key": "bridge-scheduled"},
            },
            "context": {"cloudId": CLOUD_ID, "siteUrl": "https://acme.atlassian.net/"},
        })
    }

    pub(crate) fn fit(claims: &serde_json::Value) -> String {
        sign(serde_json::json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}), claims)
    }

    #[tokio::test]
    async fn a_documented_fit_verifies_and_names_the_installation_site_and_product() {
        let (keys, _) = super::super::jwks::tests::cache_of(&["k1"]);
        let v = verify(&fit(&claims()), &keys, APP, NOW).await.unwrap();
        assert_eq!(v.installation_id(), INSTALLATION);
        assert_eq!(v.cloud_id(), CLOUD_ID);
        assert_eq!(v.product(), Product::Confluence);
        assert_eq!(v.site_url(), Some("https://acme.atlassian.net"));
        assert_eq!(v.module_key(), Some("bridge-scheduled"));
        assert_eq!(v.principal(), None);
        // A configured bare uuid is the same app; aud may be a list.
        let mut c = claims();
        c["aud"] = serde_json::json!(["other", APP]);
        assert!(verify(&fit(&c), &keys, "0b8a7a2e-0000-4000-8000-000000000001", NOW).await.is_ok());
        // Within the leeway after exp: still accepted; past it, refused.
        assert!(verify(&fit(&claims()), &keys, APP, NOW + 55 + LEEWAY_SECONDS).await.is_ok());
        assert_eq!(verify(&fit(&claims()), &keys, APP, NOW + 56 + LEEWAY_SECONDS).await, Err(FitError::Expired));
    }

    #[tokio::test]
    async fn each_wrong_claim_is_refused_with_its_reason() {
        let (keys, _) = super::super::jwks::tests::cache_of(&["k1"]);
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = claims();
            f(&mut c);
            fit(&c)
        };
        let cases: Vec<(String, FitError)> = vec![
            (with(&|c| c["aud"] = "ari:cloud:ecosystem::app/someone-else".into()), FitError::WrongAudience),
            (with(&|c| c["aud"] = serde_json::json!(["x"])), FitError::WrongAudience),
            (with(&|c| c.as_object_mut().unwrap().remove("aud").map(drop).unwrap_or(())), FitError::WrongAudience),
            (with(&|c| c["iss"] = "forge/other".into()), FitError::WrongIssuer),
            (with(&|c| c["exp"] = (NOW - LEEWAY_SECONDS - 1).into()), FitError::Expired),
            (with(&|c| c.as_object_mut().unwrap().remove("exp").map(drop).unwrap_or(())), FitError::NoExpiry),
            (with(&|c| c["exp"] = "soon".into()), FitError::NoExpiry),
            (with(&|c| c["nbf"] = (NOW + LEEWAY_SECONDS + 5).into()), FitError::NotYetValid),
            (with(&|c| c["app"]["installationId"] = serde_json::Value::Null), FitError::NoInstallation),
            (
                with(&|c| c["app"]["apiBaseUrl"] = "https://api.atlassian.com/ex/bitbucket/x".into()),
                FitError::NoProduct,
            ),
            (with(&|c| c["app"]["apiBaseUrl"] = "not a url".into()), FitError::NoProduct),
            (with(&|c| c["context"]["cloudId"] = "another-site".into()), FitError::NoSite),
            (sign(serde_json::json!({"alg": "RS256", "kid": "unknown"}), &claims()), FitError::UnknownKey),
            (sign(serde_json::json!({"alg": "HS256", "kid": "k1"}), &claims()), FitError::WrongAlgorithm),
            (sign(serde_json::json!({"alg": "none", "kid": "k1"}), &claims()), FitError::WrongAlgorithm),
            (sign(serde_json::json!({"alg": "RS256"}), &claims()), FitError::NoKeyId),
            ("a.b".to_owned(), FitError::Malformed),
        ];
        for (token, reason) in cases {
            assert_eq!(verify(&token, &keys, APP, NOW).await, Err(reason), "{reason:?}");
        }
        // An unsigned token (alg none, empty signature), and a signature over other claims.
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none","kid":"k1"}"#), B64.encode(claims().to_string()));
        assert_eq!(verify(&none, &keys, APP, NOW).await, Err(FitError::WrongAlgorithm));
        let good = fit(&claims());
        let (head, rest) = good.split_once('.').unwrap();
        let sig = rest.rsplit_once('.').unwrap().1;
        let mut forged = claims();
        forged["app"]["installationId"] = "ari:cloud:ecosystem::installation/other".into();
        let forged = format!("{head}.{}.{sig}", B64.encode(forged.to_string()));
        assert_eq!(verify(&forged, &keys, APP, NOW).await, Err(FitError::BadSignature));
    }

    /// The fuzz target's seeds are what they are named: only `valid` verifies.
    #[test]
    fn the_fuzz_seed_corpus_is_what_it_says() {
        use rsa::traits::PublicKeyParts;
        let public = test_key().to_public_key();
        let key =
            RsaKey::from_jwk(&B64.encode(public.n().to_bytes_be()), &B64.encode(public.e().to_bytes_be())).unwrap();
        let seed = |s: &str| s.split_once('\n').unwrap().0.to_owned();
        let valid = seed(include_str!("../../../fuzz/corpus/forge_fit/valid"));
        assert_eq!(verify_with_key(&valid, &key, APP, NOW).unwrap().product(), Product::Jira);
        for (name, reason) in [
            (include_str!("../../../fuzz/corpus/forge_fit/wrong_aud"), FitError::WrongAudience),
            (include_str!("../../../fuzz/corpus/forge_fit/expired"), FitError::Expired),
            (include_str!("../../../fuzz/corpus/forge_fit/alg_none"), FitError::WrongAlgorithm),
        ] {
            assert_eq!(verify_with_key(&seed(name), &key, APP, NOW), Err(reason));
        }
    }

    #[test]
    fn bearer_headers_and_app_ids() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        for bad in [None, Some(""), Some("Bearer "), Some("JWT abc"), Some("Basic abc")] {
            assert_eq!(bearer(bad), Err(FitError::Missing), "{bad:?}");
        }
        assert_eq!(app_ari("u-1"), "ari:cloud:ecosystem::app/u-1");
        assert_eq!(app_ari(APP), APP);
        assert_eq!(product_of(&format!("https://api.atlassian.com/ex/jira/{CLOUD_ID}/")).unwrap().0, Product::Jira);
        assert!(product_of(&format!("https://api.atlassian.com/ex/jira/{CLOUD_ID}/rest")).is_none());
    }
}
