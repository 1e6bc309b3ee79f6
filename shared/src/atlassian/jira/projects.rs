//! Projects: the list (`project/search` on Cloud, `project` on Server/DC), one project
//! (`project/{key}`), and a project's components.

use serde::Deserialize;

use super::super::{AtlassianError, Flavour, Session, encode, loose};
use super::users::{User, UserJson};
use super::{Listing, PageOf};
use crate::ids::{IssueTypeId, ProjectId, ProjectKey};

/// A project as Jira describes it; `lead` and `issue_types` only in `project/{key}`.
#[derive(Debug, Clone)]
pub struct Project {
    pub id: Option<ProjectId>,
    pub key: Option<ProjectKey>,
    pub name: Option<String>,
    pub lead: Option<User>,
    pub issue_types: Vec<IssueTypeRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IssueTypeRef {
    #[serde(default, deserialize_with = "loose::id")]
    pub id: Option<IssueTypeId>,
    #[serde(default, deserialize_with = "loose::id")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "loose::flag")]
    pub subtask: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Component {
    #[serde(default, deserialize_with = "loose::id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "loose::id")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "loose::id")]
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProjectJson {
    #[serde(default, deserialize_with = "loose::id")]
    id: Option<ProjectId>,
    #[serde(default, deserialize_with = "loose::id")]
    key: Option<ProjectKey>,
    #[serde(default, deserialize_with = "loose::id")]
    name: Option<String>,
    #[serde(default)]
    lead: Option<UserJson>,
    #[serde(default)]
    issue_types: Option<Vec<IssueTypeRef>>,
}

impl ProjectJson {
    fn into_project(self, flavour: Flavour) -> Project {
        Project {
            id: self.id,
            key: self.key,
            name: self.name,
            lead: self.lead.map(|l| l.into_user(flavour)),
            issue_types: self.issue_types.unwrap_or_default(),
        }
    }
}

/// Projects matching `query` (name or key). Cloud searches server side and pages
/// (`project/search`); Server/DC lists every project in one answer (`project`), unfiltered.
pub async fn list(
    session: &Session,
    query: Option<&str>,
    start: usize,
    page_size: usize,
) -> Result<Listing<Project>, AtlassianError> {
    let flavour = session.flavour();
    match flavour {
        Flavour::Cloud => {
            let mut path = session.jira_path(&format!("project/search?startAt={start}&maxResults={page_size}"));
            if let Some(q) = query.map(str::trim).filter(|q| !q.is_empty()) {
                path.push_str(&format!("&query={}", encode(q)));
            }
            let page: PageOf<ProjectJson> = session.get_json(&path).await?;
            Ok(Listing::Page {
                values: page.values.into_iter().map(|p| p.into_project(flavour)).collect(),
                is_last: page.is_last,
                total: page.total,
            })
        }
        Flavour::DataCenter => {
            let all: Vec<ProjectJson> = session.get_json(&session.jira_path("project")).await?;
            Ok(Listing::Whole(all.into_iter().map(|p| p.into_project(flavour)).collect()))
        }
    }
}

/// The project as Jira describes it (`GET project/{key}`); 404 when it does not exist or is hidden.
pub async fn get(session: &Session, key: &ProjectKey) -> Result<Project, AtlassianError> {
    let project: ProjectJson =
        session.get_json(&session.jira_path(&format!("project/{}", encode(key.as_str())))).await?;
    Ok(project.into_project(session.flavour()))
}

/// A project's components: Cloud pages them (`project/{key}/component`), Server/DC answers all
/// of them at once (`project/{key}/components`).
pub async fn components(
    session: &Session,
    project: &ProjectKey,
    start: usize,
    page_size: usize,
) -> Result<Listing<Component>, AtlassianError> {
    match session.flavour() {
        Flavour::Cloud => {
            let path = session.jira_path(&format!(
                "project/{}/component?startAt={start}&maxResults={page_size}",
                encode(project.as_str())
            ));
            let page: PageOf<Component> = session.get_json(&path).await?;
            Ok(page.into())
        }
        Flavour::DataCenter => {
            let path = session.jira_path(&format!("project/{}/components", encode(project.as_str())));
            Ok(Listing::Whole(session.get_json(&path).await?))
        }
    }
}
