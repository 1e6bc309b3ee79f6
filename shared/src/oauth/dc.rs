//! Data Center OAuth 2.0 through an incoming application link (Jira 8.22+, Confluence 7.20+).
//!
//! The instance is its own authorization server. Its admin creates an *incoming* application
//! link (Administration > Applications > Application links > Create link > External application,
//! direction Incoming) with our callback as its redirect URL and the scopes we ask for, and hands
//! us the link's client id and secret; an admin then consents like on Cloud:
//! - `GET {base}/rest/oauth2/latest/authorize?client_id&redirect_uri&response_type=code&scope&state`
//!   `&code_challenge&code_challenge_method=S256` (authorization code with PKCE), and
//! - `POST {base}/rest/oauth2/latest/token` with `client_id`, `client_secret`, `code`,
//!   `grant_type=authorization_code`, `redirect_uri` and the `code_verifier`; later
//!   `grant_type=refresh_token` with the refresh token (and `redirect_uri`, which the provider
//!   checks on refresh too).
//!
//! Sources: "Jira OAuth 2.0 provider API"
//! <https://confluence.atlassian.com/adminjiraserver101/jira-oauth-2-0-provider-api-1455427907.html>,
//! "Confluence OAuth 2.0 provider API"
//! <https://developer.atlassian.com/server/confluence/confluence-oauth2-provider-api/>,
//! "Configure an incoming link"
//! <https://confluence.atlassian.com/adminjiraserver0905/configure-an-incoming-link-1207177171.html>,
//! "OAuth 2.0 scopes for incoming links" (READ, WRITE, ADMIN, SYSTEM_ADMIN; capped at what the
//! authorizing user may do)
//! <https://confluence.atlassian.com/display/ADMINJIRASERVER0912/OAuth+2.0+scopes+for+incoming+links>,
//! and "OAuth 2.0 provider system properties" (access tokens live 3600 s, refresh tokens at most
//! 90 days, authorization codes at most 600 s)
//! <https://confluence.atlassian.com/adminjiraserver0916/oauth-2-0-provider-system-properties-1402672002.html>.
//! A refresh answers a new refresh token, which we store before using the access token; one
//! that does not is kept using the old one (`TokenSet::from_response`).
//!
//! **No secret in DynamoDB.** The PKCE verifier is derived from the state id under the
//! deployment's state key (HMAC-SHA256), so nothing stores it; the link's client secret rides
//! the single-use state record sealed with AES-256-GCM under a key derived the same way, and
//! moves into the grant's one Secrets Manager secret (tokens and client credentials together)
//! when the code is exchanged.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::client::{OAuthError, TokenEndpoint, TokenSet, token_error};
use super::state::StateSigner;
use super::tokens::{TokenError, TokenProvider};
use crate::access::{AccessError, Connector};
use crate::atlassian::token_http::{TokenBody, TokenHttp};
use crate::atlassian::{Flavour, Session, Transport};
use crate::clock::Clock;
use crate::domain::{Connection, ConnectionStatus, TenantId};
use crate::store::StoreError;

/// The consent page, below the base URL (context path kept).
pub const AUTHORIZE_PATH: &str = "rest/oauth2/latest/authorize";
/// The token endpoint, below the base URL.
pub const TOKEN_PATH: &str = "rest/oauth2/latest/token";

/// What we ask for: `WRITE` (create issues, publish pages) and `READ` (discovery, who we act
/// as). The admin selects the same on the link; the user who consents caps them.
pub const SCOPES: &[&str] = &["READ", "WRITE"];

/// The product root with a trailing slash, so the endpoint paths join below the context path.
fn root(base: &Url) -> Url {
    let mut root = base.clone();
    root.set_query(None);
    root.set_fragment(None);
    if !root.path().ends_with('/') {
        let path = format!("{}/", root.path());
        root.set_path(&path);
    }
    root
}

/// `{base}/rest/oauth2/latest/authorize`.
pub fn authorize_endpoint(base: &Url) -> Url {
    root(base).join(AUTHORIZE_PATH).expect("a constant relative path joins")
}

