//! Atlassian Connect (and "Connect on Forge") authentication: the query string hash that binds a
//! JWT to one request ([`qsh`]), and the HS256 JWTs signed with an installation's shared secret
//! ([`jwt`]). The lifecycle (install, uninstall) and the asymmetric install JWTs build on these:
//! [`install`] verifies the RS256 lifecycle tokens against Atlassian's install-key CDN,
//! [`descriptor`] is the app descriptor, [`session`] the signed session of a linked installation.

pub mod descriptor;
pub mod install;
pub mod jwt;
pub mod lifecycle;
pub mod qsh;
pub mod session;

/// The Secrets Manager name of a Connect installation's secret: under the deployment's prefix,
/// by a digest of the `clientKey` (a client key may hold characters a secret name may not).
pub fn secret_name(prefix: &str, client_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(client_key.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}apps/connect/{hex}")
}
