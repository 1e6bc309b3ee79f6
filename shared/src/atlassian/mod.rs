//! Talking to Atlassian: one transport (client, egress guard, auth, retries), typed errors, and
//! sessions that know a connection's base URL, credentials and API flavour.

pub mod confluence;
mod egress;
mod error;
pub mod jira;
mod oidc;
pub(crate) mod session;
pub(crate) mod token_http;
mod transport;

pub use egress::{EgressError, EgressPolicy, is_public};
pub use error::{AtlassianError, Class, ErrorPayload};
pub use oidc::{OidcClient, OidcToken};
pub use session::{CredentialWatch, Flavour, Session, TokenRenewal};
pub use transport::{Credentials, FileUpload, Payload, RetryPolicy, Transport};
