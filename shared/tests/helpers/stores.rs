//! The stores the jobs run against. Until the store branch's in-memory fakes land, minimal fakes
//! of the two job ports with the DynamoDB adapter's lease semantics (conditional claim, takeover
//! once the lease lapsed, owner-conditioned writes) and a clock a test can advance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bridge::domain::TenantId;
use bridge::reports::Publication;
use bridge::store::{
    Claim, IssueLedger, KeyRecord, PublicationClaim, PublicationStore, RecordedIssue, ReportPage, StoreError,
};
use time::OffsetDateTime;

/// Items by (tenant, id).
type Keyed<T> = HashMap<(String, String), T>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wall clock plus however far the test advanced it.
#[derive(Clone, Default)]
pub struct Clock(Arc<Mutex<time::Duration>>);

impl Clock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *lock(&self.0)
    }
}

#[derive(Clone, Default)]
pub struct Stores {
    pub publications: Arc<FakePublications>,
    pub ledger: Arc<FakeLedger>,
    clock: Clock,
}

impl Stores {
    pub fn new() -> Self {
        let clock = Clock::default();
        Self {
            publications: Arc::new(FakePublications { clock: clock.clone(), ..Default::default() }),
            ledger: Arc::new(FakeLedger { clock: clock.clone(), ..Default::default() }),
            clock,
        }
    }

    /// Lets every lease lapse as if `by` had passed (no sleeping).
    pub fn advance(&self, by: Duration) {
        *lock(&self.clock.0) += by;
    }
}

struct PubRecord {
    owner: String,
    until: OffsetDateTime,
    json: String,
}

#[derive(Default)]
pub struct FakePublications {
    items: Mutex<(Keyed<PubRecord>, Keyed<ReportPage>)>,
    clock: Clock,
}

