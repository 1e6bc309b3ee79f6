//! Domain types shared by every function: tenants, products, connections.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A tenant id from the path, checked to be safe inside DynamoDB keys and secret names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("tenant id must be 1 to 64 characters of letters, digits, '-' or '_'")]
pub struct InvalidTenantId;

impl TenantId {
    pub fn parse(value: &str) -> Result<Self, InvalidTenantId> {
        let ok = (1..=64).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(Self(value.to_owned())) } else { Err(InvalidTenantId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Atlassian product a tenant connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    Jira,
    Confluence,
}

impl Product {
    pub const ALL: [Product; 2] = [Product::Jira, Product::Confluence];

    pub fn as_str(self) -> &'static str {
        match self {
            Product::Jira => "jira",
            Product::Confluence => "confluence",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "jira" => Some(Product::Jira),
            "confluence" => Some(Product::Confluence),
            _ => None,
        }
    }

    /// The OAuth 2.0 (3LO) scopes this product's jobs need, `offline_access` excluded.
    ///
    /// Taken from the `security` entries of the operations we call in the official specs, not
    /// from memory: Confluence Cloud's v2 page and space endpoints accept only granular scopes,
    /// and attachment upload (v1 `PUT /child/attachment`) needs `write:confluence-file`.
    pub fn oauth_scopes(self) -> &'static [&'static str] {
        match self {
            Product::Jira => &["read:jira-work", "write:jira-work", "read:jira-user"],
            Product::Confluence => {
                &["read:space:confluence", "read:page:confluence", "write:page:confluence", "write:confluence-file"]
            }
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one OAuth consent asks for: one product, or both in a single consent (one grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentTarget {
    Jira,
    Confluence,
    Atlassian,
}

impl ConsentTarget {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "jira" => Some(Self::Jira),
            "confluence" => Some(Self::Confluence),
            "atlassian" => Some(Self::Atlassian),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jira => "jira",
            Self::Confluence => "confluence",
            Self::Atlassian => "atlassian",
        }
    }

    pub fn products(self) -> &'static [Product] {
        match self {
            Self::Jira => &[Product::Jira],
            Self::Confluence => &[Product::Confluence],
            Self::Atlassian => &Product::ALL,
        }
    }

    /// Every scope to request: the products' scopes plus `offline_access` for a refresh token.
    pub fn scopes(self) -> Vec<&'static str> {
        let mut scopes: Vec<&'static str> =
            self.products().iter().flat_map(|p| p.oauth_scopes().iter().copied()).collect();
        scopes.push("offline_access");
        scopes
    }

    /// A fresh grant id for one consent: `oauth-{target}-{random}`. Each consent gets its own
    /// (and so its own secret, named after it), so a refresh still in flight for an older grant
    /// can never overwrite the token pair of a newer consent; a combined consent's two
    /// connections share theirs.
    pub fn new_grant_id(self) -> String {
        format!("oauth-{}-{}", self.as_str(), &uuid::Uuid::new_v4().simple().to_string()[..16])
    }

