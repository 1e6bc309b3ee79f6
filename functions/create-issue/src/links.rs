//! Links from issues to their report's page: a remote link on each issue of a report whose page
//! is published (`issue/{key}/remotelink`, idempotent by its `globalId`), added when the issues
//! are created after the page, or — on the bridge's own `Page Published` — when the page comes
//! after them; and `Report Issues Created`, which tells publish-page to link the new issues from
//! the page. See `bridge::reports::links`.

use std::collections::BTreeMap;

use bridge::atlassian::jira::issues::{self, RemoteLink};
use bridge::atlassian::{AtlassianError, Class, Session};
use bridge::domain::{Product, TenantId};
use bridge::error::ApiError;
use bridge::events::EventBus;
use bridge::ids::{IssueKey, ReportId};
use bridge::issues::{ItemResult, ItemStatus};
use bridge::jobs::JobOutcome;
use bridge::reports::PagePublished;
use bridge::reports::links::{
    LinkedIssue, RemoteLinkResult, RemoteLinksAdded, ReportIssuesCreated, global_id, report_items,
};
use bridge::store::{ConnectionStore, IssueLedger, PublicationStore, ReportPage};

/// Remote-link calls of one job in flight at once (one small POST each).
const LINKS_IN_FLIGHT: usize = 4;

/// What linking uses.
pub struct Linker<'a> {
    pub publications: &'a dyn PublicationStore,
    pub ledger: &'a dyn IssueLedger,
    pub connections: &'a dyn ConnectionStore,
}

/// The remote link to a report's page, when its record knows the page's address.
fn link_to(page: &ReportPage) -> Option<(String, String, String)> {
    let url = page.url.clone()?;
    let site = page.site.as_ref()?.to_string();
    let title = page.title.clone().unwrap_or_else(|| url.clone());
    Some((global_id(&site, page.page_id.as_str()), url, title))
}

/// Adds the remote link to one issue. `Ok(None)`: added; `Ok(Some(why))`: Jira refused it for
/// good for this issue (no Link Issues permission, or the issue is gone or hidden) — recorded,
/// neither failing the job nor touching the connection (`Class::PermissionDenied` and
/// `NotFound` never do); `Err`: anything else (Jira busy: retried by the event's redelivery).
async fn add(session: &Session, key: &str, link: &(String, String, String)) -> Result<Option<String>, AtlassianError> {
    let (global_id, url, title) = link;
    let remote = RemoteLink {
        global_id,
        url,
        title,
        application_type: "com.atlassian.confluence",
        application_name: "Confluence",
        relationship: "Wiki Page",
    };
    match issues::put_remote_link(session, &IssueKey::new(key), &remote).await {
        Ok(()) => Ok(None),
        Err(e) if e.is(Class::PermissionDenied) => {
            tracing::warn!(key, "remote link to the report page refused: no Link Issues permission");
            Ok(Some("the link to the report page was refused: the connected user may not link issues (403)".into()))
        }
        Err(e) if e.is(Class::NotFound) => {
            tracing::warn!(key, "remote link to the report page not added: the issue is gone or hidden");
            Ok(Some("the link to the report page was not added: the issue is gone or hidden (404)".into()))
        }
        Err(e) => Err(e),
    }
}

