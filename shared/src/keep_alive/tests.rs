//! The sweep's slicing, fairness and once-only notices, against the in-memory stores and fake
//! checks (the end-to-end run through the simulator is tests/integration/test_keep_alive.py).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::SecretString;
use serde_json::Value;

use super::*;
use crate::domain::TenantId;
use crate::store::memory::{MemoryStore, oauth_connection};

/// Every event published, in order; fails the next `fail_next` publishes.
#[derive(Default)]
struct Bus {
    events: Mutex<Vec<(String, Value)>>,
    fail_next: AtomicUsize,
}

#[async_trait]
impl EventBus for Bus {
    async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), String> {
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err("PutEvents failed: injected".into());
        }
        self.events.lock().unwrap().push((detail_type.to_owned(), detail.clone()));
        Ok(())
    }
}

impl Bus {
    fn of(&self, detail_type: &str) -> Vec<Value> {
        self.events.lock().unwrap().iter().filter(|(t, _)| t == detail_type).map(|(_, v)| v.clone()).collect()
    }
}

/// How each connection's check answers, by tenant; records the order of visits.
#[derive(Default)]
struct FakeChecks {
    visits: Mutex<Vec<String>>,
    refreshes: AtomicUsize,
    /// Tenants whose verification is refused (401).
    refused: Mutex<Vec<String>>,
    /// Tenants whose grant Atlassian refuses.
    dead_grants: Mutex<Vec<String>>,
    /// Tenants whose server never answers.
    tarpits: Mutex<Vec<String>>,
    /// How long each check takes (virtual time).
    delay: Duration,
}

impl FakeChecks {
    async fn enter(&self, connection: &Connection) {
        self.visits.lock().unwrap().push(sweep_key(connection));
        if self.tarpits.lock().unwrap().contains(&connection.tenant.to_string()) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.delay).await;
    }
}

