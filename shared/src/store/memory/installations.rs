use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Faults, lock};
use crate::domain::TenantId;
use crate::store::StoreError;
use crate::store::installations::{AppKind, Installation, InstallationStatus, InstallationStore, LinkCode};

#[derive(Default)]
pub struct MemoryInstallations {
    installations: Mutex<HashMap<(AppKind, String), Installation>>,
    /// digest -> code; a second map finds the tenant's code per product to replace it.
    codes: Mutex<HashMap<String, LinkCode>>,
    faults: Faults,
}

impl MemoryInstallations {
    pub(super) fn sharing(faults: &Faults) -> Self {
        Self { faults: faults.clone(), ..Self::default() }
    }
}

#[async_trait]
impl InstallationStore for MemoryInstallations {
    async fn installation(&self, kind: AppKind, id: &str) -> Result<Option<Installation>, StoreError> {
        self.faults.check("InstallationStore::installation")?;
        Ok(lock(&self.installations).get(&(kind, id.to_owned())).cloned())
    }

    async fn put_installation(&self, installation: &Installation) -> Result<bool, StoreError> {
        self.faults.check("InstallationStore::put_installation")?;
        let mut all = lock(&self.installations);
        let key = (installation.kind, installation.id.clone());
        let stored_generation = all.get(&key).map_or(0, |i| i.generation);
        if installation.generation != stored_generation + 1 {
            return Ok(false);
        }
        let mut record = installation.clone();
        if let Some(old) = all.get(&key) {
            record.tenant = old.tenant.clone();
            record.installed_at = old.installed_at;
        }
        all.insert(key, record);
        Ok(true)
    }

    async fn uninstall(&self, kind: AppKind, id: &str, at: OffsetDateTime) -> Result<Option<Installation>, StoreError> {
        self.faults.check("InstallationStore::uninstall")?;
        let mut all = lock(&self.installations);
        let Some(record) = all.get_mut(&(kind, id.to_owned())) else { return Ok(None) };
        let before = record.clone();
        record.status = InstallationStatus::Uninstalled;
        record.tenant = None;
        record.updated_at = at;
        Ok(Some(before))
    }

    async fn link(&self, kind: AppKind, id: &str, tenant: &TenantId, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.faults.check("InstallationStore::link")?;
        let mut all = lock(&self.installations);
        let Some(record) = all.get_mut(&(kind, id.to_owned())) else { return Ok(false) };
        if record.status != InstallationStatus::Installed || record.tenant.as_ref().is_some_and(|t| t != tenant) {
            return Ok(false);
        }
        record.tenant = Some(tenant.clone());
        record.updated_at = at;
        Ok(true)
    }

    async fn unlink(&self, kind: AppKind, id: &str, tenant: &TenantId, at: OffsetDateTime) -> Result<(), StoreError> {
        self.faults.check("InstallationStore::unlink")?;
        let mut all = lock(&self.installations);
        if let Some(record) = all.get_mut(&(kind, id.to_owned()))
            && record.tenant.as_ref() == Some(tenant)
        {
            record.tenant = None;
            record.updated_at = at;
        }
        Ok(())
    }

    async fn put_link_code(&self, code: &LinkCode) -> Result<(), StoreError> {
        self.faults.check("InstallationStore::put_link_code")?;
        let mut codes = lock(&self.codes);
        codes.retain(|_, c| !(c.tenant == code.tenant && c.product == code.product));
        codes.insert(code.digest.clone(), code.clone());
        Ok(())
    }

    async fn take_link_code(&self, digest: &str, now: OffsetDateTime) -> Result<Option<LinkCode>, StoreError> {
        self.faults.check("InstallationStore::take_link_code")?;
        Ok(lock(&self.codes).remove(digest).filter(|c| c.expires_at > now))
    }
}