fn parse(json: &str) -> Result<Publication, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl PublicationStore for FakePublications {
    async fn claim_publication(
        &self,
        tenant: &TenantId,
        fresh: &Publication,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<PublicationClaim, StoreError> {
        let now = self.clock.now();
        let mut items = lock(&self.items);
        let key = (tenant.to_string(), fresh.id.clone());
        let Some(record) = items.0.get_mut(&key) else {
            let json = serde_json::to_string(fresh).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            items.0.insert(key, PubRecord { owner: owner.into(), until, json: json.clone() });
            return Ok(PublicationClaim::Go(parse(&json)?));
        };
        let current = parse(&record.json)?;
        if current.state.is_final() {
            return Ok(PublicationClaim::Done(current));
        }
        if record.until >= now {
            return Ok(PublicationClaim::Busy { until: record.until });
        }
        record.owner = owner.into();
        record.until = until;
        Ok(PublicationClaim::Go(current))
    }

    async fn save_publication(
        &self,
        tenant: &TenantId,
        publication: &Publication,
        owner: &str,
        release: bool,
    ) -> Result<(), StoreError> {
        let mut items = lock(&self.items);
        let Some(record) = items.0.get_mut(&(tenant.to_string(), publication.id.clone())).filter(|r| r.owner == owner)
        else {
            return Err(StoreError::LeaseLost);
        };
        record.json = serde_json::to_string(publication).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if release || publication.state.is_final() {
            record.until = OffsetDateTime::UNIX_EPOCH;
        }
        Ok(())
    }

    async fn get_publication(&self, tenant: &TenantId, id: &str) -> Result<Option<Publication>, StoreError> {
        lock(&self.items).0.get(&(tenant.to_string(), id.to_owned())).map(|r| parse(&r.json)).transpose()
    }

    async fn report_page(&self, tenant: &TenantId, report_id: &str) -> Result<Option<ReportPage>, StoreError> {
        Ok(lock(&self.items).1.get(&(tenant.to_string(), report_id.to_owned())).cloned())
    }

    async fn set_report_page(&self, tenant: &TenantId, report_id: &str, page: &ReportPage) -> Result<(), StoreError> {
        lock(&self.items).1.insert((tenant.to_string(), report_id.to_owned()), page.clone());
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemState {
    Pending,
    Failed,
    Created,
}

struct Action {
    state: ItemState,
    owner: Option<String>,
    until: OffsetDateTime,
    issue: Option<RecordedIssue>,
}

#[derive(Default)]
pub struct FakeLedger {
    items: Mutex<(Keyed<Action>, Keyed<KeyRecord>)>,
    clock: Clock,
}

impl FakeLedger {
    fn settle(&self, tenant: &TenantId, item_id: &str, owner: &str, update: impl FnOnce(&mut Action)) {
        let mut items = lock(&self.items);
        if let Some(a) = items.0.get_mut(&(tenant.to_string(), item_id.to_owned())) {
            if a.owner.as_deref() == Some(owner) {
                update(a);
            }
        }
    }
}

#[async_trait]
impl IssueLedger for FakeLedger {
    async fn claim(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let now = self.clock.now();
        let mut items = lock(&self.items);
        let key = (tenant.to_string(), item_id.to_owned());
        let Some(a) = items.0.get_mut(&key) else {
            items.0.insert(key, Action { state: ItemState::Pending, owner: Some(owner.into()), until, issue: None });
            return Ok(Claim::Fresh);
        };
        match a.state {
            ItemState::Created => {
                let issue = a.issue.clone().unwrap_or_else(|| RecordedIssue {
                    key: String::new(),
                    id: String::new(),
                    site: String::new(),
                });
                Ok(Claim::Done { key: issue.key, id: issue.id, deleted: false, site: Some(issue.site) })
            }
            _ if a.until >= now => Ok(Claim::Busy { until: a.until }),
            ItemState::Failed => {
                *a = Action { state: ItemState::Pending, owner: Some(owner.into()), until, issue: None };
                Ok(Claim::Retry)
            }
            ItemState::Pending => {
                let attempted_before = a.until;
                a.owner = Some(owner.into());
                a.until = until;
                Ok(Claim::Resumed { attempted_before, legacy_marker: false })
            }
        }
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        issue: &RecordedIssue,
    ) -> Result<(), StoreError> {
        let mut done = false;
        self.settle(tenant, item_id, owner, |a| {
            a.state = ItemState::Created;
            a.owner = None;
            a.issue = Some(issue.clone());
            done = true;
        });
        if done {
            let record = KeyRecord { item_id: item_id.to_owned(), site: Some(issue.site.clone()) };
            lock(&self.items).1.insert((tenant.to_string(), issue.key.clone()), record);
        }
        Ok(())
    }

    async fn fail(&self, tenant: &TenantId, item_id: &str, owner: &str, _message: &str) -> Result<(), StoreError> {
        self.settle(tenant, item_id, owner, |a| {
            a.state = ItemState::Failed;
            a.until = OffsetDateTime::UNIX_EPOCH;
        });
        Ok(())
    }

    async fn release(&self, tenant: &TenantId, item_id: &str, owner: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.settle(tenant, item_id, owner, |a| a.until = now);
        Ok(())
    }

    async fn mark_legacy_marker(&self, _: &TenantId, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn extend(
        &self,
        tenant: &TenantId,
        item_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.settle(tenant, item_id, owner, |a| a.until = until);
        Ok(())
    }

    async fn item_for_key(&self, tenant: &TenantId, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(lock(&self.items).1.get(&(tenant.to_string(), key.to_owned())).cloned())
    }

    async fn mark_deleted(&self, _: &TenantId, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The token provider's stores (the crate's fakes).
#[derive(Clone, Default)]
pub struct TokenStores {
    pub connections: Arc<bridge::store::memory::MemoryConnections>,
    pub credentials: Arc<bridge::store::memory::MemoryCredentials>,
    pub leases: Arc<bridge::store::memory::MemoryLeases>,
}

impl TokenStores {
    pub fn new() -> Self {
        Self::default()
    }
}
