//! Marketplace-app installations as tenant connections: what Connect (`crate::connect`) and Forge
//! (`crate::forge`) share once an installation is verified.
//!
//! Atlassian tells us about an installation (a site installed the app on one product); the SaaS
//! knows its tenants. The two meet through a one-time code: the SaaS asks for one under the
//! tenant's token (`POST /v1/tenants/{tenant}/connections/{product}/app-link`), shows it to the
//! tenant's admin, and the admin enters it on the app's configure (Connect) or admin (Forge) page,
//! whose request carries Atlassian's signature for the installation. Only that pairing — a code
//! the tenant's token asked for, a request Atlassian signed for the installation — links them,
//! so neither a leaked code without the site's admin, nor a site admin without the tenant's code,
//! can connect a site to a tenant.

use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{AuthType, Connection, ConnectionStatus, Deployment, Product, Site, TenantId};
use crate::error::{ApiError, ErrorCode};
use crate::oauth::StateSigner;
use crate::store::{
    AppKind, ConnectionStore, CredentialStore, Installation, InstallationStatus, InstallationStore, LinkCode,
    StoreError,
};

/// The stores linking touches.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    pub installations: &'a dyn InstallationStore,
    pub connections: &'a dyn ConnectionStore,
    pub credentials: &'a dyn CredentialStore,
}

/// A code handed to the SaaS, shown once.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IssuedLinkCode {
    /// Enter this on the app's configure (Connect) or admin (Forge) page within `expires_in` seconds.
    pub code: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    pub expires_in: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the link code is wrong, used, expired, or for another product; ask for a new one")]
    InvalidCode,
    #[error("this installation is linked to another tenant, or is no longer installed")]
    Unavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::InvalidCode => ApiError::new(ErrorCode::InvalidLinkCode, e.to_string()),
            LinkError::Unavailable => ApiError::new(ErrorCode::InstallationLinked, e.to_string()),
            LinkError::Store(e) => e.into(),
        }
    }
}

/// A fresh code for linking an installation to `tenant`'s `product` connection; the tenant's
/// earlier unused code for the product stops working.
pub async fn issue_code(
    installations: &dyn InstallationStore,
    signer: &StateSigner,
    tenant: &TenantId,
    product: Product,
    ttl: Duration,
    now: OffsetDateTime,
) -> Result<IssuedLinkCode, StoreError> {
    // Short enough to type from the SaaS's screen, long enough that guessing within its ten
    // minutes is hopeless: 20 characters of an unambiguous alphabet, ~100 bits.
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let code: String = (0..20)
        .map(|i| {
            let c = ALPHABET[rand::random_range(0..ALPHABET.len())] as char;
            if i > 0 && i % 5 == 0 { format!("-{c}") } else { c.to_string() }
        })
        .collect();
    let expires_at = now + ttl;
    installations
        .put_link_code(&LinkCode {
            digest: signer.link_code_digest(&normalize(&code)),
            tenant: tenant.clone(),
            product,
            created_at: now,
            expires_at,
        })
        .await?;
    Ok(IssuedLinkCode { code, expires_at, expires_in: ttl.as_secs() })
}

