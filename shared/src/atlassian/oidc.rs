//! Tokens from a customer's OAuth 2.0 / OIDC provider (client-credentials grant), for Server/DC
//! behind a REST API auth add-on. `oauth2-rs` builds the request (client_secret_basic or
//! client_secret_post) and parses the answer; the token URL passes the egress guard.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use url::Url;

use super::token_http::{TokenBody, TokenHttp};
use super::{AtlassianError, Transport};
use crate::credentials::ClientAuthMethod;

#[derive(Debug, Clone)]
pub struct OidcToken {
    pub access_token: SecretString,
    pub expires_at: OffsetDateTime,
}

pub struct OidcClient {
    http: TokenHttp,
}

/// Without `expires_in`, assume a short life: a cached token must not outlive the provider's.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

impl OidcClient {
    pub fn new(transport: Transport) -> Self {
        Self { http: TokenHttp::new(transport, TokenBody::Form) }
    }

    pub async fn fetch(
        &self,
        token_url: &Url,
        client_id: &str,
        client_secret: &SecretString,
        scope: Option<&str>,
        audience: Option<&str>,
        method: ClientAuthMethod,
    ) -> Result<OidcToken, AtlassianError> {
        let client = BasicClient::new(ClientId::new(client_id.to_owned()))
            .set_client_secret(ClientSecret::new(client_secret.expose_secret().to_owned()))
            .set_token_uri(TokenUrl::from_url(token_url.clone()))
            .set_auth_type(match method {
                ClientAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
                ClientAuthMethod::ClientSecretPost => AuthType::RequestBody,
            });
        let mut request = client.exchange_client_credentials();
        if let Some(scope) = scope {
            request = request.add_scopes(scope.split_whitespace().map(|s| Scope::new(s.to_owned())));
        }
        if let Some(audience) = audience {
            request = request.add_extra_param("audience", audience);
        }
        let response = request.request_async(&self.http).await.map_err(|e| match e {
            // A refused client id or secret is a credentials problem, like a 401 from the product.
            oauth2::RequestTokenError::ServerResponse(r)
                if matches!(
                    r.error(),
                    BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient
                ) =>
            {
                AtlassianError::api(
                    401,
                    super::ErrorPayload::Text(format!("the identity provider refused the client: {}", r.error())),
                )
            }
            oauth2::RequestTokenError::ServerResponse(r) => {
                AtlassianError::IdentityProvider(format!("it refused the token request ({})", r.error()))
            }
            oauth2::RequestTokenError::Request(e) => AtlassianError::IdentityProvider(e.to_string()),
            oauth2::RequestTokenError::Parse(_, _) => {
                AtlassianError::IdentityProvider("its answer is not a token response".into())
            }
            oauth2::RequestTokenError::Other(e) => AtlassianError::IdentityProvider(e),
        })?;
        token_from(&response, OffsetDateTime::now_utc())
    }
}

fn token_from(response: &oauth2::basic::BasicTokenResponse, now: OffsetDateTime) -> Result<OidcToken, AtlassianError> {
    let expires_at = super::token_http::expiry(now, response.expires_in().unwrap_or(DEFAULT_LIFETIME))
        .ok_or_else(|| AtlassianError::IdentityProvider("its token's expires_in is out of range".into()))?;
    Ok(OidcToken { access_token: SecretString::from(response.access_token().secret().to_owned()), expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(expires_in: &str) -> oauth2::basic::BasicTokenResponse {
        serde_json::from_str(&format!(r#"{{"access_token":"t","token_type":"bearer"{expires_in}}}"#)).unwrap()
    }

    #[test]
    fn an_expires_in_that_overflows_a_date_is_refused_not_a_panic() {
        let now = OffsetDateTime::now_utc();
        for huge in [u64::MAX.to_string(), (i64::MAX as u64).to_string(), "99999999999999".to_owned()] {
            let err = token_from(&response(&format!(r#","expires_in":{huge}"#)), now).expect_err("refused");
            assert!(err.to_string().contains("expires_in is out of range"), "{err}");
        }
        let token = token_from(&response(r#","expires_in":3600"#), now).unwrap();
        assert_eq!(token.expires_at, now + time::Duration::hours(1));
        assert_eq!(token_from(&response(""), now).unwrap().expires_at, now + DEFAULT_LIFETIME);
    }
}
