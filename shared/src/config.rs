//! Configuration, read once at cold start from the environment.
//!
//! Every value is checked here so that a misconfigured deployment fails at init with a message that
//! names the variable, instead of failing later inside a request.

use std::time::Duration;

use url::Url;

use crate::atlassian::EgressPolicy;
use crate::clock::Clock;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is malformed: {reason}")]
    Malformed { name: &'static str, reason: String },
}

/// The deployment's configuration. Built once per Lambda instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// DynamoDB table holding connections, settings, OAuth states, leases and records.
    pub table_name: String,
    /// Prefix of every Secrets Manager secret this deployment creates (IAM is scoped to it).
    pub secret_prefix: String,
    /// KMS key that encrypts every secret this deployment creates.
    pub kms_key_id: String,
    pub oauth: OAuthConfig,
    /// JWT claim that carries the caller's tenant id.
    pub tenant_claim: String,
    pub http: HttpConfig,
    pub egress: EgressPolicy,
    /// The bus outgoing events go to; only the functions that publish need it.
    pub event_bus: Option<String>,
    /// The `source` of outgoing events.
    pub event_source: String,
    /// How long a job holds an action item or report before another delivery may take it over.
    pub job_lease: Duration,
    pub search_index: SearchIndex,
    /// How long an HTTP issue job may run before the rest of it is accepted with `202` and
    /// finished through events (API Gateway ends every request at 30 s).
    pub issue_job_budget: Duration,
    /// How many jobs (requests and events that reach Atlassian) of one tenant may run at once in
    /// one function, across all its instances: the tenant's fair share of the function's reserved
    /// concurrency (README, "Fair shares").
    pub tenant_slots: u32,
    /// When refused credential checks lock a destination (see `lockout.rs`).
    pub lockout: DestinationLockout,
    /// The business clock (token expiry, grant ages): the system clock, shifted only in test
    /// builds by `BRIDGE_TEST_CLOCK_OFFSET_SECONDS` (see `clock`).
    pub clock: Clock,
    /// Where Jira delivers the dynamic webhooks of tenants who opted in: this deployment's public
    /// `POST /v1/webhooks/jira`. Unset: no webhook is registered (polling still runs).
    pub jira_webhook_url: Option<Url>,
    /// The CJK font collection the PDF summaries draw Chinese, Japanese and Korean with (the
    /// fonts layer's file in Lambda); read on the first report that needs it.
    pub cjk_font_path: std::path::PathBuf,
    /// The Marketplace apps (Connect, Connect on Forge, Forge Remote) this deployment is.
    pub apps: AppsConfig,
    /// The CloudWatch namespace of the functions' EMF metrics (`metrics`); the infra's alarms
    /// and dashboard read the same one.
    pub metrics_namespace: String,
}

/// The Marketplace apps: a Connect (or Connect on Forge) app and a Forge app whose remote is this
/// deployment. Either may be unset: its routes then answer that it is not configured.
#[derive(Debug, Clone)]
pub struct AppsConfig {
    /// This deployment's public base URL (API Gateway's custom domain, no trailing slash): the
    /// Connect descriptor's `baseUrl`, and the `aud` Atlassian signs installs for.
    pub public_base_url: Option<Url>,
    /// The Connect app's key (the descriptor's `key`; `iss` of every JWT we sign).
    pub connect_app_key: Option<String>,
    /// Atlassian's install-key CDN: `{url}/{kid}` is the PEM public key an install JWT names.
    pub connect_install_keys_url: Url,
    /// The Forge app's id (`ari:cloud:ecosystem::app/<uuid>`), the `aud` of Forge Invocation Tokens.
    pub forge_app_id: Option<String>,
    /// Where Forge publishes the keys that sign Forge Invocation Tokens (a JWKS).
    pub forge_jwks_url: Url,
    /// How long a one-time app-link code lives.
    pub link_code_ttl: Duration,
}

/// How many refused credential checks against one destination, across all tenants, within
/// `window` lock it, and for how long: our egress IPs must not serve as a platform for guessing
/// passwords at servers that allow-list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationLockout {
    /// Refusals within the window that lock the destination (the one that reaches it included).
    pub threshold: u32,
    /// The counting window, from the first refusal in it.
    pub window: Duration,
    /// How long a lock holds.
    pub cool_down: Duration,
}

