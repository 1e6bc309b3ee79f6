//! The per-instance context: configuration, clients and stores, built once at cold start and
//! shared by every invocation of that instance.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use base64::Engine;
use lambda_http::{Request, RequestExt, service_fn};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::access::Connector;
use crate::api::Router;
use crate::atlassian::Transport;
use crate::atlassian::governor::FairShares;
use crate::config::{Config, ConfigError};
use crate::domain::TenantId;
use crate::error::{ApiError, ErrorCode};
use crate::events::{Delivery, DetailType, EventBridgeBus, EventBus, PublishFailed, Trigger};
use crate::http::HttpResponse;
use crate::jobs::JobOutcome;
use crate::markers::Markers;
use crate::metrics::{self, Metric, Sample};
use crate::oauth::{AtlassianOAuth, StateSigner, TokenProvider};
use crate::store::dynamo::DynamoStore;
use crate::store::secrets::SecretsManagerStore;
use crate::store::{
    ConnectionStore, CredentialStore, DestinationFailureStore, IssueJobStore, IssueLedger, KeepAliveStore, LookupCache,
    OAuthStateStore, PublicationStore, RefreshLeaseStore, SettingsStore, StoreError, WebhookStore,
};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not build the HTTP client: {0}")]
    Http(String),
    #[error("could not read the OAuth client secret: {0}")]
    Store(#[from] StoreError),
    #[error("the OAuth client secret {name} is unusable: {reason}")]
    ClientSecret { name: String, reason: String },
}

/// What the deployment's OAuth client secret (in Secrets Manager) holds.
#[derive(Deserialize)]
struct AppSecret {
    client_secret: SecretString,
    /// Base64; signs OAuth `state` values.
    state_signing_key: SecretString,
}

pub struct App {
    pub config: Config,
    pub transport: Transport,
    pub oauth: Arc<AtlassianOAuth>,
    pub state_signer: Arc<StateSigner>,
    /// Issue labels and page anchors, keyed by the deployment (see `markers`).
    pub markers: Arc<Markers>,
    pub connections: Arc<dyn ConnectionStore>,
    pub states: Arc<dyn OAuthStateStore>,
    pub credentials: Arc<dyn CredentialStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub issues: Arc<dyn IssueLedger>,
    /// The two-way sync's enrolled tenants, cursors and outbox (`crate::sync`).
    pub sync: Arc<dyn crate::store::IssueSyncStore>,
    /// Issue jobs accepted with 202.
    pub jobs: Arc<dyn IssueJobStore>,
    pub publications: Arc<dyn PublicationStore>,
    /// Assignee lookups and create screens remembered between issue jobs.
    pub lookups: Arc<dyn LookupCache>,
    /// Refused credential checks per destination, across tenants (`lockout.rs`).
    pub destinations: Arc<dyn DestinationFailureStore>,
    /// The keep-alive sweep's rounds and sent notices.
    pub keep_alive: Arc<dyn KeepAliveStore>,
    /// The refresh leases (the keep-alive sweep also elects its one run with one).
    pub leases: Arc<dyn RefreshLeaseStore>,
    /// Dynamic Jira webhook registrations and handled deliveries.
    pub webhooks: Arc<dyn WebhookStore>,
    /// Connect and Forge installations and their link codes (`crate::apps`).
    pub installations: Arc<dyn crate::store::InstallationStore>,
    /// The OAuth app's client secret: Jira signs webhook deliveries with it (`webhook_jwt`).
    pub client_secret: SecretString,
    pub connector: Arc<Connector>,
    /// Each tenant's fair share of every function (`atlassian::governor`), admitting HTTP
    /// requests (in the router) and events (in [`serve_with_events`]).
    pub fair_shares: Arc<FairShares>,
    /// Outgoing events; `None` when BRIDGE_EVENT_BUS_NAME is unset (functions that publish
    /// refuse to start without it).
    pub events: Option<Arc<dyn EventBus>>,
}

