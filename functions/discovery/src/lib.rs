//! `discovery`: where things can go — Confluence spaces and parent pages, Jira projects, issue
//! types, fields, components, users and priorities — in one shape for Cloud and Server/DC.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge::app::App;
use bridge::atlassian::{AtlassianError, Class, Flavour, Session};
use bridge::caller::{BridgeScope, Caller, authorize};
use bridge::discovery::{self as find, Cursor};
use bridge::domain::Product;
use bridge::error::{ApiError, ErrorCode};
use bridge::http::{self, HttpResponse};
use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

/// How long issue types and field metadata stay cached in a warm instance: admins change
/// schemes rarely, and a stale answer lasts minutes at most.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// A small per-instance cache, keyed by tenant first so no answer crosses tenants.
#[derive(Default)]
pub struct TtlCache {
    entries: Mutex<HashMap<String, (Instant, Value)>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TtlCache {
    fn get(&self, key: &str) -> Option<Value> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        entries.get(key).map(|(_, v)| v.clone())
    }

    fn put(&self, key: String, value: Value) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (Instant::now(), value));
    }

    fn record(&self, name: &str, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        let (hits, misses) = (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed));
        tracing::info!(
            cache = name,
            hit,
            hits,
            misses,
            hit_rate = hits as f64 / (hits + misses) as f64,
            "metadata cache"
        );
    }
}

#[derive(Default)]
pub struct Caches {
    issue_types: TtlCache,
    fields: TtlCache,
}

pub async fn handle(app: Arc<App>, caches: Arc<Caches>, req: Request) -> Result<HttpResponse, ApiError> {
    route(&app, &caches, &req).await
}

/// A route's failure: our own refusal, or Atlassian's answer (mapped once, in `route`).
enum Failure {
    Api(ApiError),
    Upstream(AtlassianError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<AtlassianError> for Failure {
    fn from(e: AtlassianError) -> Self {
        Self::Upstream(e)
    }
}

async fn route(app: &App, caches: &Caches, req: &Request) -> Result<HttpResponse, ApiError> {
    let tenant = http::path_param(req, "tenant")?;
    let caller = authorize(req, &app.config.tenant_claim, &tenant, BridgeScope::Read)?;
    let route = http::route_key(req).ok_or_else(http::unknown_route)?;
    let product =
        if route.starts_with("GET /v1/tenants/{tenant}/confluence/") { Product::Confluence } else { Product::Jira };
    let session = app.connector.session(&caller.tenant, product).await?;
    match answer(route, &caller, caches, &session, req).await {
        Ok(response) => Ok(response),
        Err(Failure::Api(e)) => Err(e),
        Err(Failure::Upstream(e)) => Err(e.into()),
    }
}

async fn answer(
    route: &str,
    caller: &Caller,
    caches: &Caches,
    session: &Session,
    req: &Request,
) -> Result<HttpResponse, Failure> {
    let query = http::query_param(req, "query");
    let cursor = http::query_param(req, "cursor").map(|c| Cursor::decode(&c)).transpose()?;
    let param = |name| http::path_param(req, name);
    match route {
        "GET /v1/tenants/{tenant}/confluence/spaces" => ok(find::spaces(session, query.as_deref(), cursor).await?),
        "GET /v1/tenants/{tenant}/confluence/spaces/{key}/pages" => {
            let title = required(http::query_param(req, "title"), "title")?;
            let key = param("key")?;
            match find::pages_by_title(session, &key, &title).await? {
                Some(pages) => ok(pages),
                None => {
                    Err(ApiError::new(ErrorCode::NotFound, format!("space {key} does not exist or is not visible"))
                        .into())
                }
            }
        }
        "GET /v1/tenants/{tenant}/jira/projects" => ok(find::projects(session, query.as_deref(), cursor).await?),
        "GET /v1/tenants/{tenant}/jira/projects/{key}" => ok(find::project_details(session, &param("key")?).await?),
        "GET /v1/tenants/{tenant}/jira/projects/{key}/issue-types" => {
            let key = param("key")?;
            let cache_key = format!("{}|{key}", caller.tenant);
            cached(&caches.issue_types, "issue_types", cache_key, || find::issue_types(session, &key))
                .await
                .map_err(createmeta)
        }
        "GET /v1/tenants/{tenant}/jira/projects/{key}/issue-types/{id}/fields" => {
            let (key, id) = (param("key")?, param("id")?);
            let cache_key = format!("{}|{key}|{id}", caller.tenant);
            cached(&caches.fields, "fields", cache_key, || find::fields(session, &key, &id)).await.map_err(createmeta)
        }
        "GET /v1/tenants/{tenant}/jira/projects/{key}/components" => {
            ok(find::components(session, &param("key")?, cursor).await?)
        }
        "GET /v1/tenants/{tenant}/jira/users" => ok(find::user_picker(session, &required(query, "query")?).await?),
        "GET /v1/tenants/{tenant}/jira/projects/{key}/assignable-users" => {
            // Jira DC cannot page past its first 100 assignable users, so an unfiltered listing
            // would be cut silently; Cloud pages through every user.
            let query = match session.flavour() {
                Flavour::DataCenter => required(query, "query").map_err(|e| {
                    ApiError::new(e.code, format!("{}: Jira Server/Data Center answers at most {} assignable users per search and cannot page past them, so name part of the user's name", e.message, find::DC_ASSIGNABLE_MAX))
                })?,
                Flavour::Cloud => query.unwrap_or_default(),
            };
            ok(find::assignable_users(session, &param("key")?, &query, cursor).await?)
        }
        "GET /v1/tenants/{tenant}/jira/priorities" => {
            let project = http::query_param(req, "project");
            let issue_type = http::query_param(req, "issue_type");
            let scope = match (project.as_deref(), issue_type.as_deref(), session.flavour()) {
                (Some(p), Some(t), _) => Some((p, t)),
                (None, None, Flavour::DataCenter) => None,
                _ => {
                    return Err(ApiError::new(ErrorCode::InvalidRequest,
                        "pass project and issue_type (on Jira Cloud, priorities come from an issue type's create screen)",
                    )
                    .into());
                }
            };
            find::priorities(session, scope).await.map_err(createmeta).and_then(ok)
        }
        _ => Err(http::unknown_route().into()),
    }
}

/// Jira answers createmeta for a project or issue type it does not have with 400 (or 404).
fn createmeta(e: AtlassianError) -> Failure {
    match e {
        e if e.is(Class::BadRequest) || e.is(Class::NotFound) => {
            ApiError::new(ErrorCode::NotFound, "no such project or issue type, or the connection cannot see it").into()
        }
        other => other.into(),
    }
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidRequest, format!("the {name} query parameter is required")))
}

fn ok<T: Serialize>(value: T) -> Result<HttpResponse, Failure> {
    Ok(http::json(StatusCode::OK, &value))
}

async fn cached<T, F, Fut>(cache: &TtlCache, name: &str, key: String, load: F) -> Result<HttpResponse, AtlassianError>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, AtlassianError>>,
{
    if let Some(value) = cache.get(&key) {
        cache.record(name, true);
        return Ok(http::json(StatusCode::OK, &value));
    }
    cache.record(name, false);
    let value = serde_json::to_value(load().await?).map_err(|e| AtlassianError::Decode(e.to_string()))?;
    cache.put(key, value.clone());
    Ok(http::json(StatusCode::OK, &value))
}