/// Jira's search is eventually consistent (Cloud v3 `search/jql`: "Recent updates might not be
/// immediately visible"): a marker search trusts a miss only this long after the attempt that may
/// have created the issue.
#[derive(Debug, Clone, Copy)]
pub struct SearchIndex {
    /// How long after a create Jira's search is trusted to show it.
    pub delay: Duration,
    /// The longest a job waits, once, for that; beyond it the item ends retryable.
    pub max_wait: Duration,
}

#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub client_id: String,
    /// Secrets Manager secret holding `{"client_secret": ..., "state_signing_key": ...}`.
    pub client_secret_name: String,
    pub redirect_uri: Url,
    /// `https://auth.atlassian.com` in production; the simulator in tests.
    pub auth_base_url: Url,
    /// `https://api.atlassian.com` in production; the simulator in tests.
    pub api_base_url: Url,
    pub allowed_return_urls: Vec<Url>,
    pub state_ttl: Duration,
    /// How long a consent that came back waits for its confirmation before its grant is deleted.
    pub confirm_ttl: Duration,
    /// Refresh an access token this long before it expires.
    pub refresh_leeway: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Longest `Retry-After` we wait inside one invocation; longer ones go back to the caller.
    pub max_retry_wait: Duration,
    /// Longest time one request may take with all its retries, so an HTTP function answers
    /// inside API Gateway's 30 s limit.
    pub retry_budget: Duration,
    /// Longest wait for a response's headers (the first byte), per attempt: a server that accepts
    /// and never answers costs this, not the whole `timeout`.
    pub first_byte_timeout: Duration,
    /// Largest response body read; a larger one is refused (by Content-Length before reading,
    /// else as soon as the stream passes it).
    pub max_body_bytes: usize,
}

/// Upper bound on the OAuth state lifetime: Atlassian's consent screen is interactive, but a state
/// that lives longer than this only widens the window for a stolen link.
pub const MAX_STATE_TTL: Duration = Duration::from_secs(600);

