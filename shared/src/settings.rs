//! Tenant settings: where pages and issues go. Validated locally, and against the product when it
//! is connected (the space, project and issue type exist; required fields have defaults).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::atlassian::confluence::spaces;
use crate::atlassian::jira::{FIELDS_WE_ALWAYS_SET, meta, projects};
use crate::atlassian::{Class, Session};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{IssueTypeId, ProjectKey, SpaceKey};
use crate::reports::Locale;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfluenceSettings {
    /// The space report pages are published to.
    pub space_key: String,
    #[serde(default)]
    pub parent_titles: ParentTitles,
    /// The language of the labels on report pages and PDFs (`en`, `de`, `fr`, `es`, `pt`,
    /// `ja`) for reports that do not name one; English when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
    /// Data Center only: the application link between this Confluence and the tenant's Jira.
    /// With it, action items link to their issues through Confluence's `jira` macro (a live
    /// issue lozenge); without it, and on Cloud, with a plain link (a smart link on Cloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira_application_link: Option<JiraApplicationLink>,
}

/// The Jira application link as Confluence names it in a `jira` macro: the link's name
/// (`server`) and its id (`serverId`, a UUID), both shown under Confluence administration →
/// Application Links (and in the storage format of any page with a Jira issue macro).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JiraApplicationLink {
    /// e.g. `Company Jira`.
    pub server_name: String,
    /// e.g. `144880e9-a353-312f-9412-ed028e8166fa`.
    pub server_id: String,
}

/// Titles of the parent pages reports are filed under (found or created in the space).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentTitles {
    pub retrospective: String,
    pub health_check: String,
}

