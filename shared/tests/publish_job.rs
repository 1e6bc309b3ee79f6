//! Publishing a report (`PublishJob`) against a Confluence that keeps its pages: crashes after
//! every step and the redelivery that follows, and deliveries that run at the same time.

mod helpers;

use std::sync::Arc;
use std::time::Duration;

use bridge::reports::PublicationState;
use helpers::confluence::Confluence;
use helpers::{CLOUD_ID, Ended, LEASE, Publisher, Stores, concurrently, page_marker, retrospective};
use wiremock::MockServer;

const REPORT: &str = "retro-42";
const TITLE: &str = "Sprint 42 retrospective";

/// What every finished publication must leave in Confluence and in its record: one page for the
/// report (under its parent, titled as the report), one attachment on it, the record published
/// and pointing at both. Returns the page's and the attachment's versions.
async fn assert_published_once(confluence: &Confluence, publisher: &Publisher, key: &str) -> (u64, u64) {
    let ours = confluence.pages_carrying(&page_marker(REPORT));
    assert_eq!(ours.len(), 1, "one page carries the report's marker: {ours:#?}");
    let page = &ours[0];
    assert_eq!(page.title, TITLE, "the page took the first candidate title");
    assert_eq!(
        confluence.pages().len(),
        2,
        "the parent and the report's page, nothing else: {:#?}",
        confluence.pages()
    );
    let parent = confluence.page(page.parent_id.as_deref().unwrap_or_default()).expect("the page has a parent");
    assert_eq!(parent.title, "Retrospectives");

    let attachments = confluence.attachments_of(&page.id);
    assert_eq!(attachments.len(), 1, "one PDF on the page: {attachments:#?}");
    assert_eq!(attachments[0].filename, "retrospective-retro-42.pdf");

    let record = publisher.record(key).await.expect("the publication is recorded");
    assert_eq!(record.state, PublicationState::Published);
    assert_eq!(record.page_id.as_deref(), Some(page.id.as_str()));
    assert_eq!(record.attachment_id.as_deref(), Some(attachments[0].id.as_str()));
    assert_eq!(record.site.as_deref(), Some(CLOUD_ID));
    assert_eq!(record.version, Some(page.version), "the record names the version written last");
    (page.version, attachments[0].versions)
}

#[tokio::test]
async fn a_single_delivery_publishes_one_page_with_its_pdf() {
    let server = MockServer::start().await;
    let confluence = Confluence::mount(&server).await;
    let publisher = Publisher::new(&server, &Stores::new());

    let publication = publisher.run(&retrospective(REPORT), "key-1").await.published();

    assert_eq!(assert_published_once(&confluence, &publisher, "key-1").await, (1, 1));
    assert_eq!(confluence.created(), 2, "the parent and the page");
    let page_id = publication.page_id.unwrap();
    assert_eq!(
        publication.page_url.as_deref(),
        Some(&*format!("https://acme.atlassian.net/wiki/spaces/ENG/pages/{page_id}"))
    );

    // Delivered again: answered from the record, nothing written.
    let before = server.received_requests().await.unwrap().len();
    let again = publisher.run(&retrospective(REPORT), "key-1").await.published();
    assert_eq!(again.page_id.as_deref(), Some(page_id.as_str()));
    assert_eq!(server.received_requests().await.unwrap().len(), before, "a finished publication calls nobody");
}

/// Five deliveries of one event at once (five instances): one does the work, the others wait
/// for it and answer the same publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_key_publish_once_and_agree() {
    let server = MockServer::start().await;
    let confluence = Confluence::mount(&server).await;
    let stores = Stores::new();
    let report = Arc::new(retrospective(REPORT));
    let publishers: Vec<_> = (0..5).map(|_| Arc::new(Publisher::new(&server, &stores))).collect();

    let outcomes = concurrently(5, |i| {
        let (publisher, report) = (publishers[i].clone(), report.clone());
        async move { publisher.run(&report, "key-1").await }
    })
    .await;

    let published: Vec<_> = outcomes.into_iter().map(Ended::published).collect();
    for p in &published {
        assert_eq!((&p.page_id, &p.attachment_id), (&published[0].page_id, &published[0].attachment_id));
        assert_eq!(p.state, PublicationState::Published);
    }
    // Only one delivery wrote: the page was never updated, the PDF uploaded once.
    assert_eq!(assert_published_once(&confluence, &publishers[0], "key-1").await, (1, 1));
    assert_eq!(confluence.created(), 2);
}

