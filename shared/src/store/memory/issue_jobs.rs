use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Faults, key, lock};
use crate::domain::TenantId;
use crate::store::{IssueJobRecord, IssueJobStore, StoreError};

#[derive(Default)]
pub struct MemoryIssueJobs {
    jobs: Mutex<HashMap<(String, String), IssueJobRecord>>,
    faults: Faults,
}

impl MemoryIssueJobs {
    pub(super) fn sharing(faults: &Faults) -> Self {
        Self { faults: faults.clone(), ..Self::default() }
    }
}

#[async_trait]
impl IssueJobStore for MemoryIssueJobs {
    async fn accept_job(
        &self,
        tenant: &TenantId,
        job: &str,
        idempotency_key: &str,
        parts: u32,
        first: &str,
    ) -> Result<(), StoreError> {
        self.faults.check("IssueJobStore::accept_job")?;
        let record = IssueJobRecord {
            idempotency_key: idempotency_key.to_owned(),
            parts,
            results: [(0, first.to_owned())].into_iter().collect(),
        };
        lock(&self.jobs).insert(key(tenant, job), record);
        Ok(())
    }

    async fn record_part(&self, tenant: &TenantId, job: &str, part: u32, results: &str) -> Result<(), StoreError> {
        self.faults.check("IssueJobStore::record_part")?;
        let mut jobs = lock(&self.jobs);
        let record = jobs.get_mut(&key(tenant, job)).ok_or_else(|| StoreError::Corrupt(format!("no job {job}")))?;
        record.results.entry(part).or_insert_with(|| results.to_owned());
        Ok(())
    }

    async fn job(&self, tenant: &TenantId, job: &str) -> Result<Option<IssueJobRecord>, StoreError> {
        self.faults.check("IssueJobStore::job")?;
        Ok(lock(&self.jobs).get(&key(tenant, job)).cloned())
    }
}