impl Linker<'_> {
    /// After a job: for each report among the results' created (or found) issues, a remote link
    /// to its page when the page is known (a refusal is noted in the item's message), and one
    /// `Report Issues Created` for publish-page. `Err`: a link or the event failed in a way a
    /// redelivery may fix.
    pub async fn after_job(
        &self,
        session: &Session,
        bus: Option<&dyn EventBus>,
        tenant: &TenantId,
        idempotency_key: &str,
        results: &mut [ItemResult],
    ) -> Result<(), ApiError> {
        let mut reports: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in results.iter().enumerate() {
            if matches!(r.status, ItemStatus::Created | ItemStatus::Existing) && r.key.is_some() {
                if let Some(report) = &r.report_id {
                    reports.entry(report.to_string()).or_default().push(i);
                }
            }
        }
        for (report_id, indexes) in reports {
            let page = self.publications.report_page(tenant, &report_id).await?;
            if let Some(link) = page.as_ref().and_then(link_to) {
                let calls: Vec<_> = indexes
                    .iter()
                    .map(|&i| {
                        let key = results[i].key.clone().unwrap_or_default();
                        let link = &link;
                        async move { (i, add(session, &key, link).await) }
                    })
                    .collect();
                for (i, added) in bridge::jobs::bounded(calls, LINKS_IN_FLIGHT).await {
                    if let Some(note) = added.map_err(ApiError::from)? {
                        let r = &mut results[i];
                        r.message = Some(match r.message.take() {
                            Some(message) => format!("{message}; {note}"),
                            None => note,
                        });
                    }
                }
            }
            let Some(bus) = bus else { continue };
            let event = ReportIssuesCreated {
                tenant_id: tenant.to_string(),
                idempotency_key: idempotency_key.to_owned(),
                report_id: report_id.clone(),
                issues: indexes
                    .iter()
                    .map(|&i| LinkedIssue {
                        action_item_id: results[i].action_item_id.clone(),
                        key: results[i].key.clone().unwrap_or_default(),
                        url: results[i].url.clone().unwrap_or_default(),
                    })
                    .collect(),
            };
            if let JobOutcome::Stopped(e) = bridge::app::publish(bus, &event).await {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The bridge's own `Page Published`: a remote link from each of the report's issues on the
    /// connected Jira site to the page. A tenant without Jira, or a report without issues, has
    /// nothing to link.
    pub async fn page_published(
        &self,
        connector: &bridge::access::Connector,
        tenant: &TenantId,
        idempotency_key: &str,
        published: &PagePublished,
    ) -> JobOutcome<RemoteLinksAdded, ApiError> {
        let mut answer = RemoteLinksAdded {
            tenant_id: tenant.to_string(),
            idempotency_key: idempotency_key.to_owned(),
            report_id: published.report_id.clone(),
            page_id: published.page_id.clone(),
            results: Vec::new(),
        };
        let Ok(report_id) = ReportId::parse(published.report_id.as_str()) else { return JobOutcome::Done(answer) };
        match self.link_report(connector, tenant, &report_id, &mut answer.results).await {
            Ok(()) => JobOutcome::Done(answer),
            Err(e) => JobOutcome::Stopped(e),
        }
    }

    async fn link_report(
        &self,
        connector: &bridge::access::Connector,
        tenant: &TenantId,
        report_id: &ReportId,
        results: &mut Vec<RemoteLinkResult>,
    ) -> Result<(), ApiError> {
        let Some(link) = self.publications.report_page(tenant, report_id.as_str()).await?.as_ref().and_then(link_to)
        else {
            return Ok(());
        };
        if self.connections.get(tenant, Product::Jira).await?.is_none() {
            return Ok(());
        }
        let items = report_items(self.ledger, tenant, report_id).await?;
        if items.is_empty() {
            return Ok(());
        }
        let session = connector.session(tenant, Product::Jira).await?;
        // Only issues of the site connected now: a key names another issue on another site.
        let keys: Vec<String> = items
            .into_iter()
            .filter(|i| i.site.as_ref().is_none_or(|s| s == session.site_id()))
            .map(|i| i.key.into_string())
            .collect();
        let calls: Vec<_> = keys
            .iter()
            .map(|key| {
                let (session, link) = (&session, &link);
                async move { (key.clone(), add(session, key, link).await) }
            })
            .collect();
        for (key, added) in bridge::jobs::bounded(calls, LINKS_IN_FLIGHT).await {
            let note = added.map_err(ApiError::from)?;
            results.push(RemoteLinkResult { key, linked: note.is_none(), message: note });
        }
        tracing::info!(report = %report_id, issues = results.len(), "remote links to the report page added");
        Ok(())
    }
}
