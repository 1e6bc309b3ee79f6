//! Secrets Manager adapter: one secret per grant or connection, encrypted with the deployment's
//! KMS key. The value is read and written as an opaque [`SecretString`].

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use secrecy::{ExposeSecret, SecretString};

use super::{CredentialStore, StoreError, StoredSecret};

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
    kms_key_id: String,
}

impl SecretsManagerStore {
    pub fn new(client: Client, kms_key_id: impl Into<String>) -> Self {
        Self { client, kms_key_id: kms_key_id.into() }
    }
}

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|se| se.code())
}

/// Error text for logs: the service's code and message, which never echo the secret value.
fn service_error<E: ProvideErrorMetadata, R>(e: SdkError<E, R>) -> StoreError {
    let message = match e.as_service_error() {
        Some(se) => format!("{}: {}", se.code().unwrap_or("error"), se.message().unwrap_or("")),
        None => format!("{e}"),
    };
    StoreError::Service { service: "Secrets Manager", message }
}

#[async_trait]
impl CredentialStore for SecretsManagerStore {
    async fn get(&self, name: &str) -> Result<Option<StoredSecret>, StoreError> {
        // AWSCURRENT explicitly: after a rotation the un-staged read can return an older version.
        let result = self.client.get_secret_value().secret_id(name).version_stage("AWSCURRENT").send().await;
        let out = match result {
            Ok(out) => out,
            Err(e) if code(&e) == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(service_error(e)),
        };
        let value =
            out.secret_string.ok_or_else(|| StoreError::Corrupt(format!("secret {name} has no string value")))?;
        Ok(Some(StoredSecret { version: out.version_id.unwrap_or_default(), value: SecretString::from(value) }))
    }

    async fn put(&self, name: &str, value: &SecretString) -> Result<(), StoreError> {
        let created = self
            .client
            .create_secret()
            .name(name)
            .kms_key_id(&self.kms_key_id)
            .secret_string(value.expose_secret())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ResourceExistsException") => {
                // PutSecretValue moves AWSCURRENT to the new version itself.
                self.client
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(value.expose_secret())
                    .send()
                    .await
                    .map_err(service_error)?;
                Ok(())
            }
            Err(e) => Err(service_error(e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        // No recovery window: the tenant disconnected on purpose, and a pending deletion would
        // block a reconnect under the same name.
        let result = self.client.delete_secret().secret_id(name).force_delete_without_recovery(true).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(service_error(e)),
        }
    }
}
