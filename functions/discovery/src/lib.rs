//! `discovery`: where things can go — Confluence spaces and parent pages, Jira projects, issue
//! types, fields, components, users and priorities — in one shape for Cloud and Server/DC.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge::access::Connector;
use bridge::api::{Function, Route, Router, routes};
use bridge::app::App;
use bridge::atlassian::{AtlassianError, Class, Flavour, Session};
use bridge::caller::Caller;
use bridge::discovery::{self as find, Cursor};
use bridge::domain::Product;
use bridge::error::{ApiError, ErrorCode};
use bridge::http::{self, HttpResponse, Input, NoBody};
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

/// What the discovery routes use: sessions, and this instance's metadata caches.
pub struct Context {
    connector: Arc<Connector>,
    caches: Caches,
}

impl Context {
    pub fn new(app: &App) -> Self {
        Self { connector: app.connector.clone(), caches: Caches::default() }
    }
}

/// One lookup: the caller's session for the route's product, and the query and cursor every
/// route reads (a malformed cursor is refused on any route, after the session).
struct Lookup {
    caller: Caller,
    session: Session,
    query: Option<String>,
    cursor: Option<Cursor>,
    input: Input<NoBody>,
}

impl Lookup {
    async fn new(
        connector: &Connector,
        caller: Caller,
        product: Product,
        input: Input<NoBody>,
    ) -> Result<Self, ApiError> {
        let session = connector.session(&caller.tenant, product).await?;
        let query = input.query("query");
        let cursor = input.query("cursor").map(|c| Cursor::decode(&c)).transpose()?;
        Ok(Self { caller, session, query, cursor, input })
    }
}

/// Binds a discovery route: its lookup for `product`, then `answer`, with Atlassian's failures
/// mapped once.
fn bind<F, Fut>(router: Router<Context>, route: &'static Route<NoBody>, product: Product, answer: F) -> Router<Context>
where
    F: Fn(Arc<Context>, Lookup) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = Result<HttpResponse, Failure>> + Send + 'static,
{
    router.route(route, move |cx: Arc<Context>, caller, input| async move {
        let lookup = Lookup::new(&cx.connector, caller, product, input).await?;
        answer(cx, lookup).await.map_err(ApiError::from)
    })
}

pub fn router() -> Router<Context> {
    use Product::{Confluence, Jira};
    let router = Router::new(Function::Discovery);
    let router = bind(router, &routes::LIST_SPACES, Confluence, |_, l| async move { spaces(&l).await });
    let router = bind(router, &routes::FIND_PAGES, Confluence, |_, l| async move { pages(&l).await });
    let router = bind(router, &routes::LIST_PROJECTS, Jira, |_, l| async move { projects(&l).await });
    let router = bind(router, &routes::GET_PROJECT, Jira, |_, l| async move { project(&l).await });
    let router =
        bind(router, &routes::LIST_ISSUE_TYPES, Jira, |cx, l| async move { issue_types(&cx.caches, &l).await });
    let router = bind(router, &routes::LIST_FIELDS, Jira, |cx, l| async move { fields(&cx.caches, &l).await });
    let router = bind(router, &routes::LIST_COMPONENTS, Jira, |_, l| async move { components(&l).await });
    let router = bind(router, &routes::PICK_USERS, Jira, |_, l| async move { users(&l).await });
    let router = bind(router, &routes::LIST_ASSIGNABLE_USERS, Jira, |_, l| async move { assignable_users(&l).await });
    bind(router, &routes::LIST_PRIORITIES, Jira, |_, l| async move { priorities(&l).await })
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

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Api(e) => e,
            Failure::Upstream(e) => e.into(),
        }
    }
}

async fn spaces(l: &Lookup) -> Result<HttpResponse, Failure> {
    ok(find::spaces(&l.session, l.query.as_deref(), l.cursor.clone()).await?)
}

async fn pages(l: &Lookup) -> Result<HttpResponse, Failure> {
    let title = required(l.input.query("title"), "title")?;
    let key = l.input.path("key")?;
    match find::pages_by_title(&l.session, &key, &title).await? {
        Some(pages) => ok(pages),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("space {key} does not exist or is not visible")).into()),
    }
}

async fn projects(l: &Lookup) -> Result<HttpResponse, Failure> {
    ok(find::projects(&l.session, l.query.as_deref(), l.cursor.clone()).await?)
}

async fn project(l: &Lookup) -> Result<HttpResponse, Failure> {
    ok(find::project_details(&l.session, &l.input.path("key")?).await?)
}

async fn issue_types(caches: &Caches, l: &Lookup) -> Result<HttpResponse, Failure> {
    let key = l.input.path("key")?;
    let cache_key = format!("{}|{key}", l.caller.tenant);
    cached(&caches.issue_types, "issue_types", cache_key, || find::issue_types(&l.session, &key))
        .await
        .map_err(createmeta)
}

async fn fields(caches: &Caches, l: &Lookup) -> Result<HttpResponse, Failure> {
    let (key, id) = (l.input.path("key")?, l.input.path("id")?);
    let cache_key = format!("{}|{key}|{id}", l.caller.tenant);
    cached(&caches.fields, "fields", cache_key, || find::fields(&l.session, &key, &id)).await.map_err(createmeta)
}

async fn components(l: &Lookup) -> Result<HttpResponse, Failure> {
    ok(find::components(&l.session, &l.input.path("key")?, l.cursor.clone()).await?)
}

async fn users(l: &Lookup) -> Result<HttpResponse, Failure> {
    ok(find::user_picker(&l.session, &required(l.query.clone(), "query")?).await?)
}

async fn assignable_users(l: &Lookup) -> Result<HttpResponse, Failure> {
    // Jira DC cannot page past its first 100 assignable users, so an unfiltered listing
    // would be cut silently; Cloud pages through every user.
    let query = match l.session.flavour() {
        Flavour::DataCenter => required(l.query.clone(), "query").map_err(|e| {
            ApiError::new(e.code, format!("{}: Jira Server/Data Center answers at most {} assignable users per search and cannot page past them, so name part of the user's name", e.message, find::DC_ASSIGNABLE_MAX))
        })?,
        Flavour::Cloud => l.query.clone().unwrap_or_default(),
    };
    ok(find::assignable_users(&l.session, &l.input.path("key")?, &query, l.cursor.clone()).await?)
}

async fn priorities(l: &Lookup) -> Result<HttpResponse, Failure> {
    let project = l.input.query("project");
    let issue_type = l.input.query("issue_type");
    let scope = match (project.as_deref(), issue_type.as_deref(), l.session.flavour()) {
        (Some(p), Some(t), _) => Some((p, t)),
        (None, None, Flavour::DataCenter) => None,
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "pass project and issue_type (on Jira Cloud, priorities come from an issue type's create screen)",
            )
            .into());
        }
    };
    find::priorities(&l.session, scope).await.map_err(createmeta).and_then(ok)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_tables_discovery_routes() {
        router().check().unwrap();
    }
}
