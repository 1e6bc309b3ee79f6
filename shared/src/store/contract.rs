//! One suite of the ports' contracts, written against the traits so that it can run against
//! every adapter; it runs against the in-memory fakes.
//! The fakes stand in for DynamoDB in the job tests, so what they must agree on is pinned here:
//! who may claim what when, and what a holder that lost its lease can still change (nothing).
//!
//! A lapsed lease is made by claiming with an end in the past, never by waiting.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::domain::{Connection, ConnectionStatus, ConsentTarget, Product, TenantId};
use crate::ids::{IssueId, IssueKey, ItemId};
use crate::reports::{Publication, PublicationState};

/// The ports of one backing store.
pub struct Ports {
    pub connections: Arc<dyn ConnectionStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub ledger: Arc<dyn IssueLedger>,
    pub publications: Arc<dyn PublicationStore>,
    pub states: Arc<dyn OAuthStateStore>,
    pub leases: Arc<dyn RefreshLeaseStore>,
}

/// A tenant of its own per test, so the suite can share a table with anything.
fn tenant() -> TenantId {
    TenantId::parse(&format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])).unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn soon() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::minutes(5)
}

fn lapsed() -> OffsetDateTime {
    OffsetDateTime::now_utc() - Duration::seconds(5)
}

/// The adapters keep lease ends in milliseconds.
fn to_ms(at: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(at.unix_timestamp_nanos() / 1_000_000 * 1_000_000).unwrap()
}

fn item(id: &str) -> ItemId {
    ItemId::new(id)
}

fn key(key: &str) -> IssueKey {
    IssueKey::new(key)
}

fn recorded(key: &str) -> RecordedIssue {
    RecordedIssue { key: key.into(), id: IssueId::new(format!("id-{key}")), site: "cloud-1".into(), report_id: None }
}

fn report(id: &str) -> crate::ids::ReportId {
    crate::ids::ReportId::parse(id).unwrap()
}

/// Every page of a listing, followed to its end.
async fn all_pages(ledger: &dyn IssueLedger, t: &TenantId, filter: &ItemFilter, limit: usize) -> Vec<ItemPage> {
    let mut pages: Vec<ItemPage> = Vec::new();
    let mut after = None;
    loop {
        let page = ledger.list_items(t, filter, after.as_ref(), limit).await.unwrap();
        assert!(page.items.len() <= limit);
        after = page.resume_after.clone();
        pages.push(page);
        if after.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the listing does not end");
    }
}

/// The read model: created (and deleted) items in id order with their report, never pending or
/// failed ones; pages of at most `limit`; a sparse filter answers short pages that go on, never
/// one read of the whole ledger; another tenant sees nothing.
async fn created_items_are_listed_in_pages(ledger: &dyn IssueLedger) {
    let t = tenant();
    let names: Vec<String> = (0..230).map(|i| format!("i-{i:03}")).collect();
    let ids: Vec<ItemId> = names.iter().map(|n| item(n)).collect();
    ledger.claim_all(&t, "one", soon(), &ids).await.unwrap();
    let sparse = ["i-005", "i-150", "i-220"];
    let issues: Vec<(ItemId, RecordedIssue)> = names
        .iter()
        .filter(|n| n.as_str() != "i-100" && n.as_str() != "i-101")
        .map(|n| {
            let on = if sparse.contains(&n.as_str()) { "r-sparse" } else { "r-main" };
            (item(n), RecordedIssue { report_id: Some(report(on)), ..recorded(&format!("ENG-{n}")) })
        })
        .collect();
    ledger.complete_all(&t, "one", &issues).await.unwrap();
    // i-100 stays pending, i-101 failed: neither has an issue to list.
    ledger.fail(&t, &item("i-101"), "one", "refused").await.unwrap();
    ledger.mark_deleted(&t, &key("ENG-i-007"), &item("i-007")).await.unwrap();

    let every = all_pages(ledger, &t, &ItemFilter::default(), 100).await;
    let listed: Vec<&CreatedItem> = every.iter().flat_map(|p| &p.items).collect();
    let expected: Vec<&str> = names.iter().map(String::as_str).filter(|n| !["i-100", "i-101"].contains(n)).collect();
    assert_eq!(listed.iter().map(|i| i.item_id.as_str()).collect::<Vec<_>>(), expected);
    let first = listed[0];
    assert_eq!((first.key.as_str(), first.id.as_str()), ("ENG-i-000", "id-ENG-i-000"));
    assert_eq!(first.report_id, Some(report("r-main")));
    assert_eq!(first.site, Some("cloud-1".into()));
    assert_eq!((first.state.as_ref(), first.synced_at, first.deleted), (None, None, false));
    assert!(listed.iter().find(|i| i.item_id == "i-007").unwrap().deleted);

    let filter = ItemFilter { report_id: Some(report("r-sparse")), status_category: None };
    let pages = all_pages(ledger, &t, &filter, 50).await;
    let found: Vec<&str> = pages.iter().flat_map(|p| &p.items).map(|i| i.item_id.as_str()).collect();
    assert_eq!(found, sparse);
    // More records than one page looks at: the filter's first page is short and goes on.
    assert!(pages.len() >= 2 && pages[0].items.len() < 50 && pages[0].resume_after.is_some(), "{pages:?}");

    let category = ItemFilter { report_id: None, status_category: Some(crate::issues::state::StatusCategory::Done) };
    let none_synced = all_pages(ledger, &t, &category, 100).await;
    assert!(none_synced.iter().all(|p| p.items.is_empty()), "no item has a state yet");
    let stranger = ledger.list_items(&tenant(), &ItemFilter::default(), None, 100).await.unwrap();
    assert_eq!(stranger, ItemPage { items: Vec::new(), resume_after: None });
}

/// One item by id, as the edits read it: created (with its report and, once recorded, its state
/// and when it was seen), deleted, or none for pending, failed, unknown and another tenant's.
async fn an_item_is_found_by_id_with_its_last_state(ledger: &dyn IssueLedger) {
    use crate::issues::state::{JiraState, StatusCategory};
    let t = tenant();
    ledger.claim(&t, &item("a"), "one", soon()).await.unwrap();
    let issue = RecordedIssue { report_id: Some(report("r-1")), ..recorded("ENG-1") };
    ledger.complete(&t, &item("a"), "one", &issue).await.unwrap();
    ledger.claim(&t, &item("pending"), "one", soon()).await.unwrap();
    let found = ledger.issue_for_item(&t, &item("a")).await.unwrap().unwrap();
    assert_eq!((found.key.as_str(), found.report_id.clone(), found.deleted), ("ENG-1", Some(report("r-1")), false));
    assert_eq!((found.state, found.synced_at), (None, None));
    let seen = JiraState {
        status: "Done".into(),
        status_category: StatusCategory::Done,
        resolution: Some("Done".into()),
        assignee: None,
        summary: "s".into(),
        due_date: None,
        updated: to_ms(OffsetDateTime::now_utc()),
    };
    let at = to_ms(OffsetDateTime::now_utc());
    assert!(ledger.record_state(&t, &item("a"), &seen, at).await.unwrap());
    let found = ledger.issue_for_item(&t, &item("a")).await.unwrap().unwrap();
    assert_eq!((found.state, found.synced_at), (Some(seen), Some(at)));
    for missing in ["pending", "never"] {
        assert_eq!(ledger.issue_for_item(&t, &item(missing)).await.unwrap(), None, "{missing}");
    }
    assert_eq!(ledger.issue_for_item(&tenant(), &item("a")).await.unwrap(), None);
    ledger.mark_deleted(&t, &key("ENG-1"), &item("a")).await.unwrap();
    assert!(ledger.issue_for_item(&t, &item("a")).await.unwrap().unwrap().deleted);
}

pub async fn issue_ledger(ledger: &dyn IssueLedger) {
    a_fresh_item_is_claimed_once(ledger).await;
    a_lapsed_claim_is_resumed_and_its_old_holder_changes_nothing(ledger).await;
    settling_needs_the_lease(ledger).await;
    a_completed_item_is_done_and_found_by_key(ledger).await;
    a_failed_item_is_retried(ledger).await;
    a_released_item_is_resumed_from_when_it_was_given_back(ledger).await;
    the_marker_form_survives_a_takeover(ledger).await;
    an_extended_claim_is_held_until_its_new_end(ledger).await;
    a_deleted_issue_is_done_and_no_longer_ours(ledger).await;
    completing_many_keeps_each_items_condition(ledger).await;
    claiming_many_answers_as_claiming_each(ledger).await;
    created_items_are_listed_in_pages(ledger).await;
    an_item_is_found_by_id_with_its_last_state(ledger).await;
}