impl App {
    pub async fn from_env() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        // AWS_ENDPOINT_URL (moto locally) is honoured by the SDK itself: same code path as in AWS.
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let dynamo = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name);
        let credentials: Arc<dyn CredentialStore> =
            Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&aws), &config.kms_key_id));
        let transport = Transport::new(&config.http, &config.egress).map_err(|e| InitError::Http(e.to_string()))?;

        let name = config.oauth.client_secret_name.clone();
        let unusable = |reason: &str| InitError::ClientSecret { name: name.clone(), reason: reason.to_owned() };
        let stored = credentials.get(&name).await?.ok_or_else(|| unusable("it does not exist"))?;
        let app_secret: AppSecret = serde_json::from_str(stored.value.expose_secret())
            .map_err(|_| unusable("expected JSON with client_secret and state_signing_key"))?;
        let state_key = base64::engine::general_purpose::STANDARD
            .decode(app_secret.state_signing_key.expose_secret())
            .map_err(|_| unusable("state_signing_key is not base64"))?;
        if state_key.len() < 32 {
            return Err(unusable("state_signing_key must hold at least 32 bytes"));
        }

        let client_secret = app_secret.client_secret.clone();
        let oauth = Arc::new(
            AtlassianOAuth::new(&config.oauth, app_secret.client_secret, transport.clone())
                .map_err(|e| InitError::Http(e.to_string()))?
                .with_clock(config.clock),
        );
        let dynamo = Arc::new(dynamo);
        let tokens = TokenProvider::new(
            dynamo.clone(),
            credentials.clone(),
            dynamo.clone(),
            oauth.clone(),
            config.oauth.refresh_leeway,
        )
        .with_clock(config.clock);
        let fair_shares = Arc::new(FairShares::new(
            dynamo.clone(),
            transport.governors().clone(),
            config.tenant_slots,
            config.http.max_retry_wait,
        ));
        let connector = Connector::new(
            transport.clone(),
            config.oauth.api_base_url.clone(),
            dynamo.clone(),
            credentials.clone(),
            tokens,
        );
        Ok(Self {
            markers: Arc::new(Markers::derive(&state_key)),
            state_signer: Arc::new(StateSigner::new(state_key)),
            transport,
            oauth,
            connections: dynamo.clone(),
            states: dynamo.clone(),
            settings: dynamo.clone(),
            issues: dynamo.clone(),
            sync: dynamo.clone(),
            jobs: dynamo.clone(),
            lookups: dynamo.clone(),
            destinations: dynamo.clone(),
            keep_alive: dynamo.clone(),
            leases: dynamo.clone(),
            webhooks: dynamo.clone(),
            installations: dynamo.clone(),
            client_secret,
            publications: dynamo,
            events: config.event_bus.as_ref().map(|bus| {
                Arc::new(EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&aws), bus, &config.event_source))
                    as Arc<dyn EventBus>
            }),
            credentials,
            connector: Arc::new(connector),
            fair_shares,
            config,
        })
    }

    /// The secret name for a grant or connection: under the deployment's prefix, so IAM can be
    /// scoped to `prefix*`.
    pub fn secret_name(&self, tenant: &crate::domain::TenantId, grant_id: &str) -> String {
        secret_name(&self.config.secret_prefix, tenant, grant_id)
    }
}

/// The secret name for a grant or connection under the deployment's `prefix`.
pub fn secret_name(prefix: &str, tenant: &crate::domain::TenantId, grant_id: &str) -> String {
    format!("{prefix}tenants/{tenant}/{grant_id}")
}

