//! Talking to Atlassian: one transport (client, auth, retries) and typed errors.

mod error;
mod transport;

pub use error::{AtlassianError, ErrorPayload};
pub use transport::{Credentials, RetryPolicy, Transport};
