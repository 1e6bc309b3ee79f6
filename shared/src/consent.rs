//! OAuth consent bound to the tenant that started it.
//!
//! The OAuth `state` proves that *a* tenant started the consent, not that the person who
//! consented belongs to that tenant: tenant A could send its `authorize_url` to an admin of
//! company V, and V's site would land in A's connection. So a consent that comes back is only
//! held: its token pair goes to its own secret, the connections it would make wait in a
//! [`PendingConsent`], and the redirect to the return URL carries a one-time confirmation code.
//! The SaaS backend, which knows which of its users is logged in on that browser, confirms with
//! that code under the tenant's own token (`POST .../oauth/confirm`) within the confirmation
//! window (10 minutes at most). Only then do the connections exist; until then nothing uses the
//! grant, and a connection the tenant already had keeps working. A wrong, reused or foreign code
//! and an expired window end the pending consent and delete its secret.
//!
//! Each consent has its own grant id (`ConsentTarget::new_grant_id`), so a pending grant never
//! shares a secret with a working one.

use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{Connection, ConnectionStatus, ConsentTarget, Product, TenantId};
use crate::error::{ApiError, ErrorCode};
use crate::oauth::{StateSigner, new_confirmation_code};
use crate::store::{ConnectionStore, CredentialStore, PendingConsent, StoreError};

