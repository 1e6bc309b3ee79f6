//! Creating issues in bulk (`IssueJob`) against a Jira that keeps its issues: partial bulk
//! failures and the rerun after them, a lost answer, crashes, and concurrent deliveries.

mod helpers;

use std::sync::Arc;
use std::time::Duration;

use bridge::issues::{ItemResult, ItemStatus};
use helpers::jira::{Jira, Rejection};
use helpers::{IssueCreator, Stores, action_item, concurrently, issue_marker};
use wiremock::MockServer;

fn items() -> Vec<bridge::issues::ActionItem> {
    vec![
        action_item("ai-1", "Automate the release notes"),
        action_item("ai-2", "Fix the flaky login test"),
        action_item("ai-3", "Document the on-call rota"),
        action_item("ai-4", "Upgrade the build agents"),
    ]
}

fn status_and_key(results: &[ItemResult]) -> Vec<(&str, ItemStatus, Option<&str>)> {
    results.iter().map(|r| (r.action_item_id.as_str(), r.status, r.key.as_deref())).collect()
}

/// Every item has exactly one issue in Jira, carrying its marker, and its result names it.
fn assert_one_issue_per_item(jira: &Jira, results: &[ItemResult]) {
    assert_eq!(jira.issues().len(), results.len(), "{:#?}", jira.issues());
    for r in results {
        let carrying = jira.issues_labelled(&issue_marker(&r.action_item_id));
        assert_eq!(carrying.len(), 1, "{}: {carrying:#?}", r.action_item_id);
        assert_eq!(r.key.as_deref(), Some(carrying[0].key.as_str()), "{r:?}");
        assert_eq!(r.url.as_deref(), Some(&*format!("https://acme.atlassian.net/browse/{}", carrying[0].key)));
    }
}

#[tokio::test]
async fn a_partial_bulk_failure_reports_each_item_and_the_rerun_creates_only_the_rest() {
    let server = MockServer::start().await;
    let jira = Jira::mount(&server).await;
    let stores = Stores::new();
    let creator = IssueCreator::new(&server, &stores);
    jira.reject_once(
        "Fix the flaky login test",
        Rejection { status: 400, field: "summary".into(), message: "The summary is invalid".into() },
    );
    jira.reject_once(
        "Upgrade the build agents",
        Rejection { status: 503, field: "project".into(), message: "Try again later".into() },
    );

    let first = creator.run(&items()).await;

    assert_eq!(
        status_and_key(&first),
        [
            ("ai-1", ItemStatus::Created, Some("ENG-1")),
            ("ai-2", ItemStatus::Failed, None),
            ("ai-3", ItemStatus::Created, Some("ENG-2")),
            ("ai-4", ItemStatus::Failed, None),
        ]
    );
    assert!(first[1].message.as_deref().unwrap_or_default().contains("The summary is invalid"), "{:?}", first[1]);
    assert!(!first[1].retryable, "Jira refused the element itself: {:?}", first[1]);
    assert!(first[3].retryable, "Jira was busy for this element: {:?}", first[3]);
    assert_eq!(jira.issues().len(), 2);

    // The event again (the SaaS retries the failed items with the same ids).
    let second = creator.run(&items()).await;

    assert_eq!(
        status_and_key(&second),
        [
            ("ai-1", ItemStatus::Existing, Some("ENG-1")),
            ("ai-2", ItemStatus::Created, Some("ENG-3")),
            ("ai-3", ItemStatus::Existing, Some("ENG-2")),
            ("ai-4", ItemStatus::Created, Some("ENG-4")),
        ]
    );
    let requests = jira.bulk_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1], ["Fix the flaky login test", "Upgrade the build agents"], "only the missing ones are sent");
    assert_one_issue_per_item(&jira, &second);

    // Once more: nothing left to create, nothing sent.
    let third = creator.run(&items()).await;
    assert!(third.iter().all(|r| r.status == ItemStatus::Existing), "{third:#?}");
    assert_eq!(jira.bulk_requests().len(), 2);
}

