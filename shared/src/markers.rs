//! Markers that let a retry recognise what an interrupted attempt wrote: a label on each Jira
//! issue, an invisible anchor on each Confluence page.
//!
//! They are HMACs under a deployment secret. A plain hash of (tenant, item id) could be computed
//! by anyone who knows the ids — anyone who can write to the customer's Jira or Confluence could
//! plant an issue or page carrying it, and a retry of ours would take it for its own work (record
//! a foreign issue, overwrite a foreign page). The key is derived from the deployment's
//! state-signing key under its own label (domain separation), so no new secret is needed; rotate
//! that key only while no job is pending.
//!
//! Markers written before this (unkeyed SHA-256) stay findable: searches accept both forms, and
//! every new write uses the keyed one.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub struct Markers {
    key: [u8; 32],
}

impl std::fmt::Debug for Markers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Markers([redacted])")
    }
}

/// Labels are at most 255 characters and have no spaces; hex keeps them safe in JQL and XHTML.
fn hex(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

impl Markers {
    pub fn derive(deployment_secret: &[u8]) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(&Self::mac_with(deployment_secret, b"atlassian-bridge markers v1"));
        Self { key }
    }

    fn mac_with(key: &[u8], message: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => return [0u8; 32],
        };
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, parts: &[&str]) -> [u8; 32] {
        Self::mac_with(&self.key, parts.join("\0").as_bytes())
    }

    /// The label that marks an issue as created for (tenant, action item).
    pub fn issue(&self, tenant: &str, item_id: &str) -> String {
        format!("bridge-i-{}", hex(&self.mac(&["issue", tenant, item_id]), 16))
    }

    /// The label every issue of a tenant carries: one JQL clause finds them all.
    pub fn tenant_label(&self, tenant: &str) -> String {
        format!("bridge-t-{}", hex(&self.mac(&["tenant", tenant]), 10))
    }

    /// The invisible anchor that identifies a report's page.
    pub fn page(&self, tenant: &str, report_id: &str) -> String {
        format!("bridge-p-{}", hex(&self.mac(&["page", tenant, report_id]), 16))
    }

    /// The name under which a lookup of `parts` (e.g. kind, project, normalized email) is cached:
    /// keyed like the markers, so the table holds neither the email nor a plain hash of it, which
    /// anyone holding a list of addresses could recompute and match.
    pub fn lookup_digest(&self, parts: &[&str]) -> String {
        let mut all = vec!["lookup"];
        all.extend_from_slice(parts);
        hex(&self.mac(&all), 32)
    }

    /// The tag of an opaque page token (`purpose` names the listing) for `tenant`: a cursor is
    /// ours and the tenant's only if it carries this, so a cursor edited by hand, or taken from
    /// another tenant's listing, is refused instead of read.
    pub fn cursor_tag(&self, purpose: &str, tenant: &str, payload: &str) -> String {
        hex(&self.mac(&["cursor", purpose, tenant, payload]), 16)
    }

    /// Whether `tag` is [`cursor_tag`](Self::cursor_tag)'s, compared in constant time.
    pub fn cursor_tag_matches(&self, purpose: &str, tenant: &str, payload: &str, tag: &str) -> bool {
        let expected = self.cursor_tag(purpose, tenant, payload);
        expected.len() == tag.len() && expected.bytes().zip(tag.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// Both forms an issue of this item may carry: the keyed one, and the one written before.
    pub fn issue_forms(&self, tenant: &str, item_id: &str) -> [String; 2] {
        [self.issue(tenant, item_id), legacy_issue(tenant, item_id)]
    }

    /// Both forms a page of this report may carry.
    pub fn page_forms(&self, tenant: &str, report_id: &str) -> [String; 2] {
        [self.page(tenant, report_id), legacy_page(tenant, report_id)]
    }
}

/// The issue label before markers were keyed.
fn legacy_issue(tenant: &str, item_id: &str) -> String {
    format!("bridge-{}", hex(&Sha256::digest(format!("{tenant}\0{item_id}").as_bytes()), 10))
}

/// The page anchor before markers were keyed.
fn legacy_page(tenant: &str, report_id: &str) -> String {
    format!("bridge-report-{}", hex(&Sha256::digest(format!("{tenant}\0{report_id}").as_bytes()), 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_stable_and_bound_to_tenant_item_and_deployment() {
        let ours = Markers::derive(&[7u8; 32]);
        let other_deployment = Markers::derive(&[8u8; 32]);
        assert_eq!(ours.issue("acme", "ai-1"), ours.issue("acme", "ai-1"));
        assert_ne!(ours.issue("acme", "ai-1"), ours.issue("other", "ai-1"));
        assert_ne!(ours.issue("acme", "ai-1"), ours.issue("acme", "ai-2"));
        assert_ne!(ours.issue("acme", "ai-1"), other_deployment.issue("acme", "ai-1"));
        // No one without the key can compute it from the ids alone.
        assert_ne!(ours.issue("acme", "ai-1"), legacy_issue("acme", "ai-1"));
        assert_ne!(ours.page("acme", "r-1"), ours.issue("acme", "r-1"));
        assert_ne!(ours.tenant_label("acme"), ours.tenant_label("other"));
        for label in [ours.issue("acme", "ai-1"), ours.tenant_label("acme"), ours.page("acme", "r")] {
            assert!(label.len() <= 255 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{label}");
        }
        assert_eq!(format!("{ours:?}"), "Markers([redacted])");
    }

    #[test]
    fn the_forms_written_before_are_still_recognised() {
        // The values today's records and issues carry (computed by the unkeyed code before).
        assert_eq!(legacy_issue("acme", "ai-1"), "bridge-".to_owned() + &hex(&Sha256::digest(b"acme\0ai-1"), 10));
        let markers = Markers::derive(&[1u8; 32]);
        assert_eq!(markers.issue_forms("acme", "ai-1")[1], legacy_issue("acme", "ai-1"));
        assert!(markers.page_forms("acme", "r-1")[1].starts_with("bridge-report-"));
    }
}
