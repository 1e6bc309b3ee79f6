//! Identifiers that travel side by side as strings (an item id, an issue key, an issue id, a site)
//! get a type each, so a call like `complete(tenant, item, owner, key, id)` cannot swap two of them.
//!
//! They are opaque: Atlassian decides their shape, so they are not validated beyond what the
//! places that parse them already check (a tenant id, which goes into keys and secret names, has
//! its own checked type in `domain`). Serialized as the plain string, so stored records and the
//! API are unchanged.

use std::fmt;

macro_rules! string_ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    )*};
}

string_ids! {
    /// An action item's id, chosen by the caller (unique within one request).
    ItemId;
    /// A Jira issue key (`ENG-42`): changes when an issue moves project.
    IssueKey;
    /// A Jira issue id (`10042`): stable for the issue's life.
    IssueId;
    /// A Jira project key (`ENG`).
    ProjectKey;
    /// A Jira project id (`10000`).
    ProjectId;
    /// A Jira issue type id (`10001`).
    IssueTypeId;
    /// An Atlassian account id (Cloud) or user key / name (Server and Data Center).
    AccountId;
    /// A Confluence space key (`TEAM`).
    SpaceKey;
    /// A Confluence space id (numeric on Cloud v2; Server/DC address spaces by key).
    SpaceId;
    /// A Confluence page (content) id.
    PageId;
    /// A Confluence attachment id (`att123`).
    AttachmentId;
    /// The site a record belongs to: a Cloud site's cloudId, or a Server/DC base URL.
    SiteId;
}

/// A report's id in the SaaS (one Confluence page per report id, and what an action item names
/// as the report it came from). Unlike the ids above it is ours to check: it goes into ledger
/// attributes and query filters, so it is parsed once, on the way in, by the one rule every
/// place that takes a report id applies ([`ReportId::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReportId(String);

impl ReportId {
    /// What a caller is told when an id breaks the rule (never the value: it may be anything).
    pub const RULE: &'static str = "must be 1 to 128 characters of letters, digits, '-', '_', '.' or ':'";

    pub fn parse(value: impl Into<String>) -> Result<Self, &'static str> {
        let value = value.into();
        let ok = (1..=128).contains(&value.len())
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if ok { Ok(Self(value)) } else { Err(Self::RULE) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReportId {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value).map_err(|rule| format!("report_id {rule}"))
    }
}

impl From<ReportId> for String {
    fn from(id: ReportId) -> Self {
        id.0
    }
}

impl fmt::Display for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for ReportId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(128))
            .pattern(Some("^[A-Za-z0-9._:-]{1,128}$"))
            .description(Some("The SaaS's report id (letters, digits, '-', '_', '.', ':')"))
            .into()
    }
}

impl utoipa::ToSchema for ReportId {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_ids_are_checked_when_parsed_and_never_echo_the_value() {
        assert_eq!(ReportId::parse("r-1.2:x_y").unwrap().as_str(), "r-1.2:x_y");
        for bad in ["", "has space", "é", &"x".repeat(129), "a/b"] {
            assert!(ReportId::parse(bad).is_err(), "{bad:?}");
        }
        let refused = serde_json::from_str::<ReportId>("\"<script>\"").unwrap_err().to_string();
        assert!(refused.contains("report_id must be") && !refused.contains("script"), "{refused}");
        let id: ReportId = serde_json::from_str("\"r-1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"r-1\"");
    }

    #[test]
    fn ids_serialize_as_the_plain_string() {
        let key = IssueKey::new("ENG-1");
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"ENG-1\"");
        let back: IssueKey = serde_json::from_str("\"ENG-1\"").unwrap();
        assert_eq!(back, "ENG-1");
        assert_eq!(back.to_string(), "ENG-1");
    }
}