/// Upper bound on how long a consent waits for its confirmation: the SaaS backend confirms as
/// soon as the admin's browser lands on the return URL, so minutes are plenty, and a grant that
/// nobody confirms (a forwarded consent link) should not linger.
pub const MAX_CONFIRM_TTL: Duration = Duration::from_secs(600);

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&get);
        let state_ttl = env.seconds("BRIDGE_OAUTH_STATE_TTL_SECONDS", 600)?;
        if state_ttl.is_zero() || state_ttl > MAX_STATE_TTL {
            return Err(ConfigError::Malformed {
                name: "BRIDGE_OAUTH_STATE_TTL_SECONDS",
                reason: "must be between 1 and 600 seconds".into(),
            });
        }
        let confirm_ttl = env.seconds("BRIDGE_OAUTH_CONFIRM_TTL_SECONDS", 600)?;
        if confirm_ttl.is_zero() || confirm_ttl > MAX_CONFIRM_TTL {
            return Err(ConfigError::Malformed {
                name: "BRIDGE_OAUTH_CONFIRM_TTL_SECONDS",
                reason: "must be between 1 and 600 seconds".into(),
            });
        }
        let allowed_return_urls = env
            .required("BRIDGE_ALLOWED_RETURN_URLS")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| parse_url("BRIDGE_ALLOWED_RETURN_URLS", s))
            .collect::<Result<Vec<_>, _>>()?;
        if allowed_return_urls.is_empty() {
            return Err(ConfigError::Malformed {
                name: "BRIDGE_ALLOWED_RETURN_URLS",
                reason: "must list at least one URL".into(),
            });
        }
        let max_attempts = env.number("BRIDGE_HTTP_MAX_ATTEMPTS", 4)?;
        if max_attempts == 0 {
            return Err(ConfigError::Malformed {
                name: "BRIDGE_HTTP_MAX_ATTEMPTS",
                reason: "must be at least 1".into(),
            });
        }
        let timeout = Duration::from_millis(env.number("BRIDGE_HTTP_TIMEOUT_MS", 10_000)?);
        let first_byte_timeout = Duration::from_millis(env.number("BRIDGE_HTTP_FIRST_BYTE_TIMEOUT_MS", 5_000)?);
        if first_byte_timeout.is_zero() || first_byte_timeout > timeout {
            return Err(ConfigError::Malformed {
                name: "BRIDGE_HTTP_FIRST_BYTE_TIMEOUT_MS",
                reason: "must be at least 1 and at most BRIDGE_HTTP_TIMEOUT_MS".into(),
            });
        }
        let max_body_bytes = env.number("BRIDGE_HTTP_MAX_BODY_BYTES", 10 * 1024 * 1024)?;
        if max_body_bytes < 64 * 1024 {
            return Err(ConfigError::Malformed {
                name: "BRIDGE_HTTP_MAX_BODY_BYTES",
                reason: "must be at least 65536 (Atlassian's ordinary answers are up to a few MB)".into(),
            });
        }
        let tenant_slots = env.number("BRIDGE_TENANT_SLOTS", 4)?;
        if !(1..=1000).contains(&tenant_slots) {
            return Err(ConfigError::Malformed {
                name: "BRIDGE_TENANT_SLOTS",
                reason: "must be between 1 and 1000".into(),
            });
        }
        let lockout = DestinationLockout {
            threshold: env.positive("BRIDGE_DESTINATION_LOCKOUT_THRESHOLD", 5)?,
            window: Duration::from_secs(env.positive("BRIDGE_DESTINATION_LOCKOUT_WINDOW_SECONDS", 900)?.into()),
            cool_down: Duration::from_secs(env.positive("BRIDGE_DESTINATION_LOCKOUT_COOL_DOWN_SECONDS", 900)?.into()),
        };
        let metrics_namespace = metrics_namespace(
            env.optional("BRIDGE_METRICS_NAMESPACE").unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.into()),
        )?;
        Ok(Self {
            metrics_namespace,
            table_name: env.required("BRIDGE_TABLE_NAME")?,
            secret_prefix: env.required("BRIDGE_SECRET_PREFIX")?,
            kms_key_id: env.required("BRIDGE_KMS_KEY_ID")?,
            oauth: OAuthConfig {
                client_id: env.required("BRIDGE_OAUTH_CLIENT_ID")?,
                client_secret_name: env.required("BRIDGE_OAUTH_CLIENT_SECRET_NAME")?,
                redirect_uri: env.url("BRIDGE_OAUTH_REDIRECT_URI", None)?,
                auth_base_url: env.url("BRIDGE_ATLASSIAN_AUTH_URL", Some("https://auth.atlassian.com"))?,
                api_base_url: env.url("BRIDGE_ATLASSIAN_API_URL", Some("https://api.atlassian.com"))?,
                allowed_return_urls,
                state_ttl,
                confirm_ttl,
                refresh_leeway: env.seconds("BRIDGE_TOKEN_REFRESH_LEEWAY_SECONDS", 300)?,
            },
            tenant_claim: env.optional("BRIDGE_TENANT_CLAIM").unwrap_or_else(|| "tenant_id".into()),
            http: HttpConfig {
                timeout,
                connect_timeout: Duration::from_millis(env.number("BRIDGE_HTTP_CONNECT_TIMEOUT_MS", 3_000)?),
                max_attempts: u32::try_from(max_attempts).unwrap_or(u32::MAX),
                max_retry_wait: env.seconds("BRIDGE_HTTP_MAX_RETRY_WAIT_SECONDS", 20)?,
                retry_budget: env.seconds("BRIDGE_HTTP_RETRY_BUDGET_SECONDS", 20)?,
                first_byte_timeout,
                max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            },
            event_bus: env.optional("BRIDGE_EVENT_BUS_NAME"),
            event_source: env.optional("BRIDGE_EVENT_SOURCE").unwrap_or_else(|| "atlassian-bridge".into()),
            job_lease: env.seconds("BRIDGE_JOB_LEASE_SECONDS", 60)?,
            issue_job_budget: env.seconds("BRIDGE_ISSUE_JOB_BUDGET_SECONDS", 20)?,
            tenant_slots: u32::try_from(tenant_slots).unwrap_or(u32::MAX),
            search_index: SearchIndex {
                delay: env.seconds("BRIDGE_JIRA_INDEX_DELAY_SECONDS", 5)?,
                max_wait: env.seconds("BRIDGE_JIRA_INDEX_MAX_WAIT_SECONDS", 10)?,
            },
            egress: EgressPolicy {
                allow_http: env.flag("BRIDGE_EGRESS_ALLOW_HTTP")?,
                allow_loopback: env.flag("BRIDGE_EGRESS_ALLOW_LOOPBACK_FOR_TESTS")?,
            },
            lockout,
            clock: test_clock(&env)?,
            jira_webhook_url: match env.optional("BRIDGE_JIRA_WEBHOOK_URL") {
                None => None,
                Some(url) => Some(parse_url("BRIDGE_JIRA_WEBHOOK_URL", &url)?),
            },
            cjk_font_path: env.absolute_path("BRIDGE_CJK_FONT_PATH", crate::reports::text::LAYER_CJK_FONT)?,
            apps: AppsConfig {
                public_base_url: match env.optional("BRIDGE_PUBLIC_BASE_URL") {
                    None => None,
                    Some(url) => Some(parse_url("BRIDGE_PUBLIC_BASE_URL", url.trim_end_matches('/'))?),
                },
                connect_app_key: env.optional("BRIDGE_CONNECT_APP_KEY"),
                connect_install_keys_url: env
                    .url("BRIDGE_CONNECT_INSTALL_KEYS_URL", Some("https://connect-install-keys.atlassian.com"))?,
                forge_app_id: env.optional("BRIDGE_FORGE_APP_ID"),
                forge_jwks_url: env.url(
                    "BRIDGE_FORGE_JWKS_URL",
                    Some("https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"),
                )?,
                link_code_ttl: {
                    let ttl = env.seconds("BRIDGE_APP_LINK_CODE_TTL_SECONDS", 600)?;
                    if ttl.is_zero() || ttl > MAX_CONFIRM_TTL {
                        return Err(ConfigError::Malformed {
                            name: "BRIDGE_APP_LINK_CODE_TTL_SECONDS",
                            reason: format!("must be from 1 to {} seconds", MAX_CONFIRM_TTL.as_secs()),
                        });
                    }
                    ttl
                },
            },
        })
    }
}

