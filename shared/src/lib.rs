//! Atlassian Bridge library: everything the Lambda functions share.
//!
//! The functions under `functions/` are thin: they parse a request, authorize the caller, call into
//! this library and map the result. Ports (stores, token endpoint) are small traits with AWS and
//! HTTP adapters behind them, so unit tests run against in-memory fakes and integration tests
//! against the real wire protocols (moto, the Atlassian simulator).

pub mod access;
pub mod api;
pub mod app;
pub mod apps;
pub mod atlassian;
pub mod caller;
pub mod clock;
pub mod config;
pub mod connect;
pub mod consent;
pub mod credentials;
pub mod discovery;
pub mod domain;
pub mod error;
pub mod events;
pub mod faults;
pub mod forge;
pub mod http;
pub mod ids;
pub mod issues;
pub mod jobs;
pub mod keep_alive;
pub mod lockout;
pub mod markers;
pub mod metrics;
pub mod oauth;
pub mod reports;
pub mod rs256;
pub mod settings;
pub mod store;
pub mod sync;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod verify;
pub mod webhook_jwt;
pub mod webhooks;

pub use secrecy::{ExposeSecret, SecretString};
