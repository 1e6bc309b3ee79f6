//! `connections`: a tenant's connection status, site selection, verification and disconnect.

use std::sync::Arc;

use bridge::api::{ConnectionView, SelectSiteRequest, SiteSelectionResponse, VerifyResponse};
use bridge::app::App;
use bridge::atlassian::{AtlassianError, Credentials};
use bridge::caller::{BridgeScope, Caller, authorize};
use bridge::domain::{ConnectionStatus, ConsentTarget, Product};
use bridge::error::ApiError;
use bridge::http::{self, HttpResponse};
use lambda_http::Request;
use lambda_http::http::StatusCode;
use time::OffsetDateTime;
use tracing::Instrument;

pub async fn handle(app: Arc<App>, req: Request) -> HttpResponse {
    let span = tracing::info_span!("request", tenant = tracing::field::Empty);
    async {
        let result = match http::route_key(&req) {
            Some("GET /v1/tenants/{tenant}/connections/{product}") => get(&app, &req).await,
            Some("DELETE /v1/tenants/{tenant}/connections/{product}") => delete(&app, &req).await,
            Some("PUT /v1/tenants/{tenant}/connections/{product}/site") => {
                select_site(&app, &req).await
            }
            Some("POST /v1/tenants/{tenant}/connections/{product}/verify") => {
                verify(&app, &req).await
            }
            _ => Err(http::unknown_route()),
        };
        http::respond(result)
    }
    .instrument(span)
    .await
}

fn caller(app: &App, req: &Request, scope: BridgeScope) -> Result<Caller, ApiError> {
    let tenant = http::path_param(req, "tenant")?;
    tracing::Span::current().record("tenant", tenant.as_str());
    authorize(req, &app.config.tenant_claim, &tenant, scope)
}

fn product(req: &Request) -> Result<Product, ApiError> {
    Product::parse(&http::path_param(req, "product")?).ok_or_else(|| {
        ApiError::bad_request("invalid_product", "product must be jira or confluence")
    })
}

fn not_connected(product: Product) -> ApiError {
    ApiError::not_found(
        "not_connected",
        format!("this tenant has no {product} connection"),
    )
}

async fn get(app: &App, req: &Request) -> Result<HttpResponse, ApiError> {
    let caller = caller(app, req, BridgeScope::Read)?;
    let product = product(req)?;
    let connection = app
        .connections
        .get(&caller.tenant, product)
        .await?
        .ok_or_else(|| not_connected(product))?;
    Ok(http::json(
        StatusCode::OK,
        &ConnectionView::from(&connection),
    ))
}

async fn delete(app: &App, req: &Request) -> Result<HttpResponse, ApiError> {
    let caller = caller(app, req, BridgeScope::Admin)?;
    let product = product(req)?;
    let all = app.connections.list(&caller.tenant).await?;
    let Some(connection) = all.iter().find(|c| c.product == product) else {
        return Ok(http::no_content());
    };
    // The secret first (when no other connection shares it): a retried DELETE still finds the
    // record and finishes the job, and no record is left pointing at a deleted secret for long.
    let shared = all
        .iter()
        .any(|c| c.product != product && c.secret_name == connection.secret_name);
    if !shared {
        app.credentials.delete(&connection.secret_name).await?;
    }
    app.connections.delete(&caller.tenant, product).await?;
    tracing::info!(product = %product, secret_deleted = !shared, "connection removed");
    Ok(http::no_content())
}

async fn select_site(app: &App, req: &Request) -> Result<HttpResponse, ApiError> {
    let caller = caller(app, req, BridgeScope::Admin)?;
    let target = ConsentTarget::parse(&http::path_param(req, "product")?).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_product",
            "product must be jira, confluence, or atlassian",
        )
    })?;
    let body: SelectSiteRequest = http::json_body(req)?;
    let mut updated = Vec::new();
    for &product in target.products() {
        let mut connection = app
            .connections
            .get(&caller.tenant, product)
            .await?
            .ok_or_else(|| not_connected(product))?;
        if target == ConsentTarget::Atlassian && connection.grant_id != target.grant_id() {
            return Err(ApiError::conflict(
                "not_one_consent",
                format!(
                    "the {product} connection was not made by a combined consent; select its site on its own route"
                ),
            ));
        }
        if connection.status == ConnectionStatus::ReconnectRequired {
            return Err(ApiError::conflict(
                "reconnect_required",
                format!("the {product} connection must be re-authorized first"),
            ));
        }
        let site = connection
            .candidate_sites
            .iter()
            .find(|s| s.cloud_id == body.cloud_id)
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request(
                    "unknown_site",
                    "cloud_id is not one of the connection's candidate sites",
                )
            })?;
        connection.site = Some(site);
        connection.status = ConnectionStatus::Connected;
        connection.updated_at = OffsetDateTime::now_utc();
        updated.push(connection);
    }
    app.connections.put_all(&updated).await?;
    tracing::info!(target = target.as_str(), "site selected");
    Ok(http::json(
        StatusCode::OK,
        &SiteSelectionResponse {
            connections: updated.iter().map(ConnectionView::from).collect(),
        },
    ))
}

async fn verify(app: &App, req: &Request) -> Result<HttpResponse, ApiError> {
    let caller = caller(app, req, BridgeScope::Admin)?;
    let product = product(req)?;
    let access = app.tokens.cloud_access(&caller.tenant, product).await?;
    let base = app.config.oauth.api_base_url.clone();
    let credentials = Credentials::Bearer(access.access_token);
    // The cheapest call the granted scopes allow: Jira's current user, or one Confluence space.
    let url = match product {
        Product::Jira => base.join(&format!("ex/jira/{}/rest/api/3/myself", access.cloud_id)),
        Product::Confluence => base.join(&format!(
            "ex/confluence/{}/wiki/api/v2/spaces?limit=1",
            access.cloud_id
        )),
    }
    .map_err(|_| ApiError::internal())?;
    let answer: Result<serde_json::Value, AtlassianError> =
        app.transport.get_json(url, &credentials).await;
    let acting_as = match answer {
        Ok(body) => body
            .get("displayName")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        Err(
            e @ AtlassianError::Api {
                status: 401 | 403, ..
            },
        ) => {
            // A fresh token refused means the grant was revoked or lost its scopes.
            tracing::warn!(error = %e, "Atlassian refused a fresh token");
            let connection = app
                .connections
                .get(&caller.tenant, product)
                .await?
                .ok_or_else(|| not_connected(product))?;
            app.connections
                .mark_reconnect_required(
                    &caller.tenant,
                    &connection.grant_id,
                    OffsetDateTime::now_utc(),
                )
                .await?;
            return Err(ApiError::conflict(
                "reconnect_required",
                format!("Atlassian refused the {product} grant; connect again"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let now = OffsetDateTime::now_utc();
    app.connections
        .record_verified(&caller.tenant, product, now)
        .await?;
    let connection = app
        .connections
        .get(&caller.tenant, product)
        .await?
        .ok_or_else(|| not_connected(product))?;
    Ok(http::json(
        StatusCode::OK,
        &VerifyResponse {
            connection: ConnectionView::from(&connection),
            acting_as,
        },
    ))
}
