//! Marketplace-app installations (Connect, Connect on Forge, Forge) and the one-time codes that
//! link one to a tenant (`crate::apps`).
//!
//! An installation belongs to Atlassian's side (a site installed our app on one product); a tenant
//! belongs to the SaaS's side. They meet once, when an admin types a one-time code from the SaaS
//! into the app's configure (Connect) or admin (Forge) page: from then on the installation is the
//! tenant's connection for that product. The secret (Connect's `sharedSecret`, Forge's latest app
//! system token) lives in Secrets Manager under the installation's `secret_name`, never here.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{Product, TenantId};

/// Which app model an installation came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// Connect, or Connect on Forge: installs signed RS256, requests HS256 with the shared secret.
    Connect,
    /// Forge Remote: Forge Invocation Tokens on requests to us, app system tokens to Atlassian.
    Forge,
}

impl AppKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Forge => "forge",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "connect" => Some(Self::Connect),
            "forge" => Some(Self::Forge),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallationStatus {
    Installed,
    /// Uninstalled: kept for audit, its secret deleted, nothing uses it.
    Uninstalled,
}

/// One installation of the app on one product of one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub kind: AppKind,
    /// Connect: the `clientKey`. Forge: the installation id (`ari:cloud:ecosystem::installation/…`).
    pub id: String,
    pub product: Product,
    /// The product's base URL as Atlassian announced it: Connect's `baseUrl` (Confluence's ends
    /// in `/wiki`), Forge's site URL.
    pub base_url: String,
    /// The site's cloudId (Connect sends it in the install payload; Forge in the FIT's context).
    pub cloud_id: Option<String>,
    /// Where the secret is (Connect shared secret / Forge app system token); a reinstall writes a
    /// new version of the same secret.
    pub secret_name: String,
    pub status: InstallationStatus,
    /// The tenant it is linked to, if any. One installation serves one tenant.
    pub tenant: Option<TenantId>,
    /// Incremented by every install (a reinstall with a new shared secret is a new generation):
    /// a lifecycle callback for an older generation changes nothing.
    pub generation: u64,
    pub installed_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A one-time code that links an installation to a tenant's connection for `product`. Only its
/// HMAC digest is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCode {
    /// HMAC-SHA256 of the code under the deployment's state key (base64url).
    pub digest: String,
    pub tenant: TenantId,
    pub product: Product,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait InstallationStore: Send + Sync {
    async fn installation(&self, kind: AppKind, id: &str) -> Result<Option<Installation>, StoreError>;
    /// Writes an install or reinstall: a new record, or the existing one with its fields replaced,
    /// keeping its `tenant` link and `installed_at`. Conditional on the stored generation being
    /// `installation.generation - 1` (or no record and generation 1): `false`, nothing written,
    /// when another install won.
    async fn put_installation(&self, installation: &Installation) -> Result<bool, StoreError>;
    /// Marks it uninstalled (kept for audit) and unlinks it; answers the record as it was, or
    /// `None` when there is none.
    async fn uninstall(&self, kind: AppKind, id: &str, at: OffsetDateTime) -> Result<Option<Installation>, StoreError>;
    /// Links an installed installation to `tenant`: `false` when it is uninstalled, gone, or
    /// linked to another tenant (one installation serves one tenant). Linking again to the same
    /// tenant is `true`.
    async fn link(&self, kind: AppKind, id: &str, tenant: &TenantId, at: OffsetDateTime) -> Result<bool, StoreError>;
    /// Removes the link if it is still `tenant`'s.
    async fn unlink(&self, kind: AppKind, id: &str, tenant: &TenantId, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Stores a link code, replacing the tenant's earlier one for the same product.
    async fn put_link_code(&self, code: &LinkCode) -> Result<(), StoreError>;
    /// Takes the code with this digest (single use: a second take finds nothing), if it has not
    /// expired at `now`.
    async fn take_link_code(&self, digest: &str, now: OffsetDateTime) -> Result<Option<LinkCode>, StoreError>;
}
