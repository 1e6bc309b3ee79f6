//! Links both ways between a report's Confluence page and the Jira issues of its action items.
//!
//! - Page → issues: every rendering of the page fills [`super::Rendering::issues`] from the issue
//!   ledger ([`issues_for_report`]). The page record keeps the [`digest`] of the links it was
//!   last written with, and the report itself ([`keep`]), so that when issues are created after
//!   the page (`Report Issues Created`, create-issue → publish-page), publish-page writes the
//!   page again once per new set of links and not at all for a set it wrote already.
//! - Issue → page: a remote link on each issue (`issue/{key}/remotelink`) whose `globalId`
//!   ([`global_id`]) names the page, so adding it again updates the one link.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{IssueLink, Report};
use crate::domain::{Connection, TenantId};
use crate::ids::{ItemId, ReportId, SiteId};
use crate::store::{CreatedItem, IssueLedger, ItemFilter, LIST_SCAN, StoreError};

/// The largest compressed report kept with the page record: DynamoDB items hold at most 400 KB,
/// and the record's other fields are small. A report whose compressed JSON is larger (JSON of
/// the 2,000 items a report may hold compresses to a fraction of this) is not kept: its page gets
/// the links of later issues at its next publication, not at once.
pub const MAX_KEPT_REPORT: usize = 300 * 1024;

/// A digest of a set of issue links: equal for equal sets, whatever order they came in.
pub fn digest(issues: &BTreeMap<String, IssueLink>) -> String {
    let mut hash = Sha256::new();
    for (item, link) in issues {
        for part in [item.as_str(), link.key.as_str(), link.url.as_str()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
    }
    hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The report as gzip-compressed JSON, or `None` when that exceeds [`MAX_KEPT_REPORT`].
pub fn keep(report: &Report) -> Option<Vec<u8>> {
    let json = serde_json::to_vec(report).ok()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).ok()?;
    let bytes = gz.finish().ok()?;
    (bytes.len() <= MAX_KEPT_REPORT).then_some(bytes)
}

/// The report [`keep`] kept; `None` for bytes that are not one (read at most 16 MiB of JSON).
pub fn kept(bytes: &[u8]) -> Option<Report> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes).take(16 << 20).read_to_end(&mut json).ok()?;
    serde_json::from_slice(&json).ok()
}

/// The remote link's `globalId` for a page: one per page and site (page ids are numbered per
/// site). Jira takes at most 255 characters; a site named by a long base URL is hashed to fit.
pub fn global_id(site: &str, page_id: &str) -> String {
    let id = format!("bridge:confluence-page:{site}:{page_id}");
    if id.len() <= 255 {
        return id;
    }
    let hashed: String = Sha256::digest(site.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("bridge:confluence-page:{hashed}:{page_id}")
}

/// Where people open the issues of a Jira site: a base URL site id (Server/DC, Cloud API-token
/// connections) is its own web root; a Cloud cloudId is the tenant's Jira connection's site when
/// it is that one. `None`: an issue on a site no longer connected, which gets no link.
pub fn browse_root(site: &SiteId, jira: Option<&Connection>) -> Option<String> {
    let id = site.as_str();
    if id.starts_with("https://") || id.starts_with("http://") {
        return Some(id.trim_end_matches('/').to_owned());
    }
    let connection = jira?;
    connection
        .site
        .iter()
        .chain(connection.candidate_sites.iter())
        .find(|s| s.cloud_id == id)
        .map(|s| s.url.trim_end_matches('/').to_owned())
}

/// The report's action items whose issues exist (not deleted), from the ledger's records that
/// carry the report's id, a page ([`LIST_SCAN`] records) at a time.
pub async fn report_items(
    ledger: &dyn IssueLedger,
    tenant: &TenantId,
    report_id: &ReportId,
) -> Result<Vec<CreatedItem>, StoreError> {
    let filter = ItemFilter { report_id: Some(report_id.clone()), status_category: None };
    let mut items = Vec::new();
    let mut after: Option<ItemId> = None;
    loop {
        let page = ledger.list_items(tenant, &filter, after.as_ref(), LIST_SCAN).await?;
        items.extend(page.items.into_iter().filter(|i| !i.deleted));
        match page.resume_after {
            Some(next) => after = Some(next),
            None => return Ok(items),
        }
    }
}

/// [`report_items`] as the page links them: item id → key and browse URL.
pub async fn issues_for_report(
    ledger: &dyn IssueLedger,
    tenant: &TenantId,
    report_id: &ReportId,
    jira: Option<&Connection>,
) -> Result<BTreeMap<String, IssueLink>, StoreError> {
    let mut links = BTreeMap::new();
    for item in report_items(ledger, tenant, report_id).await? {
        let Some(root) = item.site.as_ref().and_then(|s| browse_root(s, jira)) else { continue };
        let url = format!("{root}/browse/{}", item.key);
        links.insert(item.item_id.into_string(), IssueLink { key: item.key.into_string(), url });
    }
    Ok(links)
}

/// One action item's issue, as the link events name it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkedIssue {
    pub action_item_id: String,
    pub key: String,
    pub url: String,
}