/// `{base}/rest/oauth2/latest/token`: where the code and refresh tokens are spent, and so
/// where a guessed client secret would be judged (the destination lockout counts it there).
pub fn token_endpoint(base: &Url) -> Url {
    root(base).join(TOKEN_PATH).expect("a constant relative path joins")
}

// ------------------------------------------------------------------------------------- PKCE

/// The consent's PKCE verifier (RFC 7636 4.1): base64url of HMAC-SHA256(state key,
/// `dc-oauth-pkce:{state id}`), 43 characters of the unreserved set. Derived again at the
/// callback from the state id, so it is never stored; only the deployment can compute it.
pub fn pkce_verifier(signer: &StateSigner, state_id: &str) -> PkceCodeVerifier {
    PkceCodeVerifier::new(B64.encode(signer.derive("dc-oauth-pkce", state_id)))
}

/// The S256 challenge of the consent's verifier: base64url(SHA-256(verifier)).
pub fn pkce_challenge(signer: &StateSigner, state_id: &str) -> PkceCodeChallenge {
    PkceCodeChallenge::from_code_verifier_sha256(&pkce_verifier(signer, state_id))
}

// ---------------------------------------------------------------- the link during the consent

/// The incoming application link a consent was started with.
#[derive(Debug, Clone)]
pub struct DcLink {
    pub base_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
}

#[derive(Serialize, Deserialize)]
struct SealedLink {
    base_url: String,
    client_id: String,
    client_secret: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the consent's application link cannot be read back")]
pub struct Unsealable;

fn link_key(signer: &StateSigner, state_id: &str) -> LessSafeKey {
    let key = signer.derive("dc-oauth-link", state_id);
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("a 32-byte key is an AES-256 key"))
}

fn aad(state_id: &str, tenant: &TenantId) -> Vec<u8> {
    format!("dc-oauth-link:{state_id}:{tenant}").into_bytes()
}

/// Seals `link` for the state record: AES-256-GCM under a key derived from the state id (one key
/// per consent), bound to the state id and tenant, as base64url(nonce || ciphertext || tag).
pub fn seal(signer: &StateSigner, state_id: &str, tenant: &TenantId, link: &DcLink) -> String {
    let plain = SealedLink {
        base_url: link.base_url.to_string(),
        client_id: link.client_id.clone(),
        client_secret: link.client_secret.expose_secret().to_owned(),
    };
    let mut in_out = serde_json::to_vec(&plain).unwrap_or_default();
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    link_key(signer, state_id)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad(state_id, tenant)),
            &mut in_out,
        )
        .expect("sealing a small buffer cannot fail");
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&in_out);
    B64.encode(out)
}