/// `claim_all` answers for each item what `claim` would: fresh ones taken (past one batch too),
/// finished, refused, held and interrupted ones as their records say, in order.
async fn claiming_many_answers_as_claiming_each(ledger: &dyn IssueLedger) {
    let t = tenant();
    ledger.claim(&t, &item("done"), "one", soon()).await.unwrap();
    ledger.complete(&t, &item("done"), "one", &recorded("ENG-9")).await.unwrap();
    ledger.claim(&t, &item("refused"), "one", soon()).await.unwrap();
    ledger.fail(&t, &item("refused"), "one", "no such priority").await.unwrap();
    let held_until = soon();
    ledger.claim(&t, &item("held"), "one", held_until).await.unwrap();
    let given_back = lapsed();
    ledger.claim(&t, &item("lapsed"), "one", given_back).await.unwrap();
    let mut names: Vec<String> = (0..150).map(|i| format!("fresh-{i}")).collect();
    for (at, name) in [(3, "done"), (60, "refused"), (120, "held"), (149, "lapsed")] {
        names.insert(at, name.to_owned());
    }
    let ids: Vec<ItemId> = names.iter().map(|n| item(n)).collect();
    let answers = ledger.claim_all(&t, "two", soon(), &ids).await.unwrap();
    assert_eq!(answers.len(), ids.len());
    for (name, answer) in names.iter().zip(&answers) {
        match name.as_str() {
            "done" => {
                assert!(matches!(answer, Claim::Done(ItemDone { key, .. }) if key.as_str() == "ENG-9"), "{answer:?}")
            }
            "refused" => assert_eq!(answer, &Claim::Ours(ItemStart::Retry)),
            "held" => assert_eq!(answer, &Claim::Held { until: to_ms(held_until) }),
            "lapsed" => assert_eq!(
                answer,
                &Claim::Ours(ItemStart::Resumed { attempted_before: to_ms(given_back), legacy_marker: false })
            ),
            _ => assert_eq!(answer, &Claim::Ours(ItemStart::Fresh), "{name}"),
        }
    }
    // What was taken is held for "two": nobody else gets it, and "two" can record it.
    assert!(matches!(ledger.claim(&t, &item("fresh-0"), "three", soon()).await.unwrap(), Claim::Held { .. }));
    ledger.complete(&t, &item("fresh-149"), "two", &recorded("ENG-10")).await.unwrap();
    assert!(ledger.item_for_key(&t, &key("ENG-10")).await.unwrap().is_some());
    // Claimed again: all held (by "two") or done, none fresh.
    let again = ledger.claim_all(&t, "three", soon(), &ids).await.unwrap();
    assert!(again.iter().all(|a| matches!(a, Claim::Held { .. } | Claim::Done(_))), "{again:?}");
    assert!(ledger.claim_all(&t, "three", soon(), &[]).await.unwrap().is_empty());
}

/// `complete_all` ends each item as `complete` would: ours are recorded, one whose lease another
/// holder took is left to that holder (in DynamoDB the batch's transaction is refused as a whole
/// and redone item by item).
async fn completing_many_keeps_each_items_condition(ledger: &dyn IssueLedger) {
    let t = tenant();
    for name in ["a", "b", "c"] {
        ledger.claim(&t, &item(name), "one", if name == "b" { lapsed() } else { soon() }).await.unwrap();
    }
    assert!(matches!(ledger.claim(&t, &item("b"), "two", soon()).await.unwrap(), Claim::Ours(_)));
    let issues: Vec<_> = [("a", "ENG-1"), ("b", "ENG-2"), ("c", "ENG-3")]
        .into_iter()
        .map(|(name, key)| (item(name), recorded(key)))
        .collect();
    ledger.complete_all(&t, "one", &issues).await.unwrap();
    for (name, key) in [("a", "ENG-1"), ("c", "ENG-3")] {
        assert!(
            matches!(ledger.claim(&t, &item(name), "three", soon()).await.unwrap(), Claim::Done(ItemDone { key: k, .. }) if k == key),
            "{name}"
        );
    }
    assert_eq!(ledger.item_for_key(&t, &key("ENG-2")).await.unwrap(), None);
    assert!(matches!(ledger.claim(&t, &item("b"), "three", soon()).await.unwrap(), Claim::Held { .. }));
    // Nothing to record is nothing to do.
    ledger.complete_all(&t, "one", &[]).await.unwrap();
}

async fn a_fresh_item_is_claimed_once(ledger: &dyn IssueLedger) {
    let t = tenant();
    let until = soon();
    assert_eq!(ledger.claim(&t, &item("a"), "one", until).await.unwrap(), Claim::Ours(ItemStart::Fresh));
    assert_eq!(ledger.claim(&t, &item("a"), "two", soon()).await.unwrap(), Claim::Held { until: to_ms(until) });
    // A holder claiming again is refused like anyone else.
    assert_eq!(ledger.claim(&t, &item("a"), "one", soon()).await.unwrap(), Claim::Held { until: to_ms(until) });
    // Items are per tenant.
    assert_eq!(ledger.claim(&tenant(), &item("a"), "two", soon()).await.unwrap(), Claim::Ours(ItemStart::Fresh));
}

async fn a_lapsed_claim_is_resumed_and_its_old_holder_changes_nothing(ledger: &dyn IssueLedger) {
    let t = tenant();
    let first_until = lapsed();
    assert_eq!(ledger.claim(&t, &item("a"), "one", first_until).await.unwrap(), Claim::Ours(ItemStart::Fresh));
    let resumed = ledger.claim(&t, &item("a"), "two", soon()).await.unwrap();
    assert_eq!(resumed, Claim::Ours(ItemStart::Resumed { attempted_before: to_ms(first_until), legacy_marker: false }));
    // The old holder's completion is dropped without an error: the new holder records the issue.
    ledger.complete(&t, &item("a"), "one", &recorded("ENG-1")).await.unwrap();
    assert_eq!(ledger.item_for_key(&t, &key("ENG-1")).await.unwrap(), None);
    assert!(matches!(ledger.claim(&t, &item("a"), "three", soon()).await.unwrap(), Claim::Held { .. }));
    ledger.complete(&t, &item("a"), "two", &recorded("ENG-2")).await.unwrap();
    assert!(
        matches!(ledger.claim(&t, &item("a"), "three", soon()).await.unwrap(), Claim::Done(ItemDone { key, .. }) if key == "ENG-2")
    );
}

async fn settling_needs_the_lease(ledger: &dyn IssueLedger) {
    let t = tenant();
    let until = soon();
    ledger.claim(&t, &item("a"), "one", until).await.unwrap();
    // Nobody but the holder changes the record, and nobody is told (the holder finishes it).
    ledger.fail(&t, &item("a"), "stranger", "no").await.unwrap();
    ledger.release(&t, &item("a"), "stranger").await.unwrap();
    ledger.extend(&t, &item("a"), "stranger", lapsed()).await.unwrap();
    ledger.mark_legacy_marker(&t, &item("a"), "stranger").await.unwrap();
    assert_eq!(ledger.claim(&t, &item("a"), "two", soon()).await.unwrap(), Claim::Held { until: to_ms(until) });
    // Settling an item nobody claimed creates nothing.
    ledger.fail(&t, &item("b"), "stranger", "no").await.unwrap();
    ledger.extend(&t, &item("b"), "stranger", soon()).await.unwrap();
    assert_eq!(ledger.claim(&t, &item("b"), "two", soon()).await.unwrap(), Claim::Ours(ItemStart::Fresh));
}

async fn a_completed_item_is_done_and_found_by_key(ledger: &dyn IssueLedger) {
    let t = tenant();
    ledger.claim(&t, &item("a"), "one", soon()).await.unwrap();
    ledger.complete(&t, &item("a"), "one", &recorded("ENG-7")).await.unwrap();
    let done = Claim::Done(ItemDone {
        key: "ENG-7".into(),
        id: "id-ENG-7".into(),
        deleted: false,
        site: Some("cloud-1".into()),
    });
    assert_eq!(ledger.claim(&t, &item("a"), "two", soon()).await.unwrap(), done);
    // Done for good, however much later.
    assert_eq!(ledger.claim(&t, &item("a"), "three", lapsed()).await.unwrap(), done);
    let record = KeyRecord { item_id: "a".into(), site: Some("cloud-1".into()) };
    assert_eq!(ledger.item_for_key(&t, &key("ENG-7")).await.unwrap(), Some(record));
    assert_eq!(ledger.item_for_key(&tenant(), &key("ENG-7")).await.unwrap(), None);
    assert_eq!(ledger.item_for_key(&t, &key("ENG-8")).await.unwrap(), None);
}

async fn a_failed_item_is_retried(ledger: &dyn IssueLedger) {
    let t = tenant();
    ledger.claim(&t, &item("a"), "one", soon()).await.unwrap();
    ledger.fail(&t, &item("a"), "one", "Jira said no").await.unwrap();
    // A failure gives the lease back at once.
    assert_eq!(ledger.claim(&t, &item("a"), "two", soon()).await.unwrap(), Claim::Ours(ItemStart::Retry));
    assert!(matches!(ledger.claim(&t, &item("a"), "three", soon()).await.unwrap(), Claim::Held { .. }));
}

async fn a_released_item_is_resumed_from_when_it_was_given_back(ledger: &dyn IssueLedger) {
    let t = tenant();
    ledger.claim(&t, &item("a"), "one", soon()).await.unwrap();
    let before = to_ms(OffsetDateTime::now_utc());
    ledger.release(&t, &item("a"), "one").await.unwrap();
    let after = OffsetDateTime::now_utc();
    // The release stamps its moment as the lease end; within that millisecond it still holds.
    let claim = loop {
        match ledger.claim(&t, &item("a"), "two", soon()).await.unwrap() {
            Claim::Held { until } if until <= after => continue,
            claim => break claim,
        }
    };
    let Claim::Ours(ItemStart::Resumed { attempted_before, legacy_marker: false }) = claim else { panic!("{claim:?}") };
    assert!(before <= attempted_before && attempted_before <= after, "{attempted_before}");
}

async fn the_marker_form_survives_a_takeover(ledger: &dyn IssueLedger) {
    let t = tenant();
    ledger.claim(&t, &item("a"), "one", soon()).await.unwrap();
    ledger.mark_legacy_marker(&t, &item("a"), "one").await.unwrap();
    ledger.extend(&t, &item("a"), "one", lapsed()).await.unwrap();
    let Claim::Ours(ItemStart::Resumed { legacy_marker, .. }) =
        ledger.claim(&t, &item("a"), "two", lapsed()).await.unwrap()
    else {
        panic!()
    };
    assert!(legacy_marker);
    // The claim does not overwrite the form it found.
    let Claim::Ours(ItemStart::Resumed { legacy_marker, .. }) =
        ledger.claim(&t, &item("a"), "three", soon()).await.unwrap()
    else {
        panic!()
    };
    assert!(legacy_marker);
}

async fn an_extended_claim_is_held_until_its_new_end(ledger: &dyn IssueLedger) {
    let t = tenant();
    ledger.claim(&t, &item("a"), "one", lapsed()).await.unwrap();
    let until = soon();
    ledger.extend(&t, &item("a"), "one", until).await.unwrap();
    assert_eq!(ledger.claim(&t, &item("a"), "two", soon()).await.unwrap(), Claim::Held { until: to_ms(until) });
}