/// Jira created the issues but its answer was lost (503 on a POST, which the transport never
/// repeats): the items stay pending and the rerun finds their issues by marker.
#[tokio::test]
async fn issues_whose_answer_was_lost_are_found_by_marker_not_created_again() {
    let server = MockServer::start().await;
    let jira = Jira::mount(&server).await;
    let stores = Stores::new();
    let creator = IssueCreator::new(&server, &stores);
    jira.lose_next_answer();

    let first = creator.run(&items()).await;
    assert!(first.iter().all(|r| r.status == ItemStatus::Failed && r.retryable), "{first:#?}");
    assert_eq!(jira.bulk_requests().len(), 1, "a POST that failed with 5xx is not repeated blindly");
    assert_eq!(jira.issues().len(), 4, "Jira did create them");

    let second = creator.run(&items()).await;
    assert!(second.iter().all(|r| r.status == ItemStatus::Existing), "{second:#?}");
    assert_eq!(jira.bulk_requests().len(), 1, "nothing was sent again");
    assert_one_issue_per_item(&jira, &second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_job_create_each_issue_once_and_agree() {
    let server = MockServer::start().await;
    let jira = Jira::mount(&server).await;
    let stores = Stores::new();
    let creators: Vec<_> = (0..5).map(|_| Arc::new(IssueCreator::new(&server, &stores))).collect();
    let items = Arc::new(items());

    let answers = concurrently(5, |i| {
        let (creator, items) = (creators[i].clone(), items.clone());
        async move { creator.run(&items).await }
    })
    .await;

    assert_eq!(jira.issues().len(), 4, "{:#?}", jira.issues());
    for answer in &answers {
        assert_one_issue_per_item(&jira, answer);
        assert!(answer.iter().all(|r| matches!(r.status, ItemStatus::Created | ItemStatus::Existing)), "{answer:#?}");
    }
    let created = answers.iter().flatten().filter(|r| r.status == ItemStatus::Created).count();
    assert_eq!(created, 4, "each item is reported created by exactly one delivery");
}

/// A delivery held up past its lease (here by a slow user directory) must not send its creates
/// once another delivery has taken the items over and created them: before a late chunk goes
/// out its leases are renewed, and the items that are no longer ours are left out. (Before, the
/// late delivery sent them anyway and every issue was created twice.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_held_up_past_its_lease_sends_nothing_another_took_over() {
    let server = MockServer::start().await;
    let jira = Jira::mount(&server).await;
    jira.add_user("557058:ada", "ada@acme.test");
    jira.slow_user_search(Duration::from_millis(800));
    let stores = Stores::new();
    let items: Vec<_> = items()
        .into_iter()
        .map(|mut item| {
            item.assignee_email = Some("ada@acme.test".into());
            item
        })
        .collect();
    let items = Arc::new(items);
    let creators: Vec<_> = (0..2)
        .map(|_| {
            let mut creator = IssueCreator::new(&server, &stores);
            creator.settings.assignee_matching = bridge::settings::AssigneeMatching::Email;
            creator.lease = Duration::from_millis(200);
            Arc::new(creator)
        })
        .collect();

    // Both start together: one claims the items and waits on the directory past its lease; the
    // other, finding them held, takes them over once the lease has lapsed.
    let answers = concurrently(2, |i| {
        let (creator, items) = (creators[i].clone(), items.clone());
        async move { creator.run(&items).await }
    })
    .await;

    assert_eq!(jira.issues().len(), 4, "{:#?}", jira.issues());
    let created = answers.iter().flatten().filter(|r| r.status == ItemStatus::Created).count();
    assert_eq!(created, 4, "{answers:#?}");
    let left_out = answers.iter().flatten().filter(|r| r.status == ItemStatus::Failed && r.retryable).count();
    assert_eq!(left_out, 4, "the late delivery answers its items as retryable, not created: {answers:#?}");
}

/// A 300-item job: the ledger's conditional claims and records overlap (bounded), every item
/// still gets exactly one issue, in chunks of at most 50, and the results keep the items' order.
/// (Before the ledger steps ran concurrently, the peak was 1: one round trip after another.)
#[tokio::test]
async fn a_large_job_overlaps_its_ledger_round_trips_within_the_bound() {
    let server = MockServer::start().await;
    let jira = Jira::mount(&server).await;
    let stores = Stores::new();
    let creator = IssueCreator::new(&server, &stores);
    let items: Vec<_> = (0..300).map(|i| action_item(&format!("ai-{i}"), &format!("Action item {i}"))).collect();

    let results = creator.run(&items).await;

    assert!(results.iter().all(|r| r.status == ItemStatus::Created), "{results:#?}");
    let order: Vec<_> = results.iter().map(|r| r.action_item_id.clone()).collect();
    assert_eq!(order, items.iter().map(|i| i.id.clone()).collect::<Vec<_>>());
    assert_one_issue_per_item(&jira, &results);
    let calls = jira.bulk_requests();
    assert_eq!(calls.len(), 6, "{:?}", calls.iter().map(Vec::len).collect::<Vec<_>>());
    assert!(calls.iter().all(|c| c.len() <= 50));
    let peak = stores.round_trips.peak();
    assert!((2..=bridge::issues::LEDGER_IN_FLIGHT).contains(&peak), "ledger round trips in flight at once: {peak}");

    // A redelivery of the same job reads the ledger and creates nothing.
    let again = creator.run(&items).await;
    assert!(again.iter().all(|r| r.status == ItemStatus::Existing), "{again:#?}");
    assert_eq!(jira.bulk_requests().len(), 6);
}

#[cfg(feature = "fault-injection")]
mod crashes {
    use std::time::Duration;

    use super::*;
    use helpers::{CrashSwitch, LEASE};

    /// Jira created the issues and the instance died before the ledger recorded them: the
    /// redelivery, once the crashed claims lapse, finds every issue by its marker.
    #[tokio::test]
    async fn a_crash_after_the_bulk_create_is_finished_without_creating_again() {
        let server = MockServer::start().await;
        let jira = Jira::mount(&server).await;
        let stores = Stores::new();

        let crashed = IssueCreator::new(&server, &stores);
        let ran = CrashSwitch::at("issues_created").run(crashed.run(&items())).await;
        assert!(ran.crashed(), "{ran:?}");
        assert_eq!(jira.issues().len(), 4);

        helpers::stores::advance(&stores, LEASE + Duration::from_secs(1));
        let redelivery = IssueCreator::new(&server, &stores);
        let results = redelivery.run(&items()).await;

        assert!(results.iter().all(|r| r.status == ItemStatus::Existing), "{results:#?}");
        assert_eq!(jira.bulk_requests().len(), 1, "no second bulk create");
        assert_one_issue_per_item(&jira, &results);
    }
}
