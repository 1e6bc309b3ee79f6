//! Credentials a tenant registers for a Server/DC or API-token connection. They are accepted in
//! the API body, verified, stored as one Secrets Manager secret per connection, and never shown
//! again. Basic credentials are stored encrypted, not hashed, because they must be sent.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::{AuthType, Deployment};

/// How a token request to the customer's OAuth 2.0 / OIDC provider authenticates the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

/// The `auth` object of `PUT .../connections/{product}`, and the stored secret's shape.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConnectionAuth {
    /// Cloud: an Atlassian account's email and API token, sent as Basic.
    ApiToken {
        email: String,
        #[schema(value_type = String, format = Password)]
        token: SecretString,
    },
    /// Server/DC: a (preferably dedicated integration) user's name and password, sent as Basic.
    Basic {
        username: String,
        #[schema(value_type = String, format = Password)]
        password: SecretString,
    },
    /// Server/DC: a Personal Access Token, sent as Bearer.
    Pat {
        #[schema(value_type = String, format = Password)]
        token: SecretString,
    },
    /// Server/DC behind an OAuth 2.0 / OIDC provider that the REST API auth add-on trusts: the
    /// client-credentials grant, its token sent as Bearer.
    OidcClientCredentials {
        token_url: String,
        client_id: String,
        #[schema(value_type = String, format = Password)]
        client_secret: SecretString,
        #[serde(default)]
        scope: Option<String>,
        #[serde(default)]
        audience: Option<String>,
        #[serde(default)]
        client_auth: ClientAuthMethod,
    },
}

impl ConnectionAuth {
    pub fn auth_type(&self) -> AuthType {
        match self {
            Self::ApiToken { .. } => AuthType::ApiToken,
            Self::Basic { .. } => AuthType::Basic,
            Self::Pat { .. } => AuthType::Pat,
            Self::OidcClientCredentials { .. } => AuthType::OidcClientCredentials,
        }
    }

    /// Which deployments each kind of credential belongs to.
    pub fn fits(&self, deployment: Deployment) -> bool {
        match self {
            Self::ApiToken { .. } => deployment == Deployment::Cloud,
            _ => deployment != Deployment::Cloud,
        }
    }

    /// The first empty field, named for the error message.
    pub fn empty_field(&self) -> Option<&'static str> {
        let blank = |s: &str| s.trim().is_empty();
        match self {
            Self::ApiToken { email, token } => {
                [("auth.email", blank(email)), ("auth.token", blank(token.expose_secret()))]
                    .into_iter()
                    .find(|f| f.1)
                    .map(|f| f.0)
            }
            Self::Basic { username, password } => {
                [("auth.username", blank(username)), ("auth.password", password.expose_secret().is_empty())]
                    .into_iter()
                    .find(|f| f.1)
                    .map(|f| f.0)
            }
            Self::Pat { token } => blank(token.expose_secret()).then_some("auth.token"),
            Self::OidcClientCredentials { token_url, client_id, client_secret, .. } => [
                ("auth.token_url", blank(token_url)),
                ("auth.client_id", blank(client_id)),
                ("auth.client_secret", blank(client_secret.expose_secret())),
            ]
            .into_iter()
            .find(|f| f.1)
            .map(|f| f.0),
        }
    }

    /// The stored form (the one place the secrets are exposed for serialization).
    pub fn to_secret(&self) -> SecretString {
        let value = match self {
            Self::ApiToken { email, token } => {
                serde_json::json!({"type": "api_token", "email": email, "token": token.expose_secret()})
            }
            Self::Basic { username, password } => {
                serde_json::json!({"type": "basic", "username": username, "password": password.expose_secret()})
            }
            Self::Pat { token } => serde_json::json!({"type": "pat", "token": token.expose_secret()}),
            Self::OidcClientCredentials { token_url, client_id, client_secret, scope, audience, client_auth } => {
                serde_json::json!({
                    "type": "oidc_client_credentials", "token_url": token_url, "client_id": client_id,
                    "client_secret": client_secret.expose_secret(), "scope": scope, "audience": audience, "client_auth": client_auth,
                })
            }
        };
        SecretString::from(value.to_string())
    }

    pub fn from_secret(secret: &SecretString) -> Result<Self, String> {
        // serde's message can quote the offending value, so only its position is kept.
        serde_json::from_str(secret.expose_secret()).map_err(|e| {
            format!(
                "connection secret is unreadable ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_the_stored_form_and_debug_hides_secrets() {
        let inputs = [
            r#"{"type":"api_token","email":"a@b.test","token":"tok-1"}"#,
            r#"{"type":"basic","username":"bot","password":"pw-2"}"#,
            r#"{"type":"pat","token":"pat-3"}"#,
            r#"{"type":"oidc_client_credentials","token_url":"https://idp.test/token","client_id":"c","client_secret":"cs-4","client_auth":"client_secret_post"}"#,
        ];
        for (input, secret) in inputs.iter().zip(["tok-1", "pw-2", "pat-3", "cs-4"]) {
            let auth: ConnectionAuth = serde_json::from_str(input).unwrap();
            assert!(!format!("{auth:?}").contains(secret));
            let back = ConnectionAuth::from_secret(&auth.to_secret()).unwrap();
            assert_eq!(back.auth_type(), auth.auth_type());
            assert!(back.to_secret().expose_secret().contains(secret));
        }
    }

    #[test]
    fn unknown_fields_and_types_are_refused_without_echoing_secrets() {
        for bad in [
            r#"{"type":"basic","username":"u","password":"pw-leak","extra":1}"#,
            r#"{"type":"kerberos","ticket":"t"}"#,
            r#"{"username":"u","password":"pw-leak"}"#,
        ] {
            let err = serde_json::from_str::<ConnectionAuth>(bad).unwrap_err().to_string();
            assert!(!err.contains("pw-leak"), "{err}");
        }
    }

    #[test]
    fn credentials_fit_their_deployments() {
        let pat: ConnectionAuth = serde_json::from_str(r#"{"type":"pat","token":"x"}"#).unwrap();
        assert!(pat.fits(Deployment::Datacenter) && pat.fits(Deployment::Server) && !pat.fits(Deployment::Cloud));
        let api: ConnectionAuth = serde_json::from_str(r#"{"type":"api_token","email":"e","token":"x"}"#).unwrap();
        assert!(api.fits(Deployment::Cloud) && !api.fits(Deployment::Datacenter));
        let blank: ConnectionAuth = serde_json::from_str(r#"{"type":"basic","username":" ","password":"x"}"#).unwrap();
        assert_eq!(blank.empty_field(), Some("auth.username"));
    }
}
