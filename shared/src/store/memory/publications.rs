use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Clock, Faults, from_ms, key, lock, ms};
use crate::domain::TenantId;
use crate::reports::Publication;
use crate::store::{Claim, PublicationStore, ReportPage, StoreError};

/// `PUBLICATION#{id}`: the record as the JSON the adapter stores, so what a claim hands back went
/// through the same serialization.
struct Record {
    owner: String,
    lease_until_ms: i64,
    record: String,
    done: bool,
}

/// `REPORT#{report id}`: the page record and its links lease.
#[derive(Default)]
struct PageRecord {
    page: Option<ReportPage>,
    owner: Option<String>,
    until_ms: i64,
}

#[derive(Default)]
struct Items {
    publications: HashMap<(String, String), Record>,
    pages: HashMap<(String, String), PageRecord>,
}

#[derive(Default)]
pub struct MemoryPublications {
    items: Mutex<Items>,
    clock: Clock,
    faults: Faults,
}

fn parse(record: &str) -> Result<Publication, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn json(publication: &Publication) -> Result<String, StoreError> {
    serde_json::to_string(publication).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl MemoryPublications {
    pub(super) fn sharing(clock: &Clock, faults: &Faults) -> Self {
        Self { clock: clock.clone(), faults: faults.clone(), ..Self::default() }
    }

    /// Who holds the publication's lease now, if anyone.
    pub fn holder(&self, tenant: &TenantId, id: &str) -> Option<String> {
        let now = self.clock.now_ms();
        let items = lock(&self.items);
        items.publications.get(&key(tenant, id)).filter(|r| !r.done && r.lease_until_ms >= now).map(|r| r.owner.clone())
    }
}

#[async_trait]
impl PublicationStore for MemoryPublications {
    async fn claim_publication(
        &self,
        tenant: &TenantId,
        fresh: &Publication,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim<Publication>, StoreError> {
        self.faults.check("PublicationStore::claim_publication")?;
        let now = self.clock.now_ms();
        let mut items = lock(&self.items);
        let Some(record) = items.publications.get_mut(&key(tenant, &fresh.id)) else {
            let record = json(fresh)?;
            let claim = Claim::Ours(parse(&record)?);
            let record = Record { owner: owner.to_owned(), lease_until_ms: ms(until), record, done: false };
            items.publications.insert(key(tenant, &fresh.id), record);
            return Ok(claim);
        };
        if record.done {
            return Ok(Claim::Done(parse(&record.record)?));
        }
        if record.lease_until_ms >= now {
            return Ok(Claim::Held { until: from_ms(record.lease_until_ms) });
        }
        // Take over an unfinished one whose lease lapsed; keep its progress.
        record.owner = owner.to_owned();
        record.lease_until_ms = ms(until);
        Ok(Claim::Ours(parse(&record.record)?))
    }

    async fn save_publication(
        &self,
        tenant: &TenantId,
        publication: &Publication,
        owner: &str,
        release: bool,
    ) -> Result<(), StoreError> {
        self.faults.check("PublicationStore::save_publication")?;
        let mut items = lock(&self.items);
        let Some(record) = items.publications.get_mut(&key(tenant, &publication.id)).filter(|r| r.owner == owner)
        else {
            return Err(StoreError::LeaseLost);
        };
        record.record = json(publication)?;
        record.done = publication.state.is_final();
        if release || record.done {
            record.lease_until_ms = 0;
        }
        Ok(())
    }

    async fn get_publication(&self, tenant: &TenantId, id: &str) -> Result<Option<Publication>, StoreError> {
        self.faults.check("PublicationStore::get_publication")?;
        lock(&self.items).publications.get(&key(tenant, id)).map(|r| parse(&r.record)).transpose()
    }

    async fn report_page(&self, tenant: &TenantId, report_id: &str) -> Result<Option<ReportPage>, StoreError> {
        self.faults.check("PublicationStore::report_page")?;
        Ok(lock(&self.items).pages.get(&key(tenant, report_id)).and_then(|r| r.page.clone()))
    }

    async fn set_report_page(&self, tenant: &TenantId, report_id: &str, page: &ReportPage) -> Result<(), StoreError> {
        self.faults.check("PublicationStore::set_report_page")?;
        lock(&self.items).pages.entry(key(tenant, report_id)).or_default().page = Some(page.clone());
        Ok(())
    }

    async fn claim_report_links(
        &self,
        tenant: &TenantId,
        report_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Claim<Option<ReportPage>, ()>, StoreError> {
        self.faults.check("PublicationStore::claim_report_links")?;
        let now = self.clock.now_ms();
        let mut items = lock(&self.items);
        let record = items.pages.entry(key(tenant, report_id)).or_default();
        if record.owner.is_some() && record.until_ms >= now {
            return Ok(Claim::Held { until: from_ms(record.until_ms) });
        }
        record.owner = Some(owner.to_owned());
        record.until_ms = ms(until);
        Ok(Claim::Ours(record.page.clone()))
    }

    async fn save_report_links(
        &self,
        tenant: &TenantId,
        report_id: &str,
        page: &ReportPage,
        owner: &str,
    ) -> Result<(), StoreError> {
        self.faults.check("PublicationStore::save_report_links")?;
        let mut items = lock(&self.items);
        let Some(record) = items.pages.get_mut(&key(tenant, report_id)).filter(|r| r.owner.as_deref() == Some(owner))
        else {
            return Err(StoreError::LeaseLost);
        };
        record.page = Some(page.clone());
        record.owner = None;
        record.until_ms = 0;
        Ok(())
    }

    async fn release_report_links(&self, tenant: &TenantId, report_id: &str, owner: &str) -> Result<(), StoreError> {
        self.faults.check("PublicationStore::release_report_links")?;
        let mut items = lock(&self.items);
        if let Some(record) = items.pages.get_mut(&key(tenant, report_id)).filter(|r| r.owner.as_deref() == Some(owner))
        {
            record.owner = None;
            record.until_ms = 0;
        }
        Ok(())
    }
}
