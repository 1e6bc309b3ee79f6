//! The Atlassian authorization server: authorize URL, code exchange, refresh, accessible sites.
//!
//! `oauth2-rs` builds the requests and parses the answers (including RFC 6749 error bodies);
//! [`TokenHttp`] sends them over our one reqwest client, with the body as JSON because that is
//! what Atlassian documents for `POST /oauth/token`.

use std::time::Duration;

use async_trait::async_trait;
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

use crate::atlassian::token_http::{TokenBody, TokenHttp, TokenHttpError};
use crate::atlassian::{AtlassianError, Credentials, Transport};
use crate::clock::Clock;
use crate::config::OAuthConfig;

/// Atlassian's `audience` for 3LO apps.
const AUDIENCE: &str = "api.atlassian.com";

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The code or refresh token is unknown, used up or revoked: only a new consent helps.
    #[error("Atlassian refused the grant (invalid_grant)")]
    InvalidGrant,
    /// The client id or secret was refused (a Data Center application link deleted, or its
    /// credentials mistyped or rotated).
    #[error("the token endpoint refused the client credentials (invalid_client)")]
    InvalidClient,
    #[error("Atlassian's token endpoint refused the request: {0}")]
    Refused(String),
    #[error("Atlassian's token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("Atlassian's token endpoint answered unexpectedly: {0}")]
    Decode(String),
    #[error(transparent)]
    Api(#[from] AtlassianError),
}

/// An access/refresh token pair as stored in Secrets Manager (one secret per grant).
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_at: OffsetDateTime,
    pub scopes: Vec<String>,
    /// When Atlassian issued this pair (the consent or the last refresh), on the business clock;
    /// `None` in secrets stored before it was recorded. The keep-alive sweep refreshes a grant
    /// idle for 30 days by it: Atlassian retires a refresh token unused for 90.
    pub issued_at: Option<OffsetDateTime>,
}

/// The stored JSON form. Private, so exposing the secrets happens only here.
#[derive(Serialize, Deserialize)]
struct StoredTokens {
    access_token: String,
    refresh_token: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    issued_at: Option<OffsetDateTime>,
}

impl TokenSet {
    pub fn to_secret(&self) -> SecretString {
        let stored = StoredTokens {
            access_token: self.access_token.expose_secret().to_owned(),
            refresh_token: self.refresh_token.expose_secret().to_owned(),
            expires_at: self.expires_at,
            scopes: self.scopes.clone(),
            issued_at: self.issued_at,
        };
        SecretString::from(serde_json::to_string(&stored).unwrap_or_default())
    }

    pub fn from_secret(secret: &SecretString) -> Result<Self, String> {
        let stored: StoredTokens = serde_json::from_str(secret.expose_secret()).map_err(|e| {
            // serde's message can quote the offending value, so only its position is kept.
            format!("token secret is unreadable ({:?} error at line {}, column {})", e.classify(), e.line(), e.column())
        })?;
        Ok(Self {
            access_token: SecretString::from(stored.access_token),
            refresh_token: SecretString::from(stored.refresh_token),
            expires_at: stored.expires_at,
            scopes: stored.scopes,
            issued_at: stored.issued_at,
        })
    }

    pub(super) fn from_response(
        response: &BasicTokenResponse,
        previous_refresh: Option<&SecretString>,
        now: OffsetDateTime,
    ) -> Result<Self, OAuthError> {
        // Without offline_access there is no refresh token; we always ask for it, so its absence
        // on a code exchange is an error. On a refresh Atlassian always rotates it.
        let refresh_token = match (response.refresh_token(), previous_refresh) {
            (Some(r), _) => SecretString::from(r.secret().to_owned()),
            (None, Some(previous)) => previous.clone(),
            (None, None) => {
                return Err(OAuthError::Decode("no refresh token; was offline_access granted?".into()));
            }
        };
        let expires_in = response.expires_in().unwrap_or(Duration::from_secs(3600));
        let expires_at = crate::atlassian::token_http::expiry(now, expires_in)
            .ok_or_else(|| OAuthError::Decode("the token's expires_in is out of range".into()))?;
        Ok(Self {
            access_token: SecretString::from(response.access_token().secret().to_owned()),
            refresh_token,
            expires_at,
            scopes: response.scopes().map(|s| s.iter().map(|s| s.to_string()).collect()).unwrap_or_default(),
            issued_at: Some(now),
        })
    }
}

/// A site the grant reaches (from `accessible-resources`), scopes merged across products.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessibleSite {
    pub id: String,
    pub url: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The refresh port, so the token provider's locking is unit-tested without HTTP.
#[async_trait]
pub trait TokenEndpoint: Send + Sync {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, OAuthError>;

    /// The secret a refreshed pair is stored as. A Data Center grant keeps its application
    /// link's client credentials beside the pair (`oauth/dc.rs`), so its endpoint writes them back.
    fn to_secret(&self, fresh: &TokenSet) -> SecretString {
        fresh.to_secret()
    }
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

pub struct AtlassianOAuth {
    client: Client,
    http: TokenHttp,
    transport: Transport,
    api_base: Url,
    clock: Clock,
}

impl AtlassianOAuth {
    pub fn new(
        config: &OAuthConfig,
        client_secret: SecretString,
        transport: Transport,
    ) -> Result<Self, url::ParseError> {
        let client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(client_secret.expose_secret().to_owned()))
            .set_auth_uri(AuthUrl::from_url(config.auth_base_url.join("authorize")?))
            .set_token_uri(TokenUrl::from_url(config.auth_base_url.join("oauth/token")?))
            .set_redirect_uri(RedirectUrl::from_url(config.redirect_uri.clone()))
            // Atlassian takes client_id and client_secret in the body.
            .set_auth_type(AuthType::RequestBody);
        Ok(Self {
            client,
            http: TokenHttp::new(transport.clone(), TokenBody::Json),
            transport,
            api_base: config.api_base_url.clone(),
            clock: Clock::system(),
        })
    }