/// Different idempotency keys for the same report (the SaaS sent it twice) are different
/// publications that run truly in parallel — the lease does not serialize them. Confluence's
/// title rule and the page marker must still leave one page with one attachment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publications_of_one_report_share_its_page() {
    let server = MockServer::start().await;
    let confluence = Confluence::mount(&server).await;
    let stores = Stores::new();
    let report = Arc::new(retrospective(REPORT));
    let publishers: Vec<_> = (0..4).map(|_| Arc::new(Publisher::new(&server, &stores))).collect();

    let outcomes = concurrently(4, |i| {
        let (publisher, report) = (publishers[i].clone(), report.clone());
        async move { publisher.run(&report, &format!("key-{i}")).await }
    })
    .await;

    let ours = confluence.pages_carrying(&page_marker(REPORT));
    assert_eq!(ours.len(), 1, "one page for the report: {:#?}", confluence.pages());
    assert_eq!(confluence.pages().len(), 2, "one parent, one page: {:#?}", confluence.pages());
    assert_eq!(confluence.attachments_of(&ours[0].id).len(), 1);
    for outcome in outcomes {
        match outcome {
            Ended::Published(p) => assert_eq!(p.page_id.as_deref(), Some(ours[0].id.as_str())),
            // Racing page updates may run out of conflict retries: retried later, never duplicated.
            Ended::Stopped(code) => assert!(code.retried(), "{code:?}"),
            Ended::Failed(p) => panic!("a publication failed for good: {p:?}"),
        }
    }
}

#[cfg(feature = "fault-injection")]
mod crashes {
    use super::*;
    use helpers::CrashSwitch;

    /// Crashes a delivery at `step`, lets its lease lapse (its instance is gone), and redelivers
    /// on another instance. Returns the site, the redelivery's publisher, and the requests the
    /// redelivery made.
    async fn crash_at_then_redeliver(step: &str) -> (Confluence, Publisher, usize) {
        let server = MockServer::start().await;
        let confluence = Confluence::mount(&server).await;
        let stores = Stores::new();
        let report = retrospective(REPORT);

        let crashed = Publisher::new(&server, &stores);
        let ran = CrashSwitch::at(step).run(crashed.run(&report, "key-1")).await;
        assert!(ran.crashed(), "the delivery never reached {step}: {ran:?}");
        let before = server.received_requests().await.unwrap().len();
        let id = bridge::reports::publication_id(&helpers::tenant(), "key-1");
        let held = stores.publications.holder(&helpers::tenant(), &id);
        if step == "record_written" {
            assert_eq!(held, None, "a published record holds no lease");
        } else {
            // The dead delivery still holds it: the redelivery must take it over, not share it.
            assert!(held.is_some(), "the crashed delivery's lease is still live");
        }

        helpers::stores::advance(&stores, LEASE + Duration::from_secs(1));
        let redelivery = Publisher::new(&server, &stores);
        let publication = redelivery.run(&report, "key-1").await.published();
        assert_eq!(publication.state, PublicationState::Published);
        let made = server.received_requests().await.unwrap().len() - before;
        (confluence, redelivery, made)
    }

    /// The page exists but nothing recorded it: the redelivery must find it by title and marker
    /// and update it, not create a second page under the next candidate title.
    #[tokio::test]
    async fn a_crash_after_the_page_was_created_is_finished_on_that_page() {
        let (confluence, publisher, _) = crash_at_then_redeliver("page_created").await;
        let (page_version, pdf_versions) = assert_published_once(&confluence, &publisher, "key-1").await;
        assert_eq!(page_version, 2, "the crashed delivery's page was found and updated");
        assert_eq!(pdf_versions, 1);
        assert_eq!(confluence.created(), 2, "no second create was even attempted successfully");
    }

    /// The PDF is on the page but the record says only the page was written: the upload is
    /// repeated as a new version of the same attachment.
    #[tokio::test]
    async fn a_crash_after_the_upload_adds_a_version_not_a_second_attachment() {
        let (confluence, publisher, _) = crash_at_then_redeliver("attachment_uploaded").await;
        let (page_version, pdf_versions) = assert_published_once(&confluence, &publisher, "key-1").await;
        assert_eq!(page_version, 1, "the page step was recorded and is not repeated");
        assert_eq!(pdf_versions, 2, "uploaded again under the same file name");
    }

    /// Everything was recorded: the redelivery answers the record and writes nothing.
    #[tokio::test]
    async fn a_crash_after_the_record_was_written_is_answered_from_the_record() {
        let (confluence, publisher, made) = crash_at_then_redeliver("record_written").await;
        assert_eq!(assert_published_once(&confluence, &publisher, "key-1").await, (1, 1));
        assert_eq!(made, 0, "the redelivery called Confluence");
    }
}
