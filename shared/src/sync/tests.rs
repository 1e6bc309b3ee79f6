//! The recorder on the in-memory store: only newer states are recorded and published, each
//! once, across crashes at every step, and events stay under EventBridge's size limit.

use std::sync::Arc;

use time::OffsetDateTime;

use super::*;
use crate::events::RecordingBus;
#[cfg(feature = "fault-injection")]
use crate::faults::CrashSwitch;
use crate::ids::{IssueId, ItemId};
use crate::issues::state::parse_jira_time;
use crate::store::memory::MemoryStore;
use crate::store::{IssueLedger, RecordedIssue};

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn site() -> SiteId {
    SiteId::new("cloud-1")
}

fn state(category: StatusCategory, updated: &str) -> JiraState {
    JiraState {
        status: if category == StatusCategory::Done { "Done".into() } else { "To Do".into() },
        status_category: category,
        resolution: None,
        assignee: None,
        summary: "Quarantine flaky tests".into(),
        due_date: None,
        updated: parse_jira_time(updated).unwrap(),
    }
}

/// A store where `n` items became issues `ENG-1`..`ENG-n` on `site()`.
async fn created(n: usize) -> MemoryStore {
    let store = MemoryStore::new();
    for i in 1..=n {
        let item = ItemId::new(format!("item-{i}"));
        let until = OffsetDateTime::now_utc() + time::Duration::minutes(5);
        store.ledger.claim(&tenant(), &item, "job", until).await.unwrap();
        let issue = RecordedIssue {
            key: IssueKey::new(format!("ENG-{i}")),
            id: IssueId::new(format!("{i}")),
            site: site(),
            report_id: None,
        };
        store.ledger.complete(&tenant(), &item, "job", &issue).await.unwrap();
    }
    store
}

fn recorder<'a>(store: &'a MemoryStore, bus: &'a RecordingBus) -> Recorder<'a> {
    Recorder { store: store.ledger.as_ref(), events: bus, clock: Clock::system() }
}