/// One request: a span carrying the path's tenant (handlers without one, like the OAuth
/// callback, record it themselves), its dispatch, and its error mapped to the response once. A
/// synchronous job's request (`routes::JOB_ROUTES`) is counted as a job run.
async fn traced<F>(req: Request, dispatch: impl FnOnce(Request) -> F) -> HttpResponse
where
    F: Future<Output = Result<HttpResponse, ApiError>>,
{
    use tracing::Instrument;
    let span = tracing::info_span!("request", tenant = tracing::field::Empty);
    if let Some(tenant) = req.path_parameters_ref().and_then(|p| p.first("tenant")) {
        span.record("tenant", tenant);
        if let Ok(tenant) = TenantId::parse(tenant) {
            metrics::set_tenant(&tenant);
        }
    }
    let job = crate::http::route_key(&req).is_some_and(crate::api::routes::is_job_route);
    async {
        if job {
            metrics::record(Sample::count(Metric::JobsStarted));
        }
        let result = dispatch(req).await;
        if job {
            job_ended(result.as_ref().err().map(|e| e.code));
        }
        crate::http::respond(result)
    }
    .instrument(span)
    .await
}

/// Counts how a job run ended: done (`None`), or with `code` — failed for good, or retried (the
/// event delivered again, the caller told to send the request again) when the code is.
fn job_ended(code: Option<ErrorCode>) {
    match code {
        None => metrics::record(Sample::count(Metric::JobsSucceeded)),
        Some(code) if code.retried() => metrics::record(Sample::count(Metric::JobsRetried).code(code)),
        Some(code) => metrics::record(Sample::count(Metric::JobsFailed).code(code)),
    }
}

/// The cold start of a function: JSON logs, its routes checked against the table, the App built;
/// an error (logged) when the function cannot start.
async fn start<C>(router: &Router<C>) -> Result<App, String>
where
    C: Send + Sync + 'static,
{
    crate::telemetry::init();
    if let Err(e) = router.check() {
        tracing::error!(error = %e, "cold start failed");
        return Err(e);
    }
    App::from_env().await.map_err(|e| {
        tracing::error!(error = %e, "cold start failed");
        e.to_string()
    })
}

/// Runs an HTTP function: each request goes to its route's handler in `router`, with the
/// function's context, which `context` builds from the App once at cold start.
pub async fn serve<C, M>(context: M, router: Router<C>) -> Result<(), lambda_http::Error>
where
    C: Send + Sync + 'static,
    M: FnOnce(&App) -> C,
{
    serve_checked(|app| Ok(context(app)), router).await
}

/// [`serve`] for a function whose context needs something the App may lack (the connections
/// function needs the bus): an error from `context` is logged and fails the cold start.
pub async fn serve_checked<C, M>(context: M, router: Router<C>) -> Result<(), lambda_http::Error>
where
    C: Send + Sync + 'static,
    M: FnOnce(&App) -> Result<C, String>,
{
    let app = start(&router).await?;
    let router = router.with_fair_shares(app.fair_shares.clone());
    let tenant_claim = app.config.tenant_claim.clone();
    let namespace = app.config.metrics_namespace.clone();
    let context = Arc::new(context(&app).map_err(|e| {
        tracing::error!(error = %e, "cold start failed");
        e
    })?);
    drop(app);
    let (router, tenant_claim, namespace) = (&router, tenant_claim.as_str(), namespace.as_str());
    let function = router.function().name();
    lambda_http::run(service_fn(move |req: Request| {
        let context = context.clone();
        metrics::scope(namespace, function, async move {
            Ok::<_, Infallible>(traced(req, |req| router.dispatch(context, tenant_claim, req)).await)
        })
    }))
    .await
}

/// Emits an outgoing event; a failure to emit stops the delivery (it is delivered again), so no
/// outcome goes unsaid.
pub async fn publish<E: DetailType + serde::Serialize>(bus: &dyn EventBus, detail: &E) -> JobOutcome<()> {
    let unsent = |reason: String| JobOutcome::Stopped(ApiError::new(ErrorCode::Internal, reason));
    let value = match serde_json::to_value(detail) {
        Ok(value) => value,
        Err(e) => return unsent(e.to_string()),
    };
    match bus.publish(E::DETAIL_TYPE, &value).await {
        Ok(()) => JobOutcome::Done(()),
        Err(e) => unsent(e),
    }
}

