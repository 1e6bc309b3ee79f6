use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use secrecy::SecretString;

use super::{Faults, lock};
use crate::store::{CredentialStore, StoreError, StoredSecret};

/// Secrets Manager's model: each put makes a new current version with its own id.
#[derive(Default)]
pub struct MemoryCredentials {
    secrets: Mutex<HashMap<String, StoredSecret>>,
    versions: AtomicU64,
    faults: Faults,
}

impl MemoryCredentials {
    pub(super) fn sharing(faults: &Faults) -> Self {
        Self { faults: faults.clone(), ..Self::default() }
    }
}

#[async_trait]
impl CredentialStore for MemoryCredentials {
    async fn get(&self, name: &str) -> Result<Option<StoredSecret>, StoreError> {
        self.faults.check("CredentialStore::get")?;
        Ok(lock(&self.secrets).get(name).cloned())
    }

    async fn put(&self, name: &str, value: &SecretString) -> Result<(), StoreError> {
        self.faults.check("CredentialStore::put")?;
        let version = self.versions.fetch_add(1, Ordering::SeqCst).to_string();
        lock(&self.secrets).insert(name.to_owned(), StoredSecret { version, value: value.clone() });
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.faults.check("CredentialStore::delete")?;
        // Deleted without a recovery window, and deleting a missing secret is not an error.
        lock(&self.secrets).remove(name);
        Ok(())
    }
}
