//! Credentials, one secret per grant or connection.

use async_trait::async_trait;
use secrecy::SecretString;

use super::StoreError;

/// A secret's current value and the version that identifies it.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    pub version: String,
    pub value: SecretString,
}

/// Credentials: one Secrets Manager secret per grant or connection, KMS-encrypted.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn get(&self, name: &str) -> Result<Option<StoredSecret>, StoreError>;
    /// Creates the secret or makes `value` its current version.
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), StoreError>;
    async fn delete(&self, name: &str) -> Result<(), StoreError>;
}
