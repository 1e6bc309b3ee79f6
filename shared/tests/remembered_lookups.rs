//! Issue jobs remember what they asked Jira for the next job of the same tenant and site (issue
//! 12, item 2): assignee answers (found for 12 h, not found for 10 min, a failed lookup not at
//! all) and the create screen (10 min), in the lookup cache — never under or holding an email.

mod helpers;

use std::time::Duration;

use bridge::domain::{Product, TenantId};
use bridge::issues::{ActionItem, ItemResult, ItemStatus};
use bridge::settings::AssigneeMatching;
use helpers::jira::Jira;
use helpers::{IssueCreator, Stores, action_item};
use wiremock::MockServer;

const ANA: &str = "Ana.Lima@corp.test";
const BEN: &str = "ben.okafor@corp.test";
const NOBODY: &str = "left.the.company@corp.test";

async fn jira(server: &MockServer) -> Jira {
    let jira = Jira::mount(server).await;
    jira.add_user("acc-ana", ANA);
    jira.add_user("acc-ben", BEN);
    jira
}

/// A function instance whose tenant matches assignees by email.
fn creator(server: &MockServer, stores: &Stores) -> IssueCreator {
    let mut creator = IssueCreator::new(server, stores);
    creator.settings.assignee_matching = AssigneeMatching::Email;
    creator
}

fn assigned(id: &str, email: Option<&str>) -> ActionItem {
    ActionItem { assignee_email: email.map(str::to_owned), ..action_item(id, &format!("Action item {id}")) }
}

/// One team's retrospective: Ana twice (once typed differently), Ben, someone Jira does not
/// know, and an item for nobody.
fn team(job: &str) -> Vec<ActionItem> {
    vec![
        assigned(&format!("{job}-1"), Some(ANA)),
        assigned(&format!("{job}-2"), Some(BEN)),
        assigned(&format!("{job}-3"), Some(" ana.lima@CORP.test ")),
        assigned(&format!("{job}-4"), Some(NOBODY)),
        assigned(&format!("{job}-5"), None),
    ]
}

/// Each result's issue's assignee as Jira received it, and the result's note.
fn assignees(jira: &Jira, results: &[ItemResult]) -> Vec<(Option<String>, Option<String>)> {
    let issues = jira.issues();
    results
        .iter()
        .map(|r| {
            assert_eq!(r.status, ItemStatus::Created, "{r:?}");
            let issue = issues.iter().find(|i| Some(&i.key) == r.key.as_ref()).expect("its issue");
            (issue.assignee.clone(), r.message.clone())
        })
        .collect()
}

fn team_assignees(notes_for_nobody: &str) -> Vec<(Option<String>, Option<String>)> {
    vec![
        (Some("acc-ana".into()), None),
        (Some("acc-ben".into()), None),
        (Some("acc-ana".into()), None),
        (None, Some(notes_for_nobody.into())),
        (None, None),
    ]
}

const NOT_FOUND: &str = "no assignable user in the project has this email (Jira may hide it); left unassigned";

#[tokio::test]
async fn the_next_job_of_the_team_asks_jira_for_no_assignee() {
    let server = MockServer::start().await;
    let jira = jira(&server).await;
    let stores = Stores::new();
    let instance = creator(&server, &stores);

    let first = instance.run(&team("retro-1")).await;
    assert_eq!(assignees(&jira, &first), team_assignees(NOT_FOUND));
    assert_eq!(jira.user_searches().len(), 3, "each distinct person once: {:?}", jira.user_searches());

    // The team's next retrospective, on another (cold) instance: the same people, no lookups,
    // the same assignees and notes.
    let second = creator(&server, &stores).run(&team("retro-2")).await;
    assert_eq!(assignees(&jira, &second), team_assignees(NOT_FOUND));
    assert_eq!(jira.user_searches().len(), 3, "the second job asked Jira: {:?}", jira.user_searches());

    // Per tenant: another tenant asks for itself.
    let mut other_tenant = creator(&server, &stores);
    other_tenant.tenant = TenantId::parse("globex").unwrap();
    other_tenant.run(&team("retro-3")).await;
    assert_eq!(jira.user_searches().len(), 6);

    // Per site: after a re-connect to another Jira site, the same tenant asks again.
    let mut other_site = creator(&server, &stores);
    other_site.session = helpers::session(&server, Product::Jira).with_site_id("another-cloud-id");
    other_site.run(&team("retro-4")).await;
    assert_eq!(jira.user_searches().len(), 9);
}

