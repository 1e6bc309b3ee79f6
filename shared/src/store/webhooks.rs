//! Dynamic Jira webhooks a tenant registered (Cloud OAuth 2.0 with `manage:jira-webhook`), and the
//! deliveries already handled.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::TenantId;

/// One tenant's registration on its Jira site: the ids Jira gave, the projects its JQL filter
/// names, and when Jira stops sending (webhooks registered through the REST API expire after 30
/// days unless refreshed: Jira Cloud v3 `PUT /rest/api/3/webhook/refresh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRegistration {
    pub tenant: TenantId,
    /// The site's cloudId.
    pub cloud_id: String,
    /// The site's URL (`https://acme.atlassian.net`): what deliveries' `self` links start with.
    pub site_url: String,
    pub webhook_ids: Vec<i64>,
    /// Project keys of the JQL filter (`project IN (...)`), sorted.
    pub projects: Vec<String>,
    pub expires_at: OffsetDateTime,
    pub registered_at: OffsetDateTime,
}

/// How long a handled delivery's identifier is remembered: Jira retries a failed delivery for
/// hours, not days.
pub const DELIVERY_MEMORY: time::Duration = time::Duration::days(3);

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores (or replaces) the tenant's registration, with a lookup by each webhook id.
    async fn put_registration(&self, registration: &WebhookRegistration) -> Result<(), StoreError>;
    async fn registration(&self, tenant: &TenantId) -> Result<Option<WebhookRegistration>, StoreError>;
    /// Removes the tenant's registration and its lookups; answers what was removed.
    async fn delete_registration(&self, tenant: &TenantId) -> Result<Option<WebhookRegistration>, StoreError>;
    /// The registrations that hold `webhook_id` (ids are per site, so several sites may share one).
    async fn registrations_with(&self, webhook_id: i64) -> Result<Vec<WebhookRegistration>, StoreError>;
    /// Every registration expiring before `before`, at most `limit`, soonest first.
    async fn expiring(&self, before: OffsetDateTime, limit: usize) -> Result<Vec<WebhookRegistration>, StoreError>;
    /// Records that the delivery `identifier` (`X-Atlassian-Webhook-Identifier`, unique per site
    /// and the same on Jira's retries) of site `cloud_id` was handled; `false` if it was already.
    async fn delivery_handled(&self, cloud_id: &str, identifier: &str, now: OffsetDateTime)
    -> Result<bool, StoreError>;
    /// Whether the delivery was handled already.
    async fn delivery_seen(&self, cloud_id: &str, identifier: &str, now: OffsetDateTime) -> Result<bool, StoreError>;
}