/// Codes are compared without dashes, spaces or case (people retype them).
fn normalize(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// Links a verified installation to the tenant whose code this is, and makes it the tenant's
/// connection for the installation's product (replacing an earlier connection of the product).
/// The code is used up whatever the outcome.
pub async fn redeem(
    stores: Stores<'_>,
    signer: &StateSigner,
    code: &str,
    installation: &Installation,
    now: OffsetDateTime,
) -> Result<Connection, LinkError> {
    let digest = signer.link_code_digest(&normalize(code));
    let code = stores.installations.take_link_code(&digest, now).await?.ok_or(LinkError::InvalidCode)?;
    if code.product != installation.product {
        return Err(LinkError::InvalidCode);
    }
    if installation.status != InstallationStatus::Installed
        || !stores.installations.link(installation.kind, &installation.id, &code.tenant, now).await?
    {
        return Err(LinkError::Unavailable);
    }
    let previous = stores.connections.get(&code.tenant, code.product).await?;
    let connection = connection_of(installation, &code.tenant, now);
    stores.connections.put_all(std::slice::from_ref(&connection)).await?;
    if let Some(previous) = previous {
        retire(stores, &previous, now).await;
    }
    tracing::info!(
        tenant = %code.tenant, product = %code.product, kind = installation.kind.as_str(),
        "app installation linked to the tenant"
    );
    Ok(connection)
}

/// What the replaced connection leaves behind: another installation's link, or a secret of
/// the tenant's own that nothing uses now.
async fn retire(stores: Stores<'_>, previous: &Connection, now: OffsetDateTime) {
    match installation_kind(previous.auth_type) {
        Some(kind) => {
            if let Err(e) = stores.installations.unlink(kind, &previous.grant_id, &previous.tenant, now).await {
                tracing::warn!(error = %e, "could not unlink the replaced installation");
            }
        }
        None => {
            crate::consent::retire_unused_secrets(
                crate::consent::Stores { connections: stores.connections, credentials: stores.credentials },
                &previous.tenant,
                vec![previous.clone()],
            )
            .await
        }
    }
}

/// The connection a linked installation is: Cloud, connected, on the installation's site; its
/// `grant_id` is the installation's id and its secret the installation's.
pub fn connection_of(installation: &Installation, tenant: &TenantId, now: OffsetDateTime) -> Connection {
    let auth_type = match installation.kind {
        AppKind::Connect => AuthType::Connect,
        AppKind::Forge => AuthType::Forge,
    };
    let site_url = site_url(&installation.base_url, installation.product);
    Connection {
        tenant: tenant.clone(),
        product: installation.product,
        deployment: Deployment::Cloud,
        auth_type,
        status: ConnectionStatus::Connected,
        site: installation.cloud_id.as_ref().map(|cloud_id| Site {
            cloud_id: cloud_id.clone(),
            url: site_url.clone(),
            name: url::Url::parse(&site_url)
                .ok()
                .and_then(|u| u.host_str().and_then(|h| h.split('.').next()).map(str::to_owned))
                .unwrap_or_default(),
        }),
        base_url: Some(installation.base_url.clone()),
        scoped_token: false,
        acting_as: None,
        candidate_sites: Vec::new(),
        scopes: scopes(installation.kind, installation.product),
        grant_id: installation.id.clone(),
        secret_name: installation.secret_name.clone(),
        created_at: now,
        updated_at: now,
        last_verified_at: None,
    }
}

/// The scopes the app's descriptor (Connect) or manifest (Forge) asks for.
pub fn scopes(kind: AppKind, product: Product) -> Vec<String> {
    match kind {
        // Connect scopes are coarse; DELETE is for deleting the issues we published.
        AppKind::Connect => ["READ", "WRITE", "DELETE"].map(String::from).to_vec(),
        AppKind::Forge => product.oauth_scopes().iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The site root of a product base URL (Confluence's Connect `baseUrl` ends in `/wiki`).
pub fn site_url(base_url: &str, product: Product) -> String {
    let base = base_url.trim_end_matches('/');
    match product {
        Product::Confluence => base.strip_suffix("/wiki").unwrap_or(base).to_owned(),
        Product::Jira => base.to_owned(),
    }
}

/// The installation kind of a connection made from one.
pub fn installation_kind(auth_type: AuthType) -> Option<AppKind> {
    match auth_type {
        AuthType::Connect => Some(AppKind::Connect),
        AuthType::Forge => Some(AppKind::Forge),
        _ => None,
    }
}

/// After an uninstall: the tenant's connection that used the installation goes (the
/// installation's record stays, for audit; its secret is deleted by the caller).
pub async fn uninstalled(stores: Stores<'_>, was: &Installation) -> Result<(), StoreError> {
    let Some(tenant) = &was.tenant else { return Ok(()) };
    if let Some(connection) = stores.connections.get(tenant, was.product).await?
        && connection.grant_id == was.id
        && installation_kind(connection.auth_type) == Some(was.kind)
    {
        stores.connections.delete(tenant, was.product).await?;
        tracing::info!(tenant = %tenant, product = %was.product, "app uninstalled: its connection removed");
    }
    Ok(())
}

/// Disconnecting a connection made from an installation: the link goes, the installation (and
/// its secret, which belongs to the installation) stays for a later link.
pub async fn disconnected(stores: Stores<'_>, connection: &Connection, now: OffsetDateTime) -> Result<(), StoreError> {
    if let Some(kind) = installation_kind(connection.auth_type) {
        stores.installations.unlink(kind, &connection.grant_id, &connection.tenant, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