#[async_trait]
impl Checks for FakeChecks {
    async fn keep_alive(&self, connection: &Connection) -> Result<(), TokenError> {
        self.enter(connection).await;
        if self.dead_grants.lock().unwrap().contains(&connection.tenant.to_string()) {
            return Err(TokenError::ReconnectRequired(connection.product));
        }
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn verify(&self, connection: &Connection) -> Result<Option<String>, AccessError> {
        self.enter(connection).await;
        if self.refused.lock().unwrap().contains(&connection.tenant.to_string()) {
            return Err(AccessError::Upstream(AtlassianError::api(
                401,
                crate::atlassian::ErrorPayload::Text("Unauthorized".into()),
            )));
        }
        Ok(Some("Ada".into()))
    }
}

struct World {
    store: MemoryStore,
    checks: Arc<FakeChecks>,
    bus: Arc<Bus>,
    sweep: Sweep,
}

fn world(checks: FakeChecks) -> World {
    let store = MemoryStore::new();
    let checks = Arc::new(checks);
    let bus = Arc::new(Bus::default());
    let sweep = Sweep {
        connections: store.connections.clone(),
        credentials: store.credentials.clone(),
        store: store.keep_alive.clone(),
        leases: store.leases.clone(),
        checks: checks.clone(),
        events: bus.clone(),
        clock: Clock::system(),
        page_size: 2,
        check_timeout: Duration::from_secs(10),
        chores: vec![],
    };
    World { store, checks, bus, sweep }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn tokens(issued_at: Option<OffsetDateTime>) -> SecretString {
    TokenSet {
        access_token: SecretString::from("at"),
        refresh_token: SecretString::from("rt"),
        expires_at: OffsetDateTime::now_utc() + time::Duration::hours(1),
        scopes: vec![],
        issued_at,
    }
    .to_secret()
}

impl World {
    /// An OAuth connection consented `age` ago, its pair issued `idle` ago.
    async fn oauth(&self, name: &str, product: Product, age: time::Duration, idle: time::Duration) -> Connection {
        let now = OffsetDateTime::now_utc();
        let connection =
            Connection { created_at: now - age, ..oauth_connection(&tenant(name), product, &format!("oauth-{name}")) };
        self.store.connections.put_all(std::slice::from_ref(&connection)).await.unwrap();
        self.store.credentials.put(&connection.secret_name, &tokens(Some(now - idle))).await.unwrap();
        connection
    }

    /// A Cloud API-token connection.
    async fn token(&self, name: &str) -> Connection {
        let connection = Connection {
            auth_type: AuthType::ApiToken,
            base_url: Some("https://acme.atlassian.net".into()),
            grant_id: "token-jira".into(),
            ..oauth_connection(&tenant(name), Product::Jira, "token-jira")
        };
        self.store.connections.put_all(std::slice::from_ref(&connection)).await.unwrap();
        connection
    }

    async fn run(&self, kind: RunKind) -> RunReport {
        let deadline = Instant::now() + Duration::from_secs(600);
        self.sweep.run(&RunRequest { sweep: kind }, deadline).await.unwrap()
    }

    fn at_day(&mut self, day: i64) {
        self.sweep.clock = Clock::shifted(time::Duration::days(day));
    }
}

#[tokio::test]
async fn an_idle_grant_is_refreshed_and_a_used_one_is_not() {
    let w = world(FakeChecks::default());
    w.oauth("idle", Product::Jira, time::Duration::days(40), time::Duration::days(31)).await;
    w.oauth("used", Product::Jira, time::Duration::days(40), time::Duration::days(2)).await;
    let report = w.run(RunKind::Scheduled).await;
    assert_eq!((report.visited, report.refreshed, report.round_complete), (2, 1, true));
    assert_eq!(*w.checks.visits.lock().unwrap(), ["idle#jira"]);
}

/// Secrets stored before issue times were recorded: the consent's time counts.
#[tokio::test]
async fn without_an_issue_time_the_consent_time_counts() {
    let w = world(FakeChecks::default());
    let old = w.oauth("old", Product::Jira, time::Duration::days(31), time::Duration::ZERO).await;
    w.store.credentials.put(&old.secret_name, &tokens(None)).await.unwrap();
    let young = w.oauth("young", Product::Jira, time::Duration::days(3), time::Duration::ZERO).await;
    w.store.credentials.put(&young.secret_name, &tokens(None)).await.unwrap();
    w.run(RunKind::Scheduled).await;
    assert_eq!(*w.checks.visits.lock().unwrap(), ["old#jira"]);
}

#[tokio::test]
async fn expiring_notices_go_out_once_each_30_and_7_days_before_the_absolute_limit() {
    let mut w = world(FakeChecks::default());
    // One consent for both products (one grant): one notice for both.
    let jira = w.oauth("acme", Product::Jira, time::Duration::ZERO, time::Duration::ZERO).await;
    let confluence = Connection { product: Product::Confluence, ..jira.clone() };
    w.store.connections.put_all(&[jira.clone(), confluence]).await.unwrap();

    for day in [300, 334] {
        w.at_day(day);
        w.run(RunKind::Restart).await;
        assert!(w.bus.of(ConnectionExpiring::DETAIL_TYPE).is_empty(), "day {day}");
    }
    w.at_day(335);
    for _ in 0..3 {
        w.run(RunKind::Restart).await;
    }
    w.at_day(340);
    w.run(RunKind::Restart).await;
    let sent = w.bus.of(ConnectionExpiring::DETAIL_TYPE);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["days_left"], 30);
    assert_eq!(sent[0]["tenant_id"], "acme");
    assert_eq!(sent[0]["products"], serde_json::json!(["confluence", "jira"]));
    let expires_at = (jira.created_at + ABSOLUTE_LIFETIME).format(&time::format_description::well_known::Rfc3339);
    assert_eq!(sent[0]["expires_at"], expires_at.unwrap());
    assert!(sent[0]["reason"].as_str().unwrap().contains("re-authorize"), "{}", sent[0]["reason"]);

    w.at_day(358);
    for _ in 0..3 {
        w.run(RunKind::Restart).await;
    }
    let sent = w.bus.of(ConnectionExpiring::DETAIL_TYPE);
    assert_eq!(sent.iter().map(|e| e["days_left"].as_u64().unwrap()).collect::<Vec<_>>(), [30, 7]);
}

/// A sweep that first sees a consent 5 days before its end sends the 7-day notice only.
#[tokio::test]
async fn only_the_most_urgent_notice_goes_out() {
    let mut w = world(FakeChecks::default());
    w.oauth("late", Product::Jira, time::Duration::ZERO, time::Duration::ZERO).await;
    w.at_day(360);
    w.run(RunKind::Restart).await;
    let sent = w.bus.of(ConnectionExpiring::DETAIL_TYPE);
    assert_eq!(sent.iter().map(|e| e["days_left"].as_u64().unwrap()).collect::<Vec<_>>(), [7]);
}

#[tokio::test]
async fn a_notice_that_could_not_be_sent_goes_out_on_the_next_run() {
    let mut w = world(FakeChecks::default());
    w.oauth("acme", Product::Jira, time::Duration::ZERO, time::Duration::ZERO).await;
    w.at_day(336);
    w.bus.fail_next.store(1, Ordering::SeqCst);
    assert_eq!(w.run(RunKind::Restart).await.expiring_sent, 0);
    assert_eq!(w.run(RunKind::Restart).await.expiring_sent, 1);
    assert_eq!(w.run(RunKind::Restart).await.expiring_sent, 0);
    assert_eq!(w.bus.of(ConnectionExpiring::DETAIL_TYPE).len(), 1);
}

#[tokio::test]
async fn a_refused_token_is_broken_once_and_news_again_after_it_worked() {
    let w = world(FakeChecks::default());
    let c = w.token("acme").await;
    w.checks.refused.lock().unwrap().push("acme".into());
    for _ in 0..3 {
        w.run(RunKind::Restart).await;
    }
    let broken = w.bus.of(ConnectionBroken::DETAIL_TYPE);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0]["status"], "invalid_credentials");
    assert_eq!(broken[0]["auth_type"], "api_token");
    assert!(broken[0]["reason"].as_str().unwrap().contains("API token was revoked or expired"), "{}", broken[0]);
    let stored = w.store.connections.get(&c.tenant, Product::Jira).await.unwrap().unwrap();
    assert_eq!(stored.status, ConnectionStatus::InvalidCredentials);
    // Broken connections are not checked again (the admin registers new credentials).
    assert_eq!(w.checks.visits.lock().unwrap().len(), 1);

    // Fixed (the admin verified again), then refused again: a second notice.
    w.store.connections.put_all(std::slice::from_ref(&c)).await.unwrap();
    w.checks.refused.lock().unwrap().clear();
    assert_eq!(w.run(RunKind::Restart).await.verified, 1);
    w.checks.refused.lock().unwrap().push("acme".into());
    w.run(RunKind::Restart).await;
    assert_eq!(w.bus.of(ConnectionBroken::DETAIL_TYPE).len(), 2);
}

