//! The HTTP API: its route table, the dispatch from a route to its handler, the request and
//! response types (the contract with the SaaS backend), and the OpenAPI document generated from
//! them.

mod openapi;
mod router;
pub mod routes;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::domain::{AuthType, Connection, ConnectionStatus, Deployment, Product, Site};

pub use openapi::document;
pub use router::Router;
pub use routes::{Function, Route};

/// The body of `PUT /v1/tenants/{tenant}/settings/{product}`: `ConfluenceSettings` or
/// `JiraSettings`, by `{product}`, so the handler names the type once it knows the product.
pub struct SettingsBody;

impl routes::Body for SettingsBody {
    const SCHEMA: Option<routes::SchemaOf> = Some(routes::SchemaOf { name: settings_name, collect: settings_schemas });
}

fn settings_name() -> String {
    "Settings".into()
}

/// One schema for both: which one applies follows from `{product}`.
fn settings_schemas(out: &mut routes::Schemas) {
    (routes::SchemaOf::of::<crate::settings::ConfluenceSettings>().collect)(out);
    (routes::SchemaOf::of::<crate::settings::JiraSettings>().collect)(out);
    out.push((
        settings_name(),
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("ConfluenceSettings"))
            .item(utoipa::openapi::Ref::from_schema_name("JiraSettings"))
            .into(),
    ));
}

impl crate::http::Input<SettingsBody> {
    /// The body as the settings of the path's product.
    pub fn body_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::error::ApiError> {
        crate::http::json_body(self.request())
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartOAuthRequest {
    /// Where the admin's browser goes after the consent; must be on the deployment's allow-list.
    pub return_url: String,
    /// Also ask for `manage:jira-webhook`, so Jira pushes issue changes to the bridge (status
    /// back within seconds instead of the next poll). Jira and atlassian consents only; off by
    /// default, which asks for the fewest scopes. Polling runs either way.
    #[serde(default)]
    pub status_webhooks: bool,
    /// A Data Center consent instead of a Cloud one: the incoming application link the
    /// instance's admin created for us (Jira 8.22+, Confluence 7.20+; `product` jira or
    /// confluence). The admin's browser goes to the instance's own consent page, and the grant
    /// waits for the same confirmation as a Cloud consent.
    #[serde(default)]
    pub data_center: Option<DcOAuthStart>,
}

/// The incoming application link of a Data Center consent (`StartOAuthRequest.data_center`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DcOAuthStart {
    /// The instance's base URL with its context path (`https://jira.example.com/jira`): its
    /// consent page is `{base_url}/rest/oauth2/latest/authorize`, its token endpoint
    /// `{base_url}/rest/oauth2/latest/token`. https only, and publicly reachable.
    pub base_url: String,
    /// The application link's client id.
    pub client_id: String,
    /// The application link's client secret: kept sealed while the consent is under way, then
    /// with the grant's tokens in its one Secrets Manager secret; never echoed.
    #[schema(value_type = String, format = Password)]
    pub client_secret: secrecy::SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StartOAuthResponse {
    /// Send the admin's browser here.
    pub authorize_url: String,
    /// The authorization must complete before this instant (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// `POST /v1/tenants/{tenant}/connections/{product}/oauth/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmOAuthRequest {
    /// The `confirmation` parameter of the redirect to the return URL (one-time, 10 minutes).
    pub confirmation: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfirmOAuthResponse {
    /// Every connection the consent made (both for `atlassian`): `connected`, or
    /// `site_selection_required` when the consent covered several sites.
    pub connections: Vec<ConnectionView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectSiteRequest {
    /// One of the connection's `candidate_sites`.
    pub cloud_id: String,
}

/// A connection as callers see it: never a token or a secret name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub product: Product,
    pub deployment: Deployment,
    pub auth_type: AuthType,
    pub status: ConnectionStatus,
    pub site: Option<Site>,
    /// The product's base URL (token and Server/DC connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Who the credentials act as, as the product named them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<String>,
    /// The sites to choose from while `status` is `site_selection_required`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidate_sites: Vec<Site>,
    /// OAuth scopes the grant holds.
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_verified_at: Option<OffsetDateTime>,
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        Self {
            product: c.product,
            deployment: c.deployment,
            auth_type: c.auth_type,
            status: c.status,
            site: c.site.clone(),
            base_url: c.base_url.clone(),
            acting_as: c.acting_as.clone(),
            candidate_sites: if c.status == ConnectionStatus::SiteSelectionRequired {
                c.candidate_sites.clone()
            } else {
                Vec::new()
            },
            scopes: c.scopes.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_verified_at: c.last_verified_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    pub connection: ConnectionView,
    /// Who the credentials act as in Atlassian, when the product says.
    pub acting_as: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteSelectionResponse {
    /// Every connection the selection applied to (both for `atlassian`).
    pub connections: Vec<ConnectionView>,
}

/// `PUT /v1/tenants/{tenant}/connections/{product}`: a Server/DC or API-token connection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRequest {
    pub deployment: Deployment,
    /// The product's base URL, context path included (`https://jira.example.com/jira`); the
    /// site URL for Cloud (`https://acme.atlassian.net`).
    pub base_url: String,
    pub auth: crate::credentials::ConnectionAuth,
}
