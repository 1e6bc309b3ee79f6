//! Shared harness for the job tests: Atlassian as in-process servers (wiremock responders that
//! keep state), sessions that may reach them on 127.0.0.1, the in-memory stores, and thin
//! adapters over the job entry points — so a rename in the jobs touches this file only.
#![allow(dead_code)] // each test binary uses part of it

pub mod confluence;
pub mod jira;
pub mod stores;

use std::sync::Arc;
use std::time::Duration;

use bridge::atlassian::{Credentials, EgressPolicy, Flavour, Session, Transport};
use bridge::config::{HttpConfig, SearchIndex};
use bridge::domain::{Product, TenantId};
use bridge::error::ErrorCode;
use bridge::ids::{IssueTypeId, ProjectKey};
use bridge::issues::{ActionItem, CreateContext, IssueJob, ItemResult};
use bridge::jobs::JobOutcome;
use bridge::markers::Markers;
use bridge::reports::{Publication, PublishJob, Report};
use bridge::settings::{ConfluenceSettings, JiraSettings, ParentTitles};
use serde_json::json;
use url::Url;
use wiremock::MockServer;

#[cfg(feature = "fault-injection")]
#[allow(unused_imports)] // only the crash tests use it
pub use bridge::faults::CrashSwitch;
pub use stores::Stores;

pub const TENANT: &str = "acme";
pub const CLOUD_ID: &str = "a1b2c3d4-0000-4000-8000-00000000c1d1";
/// How long a job's claims hold; the tests let them lapse with [`stores::advance`], never by waiting.
pub const LEASE: Duration = Duration::from_secs(30);

pub fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap()
}

pub fn markers() -> Markers {
    Markers::derive(&[7u8; 32])
}

/// The deployed transport's settings, with short timeouts: three attempts, `Retry-After` waited
/// up to 5 s, 20 s for a request with all its retries.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        max_attempts: 3,
        max_retry_wait: Duration::from_secs(5),
        retry_budget: Duration::from_secs(20),
        first_byte_timeout: Duration::from_secs(5),
        max_body_bytes: 10 * 1024 * 1024,
    }
}

/// What `BRIDGE_EGRESS_ALLOW_LOOPBACK_FOR_TESTS=true` gives the local test stack: plain http to
/// 127.0.0.1 only (`allow_http` stays off).
pub fn egress() -> EgressPolicy {
    EgressPolicy { allow_http: false, allow_loopback: true }
}

pub fn transport() -> Transport {
    Transport::new(&http_config(), &egress()).expect("transport")
}

/// A Cloud session on the mock server, as an OAuth connection's: bound to the site's cloudId,
/// links pointing at the site.
pub fn session(server: &MockServer, product: Product) -> Session {
    session_with(server, product, Credentials::Bearer("access-token-1".to_owned().into()))
}

pub fn session_with(server: &MockServer, product: Product, credentials: Credentials) -> Session {
    let base = Url::parse(&server.uri()).unwrap();
    Session::new(transport(), base, product, Flavour::Cloud, credentials)
        .with_site_id(CLOUD_ID)
        .with_web_root(Url::parse("https://acme.atlassian.net/").unwrap())
}

// ---------------------------------------------------------------------------------- publishing

pub fn confluence_settings() -> ConfluenceSettings {
    ConfluenceSettings {
        space_key: confluence::SPACE_KEY.into(),
        parent_titles: ParentTitles::default(),
        locale: None,
        jira_application_link: None,
    }
}

pub fn retrospective(report_id: &str) -> Report {
    serde_json::from_value(json!({
        "kind": "retrospective",
        "report_id": report_id,
        "title": "Sprint 42 retrospective",
        "team": "Platform",
        "date": "2026-11-20",
        "facilitator": "Ana",
        "participants": ["Ana", "Ben"],
        "link": "https://app.example/retros/42",
        "sections": [{"title": "Went well", "items": [{"text": "Deploys are boring now", "votes": 3}]}],
        "action_items": []
    }))
    .unwrap()
}

/// The keyed anchor the report's page carries.
pub fn page_marker(report_id: &str) -> String {
    markers().page(TENANT, report_id)
}

/// How a publication ended, whatever the job's own outcome type is called.
#[derive(Debug)]
pub enum Ended {
    Published(Publication),
    Failed(Publication),
    Stopped(ErrorCode),
}

impl Ended {
    pub fn published(self) -> Publication {
        match self {
            Self::Published(p) => p,
            other => panic!("expected the publication to be published, it ended {other:?}"),
        }
    }
}

