//! The session of a connection made from a Connect (or Connect on Forge) installation.
//!
//! The installation's secret (Secrets Manager, under the installation's `secret_name`) holds the
//! app key it was installed for and the `sharedSecret` of its latest install. Requests go to the
//! site root (`https://{site}.atlassian.net`), so the product paths the rest of the bridge uses
//! (`rest/api/3/...`, `wiki/api/v2/...`) work unchanged; each is signed with a fresh JWT whose
//! `qsh` is computed under the installation's `baseUrl` (Confluence's `.../wiki` is the context
//! path). Requests act as the app's own user (Atlassian, "Security for Connect apps": "The app
//! has its own app user"), so `myself` / `user/current` name that user.

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::jwt::SharedSecret;
use crate::access::{AccessError, Connector};
use crate::atlassian::{Credentials, Flavour, Session};
use crate::domain::Connection;
use crate::store::StoreError;

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSecret {
    kind: String,
    app_key: String,
    shared_secret: String,
}

const KIND: &str = "connect";

/// The secret value stored for an installation (JSON; never logged).
pub fn secret_value(app_key: &str, shared_secret: &str) -> SecretString {
    let value = StoredSecret { kind: KIND.into(), app_key: app_key.into(), shared_secret: shared_secret.into() };
    SecretString::from(serde_json::to_string(&value).unwrap_or_default())
}

/// The app key and shared secret of a stored installation secret.
pub fn read_secret(value: &SecretString) -> Result<(String, SharedSecret), String> {
    let stored: StoredSecret = serde_json::from_str(value.expose_secret())
        .map_err(|_| "the Connect installation's secret is not what the install stored".to_owned())?;
    if stored.kind != KIND || stored.shared_secret.is_empty() {
        return Err("the Connect installation's secret is not what the install stored".into());
    }
    Ok((stored.app_key, SharedSecret::from(stored.shared_secret)))
}

impl Connector {
    /// Each request to the installation's site signed with a fresh HS256 JWT.
    pub(crate) async fn connect_session(&self, connection: &Connection) -> Result<Session, AccessError> {
        let stored = self
            .credentials
            .get(&connection.secret_name)
            .await?
            // Uninstalled meanwhile (its secret deleted): nothing to use.
            .ok_or(AccessError::NotConnected(connection.product))?;
        let (app_key, secret) = read_secret(&stored.value).map_err(StoreError::Corrupt)?;
        let base_url =
            connection.base_url.as_deref().ok_or_else(|| StoreError::Corrupt("connection has no base URL".into()))?;
        let site_root = crate::apps::site_url(base_url, connection.product);
        let site = Url::parse(&site_root).map_err(|e| StoreError::Corrupt(format!("base URL: {e}")))?;
        let credentials = Credentials::ConnectJwt { app_key, secret, base_url: base_url.trim_end_matches('/').into() };
        let session = Session::new(self.transport.clone(), site, connection.product, Flavour::Cloud, credentials)
            .with_watch(self.watch(connection));
        let session = match &connection.site {
            Some(site) => session.with_site_id(&site.cloud_id),
            None => session,
        };
        Ok(self.governed(session, connection))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_secret_round_trips_and_nothing_else_reads_as_one() {
        let value = secret_value("com.example.bridge", "shh-0123456789");
        let (key, secret) = read_secret(&value).unwrap();
        assert_eq!(key, "com.example.bridge");
        assert!(!format!("{secret:?}").contains("shh"));
        for other in [
            r#"{"type":"api_token","email":"a","token":"b"}"#,
            "not json",
            r#"{"kind":"connect","app_key":"k","shared_secret":""}"#,
        ] {
            assert!(read_secret(&SecretString::from(other)).is_err(), "{other}");
        }
    }
}