/// Emits `Publish Failed`; a retryable failure then stops the delivery (it is delivered again), a
/// permanent one has failed it for good.
pub async fn publish_failed(bus: &dyn EventBus, event: PublishFailed) -> JobOutcome<()> {
    tracing::warn!(job = %event.job, retryable = event.retryable, reason = %event.reason, "job failed");
    match publish(bus, &event).await {
        JobOutcome::Done(()) if event.retryable => JobOutcome::Stopped(ApiError::new(event.code, event.reason)),
        JobOutcome::Done(()) => JobOutcome::Failed(()),
        outcome => outcome,
    }
}

/// A job an incoming event asks for, its tenant checked.
pub struct Job<T> {
    pub tenant: TenantId,
    pub idempotency_key: String,
    pub detail: T,
}

/// The life of one incoming event, the same for every job: ignore other types, refuse malformed
/// details and bad tenants for good (`Publish Failed`, not retried), run the job, emit how it
/// ended — the job's event (`Page Published`, `Issues Created`) when it is done, else `Publish
/// Failed`, retried when the error's code is. The answer says whether to deliver the event again
/// (`Stopped`) or not.
pub async fn run_event<T, E, F, Fut>(bus: &dyn EventBus, delivery: Delivery, job: &str, run: F) -> JobOutcome<()>
where
    T: serde::de::DeserializeOwned + DetailType,
    E: serde::Serialize + DetailType,
    F: FnOnce(Job<T>) -> Fut,
    Fut: Future<Output = JobOutcome<E, ApiError>>,
{
    use tracing::Instrument;
    let span = tracing::info_span!("event", tenant = tracing::field::Empty, delivery = %delivery.id);
    async move {
        let envelope = match delivery.event {
            Ok(envelope) if envelope.detail_type == T::DETAIL_TYPE => envelope,
            Ok(other) => {
                tracing::warn!(detail_type = %other.detail_type, "event of another type ignored");
                return JobOutcome::Done(());
            }
            Err(reason) => {
                tracing::error!(reason = %reason, "undeliverable event dropped");
                return JobOutcome::Done(());
            }
        };
        let field = |key: &str| envelope.detail.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let (tenant, idempotency_key) = (field("tenant_id"), field("idempotency_key"));
        tracing::Span::current().record("tenant", tenant.as_str());
        if let Ok(tenant) = TenantId::parse(&tenant) {
            metrics::set_tenant(&tenant);
        }
        metrics::record(Sample::count(Metric::JobsStarted));
        let failed = |error: ApiError| PublishFailed {
            tenant_id: tenant.clone(),
            idempotency_key: idempotency_key.clone(),
            job: job.to_owned(),
            retryable: error.retried(),
            code: error.code,
            reason: error.message,
        };
        // How the run ended, counted once: the code it failed with, if it did.
        let ended = |outcome: JobOutcome<()>, code: Option<ErrorCode>| {
            job_ended(match &outcome {
                JobOutcome::Done(()) => None,
                JobOutcome::Failed(()) => Some(code.unwrap_or(ErrorCode::PublishFailed)),
                JobOutcome::Stopped(error) => Some(error.code),
            });
            outcome
        };
        let detail: T = match crate::http::json_value(envelope.detail.clone()) {
            Ok(detail) => detail,
            Err(e) => {
                // Never the value itself: a secret in the wrong field must not reach an event.
                let error = ApiError::new(ErrorCode::InvalidRequest, format!("the event is malformed: {e}"));
                return ended(publish_failed(bus, failed(error)).await, Some(ErrorCode::InvalidRequest));
            }
        };
        let Ok(tenant_id) = TenantId::parse(&tenant) else {
            let error = ApiError::new(ErrorCode::InvalidTenant, "tenant_id is not a valid tenant id");
            return ended(publish_failed(bus, failed(error)).await, Some(ErrorCode::InvalidTenant));
        };
        match run(Job { tenant: tenant_id, idempotency_key: idempotency_key.clone(), detail }).await {
            JobOutcome::Done(event) => ended(publish(bus, &event).await, None),
            JobOutcome::Failed(error) | JobOutcome::Stopped(error) => {
                let code = error.code;
                ended(publish_failed(bus, failed(error)).await, Some(code))
            }
        }
    }
    .instrument(span)
    .await
}