async fn a_deleted_issue_is_done_and_no_longer_ours(ledger: &dyn IssueLedger) {
    let t = tenant();
    ledger.claim(&t, &item("a"), "one", soon()).await.unwrap();
    ledger.complete(&t, &item("a"), "one", &recorded("ENG-3")).await.unwrap();
    ledger.mark_deleted(&t, &key("ENG-3"), &item("a")).await.unwrap();
    assert_eq!(ledger.item_for_key(&t, &key("ENG-3")).await.unwrap(), None);
    let deleted = Claim::Done(ItemDone {
        key: "ENG-3".into(),
        id: "id-ENG-3".into(),
        deleted: true,
        site: Some("cloud-1".into()),
    });
    assert_eq!(ledger.claim(&t, &item("a"), "two", soon()).await.unwrap(), deleted);
}

/// Many deliveries claiming one item at once: exactly one gets it.
pub async fn issue_ledger_race(ledger: Arc<dyn IssueLedger>) {
    let t = tenant();
    let claims = race(50, |n| {
        let (ledger, t) = (ledger.clone(), t.clone());
        async move { ledger.claim(&t, &item("a"), &format!("owner-{n}"), soon()).await.unwrap() }
    })
    .await;
    assert_eq!(claims.iter().filter(|c| **c == Claim::Ours(ItemStart::Fresh)).count(), 1);
    assert!(claims.iter().all(|c| matches!(c, Claim::Ours(ItemStart::Fresh) | Claim::Held { .. })));
}

async fn race<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
    n: usize,
    task: impl Fn(usize) -> F,
) -> Vec<T> {
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(task(i))).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn publication(id: &str) -> Publication {
    // Through JSON: the marker form's type is private to `reports`.
    serde_json::from_value(serde_json::json!({
        "id": id,
        "idempotency_key": "k",
        "report_id": "r",
        "state": "accepted",
        "marker_form": "keyed",
        "updated_at": "2026-01-01T00:00:00Z",
    }))
    .unwrap()
}

fn went(claim: Claim<Publication>) -> Publication {
    match claim {
        Claim::Ours(p) => p,
        other => panic!("expected to go, got {other:?}"),
    }
}