/// `Report Issues Created`: create-issue created issues for action items of a report; the
/// bridge sends it to itself (its rule matches only the bridge's own source) so that
/// publish-page, which alone holds a Confluence session, links them from the report's page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportIssuesCreated {
    pub tenant_id: String,
    /// The issue job's idempotency key and the report: one event per report of a job.
    pub idempotency_key: String,
    pub report_id: String,
    /// The issues this job created or found for the report's items (the page links every issue
    /// of the report the ledger has, these and earlier ones).
    pub issues: Vec<LinkedIssue>,
}

/// `Report Page Linked`: how publish-page answered `Report Issues Created`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportPageLinked {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub report_id: String,
    /// Whether the page was written again (a new set of links); `false` when it links exactly
    /// these issues already, or there is nothing to write (`note` says why).
    pub updated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    /// The page version written, when `updated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The issues the page links.
    pub issues: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One issue's remote link to its report's page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoteLinkResult {
    pub key: String,
    /// Added (or updated in place: the same `globalId`).
    pub linked: bool,
    /// Why not: Jira refused (no Link Issues permission, 403) or the issue is gone (404). Neither
    /// fails the job nor touches the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `Remote Links Added`: how create-issue answered the bridge's own `Page Published` — a remote
/// link from each of the report's issues to the page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoteLinksAdded {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub report_id: String,
    pub page_id: String,
    pub results: Vec<RemoteLinkResult>,
}

impl crate::events::DetailType for ReportIssuesCreated {
    const DETAIL_TYPE: &'static str = "Report Issues Created";
}

impl crate::events::DetailType for ReportPageLinked {
    const DETAIL_TYPE: &'static str = "Report Page Linked";
}

impl crate::events::DetailType for RemoteLinksAdded {
    const DETAIL_TYPE: &'static str = "Remote Links Added";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(key: &str) -> IssueLink {
        IssueLink { key: key.into(), url: format!("https://acme.atlassian.net/browse/{key}") }
    }

    #[test]
    fn the_digest_names_the_set_of_links() {
        let a: BTreeMap<_, _> = [("a-1".to_owned(), link("ENG-1")), ("a-2".to_owned(), link("ENG-2"))].into();
        let b: BTreeMap<_, _> = [("a-2".to_owned(), link("ENG-2")), ("a-1".to_owned(), link("ENG-1"))].into();
        assert_eq!(digest(&a), digest(&b), "the same set in another order");
        let mut c = a.clone();
        c.insert("a-3".into(), link("ENG-3"));
        assert_ne!(digest(&a), digest(&c), "one more issue");
        let mut d = a.clone();
        d.insert("a-1".into(), link("ENG-9"));
        assert_ne!(digest(&a), digest(&d), "another issue for an item");
        assert_ne!(digest(&BTreeMap::new()), digest(&a));
        // Parts are length-prefixed: moving a character between them changes the digest.
        let e: BTreeMap<_, _> = [("a".to_owned(), IssueLink { key: "bc".into(), url: "u".into() })].into();
        let f: BTreeMap<_, _> = [("ab".to_owned(), IssueLink { key: "c".into(), url: "u".into() })].into();
        assert_ne!(digest(&e), digest(&f));
    }

    #[test]
    fn a_kept_report_reads_back_and_a_huge_one_is_not_kept() {
        let report = super::super::tests::retrospective(&["Went well"]);
        let bytes = keep(&report).unwrap();
        let back = kept(&bytes).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&report).unwrap());
        assert!(kept(b"not gzip").is_none());
        // Text that does not compress: 400 items of ~5,000 random characters.
        let noise: Vec<String> = (0..400)
            .map(|i| {
                (0..5_000 / 32)
                    .flat_map(|j| Sha256::digest(format!("{i}/{j}").as_bytes()))
                    .map(|b| char::from(b'!' + b % 90))
                    .collect()
            })
            .collect();
        let huge = super::super::tests::retrospective(&noise.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(keep(&huge).is_none());
    }

    #[test]
    fn global_ids_fit_jira_and_name_site_and_page() {
        assert_eq!(global_id("cloud-1", "42"), "bridge:confluence-page:cloud-1:42");
        let long = format!("https://wiki.example.test/{}", "x".repeat(300));
        let id = global_id(&long, "42");
        assert!(id.len() <= 255 && id.ends_with(":42"));
        assert_ne!(id, global_id(&format!("{long}y"), "42"));
    }

    #[test]
    fn browse_roots_follow_the_site_id() {
        let dc = SiteId::new("https://jira.example.test/");
        assert_eq!(browse_root(&dc, None).as_deref(), Some("https://jira.example.test"));
        assert_eq!(browse_root(&SiteId::new("cloud-1"), None), None);
    }
}
