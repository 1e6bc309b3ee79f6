//! A session with one product of one connection: its base URL, credentials and API flavour, over
//! the one transport. Paths are relative to the product's root (`rest/api/3/myself`,
//! `wiki/api/v2/spaces`), so callers never build hosts.
//!
//! The session is where a 401 gets its meaning: it tries once more — with a renewed token when
//! the credentials come from a token source (OAuth, an identity provider), else with the same
//! credentials — and only a 401 that persists counts. For a stored connection it then tells the
//! connection's watcher, which records what an admin must do; the caller gets
//! [`AtlassianError::CredentialsRefused`]. Every other answer keeps its class, and the operation
//! is named in the error.

use std::sync::{Arc, Mutex};

use reqwest::{Method, Response};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use url::Url;

use super::error::Class;
use super::governor::Governor;
use super::transport::Payload;
use super::{AtlassianError, Credentials, Transport};
use crate::domain::{ConnectionStatus, Product};

/// Cloud speaks Jira REST v3 and Confluence v2 (v1 for attachments); Server and Data Center speak
/// Jira REST v2 and Confluence's REST v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Cloud,
    DataCenter,
}

/// Fetches a fresh Bearer token after a 401 (OAuth access tokens and identity-provider tokens
/// can be revoked or expire early).
#[async_trait::async_trait]
pub trait TokenRenewal: Send + Sync {
    /// A token other than `rejected`: one another instance refreshed meanwhile, or a new one.
    async fn renew(&self, rejected: &Credentials) -> Result<SecretString, AtlassianError>;
}

/// Told when a stored connection's credentials were refused for good (a 401 that persisted).
#[async_trait::async_trait]
pub trait CredentialWatch: Send + Sync {
    /// Records what the refusal means for the connection and returns its status now.
    async fn refused(&self) -> ConnectionStatus;
}

pub struct Session {
    transport: Transport,
    base: Url,
    product: Product,
    flavour: Flavour,
    credentials: Mutex<Credentials>,
    renewal: Option<Arc<dyn TokenRenewal>>,
    watch: Option<Arc<dyn CredentialWatch>>,
    /// The tenant's rate governor, for a stored connection's session.
    governor: Option<Arc<Governor>>,
    /// Where people open the product in a browser (links in answers): the site, or the base URL.
    web_root: Url,
    /// Which site this session writes to, for the records that must stay bound to it: the Cloud
    /// cloudId, or the base URL.
    site_id: String,
}

impl Session {
    /// `base` is the product root: a site URL, `https://api.atlassian.com/ex/jira/{cloudId}`, or
    /// a Server/DC base URL with its context path (`https://host/jira`).
    pub fn new(
        transport: Transport,
        mut base: Url,
        product: Product,
        flavour: Flavour,
        credentials: Credentials,
    ) -> Self {
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let web_root = base.clone();
        let site_id = base.as_str().trim_end_matches('/').to_owned();
        Self {
            site_id,
            transport,
            base,
            product,
            flavour,
            credentials: Mutex::new(credentials),
            renewal: None,
            watch: None,
            governor: None,
            web_root,
        }
    }

    pub fn with_renewal(mut self, renewal: Arc<dyn TokenRenewal>) -> Self {
        self.renewal = Some(renewal);
        self
    }

