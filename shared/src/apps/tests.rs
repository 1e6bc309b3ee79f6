use std::time::Duration;

use time::OffsetDateTime;

use super::*;
use crate::store::memory::{MemoryStore, oauth_connection};

const TTL: Duration = Duration::from_secs(600);

fn signer() -> StateSigner {
    StateSigner::new(b"k".repeat(32))
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn stores(store: &MemoryStore) -> Stores<'_> {
    Stores {
        installations: store.installations.as_ref(),
        connections: store.connections.as_ref(),
        credentials: store.credentials.as_ref(),
    }
}

async fn installed(store: &MemoryStore, kind: AppKind, id: &str, product: Product) -> Installation {
    let now = OffsetDateTime::now_utc();
    let installation = Installation {
        kind,
        id: id.into(),
        product,
        base_url: match product {
            Product::Confluence => "https://acme.atlassian.net/wiki".into(),
            Product::Jira => "https://acme.atlassian.net".into(),
        },
        cloud_id: Some("cloud-acme".into()),
        secret_name: format!("apps/{}/{id}", kind.as_str()),
        status: InstallationStatus::Installed,
        tenant: None,
        generation: 1,
        installed_at: now,
        updated_at: now,
    };
    assert!(store.installations.put_installation(&installation).await.unwrap());
    store.credentials.put(&installation.secret_name, &"shared-secret".to_owned().into()).await.unwrap();
    installation
}

#[tokio::test]
async fn a_code_links_the_installation_as_the_tenants_connection_once() {
    let store = MemoryStore::new();
    let (acme, now) = (tenant("acme"), OffsetDateTime::now_utc());
    let install = installed(&store, AppKind::Connect, "client-1", Product::Confluence).await;
    let issued =
        issue_code(store.installations.as_ref(), &signer(), &acme, Product::Confluence, TTL, now).await.unwrap();
    assert_eq!(issued.expires_in, 600);
    assert_eq!(issued.code.len(), 23, "{}", issued.code);

    // Typed back in lower case without the dashes, it still matches.
    let typed = issued.code.replace('-', "").to_lowercase();
    let connection = redeem(stores(&store), &signer(), &typed, &install, now).await.unwrap();
    assert_eq!((connection.auth_type, connection.status), (AuthType::Connect, ConnectionStatus::Connected));
    assert_eq!(connection.grant_id, "client-1");
    assert_eq!(connection.secret_name, install.secret_name);
    let site = connection.site.clone().unwrap();
    assert_eq!(
        (site.cloud_id.as_str(), site.url.as_str(), site.name.as_str()),
        ("cloud-acme", "https://acme.atlassian.net", "acme")
    );
    assert_eq!(connection.scopes, ["READ", "WRITE", "DELETE"]);
    assert_eq!(store.connections.get(&acme, Product::Confluence).await.unwrap(), Some(connection));
    let linked = store.installations.installation(AppKind::Connect, "client-1").await.unwrap().unwrap();
    assert_eq!(linked.tenant, Some(acme.clone()));

    // The code is used up.
    let again = redeem(stores(&store), &signer(), &issued.code, &install, now).await.unwrap_err();
    assert!(matches!(again, LinkError::InvalidCode), "{again:?}");
}

#[tokio::test]
async fn wrong_late_replaced_and_other_product_codes_link_nothing() {
    let store = MemoryStore::new();
    let (acme, now) = (tenant("acme"), OffsetDateTime::now_utc());
    let jira = installed(&store, AppKind::Forge, "ari:cloud:ecosystem::installation/1", Product::Jira).await;
    let codes = store.installations.as_ref();

    let for_confluence = issue_code(codes, &signer(), &acme, Product::Confluence, TTL, now).await.unwrap();
    assert!(matches!(
        redeem(stores(&store), &signer(), &for_confluence.code, &jira, now).await,
        Err(LinkError::InvalidCode)
    ));

    let first = issue_code(codes, &signer(), &acme, Product::Jira, TTL, now).await.unwrap();
    let second = issue_code(codes, &signer(), &acme, Product::Jira, TTL, now).await.unwrap();
    assert!(matches!(redeem(stores(&store), &signer(), &first.code, &jira, now).await, Err(LinkError::InvalidCode)));
    let late = now + TTL + Duration::from_secs(1);
    assert!(matches!(redeem(stores(&store), &signer(), &second.code, &jira, late).await, Err(LinkError::InvalidCode)));
    assert!(matches!(redeem(stores(&store), &signer(), "NOT-A-CODE", &jira, now).await, Err(LinkError::InvalidCode)));
    // Another deployment's key makes other digests: its codes mean nothing here.
    let third = issue_code(codes, &signer(), &acme, Product::Jira, TTL, now).await.unwrap();
    let elsewhere = StateSigner::new(b"z".repeat(32));
    assert!(matches!(redeem(stores(&store), &elsewhere, &third.code, &jira, now).await, Err(LinkError::InvalidCode)));
    assert!(store.connections.get(&acme, Product::Jira).await.unwrap().is_none());
}

