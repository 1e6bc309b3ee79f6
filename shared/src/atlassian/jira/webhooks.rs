//! Dynamic webhooks (Jira Cloud v3 only; OAuth 2.0 and Connect apps only; each operation needs
//! `read:jira-work` and `manage:jira-webhook`, per the spec's `security`):
//! `POST webhook` registers, `GET webhook` lists the app's webhooks (paged), `PUT webhook/refresh`
//! extends their life (they expire 30 days after registration or the last refresh; unknown ids
//! are ignored silently, so a vanished webhook shows only in the listing), `DELETE webhook`
//! removes them (202). Spec: jira-cloud-platform-v3 `registerDynamicWebhooks`,
//! `getDynamicWebhooksForApp`, `refreshWebhooks`, `deleteWebhookById`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::super::{AtlassianError, Payload, Session, answer};

/// The events we ask for: an issue changed, an issue was deleted.
pub const EVENTS: [&str; 2] = ["jira:issue_updated", "jira:issue_deleted"];

/// The fields whose change we need to hear about (`fieldIdsFilter`: `jira:issue_updated` is sent
/// only when the changelog holds one of them), the ones `JiraState` reads.
pub const FIELDS: [&str; 5] = ["status", "resolution", "assignee", "summary", "duedate"];

/// One registration's outcome, in request order: its id, or why Jira refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    Created(i64),
    Refused(Vec<String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registrations {
    #[serde(default)]
    webhook_registration_result: Vec<RegistrationResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationResult {
    created_webhook_id: Option<i64>,
    #[serde(default)]
    errors: Vec<String>,
}

/// A webhook of ours as `GET webhook` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedWebhook {
    pub id: i64,
    #[serde(default)]
    pub jql_filter: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default, deserialize_with = "expiration")]
    pub expiration_date: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookPage {
    #[serde(default)]
    values: Vec<ListedWebhook>,
    #[serde(default)]
    is_last: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refreshed {
    #[serde(deserialize_with = "expiration")]
    expiration_date: Option<OffsetDateTime>,
}

/// `expirationDate`: the schema says int64 (epoch ms), the spec's examples show
/// `"2019-06-01T12:42:30.000+0000"`; both are read.
fn expiration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => {
            n.as_i64().and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        }
        Value::String(s) => crate::issues::state::parse_jira_time(&s),
        _ => None,
    })
}

/// The JQL filter for our projects. Webhook JQL takes only `issueKey`, `project`, `issuetype`,
/// `status`, `assignee`, `reporter`, `issue.property` and `cf[id]` with `=`, `!=`, `IN`, `NOT IN`
/// (spec, `WebhookDetails.jqlFilter`), so the filter names projects, not our label; a delivery
/// for an issue we did not create is dropped on receipt (the ledger does not know it).
pub fn project_filter(projects: &[String]) -> String {
    let quoted: Vec<String> = projects.iter().map(|p| format!("\"{}\"", p.replace(['"', '\\'], ""))).collect();
    format!("project IN ({})", quoted.join(", "))
}

/// `POST webhook`: one webhook for `EVENTS` on `projects`, delivered to `url`.
pub async fn register(session: &Session, url: &str, projects: &[String]) -> Result<Registered, AtlassianError> {
    let body = json!({
        "url": url,
        "webhooks": [{"events": EVENTS, "jqlFilter": project_filter(projects), "fieldIdsFilter": FIELDS}],
    });
    let response = session.send(Method::POST, &session.jira_path("webhook"), Payload::Json(&body)).await?;
    let answer: Registrations = answer(response, "webhook registration answer: ").await?;
    let Some(first) = answer.webhook_registration_result.into_iter().next() else {
        return Err(AtlassianError::Decode("webhook registration answer: no result".into()));
    };
    Ok(match first.created_webhook_id {
        Some(id) => Registered::Created(id),
        None => Registered::Refused(first.errors),
    })
}

/// `GET webhook`, every page: the app's webhooks on the site.
pub async fn list(session: &Session) -> Result<Vec<ListedWebhook>, AtlassianError> {
    let mut all = Vec::new();
    for page in 0..100 {
        let path = session.jira_path(&format!("webhook?startAt={}&maxResults=100", all.len()));
        let got: WebhookPage = session.get_json(&path).await?;
        let done = got.values.is_empty() || got.is_last.unwrap_or(true) || page == 99;
        all.extend(got.values);
        if done {
            break;
        }
    }
    Ok(all)
}

/// `PUT webhook/refresh`: the new expiry of the refreshed webhooks.
pub async fn refresh(session: &Session, ids: &[i64]) -> Result<Option<OffsetDateTime>, AtlassianError> {
    let body = json!({"webhookIds": ids});
    let response = session.send(Method::PUT, &session.jira_path("webhook/refresh"), Payload::Json(&body)).await?;
    let refreshed: Refreshed = answer(response, "webhook refresh answer: ").await?;
    Ok(refreshed.expiration_date)
}

/// `DELETE webhook` (202); ids that are not the app's are ignored by Jira.
pub async fn delete(session: &Session, ids: &[i64]) -> Result<(), AtlassianError> {
    let body = json!({"webhookIds": ids});
    session.send(Method::DELETE, &session.jira_path("webhook"), Payload::Json(&body)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_names_projects_with_an_operator_webhook_jql_takes() {
        assert_eq!(project_filter(&["OPS".into(), "RE\"TRO".into()]), r#"project IN ("OPS", "RETRO")"#);
    }

    #[test]
    fn expiration_dates_read_as_epoch_ms_or_jira_time() {
        let a: Refreshed = serde_json::from_str(r#"{"expirationDate": 1559392950000}"#).unwrap();
        let b: Refreshed = serde_json::from_str(r#"{"expirationDate": "2019-06-01T12:42:30.000+0000"}"#).unwrap();
        assert_eq!(a.expiration_date, b.expiration_date);
        assert!(a.expiration_date.is_some());
    }
}