#[tokio::test]
async fn a_miss_is_remembered_for_minutes_a_match_for_hours_and_a_failed_lookup_not_at_all() {
    let server = MockServer::start().await;
    let jira = jira(&server).await;
    let stores = Stores::new();
    let instance = creator(&server, &stores);
    let searches = || jira.user_searches().len();

    // Jira's user search fails (500, after the transport's retries): unassigned, and not remembered.
    jira.user_search_down(true);
    let [failed] = &instance.run(&[assigned("down-1", Some(ANA))]).await[..] else { panic!() };
    assert_eq!(failed.status, ItemStatus::Created, "{failed:?}");
    assert!(failed.message.as_deref().unwrap_or_default().contains("assignee lookup failed"), "{failed:?}");
    jira.user_search_down(false);
    let before = searches();
    let [found] = &instance.run(&[assigned("up-1", Some(ANA))]).await[..] else { panic!() };
    assert_eq!(searches(), before + 1, "a failed lookup was remembered");
    assert_eq!(found.message, None, "{found:?}");

    // Not found: remembered, so the next job does not ask.
    instance.run(&[assigned("miss-1", Some(NOBODY))]).await;
    let before = searches();
    let [miss] = &instance.run(&[assigned("miss-2", Some(NOBODY))]).await[..] else { panic!() };
    assert_eq!(miss.message.as_deref(), Some(NOT_FOUND));
    assert_eq!(searches(), before, "a miss was asked again at once");

    // Past 10 minutes the miss is asked again (the person may have joined since); the match is not.
    helpers::stores::advance(&stores, Duration::from_secs(11 * 60));
    let before = searches();
    instance.run(&[assigned("later-1", Some(NOBODY)), assigned("later-2", Some(ANA))]).await;
    assert_eq!(jira.user_searches()[before..], [NOBODY.to_owned()]);

    // Past 12 hours the match is asked again too.
    helpers::stores::advance(&stores, Duration::from_secs(12 * 3600));
    let before = searches();
    instance.run(&[assigned("next-day-1", Some(ANA))]).await;
    assert_eq!(searches(), before + 1);
}

#[tokio::test]
async fn no_cache_entry_is_named_by_or_holds_an_email() {
    let server = MockServer::start().await;
    let jira = jira(&server).await;
    // A user whose id is an email address (Server/DC allows one as the user name).
    const CARL: &str = "carl@corp.test";
    jira.add_user(CARL, CARL);
    let stores = Stores::new();
    let instance = creator(&server, &stores);

    let mut items = team("retro-1");
    items.push(assigned("retro-1-6", Some(CARL)));
    let results = instance.run_asking_for_the_screen(&items).await;
    assert!(results.iter().all(|r| r.status == ItemStatus::Created), "{results:#?}");

    let entries = stores.lookups.entries();
    // Ana, Ben, the miss and the create screen; not Carl, whose id is his address.
    assert_eq!(entries.len(), 4, "{entries:#?}");
    for (tenant, key, value) in &entries {
        assert_eq!(tenant, helpers::TENANT);
        for text in [key, value] {
            let text = text.to_lowercase();
            assert!(!text.contains('@'), "{text}");
            for email in [ANA, BEN, NOBODY, CARL] {
                let local = email.split('@').next().unwrap().to_lowercase();
                assert!(!text.contains(&local), "{text} holds {local}");
            }
        }
    }
    // So Carl is looked up by every job.
    let before = jira.user_searches().len();
    instance.run(&[assigned("retro-2-1", Some(CARL))]).await;
    assert_eq!(jira.user_searches().len(), before + 1);
}

#[tokio::test]
async fn the_create_screen_is_asked_for_once_in_ten_minutes_per_tenant() {
    let server = MockServer::start().await;
    let jira = jira(&server).await;
    let stores = Stores::new();
    let instance = creator(&server, &stores);

    instance.run_asking_for_the_screen(&team("retro-1")).await;
    assert_eq!(jira.createmeta_requests(), 1);
    let second = creator(&server, &stores).run_asking_for_the_screen(&team("retro-2")).await;
    assert_eq!(assignees(&jira, &second), team_assignees(NOT_FOUND), "the cached screen serves as Jira's did");
    assert_eq!(jira.createmeta_requests(), 1, "the second job asked for the create screen");

    let mut other_tenant = creator(&server, &stores);
    other_tenant.tenant = TenantId::parse("globex").unwrap();
    other_tenant.run_asking_for_the_screen(&team("retro-3")).await;
    assert_eq!(jira.createmeta_requests(), 2);

    // An admin's change to the screen applies within minutes.
    helpers::stores::advance(&stores, Duration::from_secs(11 * 60));
    instance.run_asking_for_the_screen(&team("retro-4")).await;
    assert_eq!(jira.createmeta_requests(), 3);
}

#[tokio::test]
async fn a_failing_cache_never_fails_the_job() {
    let server = MockServer::start().await;
    let jira = jira(&server).await;
    let stores = Stores::new();
    let instance = creator(&server, &stores);
    // Every read and write of this job fails: the create screen's and the assignees'.
    for operation in ["LookupCache::get_many", "LookupCache::put_many"] {
        stores.faults.fail_next(operation);
        stores.faults.fail_next(operation);
    }

    let results = instance.run_asking_for_the_screen(&team("retro-1")).await;
    assert_eq!(assignees(&jira, &results), team_assignees(NOT_FOUND));
    assert_eq!((jira.createmeta_requests(), jira.user_searches().len()), (1, 3));

    // Nothing was remembered, so the next job asks again (and remembers, this time).
    instance.run_asking_for_the_screen(&team("retro-2")).await;
    assert_eq!((jira.createmeta_requests(), jira.user_searches().len()), (2, 6));
    instance.run_asking_for_the_screen(&team("retro-3")).await;
    assert_eq!((jira.createmeta_requests(), jira.user_searches().len()), (2, 6));
}
