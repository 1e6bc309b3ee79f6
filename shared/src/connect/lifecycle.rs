//! The bodies of the Connect app's own routes (`functions/app-lifecycle/src/connect.rs`).

use crate::domain::Product;

/// What the configure page sends: the one-time code the SaaS showed the tenant's admin.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The code from `POST /v1/tenants/{tenant}/connections/{product}/app-link`.
    pub code: String,
}

/// The installation is now the tenant's connection for `product`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Linked {
    /// Always `linked`.
    pub status: &'static str,
    pub product: Product,
}
