//! Forge Remote: the Forge app's `invokeRemote` calls and remote triggers reach us with a Forge
//! Invocation Token (verified in [`fit`] against the keys of [`jwks`]), and bring the app system
//! token we call Atlassian with ([`tokens`], used by [`session`]).

pub mod fit;
pub mod jwks;
pub mod session;
pub mod tokens;

/// What a Forge route answers (Forge wants `Content-Type: application/json`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ForgeAnswer {
    /// `installed`, `uninstalled`, `ignored`, `linked`, `token_stored` or `token_kept`.
    pub outcome: String,
}

/// A lifecycle event's body (`avi:forge:installed:app`, `avi:forge:upgraded:app`,
/// `avi:forge:uninstalled:app`): only its type is read, every fact comes from the FIT.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForgeLifecycleEvent {
    pub event_type: String,
}

/// The admin page's `invokeRemote` body: the one-time code the SaaS issued
/// (`POST /v1/tenants/{tenant}/connections/{product}/app-link`).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct ForgeLinkRequest {
    pub code: String,
}

/// A scheduled trigger's body (its content is not used).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct ForgeScheduledTrigger {}
