//! Users: the current user (`myself`), the user picker, and the users assignable in a project
//! (`user/assignable/search`). Cloud names users by `accountId`, Server/DC by `name`.

use serde::Deserialize;

use super::super::{AtlassianError, Flavour, Session, encode, loose};
use crate::ids::{AccountId, ProjectKey};

/// A user, named the way an assignee field takes it on this deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    /// `accountId` on Cloud, `name` on Server/DC.
    pub id: Option<AccountId>,
    pub display_name: Option<String>,
    /// Absent, empty or masked when the user's privacy settings say so.
    pub email_address: Option<String>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserJson {
    #[serde(default, deserialize_with = "loose::id")]
    account_id: Option<AccountId>,
    #[serde(default, deserialize_with = "loose::id")]
    name: Option<AccountId>,
    #[serde(default, deserialize_with = "loose::id")]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "loose::id")]
    email_address: Option<String>,
    #[serde(default, deserialize_with = "loose::flag")]
    active: Option<bool>,
}

impl UserJson {
    pub(super) fn into_user(self, flavour: Flavour) -> User {
        User {
            id: match flavour {
                Flavour::Cloud => self.account_id,
                Flavour::DataCenter => self.name,
            },
            display_name: self.display_name,
            email_address: self.email_address,
            active: self.active,
        }
    }
}

/// `GET myself`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Myself {
    #[serde(default, deserialize_with = "loose::text")]
    pub display_name: Option<String>,
    /// Confluence's current user has one (`anonymous` for no credentials); Jira's has none.
    #[serde(rename = "type", default, deserialize_with = "loose::text")]
    pub kind: Option<String>,
}

/// Who the credentials act as.
pub async fn myself(session: &Session) -> Result<Myself, AtlassianError> {
    Ok(loose::any(session.get_json(&session.jira_path("myself")).await?))
}

#[derive(Deserialize)]
struct Picker {
    #[serde(default)]
    users: Option<Vec<UserJson>>,
}

/// The user picker (names and, where visible, emails).
pub async fn picker(session: &Session, query: &str, max_results: usize) -> Result<Vec<User>, AtlassianError> {
    let path = session.jira_path(&format!("user/picker?query={}&maxResults={max_results}", encode(query)));
    let page: Picker = session.get_json(&path).await?;
    Ok(page.users.unwrap_or_default().into_iter().map(|u| u.into_user(session.flavour())).collect())
}

/// Whom an assignable-user search looks for.
#[derive(Debug, Clone, Copy)]
pub enum UserQuery<'a> {
    /// Free text: Cloud `query` (name or email), Server/DC `username` (a prefix search of user
    /// name, name and email).
    Text(&'a str),
    /// One user by id: Cloud `accountId`, Server/DC `username`.
    Id(&'a AccountId),
}

/// `user/assignable/search` for the project: Cloud `query`/`accountId`, DC `username` (DC 10.3
/// takes no `startAt` and caps `maxResults` at 100, so `start` is sent only when given).
pub async fn assignable(
    session: &Session,
    project: &ProjectKey,
    query: UserQuery<'_>,
    start: Option<usize>,
    max_results: usize,
) -> Result<Vec<User>, AtlassianError> {
    let (param, value) = match (session.flavour(), query) {
        (Flavour::Cloud, UserQuery::Text(text)) => ("query", text),
        (Flavour::Cloud, UserQuery::Id(id)) => ("accountId", id.as_str()),
        (Flavour::DataCenter, UserQuery::Text(text)) => ("username", text),
        (Flavour::DataCenter, UserQuery::Id(id)) => ("username", id.as_str()),
    };
    let start = start.map(|s| format!("&startAt={s}")).unwrap_or_default();
    let path = session.jira_path(&format!(
        "user/assignable/search?{param}={}&project={}{start}&maxResults={max_results}",
        encode(value),
        encode(project.as_str())
    ));
    let users: Vec<UserJson> = session.get_json(&path).await?;
    Ok(users.into_iter().map(|u| u.into_user(session.flavour())).collect())
}
