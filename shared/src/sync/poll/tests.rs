//! The poll against a fake Jira site on the in-memory store: the search it sends, paging to
//! the end, the skipped `reconnect_required` tenant, the deletion check confirmed by a read,
//! the cursor moved only after publishing, and exactly one event across a crash after the search.

use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::atlassian::jira::issues::IssueRef;
use crate::events::RecordingBus;
#[cfg(feature = "fault-injection")]
use crate::faults::CrashSwitch;
use crate::ids::ItemId;
use crate::store::memory::{MemoryStore, oauth_connection};
use crate::store::{IssueLedger, RecordedIssue};

const SITE: &str = "c1";

#[derive(Default)]
struct Jira {
    /// key, id, status category key, updated.
    issues: Mutex<Vec<(String, String, String, String)>>,
    jql: Mutex<Vec<String>>,
    /// Ids a search does not show yet (its index lags), though they exist.
    unindexed: Mutex<Vec<String>>,
    /// How long each search takes (on tokio's clock, paused in the tests that set it).
    delay: Mutex<Option<Duration>>,
}

struct FakeSite(Arc<Jira>);

#[async_trait]
impl JiraSite for FakeSite {
    fn site(&self) -> SiteId {
        SiteId::new(SITE)
    }

    async fn search(&self, jql: &str, _fields: &str, at: Option<&PageAt>) -> Result<FieldsPage, AtlassianError> {
        self.0.jql.lock().unwrap().push(jql.to_owned());
        let delay = *self.0.delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let issues = self.0.issues.lock().unwrap().clone();
        let unindexed = self.0.unindexed.lock().unwrap().clone();
        if let Some(list) = jql.strip_prefix("id in (").and_then(|r| r.strip_suffix(')')) {
            let wanted: Vec<&str> = list.split(',').collect();
            let hits = issues
                .iter()
                .filter(|(_, id, _, _)| wanted.contains(&id.as_str()) && !unindexed.contains(id))
                .map(|(key, id, _, _)| (IssueRef { id: Some(id.clone()), key: Some(key.clone()) }, json!({})))
                .collect();
            return Ok(FieldsPage { issues: hits, next: None });
        }
        let start = match at {
            Some(PageAt::Offset(n)) => *n as usize,
            _ => 0,
        };
        let page: Vec<_> = issues
            .iter()
            .skip(start)
            .take(PAGE_SIZE)
            .map(|(key, id, category, updated)| {
                let fields = json!({"status": {"name": category, "statusCategory": {"key": category}},
                    "summary": "s", "updated": updated});
                (IssueRef { id: Some(id.clone()), key: Some(key.clone()) }, fields)
            })
            .collect();
        let next = (start + page.len() < issues.len()).then(|| PageAt::Offset((start + page.len()) as u64));
        Ok(FieldsPage { issues: page, next })
    }

    async fn exists(&self, id: &IssueId) -> Result<bool, AtlassianError> {
        Ok(self.0.issues.lock().unwrap().iter().any(|(_, i, _, _)| i == id.as_str()))
    }
}

struct FakeSites(Arc<Jira>);

#[async_trait]
impl Sites for FakeSites {
    async fn open(&self, _connection: &Connection) -> Result<Box<dyn JiraSite>, AccessError> {
        Ok(Box::new(FakeSite(self.0.clone())))
    }
}

struct World {
    store: MemoryStore,
    jira: Arc<Jira>,
    bus: Arc<RecordingBus>,
    poller: Poller,
}

