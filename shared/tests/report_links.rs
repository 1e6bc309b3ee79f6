//! A report's page links its action items' issues: the first write of the page renders the
//! issues the ledger has, and `Report Issues Created` (`PublishJob::relink`) writes the page
//! again only when the set of issues changed since — once per new set, however often and however
//! concurrently it is delivered.

mod helpers;

use std::sync::Arc;

use bridge::ids::{IssueId, IssueKey, ItemId, ReportId, SiteId};
use bridge::reports::Relinked;
use bridge::store::{Claim, IssueLedger, RecordedIssue};
use helpers::confluence::Confluence;
use helpers::{LEASE, Publisher, Stores, concurrently, page_marker, retrospective};
use wiremock::MockServer;

const REPORT: &str = "retro-7";
/// A Jira site named by its base URL (Server/DC, Cloud API-token connections): its own web root.
const JIRA: &str = "https://jira.example.test";

/// The ledger records that `item` of the report became `key`, as create-issue's job does.
async fn issue_created(stores: &Stores, item: &str, key: &str) {
    let tenant = helpers::tenant();
    let until = time::OffsetDateTime::now_utc() + LEASE;
    let claim = stores.ledger.claim(&tenant, &ItemId::new(item), "job", until).await.unwrap();
    assert!(matches!(claim, Claim::Ours(_)), "{claim:?}");
    let issue = RecordedIssue {
        key: IssueKey::new(key),
        id: IssueId::new(format!("1{}", key.len())),
        site: SiteId::new(JIRA),
        report_id: Some(ReportId::parse(REPORT).unwrap()),
    };
    stores.ledger.complete(&tenant, &ItemId::new(item), "job", &issue).await.unwrap();
}

fn our_page(confluence: &Confluence) -> helpers::confluence::Page {
    let [page] = <[_; 1]>::try_from(confluence.pages_carrying(&page_marker(REPORT))).expect("one page");
    page
}

#[tokio::test]
async fn issues_after_the_page_write_it_once_per_new_set() {
    let server = MockServer::start().await;
    let confluence = Confluence::mount(&server).await;
    let stores = Stores::new();
    let publisher = Arc::new(Publisher::new(&server, &stores));
    publisher.run(&retrospective(REPORT), "key-1").await.published();
    assert_eq!(our_page(&confluence).version, 1);

    // Nothing new: nothing written.
    assert!(matches!(publisher.relink(REPORT).await, Relinked::Unchanged { issues: 0, .. }));
    assert_eq!(our_page(&confluence).version, 1);

    issue_created(&stores, "a-1", "ENG-1").await;
    let answers = concurrently(4, |_| {
        let publisher = publisher.clone();
        async move { publisher.relink(REPORT).await }
    })
    .await;
    let updated = answers.iter().filter(|a| matches!(a, Relinked::Updated { .. })).count();
    assert_eq!(updated, 1, "one delivery writes the page, the others find it linked: {answers:?}");
    assert_eq!(our_page(&confluence).version, 2);

    // Redelivered: the digest on the record matches, nothing is written.
    assert!(matches!(publisher.relink(REPORT).await, Relinked::Unchanged { issues: 1, .. }));
    assert_eq!(our_page(&confluence).version, 2);

    // Another issue: one more version.
    issue_created(&stores, "a-2", "ENG-2").await;
    assert!(matches!(publisher.relink(REPORT).await, Relinked::Updated { version: 3, issues: 2, .. }));
    assert!(matches!(publisher.relink(REPORT).await, Relinked::Unchanged { .. }));
    assert_eq!(our_page(&confluence).version, 3);
    let attachments = confluence.attachments_of(&our_page(&confluence).id);
    assert_eq!(attachments.len(), 1, "the PDF went up again as a new version of the one attachment");
}

#[tokio::test]
async fn issues_before_the_page_are_linked_by_its_first_version() {
    let server = MockServer::start().await;
    let confluence = Confluence::mount(&server).await;
    let stores = Stores::new();
    let publisher = Publisher::new(&server, &stores);
    issue_created(&stores, "a-1", "ENG-1").await;
    // No page yet: nothing to write (and no Confluence call).
    assert_eq!(publisher.relink(REPORT).await, Relinked::Skipped("no page yet"));
    assert!(server.received_requests().await.unwrap().is_empty());

    publisher.run(&retrospective(REPORT), "key-1").await.published();
    assert_eq!(our_page(&confluence).version, 1);
    assert!(matches!(publisher.relink(REPORT).await, Relinked::Unchanged { issues: 1, .. }));
    assert_eq!(our_page(&confluence).version, 1, "the first version already links the issue");
}