impl Default for ParentTitles {
    fn default() -> Self {
        Self { retrospective: "Retrospectives".into(), health_check: "Health Checks".into() }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssigneeMatching {
    /// Assign when exactly one assignable user has the action item's email.
    Email,
    #[default]
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JiraSettings {
    pub project_key: String,
    pub issue_type_id: String,
    /// Values for fields the issue type requires, keyed by field id (e.g. `customfield_10050`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub field_defaults: BTreeMap<String, Value>,
    #[serde(default)]
    pub assignee_matching: AssigneeMatching,
    #[serde(default)]
    pub labels: Vec<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSettings, message)
}

fn title(name: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > 255 {
        return Err(invalid(format!("{name} must be 1 to 255 characters")));
    }
    Ok(())
}

impl ConfluenceSettings {
    pub fn validate(&self) -> Result<(), ApiError> {
        // Global spaces: letters, digits, '_'. Personal spaces: '~' and the user name (DC) or
        // account id (Cloud), which may hold '.', '-', ':' and '@'.
        let key_ok = (1..=255).contains(&self.space_key.len())
            && match self.space_key.strip_prefix('~') {
                Some(user) => {
                    !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric() || "._-:@+".contains(c))
                }
                None => self.space_key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            };
        if !key_ok {
            return Err(invalid(
                "space_key must be a Confluence space key: letters, digits and '_', or '~' and a user name for a personal space",
            ));
        }
        title("parent_titles.retrospective", &self.parent_titles.retrospective)?;
        title("parent_titles.health_check", &self.parent_titles.health_check)?;
        if self.parent_titles.retrospective.trim() == self.parent_titles.health_check.trim() {
            return Err(invalid("parent_titles.retrospective and parent_titles.health_check must differ"));
        }
        if let Some(link) = &self.jira_application_link {
            title("jira_application_link.server_name", &link.server_name)?;
            if link.server_name.chars().any(char::is_control) {
                return Err(invalid("jira_application_link.server_name must not hold control characters"));
            }
            if uuid::Uuid::try_parse(&link.server_id).is_err() {
                return Err(invalid(
                    "jira_application_link.server_id must be the application link's id, a UUID such as 144880e9-a353-312f-9412-ed028e8166fa",
                ));
            }
        }
        Ok(())
    }

    /// The space must exist and be visible to the connection.
    pub async fn check(&self, session: &Session) -> Result<(), ApiError> {
        match spaces::by_key(session, &SpaceKey::new(&self.space_key)).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ApiError::new(
                ErrorCode::UnknownSpace,
                format!("space {} does not exist or the connection cannot see it", self.space_key),
            )),
            Err(e) if e.is(Class::NotFound) => Err(ApiError::new(
                ErrorCode::UnknownSpace,
                format!("space {} does not exist or the connection cannot see it", self.space_key),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

impl JiraSettings {
    pub fn validate(&self) -> Result<(), ApiError> {
        let key_ok = (2..=255).contains(&self.project_key.len())
            && self.project_key.starts_with(|c: char| c.is_ascii_uppercase())
            && self.project_key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !key_ok {
            return Err(invalid(
                "project_key must be a Jira project key such as ENG (upper-case letters, digits, '_')",
            ));
        }
        if self.issue_type_id.is_empty() || !self.issue_type_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid("issue_type_id must be the numeric id of an issue type"));
        }
        for field in self.field_defaults.keys() {
            if field.is_empty() || FIELDS_WE_ALWAYS_SET.contains(&field.as_str()) {
                return Err(invalid(format!("field_defaults may not set {field:?}; it is set for every issue")));
            }
        }
        if self.labels.len() > 50 {
            return Err(invalid("at most 50 labels"));
        }
        for label in &self.labels {
            if label.is_empty() || label.chars().count() > 255 || label.chars().any(char::is_whitespace) {
                return Err(invalid(format!("label {label:?} must be 1 to 255 characters without spaces")));
            }
        }
        Ok(())
    }

    /// The project and issue type must exist, and every required field without a default of its
    /// own must have a value in `field_defaults`.
    pub async fn check(&self, session: &Session) -> Result<(), ApiError> {
        let project = ProjectKey::new(&self.project_key);
        let issue_type = IssueTypeId::new(&self.issue_type_id);
        match projects::get(session, &project).await {
            Ok(_) => {}
            Err(e) if e.is(Class::NotFound) => {
                return Err(ApiError::new(
                    ErrorCode::UnknownProject,
                    format!("project {} does not exist or the connection cannot see it", self.project_key),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let types = match meta::issue_types(session, &project).await {
            Ok(types) => types,
            // Jira answers createmeta for a project it cannot see with 400 or 404.
            Err(e) if e.is(Class::BadRequest) || e.is(Class::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if !types.iter().any(|t| t.id == issue_type) {
            return Err(ApiError::new(
                ErrorCode::UnknownIssueType,
                format!(
                    "issue type {} is not available for creating issues in {}",
                    self.issue_type_id, self.project_key
                ),
            ));
        }
        let fields = match meta::fields(session, &project, &issue_type).await {
            Ok(fields) => fields,
            Err(e) if e.is(Class::BadRequest) || e.is(Class::NotFound) => {
                return Err(ApiError::new(
                    ErrorCode::UnknownIssueType,
                    format!(
                        "issue type {} is not available for creating issues in {}",
                        self.issue_type_id, self.project_key
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let missing: Vec<String> = fields
            .iter()
            .filter(|f| f.required && !f.has_default_value)
            .filter(|f| !FIELDS_WE_ALWAYS_SET.contains(&f.field_id.as_str()))
            .filter(|f| !self.field_defaults.contains_key(&f.field_id))
            .map(|f| format!("{} ({})", f.field_id, f.name))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::new(
                ErrorCode::MissingFieldDefaults,
                format!(
                    "the issue type requires fields with no default; add them to field_defaults: {}",
                    missing.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jira(json: &str) -> Result<JiraSettings, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn jira_settings_are_validated_with_messages() {
        let ok =
            jira(r#"{"project_key":"ENG","issue_type_id":"10001","labels":["retro"],"assignee_matching":"email"}"#)
                .unwrap();
        assert!(ok.validate().is_ok());
        for bad in [
            r#"{"project_key":"eng","issue_type_id":"10001"}"#,
            r#"{"project_key":"ENG","issue_type_id":"task"}"#,
            r#"{"project_key":"ENG","issue_type_id":"1","labels":["two words"]}"#,
            r#"{"project_key":"ENG","issue_type_id":"1","field_defaults":{"summary":"x"}}"#,
        ] {
            let err = jira(bad).unwrap().validate().unwrap_err();
            assert_eq!(err.code, "invalid_settings", "{bad}");
        }
        assert!(jira(r#"{"project_key":"ENG","issue_type_id":"1","colour":"red"}"#).is_err());
        assert!(jira(r#"{"project_key":"ENG","issue_type_id":"1","assignee_matching":"name"}"#).is_err());
    }

    #[test]
    fn confluence_settings_default_their_parent_titles() {
        let s: ConfluenceSettings = serde_json::from_str(r#"{"space_key":"TEAM"}"#).unwrap();
        assert_eq!(s.parent_titles, ParentTitles::default());
        assert!(s.validate().is_ok());
        for bad in ["a b", "A~B", "~", "TE-AM", "~a b"] {
            let s: ConfluenceSettings = serde_json::from_str(&format!(r#"{{"space_key":"{bad}"}}"#)).unwrap();
            assert!(s.validate().is_err(), "{bad}");
        }
        for good in ["TEAM", "~ben.fischer", "~712020:5f3c1e2a-9b7d-4c8e"] {
            let s: ConfluenceSettings = serde_json::from_str(&format!(r#"{{"space_key":"{good}"}}"#)).unwrap();
            assert!(s.validate().is_ok(), "{good}");
        }
        let same: ConfluenceSettings =
            serde_json::from_str(r#"{"space_key":"T","parent_titles":{"retrospective":"X","health_check":"X"}}"#)
                .unwrap();
        assert!(same.validate().is_err());
    }

    #[test]
    fn confluence_settings_take_a_locale_and_a_jira_application_link() {
        let s: ConfluenceSettings = serde_json::from_str(
            r#"{"space_key":"TEAM","locale":"de","jira_application_link":{"server_name":"Company Jira","server_id":"144880e9-a353-312f-9412-ed028e8166fa"}}"#,
        )
        .unwrap();
        assert!(s.validate().is_ok());
        assert_eq!(s.locale, Some(Locale::De));
        assert_eq!(s.jira_application_link.as_ref().unwrap().server_name, "Company Jira");
        // Absent fields stay absent when saved, so settings written before read back the same.
        let plain: ConfluenceSettings = serde_json::from_str(r#"{"space_key":"TEAM"}"#).unwrap();
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            serde_json::json!({"space_key": "TEAM", "parent_titles": {"retrospective": "Retrospectives", "health_check": "Health Checks"}})
        );
        for bad in [
            r#"{"server_name":"Jira","server_id":"not-a-uuid"}"#,
            r#"{"server_name":" ","server_id":"144880e9-a353-312f-9412-ed028e8166fa"}"#,
            r#"{"server_name":"Ji\u0000ra","server_id":"144880e9-a353-312f-9412-ed028e8166fa"}"#,
        ] {
            let s: ConfluenceSettings =
                serde_json::from_str(&format!(r#"{{"space_key":"TEAM","jira_application_link":{bad}}}"#)).unwrap();
            assert_eq!(s.validate().unwrap_err().code, "invalid_settings", "{bad}");
        }
        // Unknown fields and unknown locales are refused when parsed.
        assert!(serde_json::from_str::<ConfluenceSettings>(r#"{"space_key":"T","locale":"it"}"#).is_err());
        assert!(
            serde_json::from_str::<ConfluenceSettings>(
                r#"{"space_key":"T","jira_application_link":{"server_name":"J","server_id":"144880e9-a353-312f-9412-ed028e8166fa","url":"x"}}"#
            )
            .is_err()
        );
    }
}