    /// For a stored connection: who records a persisting 401.
    pub fn with_watch(mut self, watch: Arc<dyn CredentialWatch>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// For a tenant's stored connection: its requests go through the tenant's rate governor.
    pub fn with_governor(mut self, governor: Arc<Governor>) -> Self {
        self.governor = Some(governor);
        self
    }

    /// For Cloud through `api.atlassian.com`, links must point at the site instead.
    pub fn with_web_root(mut self, web_root: Url) -> Self {
        self.web_root = web_root;
        self
    }

    /// For Cloud: the cloudId, which stays the same whichever URL the session goes through.
    pub fn with_site_id(mut self, site_id: impl Into<String>) -> Self {
        self.site_id = site_id.into();
        self
    }

    /// The longest one request of this session may take (see [`Transport::budget`]).
    pub(in crate::atlassian) fn budget(&self) -> std::time::Duration {
        self.transport.budget()
    }

    pub fn site_id(&self) -> &str {
        &self.site_id
    }

    pub fn web_root(&self) -> &str {
        self.web_root.as_str()
    }

    pub fn product(&self) -> Product {
        self.product
    }

    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// `rest/api/3/...` on Cloud, `rest/api/2/...` on Server/DC.
    pub(in crate::atlassian) fn jira_path(&self, rest: &str) -> String {
        let version = if self.flavour == Flavour::Cloud { 3 } else { 2 };
        format!("rest/api/{version}/{rest}")
    }

    /// Confluence REST v1: `wiki/rest/api/...` on Cloud, `rest/api/...` under the DC context path.
    pub(in crate::atlassian) fn confluence_v1_path(&self, rest: &str) -> String {
        match self.flavour {
            Flavour::Cloud => format!("wiki/rest/api/{rest}"),
            Flavour::DataCenter => format!("rest/api/{rest}"),
        }
    }

    /// Confluence Cloud REST v2.
    pub(in crate::atlassian) fn confluence_v2_path(&self, rest: &str) -> String {
        format!("wiki/api/v2/{rest}")
    }

    pub fn url(&self, path: &str) -> Result<Url, AtlassianError> {
        self.base.join(path).map_err(|e| AtlassianError::Decode(format!("bad path {path:?}: {e}")))
    }

    pub(in crate::atlassian) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, AtlassianError> {
        let response = self.send(Method::GET, path, Payload::None).await?;
        let bytes = super::transport::read_body(response).await?;
        serde_json::from_slice(&bytes).map_err(|_| {
            AtlassianError::Decode(format!(
                "the answer to {} is not the JSON the product sends",
                path.split('?').next().unwrap_or(path)
            ))
        })
    }

    /// Sends with the session's credentials; a 401 is tried once more before it counts.
    pub(in crate::atlassian) async fn send(
        &self,
        method: Method,
        path: &str,
        payload: Payload<'_>,
    ) -> Result<Response, AtlassianError> {
        let url = self.url(path)?;
        let credentials = self.current_credentials();
        let result = match self
            .transport
            .send_governed(
                method.clone(),
                url.clone(),
                &credentials,
                payload,
                self.governor.as_deref(),
                Some(self.product),
            )
            .await
        {
            Err(e) if e.is(Class::Unauthorized) => {
                let again = match &self.renewal {
                    Some(renewal) => match renewal.renew(&credentials).await {
                        Ok(token) => {
                            let fresh = Credentials::Bearer(token);
                            *self.credentials.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                            fresh
                        }
                        // The token source itself refused us (an identity provider that no longer
                        // knows the client): as final as a second 401.
                        Err(e) if e.is(Class::Unauthorized) => return Err(self.refused(e, &method, path).await),
                        Err(e) => return Err(e),
                    },
                    // A fixed credential: Atlassian answers the odd transient 401; one plain retry
                    // keeps a glitch from disabling a connection.
                    None => credentials,
                };
                tracing::info!(renewed = self.renewal.is_some(), "Atlassian answered 401; trying once more");
                self.transport
                    .send_governed(method.clone(), url, &again, payload, self.governor.as_deref(), Some(self.product))
                    .await
            }
            other => other,
        };
        match result {
            Err(e) if e.is(Class::Unauthorized) => Err(self.refused(e, &method, path).await),
            Err(e) => Err(named(e, &method, path)),
            Ok(response) => Ok(response),
        }
    }

    /// A 401 that persisted: the watcher of a stored connection records it; without one
    /// (credentials being registered) the 401 is the answer.
    async fn refused(&self, error: AtlassianError, method: &Method, path: &str) -> AtlassianError {
        match &self.watch {
            Some(watch) => {
                tracing::warn!(error = %error, "Atlassian kept refusing the connection's credentials");
                AtlassianError::CredentialsRefused { product: self.product, status: watch.refused().await }
            }
            None => named(error, method, path),
        }
    }

    fn current_credentials(&self) -> Credentials {
        self.credentials.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Names the operation in an error answer: `METHOD path`, without the query (which can hold
/// user input such as emails).
fn named(error: AtlassianError, method: &Method, path: &str) -> AtlassianError {
    match error {
        AtlassianError::Api { class, status, payload, .. } => AtlassianError::Api {
            class,
            status,
            operation: format!("{method} {}", path.split('?').next().unwrap_or(path)),
            payload,
        },
        other => other,
    }
}