/// Runs a function that serves HTTP routes and EventBridge events (straight from a rule; a
/// delivery the handler stops fails the invocation, so Lambda delivers it again, then to the
/// dead-letter queue).
pub async fn serve_with_events<C, M, E, EF>(
    context: M,
    router: Router<C>,
    event_handler: E,
) -> Result<(), lambda_runtime::Error>
where
    C: Send + Sync + 'static,
    M: FnOnce(&App) -> C,
    E: Fn(Arc<C>, Arc<dyn EventBus>, Delivery) -> EF + Send + Sync,
    EF: Future<Output = JobOutcome<()>> + Send,
{
    let app = start(&router).await?;
    let Some(bus) = app.events.clone() else {
        tracing::error!("cold start failed: BRIDGE_EVENT_BUS_NAME is required by this function");
        return Err("BRIDGE_EVENT_BUS_NAME is required".into());
    };
    let router = router.with_fair_shares(app.fair_shares.clone());
    let fair_shares = app.fair_shares.clone();
    let http = (Arc::new(context(&app)), app.config.tenant_claim.clone());
    let namespace = app.config.metrics_namespace.clone();
    drop(app);
    let (router, http, event_handler, fair_shares) = (&router, &http, &event_handler, &fair_shares);
    let (namespace, function) = (namespace.as_str(), router.function().name());
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
        let bus = bus.clone();
        metrics::scope(namespace, function, async move {
            match Trigger::classify(event.payload)? {
                Trigger::Http(payload) => {
                    let request = crate::http::request_from_event(*payload)?;
                    let (context, tenant_claim) = (http.0.clone(), http.1.as_str());
                    let response = traced(request, |req| router.dispatch(context, tenant_claim, req)).await;
                    Ok(Reply::Http(Box::new(crate::http::to_gateway_response(response))))
                }
                Trigger::EventBridge(delivery) => {
                    match admit_event(fair_shares, router.function().name(), *delivery, |delivery| {
                        event_handler(http.0.clone(), bus, delivery)
                    })
                    .await
                    {
                        JobOutcome::Done(()) | JobOutcome::Failed(()) => Ok(Reply::Event {}),
                        JobOutcome::Stopped(error) => Err(lambda_runtime::Error::from(error.message)),
                    }
                }
            }
        })
    }))
    .await
}

/// One event's job inside a fair-share slot of its tenant in `pool` (the function). A refusal
/// (every slot taken, or Atlassian pausing the tenant past what a job waits) stops the delivery
/// before the job starts and emits nothing: the invocation fails, so Lambda delivers the event
/// again later (twice, minutes apart, then to the dead-letter queue), and no `Publish Failed`
/// says that a job failed which never began — its own outcome is emitted once it runs. An event
/// without a valid `tenant_id` goes straight to the handler, which refuses it for good.
pub async fn admit_event<F, Fut>(fair_shares: &FairShares, pool: &str, delivery: Delivery, handle: F) -> JobOutcome<()>
where
    F: FnOnce(Delivery) -> Fut,
    Fut: Future<Output = JobOutcome<()>>,
{
    let tenant = delivery
        .event
        .as_ref()
        .ok()
        .and_then(|envelope| envelope.detail.get("tenant_id"))
        .and_then(|tenant| tenant.as_str())
        .and_then(|tenant| TenantId::parse(tenant).ok());
    let Some(tenant) = tenant else { return handle(delivery).await };
    // The admission's own metrics (slot wait, refusal) are the tenant's too.
    metrics::set_tenant(&tenant);
    let id = delivery.id.clone();
    match fair_shares.run(&tenant, pool, handle(delivery)).await {
        Ok(outcome) => outcome,
        Err(refused) => {
            tracing::warn!(tenant = %tenant, delivery = %id, code = %refused.code, retry_after = refused.retry_after, "event not admitted; it is delivered again later");
            JobOutcome::Stopped(refused)
        }
    }
}