/// Opens what [`seal`] made for the same state id and tenant; anything else is refused.
pub fn unseal(signer: &StateSigner, state_id: &str, tenant: &TenantId, sealed: &str) -> Result<DcLink, Unsealable> {
    let raw = B64.decode(sealed).map_err(|_| Unsealable)?;
    if raw.len() < NONCE_LEN {
        return Err(Unsealable);
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
    let mut in_out = rest.to_vec();
    let plain = link_key(signer, state_id)
        .open_in_place(nonce, Aad::from(aad(state_id, tenant)), &mut in_out)
        .map_err(|_| Unsealable)?;
    let link: SealedLink = serde_json::from_slice(plain).map_err(|_| Unsealable)?;
    Ok(DcLink {
        base_url: Url::parse(&link.base_url).map_err(|_| Unsealable)?,
        client_id: link.client_id,
        client_secret: SecretString::from(link.client_secret),
    })
}

// ------------------------------------------------------------------------- the stored grant

/// What a Data Center grant's secret holds besides its token pair: the link's credentials and
/// the redirect URI the provider checks on every token request.
#[derive(Serialize, Deserialize)]
struct StoredClient {
    base_url: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
}

#[derive(Deserialize)]
struct StoredGrant {
    dc_client: StoredClient,
}

/// The grant secret: the token pair's fields (as [`TokenSet::to_secret`] writes them, so the
/// token provider and the keep-alive sweep read it as any grant) plus `dc_client`.
fn grant_secret(tokens: &TokenSet, client: &DcOAuth) -> SecretString {
    let mut value: serde_json::Value =
        serde_json::from_str(tokens.to_secret().expose_secret()).unwrap_or(serde_json::Value::Null);
    if let Some(object) = value.as_object_mut() {
        let stored = StoredClient {
            base_url: client.base_url.to_string(),
            client_id: client.client_id.clone(),
            client_secret: client.client_secret.expose_secret().to_owned(),
            redirect_uri: client.redirect_uri.to_string(),
        };
        object.insert("dc_client".into(), serde_json::to_value(stored).unwrap_or_default());
    }
    SecretString::from(value.to_string())
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// One application link's authorization server.
pub struct DcOAuth {
    client: Client,
    http: TokenHttp,
    base_url: Url,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: Url,
    clock: Clock,
}

impl DcOAuth {
    /// The link at `link.base_url`, redirecting to our callback `redirect_uri`. Token requests
    /// go through `transport`, whose egress guard checks the token URL (scheme, and every
    /// address it resolves to) like any customer URL.
    pub fn new(transport: Transport, link: &DcLink, redirect_uri: Url) -> Self {
        let client = BasicClient::new(ClientId::new(link.client_id.clone()))
            .set_client_secret(ClientSecret::new(link.client_secret.expose_secret().to_owned()))
            .set_auth_uri(AuthUrl::from_url(authorize_endpoint(&link.base_url)))
            .set_token_uri(TokenUrl::from_url(token_endpoint(&link.base_url)))
            .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()))
            // The provider API documents client_id and client_secret as request parameters.
            .set_auth_type(AuthType::RequestBody);
        Self {
            client,
            http: TokenHttp::new(transport, TokenBody::Form),
            base_url: link.base_url.clone(),
            client_id: link.client_id.clone(),
            client_secret: link.client_secret.clone(),
            redirect_uri,
            clock: Clock::system(),
        }
    }

    /// The link of a stored grant, read from its secret.
    pub fn from_secret(transport: Transport, secret: &SecretString) -> Result<Self, String> {
        let stored: StoredGrant = serde_json::from_str(secret.expose_secret())
            .map_err(|e| format!("Data Center grant secret is unreadable ({:?} error)", e.classify()))?;
        let c = stored.dc_client;
        let base_url = Url::parse(&c.base_url).map_err(|e| format!("Data Center grant base URL: {e}"))?;
        let redirect_uri = Url::parse(&c.redirect_uri).map_err(|e| format!("Data Center grant redirect URI: {e}"))?;
        let link = DcLink { base_url, client_id: c.client_id, client_secret: SecretString::from(c.client_secret) };
        Ok(Self::new(transport, &link, redirect_uri))
    }

    /// Token expiry and issue times on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The consent URL on the instance: `client_id`, our `redirect_uri`, `response_type=code`,
    /// the scopes, our signed single-use `state`, and the PKCE S256 challenge.
    pub fn authorize_url(&self, scopes: &[&str], state: &str, challenge: PkceCodeChallenge) -> Url {
        let state = state.to_owned();
        let (url, _) = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(scopes.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
            .url();
        url
    }

    /// Spends the code with the consent's verifier; the pair is dated on the clock.
    pub async fn exchange_code(&self, code: &str, verifier: PkceCodeVerifier) -> Result<TokenSet, OAuthError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let mut tokens = TokenSet::from_response(&response, None, self.clock.now())?;
        if tokens.scopes.is_empty() {
            tokens.scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        }
        Ok(tokens)
    }

    /// The grant's one secret: the pair and this link's client credentials.
    pub fn grant_secret(&self, tokens: &TokenSet) -> SecretString {
        grant_secret(tokens, self)
    }
}

#[async_trait::async_trait]
impl TokenEndpoint for DcOAuth {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, OAuthError> {
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let response = self
            .client
            .exchange_refresh_token(&token)
            // The provider validates the redirect URI on the refresh grant as well.
            .add_extra_param("redirect_uri", self.redirect_uri.to_string())
            .request_async(&self.http)
            .await
            .map_err(token_error)
            .map_err(|e| match e {
                // The link was deleted or its secret rotated: only a new link and consent help.
                OAuthError::InvalidClient => OAuthError::InvalidGrant,
                other => other,
            })?;
        let mut tokens = TokenSet::from_response(&response, Some(refresh_token), self.clock.now())?;
        if tokens.scopes.is_empty() {
            tokens.scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        }
        Ok(tokens)
    }