/// One publishing function instance: its session and the shared stores.
pub struct Publisher {
    pub session: Session,
    pub stores: Stores,
    pub settings: ConfluenceSettings,
    pub markers: Markers,
    pub tenant: TenantId,
}

impl Publisher {
    pub fn new(server: &MockServer, stores: &Stores) -> Self {
        Self {
            session: session(server, Product::Confluence),
            stores: stores.clone(),
            settings: confluence_settings(),
            markers: markers(),
            tenant: tenant(),
        }
    }

    /// One delivery of `report` with `key`.
    pub async fn run(&self, report: &Report, key: &str) -> Ended {
        let job = PublishJob {
            session: &self.session,
            store: self.stores.publications.as_ref(),
            tenant: &self.tenant,
            settings: &self.settings,
            lease: LEASE,
            markers: &self.markers,
            fonts: bridge::reports::FontBook::local(),
        };
        match job.run(report, key).await.expect("store") {
            JobOutcome::Done(p) => Ended::Published(p),
            JobOutcome::Failed(p) => Ended::Failed(p),
            JobOutcome::Stopped(error) => Ended::Stopped(error.code),
        }
    }

    /// The stored record of the publication for `key`.
    pub async fn record(&self, key: &str) -> Option<Publication> {
        use bridge::store::PublicationStore;
        let id = bridge::reports::publication_id(&self.tenant, key);
        self.stores.publications.get_publication(&self.tenant, &id).await.expect("store")
    }
}

// ------------------------------------------------------------------------------------- issues

pub const PROJECT: &str = "ENG";

pub fn jira_settings() -> JiraSettings {
    serde_json::from_value(json!({"project_key": PROJECT, "issue_type_id": "10001"})).unwrap()
}

/// The create screen of the project's issue type (`createmeta` fields): the marker label needs
/// `labels`.
pub fn create_screen() -> Vec<bridge::atlassian::jira::CreateMetaField> {
    serde_json::from_value(create_screen_json()).unwrap()
}

/// [`create_screen`] as Jira Cloud's createmeta lists it (the mock Jira answers it).
pub fn create_screen_json() -> serde_json::Value {
    json!([
        {"fieldId": "summary", "name": "Summary", "required": true},
        {"fieldId": "issuetype", "name": "Issue Type", "required": true},
        {"fieldId": "project", "name": "Project", "required": true},
        {"fieldId": "description", "name": "Description", "required": false},
        {"fieldId": "labels", "name": "Labels", "required": false},
        {"fieldId": "duedate", "name": "Due date", "required": false}
    ])
}

pub fn action_item(id: &str, title: &str) -> ActionItem {
    serde_json::from_value(json!({"id": id, "title": title, "description": "From the retrospective"})).unwrap()
}

/// The keyed label an item's issue carries.
pub fn issue_marker(item_id: &str) -> String {
    markers().issue(TENANT, item_id)
}

/// One issue-creating function instance.
pub struct IssueCreator {
    pub session: Session,
    pub stores: Stores,
    pub settings: JiraSettings,
    pub fields: Vec<bridge::atlassian::jira::CreateMetaField>,
    pub markers: Markers,
    pub tenant: TenantId,
    /// How long its claims hold ([`LEASE`] unless a test shortens it).
    pub lease: Duration,
}

impl IssueCreator {
    pub fn new(server: &MockServer, stores: &Stores) -> Self {
        Self {
            session: session(server, Product::Jira),
            stores: stores.clone(),
            settings: jira_settings(),
            fields: create_screen(),
            markers: markers(),
            tenant: tenant(),
            lease: LEASE,
        }
    }

    /// One delivery of the job for `items`: results in the order of `items`.
    pub async fn run(&self, items: &[ActionItem]) -> Vec<ItemResult> {
        self.run_on(items, &self.fields).await
    }

    /// One delivery as the function runs it: the create screen through
    /// [`bridge::issues::create_screen`] (Jira's createmeta or the tenant's cache), then the job.
    pub async fn run_asking_for_the_screen(&self, items: &[ActionItem]) -> Vec<ItemResult> {
        let lookups = bridge::issues::Lookups {
            cache: self.stores.lookups.as_ref(),
            tenant: &self.tenant,
            markers: &self.markers,
        };
        let (project, issue_type) =
            (ProjectKey::new(&self.settings.project_key), IssueTypeId::new(&self.settings.issue_type_id));
        let fields =
            bridge::issues::create_screen(&self.session, &lookups, &project, &issue_type).await.expect("createmeta");
        self.run_on(items, &fields).await
    }