/// What an invocation of [`serve_with_events`] answers: the HTTP response, or an empty object
/// for an event that needs no redelivery.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Reply {
    Http(Box<aws_lambda_events::apigw::ApiGatewayV2httpResponse>),
    Event {},
}

#[cfg(test)]
mod tests {
    use super::*;

    mod admission {
        use super::*;
        use crate::atlassian::governor::Governors;
        use crate::store::TenantSlots;
        use crate::store::memory::MemoryStore;

        fn delivery(tenant: &str) -> Delivery {
            let event = serde_json::json!({
                "version": "0", "id": "e-1", "detail-type": "Report Ready", "source": "saas.retro",
                "account": "1", "time": "2026-12-01T00:00:00Z", "region": "us-east-1", "resources": [],
                "detail": {"tenant_id": tenant, "idempotency_key": "k-1"}
            });
            Delivery { id: "e-1".into(), event: Ok(serde_json::from_value(event).unwrap()) }
        }

        /// The tenant's one slot is taken (a job elsewhere): the next event of the tenant is
        /// stopped before its job runs, so it emits nothing (no `Publish Failed`) and the
        /// invocation fails — Lambda delivers it again later.
        #[tokio::test]
        async fn a_refused_event_is_delivered_again_and_its_job_never_runs() {
            let store = MemoryStore::new();
            let shares =
                FairShares::new(store.slots.clone(), Governors::default(), 1, std::time::Duration::from_secs(5));
            let acme = TenantId::parse("acme").unwrap();
            let now = time::OffsetDateTime::now_utc();
            let until = now + time::Duration::minutes(1);
            store.slots.acquire(&acme, "publish-page", "elsewhere", 1, until, now).await.unwrap();
            let ran = std::sync::atomic::AtomicBool::new(false);
            let outcome = admit_event(&shares, "publish-page", delivery("acme"), |_| async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                JobOutcome::Done(())
            })
            .await;
            let JobOutcome::Stopped(error) = outcome else { panic!("the delivery must be stopped") };
            assert_eq!(error.code, ErrorCode::TenantRateLimited);
            assert!(error.retried());
            assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "the job ran unadmitted");
            // Another tenant's event runs, inside a slot it gives back.
            let outcome =
                admit_event(&shares, "publish-page", delivery("globex"), |_| async { JobOutcome::Done(()) }).await;
            assert!(matches!(outcome, JobOutcome::Done(())));
            assert!(store.slots.holders(&TenantId::parse("globex").unwrap(), "publish-page").is_empty());
        }

        /// An event whose tenant is no tenant id is the handler's to refuse for good.
        #[tokio::test]
        async fn an_event_without_a_valid_tenant_goes_straight_to_the_handler() {
            let store = MemoryStore::new();
            store.faults.fail_next("TenantSlots::acquire");
            let shares =
                FairShares::new(store.slots.clone(), Governors::default(), 1, std::time::Duration::from_secs(5));
            let outcome =
                admit_event(&shares, "publish-page", delivery("not a tenant!"), |_| async { JobOutcome::Failed(()) })
                    .await;
            assert!(matches!(outcome, JobOutcome::Failed(())));
        }
    }

    #[test]
    fn an_event_is_answered_with_an_empty_object() {
        assert_eq!(serde_json::to_value(Reply::Event {}).unwrap(), serde_json::json!({}));
        let response = crate::http::to_gateway_response(crate::http::no_content());
        assert_eq!(serde_json::to_value(Reply::Http(Box::new(response))).unwrap()["statusCode"], 204);
    }
}
