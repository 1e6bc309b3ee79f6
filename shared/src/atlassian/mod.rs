//! Talking to Atlassian: one transport (client, egress guard, auth, retries), typed errors, and
//! sessions that know a connection's base URL, credentials and API flavour.
//!
//! Every request to Jira or Confluence is built in [`jira`] or [`confluence`], one module per
//! product area: they choose the path for the deployment (Cloud or Server/DC), send it through
//! the session and read the answer into typed models. The rest of the crate maps between its own
//! types and those models and never builds an Atlassian path.

pub mod confluence;
mod egress;
mod error;
pub mod governor;
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
// The capped body reader, for the Connect install-key CDN (`crate::connect::install`).
pub(crate) use transport::read_capped;

/// Percent-encodes one path segment or query value.
pub(in crate::atlassian) fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}

/// Reads the JSON answer of a request sent with [`Session::send`].
pub(in crate::atlassian) async fn answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, AtlassianError> {
    let bytes = transport::read_body(response).await.map_err(|e| match e {
        AtlassianError::Decode(reason) => AtlassianError::Decode(format!("{what}{reason}")),
        other => other,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| AtlassianError::Decode(format!("{what}{e}")))
}

/// Lenient readers for the fields Atlassian sends as a string on one deployment and a number on
/// the other (ids above all); anything else reads as absent, as a missing field would.
pub(in crate::atlassian) mod loose {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Str(String),
        Num(serde_json::Number),
        Other(serde::de::IgnoredAny),
    }

    /// A string or a number, as a string (or an id newtype).
    pub fn id<'de, D: Deserializer<'de>, T: From<String>>(d: D) -> Result<Option<T>, D::Error> {
        Ok(match Option::<Loose>::deserialize(d)? {
            Some(Loose::Str(s)) => Some(T::from(s)),
            Some(Loose::Num(n)) => Some(T::from(n.to_string())),
            Some(Loose::Other(_)) | None => None,
        })
    }

    /// A string; any other value reads as absent.
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<Loose>::deserialize(d)? {
            Some(Loose::Str(s)) => Some(s),
            _ => None,
        })
    }

    /// A boolean; any other value reads as absent.
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(Option::<serde_json::Value>::deserialize(d)?.and_then(|v| v.as_bool()))
    }

    /// An array, each element read as `T` or, when it is not one, as `T::default()` (so it still
    /// counts); anything but an array reads as absent.
    pub fn list<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned + Default>(
        d: D,
    ) -> Result<Option<Vec<T>>, D::Error> {
        Ok(match Option::<serde_json::Value>::deserialize(d)? {
            Some(serde_json::Value::Array(items)) => {
                Some(items.into_iter().map(|v| serde_json::from_value(v).unwrap_or_default()).collect())
            }
            _ => None,
        })
    }

    /// Any JSON answer: an object of `T`'s shape, or else `T::default()` (a probe of an unknown
    /// server reads whatever JSON it answers, as the product would, and looks at the fields).
    pub fn any<T: serde::de::DeserializeOwned + Default>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap_or_default()
    }

    /// An unsigned number; any other value reads as absent.
    pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(Option::<serde_json::Value>::deserialize(d)?.and_then(|v| v.as_u64()))
    }
}