#[tokio::test]
async fn a_grant_atlassian_refuses_asks_for_a_new_consent_once() {
    let w = world(FakeChecks::default());
    w.oauth("gone", Product::Confluence, time::Duration::days(100), time::Duration::days(95)).await;
    w.checks.dead_grants.lock().unwrap().push("gone".into());
    w.run(RunKind::Restart).await;
    // The token provider marks the connection; a request may too, before the next round.
    w.store
        .connections
        .mark_reconnect_required(&tenant("gone"), "oauth-gone", OffsetDateTime::now_utc())
        .await
        .unwrap();
    w.run(RunKind::Restart).await;
    let broken = w.bus.of(ConnectionBroken::DETAIL_TYPE);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0]["status"], "reconnect_required");
    assert_eq!(
        broken[0]["reason"],
        "Atlassian no longer accepts the Confluence authorization (it expired or was revoked): re-authorize the Confluence connection"
    );
}

/// A connection a request found broken before the sweep came by is announced too, once.
#[tokio::test]
async fn a_connection_found_broken_by_a_request_is_announced_once() {
    let w = world(FakeChecks::default());
    let c = w.token("acme").await;
    let refused = Connection { status: ConnectionStatus::InvalidCredentials, ..c };
    w.store.connections.put_all(&[refused]).await.unwrap();
    w.run(RunKind::Restart).await;
    w.run(RunKind::Restart).await;
    assert_eq!(w.bus.of(ConnectionBroken::DETAIL_TYPE).len(), 1);
    assert!(w.checks.visits.lock().unwrap().is_empty());
}

/// Runs are slices of one round: each stops before its deadline, the next resumes after the
/// last connection done; nothing is skipped or visited twice in a round. A finished round
/// waits a day for the next.
#[tokio::test(start_paused = true)]
async fn runs_resume_where_the_last_one_stopped_until_the_round_is_done() {
    let mut w = world(FakeChecks { delay: Duration::from_secs(10), ..FakeChecks::default() });
    let names: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
    for name in &names {
        w.token(name).await;
    }
    let mut slices = Vec::new();
    for _ in 0..3 {
        // Room for three pages of two: 35 s, pages of 10 s, one only started with > 10 s left.
        let before = w.checks.visits.lock().unwrap().len();
        let report = w.sweep.run(&RunRequest::default(), Instant::now() + Duration::from_secs(35)).await.unwrap();
        slices.push(w.checks.visits.lock().unwrap()[before..].to_vec());
        if report.round_complete {
            break;
        }
        assert_eq!(report.visited, 6);
    }
    let expected: Vec<String> = names.iter().map(|n| format!("{n}#jira")).collect();
    assert_eq!(slices.concat(), expected, "{slices:?}");
    assert_eq!(slices.len(), 2);

    // Done: the next scheduled runs of the day do nothing.
    let report = w.run(RunKind::Scheduled).await;
    assert_eq!((report.visited, report.round_complete), (0, true));
    w.at_day(1);
    assert_eq!(w.run(RunKind::Scheduled).await.visited, 9);
}