pub async fn publications(store: &dyn PublicationStore) {
    let t = tenant();
    let fresh = publication(&unique("p"));
    let until = soon();
    assert_eq!(
        went(store.claim_publication(&t, &fresh, "one", until).await.unwrap()).state,
        PublicationState::Accepted
    );
    let Claim::Held { until: busy } = store.claim_publication(&t, &fresh, "two", soon()).await.unwrap() else {
        panic!()
    };
    assert_eq!(busy, to_ms(until));
    assert!(matches!(store.save_publication(&t, &fresh, "two", false).await, Err(StoreError::LeaseLost)));

    // Progress is kept; a release lets the next delivery continue from it, not from its fresh copy.
    let progress = Publication { state: PublicationState::PageWritten, page_id: Some("42".into()), ..fresh.clone() };
    store.save_publication(&t, &progress, "one", false).await.unwrap();
    assert!(matches!(store.claim_publication(&t, &fresh, "two", soon()).await.unwrap(), Claim::Held { .. }));
    assert_eq!(store.get_publication(&t, &fresh.id).await.unwrap().unwrap().page_id.as_deref(), Some("42"));
    store.save_publication(&t, &progress, "one", true).await.unwrap();
    let taken = went(store.claim_publication(&t, &fresh, "two", lapsed()).await.unwrap());
    assert_eq!((taken.state, taken.page_id.as_deref()), (PublicationState::PageWritten, Some("42")));
    // "two"'s lease lapsed at once: "three" takes over, and "two" can no longer save.
    went(store.claim_publication(&t, &fresh, "three", soon()).await.unwrap());
    assert!(matches!(store.save_publication(&t, &progress, "two", true).await, Err(StoreError::LeaseLost)));
    assert!(matches!(store.save_publication(&t, &progress, "one", true).await, Err(StoreError::LeaseLost)));

    let published = Publication { state: PublicationState::Published, ..progress };
    store.save_publication(&t, &published, "three", false).await.unwrap();
    let Claim::Done(done) = store.claim_publication(&t, &fresh, "four", soon()).await.unwrap() else { panic!() };
    assert_eq!(done.state, PublicationState::Published);

    // Saving a record nobody claimed is refused too.
    assert!(matches!(
        store.save_publication(&t, &publication("nobody"), "one", true).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(store.get_publication(&t, "nobody").await.unwrap().is_none());
    assert!(store.get_publication(&tenant(), &fresh.id).await.unwrap().is_none());

    assert_eq!(store.report_page(&t, "r").await.unwrap(), None);
    let page = ReportPage::at("42", Some("cloud-1".into()));
    store.set_report_page(&t, "r", &page).await.unwrap();
    assert_eq!(store.report_page(&t, "r").await.unwrap(), Some(page));
    let legacy = ReportPage::at("43", None);
    store.set_report_page(&t, "r", &legacy).await.unwrap();
    assert_eq!(store.report_page(&t, "r").await.unwrap(), Some(legacy));
    report_links(store).await;
}

/// The report page's links lease: one holder at a time; its save writes every field (and
/// removes the absent ones) and gives the lease back; a lapsed holder can no longer save.
async fn report_links(store: &dyn PublicationStore) {
    let t = tenant();
    // Before any page: the lease is taken on a record that has no page yet.
    assert_eq!(store.claim_report_links(&t, "r", "one", soon()).await.unwrap(), Claim::Ours(None));
    assert_eq!(store.report_page(&t, "r").await.unwrap(), None);
    assert!(matches!(store.claim_report_links(&t, "r", "two", soon()).await.unwrap(), Claim::Held { .. }));
    let full = ReportPage {
        url: Some("https://wiki.example.test/pages/42".into()),
        title: Some("Sprint 42 retro".into()),
        links: Some("d1".into()),
        report: Some(vec![0x1f, 0x8b, 0, 255]),
        ..ReportPage::at("42", Some("cloud-1".into()))
    };
    assert!(matches!(store.save_report_links(&t, "r", &full, "two").await, Err(StoreError::LeaseLost)));
    store.save_report_links(&t, "r", &full, "one").await.unwrap();
    assert_eq!(store.report_page(&t, "r").await.unwrap(), Some(full.clone()));
    // Given back: the next one takes it, and sees the record.
    assert_eq!(store.claim_report_links(&t, "r", "two", soon()).await.unwrap(), Claim::Ours(Some(full.clone())));
    // The record's page fields change under the lease without touching it.
    let moved = ReportPage { page_id: "44".into(), ..full.clone() };
    store.set_report_page(&t, "r", &moved).await.unwrap();
    assert!(matches!(store.claim_report_links(&t, "r", "three", soon()).await.unwrap(), Claim::Held { .. }));
    // Released unchanged by its holder only.
    store.release_report_links(&t, "r", "three").await.unwrap();
    assert!(matches!(store.claim_report_links(&t, "r", "three", soon()).await.unwrap(), Claim::Held { .. }));
    store.release_report_links(&t, "r", "two").await.unwrap();
    assert_eq!(store.claim_report_links(&t, "r", "three", lapsed()).await.unwrap(), Claim::Ours(Some(moved)));
    // "three"'s lease lapsed: "four" takes it over, and "three" can no longer save.
    assert!(matches!(store.claim_report_links(&t, "r", "four", soon()).await.unwrap(), Claim::Ours(Some(_))));
    assert!(matches!(store.save_report_links(&t, "r", &full, "three").await, Err(StoreError::LeaseLost)));
    let bare = ReportPage::at("45", None);
    store.save_report_links(&t, "r", &bare, "four").await.unwrap();
    assert_eq!(store.report_page(&t, "r").await.unwrap(), Some(bare));
}

pub async fn publications_race(store: Arc<dyn PublicationStore>) {
    let t = tenant();
    let fresh = publication(&unique("p"));
    let claims = race(50, |n| {
        let (store, t, fresh) = (store.clone(), t.clone(), fresh.clone());
        async move { store.claim_publication(&t, &fresh, &format!("owner-{n}"), soon()).await.unwrap() }
    })
    .await;
    assert_eq!(claims.iter().filter(|c| matches!(c, Claim::Ours(_))).count(), 1);
    let report = unique("r");
    let claims = race(50, |n| {
        let (store, t, report) = (store.clone(), t.clone(), report.clone());
        async move { store.claim_report_links(&t, &report, &format!("owner-{n}"), soon()).await.unwrap() }
    })
    .await;
    assert_eq!(claims.iter().filter(|c| matches!(c, Claim::Ours(_))).count(), 1);
}

pub async fn refresh_leases(leases: &dyn RefreshLeaseStore) {
    let key = unique("grant");
    assert!(leases.try_acquire(&key, "one", soon()).await.unwrap());
    assert!(!leases.try_acquire(&key, "two", soon()).await.unwrap());
    assert!(!leases.try_acquire(&key, "one", soon()).await.unwrap());
    // Only the holder releases.
    leases.release(&key, "two").await.unwrap();
    assert!(!leases.try_acquire(&key, "two", soon()).await.unwrap());
    leases.release(&key, "one").await.unwrap();
    assert!(leases.try_acquire(&key, "two", lapsed()).await.unwrap());
    // "two"'s lease lapsed: "three" takes it, and "two" can no longer release it.
    assert!(leases.try_acquire(&key, "three", soon()).await.unwrap());
    leases.release(&key, "two").await.unwrap();
    assert!(!leases.try_acquire(&key, "four", soon()).await.unwrap());
}

pub async fn refresh_leases_race(leases: Arc<dyn RefreshLeaseStore>) {
    let key = unique("grant");
    let won = race(50, |n| {
        let (leases, key) = (leases.clone(), key.clone());
        async move { leases.try_acquire(&key, &format!("owner-{n}"), soon()).await.unwrap() }
    })
    .await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1);
}

/// A tenant holds at most `slots` places per pool; a released or lapsed place is free again (a
/// crashed holder never leaks one), a lapsed holder can't renew, and a pause recorded at a
/// release refuses the acquires that can't wait that long.
pub async fn tenant_slots(slots: &dyn TenantSlots) {
    let t = tenant();
    let pool = "publish-page";
    let now = OffsetDateTime::now_utc();
    let acquire = |tenant: TenantId, pool: &'static str, holder: &'static str, until: OffsetDateTime| async move {
        slots.acquire(&tenant, pool, holder, 2, until, now).await.unwrap()
    };
    assert_eq!(acquire(t.clone(), pool, "a", soon()).await, SlotClaim::Granted);
    assert_eq!(acquire(t.clone(), pool, "b", soon()).await, SlotClaim::Granted);
    assert_eq!(acquire(t.clone(), pool, "c", soon()).await, SlotClaim::Full);
    // Another function, another tenant: places of their own.
    assert_eq!(acquire(t.clone(), "create-issue", "c", soon()).await, SlotClaim::Granted);
    assert_eq!(acquire(tenant(), pool, "c", soon()).await, SlotClaim::Granted);
    // A released place is free again; giving back one not held changes nothing.
    slots.release(&t, pool, "a", None).await.unwrap();
    slots.release(&t, pool, "nobody", None).await.unwrap();
    assert_eq!(acquire(t.clone(), pool, "c", soon()).await, SlotClaim::Granted);
    assert_eq!(acquire(t.clone(), pool, "d", soon()).await, SlotClaim::Full);
    // A holder that crashed: its lease lapses and its place goes to the next acquire.
    slots.release(&t, pool, "c", None).await.unwrap();
    assert_eq!(acquire(t.clone(), pool, "crashed", lapsed()).await, SlotClaim::Granted);
    assert_eq!(acquire(t.clone(), pool, "e", soon()).await, SlotClaim::Granted);
    assert_eq!(acquire(t.clone(), pool, "f", soon()).await, SlotClaim::Full);
    assert!(!slots.renew(&t, pool, "crashed", soon()).await.unwrap());
    // A renewal moves the lease's end: to the past here, so the place is free.
    assert!(slots.renew(&t, pool, "b", lapsed()).await.unwrap());
    assert_eq!(acquire(t.clone(), pool, "g", soon()).await, SlotClaim::Granted);
    // A pause recorded at a release: refused to those who can't wait until it ends.
    let pause_end = now + Duration::seconds(30);
    slots.release(&t, pool, "e", Some(pause_end)).await.unwrap();
    assert_eq!(
        slots.acquire(&t, pool, "h", 2, soon(), now).await.unwrap(),
        SlotClaim::Paused { until: to_ms(pause_end) }
    );
    assert_eq!(slots.acquire(&t, pool, "h", 2, soon(), now + Duration::seconds(60)).await.unwrap(), SlotClaim::Granted);
}

/// Many instances asking at once for the last places: never more holders than slots.
pub async fn tenant_slots_race(slots: Arc<dyn TenantSlots>) {
    let t = tenant();
    let now = OffsetDateTime::now_utc();
    slots.acquire(&t, "pool", "first", 3, soon(), now).await.unwrap();
    slots.release(&t, "pool", "first", None).await.unwrap();
    let claims = race(50, |n| {
        let (slots, t) = (slots.clone(), t.clone());
        async move { slots.acquire(&t, "pool", &format!("holder-{n}"), 3, soon(), now).await.unwrap() }
    })
    .await;
    assert_eq!(claims.iter().filter(|c| **c == SlotClaim::Granted).count(), 3);
}

pub async fn oauth_states(states: Arc<dyn OAuthStateStore>) {
    let pending = PendingAuthorization {
        id: unique("state"),
        tenant: tenant(),
        target: ConsentTarget::Jira,
        return_url: "https://app.example/back".into(),
        expires_at: OffsetDateTime::now_utc() + Duration::minutes(10),
        data_center: None,
    };
    states.put(&pending).await.unwrap();
    // Ids are random; a second put of one is a bug, refused rather than overwriting.
    assert!(states.put(&pending).await.is_err());
    let taken = race(20, |_| {
        let (states, id) = (states.clone(), pending.id.clone());
        async move { states.take(&id).await.unwrap() }
    })
    .await;
    let taken: Vec<_> = taken.into_iter().flatten().collect();
    // Exactly once, with the expiry in the whole seconds the TTL attribute holds.
    let expires_at = OffsetDateTime::from_unix_timestamp(pending.expires_at.unix_timestamp()).unwrap();
    assert_eq!(taken, vec![PendingAuthorization { expires_at, ..pending.clone() }]);
    assert_eq!(states.take(&pending.id).await.unwrap(), None);
    // A Data Center consent's sealed application link comes back as it went in.
    let dc = PendingAuthorization { id: unique("state"), data_center: Some("sealed-link".into()), ..pending };
    states.put(&dc).await.unwrap();
    assert_eq!(states.take(&dc.id).await.unwrap().and_then(|p| p.data_center).as_deref(), Some("sealed-link"));
}

/// An accepted job reads back with part 0's results; parts are recorded once (a redelivery does
/// not overwrite them) and come back in order; jobs are per tenant.
pub async fn issue_jobs(store: &dyn IssueJobStore) {
    let t = tenant();
    let job = unique("job");
    assert_eq!(store.job(&t, &job).await.unwrap(), None);
    store.accept_job(&t, &job, "key-1", 3, r#"[{"n":0}]"#).await.unwrap();
    let accepted = store.job(&t, &job).await.unwrap().unwrap();
    assert_eq!((accepted.idempotency_key.as_str(), accepted.parts), ("key-1", 3));
    assert_eq!(accepted.results.keys().copied().collect::<Vec<_>>(), [0]);
    store.record_part(&t, &job, 2, r#"[{"n":2}]"#).await.unwrap();
    store.record_part(&t, &job, 2, r#"[{"again":true}]"#).await.unwrap();
    store.record_part(&t, &job, 1, r#"[{"n":1}]"#).await.unwrap();
    let done = store.job(&t, &job).await.unwrap().unwrap();
    let results: Vec<&str> = done.results.values().map(String::as_str).collect();
    assert_eq!(results, [r#"[{"n":0}]"#, r#"[{"n":1}]"#, r#"[{"n":2}]"#]);
    assert_eq!(store.job(&tenant(), &job).await.unwrap(), None);
    // A job whose id extends another's is not mixed into it.
    store.accept_job(&t, &format!("{job}0"), "key-2", 1, "[]").await.unwrap();
    assert_eq!(store.job(&t, &job).await.unwrap().unwrap().results.len(), 3);
}

fn connection(tenant: &TenantId, product: Product, grant: &str) -> Connection {
    crate::store::memory::oauth_connection(tenant, product, grant)
}

pub async fn connections(store: &dyn ConnectionStore) {
    let t = tenant();
    let jira = connection(&t, Product::Jira, "g1");
    let confluence = connection(&t, Product::Confluence, "g1");
    store.put_all(&[jira.clone(), confluence.clone()]).await.unwrap();
    assert_eq!(store.get(&t, Product::Jira).await.unwrap(), Some(jira.clone()));
    // In sort-key order, as the query answers.
    assert_eq!(store.list(&t).await.unwrap(), vec![confluence.clone(), jira.clone()]);
    assert_eq!(store.list(&tenant()).await.unwrap(), vec![]);

    let at = OffsetDateTime::now_utc();
    let stale = Verification {
        at,
        status: ConnectionStatus::InvalidCredentials,
        acting_as: Some("someone".into()),
        secret_name: "s/old".into(),
    };
    store.record_verified(&t, Product::Jira, &stale).await.unwrap();
    assert_eq!(store.get(&t, Product::Jira).await.unwrap(), Some(jira.clone()));
    let current = Verification { secret_name: jira.secret_name.clone(), ..stale.clone() };
    store.record_verified(&t, Product::Jira, &current).await.unwrap();
    let verified = store.get(&t, Product::Jira).await.unwrap().unwrap();
    assert_eq!(
        (verified.status, verified.acting_as.as_deref(), verified.last_verified_at),
        (ConnectionStatus::InvalidCredentials, Some("someone"), Some(at))
    );
    // Without an account, the one recorded stays.
    let anonymous = Verification { acting_as: None, status: ConnectionStatus::Connected, ..current.clone() };
    store.record_verified(&t, Product::Jira, &anonymous).await.unwrap();
    assert_eq!(store.get(&t, Product::Jira).await.unwrap().unwrap().acting_as.as_deref(), Some("someone"));

    // Only the connections still using the grant.
    let reconsented = connection(&t, Product::Confluence, "g2");
    store.put_all(std::slice::from_ref(&reconsented)).await.unwrap();
    store.mark_reconnect_required(&t, "g1", at).await.unwrap();
    assert_eq!(store.get(&t, Product::Jira).await.unwrap().unwrap().status, ConnectionStatus::ReconnectRequired);
    assert_eq!(store.get(&t, Product::Confluence).await.unwrap(), Some(reconsented));

    store.delete(&t, Product::Jira).await.unwrap();
    assert_eq!(store.get(&t, Product::Jira).await.unwrap(), None);
    // A verification finishing after the delete does not bring it back.
    store.record_verified(&t, Product::Jira, &current).await.unwrap();
    assert_eq!(store.get(&t, Product::Jira).await.unwrap(), None);
}

/// Paging every tenant's connections: in (tenant, product) order, resuming after any key, with
/// nothing skipped or repeated and an end that says so.
pub async fn sweep_pages(store: &dyn ConnectionStore) {
    // Tenants of their own that sort together: the table may hold other tests' connections.
    let prefix = format!("s{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let tenants: Vec<TenantId> =
        ["b", "a-2", "a", "c_1"].iter().map(|t| TenantId::parse(&format!("{prefix}{t}")).unwrap()).collect();
    for t in &tenants {
        let jira = connection(t, Product::Jira, "g1");
        let confluence = connection(t, Product::Confluence, "g1");
        store.put_all(&[jira, confluence]).await.unwrap();
    }
    let mut seen: Vec<String> = Vec::new();
    let mut after = Some(prefix.clone());
    let mut pages = 0;
    'paging: while let Some(from) = after {
        let page = store.sweep_page(Some(&from), 3).await.unwrap();
        assert!(page.connections.len() <= 3);
        pages += 1;
        for c in &page.connections {
            if !c.tenant.as_str().starts_with(&prefix) {
                break 'paging;
            }
            seen.push(sweep_key(c));
        }
        if let Some(next) = &page.next {
            assert_eq!(Some(next), page.connections.last().map(sweep_key).as_ref());
        }
        after = page.next;
    }
    let p = &prefix;
    assert_eq!(
        seen,
        [
            format!("{p}a#confluence"),
            format!("{p}a#jira"),
            format!("{p}a-2#confluence"),
            format!("{p}a-2#jira"),
            format!("{p}b#confluence"),
            format!("{p}b#jira"),
            format!("{p}c_1#confluence"),
            format!("{p}c_1#jira"),
        ]
    );
    assert!(pages >= 3, "{pages} pages");
    // A page holds whole connections as stored.
    let first = store.sweep_page(Some(&prefix), 1).await.unwrap();
    assert_eq!(first.connections, vec![store.get(&tenants[2], Product::Confluence).await.unwrap().unwrap()]);
    // A deleted connection leaves the index with it.
    store.delete(&tenants[2], Product::Confluence).await.unwrap();
    let first = store.sweep_page(Some(&prefix), 1).await.unwrap();
    assert_eq!(sweep_key(&first.connections[0]), format!("{p}a#jira"));
    // Past the last key there is nothing, and no next page.
    let end = store.sweep_page(Some("~"), 5).await.unwrap();
    assert_eq!(end, SweepPage { connections: vec![], next: None });
}

pub async fn keep_alive(store: &dyn KeepAliveStore) {
    let t = tenant();
    assert!(store.claim_notice(&t, "EXPIRING#g1#30", soon()).await.unwrap());
    // Once only, per tenant and key.
    assert!(!store.claim_notice(&t, "EXPIRING#g1#30", soon()).await.unwrap());
    assert!(store.claim_notice(&t, "EXPIRING#g1#7", soon()).await.unwrap());
    assert!(store.claim_notice(&tenant(), "EXPIRING#g1#30", soon()).await.unwrap());
    // Forgotten, it may go out again.
    store.forget_notice(&t, "EXPIRING#g1#30").await.unwrap();
    assert!(store.claim_notice(&t, "EXPIRING#g1#30", soon()).await.unwrap());
    store.forget_notice(&t, "never-claimed").await.unwrap();

    let started_at = to_ms(OffsetDateTime::now_utc()).replace_millisecond(0).unwrap();
    let round = SweepRound { started_at, after: Some("acme#jira".into()), completed_at: None };
    store.save_sweep_round(&round).await.unwrap();
    assert_eq!(store.sweep_round().await.unwrap(), Some(round.clone()));
    let done = SweepRound { completed_at: Some(started_at + Duration::minutes(3)), ..round };
    store.save_sweep_round(&done).await.unwrap();
    assert_eq!(store.sweep_round().await.unwrap(), Some(done));
}

/// A dead letter's notice is claimed by one delivery at a time, sent once, and then never
/// claimed again; an unsent claim whose lease lapsed (its holder killed) is claimed anew, and
/// its old holder can no longer mark it; a released claim is free at once.
pub async fn dead_letters(store: &dyn DeadLetterNotices) {
    let t = tenant();
    let now = OffsetDateTime::now_utc();
    let notice = unique("publish-page#page");
    assert_eq!(store.claim_notice(&t, &notice, "one", soon(), now).await.unwrap(), NoticeClaim::Ours);
    let held = store.claim_notice(&t, &notice, "two", soon(), now).await.unwrap();
    assert!(matches!(held, NoticeClaim::Held { until } if until > now), "{held:?}");
    // Another tenant's, or another job's, notice is its own.
    assert_eq!(store.claim_notice(&tenant(), &notice, "two", soon(), now).await.unwrap(), NoticeClaim::Ours);
    assert!(store.mark_sent(&t, &notice, "one", soon()).await.unwrap());
    assert_eq!(store.claim_notice(&t, &notice, "three", soon(), now).await.unwrap(), NoticeClaim::Sent);
    // Even long after: sent is sent.
    let later = now + Duration::hours(1);
    assert_eq!(store.claim_notice(&t, &notice, "three", soon(), later).await.unwrap(), NoticeClaim::Sent);
    store.release_notice(&t, &notice, "one").await.unwrap();
    assert_eq!(store.claim_notice(&t, &notice, "three", soon(), later).await.unwrap(), NoticeClaim::Sent);

    // A holder killed mid-way: its lease lapses, the next delivery claims it; the old holder
    // then marks nothing.
    let notice = unique("create-issue#issues");
    assert_eq!(store.claim_notice(&t, &notice, "one", lapsed(), now).await.unwrap(), NoticeClaim::Ours);
    assert_eq!(store.claim_notice(&t, &notice, "two", soon(), now).await.unwrap(), NoticeClaim::Ours);
    assert!(!store.mark_sent(&t, &notice, "one", soon()).await.unwrap());
    // Only the holder releases, and only while unsent.
    store.release_notice(&t, &notice, "one").await.unwrap();
    assert!(matches!(store.claim_notice(&t, &notice, "three", soon(), now).await.unwrap(), NoticeClaim::Held { .. }));
    store.release_notice(&t, &notice, "two").await.unwrap();
    assert_eq!(store.claim_notice(&t, &notice, "three", soon(), now).await.unwrap(), NoticeClaim::Ours);
    assert!(!store.mark_sent(&t, &unique("never-claimed"), "three", soon()).await.unwrap());
}

pub async fn dead_letters_race(store: Arc<dyn DeadLetterNotices>) {
    let (t, notice) = (tenant(), unique("publish-page#page"));
    let claims = race(50, |n| {
        let (store, t, notice) = (store.clone(), t.clone(), notice.clone());
        async move {
            let now = OffsetDateTime::now_utc();
            store.claim_notice(&t, &notice, &format!("owner-{n}"), soon(), now).await.unwrap()
        }
    })
    .await;
    assert_eq!(claims.iter().filter(|c| **c == NoticeClaim::Ours).count(), 1);
}

fn pending(tenant: &TenantId, target: ConsentTarget, grant: &str, expires_at: OffsetDateTime) -> PendingConsent {
    PendingConsent {
        tenant: tenant.clone(),
        target,
        grant_id: grant.into(),
        secret_name: format!("s/{tenant}/{grant}"),
        digest: vec![7; 32],
        created_at: OffsetDateTime::now_utc(),
        expires_at: to_ms(expires_at),
        connections: target.products().iter().map(|&p| connection(tenant, p, grant)).collect(),
        discarding: false,
    }
}

/// Pending consents: one per tenant and target, apart from the connections; a confirm installs
/// them atomically and only once, never after a discard began or a newer consent replaced it.
pub async fn pending_consents(store: &dyn ConnectionStore) {
    let (t, other) = (tenant(), tenant());
    let working = connection(&t, Product::Jira, "old");
    store.put_all(std::slice::from_ref(&working)).await.unwrap();
    let first = pending(&t, ConsentTarget::Jira, "p1", soon());
    assert_eq!(store.put_pending(&first).await.unwrap(), None);
    assert_eq!(store.pending(&t).await.unwrap(), vec![first.clone()]);
    assert_eq!(store.pending(&other).await.unwrap(), vec![]);
    // Pending consents are not connections, and leave the working one alone.
    assert_eq!(store.list(&t).await.unwrap(), vec![working.clone()]);

    // A newer consent for the same target replaces the first, which can no longer be confirmed.
    let second = pending(&t, ConsentTarget::Jira, "p2", soon());
    assert_eq!(store.put_pending(&second).await.unwrap(), Some(first.clone()));
    assert!(!store.confirm_pending(&first).await.unwrap());
    assert_eq!(store.get(&t, Product::Jira).await.unwrap(), Some(working.clone()));

    // Confirmed once: the connections replace the working one, the pending consent is gone.
    assert!(store.confirm_pending(&second).await.unwrap());
    assert_eq!(store.get(&t, Product::Jira).await.unwrap(), Some(second.connections[0].clone()));
    assert_eq!(store.pending(&t).await.unwrap(), vec![]);
    assert!(!store.confirm_pending(&second).await.unwrap());

    // A discard that began wins over a later confirm; it touches only its own grant.
    let combined = pending(&t, ConsentTarget::Atlassian, "p3", lapsed());
    store.put_pending(&combined).await.unwrap();
    assert!(!store.discard_pending(&t, ConsentTarget::Atlassian, "another").await.unwrap());
    assert!(store.discard_pending(&t, ConsentTarget::Atlassian, "p3").await.unwrap());
    assert!(!store.confirm_pending(&combined).await.unwrap());
    assert_eq!(store.get(&t, Product::Confluence).await.unwrap(), None);
    let [marked] = store.pending(&t).await.unwrap().try_into().unwrap();
    assert!(marked.discarding);

    // Expired ones of every tenant, for the sweep; fresh ones are not listed.
    let fresh = pending(&other, ConsentTarget::Confluence, "p4", soon());
    store.put_pending(&fresh).await.unwrap();
    let expired = store.expired_pending(OffsetDateTime::now_utc()).await.unwrap();
    assert!(expired.iter().any(|p| p.grant_id == "p3" && p.tenant == t));
    assert!(expired.iter().all(|p| p.grant_id != "p4"));

    store.remove_pending(&t, ConsentTarget::Atlassian, "another").await.unwrap();
    assert_eq!(store.pending(&t).await.unwrap().len(), 1);
    store.remove_pending(&t, ConsentTarget::Atlassian, "p3").await.unwrap();
    assert_eq!(store.pending(&t).await.unwrap(), vec![]);
    assert_eq!(store.pending(&other).await.unwrap(), vec![fresh]);
}

pub async fn settings(store: &dyn SettingsStore) {
    let t = tenant();
    assert_eq!(store.get_settings(&t, Product::Jira).await.unwrap(), None);
    let value = serde_json::json!({"project_key": "ENG", "labels": ["a"], "ratio": 0.5});
    store.put_settings(&t, Product::Jira, &value).await.unwrap();
    assert_eq!(store.get_settings(&t, Product::Jira).await.unwrap(), Some(value));
    assert_eq!(store.get_settings(&t, Product::Confluence).await.unwrap(), None);
}

pub async fn credentials(store: &dyn CredentialStore) {
    let name = unique("s/acme");
    assert!(store.get(&name).await.unwrap().is_none());
    store.put(&name, &SecretString::from("one")).await.unwrap();
    let first = store.get(&name).await.unwrap().unwrap();
    store.put(&name, &SecretString::from("two")).await.unwrap();
    let second = store.get(&name).await.unwrap().unwrap();
    assert_eq!(second.value.expose_secret(), "two");
    assert_ne!(first.version, second.version);
    store.delete(&name).await.unwrap();
    assert!(store.get(&name).await.unwrap().is_none());
    store.delete(&name).await.unwrap();
}

fn cache_entry(key: &LookupKey, value: &str, expires_at: OffsetDateTime) -> CacheEntry {
    CacheEntry { key: key.clone(), value: value.to_owned(), expires_at }
}

pub async fn lookup_cache(cache: &dyn LookupCache) {
    let t = tenant();
    let found = LookupKey::assignee("cloud-1", "d1");
    let screen = LookupKey::create_meta("cloud-1", "ENG", "10001");
    let expired = LookupKey::assignee("cloud-1", "d2");
    let unknown = LookupKey::assignee("cloud-1", "d3");
    cache
        .put_many(
            &t,
            &[
                cache_entry(&found, r#"{"id":"a-1"}"#, soon()),
                cache_entry(&screen, "[]", soon()),
                // Written already expired: DynamoDB keeps it until its sweeper runs, reads skip it.
                cache_entry(&expired, r#"{"id":"a-2"}"#, lapsed()),
            ],
        )
        .await
        .unwrap();
    let keys = [found.clone(), screen.clone(), expired.clone(), unknown.clone(), found.clone()];
    let got = cache.get_many(&t, &keys).await.unwrap();
    let expected = std::collections::HashMap::from([
        (found.clone(), r#"{"id":"a-1"}"#.to_owned()),
        (screen.clone(), "[]".to_owned()),
    ]);
    assert_eq!(got, expected);
    // Per tenant.
    assert!(cache.get_many(&tenant(), &keys).await.unwrap().is_empty());
    // A put replaces the entry, also with an earlier expiry; the last of one key in a call wins.
    cache
        .put_many(
            &t,
            &[
                cache_entry(&found, "old", soon()),
                cache_entry(&found, "new", soon()),
                cache_entry(&screen, "[]", lapsed()),
            ],
        )
        .await
        .unwrap();
    let got = cache.get_many(&t, &[found.clone(), screen.clone()]).await.unwrap();
    assert_eq!(got, std::collections::HashMap::from([(found.clone(), "new".to_owned())]));
    // Nothing asked, nothing to do.
    assert!(cache.get_many(&t, &[]).await.unwrap().is_empty());
    cache.put_many(&t, &[]).await.unwrap();
}

/// More keys than one `BatchGetItem` (100) and one `BatchWriteItem` (25) take.
pub async fn lookup_cache_in_batches(cache: &dyn LookupCache) {
    let t = tenant();
    let keys: Vec<LookupKey> =
        (0..230).map(|i| LookupKey::assignee("https://jira.corp.test/jira", &format!("h{i}"))).collect();
    let entries: Vec<_> = keys.iter().enumerate().map(|(i, k)| cache_entry(k, &format!("v{i}"), soon())).collect();
    cache.put_many(&t, &entries).await.unwrap();
    let mut asked = keys.clone();
    asked.extend((0..20).map(|i| LookupKey::assignee("https://jira.corp.test/jira", &format!("unknown{i}"))));
    let got = cache.get_many(&t, &asked).await.unwrap();
    assert_eq!(got.len(), 230);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(got.get(key).map(String::as_str), Some(format!("v{i}").as_str()), "{key}");
    }
}

fn destination(kind: DestinationKind) -> Destination {
    Destination { kind, key: unique("jira.corp.example") }
}

/// Refusals count per destination across tenants, in a window that starts at the first one and
/// starts over once it has passed; a lock holds until its end, and only one caller locks.
pub async fn destination_failures(store: &dyn DestinationFailureStore) {
    let host = destination(DestinationKind::Host);
    let window = std::time::Duration::from_secs(900);
    let start = to_ms(OffsetDateTime::now_utc());
    let (a, b) = (tenant(), tenant());
    assert_eq!(store.locked_until(&host, start).await.unwrap(), None);
    let counted = |failures, tenants, window_started| FailureTally { failures, tenants, window_started };
    assert_eq!(store.add_failure(&host, &a, start, window).await.unwrap(), counted(1, 1, start));
    let later = start + Duration::seconds(30);
    assert_eq!(store.add_failure(&host, &a, later, window).await.unwrap(), counted(2, 1, start));
    assert_eq!(store.add_failure(&host, &b, later, window).await.unwrap(), counted(3, 2, start));
    // Per destination (and per kind: the same key as a site is another destination).
    let site = Destination { kind: DestinationKind::Site, key: host.key.clone() };
    assert_eq!(store.add_failure(&site, &a, later, window).await.unwrap(), counted(1, 1, later));
    // The window has passed: the count starts over, from this refusal.
    let next = start + Duration::seconds(900);
    assert_eq!(store.add_failure(&host, &b, next, window).await.unwrap(), counted(1, 1, next));
    assert_eq!(store.add_failure(&host, &a, next, window).await.unwrap(), counted(2, 2, next));

    let until = next + Duration::minutes(15);
    assert!(store.lock(&host, next, until).await.unwrap());
    assert!(!store.lock(&host, next + Duration::minutes(1), until + Duration::minutes(1)).await.unwrap());
    assert_eq!(store.locked_until(&host, next).await.unwrap(), Some(until));
    assert_eq!(store.locked_until(&host, until - Duration::milliseconds(1)).await.unwrap(), Some(until));
    assert_eq!(store.locked_until(&site, next).await.unwrap(), None);
    // At its end the lock is over, and a new one may be taken.
    assert_eq!(store.locked_until(&host, until).await.unwrap(), None);
    let again = until + Duration::minutes(15);
    assert!(store.lock(&host, until, again).await.unwrap());
    assert_eq!(store.locked_until(&host, until).await.unwrap(), Some(again));
}

/// Concurrent refusals are all counted; of concurrent lockers exactly one locks.
pub async fn destination_failures_race(store: Arc<dyn DestinationFailureStore>) {
    let host = destination(DestinationKind::TokenUrl);
    let window = std::time::Duration::from_secs(900);
    let now = OffsetDateTime::now_utc();
    let tallies = race(20, |_| {
        let (store, host) = (store.clone(), host.clone());
        async move { store.add_failure(&host, &tenant(), now, window).await.unwrap() }
    })
    .await;
    let mut counts: Vec<u32> = tallies.iter().map(|t| t.failures).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<_>>());
    assert_eq!(tallies.iter().map(|t| t.tenants).max(), Some(20));
    let until = now + Duration::minutes(15);
    let locked = race(20, |_| {
        let (store, host) = (store.clone(), host.clone());
        async move { store.lock(&host, now, until).await.unwrap() }
    })
    .await;
    assert_eq!(locked.iter().filter(|l| **l).count(), 1);
}

fn registration(t: &TenantId, cloud_id: &str, ids: &[i64], expires_at: OffsetDateTime) -> WebhookRegistration {
    WebhookRegistration {
        tenant: t.clone(),
        cloud_id: cloud_id.into(),
        site_url: format!("https://{cloud_id}.example.net"),
        webhook_ids: ids.to_vec(),
        projects: vec!["OPS".into(), "RETRO".into()],
        expires_at: to_ms(expires_at),
        registered_at: to_ms(OffsetDateTime::now_utc()),
    }
}

/// A registration is found by tenant, by each of its webhook ids (several sites may hold the same
/// id), and among the expiring ones; replacing it drops the lookups of ids it no longer holds;
/// deleting it removes everything. A delivery identifier is handled once per site.
pub async fn webhooks(store: &dyn WebhookStore) {
    let (a, b) = (tenant(), tenant());
    // Ids from a range of their own, so the suite can share a table with earlier runs.
    let base = i64::from(uuid::Uuid::new_v4().as_u128() as u32) * 10;
    let far = OffsetDateTime::now_utc() + Duration::days(300_000);
    let ra = registration(&a, "site-a", &[base, base + 1], far + Duration::days(1));
    let rb = registration(&b, "site-b", &[base], far + Duration::days(2));
    store.put_registration(&ra).await.unwrap();
    store.put_registration(&rb).await.unwrap();
    assert_eq!(store.registration(&a).await.unwrap(), Some(ra.clone()));
    assert_eq!(store.registrations_with(base).await.unwrap().len(), 2);
    assert_eq!(store.registrations_with(base + 1).await.unwrap(), vec![ra.clone()]);
    let expiring = store.expiring(far + Duration::days(3), 10_000).await.unwrap();
    let ours: Vec<_> = expiring.iter().filter(|r| r.tenant == a || r.tenant == b).collect();
    assert_eq!(ours, vec![&ra, &rb], "soonest first");
    assert!(!store.expiring(far, 10_000).await.unwrap().iter().any(|r| r.tenant == a || r.tenant == b));

    // Re-registered under a new id: the old id no longer finds it.
    let moved = registration(&a, "site-a", &[base + 2], far + Duration::days(5));
    store.put_registration(&moved).await.unwrap();
    assert!(store.registrations_with(base + 1).await.unwrap().is_empty());
    assert_eq!(store.registrations_with(base + 2).await.unwrap(), vec![moved.clone()]);
    assert_eq!(store.delete_registration(&a).await.unwrap(), Some(moved));
    assert_eq!(store.registration(&a).await.unwrap(), None);
    assert!(store.registrations_with(base + 2).await.unwrap().is_empty());
    assert_eq!(store.delete_registration(&a).await.unwrap(), None);
    assert_eq!(store.registrations_with(base).await.unwrap(), vec![rb]);

    let (now, id) = (OffsetDateTime::now_utc(), unique("delivery"));
    assert!(!store.delivery_seen("site-a", &id, now).await.unwrap());
    assert!(store.delivery_handled("site-a", &id, now).await.unwrap());
    assert!(!store.delivery_handled("site-a", &id, now).await.unwrap(), "a retry is handled once");
    assert!(store.delivery_seen("site-a", &id, now).await.unwrap());
    assert!(store.delivery_handled("site-b", &id, now).await.unwrap(), "identifiers are per site");
    let later = now + webhooks::DELIVERY_MEMORY + Duration::minutes(1);
    assert!(!store.delivery_seen("site-a", &id, later).await.unwrap());
}

fn seen(updated_ms: i64) -> crate::issues::state::JiraState {
    crate::issues::state::JiraState {
        status: "Done".into(),
        status_category: crate::issues::state::StatusCategory::Done,
        resolution: Some("Done".into()),
        assignee: None,
        summary: "s".into(),
        due_date: None,
        updated: OffsetDateTime::from_unix_timestamp_nanos(i128::from(updated_ms) * 1_000_000).unwrap(),
    }
}

fn staging(item_id: &str, issue_key: &str, write: StateWrite, change_id: &str) -> Staging {
    Staging {
        item_id: item(item_id),
        key: key(issue_key),
        write,
        change_id: change_id.into(),
        site: "cloud-1".into(),
        payload: format!("{{\"change\":\"{change_id}\"}}"),
    }
}

/// The sync's store: the "only newer `updated`" condition (staged and plain), the outbox written
/// with it and nothing without it, bulk key lookups, the created-issue listing, cursors, rounds
/// and enrolled tenants.
pub async fn issue_sync<S: IssueLedger + IssueSyncStore + ?Sized>(store: &S) {
    let t = tenant();
    for (id, k) in [("a", "ENG-1"), ("b", "ENG-2"), ("c", "ENG-3")] {
        store.claim(&t, &item(id), "one", soon()).await.unwrap();
        store.complete(&t, &item(id), "one", &recorded(k)).await.unwrap();
    }
    // A pending item is not created: no state is written on it.
    store.claim(&t, &item("p"), "one", soon()).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let at = |ms: i64| StateWrite::Seen { state: seen(ms), synced_at: now };

    // Only newer: the first sighting and a newer one are new; the same and an older one are not.
    let first = [staging("a", "ENG-1", at(2_000), "ENG-1@2000"), staging("b", "ENG-2", at(2_000), "ENG-2@2000")];
    assert_eq!(store.stage(&t, &first).await.unwrap(), vec![true, true]);
    let again = [
        staging("a", "ENG-1", at(2_000), "ENG-1@2000"),
        staging("b", "ENG-2", at(1_000), "ENG-2@1000"),
        staging("c", "ENG-3", at(1_000), "ENG-3@1000"),
        staging("p", "ENG-9", at(1_000), "ENG-9@1000"),
    ];
    assert_eq!(store.stage(&t, &again).await.unwrap(), vec![false, false, true, false]);
    let ids: Vec<String> = store.outbox(&t).await.unwrap().into_iter().map(|e| e.change_id).collect();
    assert_eq!(ids, vec!["ENG-1@2000", "ENG-2@2000", "ENG-3@1000"]);
    let entry = store.outbox(&t).await.unwrap().remove(0);
    assert_eq!(entry.payload, "{\"change\":\"ENG-1@2000\"}");
    assert_eq!(entry.site.as_str(), "cloud-1");
    assert!(!entry.deleted);
    assert!(store.outbox(&tenant()).await.unwrap().is_empty());

    // The plain write keeps the same condition.
    assert!(!store.record_state(&t, &item("a"), &seen(2_000), now).await.unwrap());
    assert!(store.record_state(&t, &item("a"), &seen(3_000), now).await.unwrap());
    assert!(!store.record_state(&t, &item("p"), &seen(3_000), now).await.unwrap());
    assert!(!store.record_state(&t, &item("never"), &seen(3_000), now).await.unwrap());

    // Bulk lookup: only our keys, with what was recorded.
    let known = store.known(&t, &[key("ENG-2"), key("ENG-1"), key("OPS-1"), key("ENG-1")]).await.unwrap();
    assert_eq!(known.len(), 2);
    assert_eq!((known[0].key.as_str(), known[0].item_id.as_str()), ("ENG-1", "a"));
    assert_eq!(known[0].jira_updated_ms, Some(3_000));
    assert_eq!(known[1].jira_updated_ms, Some(2_000));
    assert_eq!(known[1].site.as_ref().map(|s| s.as_str()), Some("cloud-1"));
    assert!(!known[1].deleted);
    assert!(store.known(&tenant(), &[key("ENG-1")]).await.unwrap().is_empty());
    let many: Vec<IssueKey> = (0..250).map(|i| key(&format!("X-{i}"))).chain([key("ENG-3")]).collect();
    assert_eq!(store.known(&t, &many).await.unwrap().len(), 1, "past one BatchGetItem");

    // A deletion is new once, with its entry; the record is no longer a created one.
    let gone = [staging("b", "ENG-2", StateWrite::Deleted, "ENG-2@deleted")];
    assert_eq!(store.stage(&t, &gone).await.unwrap(), vec![true]);
    assert_eq!(store.stage(&t, &gone).await.unwrap(), vec![false]);
    assert!(store.outbox(&t).await.unwrap().iter().any(|e| e.change_id == "ENG-2@deleted" && e.deleted));
    assert!(store.known(&t, &[key("ENG-2")]).await.unwrap()[0].deleted);
    assert_eq!(store.item_for_key(&t, &key("ENG-2")).await.unwrap(), None);
    assert_eq!(store.stage(&t, &[staging("b", "ENG-2", at(9_000), "ENG-2@9000")]).await.unwrap(), vec![false]);

    // Published entries go.
    let all: Vec<String> = store.outbox(&t).await.unwrap().into_iter().map(|e| e.change_id).collect();
    store.clear_outbox(&t, &all).await.unwrap();
    assert!(store.outbox(&t).await.unwrap().is_empty());

    // The created issues, a page at a time, without the deleted or pending ones.
    let mut listed = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let page = store.created_issues(&t, after.as_deref(), 1).await.unwrap();
        listed.extend(page.issues.into_iter().map(|i| (i.key.to_string(), i.id.to_string(), i.item_id.to_string())));
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(
        listed,
        vec![("ENG-1".into(), "id-ENG-1".into(), "a".into()), ("ENG-3".into(), "id-ENG-3".into(), "c".into())]
    );

    // Cursors per tenant and site; rounds; enrolled tenants in order.
    assert_eq!(store.cursor(&t, &"cloud-1".into()).await.unwrap(), SyncCursor::default());
    let cursor = SyncCursor {
        updated_since: Some(to_ms(now)),
        deletion_after: Some("ACTION#a".into()),
        deletion_pass_done: Some(to_ms(now)),
    };
    store.save_cursor(&t, &"cloud-1".into(), &cursor).await.unwrap();
    assert_eq!(store.cursor(&t, &"cloud-1".into()).await.unwrap(), cursor);
    assert_eq!(store.cursor(&t, &"other".into()).await.unwrap(), SyncCursor::default());
    let round = SyncRound { after: Some(t.to_string()), started_at: Some(to_ms(now)) };
    store.save_sync_round(&round).await.unwrap();
    assert_eq!(store.sync_round().await.unwrap(), round);
    store.enroll(&t).await.unwrap();
    store.enroll(&t).await.unwrap();
    let before = &t.as_str()[..t.as_str().len() - 1];
    let page = store.enrolled(Some(before), 5).await.unwrap();
    assert_eq!(page.tenants.first(), Some(&t));
    assert!(!store.enrolled(Some(t.as_str()), 5).await.unwrap().tenants.contains(&t));
}

/// A tenant that created issues before enrollment existed is enrolled by the backfill.
pub async fn issue_sync_backfill<S: IssueLedger + IssueSyncStore + ?Sized>(store: &S) {
    let t = tenant();
    store.claim(&t, &item("a"), "one", soon()).await.unwrap();
    store.complete(&t, &item("a"), "one", &recorded("ENG-1")).await.unwrap();
    let before = &t.as_str()[..t.as_str().len() - 1];
    assert!(!store.enrolled(Some(before), 5).await.unwrap().tenants.contains(&t));
    let mut calls = 0;
    while !store.backfill_enrollment(1).await.unwrap() {
        calls += 1;
        assert!(calls < 1000);
    }
    assert_eq!(store.enrolled(Some(before), 5).await.unwrap().tenants.first(), Some(&t));
    assert!(store.backfill_enrollment(1).await.unwrap());
}

fn installation(kind: AppKind, generation: u64) -> Installation {
    let now = to_ms(OffsetDateTime::now_utc());
    Installation {
        kind,
        id: unique("client"),
        product: Product::Confluence,
        base_url: "https://acme.atlassian.net/wiki".into(),
        cloud_id: Some("cloud-1".into()),
        secret_name: unique("apps/connect"),
        status: InstallationStatus::Installed,
        tenant: None,
        generation,
        installed_at: now,
        updated_at: now,
    }
}

/// Installs are generation-conditional, links bind one tenant, uninstalls keep the record, and a
/// link code works once, for its latest issue only, until it expires.
pub async fn installations<S: InstallationStore + ?Sized>(store: &S) {
    let (a, b) = (tenant(), tenant());
    let now = to_ms(OffsetDateTime::now_utc());
    for kind in [AppKind::Connect, AppKind::Forge] {
        let first = installation(kind, 1);
        assert!(store.installation(kind, &first.id).await.unwrap().is_none());
        assert!(store.put_installation(&first).await.unwrap());
        // The same generation again (a concurrent or repeated install) is refused.
        assert!(!store.put_installation(&first).await.unwrap());
        assert_eq!(store.installation(kind, &first.id).await.unwrap(), Some(first.clone()));
        // Another kind with the same id is another installation.
        let other_kind = if kind == AppKind::Connect { AppKind::Forge } else { AppKind::Connect };
        assert!(store.installation(other_kind, &first.id).await.unwrap().is_none());

        assert!(store.link(kind, &first.id, &a, now).await.unwrap());
        assert!(store.link(kind, &first.id, &a, now).await.unwrap(), "linking again to the same tenant");
        assert!(!store.link(kind, &first.id, &b, now).await.unwrap(), "one installation serves one tenant");
        assert!(!store.link(kind, "no-such-installation", &a, now).await.unwrap());

        // A reinstall (next generation) replaces the fields and keeps the link and installed_at.
        let mut again = installation(kind, 2);
        again.id = first.id.clone();
        again.base_url = "https://acme.atlassian.net/wiki/".into();
        again.cloud_id = None;
        again.installed_at = now + Duration::hours(1);
        assert!(store.put_installation(&again).await.unwrap());
        let stored = store.installation(kind, &first.id).await.unwrap().unwrap();
        assert_eq!(stored.tenant, Some(a.clone()));
        assert_eq!(stored.installed_at, first.installed_at);
        assert_eq!((stored.generation, stored.cloud_id, stored.base_url), (2, None, again.base_url.clone()));
        let mut skipped = again.clone();
        skipped.generation = 4;
        assert!(!store.put_installation(&skipped).await.unwrap(), "a generation may not be skipped");

        // Unlink only for the tenant that holds it.
        store.unlink(kind, &first.id, &b, now).await.unwrap();
        assert_eq!(store.installation(kind, &first.id).await.unwrap().unwrap().tenant, Some(a.clone()));
        store.unlink(kind, &first.id, &a, now).await.unwrap();
        assert_eq!(store.installation(kind, &first.id).await.unwrap().unwrap().tenant, None);

        // Uninstall answers the record as it was, keeps it, and refuses links from then on.
        assert!(store.link(kind, &first.id, &b, now).await.unwrap());
        let was = store.uninstall(kind, &first.id, now).await.unwrap().unwrap();
        assert_eq!((was.status, was.tenant), (InstallationStatus::Installed, Some(b.clone())));
        let kept = store.installation(kind, &first.id).await.unwrap().unwrap();
        assert_eq!((kept.status, kept.tenant), (InstallationStatus::Uninstalled, None));
        assert!(!store.link(kind, &first.id, &b, now).await.unwrap());
        assert!(store.uninstall(kind, "no-such-installation", now).await.unwrap().is_none());
    }

    let code = |digest: &str, tenant: &TenantId, product, expires_at| LinkCode {
        digest: digest.into(),
        tenant: tenant.clone(),
        product,
        created_at: now,
        expires_at,
    };
    let (d1, d2, d3, d4) = (unique("d1"), unique("d2"), unique("d3"), unique("d4"));
    let later = now + Duration::minutes(10);
    store.put_link_code(&code(&d1, &a, Product::Jira, later)).await.unwrap();
    store.put_link_code(&code(&d2, &a, Product::Confluence, later)).await.unwrap();
    // A new code for the same tenant and product replaces the first.
    store.put_link_code(&code(&d3, &a, Product::Jira, later)).await.unwrap();
    assert!(store.take_link_code(&d1, now).await.unwrap().is_none());
    assert_eq!(store.take_link_code(&d3, now).await.unwrap(), Some(code(&d3, &a, Product::Jira, later)));
    assert!(store.take_link_code(&d3, now).await.unwrap().is_none(), "single use");
    assert_eq!(store.take_link_code(&d2, now).await.unwrap().map(|c| c.product), Some(Product::Confluence));
    // An expired code is used up and links nothing.
    store.put_link_code(&code(&d4, &b, Product::Jira, now)).await.unwrap();
    assert!(store.take_link_code(&d4, now).await.unwrap().is_none());
    assert!(store.take_link_code(&d4, now - Duration::minutes(1)).await.unwrap().is_none());
}

mod memory {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn ports(store: &MemoryStore) -> Ports {
        Ports {
            connections: store.connections.clone(),
            settings: store.settings.clone(),
            ledger: store.ledger.clone(),
            publications: store.publications.clone(),
            states: store.states.clone(),
            leases: store.leases.clone(),
        }
    }

    #[tokio::test]
    async fn the_memory_store_keeps_every_contract() {
        let store = MemoryStore::new();
        let ports = ports(&store);
        issue_ledger(&*ports.ledger).await;
        publications(&*ports.publications).await;
        refresh_leases(&*ports.leases).await;
        oauth_states(ports.states.clone()).await;
        connections(&*ports.connections).await;
        sweep_pages(&*ports.connections).await;
        keep_alive(&*store.keep_alive).await;
        dead_letters(&*store.dead_letters).await;
        pending_consents(&*ports.connections).await;
        settings(&*ports.settings).await;
        credentials(&*store.credentials).await;
        issue_jobs(&*store.jobs).await;
        lookup_cache(&*store.lookups).await;
        lookup_cache_in_batches(&*store.lookups).await;
        tenant_slots(&*store.slots).await;
        destination_failures(&*store.destinations).await;
        webhooks(&*store.webhooks).await;
        issue_sync(&*store.ledger).await;
        issue_sync_backfill(&*store.ledger).await;
        installations(&*store.installations).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claims_elect_one_holder() {
        let store = MemoryStore::new();
        issue_ledger_race(store.ledger.clone()).await;
        publications_race(store.publications.clone()).await;
        refresh_leases_race(store.leases.clone()).await;
        tenant_slots_race(store.slots.clone()).await;
        destination_failures_race(store.destinations.clone()).await;
        dead_letters_race(store.dead_letters.clone()).await;
    }
}

/// The same suite against the DynamoDB adapter, when `BRIDGE_TEST_DYNAMODB_URL` names a DynamoDB
/// endpoint (moto: `.venv/bin/moto_server -p 5055`, then
/// `BRIDGE_TEST_DYNAMODB_URL=http://127.0.0.1:5055 cargo test -p bridge-shared --lib contract`).
/// Without it the test passes vacuously: the unit suite needs no services.
mod dynamodb {
    use aws_sdk_dynamodb::config::{Credentials, Region};
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
        ScalarAttributeType,
    };

    use super::*;
    use crate::store::dynamo::DynamoStore;

    async fn store() -> Option<Arc<DynamoStore>> {
        let url = std::env::var("BRIDGE_TEST_DYNAMODB_URL").ok()?;
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "contract"))
            .load()
            .await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        let table = unique("contract");
        let key = |name: &str, key_type| KeySchemaElement::builder().attribute_name(name).key_type(key_type).build();
        let attribute = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        client
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).unwrap())
            .key_schema(key("sk", KeyType::Range).unwrap())
            .attribute_definitions(attribute("pk").unwrap())
            .attribute_definitions(attribute("sk").unwrap())
            .attribute_definitions(attribute("sweep_pk").unwrap())
            .attribute_definitions(attribute("sweep_sk").unwrap())
            // The sparse index the keep-alive sweep pages through (see the schema in dynamo/mod.rs).
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("sweep")
                    .key_schema(key("sweep_pk", KeyType::Hash).unwrap())
                    .key_schema(key("sweep_sk", KeyType::Range).unwrap())
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Some(Arc::new(DynamoStore::new(client, table)))
    }

    /// A connection item from before the sweep index existed (no index keys) is found by the
    /// sweep once the backfill ran; the backfill then is done, and stays done.
    async fn backfill_sweep_index(store: &DynamoStore) {
        let t = tenant();
        let old = connection(&t, Product::Jira, "g1");
        store.put_all(std::slice::from_ref(&old)).await.unwrap();
        store.strip_sweep_keys(&t, Product::Jira).await;
        let at = sweep_key(&old);
        // Just before the tenant's keys: `!` sorts below `#`.
        let before = format!("{t}!");
        let found = |page: SweepPage| page.connections.iter().any(|c| sweep_key(c) == at);
        assert!(!found(store.sweep_page(Some(&before), 5).await.unwrap()));
        // One page a call: the table holds the whole suite's items, so this takes a few calls.
        let mut calls = 0;
        while !ConnectionStore::backfill_sweep_index(store, 1).await.unwrap() {
            calls += 1;
            assert!(calls < 1000);
        }
        assert!(found(store.sweep_page(Some(&before), 5).await.unwrap()));
        assert!(ConnectionStore::backfill_sweep_index(store, 1).await.unwrap());
        assert_eq!(store.get(&t, Product::Jira).await.unwrap(), Some(old));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_dynamodb_adapter_keeps_every_contract() {
        let Some(store) = store().await else {
            eprintln!("BRIDGE_TEST_DYNAMODB_URL is not set: the DynamoDB contract run is skipped");
            return;
        };
        issue_ledger(&*store).await;
        publications(&*store).await;
        refresh_leases(&*store).await;
        oauth_states(store.clone()).await;
        connections(&*store).await;
        sweep_pages(&*store).await;
        keep_alive(&*store).await;
        dead_letters(&*store).await;
        dead_letters_race(store.clone()).await;
        pending_consents(&*store).await;
        settings(&*store).await;
        issue_jobs(&*store).await;
        lookup_cache(&*store).await;
        lookup_cache_in_batches(&*store).await;
        tenant_slots(&*store).await;
        tenant_slots_race(store.clone()).await;
        destination_failures(&*store).await;
        destination_failures_race(store.clone()).await;
        webhooks(&*store).await;
        backfill_sweep_index(&store).await;
        issue_sync(&*store).await;
        issue_sync_backfill(&*store).await;
        installations(&*store).await;
        issue_ledger_race(store.clone()).await;
        publications_race(store.clone()).await;
        refresh_leases_race(store).await;
    }
}