#[tokio::test]
async fn one_installation_serves_one_tenant_and_an_uninstalled_one_none() {
    let store = MemoryStore::new();
    let (acme, globex, now) = (tenant("acme"), tenant("globex"), OffsetDateTime::now_utc());
    let install = installed(&store, AppKind::Connect, "client-2", Product::Jira).await;
    let codes = store.installations.as_ref();
    let code = issue_code(codes, &signer(), &acme, Product::Jira, TTL, now).await.unwrap();
    redeem(stores(&store), &signer(), &code.code, &install, now).await.unwrap();

    let theirs = issue_code(codes, &signer(), &globex, Product::Jira, TTL, now).await.unwrap();
    let refused = redeem(stores(&store), &signer(), &theirs.code, &install, now).await.unwrap_err();
    assert!(matches!(refused, LinkError::Unavailable), "{refused:?}");
    assert_eq!(ApiError::from(refused).code, ErrorCode::InstallationLinked);
    assert!(store.connections.get(&globex, Product::Jira).await.unwrap().is_none());

    // Uninstalled: the tenant's connection goes, the record stays, no link is possible.
    let was = store.installations.uninstall(AppKind::Connect, "client-2", now).await.unwrap().unwrap();
    uninstalled(stores(&store), &was).await.unwrap();
    assert!(store.connections.get(&acme, Product::Jira).await.unwrap().is_none());
    let kept = store.installations.installation(AppKind::Connect, "client-2").await.unwrap().unwrap();
    assert_eq!(kept.status, InstallationStatus::Uninstalled);
    let code = issue_code(codes, &signer(), &acme, Product::Jira, TTL, now).await.unwrap();
    assert!(matches!(redeem(stores(&store), &signer(), &code.code, &kept, now).await, Err(LinkError::Unavailable)));
}

#[tokio::test]
async fn linking_replaces_the_products_connection_and_retires_what_it_left() {
    let store = MemoryStore::new();
    let (acme, now) = (tenant("acme"), OffsetDateTime::now_utc());
    // An OAuth connection with its own secret, then a Connect installation replacing it.
    let oauth = Connection {
        secret_name: "s/acme/oauth-jira-1".into(),
        ..oauth_connection(&acme, Product::Jira, "oauth-jira-1")
    };
    store.credentials.put(&oauth.secret_name, &"tokens".to_owned().into()).await.unwrap();
    store.connections.put_all(std::slice::from_ref(&oauth)).await.unwrap();
    let connect = installed(&store, AppKind::Connect, "client-3", Product::Jira).await;
    let code = issue_code(store.installations.as_ref(), &signer(), &acme, Product::Jira, TTL, now).await.unwrap();
    redeem(stores(&store), &signer(), &code.code, &connect, now).await.unwrap();
    assert!(store.credentials.get(&oauth.secret_name).await.unwrap().is_none(), "the OAuth secret nothing uses");

    // A Forge installation replacing the Connect one: Connect's installation is unlinked, its secret kept.
    let forge = installed(&store, AppKind::Forge, "ari:forge-3", Product::Jira).await;
    let code = issue_code(store.installations.as_ref(), &signer(), &acme, Product::Jira, TTL, now).await.unwrap();
    let made = redeem(stores(&store), &signer(), &code.code, &forge, now).await.unwrap();
    assert_eq!(made.auth_type, AuthType::Forge);
    assert_eq!(made.scopes, Product::Jira.oauth_scopes());
    let old = store.installations.installation(AppKind::Connect, "client-3").await.unwrap().unwrap();
    assert_eq!((old.tenant.clone(), old.status), (None, InstallationStatus::Installed));
    assert!(store.credentials.get(&connect.secret_name).await.unwrap().is_some());

    // Disconnecting unlinks; the installation can be linked again.
    disconnected(stores(&store), &made, now).await.unwrap();
    assert_eq!(store.installations.installation(AppKind::Forge, "ari:forge-3").await.unwrap().unwrap().tenant, None);
    // An uninstall of an installation the tenant no longer uses leaves its current connection alone.
    let code = issue_code(store.installations.as_ref(), &signer(), &acme, Product::Jira, TTL, now).await.unwrap();
    redeem(stores(&store), &signer(), &code.code, &forge, now).await.unwrap();
    let mut stale = old.clone();
    stale.tenant = Some(acme.clone());
    uninstalled(stores(&store), &stale).await.unwrap();
    assert_eq!(store.connections.get(&acme, Product::Jira).await.unwrap().unwrap().auth_type, AuthType::Forge);
}

#[test]
fn site_urls_drop_confluences_context_path_only() {
    assert_eq!(site_url("https://a.atlassian.net/wiki/", Product::Confluence), "https://a.atlassian.net");
    assert_eq!(site_url("https://a.atlassian.net/wiki", Product::Jira), "https://a.atlassian.net/wiki");
    assert_eq!(site_url("https://a.atlassian.net", Product::Jira), "https://a.atlassian.net");
}
