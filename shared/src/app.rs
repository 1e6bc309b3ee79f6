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
use crate::events::{Delivery, DetailType, EventBridgeBus, EventBus, FailedInvocation, PublishFailed, Trigger};
use crate::http::HttpResponse;
use crate::jobs::JobOutcome;
use crate::markers::Markers;
use crate::metrics::{self, Metric, Sample};
use crate::oauth::{AtlassianOAuth, StateSigner, TokenProvider};
use crate::store::dynamo::DynamoStore;
use crate::store::secrets::SecretsManagerStore;
use crate::store::{
    ConnectionStore, CredentialStore, DeadLetterNotices, DestinationFailureStore, IssueJobStore, IssueLedger,
    KeepAliveStore, LookupCache, OAuthStateStore, PublicationStore, RefreshLeaseStore, SettingsStore, StoreError,
    WebhookStore,
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
    /// The terminal notices of dead-lettered events ([`settle_dead_letter`]).
    pub dead_letters: Arc<dyn DeadLetterNotices>,
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
            dead_letters: dynamo.clone(),
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

/// A dead-lettered event, as the function's [`settle_dead_letter`] hook is asked about it.
pub struct DeadLetter {
    pub tenant: TenantId,
    pub idempotency_key: String,
    /// The event's `detail-type`: which of the function's jobs it was.
    pub detail_type: String,
    pub detail: serde_json::Value,
}

/// What a function says about a dead-lettered event: which job it was (`page`, `issues`, as its
/// `Publish Failed` names it), and whether that job has in fact succeeded (another delivery of
/// the same event, or a redrive, finished it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub job: &'static str,
    pub succeeded: bool,
}

/// How long a claim on a dead letter's notice holds off other deliveries of its record: far
/// longer than one `PutEvents`, far shorter than Lambda's first retry (about a minute).
const NOTICE_LEASE: time::Duration = time::Duration::seconds(30);

/// How long a sent notice is remembered: past the dead-letter queue's 14-day retention, after
/// which no record of the event can arrive (a redrive makes a new delivery, not a record).
const NOTICE_KEPT: time::Duration = time::Duration::days(15);