/// The stores a consent lives in: connection records (and pending consents), and secrets.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    pub connections: &'a dyn ConnectionStore,
    pub credentials: &'a dyn CredentialStore,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error(
        "no {0} consent of this tenant waits for that confirmation code (it is wrong, was used already, or belongs to another tenant); start the connection again"
    )]
    Invalid(&'static str),
    #[error("the {0} consent was not confirmed in time and its grant was deleted; start the connection again")]
    Expired(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ConsentError> for ApiError {
    fn from(e: ConsentError) -> Self {
        match e {
            ConsentError::Invalid(_) => ApiError::new(ErrorCode::InvalidConfirmation, e.to_string()),
            ConsentError::Expired(_) => ApiError::new(ErrorCode::ConfirmationExpired, e.to_string()),
            ConsentError::Store(e) => e.into(),
        }
    }
}

/// A consent that came back from Atlassian, its token pair already stored in `secret_name`.
pub struct NewConsent {
    pub tenant: TenantId,
    pub target: ConsentTarget,
    pub grant_id: String,
    pub secret_name: String,
    /// The connections a confirmation makes (`connected` or `site_selection_required`).
    pub connections: Vec<Connection>,
}

/// Holds `consent` until its tenant confirms it within `window`; returns the one-time
/// confirmation code for the redirect (only its digest is stored). An earlier unconfirmed
/// consent of the tenant for the same target is replaced, and its secret deleted.
pub async fn hold(
    stores: Stores<'_>,
    signer: &StateSigner,
    consent: NewConsent,
    now: OffsetDateTime,
    window: Duration,
) -> Result<String, StoreError> {
    let code = new_confirmation_code();
    let pending = PendingConsent {
        tenant: consent.tenant,
        target: consent.target,
        grant_id: consent.grant_id,
        secret_name: consent.secret_name,
        digest: signer.confirmation_digest(&code),
        created_at: now,
        expires_at: now + window,
        connections: consent.connections,
        discarding: false,
    };
    if let Some(replaced) = stores.connections.put_pending(&pending).await? {
        // No confirm can install the replaced grant any more (its record is gone), so its
        // secret is nobody's.
        if replaced.secret_name != pending.secret_name {
            delete_secret(stores, &replaced.secret_name).await;
        }
    }
    expire_tenant(stores, &pending.tenant, now).await;
    Ok(code)
}

/// Confirms the tenant's pending consent for `target` with `code`: the right code, from the
/// tenant that started it, before its window closed, turns it into its connections (replacing
/// the ones it supersedes, whose unused secrets are retired) and answers them. Anything else
/// ends the pending consent, if there is one, and deletes its secret.
pub async fn confirm(
    stores: Stores<'_>,
    signer: &StateSigner,
    tenant: &TenantId,
    target: ConsentTarget,
    code: &str,
    now: OffsetDateTime,
) -> Result<Vec<Connection>, ConsentError> {
    let mut found = None;
    for pending in stores.connections.pending(tenant).await? {
        if pending.target == target {
            found = Some(pending);
        } else if !usable(&pending, now) {
            discard_logged(stores, &pending).await;
        }
    }
    let Some(pending) = found else {
        tracing::warn!(target = target.as_str(), "confirmation for a consent this tenant does not have; refused");
        return Err(ConsentError::Invalid(target.as_str()));
    };
    if now >= pending.expires_at {
        tracing::warn!(target = target.as_str(), "consent confirmed too late; its grant is deleted");
        discard(stores, &pending).await?;
        return Err(ConsentError::Expired(target.as_str()));
    }
    // Constant time: the digest comparison must not tell how much of a guess was right.
    if pending.discarding || !signer.confirmation_matches(code, &pending.digest) {
        tracing::warn!(target = target.as_str(), "wrong confirmation code; the pending consent is deleted");
        discard(stores, &pending).await?;
        return Err(ConsentError::Invalid(target.as_str()));
    }
    let previous = stores.connections.list(tenant).await?;
    let mut confirmed = pending;
    for connection in &mut confirmed.connections {
        connection.updated_at = now;
    }
    if !stores.connections.confirm_pending(&confirmed).await? {
        // Confirmed by a concurrent call with the same code, replaced, or being discarded.
        return Err(ConsentError::Invalid(target.as_str()));
    }
    retire_unused_secrets(stores, tenant, previous).await;
    tracing::info!(target = target.as_str(), "consent confirmed; connections stored");
    Ok(confirmed.connections)
}

/// The tenant's pending consent that covers `product` and can still be confirmed (for status
/// answers and a clear `confirmation_required`); expired ones met on the way are deleted.
pub async fn waiting(
    stores: Stores<'_>,
    tenant: &TenantId,
    product: Product,
    now: OffsetDateTime,
) -> Result<Option<PendingConsent>, StoreError> {
    let mut found = None;
    for pending in stores.connections.pending(tenant).await? {
        if !usable(&pending, now) {
            discard_logged(stores, &pending).await;
        } else if found.is_none() && pending.covers(product) {
            found = Some(pending);
        }
    }
    Ok(found)
}

/// What a status answer shows of a pending consent: that it waits, not which site or user it
/// reached (which may be another company's, when the consent link was forwarded).
pub fn pending_view(pending: &PendingConsent, product: Product) -> Option<Connection> {
    let mut connection = pending.connections.iter().find(|c| c.product == product)?.clone();
    connection.status = ConnectionStatus::PendingConfirmation;
    connection.site = None;
    connection.candidate_sites = Vec::new();
    connection.acting_as = None;
    Some(connection)
}

/// Ends every pending consent of the tenant that covers `product` (a disconnect), with its secret.
pub async fn discard_covering(stores: Stores<'_>, tenant: &TenantId, product: Product) -> Result<(), StoreError> {
    for pending in stores.connections.pending(tenant).await? {
        if pending.covers(product) {
            discard(stores, &pending).await?;
        }
    }
    Ok(())
}

/// For the scheduled sweep: deletes every tenant's pending consents whose confirmation window
/// closed before `now`, each with its secret, so a consent nobody confirms never outlives its
/// window for long even when nobody calls again. Returns how many it deleted; one that fails
/// is logged and left for the next run.
pub async fn expire_pending(stores: Stores<'_>, now: OffsetDateTime) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for pending in stores.connections.expired_pending(now).await? {
        match discard(stores, &pending).await {
            Ok(()) => deleted += 1,
            Err(e) => tracing::warn!(error = %e, "could not delete an expired pending consent; the next sweep retries"),
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "expired pending consents deleted");
    }
    Ok(deleted)
}

/// Deletes one pending consent's grant. It is marked first, so that no confirmation can install
/// it any more, then its secret goes, then its record: an interrupted discard leaves the marked
/// record (expired by then or soon), which the next call or sweep finishes. A consent confirmed
/// or replaced meanwhile is left alone: its secret is no longer this discard's to delete.
pub async fn discard(stores: Stores<'_>, pending: &PendingConsent) -> Result<(), StoreError> {
    if !stores.connections.discard_pending(&pending.tenant, pending.target, &pending.grant_id).await? {
        return Ok(());
    }
    stores.credentials.delete(&pending.secret_name).await?;
    stores.connections.remove_pending(&pending.tenant, pending.target, &pending.grant_id).await?;
    tracing::info!(target = pending.target.as_str(), "pending consent deleted with its secret");
    Ok(())
}

/// A re-consent can move a product to another grant; the old grant's secret goes once no
/// connection uses it.
pub async fn retire_unused_secrets(stores: Stores<'_>, tenant: &TenantId, previous: Vec<Connection>) {
    let current = match stores.connections.list(tenant).await {
        Ok(current) => current,
        Err(e) => return tracing::warn!(error = %e, "could not list connections to retire old secrets"),
    };
    for old in previous {
        if current.iter().all(|c| c.secret_name != old.secret_name) {
            delete_secret(stores, &old.secret_name).await;
        }
    }
}

fn usable(pending: &PendingConsent, now: OffsetDateTime) -> bool {
    !pending.discarding && now < pending.expires_at
}

/// Deletes the tenant's pending consents whose window closed (cheap: one query of the tenant's
/// few pending consents); failures are logged, the sweep retries.
pub async fn expire_tenant(stores: Stores<'_>, tenant: &TenantId, now: OffsetDateTime) {
    match stores.connections.pending(tenant).await {
        Ok(all) => {
            for pending in all.iter().filter(|p| !usable(p, now)) {
                discard_logged(stores, pending).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list pending consents to expire them"),
    }
}

async fn discard_logged(stores: Stores<'_>, pending: &PendingConsent) {
    if let Err(e) = discard(stores, pending).await {
        tracing::warn!(error = %e, "could not delete an expired pending consent; the sweep retries");
    }
}

async fn delete_secret(stores: Stores<'_>, name: &str) {
    if let Err(e) = stores.credentials.delete(name).await {
        tracing::warn!(error = %e, "could not delete a secret no connection uses");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Site;
    use crate::store::memory::{MemoryStore, oauth_connection};

    const WINDOW: Duration = Duration::from_secs(600);

    fn signer() -> StateSigner {
        StateSigner::new(b"k".repeat(32))
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn stores(store: &MemoryStore) -> Stores<'_> {
        Stores { connections: store.connections.as_ref(), credentials: store.credentials.as_ref() }
    }

    /// A consent of `tenant` for `target` that came back, its secret stored.
    async fn came_back(
        store: &MemoryStore,
        tenant: &TenantId,
        target: ConsentTarget,
        now: OffsetDateTime,
    ) -> (String, String) {
        let grant_id = target.new_grant_id();
        let secret_name = format!("s/{tenant}/{grant_id}");
        store.credentials.put(&secret_name, &"tokens".to_owned().into()).await.unwrap();
        let connections = target
            .products()
            .iter()
            .map(|&p| Connection { secret_name: secret_name.clone(), ..oauth_connection(tenant, p, &grant_id) })
            .collect();
        let consent =
            NewConsent { tenant: tenant.clone(), target, grant_id, secret_name: secret_name.clone(), connections };
        (hold(stores(store), &signer(), consent, now, WINDOW).await.unwrap(), secret_name)
    }

    /// A fresh store in which acme's consent for `target` came back now: (store, acme, now, code, secret).
    async fn acme_came_back(target: ConsentTarget) -> (MemoryStore, TenantId, OffsetDateTime, String, String) {
        let store = MemoryStore::new();
        let (acme, now) = (tenant("acme"), OffsetDateTime::now_utc());
        let (code, secret) = came_back(&store, &acme, target, now).await;
        (store, acme, now, code, secret)
    }

    async fn has_secret(store: &MemoryStore, name: &str) -> bool {
        store.credentials.get(name).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn the_right_code_from_the_right_tenant_in_time_makes_the_connection() {
        let (store, acme, now, code, secret) = acme_came_back(ConsentTarget::Jira).await;
        // Until confirmed, there is no connection, only a pending consent.
        assert!(store.connections.get(&acme, Product::Jira).await.unwrap().is_none());
        let waiting = waiting(stores(&store), &acme, Product::Jira, now).await.unwrap().unwrap();
        assert_eq!(pending_view(&waiting, Product::Jira).unwrap().status, ConnectionStatus::PendingConfirmation);
        assert!(pending_view(&waiting, Product::Jira).unwrap().site.is_none());

        let at = now + Duration::from_secs(599);
        let made = confirm(stores(&store), &signer(), &acme, ConsentTarget::Jira, &code, at).await.unwrap();
        assert_eq!(made.len(), 1);
        let stored = store.connections.get(&acme, Product::Jira).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.secret_name.as_str()), (ConnectionStatus::Connected, secret.as_str()));
        assert!(has_secret(&store, &secret).await);
        assert!(store.connections.pending(&acme).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_ten_minute_window_is_exact_and_an_expired_confirmation_deletes_the_grant() {
        let (store, acme, now, code, secret) = acme_came_back(ConsentTarget::Jira).await;
        let late = now + Duration::from_secs(600);
        let err = confirm(stores(&store), &signer(), &acme, ConsentTarget::Jira, &code, late).await.unwrap_err();
        assert!(matches!(err, ConsentError::Expired("jira")), "{err:?}");
        assert_eq!(ApiError::from(err).code, "confirmation_expired");
        assert!(!has_secret(&store, &secret).await);
        assert!(store.connections.pending(&acme).await.unwrap().is_empty());
        assert!(store.connections.get(&acme, Product::Jira).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_code_works_once() {
        let (store, acme, now, code, secret) = acme_came_back(ConsentTarget::Jira).await;
        confirm(stores(&store), &signer(), &acme, ConsentTarget::Jira, &code, now).await.unwrap();
        let again = confirm(stores(&store), &signer(), &acme, ConsentTarget::Jira, &code, now).await.unwrap_err();
        assert_eq!(ApiError::from(again).code, "invalid_confirmation");
        // The confirmed connection is untouched by the reuse.
        assert!(has_secret(&store, &secret).await);
        assert!(store.connections.get(&acme, Product::Jira).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn another_tenant_cannot_confirm_and_a_wrong_code_ends_the_consent() {
        let store = MemoryStore::new();
        let (attacker, victim, now) = (tenant("attacker"), tenant("victim"), OffsetDateTime::now_utc());
        let (code, secret) = came_back(&store, &attacker, ConsentTarget::Jira, now).await;
        // The victim's SaaS session holds the code, but the consent is not the victim's.
        let err = confirm(stores(&store), &signer(), &victim, ConsentTarget::Jira, &code, now).await.unwrap_err();
        assert!(matches!(err, ConsentError::Invalid(_)));
        assert!(store.connections.get(&victim, Product::Jira).await.unwrap().is_none());
        // The tenant that started it has no code; a guess ends the consent and its grant.
        let err = confirm(stores(&store), &signer(), &attacker, ConsentTarget::Jira, "guess", now).await.unwrap_err();
        assert!(matches!(err, ConsentError::Invalid(_)));
        assert!(!has_secret(&store, &secret).await);
        let late = confirm(stores(&store), &signer(), &attacker, ConsentTarget::Jira, &code, now).await;
        assert!(matches!(late, Err(ConsentError::Invalid(_))));
        assert!(store.connections.list(&attacker).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_pending_consent_leaves_a_working_connection_alone_until_confirmed() {
        let store = MemoryStore::new();
        let (acme, now) = (tenant("acme"), OffsetDateTime::now_utc());
        let old = oauth_connection(&acme, Product::Jira, "oauth-jira-old");
        store.connections.put_all(std::slice::from_ref(&old)).await.unwrap();
        store.credentials.put(&old.secret_name, &"old".to_owned().into()).await.unwrap();

        // An unconfirmed consent expires: only it and its secret go.
        let (_, first) = came_back(&store, &acme, ConsentTarget::Jira, now).await;
        assert_eq!(store.connections.get(&acme, Product::Jira).await.unwrap().unwrap(), old);
        assert_eq!(expire_pending(stores(&store), now + WINDOW).await.unwrap(), 1);
        assert!(!has_secret(&store, &first).await);
        assert_eq!(store.connections.get(&acme, Product::Jira).await.unwrap().unwrap(), old);
        assert!(has_secret(&store, &old.secret_name).await);

        // A confirmed one replaces it and retires the old grant's secret.
        let (code, second) = came_back(&store, &acme, ConsentTarget::Jira, now).await;
        confirm(stores(&store), &signer(), &acme, ConsentTarget::Jira, &code, now).await.unwrap();
        assert_eq!(store.connections.get(&acme, Product::Jira).await.unwrap().unwrap().secret_name, second);
        assert!(!has_secret(&store, &old.secret_name).await);
    }

    #[tokio::test]
    async fn the_sweep_deletes_only_expired_consents_of_every_tenant() {
        let store = MemoryStore::new();
        let now = OffsetDateTime::now_utc();
        let (_, a) = came_back(&store, &tenant("a"), ConsentTarget::Jira, now).await;
        let (_, b) = came_back(&store, &tenant("b"), ConsentTarget::Atlassian, now).await;
        let (_, fresh) = came_back(&store, &tenant("c"), ConsentTarget::Jira, now + Duration::from_secs(300)).await;
        assert_eq!(expire_pending(stores(&store), now + Duration::from_secs(599)).await.unwrap(), 0);
        assert_eq!(expire_pending(stores(&store), now + Duration::from_secs(601)).await.unwrap(), 2);
        assert!(!has_secret(&store, &a).await && !has_secret(&store, &b).await);
        assert!(has_secret(&store, &fresh).await);
        assert_eq!(store.connections.pending(&tenant("c")).await.unwrap().len(), 1);
    }

    /// The keep-alive function runs this chore before every sweep: consents nobody came back
    /// for lose their secrets within the hour.
    #[tokio::test]
    async fn the_keep_alive_chore_deletes_consents_nobody_confirmed() {
        use crate::keep_alive::{Chore, ExpirePendingConsents};
        let store = MemoryStore::new();
        let now = OffsetDateTime::now_utc();
        let (_, stale) = came_back(&store, &tenant("a"), ConsentTarget::Jira, now - Duration::from_secs(601)).await;
        let (_, fresh) = came_back(&store, &tenant("b"), ConsentTarget::Jira, now).await;
        let chore =
            ExpirePendingConsents { connections: store.connections.clone(), credentials: store.credentials.clone() };
        // The business clock it is given (shifted in tests) does not matter: the window is wall-clock.
        assert_eq!(chore.run(now - time::Duration::days(365)).await.unwrap(), 1);
        assert!(!has_secret(&store, &stale).await && has_secret(&store, &fresh).await);
        assert!(store.connections.pending(&tenant("a")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_interrupted_discard_is_finished_by_the_sweep_and_never_confirmed() {
        let (store, acme, now, code, secret) = acme_came_back(ConsentTarget::Jira).await;
        let [pending] = store.connections.pending(&acme).await.unwrap().try_into().unwrap();
        store.faults.fail_next("CredentialStore::delete");
        assert!(discard(stores(&store), &pending).await.is_err());
        // Marked: the right code no longer installs it.
        let err = confirm(stores(&store), &signer(), &acme, ConsentTarget::Jira, &code, now).await.unwrap_err();
        assert!(matches!(err, ConsentError::Invalid(_)));
        assert!(!has_secret(&store, &secret).await);
        assert!(store.connections.get(&acme, Product::Jira).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_new_consent_replaces_an_unconfirmed_one_and_deletes_its_secret() {
        let store = MemoryStore::new();
        let (acme, now) = (tenant("acme"), OffsetDateTime::now_utc());
        let (old_code, old) = came_back(&store, &acme, ConsentTarget::Jira, now).await;
        let (code, new) = came_back(&store, &acme, ConsentTarget::Jira, now).await;
        assert!(!has_secret(&store, &old).await);
        assert!(matches!(
            confirm(stores(&store), &signer(), &acme, ConsentTarget::Jira, &old_code, now).await,
            Err(ConsentError::Invalid(_))
        ));
        // The wrong (old) code ended the new one too: start again.
        assert!(!has_secret(&store, &new).await);
        let (code2, newest) = came_back(&store, &acme, ConsentTarget::Jira, now).await;
        assert_ne!(code, code2);
        confirm(stores(&store), &signer(), &acme, ConsentTarget::Jira, &code2, now).await.unwrap();
        assert!(has_secret(&store, &newest).await);
    }

    #[tokio::test]
    async fn a_combined_consent_confirms_both_products_under_one_grant() {
        let (store, acme, now, code, secret) = acme_came_back(ConsentTarget::Atlassian).await;
        for product in Product::ALL {
            assert!(waiting(stores(&store), &acme, product, now).await.unwrap().is_some());
        }
        let made = confirm(stores(&store), &signer(), &acme, ConsentTarget::Atlassian, &code, now).await.unwrap();
        assert_eq!(made.iter().map(|c| c.product).collect::<Vec<_>>(), Product::ALL);
        for product in Product::ALL {
            let c = store.connections.get(&acme, product).await.unwrap().unwrap();
            assert_eq!(c.secret_name, secret);
            assert_eq!(
                c.site,
                Some(Site { cloud_id: "c1".into(), url: "https://acme.atlassian.net".into(), name: "acme".into() })
            );
        }
    }
}
