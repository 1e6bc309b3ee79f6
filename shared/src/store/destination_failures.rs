//! Refused credential checks per destination, counted across every tenant, and the locks they
//! lead to (see [`crate::lockout`], which holds the policy: this port only counts and locks).
//!
//! A destination is where a credential being registered or verified is sent and judged: a
//! Server/DC host, a Cloud site, an identity provider's token endpoint. Counting per destination
//! rather than per tenant is the point: an attacker spreading guesses over many tenants still
//! meets one counter.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::StoreError;
use crate::domain::TenantId;

/// What kind of destination a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// A Server/DC base URL's host (lower-cased, no port), or a Cloud site's host when the
    /// site answered no cloudId.
    Host,
    /// A Cloud site, by its cloudId.
    Site,
    /// An identity provider's token endpoint (host and path) for OIDC client credentials.
    TokenUrl,
}

impl DestinationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Site => "site",
            Self::TokenUrl => "token_url",
        }
    }
}

/// One destination. Built only by [`crate::lockout`]'s constructors, which normalise the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub kind: DestinationKind,
    pub key: String,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.key)
    }
}

/// A destination's count after one more refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureTally {
    /// Refusals in the current window, this one included.
    pub failures: u32,
    /// How many different tenants they came from.
    pub tenants: u32,
    /// When the current window started (the first refusal in it, at the adapter's millisecond
    /// resolution).
    pub window_started: OffsetDateTime,
}

#[async_trait]
pub trait DestinationFailureStore: Send + Sync {
    /// Until when `destination` is locked, when a lock ending after `now` is stored. One
    /// strongly consistent read.
    async fn locked_until(
        &self,
        destination: &Destination,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Counts one refusal by `tenant`: into the current window when it started less than
    /// `window` before `now`, else into a new window starting `now`. Answers the tally after it.
    async fn add_failure(
        &self,
        destination: &Destination,
        tenant: &TenantId,
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> Result<FailureTally, StoreError>;

    /// Locks `destination` until `until`, unless a lock ending after `now` is stored already.
    /// `true` when this call locked it: of callers racing to lock, exactly one gets `true` (and
    /// reports the lock, once).
    async fn lock(
        &self,
        destination: &Destination,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}