/// `tenants` enrolled and connected, each with `issues` created issues `ENG-1`.. on the site.
async fn world(tenants: &[&str], issues: usize) -> World {
    let store = MemoryStore::new();
    let jira = Arc::new(Jira::default());
    for t in tenants {
        let tenant = TenantId::parse(t).unwrap();
        store.connections.put_all(&[oauth_connection(&tenant, Product::Jira, "g1")]).await.unwrap();
        store.ledger.enroll(&tenant).await.unwrap();
        for i in 1..=issues {
            let item = ItemId::new(format!("item-{i}"));
            let until = OffsetDateTime::now_utc() + time::Duration::minutes(5);
            store.ledger.claim(&tenant, &item, "job", until).await.unwrap();
            let recorded = RecordedIssue {
                key: IssueKey::new(format!("ENG-{i}")),
                id: IssueId::new(format!("{}", 10_000 + i)),
                site: SiteId::new(SITE),
                report_id: None,
            };
            store.ledger.complete(&tenant, &item, "job", &recorded).await.unwrap();
        }
    }
    for i in 1..=issues {
        jira.issues.lock().unwrap().push((
            format!("ENG-{i}"),
            format!("{}", 10_000 + i),
            "new".into(),
            "2026-12-02T10:00:00.000+0000".into(),
        ));
    }
    let bus = Arc::new(RecordingBus::default());
    let poller = Poller {
        store: store.ledger.clone(),
        connections: store.connections.clone(),
        leases: store.leases.clone(),
        sites: Arc::new(FakeSites(jira.clone())),
        events: bus.clone(),
        markers: Arc::new(Markers::derive(&[7; 32])),
        clock: Clock::system(),
        tenants_per_page: 2,
        visit_timeout: Duration::from_secs(5),
    };
    World { store, jira, bus, poller }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn move_to(jira: &Jira, key: &str, category: &str, updated: &str) {
    for issue in jira.issues.lock().unwrap().iter_mut().filter(|i| i.0 == key) {
        issue.2 = category.into();
        issue.3 = updated.into();
    }
}

fn updated_events(bus: &RecordingBus) -> Vec<serde_json::Value> {
    bus.published().into_iter().filter(|(t, _)| t == "Issues Updated").map(|(_, d)| d).collect()
}

#[test]
fn the_update_search_asks_for_the_label_since_the_cursor_with_the_overlap() {
    let now = OffsetDateTime::now_utc();
    assert_eq!(changes_jql("bridge-t-1", None, now), "labels = \"bridge-t-1\" ORDER BY updated ASC");
    let since = now - time::Duration::seconds(301);
    // 301 s is 6 minutes rounded up, plus the 2-minute overlap.
    assert_eq!(
        changes_jql("bridge-t-1", Some(since), now),
        "labels = \"bridge-t-1\" AND updated >= \"-8m\" ORDER BY updated ASC"
    );
    assert_eq!(
        changes_jql("bridge-t-1", Some(now + time::Duration::minutes(1)), now),
        "labels = \"bridge-t-1\" AND updated >= \"-2m\" ORDER BY updated ASC",
        "a cursor ahead of the clock still overlaps"
    );
}

#[tokio::test]
async fn a_run_pages_to_the_end_and_publishes_each_change_once_per_tenant() {
    let w = world(&["acme"], 250).await;
    let report = w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    assert_eq!((report.tenants_visited, report.changes, report.searches), (1, 250, 3), "{report:?}");
    assert!(report.round_complete);
    let events = updated_events(&w.bus);
    assert_eq!(events.len(), 1, "one event per tenant per run");
    assert_eq!(events[0]["changes"].as_array().unwrap().len(), 250);
    // The next run: one issue moved to done; the search now starts at the cursor.
    move_to(&w.jira, "ENG-7", "done", "2026-12-02T11:00:00.000+0000");
    let report = w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    assert_eq!(report.changes, 1, "{report:?}");
    let events = updated_events(&w.bus);
    let last = &events.last().unwrap()["changes"];
    assert_eq!(last.as_array().unwrap().len(), 1);
    assert_eq!((last[0]["issue_key"].as_str(), last[0]["done"].as_bool()), (Some("ENG-7"), Some(true)));
    let jql = w.jira.jql.lock().unwrap().clone();
    let label = w.poller.markers.tenant_label("acme");
    assert!(jql.iter().any(|q| q.starts_with(&format!("labels = \"{label}\" AND updated >= \"-"))), "{jql:?}");
}

#[tokio::test]
async fn a_tenant_that_must_reconnect_is_skipped_and_counted() {
    let w = world(&["acme", "globex"], 1).await;
    let globex = TenantId::parse("globex").unwrap();
    w.store.connections.mark_reconnect_required(&globex, "g1", OffsetDateTime::now_utc()).await.unwrap();
    let report = w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    assert_eq!((report.tenants_visited, report.reconnect_required, report.failed), (2, 1, 0), "{report:?}");
    let events = updated_events(&w.bus);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["tenant_id"], "acme");
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn a_crash_after_the_search_still_publishes_exactly_once() {
    let w = world(&["acme"], 3).await;
    w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    move_to(&w.jira, "ENG-2", "done", "2026-12-02T11:00:00.000+0000");
    let before = updated_events(&w.bus).len();
    for step in ["issue-sync:after-search", "issue-sync:after-stage", "issue-sync:after-publish"] {
        let ran = CrashSwitch::at(step).run(w.poller.run(&RunRequest::default(), deadline())).await;
        assert!(ran.crashed(), "{step}");
        // The crashed run held the run lease; it lapses (as a dead instance's would).
        w.store.clock.advance(Duration::from_secs(600));
    }
    w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    let done: Vec<_> = updated_events(&w.bus)[before..]
        .iter()
        .flat_map(|e| e["changes"].as_array().unwrap().clone())
        .filter(|c| c["issue_key"] == "ENG-2")
        .collect();
    assert_eq!(done.len(), 1, "{done:?}");
}

#[tokio::test]
async fn a_deleted_issue_is_announced_once_and_an_unindexed_one_is_not() {
    let w = world(&["acme"], 3).await;
    w.jira.issues.lock().unwrap().retain(|i| i.0 != "ENG-2");
    w.jira.unindexed.lock().unwrap().push("10003".into());
    let report = w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    assert_eq!((report.deleted, report.deletion_searches), (1, 1), "{report:?}");
    let deleted: Vec<_> = w.bus.published().into_iter().filter(|(t, _)| t == "Issue Deleted").collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].1["issue_key"], "ENG-2");
    assert_eq!(deleted[0].1["item_id"], "item-2");
    let report = w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    assert_eq!(report.deleted, 0);
    let cursor = w.store.ledger.cursor(&TenantId::parse("acme").unwrap(), &SiteId::new(SITE)).await.unwrap();
    assert!(cursor.deletion_pass_done.is_some());
}