/// A server that never answers costs one check timeout; the rest of its page and of the round
/// go on.
#[tokio::test(start_paused = true)]
async fn a_tarpit_costs_one_check_timeout_and_starves_nobody() {
    let w = world(FakeChecks::default());
    for name in ["a", "b", "c", "d", "e"] {
        w.token(name).await;
    }
    w.checks.tarpits.lock().unwrap().push("b".into());
    let started = Instant::now();
    let report = w.run(RunKind::Scheduled).await;
    assert_eq!((report.visited, report.verified, report.deferred), (5, 4, 1));
    assert!(report.round_complete);
    assert!(Instant::now() - started <= w.sweep.check_timeout + Duration::from_secs(1), "{:?}", started.elapsed());
    // A timeout is no proof of broken credentials.
    assert!(w.bus.of(ConnectionBroken::DETAIL_TYPE).is_empty());
}

#[tokio::test]
async fn a_second_run_while_one_holds_the_run_lease_does_nothing() {
    let w = world(FakeChecks::default());
    w.token("acme").await;
    let until = OffsetDateTime::now_utc() + time::Duration::minutes(5);
    assert!(w.store.leases.try_acquire(RUN_LEASE, "other-run", until).await.unwrap());
    let report = w.run(RunKind::Restart).await;
    assert!(report.busy);
    assert!(w.checks.visits.lock().unwrap().is_empty());
    w.store.leases.release(RUN_LEASE, "other-run").await.unwrap();
    assert_eq!(w.run(RunKind::Restart).await.visited, 1);
    // A run gives its lease back.
    assert_eq!(w.store.leases.holder(RUN_LEASE), None);
}

struct CountingChore {
    runs: Arc<AtomicUsize>,
    fail: bool,
}

impl Chore for CountingChore {
    fn name(&self) -> &'static str {
        if self.fail { "failing" } else { "counting" }
    }

    fn run(&self, _now: OffsetDateTime) -> Pin<Box<dyn Future<Output = Result<usize, StoreError>> + Send + '_>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if self.fail { Err(StoreError::Corrupt("injected".into())) } else { Ok(2) }
        })
    }
}

#[tokio::test]
async fn chores_run_on_every_run_and_a_failed_one_does_not_stop_the_sweep() {
    let mut w = world(FakeChecks::default());
    w.token("acme").await;
    let runs = Arc::new(AtomicUsize::new(0));
    w.sweep.chores = vec![
        Arc::new(CountingChore { runs: runs.clone(), fail: true }),
        Arc::new(CountingChore { runs: runs.clone(), fail: false }),
    ];
    let report = w.run(RunKind::Scheduled).await;
    assert_eq!(report.failed_chores, ["failing"]);
    assert_eq!(report.verified, 1);
    // Even when the round is done for the day.
    w.run(RunKind::Scheduled).await;
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[test]
fn the_schedule_payloads_parse() {
    let parse = |v: Value| serde_json::from_value::<RunRequest>(v).unwrap().sweep;
    assert_eq!(parse(serde_json::json!({"sweep": "scheduled"})), RunKind::Scheduled);
    assert_eq!(parse(serde_json::json!({"sweep": "restart"})), RunKind::Restart);
    assert_eq!(parse(serde_json::json!({})), RunKind::Scheduled);
    assert!(serde_json::from_value::<RunRequest>(serde_json::json!({"sweep": "everything"})).is_err());
}

/// Data Center OAuth grants: an idle one is refreshed like a Cloud grant (the instance retires
/// refresh tokens after their lifetime, and each refresh issues a new one), never verified, and
/// no Cloud expiry notice goes out (a Data Center instance sets no one-year limit).
#[tokio::test]
async fn an_idle_data_center_grant_is_refreshed_and_gets_no_cloud_expiry_notice() {
    let mut w = world(FakeChecks::default());
    for (name, idle) in [("dc-idle", 31), ("dc-used", 2)] {
        let c = w.oauth(name, Product::Confluence, time::Duration::days(40), time::Duration::days(idle)).await;
        let dc = Connection {
            auth_type: AuthType::DcOauth2,
            deployment: crate::domain::Deployment::Datacenter,
            site: None,
            base_url: Some("https://wiki.example.com/confluence".into()),
            ..c
        };
        w.store.connections.put_all(std::slice::from_ref(&dc)).await.unwrap();
    }
    let report = w.run(RunKind::Scheduled).await;
    assert_eq!((report.visited, report.refreshed, report.verified), (2, 1, 0));
    assert_eq!(*w.checks.visits.lock().unwrap(), ["dc-idle#confluence"]);
    // 25 days before a Cloud consent of that age would end: a Cloud grant gets its notice here.
    w.at_day(300);
    w.run(RunKind::Restart).await;
    assert!(w.bus.of(ConnectionExpiring::DETAIL_TYPE).is_empty());
}
