//! The session of a connection made from a Connect (or Connect on Forge) installation.

use crate::access::{AccessError, Connector};
use crate::atlassian::Session;
use crate::domain::Connection;

impl Connector {
    /// Each request to the installation's `baseUrl` signed with a fresh HS256 JWT.
    pub(crate) async fn connect_session(&self, connection: &Connection) -> Result<Session, AccessError> {
        // Owned by the Connect work (issue 14): until then a Connect connection cannot be used.
        Err(AccessError::NotConnected(connection.product))
    }
}