#[tokio::test]
async fn the_cursor_moves_only_after_the_event_was_put() {
    let w = world(&["acme"], 1).await;
    w.bus.fail_next();
    let report = w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    assert_eq!((report.failed, report.failed_internal), (1, 1), "{report:?}");
    let tenant = TenantId::parse("acme").unwrap();
    assert_eq!(w.store.ledger.cursor(&tenant, &SiteId::new(SITE)).await.unwrap().updated_since, None);
    // The next run publishes what waited in the outbox, once.
    w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    assert_eq!(updated_events(&w.bus).len(), 1);
    assert!(w.store.ledger.cursor(&tenant, &SiteId::new(SITE)).await.unwrap().updated_since.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_run_resumes_the_round_after_the_last_tenant_it_finished() {
    let w = world(&["a1", "a2", "a3"], 1).await;
    // Each search takes 2 s (virtual time); the deadline leaves room for one page (two tenants).
    *w.jira.delay.lock().unwrap() = Some(Duration::from_secs(2));
    let short = Instant::now() + w.poller.visit_timeout + Duration::from_secs(3);
    let report = w.poller.run(&RunRequest::default(), short).await.unwrap();
    assert_eq!((report.tenants_visited, report.round_complete), (2, false), "{report:?}");
    assert_eq!(w.store.ledger.sync_round().await.unwrap().after.as_deref(), Some("a2"));
    let report = w.poller.run(&RunRequest::default(), deadline()).await.unwrap();
    assert_eq!((report.tenants_visited, report.round_complete), (1, true), "{report:?}");
}