    async fn run_on(
        &self,
        items: &[ActionItem],
        fields: &[bridge::atlassian::jira::CreateMetaField],
    ) -> Vec<ItemResult> {
        let job = IssueJob {
            ctx: CreateContext {
                session: &self.session,
                tenant: self.tenant.as_str(),
                settings: &self.settings,
                fields,
                retrospective: None,
                markers: &self.markers,
            },
            ledger: self.stores.ledger.as_ref(),
            cache: self.stores.lookups.as_ref(),
            tenant: &self.tenant,
            lease: self.lease,
            // Jira's index shows a create at once here; a miss is trusted right away.
            search_index: SearchIndex { delay: Duration::ZERO, max_wait: Duration::ZERO },
        };
        job.run(items).await.expect("store")
    }
}

/// Runs `n` deliveries of the same job at once, each on its own task (as separate instances
/// would), and collects what each answered.
pub async fn concurrently<T, F, Fut>(n: usize, delivery: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(delivery(i))).collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.expect("delivery panicked"));
    }
    out
}

pub fn arc<T>(value: T) -> Arc<T> {
    Arc::new(value)
}

// -------------------------------------------------------------------------------------- OAuth

pub mod oauth {
    use std::sync::Arc;
    use std::time::Duration;

    use bridge::access::Connector;
    use bridge::config::OAuthConfig;
    use bridge::domain::{Connection, Product, Site};
    use bridge::oauth::{AtlassianOAuth, TokenProvider, TokenSet};
    use bridge::store::{ConnectionStore, CredentialStore};
    use secrecy::SecretString;
    use time::OffsetDateTime;
    use url::Url;
    use wiremock::MockServer;

    use super::stores::Stores;
    use super::{CLOUD_ID, tenant, transport};

    pub const SECRET: &str = "bridge/acme/oauth-jira";
    /// Refresh when the token expires within this (the deployed default is minutes).
    pub const LEEWAY: Duration = Duration::from_secs(300);

    /// The mock server as Atlassian's authorization server (`/oauth/token`) and API gateway
    /// (`/ex/{product}/{cloudId}`).
    pub fn config(server: &MockServer) -> OAuthConfig {
        let base = Url::parse(&format!("{}/", server.uri())).unwrap();
        OAuthConfig {
            client_id: "bridge-client".into(),
            client_secret_name: "bridge/oauth-client".into(),
            redirect_uri: Url::parse("https://bridge.example/v1/oauth/callback").unwrap(),
            auth_base_url: base.clone(),
            api_base_url: base,
            allowed_return_urls: vec![],
            state_ttl: Duration::from_secs(600),
            confirm_ttl: Duration::from_secs(600),
            refresh_leeway: LEEWAY,
        }
    }

    pub fn connection() -> Connection {
        let mut connection = bridge::store::memory::oauth_connection(&tenant(), Product::Jira, "oauth-jira");
        connection.site =
            Some(Site { cloud_id: CLOUD_ID.into(), url: "https://acme.atlassian.net".into(), name: "acme".into() });
        connection.secret_name = SECRET.into();
        connection
    }

    pub fn tokens(access: &str, refresh: &str, expires_in: time::Duration) -> TokenSet {
        TokenSet {
            access_token: SecretString::from(access.to_owned()),
            refresh_token: SecretString::from(refresh.to_owned()),
            expires_at: OffsetDateTime::now_utc() + expires_in,
            scopes: vec![],
            issued_at: None,
        }
    }

    /// Stores a connected OAuth connection whose secret holds `stored`.
    pub async fn connect(stores: &Stores, stored: &TokenSet) -> Connection {
        let connection = connection();
        stores.connections.put_all(std::slice::from_ref(&connection)).await.unwrap();
        stores.credentials.put(SECRET, &stored.to_secret()).await.unwrap();
        connection
    }

    pub async fn stored_tokens(stores: &Stores) -> TokenSet {
        TokenSet::from_secret(&stores.credentials.get(SECRET).await.unwrap().unwrap().value).unwrap()
    }

    /// The provider one function instance builds: Atlassian's token endpoint over the transport.
    pub fn provider(server: &MockServer, stores: &Stores) -> TokenProvider {
        let endpoint = AtlassianOAuth::new(&config(server), SecretString::from("client-secret"), transport()).unwrap();
        TokenProvider::new(
            stores.connections.clone(),
            stores.credentials.clone(),
            stores.leases.clone(),
            Arc::new(endpoint),
            LEEWAY,
        )
    }

    /// What turns a stored connection into a session, as every function builds it.
    pub fn connector(server: &MockServer, stores: &Stores) -> Connector {
        Connector::new(
            transport(),
            config(server).api_base_url,
            stores.connections.clone(),
            stores.credentials.clone(),
            provider(server, stores),
        )
    }
}