fn changes(bus: &RecordingBus) -> Vec<serde_json::Value> {
    bus.published()
        .into_iter()
        .filter(|(t, _)| t == IssuesUpdated::DETAIL_TYPE)
        .flat_map(|(_, d)| d["changes"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_newer_state_is_recorded_and_published_once() {
    let store = created(2).await;
    let bus = RecordingBus::default();
    let done = state(StatusCategory::Done, "2026-12-02T18:40:12.345+0000");
    let seen = vec![(IssueKey::new("ENG-1"), done.clone())];
    assert_eq!(recorder(&store, &bus).record(&tenant(), &site(), seen.clone(), Source::Poll).await.unwrap(), 1);
    // The same sighting again (the poll's overlap, or the webhook): nothing new, no event.
    assert_eq!(recorder(&store, &bus).record(&tenant(), &site(), seen, Source::Webhook).await.unwrap(), 0);
    let published = bus.published();
    assert_eq!(published.len(), 1, "{published:?}");
    let (detail_type, detail) = &published[0];
    assert_eq!(detail_type, "Issues Updated");
    assert_eq!(detail["tenant_id"], "acme");
    assert_eq!(detail["site"], "cloud-1");
    let change = &detail["changes"][0];
    assert_eq!(change["issue_key"], "ENG-1");
    assert_eq!(change["item_id"], "item-1");
    assert_eq!(change["done"], true);
    assert_eq!(change["source"], "poll");
    assert_eq!(change["change_id"], "ENG-1@1796236812345");
    assert_eq!(store.ledger.recorded_state(&tenant(), &ItemId::new("item-1")), Some(done));
    assert!(store.ledger.outbox(&tenant()).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_older_sighting_never_overwrites_a_newer_state() {
    let store = created(1).await;
    let bus = RecordingBus::default();
    let newer = state(StatusCategory::Done, "2026-12-02T18:40:12.000+0000");
    let older = state(StatusCategory::Indeterminate, "2026-12-02T18:39:00.000+0000");
    let r = recorder(&store, &bus);
    assert_eq!(
        r.record(&tenant(), &site(), vec![(IssueKey::new("ENG-1"), newer.clone())], Source::Webhook).await.unwrap(),
        1
    );
    assert_eq!(r.record(&tenant(), &site(), vec![(IssueKey::new("ENG-1"), older)], Source::Poll).await.unwrap(), 0);
    assert_eq!(store.ledger.recorded_state(&tenant(), &ItemId::new("item-1")), Some(newer));
    assert_eq!(changes(&bus).len(), 1);
}

#[tokio::test]
async fn issues_we_did_not_create_or_of_another_site_are_ignored() {
    let store = created(1).await;
    let bus = RecordingBus::default();
    let s = state(StatusCategory::Done, "2026-12-02T18:40:12.000+0000");
    let r = recorder(&store, &bus);
    let foreign = vec![(IssueKey::new("OPS-9"), s.clone())];
    assert_eq!(r.record(&tenant(), &site(), foreign, Source::Poll).await.unwrap(), 0);
    let elsewhere = vec![(IssueKey::new("ENG-1"), s.clone())];
    assert_eq!(r.record(&tenant(), &SiteId::new("other"), elsewhere, Source::Poll).await.unwrap(), 0);
    let other_tenant = TenantId::parse("globex").unwrap();
    assert_eq!(r.record(&other_tenant, &site(), vec![(IssueKey::new("ENG-1"), s)], Source::Poll).await.unwrap(), 0);
    assert!(bus.published().is_empty());
}

#[tokio::test]
async fn a_deleted_issue_is_announced_once_and_its_states_ignored_after() {
    let store = created(2).await;
    let bus = RecordingBus::default();
    let r = recorder(&store, &bus);
    let gone = vec![IssueKey::new("ENG-2"), IssueKey::new("NOT-OURS-1")];
    assert_eq!(r.record_deleted(&tenant(), &site(), gone.clone(), Source::Poll).await.unwrap(), 1);
    assert_eq!(r.record_deleted(&tenant(), &site(), gone, Source::Poll).await.unwrap(), 0);
    let published = bus.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].0, "Issue Deleted");
    assert_eq!(published[0].1["issue_key"], "ENG-2");
    assert_eq!(published[0].1["item_id"], "item-2");
    assert_eq!(store.ledger.item_for_key(&tenant(), &IssueKey::new("ENG-2")).await.unwrap(), None);
    let late = vec![(IssueKey::new("ENG-2"), state(StatusCategory::Done, "2026-12-02T18:40:12.000+0000"))];
    assert_eq!(r.record(&tenant(), &site(), late, Source::Poll).await.unwrap(), 0);
}

#[cfg(feature = "fault-injection")]
/// A crash after the transaction and before the events: the changes wait in the outbox, the
/// next call publishes them once, and seeing them again adds nothing.
#[tokio::test]
async fn a_crash_after_staging_publishes_each_change_exactly_once() {
    let store = created(3).await;
    let bus = RecordingBus::default();
    let seen: Vec<_> = (1..=3)
        .map(|i| (IssueKey::new(format!("ENG-{i}")), state(StatusCategory::Done, "2026-12-02T18:40:12.000+0000")))
        .collect();
    let ran = CrashSwitch::at("issue-sync:after-stage")
        .run(recorder(&store, &bus).record(&tenant(), &site(), seen.clone(), Source::Poll))
        .await;
    assert!(ran.crashed());
    assert!(bus.published().is_empty());
    assert_eq!(store.ledger.outbox(&tenant()).await.unwrap().len(), 3);
    // The next run sees the same changes: nothing new, and the outbox goes out.
    assert_eq!(recorder(&store, &bus).record(&tenant(), &site(), seen, Source::Poll).await.unwrap(), 0);
    assert_eq!(changes(&bus).len(), 3);
    assert!(store.ledger.outbox(&tenant()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_publish_keeps_the_changes_for_the_next_call() {
    let store = created(1).await;
    let bus = RecordingBus::default();
    bus.fail_next();
    let seen = vec![(IssueKey::new("ENG-1"), state(StatusCategory::Done, "2026-12-02T18:40:12.000+0000"))];
    let r = recorder(&store, &bus);
    assert!(matches!(r.record(&tenant(), &site(), seen, Source::Poll).await, Err(SyncError::Publish(_))));
    assert_eq!(r.flush(&tenant()).await.unwrap(), 1);
    assert_eq!(changes(&bus).len(), 1);
}

#[tokio::test]
async fn many_changes_are_split_into_events_under_the_size_limit() {
    let n = 1200;
    let store = created(n).await;
    let bus = Arc::new(RecordingBus::default());
    let mut long = state(StatusCategory::Indeterminate, "2026-12-02T18:40:12.000+0000");
    long.summary = "x".repeat(250);
    let seen: Vec<_> = (1..=n).map(|i| (IssueKey::new(format!("ENG-{i}")), long.clone())).collect();
    let r = Recorder { store: store.ledger.as_ref(), events: bus.as_ref(), clock: Clock::system() };
    assert_eq!(r.record(&tenant(), &site(), seen, Source::Poll).await.unwrap(), n);
    let published = bus.published();
    assert!(published.len() > 1, "one event of {n} changes would pass the limit");
    for (_, detail) in &published {
        assert!(detail.to_string().len() < EVENT_BYTES, "{}", detail.to_string().len());
    }
    assert_eq!(changes(&bus).len(), n);
}

#[test]
fn a_batch_holds_at_least_one_entry_however_large() {
    let entry =
        |size: usize| OutboxEntry { change_id: "k@1".into(), site: site(), deleted: false, payload: "x".repeat(size) };
    let entries = vec![entry(10), entry(300_000), entry(10)];
    let batches = split(&entries, EVENT_BYTES);
    assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![1, 1, 1]);
    assert!(split(&[], EVENT_BYTES).is_empty());
}