    /// The consent target a grant id was made for: `oauth-{target}-{random}`, or the fixed
    /// `oauth-{target}` of grants stored before grant ids were random.
    pub fn of_grant(grant_id: &str) -> Option<Self> {
        let rest = grant_id.strip_prefix("oauth-")?;
        let target = rest.split_once('-').map_or(rest, |(target, _)| target);
        Self::parse(target)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Deployment {
    Cloud,
    Server,
    Datacenter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// OAuth 2.0 (3LO) with rotating refresh tokens.
    Oauth2,
    /// Cloud: email + API token (Basic).
    ApiToken,
    /// Server/DC: username + password (Basic).
    Basic,
    /// Server/DC: Personal Access Token (Bearer).
    Pat,
    /// Server/DC: a token from the customer's OAuth 2.0 / OIDC provider (Bearer).
    OidcClientCredentials,
    /// Cloud: a Connect (or Connect on Forge) app's installation, linked to the tenant; each
    /// request signed with a fresh HS256 JWT (`shared/src/connect`).
    Connect,
    /// Cloud: a Forge app's installation, linked to the tenant; the app system token Forge last
    /// handed us (Bearer, through `api.atlassian.com/ex/...`; `shared/src/forge`).
    Forge,
    /// Server/DC: OAuth 2.0 through an incoming application link (authorization code + PKCE,
    /// refresh tokens, `shared/src/oauth/dc.rs`).
    DcOauth2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    /// The consent covered several sites; an admin picks one with `PUT .../site`.
    SiteSelectionRequired,
    /// The refresh token was refused (`invalid_grant`): only a new consent helps.
    ReconnectRequired,
    /// The product answered 401/403 to the stored credentials at the last verification.
    InvalidCredentials,
    /// An OAuth consent came back but its confirmation (`POST .../oauth/confirm` with the
    /// one-time code from the redirect, under the tenant's token) has not arrived yet; nothing
    /// uses the grant until then, and it is deleted when the confirmation does not come in time.
    PendingConfirmation,
}

/// An Atlassian Cloud site (a `cloudId`) a grant can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Site {
    pub cloud_id: String,
    pub url: String,
    pub name: String,
}

/// A tenant's connection to one product. Holds the name of the secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub tenant: TenantId,
    pub product: Product,
    pub deployment: Deployment,
    pub auth_type: AuthType,
    pub status: ConnectionStatus,
    /// The chosen site; `None` while a site selection is pending (OAuth only).
    pub site: Option<Site>,
    /// The product's base URL for token and Server/DC connections (context path kept).
    pub base_url: Option<String>,
    /// A Cloud API token that is scoped (every service-account token is): it works only through
    /// `api.atlassian.com/ex/{product}/{cloudId}` (with `site`), never on the site URL.
    pub scoped_token: bool,
    /// Who the credentials act as, as the product named them at verification.
    pub acting_as: Option<String>,
    /// Sites the grant reaches that carry the needed scopes (the choices for a site selection).
    pub candidate_sites: Vec<Site>,
    pub scopes: Vec<String>,
    /// Secrets grouped by grant: two connections made by one consent share one secret.
    pub grant_id: String,
    pub secret_name: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_verified_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_restricted_to_key_safe_characters() {
        assert!(TenantId::parse("acme-42_x").is_ok());
        for bad in ["", "a/b", "a#b", "ümlaut", &"x".repeat(65), "a b"] {
            assert_eq!(TenantId::parse(bad), Err(InvalidTenantId), "{bad:?}");
        }
    }

    #[test]
    fn one_consent_for_both_products_asks_for_both_scope_sets_once() {
        let scopes = ConsentTarget::Atlassian.scopes();
        assert!(scopes.contains(&"read:jira-work"));
        assert!(scopes.contains(&"write:page:confluence"));
        assert_eq!(scopes.iter().filter(|s| **s == "offline_access").count(), 1);
        assert_eq!(ConsentTarget::Jira.scopes().last(), Some(&"offline_access"));
    }

    #[test]
    fn each_consent_gets_its_own_grant_id_that_names_its_target() {
        for target in [ConsentTarget::Jira, ConsentTarget::Confluence, ConsentTarget::Atlassian] {
            let (a, b) = (target.new_grant_id(), target.new_grant_id());
            assert_ne!(a, b);
            assert_eq!(ConsentTarget::of_grant(&a), Some(target));
            assert!(a.starts_with(&format!("oauth-{}-", target.as_str())), "{a}");
        }
        // Grants stored before ids were random keep working.
        assert_eq!(ConsentTarget::of_grant("oauth-atlassian"), Some(ConsentTarget::Atlassian));
        assert_eq!(ConsentTarget::of_grant("conn-jira-abc"), None);
    }
}
