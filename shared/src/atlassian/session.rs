//! A session with one product of one connection: its base URL, credentials and API flavour, over
//! the one transport. Paths are relative to the product's root (`rest/api/3/myself`,
//! `wiki/api/v2/spaces`), so callers never build hosts.

use std::sync::{Arc, Mutex};

use reqwest::{Method, Response};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use url::Url;

use super::transport::Payload;
use super::{AtlassianError, Credentials, Transport};
use crate::domain::Product;

/// Cloud speaks Jira REST v3 and Confluence v2 (v1 for attachments); Server and Data Center speak
/// Jira REST v2 and Confluence's REST v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Cloud,
    DataCenter,
}

/// Fetches a fresh Bearer token after a 401 (identity-provider tokens can be revoked early).
#[async_trait::async_trait]
pub trait TokenRenewal: Send + Sync {
    async fn renew(&self) -> Result<SecretString, AtlassianError>;
}

pub struct Session {
    transport: Transport,
    base: Url,
    product: Product,
    flavour: Flavour,
    credentials: Mutex<Credentials>,
    renewal: Option<Arc<dyn TokenRenewal>>,
    /// Where people open the product in a browser (links in answers): the site, or the base URL.
    web_root: Url,
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
        Self { transport, base, product, flavour, credentials: Mutex::new(credentials), renewal: None, web_root }
    }

    pub fn with_renewal(mut self, renewal: Arc<dyn TokenRenewal>) -> Self {
        self.renewal = Some(renewal);
        self
    }

    /// For Cloud through `api.atlassian.com`, links must point at the site instead.
    pub fn with_web_root(mut self, web_root: Url) -> Self {
        self.web_root = web_root;
        self
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
    pub fn jira_path(&self, rest: &str) -> String {
        let version = if self.flavour == Flavour::Cloud { 3 } else { 2 };
        format!("rest/api/{version}/{rest}")
    }

    /// Confluence REST v1: `wiki/rest/api/...` on Cloud, `rest/api/...` under the DC context path.
    pub fn confluence_v1_path(&self, rest: &str) -> String {
        match self.flavour {
            Flavour::Cloud => format!("wiki/rest/api/{rest}"),
            Flavour::DataCenter => format!("rest/api/{rest}"),
        }
    }

    /// Confluence Cloud REST v2.
    pub fn confluence_v2_path(&self, rest: &str) -> String {
        format!("wiki/api/v2/{rest}")
    }

    pub fn url(&self, path: &str) -> Result<Url, AtlassianError> {
        self.base.join(path).map_err(|e| AtlassianError::Decode(format!("bad path {path:?}: {e}")))
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, AtlassianError> {
        let response = self.send(Method::GET, path, Payload::None).await?;
        let bytes = response.bytes().await.map_err(|e| AtlassianError::Decode(e.without_url().to_string()))?;
        serde_json::from_slice(&bytes).map_err(|_| {
            AtlassianError::Decode(format!(
                "the answer to {} is not the JSON the product sends",
                path.split('?').next().unwrap_or(path)
            ))
        })
    }

    /// Sends with the session's credentials; with a token source, a 401 renews the token once.
    pub async fn send(&self, method: Method, path: &str, payload: Payload<'_>) -> Result<Response, AtlassianError> {
        let url = self.url(path)?;
        let credentials = self.current_credentials();
        match self.transport.send(method.clone(), url.clone(), &credentials, payload).await {
            Err(AtlassianError::Api { status: 401, .. }) if self.renewal.is_some() => {
                let renewal = self.renewal.as_ref().map(Arc::clone).ok_or(AtlassianError::Decode(String::new()))?;
                let fresh = Credentials::Bearer(renewal.renew().await?);
                *self.credentials.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                self.transport.send(method, url, &fresh, payload).await
            }
            other => other,
        }
    }

    fn current_credentials(&self) -> Credentials {
        self.credentials.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
