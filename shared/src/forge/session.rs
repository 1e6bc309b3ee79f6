//! The session of a connection made from a Forge installation.

use crate::access::{AccessError, Connector};
use crate::atlassian::Session;
use crate::domain::Connection;

impl Connector {
    /// Bearer with the installation's latest app system token, through
    /// `api.atlassian.com/ex/{product}/{cloudId}`.
    pub(crate) async fn forge_session(&self, connection: &Connection) -> Result<Session, AccessError> {
        // Owned by the Forge work (issue 14): until then a Forge connection cannot be used.
        Err(AccessError::NotConnected(connection.product))
    }
}