/// A CloudWatch namespace CloudWatch accepts: 1–255 of letters, digits and `.-_/#: `, not in
/// AWS's own `AWS/` space. Checked at cold start: a bad one would drop every metric silently.
fn metrics_namespace(value: String) -> Result<String, ConfigError> {
    let name = "BRIDGE_METRICS_NAMESPACE";
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
    if value.len() > 255 || !value.chars().all(allowed) {
        return Err(ConfigError::Malformed {
            name,
            reason: "must be at most 255 letters, digits or . - _ / # : and spaces".into(),
        });
    }
    if value.starts_with("AWS/") {
        return Err(ConfigError::Malformed { name, reason: "must not start with AWS/ (AWS's own namespaces)".into() });
    }
    Ok(value)
}

/// Longest clock shift a test may ask for: ten years, beyond any grant's life.
const MAX_TEST_CLOCK_OFFSET_SECONDS: u64 = 10 * 366 * 24 * 3600;

/// Test builds: the clock shifted by `BRIDGE_TEST_CLOCK_OFFSET_SECONDS` (whole seconds, ahead).
#[cfg(feature = "fault-injection")]
fn test_clock<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<Clock, ConfigError> {
    let name = "BRIDGE_TEST_CLOCK_OFFSET_SECONDS";
    let seconds = env.number(name, 0)?;
    if seconds > MAX_TEST_CLOCK_OFFSET_SECONDS {
        return Err(ConfigError::Malformed { name, reason: "must be at most ten years".into() });
    }
    Ok(Clock::shifted(time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX))))
}

/// Release builds never shift the clock: the variable is not even read, so setting it in a
/// deployment by mistake changes nothing.
#[cfg(not(feature = "fault-injection"))]
fn test_clock<F: Fn(&str) -> Option<String>>(_env: &Env<'_, F>) -> Result<Clock, ConfigError> {
    let _ = MAX_TEST_CLOCK_OFFSET_SECONDS;
    Ok(Clock::system())
}

struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError::Malformed { name, reason: format!("expected a whole number, got {v:?}") }),
        }
    }

    /// A whole number from 1 to `u32::MAX` (a zero threshold or window would lock everything).
    fn positive(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
        let value = self.number(name, u64::from(default))?;
        u32::try_from(value).ok().filter(|v| *v > 0).ok_or_else(|| ConfigError::Malformed {
            name,
            reason: format!("must be a whole number from 1 to {}, got {value}", u32::MAX),
        })
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.optional(name).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => {
                Err(ConfigError::Malformed { name, reason: format!("expected true or false, got {other:?}") })
            }
        }
    }

    fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.number(name, default).map(Duration::from_secs)
    }

    /// An absolute file path (relative ones would depend on the working directory).
    fn absolute_path(&self, name: &'static str, default: &str) -> Result<std::path::PathBuf, ConfigError> {
        let value = self.optional(name).unwrap_or_else(|| default.to_owned());
        let path = std::path::PathBuf::from(&value);
        if !path.is_absolute() {
            return Err(ConfigError::Malformed { name, reason: format!("{value:?} must be an absolute path") });
        }
        Ok(path)
    }

    fn url(&self, name: &'static str, default: Option<&str>) -> Result<Url, ConfigError> {
        match (self.optional(name), default) {
            (Some(v), _) => parse_url(name, &v),
            (None, Some(d)) => parse_url(name, d),
            (None, None) => Err(ConfigError::Missing(name)),
        }
    }
}

