use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Faults, key, lock};
use crate::domain::TenantId;
use crate::store::{KeepAliveStore, StoreError, SweepRound};

#[derive(Default)]
pub struct MemoryKeepAlive {
    notices: Mutex<BTreeMap<(String, String), OffsetDateTime>>,
    round: Mutex<Option<SweepRound>>,
    faults: Faults,
}

impl MemoryKeepAlive {
    pub(super) fn sharing(faults: &Faults) -> Self {
        Self { faults: faults.clone(), ..Self::default() }
    }

    /// The notice keys recorded for `tenant`, in key order.
    pub fn notices(&self, tenant: &TenantId) -> Vec<String> {
        let tenant = tenant.to_string();
        lock(&self.notices).keys().filter(|(t, _)| *t == tenant).map(|(_, k)| k.clone()).collect()
    }
}

#[async_trait]
impl KeepAliveStore for MemoryKeepAlive {
    async fn claim_notice(
        &self,
        tenant: &TenantId,
        notice: &str,
        keep_until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.faults.check("KeepAliveStore::claim_notice")?;
        let mut notices = lock(&self.notices);
        let key = key(tenant, notice);
        if notices.contains_key(&key) {
            return Ok(false);
        }
        notices.insert(key, keep_until);
        Ok(true)
    }

    async fn forget_notice(&self, tenant: &TenantId, notice: &str) -> Result<(), StoreError> {
        self.faults.check("KeepAliveStore::forget_notice")?;
        lock(&self.notices).remove(&key(tenant, notice));
        Ok(())
    }

    async fn sweep_round(&self) -> Result<Option<SweepRound>, StoreError> {
        self.faults.check("KeepAliveStore::sweep_round")?;
        Ok(lock(&self.round).clone())
    }

    async fn save_sweep_round(&self, round: &SweepRound) -> Result<(), StoreError> {
        self.faults.check("KeepAliveStore::save_sweep_round")?;
        *lock(&self.round) = Some(round.clone());
        Ok(())
    }
}