    /// Token expiry and issue times on `clock` (the configured one; shifted only in test builds).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The consent URL: `audience`, `prompt=consent`, the scopes, and our signed `state`.
    pub fn authorize_url(&self, scopes: &[&str], state: &str) -> Url {
        let state = state.to_owned();
        let (url, _) = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(scopes.iter().map(|s| Scope::new((*s).to_owned())))
            .add_extra_param("audience", AUDIENCE)
            .add_extra_param("prompt", "consent")
            .url();
        url
    }

    pub async fn exchange_code(&self, code: &str) -> Result<TokenSet, OAuthError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        TokenSet::from_response(&response, None, self.clock.now())
    }

    /// The sites this access token reaches, one entry per site with the scopes of every product
    /// merged (Atlassian lists a site once per product).
    pub async fn accessible_sites(&self, access_token: &SecretString) -> Result<Vec<AccessibleSite>, OAuthError> {
        let url =
            self.api_base.join("oauth/token/accessible-resources").map_err(|e| OAuthError::Decode(e.to_string()))?;
        let entries: Vec<AccessibleSite> =
            self.transport.get_json(url, &Credentials::Bearer(access_token.clone())).await?;
        let mut sites: Vec<AccessibleSite> = Vec::new();
        for entry in entries {
            match sites.iter_mut().find(|s| s.id == entry.id) {
                Some(site) => {
                    for scope in entry.scopes {
                        if !site.scopes.contains(&scope) {
                            site.scopes.push(scope);
                        }
                    }
                }
                None => sites.push(entry),
            }
        }
        Ok(sites)
    }
}

#[async_trait]
impl TokenEndpoint for AtlassianOAuth {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, OAuthError> {
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let response =
            self.client.exchange_refresh_token(&token).request_async(&self.http).await.map_err(token_error)?;
        TokenSet::from_response(&response, Some(refresh_token), self.clock.now())
    }
}

pub(super) fn token_error(e: RequestTokenError<TokenHttpError, oauth2::basic::BasicErrorResponse>) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(r) if *r.error() == BasicErrorResponseType::InvalidGrant => {
            OAuthError::InvalidGrant
        }
        RequestTokenError::ServerResponse(r) if *r.error() == BasicErrorResponseType::InvalidClient => {
            OAuthError::InvalidClient
        }
        // Only the error code and description: Atlassian's description never echoes the secret.
        RequestTokenError::ServerResponse(r) => OAuthError::Refused(format!(
            "{}{}",
            r.error(),
            r.error_description().map(|d| format!(": {d}")).unwrap_or_default()
        )),
        RequestTokenError::Request(e) => OAuthError::Unreachable(e.to_string()),
        RequestTokenError::Parse(e, _) => OAuthError::Decode(e.to_string()),
        RequestTokenError::Other(e) => OAuthError::Decode(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_tokens_round_trip_and_debug_redacts() {
        let set = TokenSet {
            access_token: SecretString::from("at-123"),
            refresh_token: SecretString::from("rt-456"),
            expires_at: OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap(),
            scopes: vec!["read:jira-work".into()],
            issued_at: Some(OffsetDateTime::from_unix_timestamp(1_999_996_400).unwrap()),
        };
        let debug = format!("{set:?}");
        assert!(!debug.contains("at-123") && !debug.contains("rt-456"), "{debug}");
        let back = TokenSet::from_secret(&set.to_secret()).unwrap();
        assert_eq!(back.access_token.expose_secret(), "at-123");
        assert_eq!(back.refresh_token.expose_secret(), "rt-456");
        assert_eq!(back.expires_at, set.expires_at);
        assert_eq!(back.issued_at, set.issued_at);
    }

    /// Secrets written before the issue time was recorded still read, without one.
    #[test]
    fn a_secret_without_an_issue_time_reads_as_unknown() {
        let old = r#"{"access_token":"a","refresh_token":"r","expires_at":"2026-01-01T00:00:00Z","scopes":[]}"#;
        assert_eq!(TokenSet::from_secret(&SecretString::from(old)).unwrap().issued_at, None);
    }

    #[test]
    fn an_expires_in_that_overflows_a_date_is_refused_not_a_panic() {
        let response = |expires_in: &str| -> oauth2::basic::BasicTokenResponse {
            serde_json::from_str(&format!(
                r#"{{"access_token":"a","token_type":"bearer","refresh_token":"r","expires_in":{expires_in}}}"#
            ))
            .unwrap()
        };
        let err = TokenSet::from_response(&response(&u64::MAX.to_string()), None, OffsetDateTime::now_utc())
            .expect_err("refused");
        assert!(matches!(&err, OAuthError::Decode(m) if m.contains("expires_in is out of range")), "{err}");
        let ok = TokenSet::from_response(&response("3600"), None, OffsetDateTime::now_utc()).unwrap();
        assert!(ok.expires_at > OffsetDateTime::now_utc() + time::Duration::minutes(59));
    }

    #[test]
    fn a_corrupt_secret_error_does_not_echo_the_value() {
        let err = TokenSet::from_secret(&SecretString::from("{\"access_token\": \"leak-me\"")).unwrap_err();
        assert!(!err.contains("leak-me"));
    }
}