fn parse_url(name: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::Malformed { name, reason: format!("{value:?} is not an absolute URL ({e})") })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(ConfigError::Malformed { name, reason: format!("{value:?} must be an http(s) URL") });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("BRIDGE_TABLE_NAME", "t"),
            ("BRIDGE_SECRET_PREFIX", "atlassian-bridge/"),
            ("BRIDGE_KMS_KEY_ID", "key"),
            ("BRIDGE_OAUTH_CLIENT_ID", "cid"),
            ("BRIDGE_OAUTH_CLIENT_SECRET_NAME", "atlassian-bridge/app/oauth-client"),
            ("BRIDGE_OAUTH_REDIRECT_URI", "https://api.example.com/v1/oauth/callback"),
            ("BRIDGE_ALLOWED_RETURN_URLS", "https://app.example.com/integrations, https://eu.example.com/"),
        ])
    }

    fn load(vars: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn defaults_apply_when_optional_values_are_absent() {
        let config = load(&base()).unwrap();
        assert_eq!(config.oauth.auth_base_url.as_str(), "https://auth.atlassian.com/");
        assert_eq!(config.oauth.api_base_url.as_str(), "https://api.atlassian.com/");
        assert_eq!(config.oauth.allowed_return_urls.len(), 2);
        assert_eq!(config.oauth.state_ttl, Duration::from_secs(600));
        assert_eq!(config.oauth.confirm_ttl, Duration::from_secs(600));
        assert_eq!(config.tenant_claim, "tenant_id");
        assert_eq!(config.http.max_attempts, 4);
        assert_eq!(config.http.first_byte_timeout, Duration::from_secs(5));
        assert!(config.http.first_byte_timeout < config.http.timeout);
        assert_eq!(config.http.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(config.tenant_slots, 4);
        assert_eq!(config.metrics_namespace, "AtlassianBridge");
        // The PDF's CJK font is the fonts layer's file.
        assert_eq!(config.cjk_font_path, std::path::Path::new("/opt/fonts/NotoSansCJK-Regular.ttc"));
        // The egress guard is strict unless the operator (http) or a test stack (loopback) says so.
        assert_eq!(config.egress, EgressPolicy::default());
        assert!(!config.egress.allow_loopback && !config.egress.allow_http);
        // Five refusals in 15 minutes lock a destination for 15 minutes.
        assert_eq!(
            config.lockout,
            DestinationLockout { threshold: 5, window: Duration::from_secs(900), cool_down: Duration::from_secs(900) }
        );
    }

    #[test]
    fn a_missing_value_is_named() {
        let mut vars = base();
        vars.remove("BRIDGE_TABLE_NAME");
        assert_eq!(load(&vars).unwrap_err(), ConfigError::Missing("BRIDGE_TABLE_NAME"));
    }

    #[test]
    fn malformed_values_are_refused_with_the_variable_name() {
        for (name, value) in [
            ("BRIDGE_METRICS_NAMESPACE", "AWS/Lambda"),
            ("BRIDGE_METRICS_NAMESPACE", "bridge{prod}"),
            ("BRIDGE_OAUTH_REDIRECT_URI", "not a url"),
            ("BRIDGE_ALLOWED_RETURN_URLS", "ftp://x.example.com/"),
            ("BRIDGE_OAUTH_STATE_TTL_SECONDS", "601"),
            ("BRIDGE_OAUTH_STATE_TTL_SECONDS", "0"),
            ("BRIDGE_OAUTH_CONFIRM_TTL_SECONDS", "601"),
            ("BRIDGE_OAUTH_CONFIRM_TTL_SECONDS", "0"),
            ("BRIDGE_HTTP_TIMEOUT_MS", "ten"),
            ("BRIDGE_HTTP_MAX_ATTEMPTS", "0"),
            ("BRIDGE_EGRESS_ALLOW_LOOPBACK_FOR_TESTS", "yes"),
            ("BRIDGE_HTTP_FIRST_BYTE_TIMEOUT_MS", "0"),
            ("BRIDGE_HTTP_FIRST_BYTE_TIMEOUT_MS", "10001"),
            ("BRIDGE_HTTP_MAX_BODY_BYTES", "1000"),
            ("BRIDGE_TENANT_SLOTS", "0"),
            ("BRIDGE_DESTINATION_LOCKOUT_THRESHOLD", "0"),
            ("BRIDGE_DESTINATION_LOCKOUT_WINDOW_SECONDS", "0"),
            ("BRIDGE_DESTINATION_LOCKOUT_COOL_DOWN_SECONDS", "-5"),
            ("BRIDGE_DESTINATION_LOCKOUT_THRESHOLD", "99999999999"),
            ("BRIDGE_CJK_FONT_PATH", "fonts/NotoSansCJK-Regular.ttc"),
        ] {
            let mut vars = base();
            vars.insert(name, value);
            match load(&vars) {
                Err(ConfigError::Malformed { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}={value} gave {other:?}"),
            }
        }
    }

    /// Only a test build shifts the clock; a release build ignores the variable.
    #[test]
    fn the_test_clock_offset_applies_only_to_test_builds() {
        let mut vars = base();
        vars.insert("BRIDGE_TEST_CLOCK_OFFSET_SECONDS", "5184000");
        let offset = load(&vars).unwrap().clock.offset();
        if cfg!(feature = "fault-injection") {
            assert_eq!(offset, time::Duration::days(60));
            vars.insert("BRIDGE_TEST_CLOCK_OFFSET_SECONDS", "-5");
            assert!(matches!(
                load(&vars),
                Err(ConfigError::Malformed { name: "BRIDGE_TEST_CLOCK_OFFSET_SECONDS", .. })
            ));
        } else {
            assert_eq!(offset, time::Duration::ZERO);
        }
        assert_eq!(load(&base()).unwrap().clock, Clock::system());
    }

    /// The `"BRIDGE_..."` string literals in Rust source.
    fn bridge_names_in(source: &str) -> std::collections::BTreeSet<String> {
        source
            .match_indices("\"BRIDGE_")
            .filter_map(|(at, _)| {
                let rest = &source[at + 1..];
                let end = rest.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))?;
                rest[end..].starts_with('"').then(|| rest[..end].to_owned())
            })
            .collect()
    }

    /// shared/env.json is the one list of the functions' variables (the infra, the local stack and
    /// the README read it too): every `BRIDGE_*` name the code reads is in it, and it lists no
    /// `BRIDGE_*` name the code does not read. The readers: this file (its code, not its tests) and
    /// faults.rs (`BRIDGE_TEST_CRASH_AT`, test builds only).
    #[test]
    fn every_variable_read_is_in_shared_env_json_and_nothing_else() {
        let this = include_str!("config.rs");
        let code = &this[..this.find("#[cfg(test)]").unwrap()];
        let mut read = bridge_names_in(code);
        read.extend(bridge_names_in(include_str!("faults.rs")));

        let doc: serde_json::Value = serde_json::from_str(include_str!("../env.json")).unwrap();
        let listed: std::collections::BTreeSet<String> = doc["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .filter(|n| n.starts_with("BRIDGE_"))
            .collect();
        let unlisted: Vec<_> = read.difference(&listed).collect();
        let unread: Vec<_> = listed.difference(&read).collect();
        assert!(unlisted.is_empty(), "read but not in shared/env.json: {unlisted:?}");
        assert!(unread.is_empty(), "in shared/env.json but read nowhere: {unread:?}");
    }

    /// The list's `required: true` (for every function) is what from_lookup refuses to load without.
    #[test]
    fn shared_env_json_marks_exactly_the_required_variables() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("../env.json")).unwrap();
        for v in doc["variables"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            // BRIDGE_EVENT_BUS_NAME is required only by the publishing functions (app.rs checks it).
            let required = v["required"] == true && v["functions"] == "all";
            let mut vars = base();
            let was_set = vars.remove(name).is_some();
            assert_eq!(was_set, required, "{name}: base() holds exactly the required variables");
            if required {
                assert!(matches!(load(&vars), Err(ConfigError::Missing(n)) if n == name), "{name}");
            }
        }
    }
}
