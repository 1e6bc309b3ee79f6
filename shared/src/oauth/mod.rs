//! Atlassian Cloud OAuth 2.0 (3LO): signed state, the authorization server client, and the token
//! provider every function uses.

mod client;
pub mod dc;
mod state;
mod tokens;

pub use client::{AccessibleSite, AtlassianOAuth, OAuthError, TokenEndpoint, TokenSet};
pub use state::{StateClaims, StateError, StateSigner, new_confirmation_code, new_state_id};
pub use tokens::{TokenError, TokenProvider};
