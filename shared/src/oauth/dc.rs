//! Data Center OAuth 2.0 through an incoming application link (Jira 8.22+, Confluence 7.20+).

use crate::access::{AccessError, Connector};
use crate::atlassian::Session;
use crate::domain::Connection;

impl Connector {
    /// Bearer with the grant's access token, refreshed under the single-refresher lease.
    pub(crate) async fn dc_oauth_session(&self, connection: &Connection) -> Result<Session, AccessError> {
        // Owned by the DC OAuth work (issue 14): until then such a connection cannot be used.
        Err(AccessError::NotConnected(connection.product))
    }
}
