//! The Connect app descriptor (`atlassian-connect.json`), built from the deployment's config.
//!
//! Field names as Atlassian's "Connect app descriptor" page documents them
//! (<https://developer.atlassian.com/cloud/jira/platform/connect-app-descriptor/>, the same for
//! Confluence): `key`, `name`, `baseUrl`, `authentication.type` (`jwt`), `lifecycle.installed` /
//! `lifecycle.uninstalled` (URLs relative to `baseUrl`), `scopes`, `apiVersion`, `modules`. The
//! `apiMigrations` opt-ins are from "API migration opt-in"
//! (<https://developer.atlassian.com/cloud/jira/platform/connect-api-migration/>): `signed-install`
//! (install and uninstall callbacks signed RS256, `crate::connect::install`), `context-qsh`
//! (tokens from `AP.context.getToken()` carry `qsh: "context-qsh"`, `crate::connect::qsh`) and
//! `gdpr` (no legacy user references). The configure page is the `configurePage` admin-page
//! module ("a Configure button will link to this page from the add-on's entry in Manage apps",
//! <https://developer.atlassian.com/cloud/confluence/modules/admin-page/>), a single object.
//!
//! For "Connect on Forge" the same modules go into the Forge manifest's `connectModules`, and
//! `app.connect.key` is this key (see the README); the descriptor stays the source of them.

use serde_json::json;

/// Where the lifecycle callbacks and the link step live, relative to our base URL. The route
/// table (`crate::api::routes`) serves exactly these.
pub const DESCRIPTOR_PATH: &str = "/connect/atlassian-connect.json";
pub const INSTALLED_PATH: &str = "/connect/installed";
pub const UNINSTALLED_PATH: &str = "/connect/uninstalled";
pub const CONFIGURE_PATH: &str = "/connect/configure";
pub const LINK_PATH: &str = "/connect/link";

/// The Connect scopes the app asks for: read, write, and delete (for deleting the issues it
/// created). Atlassian's "Scopes" page: READ, WRITE, DELETE, PROJECT_ADMIN, ADMIN, ACT_AS_USER.
pub const SCOPES: [&str; 3] = ["READ", "WRITE", "DELETE"];

/// The descriptor for app `key` served from `base_url` (no trailing slash).
pub fn descriptor(key: &str, base_url: &str) -> serde_json::Value {
    json!({
        "key": key,
        "name": "Atlassian Bridge",
        "description": "Publishes reports as Confluence pages and action items as Jira issues for the SaaS that links this site.",
        "vendor": {"name": "Atlassian Bridge", "url": base_url.trim_end_matches('/')},
        "baseUrl": base_url.trim_end_matches('/'),
        "apiVersion": 1,
        "authentication": {"type": "jwt"},
        "lifecycle": {
            "installed": INSTALLED_PATH,
            "uninstalled": UNINSTALLED_PATH,
        },
        "apiMigrations": {
            "signed-install": true,
            "context-qsh": true,
            "gdpr": true,
        },
        "scopes": SCOPES,
        "modules": {
            "configurePage": {
                "key": "bridge-link",
                "name": {"value": "Link to your SaaS workspace"},
                "url": CONFIGURE_PATH,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_names_our_key_base_url_jwt_lifecycle_and_signed_installs() {
        let d = descriptor("com.example.bridge", "https://bridge.example.com/");
        assert_eq!(d["key"], "com.example.bridge");
        assert_eq!(d["baseUrl"], "https://bridge.example.com");
        assert_eq!(d["authentication"]["type"], "jwt");
        assert_eq!(d["lifecycle"]["installed"], "/connect/installed");
        assert_eq!(d["lifecycle"]["uninstalled"], "/connect/uninstalled");
        assert_eq!(d["apiMigrations"]["signed-install"], true);
        assert_eq!(d["apiMigrations"]["context-qsh"], true);
        assert_eq!(d["scopes"], json!(["READ", "WRITE", "DELETE"]));
        assert_eq!(d["modules"]["configurePage"]["url"], "/connect/configure");
        // The app's scopes on a linked connection are the descriptor's.
        assert_eq!(
            crate::apps::scopes(crate::store::AppKind::Connect, crate::domain::Product::Jira),
            SCOPES.map(String::from).to_vec()
        );
    }
}
