use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Faults, key, lock, ms};
use crate::domain::TenantId;
use crate::store::{DeadLetterNotices, NoticeClaim, StoreError};

/// One notice: sent, or held by `holder` until `until_ms`.
#[derive(Debug, Clone)]
struct Notice {
    holder: String,
    until_ms: i64,
    sent: bool,
}

#[derive(Default)]
pub struct MemoryDeadLetters {
    notices: Mutex<BTreeMap<(String, String), Notice>>,
    faults: Faults,
}

impl MemoryDeadLetters {
    pub(super) fn sharing(faults: &Faults) -> Self {
        Self { faults: faults.clone(), ..Self::default() }
    }

    /// The notices of `tenant` marked sent, in key order.
    pub fn sent(&self, tenant: &TenantId) -> Vec<String> {
        let tenant = tenant.to_string();
        lock(&self.notices).iter().filter(|((t, _), n)| *t == tenant && n.sent).map(|((_, k), _)| k.clone()).collect()
    }
}

#[async_trait]
impl DeadLetterNotices for MemoryDeadLetters {
    async fn claim_notice(
        &self,
        tenant: &TenantId,
        notice: &str,
        holder: &str,
        lease_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<NoticeClaim, StoreError> {
        self.faults.check("DeadLetterNotices::claim_notice")?;
        let mut notices = lock(&self.notices);
        let key = key(tenant, notice);
        if let Some(found) = notices.get(&key) {
            if found.sent {
                return Ok(NoticeClaim::Sent);
            }
            if found.until_ms >= ms(now) {
                return Ok(NoticeClaim::Held { until: super::from_ms(found.until_ms) });
            }
        }
        notices.insert(key, Notice { holder: holder.to_owned(), until_ms: ms(lease_until), sent: false });
        Ok(NoticeClaim::Ours)
    }

    async fn mark_sent(
        &self,
        tenant: &TenantId,
        notice: &str,
        holder: &str,
        _keep_until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.faults.check("DeadLetterNotices::mark_sent")?;
        match lock(&self.notices).get_mut(&key(tenant, notice)) {
            Some(found) if found.holder == holder => {
                found.sent = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_notice(&self, tenant: &TenantId, notice: &str, holder: &str) -> Result<(), StoreError> {
        self.faults.check("DeadLetterNotices::release_notice")?;
        let mut notices = lock(&self.notices);
        let key = key(tenant, notice);
        if notices.get(&key).is_some_and(|n| n.holder == holder && !n.sent) {
            notices.remove(&key);
        }
        Ok(())
    }
}