    fn to_secret(&self, fresh: &TokenSet) -> SecretString {
        grant_secret(fresh, self)
    }
}

// ------------------------------------------------------------------------------- sessions

impl Connector {
    /// The token provider of a Data Center grant: the Cloud provider's stores, lease and clock
    /// with the grant's own application link as the token endpoint.
    async fn dc_tokens(&self, connection: &Connection) -> Result<Arc<TokenProvider>, AccessError> {
        let stored = self
            .credentials
            .get(&connection.secret_name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("secret {} is missing", connection.secret_name)))?;
        let endpoint = DcOAuth::from_secret(self.transport.clone(), &stored.value)
            .map_err(StoreError::Corrupt)?
            .with_clock(self.tokens.clock());
        Ok(Arc::new(self.tokens.with_endpoint(Arc::new(endpoint))))
    }

    /// Bearer with the grant's access token to the base URL (Data Center REST), refreshed when
    /// due and after a 401 under the single-refresher lease.
    pub(crate) async fn dc_oauth_session(&self, connection: &Connection) -> Result<Session, AccessError> {
        if connection.status == ConnectionStatus::ReconnectRequired {
            return Err(AccessError::ReconnectRequired(connection.product));
        }
        let base_url =
            connection.base_url.as_deref().ok_or_else(|| StoreError::Corrupt("connection has no base URL".into()))?;
        let base = Url::parse(base_url).map_err(|e| StoreError::Corrupt(format!("base URL: {e}")))?;
        let tokens = self.dc_tokens(connection).await?;
        let token = tokens.access_token(connection).await?;
        let session = self.oauth_session(connection, base, Flavour::DataCenter, tokens, token);
        Ok(self.governed(session, connection))
    }

    /// The keep-alive sweep's refresh of an idle Data Center grant (its refresh token expires).
    pub(crate) async fn dc_keep_alive(&self, connection: &Connection) -> Result<(), TokenError> {
        let tokens = self.dc_tokens(connection).await.map_err(|e| match e {
            AccessError::Store(e) => TokenError::Store(e),
            other => TokenError::RefreshFailed(other.to_string()),
        })?;
        tokens.keep_alive(connection).await
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn signer() -> StateSigner {
        StateSigner::new(b"k".repeat(32))
    }

    /// The test stack's transport: plain http to 127.0.0.1 only.
    fn transport() -> Transport {
        let http = crate::config::HttpConfig {
            timeout: std::time::Duration::from_secs(10),
            connect_timeout: std::time::Duration::from_secs(2),
            max_attempts: 1,
            max_retry_wait: std::time::Duration::from_secs(1),
            retry_budget: std::time::Duration::from_secs(10),
            first_byte_timeout: std::time::Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
        };
        let egress = crate::atlassian::EgressPolicy { allow_http: false, allow_loopback: true };
        Transport::new(&http, &egress).expect("transport")
    }

    fn link() -> DcLink {
        DcLink {
            base_url: Url::parse("https://jira.example.com/jira").unwrap(),
            client_id: "client-1".into(),
            client_secret: SecretString::from("link-secret"),
        }
    }

    fn query(url: &Url) -> std::collections::HashMap<String, String> {
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    #[test]
    fn endpoints_sit_below_the_context_path() {
        for base in ["https://jira.example.com/jira", "https://jira.example.com/jira/"] {
            let base = Url::parse(base).unwrap();
            assert_eq!(
                authorize_endpoint(&base).as_str(),
                "https://jira.example.com/jira/rest/oauth2/latest/authorize"
            );
            assert_eq!(token_endpoint(&base).as_str(), "https://jira.example.com/jira/rest/oauth2/latest/token");
        }
        let bare = Url::parse("https://wiki.example.com").unwrap();
        assert_eq!(token_endpoint(&bare).as_str(), "https://wiki.example.com/rest/oauth2/latest/token");
    }

    #[test]
    fn the_verifier_is_derived_per_state_and_its_challenge_is_s256() {
        let signer = signer();
        let verifier = pkce_verifier(&signer, "sid-1");
        let secret = verifier.secret().clone();
        // RFC 7636 4.1: 43 to 128 characters of [A-Za-z0-9-._~].
        assert_eq!(secret.len(), 43);
        assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)), "{secret}");
        assert_eq!(pkce_verifier(&signer, "sid-1").secret(), &secret, "derived again at the callback");
        assert_ne!(pkce_verifier(&signer, "sid-2").secret(), &secret);
        assert_ne!(pkce_verifier(&StateSigner::new(b"x".repeat(32)), "sid-1").secret(), &secret);
        let challenge = pkce_challenge(&signer, "sid-1");
        assert_eq!(challenge.method().as_str(), "S256");
        assert_eq!(challenge.as_str(), B64.encode(Sha256::digest(secret.as_bytes())));
    }

    #[test]
    fn the_authorize_url_carries_everything_the_provider_api_asks_for() {
        let dc =
            DcOAuth::new(transport(), &link(), Url::parse("https://bridge.example.com/v1/oauth/callback").unwrap());
        let url = dc.authorize_url(SCOPES, "signed.state", pkce_challenge(&signer(), "sid-1"));
        assert_eq!(url.origin().ascii_serialization(), "https://jira.example.com");
        assert_eq!(url.path(), "/jira/rest/oauth2/latest/authorize");
        let q = query(&url);
        assert_eq!(q["client_id"], "client-1");
        assert_eq!(q["redirect_uri"], "https://bridge.example.com/v1/oauth/callback");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "READ WRITE");
        assert_eq!(q["state"], "signed.state");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pkce_challenge(&signer(), "sid-1").as_str());
        // Neither the secret nor the verifier goes to the browser.
        assert!(!url.as_str().contains("link-secret"));
        assert!(!url.as_str().contains(pkce_verifier(&signer(), "sid-1").secret().as_str()));
    }

    #[test]
    fn a_sealed_link_opens_only_for_its_state_and_tenant() {
        let (signer, acme) = (signer(), TenantId::parse("acme").unwrap());
        let sealed = seal(&signer, "sid-1", &acme, &link());
        assert!(!sealed.contains("link-secret"));
        let back = unseal(&signer, "sid-1", &acme, &sealed).unwrap();
        assert_eq!(back.base_url.as_str(), "https://jira.example.com/jira");
        assert_eq!(back.client_id, "client-1");
        assert_eq!(back.client_secret.expose_secret(), "link-secret");
        assert_ne!(seal(&signer, "sid-1", &acme, &link()), sealed, "a fresh nonce each time");
        let other = TenantId::parse("other").unwrap();
        assert_eq!(unseal(&signer, "sid-2", &acme, &sealed).unwrap_err(), Unsealable);
        assert_eq!(unseal(&signer, "sid-1", &other, &sealed).unwrap_err(), Unsealable);
        assert_eq!(unseal(&StateSigner::new(b"x".repeat(32)), "sid-1", &acme, &sealed).unwrap_err(), Unsealable);
        let mut tampered = B64.decode(&sealed).unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(unseal(&signer, "sid-1", &acme, &B64.encode(tampered)).unwrap_err(), Unsealable);
        assert_eq!(unseal(&signer, "sid-1", &acme, "").unwrap_err(), Unsealable);
    }

    #[test]
    fn the_grant_secret_reads_as_a_token_set_and_as_its_link() {
        let dc =
            DcOAuth::new(transport(), &link(), Url::parse("https://bridge.example.com/v1/oauth/callback").unwrap());
        let tokens = TokenSet {
            access_token: SecretString::from("at"),
            refresh_token: SecretString::from("rt"),
            expires_at: time::OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap(),
            scopes: vec!["WRITE".into()],
            issued_at: None,
        };
        let secret = dc.grant_secret(&tokens);
        let back = TokenSet::from_secret(&secret).unwrap();
        assert_eq!((back.access_token.expose_secret(), back.refresh_token.expose_secret()), ("at", "rt"));
        let again = DcOAuth::from_secret(transport(), &secret).unwrap();
        assert_eq!(again.base_url.as_str(), "https://jira.example.com/jira");
        assert_eq!(again.client_id, "client-1");
        assert_eq!(again.client_secret.expose_secret(), "link-secret");
        assert_eq!(again.redirect_uri.as_str(), "https://bridge.example.com/v1/oauth/callback");
        // A Cloud grant's secret is no Data Center grant.
        assert!(DcOAuth::from_secret(transport(), &tokens.to_secret()).is_err());
    }

    fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    /// The code exchange and a refresh against a provider that checks what the provider API
    /// documents: the verifier, the client credentials, the redirect URI (on refresh too).
    #[tokio::test]
    async fn the_code_exchange_sends_the_verifier_and_a_refresh_rotates() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};

        let server = MockServer::start().await;
        let base = Url::parse(&format!("{}/jira", server.uri())).unwrap();
        Mock::given(method("POST"))
            .and(path("/jira/rest/oauth2/latest/token"))
            .respond_with(|request: &wiremock::Request| {
                let f = form(&request.body);
                let ok = f.get("client_id").map(String::as_str) == Some("client-1")
                    && f.get("client_secret").map(String::as_str) == Some("link-secret")
                    && f.get("redirect_uri").map(String::as_str) == Some("https://bridge.example.com/v1/oauth/callback");
                let verifier_ok = f.get("code_verifier").map(String::as_str)
                    == Some(pkce_verifier(&StateSigner::new(b"k".repeat(32)), "sid-1").secret().as_str());
                match f.get("grant_type").map(String::as_str) {
                    Some("authorization_code") if ok && verifier_ok && f.get("code").map(String::as_str) == Some("c0de") => {
                        ResponseTemplate::new(200).set_body_json(serde_json::json!({
                            "access_token": "at-1", "refresh_token": "rt-1", "token_type": "bearer",
                            "expires_in": 3600, "scope": "READ WRITE"}))
                    }
                    Some("refresh_token") if ok && f.get("refresh_token").map(String::as_str) == Some("rt-1") => {
                        ResponseTemplate::new(200).set_body_json(serde_json::json!({
                            "access_token": "at-2", "refresh_token": "rt-2", "token_type": "bearer", "expires_in": 3600}))
                    }
                    Some("refresh_token") if !ok => ResponseTemplate::new(401)
                        .set_body_json(serde_json::json!({"error": "invalid_client"})),
                    _ => ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_grant"})),
                }
            })
            .mount(&server)
            .await;
        let redirect = Url::parse("https://bridge.example.com/v1/oauth/callback").unwrap();
        let dc = DcOAuth::new(transport(), &DcLink { base_url: base.clone(), ..link() }, redirect.clone());

        let wrong = PkceCodeVerifier::new(B64.encode([7u8; 32]));
        assert!(matches!(dc.exchange_code("c0de", wrong).await, Err(OAuthError::InvalidGrant)));
        let tokens = dc.exchange_code("c0de", pkce_verifier(&signer(), "sid-1")).await.unwrap();
        assert_eq!((tokens.access_token.expose_secret(), tokens.refresh_token.expose_secret()), ("at-1", "rt-1"));
        assert_eq!(tokens.scopes, ["READ", "WRITE"]);

        let fresh = dc.refresh(&tokens.refresh_token).await.unwrap();
        assert_eq!((fresh.access_token.expose_secret(), fresh.refresh_token.expose_secret()), ("at-2", "rt-2"));
        assert_eq!(fresh.scopes, ["READ", "WRITE"], "the requested scopes when the answer names none");
        assert!(matches!(dc.refresh(&SecretString::from("rt-used")).await, Err(OAuthError::InvalidGrant)));
        // A deleted link (its client refused) needs a new consent too.
        let gone = DcOAuth::new(
            transport(),
            &DcLink { base_url: base, client_secret: SecretString::from("rotated"), ..link() },
            redirect,
        );
        assert!(matches!(gone.refresh(&fresh.refresh_token).await, Err(OAuthError::InvalidGrant)));
    }
}
