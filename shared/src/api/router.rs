//! Dispatch: a function's handlers, each bound to a route of the table. The router finds the
//! request's route by its API Gateway route key, runs the extractors the route declares (the
//! caller for its scope, the Idempotency-Key), and calls the handler with its context, its
//! caller and its input.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lambda_http::Request;

use super::routes::{Body, Function, ROUTES, Route, Spec};
use crate::atlassian::governor::FairShares;
use crate::caller::Access;
use crate::error::ApiError;
use crate::http::{self, HttpResponse, Input};

type Answer = Pin<Box<dyn Future<Output = Result<HttpResponse, ApiError>> + Send>>;
type Handler<C> = Box<dyn Fn(Arc<C>, &str, Request, Option<Arc<FairShares>>) -> Answer + Send + Sync>;

struct Bound<C> {
    key: String,
    spec: &'static Spec,
    handler: Handler<C>,
}

/// The routes one function serves, with the handler of each. `C` is the function's context: what
/// its handlers use, built once at cold start.
pub struct Router<C> {
    function: Function,
    routes: Vec<Bound<C>>,
    /// Admits the requests of the routes that reach Atlassian (`Spec::fair_share`).
    fair_shares: Option<Arc<FairShares>>,
}

impl<C: Send + Sync + 'static> Router<C> {
    pub fn new(function: Function) -> Self {
        Self { function, routes: Vec::new(), fair_shares: None }
    }

    /// The function this router serves.
    pub fn function(&self) -> Function {
        self.function
    }

    /// Every request of a route that reaches Atlassian runs inside one of its tenant's fair-share
    /// slots of this function, taken after the caller is authorized and before the handler runs
    /// (the one place admission happens for HTTP; `app::serve_with_events` for events).
    pub fn with_fair_shares(mut self, fair_shares: Arc<FairShares>) -> Self {
        self.fair_shares = Some(fair_shares);
        self
    }

    /// Binds `handler` to `route`. It gets the context, the caller as the route's type says
    /// (`Caller` authorized for the route's scope, or `Public`), and the request's input.
    pub fn route<B, A, F, Fut>(mut self, route: &'static Route<B, A>, handler: F) -> Self
    where
        B: Body,
        A: Access,
        F: Fn(Arc<C>, A, Input<B>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, ApiError>> + Send + 'static,
    {
        let spec = &route.spec;
        let handler: Handler<C> = Box::new(move |context, tenant_claim, req, fair_shares| {
            let extracted = A::extract(&req, tenant_claim, spec.scope).and_then(|caller| {
                let key = if spec.idempotent { Some(http::idempotency_key(&req)?) } else { None };
                Ok((caller, key))
            });
            match extracted {
                Ok((caller, key)) => {
                    let admitted = fair_shares.filter(|_| spec.fair_share()).zip(caller.tenant().cloned());
                    let work = handler(context, caller, Input::new(req, key));
                    match admitted {
                        Some((shares, tenant)) => {
                            Box::pin(async move { shares.run(&tenant, spec.function.name(), work).await? })
                        }
                        None => Box::pin(work),
                    }
                }
                Err(e) => Box::pin(std::future::ready(Err(e))),
            }
        });
        self.routes.push(Bound { key: spec.key(), spec, handler });
        self
    }

    /// The router against the table: every route of the table for this function has exactly one
    /// handler, and every handler serves one of them.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        for bound in &self.routes {
            if bound.spec.function != self.function {
                problems.push(format!("{} is served by {}", bound.key, bound.spec.function.name()));
            }
            let same = |r: &&Spec| {
                r.key() == bound.key && r.scope == bound.spec.scope && r.idempotent == bound.spec.idempotent
            };
            if !ROUTES.iter().any(same) {
                problems.push(format!("{} is not in the route table", bound.key));
            }
            if self.routes.iter().filter(|b| b.key == bound.key).count() > 1 {
                problems.push(format!("{} has more than one handler", bound.key));
            }
        }
        for spec in ROUTES.iter().filter(|r| r.function == self.function) {
            if !self.routes.iter().any(|b| b.key == spec.key()) {
                problems.push(format!("{} has no handler", spec.key()));
            }
        }
        problems.dedup();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("the {} routes do not match the route table: {}", self.function.name(), problems.join("; ")))
        }
    }

    /// Serves one request: its route's handler, or `unknown_route` for a route key this function
    /// does not serve (a routing mistake in the deployment).
    pub async fn dispatch(&self, context: Arc<C>, tenant_claim: &str, req: Request) -> Result<HttpResponse, ApiError> {
        let bound = http::route_key(&req)
            .and_then(|key| self.routes.iter().find(|b| b.key == key))
            .ok_or_else(http::unknown_route)?;
        (bound.handler)(context, tenant_claim, req, self.fair_shares.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use lambda_http::http::StatusCode;

    use super::*;
    use crate::api::routes;

    /// Counts the handler calls that got through the extractors.
    #[derive(Default)]
    struct Calls(AtomicUsize);

    fn event(route_key: &str, path: &str, headers: &str, authorizer: &str) -> Request {
        let (method, _) = route_key.split_once(' ').unwrap_or_default();
        let text = format!(
            r#"{{"version":"2.0","routeKey":"{route_key}","rawPath":"{path}","rawQueryString":"","headers":{{{headers}}},
            "pathParameters":{{"tenant":"acme","id":"p-1"}},
            "requestContext":{{"accountId":"1","apiId":"a","domainName":"d","domainPrefix":"d",
            "http":{{"method":"{method}","path":"{path}","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"t"}},
            "requestId":"r","routeKey":"{route_key}","stage":"$default","time":"t","timeEpoch":0{authorizer}}},
            "body":"{{}}","isBase64Encoded":false}}"#
        );
        lambda_http::request::from_str(&text).expect("valid API Gateway v2 event")
    }

    fn claims(scope: &str) -> String {
        format!(r#","authorizer":{{"jwt":{{"claims":{{"tenant_id":"acme","scope":"{scope}"}},"scopes":null}}}}"#)
    }

    fn router() -> Router<Calls> {
        let answer = |calls: Arc<Calls>| {
            calls.0.fetch_add(1, Ordering::SeqCst);
            Ok(http::no_content())
        };
        Router::new(Function::PublishPage)
            .route(&routes::PUBLISH_PAGE, move |calls, caller: crate::caller::Caller, input| async move {
                assert_eq!(caller.tenant.as_str(), "acme");
                assert_eq!(input.idempotency_key()?, "k-1");
                answer(calls)
            })
            .route(&routes::GET_PUBLICATION, move |calls, _, input| async move {
                assert_eq!(input.path("id")?, "p-1");
                answer(calls)
            })
    }

    async fn call(req: Request) -> (Result<HttpResponse, ApiError>, usize) {
        let calls = Arc::new(Calls::default());
        let result = router().dispatch(calls.clone(), "tenant_id", req).await;
        (result, calls.0.load(Ordering::SeqCst))
    }

    const PAGES: &str = "POST /v1/tenants/{tenant}/pages";

    #[tokio::test]
    async fn a_route_runs_its_handler_with_the_declared_extractors() {
        let key = r#""idempotency-key":"k-1""#;
        let (result, calls) = call(event(PAGES, "/v1/tenants/acme/pages", key, &claims("bridge:publish"))).await;
        assert_eq!(result.map(|r| r.status()).ok(), Some(StatusCode::NO_CONTENT));
        assert_eq!(calls, 1);
        let get = "GET /v1/tenants/{tenant}/publications/{id}";
        let (result, calls) = call(event(get, "/v1/tenants/acme/publications/p-1", "", &claims("bridge:read"))).await;
        assert!(result.is_ok());
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn the_routes_scope_is_checked_before_the_handler() {
        let key = r#""idempotency-key":"k-1""#;
        let (result, calls) = call(event(PAGES, "/v1/tenants/acme/pages", key, &claims("bridge:read"))).await;
        assert_eq!(result.err().map(|e| e.status()), Some(StatusCode::FORBIDDEN));
        let (result, _) = call(event(PAGES, "/v1/tenants/acme/pages", key, "")).await;
        assert_eq!(result.err().map(|e| e.status()), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn an_idempotent_route_without_a_key_is_refused_before_the_handler() {
        let (result, calls) = call(event(PAGES, "/v1/tenants/acme/pages", "", &claims("bridge:publish"))).await;
        assert_eq!(result.err().map(|e| e.code), Some(crate::error::ErrorCode::IdempotencyKeyRequired));
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn a_route_the_function_does_not_serve_is_an_unknown_route() {
        let route = "GET /v1/tenants/{tenant}/jira/projects";
        let (result, calls) = call(event(route, "/v1/tenants/acme/jira/projects", "", &claims("bridge:read"))).await;
        assert_eq!(result.err().map(|e| e.code), Some(crate::error::ErrorCode::UnknownRoute));
        assert_eq!(calls, 0);
    }

    /// The tenant's one slot of publish-page is held elsewhere: a publish is refused with 429
    /// before its handler runs; a read of our own records is not admitted at all, and a caller
    /// who is not authorized never takes a slot.
    #[tokio::test]
    async fn a_route_that_reaches_atlassian_runs_only_inside_a_fair_share_slot() {
        use crate::atlassian::governor::{FairShares, Governors};
        use crate::store::TenantSlots;
        use crate::store::memory::MemoryStore;

        let store = MemoryStore::new();
        let shares = Arc::new(FairShares::new(store.slots.clone(), Governors::default(), 1, Duration::from_secs(5)));
        let router = router().with_fair_shares(shares);
        let acme = crate::domain::TenantId::parse("acme").unwrap();
        let calls = Arc::new(Calls::default());
        let key = r#""idempotency-key":"k-1""#;

        let req = event(PAGES, "/v1/tenants/acme/pages", key, "");
        let result = router.dispatch(calls.clone(), "tenant_id", req).await;
        assert_eq!(result.err().map(|e| e.status()), Some(StatusCode::UNAUTHORIZED));
        assert!(store.slots.holders(&acme, "publish-page").is_empty());

        let now = time::OffsetDateTime::now_utc();
        store
            .slots
            .acquire(&acme, "publish-page", "elsewhere", 1, now + time::Duration::minutes(1), now)
            .await
            .unwrap();
        let req = event(PAGES, "/v1/tenants/acme/pages", key, &claims("bridge:publish"));
        let refused = router.dispatch(calls.clone(), "tenant_id", req).await.err().unwrap();
        assert_eq!((refused.status(), refused.retry_after), (StatusCode::TOO_MANY_REQUESTS, Some(2)));
        assert_eq!(calls.0.load(Ordering::SeqCst), 0);

        let get = "GET /v1/tenants/{tenant}/publications/{id}";
        let req = event(get, "/v1/tenants/acme/publications/p-1", "", &claims("bridge:read"));
        assert!(router.dispatch(calls.clone(), "tenant_id", req).await.is_ok());
        assert_eq!(calls.0.load(Ordering::SeqCst), 1);
        assert!(routes::PUBLISH_PAGE.spec.fair_share() && !routes::GET_PUBLICATION.spec.fair_share());
    }

    #[test]
    fn the_check_finds_a_missing_handler_and_a_route_of_another_function() {
        assert!(router().check().is_ok());
        let missing = Router::<Calls>::new(Function::PublishPage)
            .route(&routes::GET_PUBLICATION, |_, _, _| async { Ok(http::no_content()) });
        assert!(missing.check().unwrap_err().contains("POST /v1/tenants/{tenant}/pages has no handler"));
        let foreign = router().route(&routes::GET_CONNECTION, |_, _, _| async { Ok(http::no_content()) });
        assert!(foreign.check().unwrap_err().contains("is served by connections"));
    }
}