/// Lambda's record of an event that failed for good (its retries exhausted; the event in the
/// function's dead-letter queue): the SaaS hears it, exactly once, as `Publish Failed` with
/// `retryable: false` and the code `retries_exhausted` — unless `judge` (the function's hook)
/// says that the job has in fact succeeded, or that the event is no job of the function's.
///
/// Once per function, job, tenant and idempotency key, whatever duplicates and kills do: the
/// notice is claimed in the store with a short lease, published, then marked sent (see
/// `store::dead_letters` for the one narrow window). A record of a record (settling one failed
/// for good) is ignored, so records never beget records. The answer is `Stopped` (deliver the
/// record again) when the store or the bus failed, or another delivery is publishing now.
pub async fn settle_dead_letter<F, Fut>(
    bus: &dyn EventBus,
    notices: &dyn DeadLetterNotices,
    function: &str,
    holder: &str,
    record: &FailedInvocation,
    judge: F,
) -> JobOutcome<()>
where
    F: FnOnce(DeadLetter) -> Fut,
    Fut: Future<Output = Result<Option<Verdict>, ApiError>>,
{
    let context = &record.request_context;
    if record.of_a_record() {
        tracing::error!(request = %context.request_id, "settling a dead-lettered event failed for good; its own record is ignored (see the dead-letter queue)");
        return JobOutcome::Done(());
    }
    let envelope: crate::events::Envelope = match serde_json::from_value(record.request_payload.clone()) {
        Ok(envelope) => envelope,
        Err(e) => {
            tracing::error!(request = %context.request_id, error = %e, "an invocation record carries no event; ignored");
            return JobOutcome::Done(());
        }
    };
    let field = |key: &str| envelope.detail.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let (tenant, idempotency_key) = (field("tenant_id"), field("idempotency_key"));
    let Ok(tenant) = TenantId::parse(&tenant) else {
        // Its delivery refused it for good (`invalid_tenant`), which is no failed invocation;
        // nothing can be keyed to a tenant that is none.
        tracing::warn!(request = %context.request_id, "a dead-lettered event without a valid tenant; ignored");
        return JobOutcome::Done(());
    };
    let letter = DeadLetter {
        tenant: tenant.clone(),
        idempotency_key: idempotency_key.clone(),
        detail_type: envelope.detail_type.clone(),
        detail: envelope.detail.clone(),
    };
    let verdict = match judge(letter).await {
        Ok(Some(verdict)) => verdict,
        Ok(None) => {
            tracing::warn!(tenant = %tenant, detail_type = %envelope.detail_type, "a dead-lettered event of no job of ours; ignored");
            return JobOutcome::Done(());
        }
        Err(e) => return JobOutcome::Stopped(e),
    };
    if verdict.succeeded {
        tracing::info!(tenant = %tenant, job = verdict.job, "a dead-lettered event's job succeeded on another delivery; nothing to report");
        return JobOutcome::Done(());
    }
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(idempotency_key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let notice = format!("{function}#{}#{digest}", verdict.job);
    let now = time::OffsetDateTime::now_utc();
    match notices.claim_notice(&tenant, &notice, holder, now + NOTICE_LEASE, now).await {
        Ok(crate::store::NoticeClaim::Ours) => {}
        Ok(crate::store::NoticeClaim::Sent) => {
            tracing::info!(tenant = %tenant, job = verdict.job, "the dead-lettered event's Publish Failed went out already");
            return JobOutcome::Done(());
        }
        Ok(crate::store::NoticeClaim::Held { .. }) => {
            let error = ApiError::new(ErrorCode::JobInProgress, "another delivery of the record is reporting it");
            return JobOutcome::Stopped(error);
        }
        Err(e) => return JobOutcome::Stopped(e.into()),
    }
    // Known conditions only: the record is Lambda's, but its text is not ours to repeat.
    let why = match context.condition.as_str() {
        "EventAgeExceeded" => "the event grew older than its maximum age",
        _ => "its retries were exhausted",
    };
    let attempts = context.approximate_invoke_count.max(1);
    let reason = format!(
        "gave up after {attempts} attempt(s): {why}. The event is in the {function} dead-letter queue; a redrive of it may still publish it."
    );
    let event = PublishFailed {
        tenant_id: tenant.to_string(),
        idempotency_key,
        job: verdict.job.to_owned(),
        retryable: false,
        code: ErrorCode::RetriesExhausted,
        reason,
    };
    tracing::warn!(tenant = %tenant, job = verdict.job, attempts, "dead-lettered event reported as failed for good");
    if let JobOutcome::Stopped(error) = publish(bus, &event).await {
        if let Err(e) = notices.release_notice(&tenant, &notice, holder).await {
            tracing::warn!(error = %e, "the unsent notice's claim stays until its lease ends");
        }
        return JobOutcome::Stopped(error);
    }
    match notices.mark_sent(&tenant, &notice, holder, now + NOTICE_KEPT).await {
        Ok(true) => {}
        // Sent, but not remembered: failing the record now would only send it again.
        Ok(false) => {
            tracing::warn!("the notice's claim lapsed before it was marked sent; another delivery may send it too")
        }
        Err(e) => tracing::warn!(error = %e, "the notice went out but could not be marked sent"),
    }
    JobOutcome::Done(())
}

/// Runs a function that serves HTTP routes and EventBridge events (straight from a rule; a
/// delivery the handler stops fails the invocation, so Lambda delivers it again, then to the
/// dead-letter queue — and puts its record on the bus, which a rule brings back here: see
/// [`settle_dead_letter`], where `judge` is the function's hook).
pub async fn serve_with_events<C, M, E, EF, J, JF>(
    context: M,
    router: Router<C>,
    event_handler: E,
    judge: J,
) -> Result<(), lambda_runtime::Error>
where
    C: Send + Sync + 'static,
    M: FnOnce(&App) -> C,
    E: Fn(Arc<C>, Arc<dyn EventBus>, Delivery) -> EF + Send + Sync,
    EF: Future<Output = JobOutcome<()>> + Send,
    J: Fn(Arc<C>, DeadLetter) -> JF + Send + Sync,
    JF: Future<Output = Result<Option<Verdict>, ApiError>> + Send,
{
    let app = start(&router).await?;
    let Some(bus) = app.events.clone() else {
        tracing::error!("cold start failed: BRIDGE_EVENT_BUS_NAME is required by this function");
        return Err("BRIDGE_EVENT_BUS_NAME is required".into());
    };
    let router = router.with_fair_shares(app.fair_shares.clone());
    let fair_shares = app.fair_shares.clone();
    let notices = app.dead_letters.clone();
    let http = (Arc::new(context(&app)), app.config.tenant_claim.clone());
    let namespace = app.config.metrics_namespace.clone();
    drop(app);
    let (router, http, event_handler, fair_shares, judge) = (&router, &http, &event_handler, &fair_shares, &judge);
    let (namespace, function) = (namespace.as_str(), router.function().name());
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
        let (bus, notices) = (bus.clone(), notices.clone());
        metrics::scope(namespace, function, async move {
            let holder = event.context.request_id.clone();
            match Trigger::classify(event.payload)? {
                Trigger::InvocationFailure(Err(reason)) => {
                    tracing::error!(reason = %reason, "unreadable invocation record dropped");
                    Ok(Reply::Event {})
                }
                Trigger::InvocationFailure(Ok(record)) => {
                    let judged = |letter| judge(http.0.clone(), letter);
                    match settle_dead_letter(bus.as_ref(), notices.as_ref(), function, &holder, &record, judged).await {
                        JobOutcome::Stopped(error) => Err(lambda_runtime::Error::from(error.message)),
                        _ => Ok(Reply::Event {}),
                    }
                }
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

    mod dead_letters {
        use super::*;
        use crate::events::RecordingBus;
        use crate::store::memory::MemoryStore;

        fn record(tenant: &str, key: &str) -> FailedInvocation {
            let event = serde_json::json!({
                "version": "0", "id": "e-1", "detail-type": "Report Ready", "source": "saas.retro",
                "account": "1", "time": "2026-12-01T00:00:00Z", "region": "us-east-1", "resources": [],
                "detail": {"tenant_id": tenant, "idempotency_key": key, "report": {"secret": "s3cr3t-payload"}}
            });
            serde_json::from_value(serde_json::json!({
                "requestContext": {"requestId": "q-1", "functionArn": "arn:aws:lambda:us-east-1:1:function:publish-page:$LATEST",
                    "condition": "RetriesExhausted", "approximateInvokeCount": 3},
                "requestPayload": event,
                "responsePayload": {"errorMessage": "s3cr3t-error"}
            }))
            .unwrap()
        }

        async fn failed(_: DeadLetter) -> Result<Option<Verdict>, ApiError> {
            Ok(Some(Verdict { job: "page", succeeded: false }))
        }

        fn terminal(bus: &RecordingBus) -> Vec<serde_json::Value> {
            bus.published().into_iter().filter(|(t, _)| t == "Publish Failed").map(|(_, d)| d).collect()
        }

        /// One record, one terminal `Publish Failed`: not retried, its code, a reason a person
        /// reads, and neither the payload nor the last error quoted.
        #[tokio::test]
        async fn a_dead_lettered_event_is_reported_once_for_good() {
            let (store, bus) = (MemoryStore::new(), RecordingBus::default());
            let rec = record("acme", "k-1");
            let outcome = settle_dead_letter(&bus, &*store.dead_letters, "publish-page", "h1", &rec, failed).await;
            assert!(matches!(outcome, JobOutcome::Done(())));
            let sent = terminal(&bus);
            assert_eq!(sent.len(), 1);
            let event = &sent[0];
            assert_eq!(event["retryable"], false);
            assert_eq!(event["code"], "retries_exhausted");
            assert_eq!(event["job"], "page");
            assert_eq!(event["tenant_id"], "acme");
            assert_eq!(event["idempotency_key"], "k-1");
            let reason = event["reason"].as_str().unwrap();
            assert!(reason.contains("3 attempt") && reason.contains("dead-letter queue") && reason.contains("redrive"));
            let text = event.to_string();
            assert!(!text.contains("s3cr3t"), "{text}");
            // The same record again (EventBridge delivers at least once): nothing more.
            let again = settle_dead_letter(&bus, &*store.dead_letters, "publish-page", "h2", &rec, failed).await;
            assert!(matches!(again, JobOutcome::Done(())));
            assert_eq!(terminal(&bus).len(), 1);
            // Another job's, or another key's, is its own.
            let other = record("acme", "k-2");
            settle_dead_letter(&bus, &*store.dead_letters, "publish-page", "h3", &other, failed).await;
            assert_eq!(terminal(&bus).len(), 2);
        }

        /// Two deliveries of the record at once: one publishes, the other is told to come back
        /// (and then finds it sent).
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_records_report_once() {
            let (store, bus) = (MemoryStore::new(), Arc::new(RecordingBus::default()));
            let rec = Arc::new(record("acme", "k-1"));
            let mut tasks = Vec::new();
            for n in 0..8 {
                let (store, bus, rec) = (store.clone(), bus.clone(), rec.clone());
                tasks.push(tokio::spawn(async move {
                    let holder = format!("h{n}");
                    settle_dead_letter(&*bus, &*store.dead_letters, "publish-page", &holder, &rec, failed).await
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            assert_eq!(terminal(&bus).len(), 1);
            let last = settle_dead_letter(&*bus, &*store.dead_letters, "publish-page", "late", &rec, failed).await;
            assert!(matches!(last, JobOutcome::Done(())));
            assert_eq!(terminal(&bus).len(), 1);
        }

        /// A holder killed after its claim (nothing published): the record is delivered again,
        /// is held off until the lease lapses, then reported.
        #[tokio::test]
        async fn a_killed_holder_is_taken_over_once_its_lease_lapses() {
            let (store, bus) = (MemoryStore::new(), RecordingBus::default());
            let rec = record("acme", "k-1");
            let acme = TenantId::parse("acme").unwrap();
            let now = time::OffsetDateTime::now_utc();
            let digest: String = {
                use sha2::Digest;
                sha2::Sha256::digest(b"k-1").iter().map(|b| format!("{b:02x}")).collect()
            };
            let notice = format!("publish-page#page#{digest}");
            store.dead_letters.claim_notice(&acme, &notice, "killed", now + NOTICE_LEASE, now).await.unwrap();
            let held = settle_dead_letter(&bus, &*store.dead_letters, "publish-page", "h2", &rec, failed).await;
            let JobOutcome::Stopped(error) = held else { panic!("a held notice must be retried") };
            assert_eq!(error.code, ErrorCode::JobInProgress);
            assert!(terminal(&bus).is_empty());
            // The killed holder's lease lapses (claimed again with an end in the past).
            store.dead_letters.release_notice(&acme, &notice, "killed").await.unwrap();
            store
                .dead_letters
                .claim_notice(&acme, &notice, "killed", now - time::Duration::seconds(1), now)
                .await
                .unwrap();
            let taken = settle_dead_letter(&bus, &*store.dead_letters, "publish-page", "h3", &rec, failed).await;
            assert!(matches!(taken, JobOutcome::Done(())));
            assert_eq!(terminal(&bus).len(), 1);
            assert_eq!(store.dead_letters.sent(&acme).len(), 1);
        }

        /// The bus refuses: the claim is given back and the record delivered again, which then
        /// reports it; the store failing stops it before anything is sent.
        #[tokio::test]
        async fn a_failed_publish_is_retried_without_a_duplicate() {
            let (store, bus) = (MemoryStore::new(), RecordingBus::default());
            let rec = record("acme", "k-1");
            bus.fail_next();
            let outcome = settle_dead_letter(&bus, &*store.dead_letters, "publish-page", "h1", &rec, failed).await;
            assert!(matches!(outcome, JobOutcome::Stopped(_)));
            store.faults.fail_next("DeadLetterNotices::claim_notice");
            let outcome = settle_dead_letter(&bus, &*store.dead_letters, "publish-page", "h2", &rec, failed).await;
            assert!(matches!(outcome, JobOutcome::Stopped(_)));
            assert!(terminal(&bus).is_empty());
            settle_dead_letter(&bus, &*store.dead_letters, "publish-page", "h3", &rec, failed).await;
            settle_dead_letter(&bus, &*store.dead_letters, "publish-page", "h4", &rec, failed).await;
            assert_eq!(terminal(&bus).len(), 1);
        }

        /// A job another delivery finished, an event of no job, a record of a record, an event
        /// without a tenant: nothing is emitted; a failing hook asks for the record again.
        #[tokio::test]
        async fn nothing_is_reported_for_what_did_not_fail() {
            let (store, bus) = (MemoryStore::new(), RecordingBus::default());
            let rec = record("acme", "k-1");
            let notices = &*store.dead_letters;
            let succeeded = |letter: DeadLetter| async move {
                assert_eq!((letter.tenant.as_str(), letter.idempotency_key.as_str()), ("acme", "k-1"));
                assert_eq!(letter.detail_type, "Report Ready");
                Ok(Some(Verdict { job: "page", succeeded: true }))
            };
            assert!(matches!(
                settle_dead_letter(&bus, notices, "publish-page", "h", &rec, succeeded).await,
                JobOutcome::Done(())
            ));
            let none = |_| async { Ok(None) };
            assert!(matches!(
                settle_dead_letter(&bus, notices, "publish-page", "h", &rec, none).await,
                JobOutcome::Done(())
            ));
            let nested: FailedInvocation = serde_json::from_value(serde_json::json!({
                "requestContext": {"condition": "RetriesExhausted"},
                "requestPayload": {"detail-type": crate::events::INVOCATION_FAILURE, "source": "lambda",
                    "detail": {"requestContext": {}, "requestPayload": {}}}
            }))
            .unwrap();
            assert!(matches!(
                settle_dead_letter(&bus, notices, "publish-page", "h", &nested, failed).await,
                JobOutcome::Done(())
            ));
            let bad = record("not a tenant!", "k-1");
            assert!(matches!(
                settle_dead_letter(&bus, notices, "publish-page", "h", &bad, failed).await,
                JobOutcome::Done(())
            ));
            assert!(bus.published().is_empty());
            let broken = |_| async { Err(ApiError::internal()) };
            assert!(matches!(
                settle_dead_letter(&bus, notices, "publish-page", "h", &rec, broken).await,
                JobOutcome::Stopped(_)
            ));
            assert!(bus.published().is_empty());
        }
    }

    #[test]
    fn an_event_is_answered_with_an_empty_object() {
        assert_eq!(serde_json::to_value(Reply::Event {}).unwrap(), serde_json::json!({}));
        let response = crate::http::to_gateway_response(crate::http::no_content());
        assert_eq!(serde_json::to_value(Reply::Http(Box::new(response))).unwrap()["statusCode"], 204);
    }
}
