//! Jira Cloud (REST v3) as an in-process server that keeps the issues it created, answering in
//! the official spec's shapes: `POST /rest/api/3/issue/bulk` → `CreatedIssues` (201 when any
//! element was created, 400 when none was, failures in `errors[]` with `failedElementNumber`),
//! and `GET /rest/api/3/search/jql` → `SearchAndReconcileResults`, which finds issues by label;
//! `GET /rest/api/3/user/assignable/search` (by full email or `accountId`, among the users a test
//! adds) and the create screen (`GET /rest/api/3/issue/createmeta/{project}/issuetypes/{id}`),
//! each request counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Debug, Clone)]
pub struct Issue {
    pub id: String,
    pub key: String,
    pub summary: String,
    pub project: String,
    pub labels: Vec<String>,
    /// `fields.assignee.accountId`, as sent.
    pub assignee: Option<String>,
}

/// What Jira answers for one element of a bulk request.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: u16,
    /// `elementErrors.errors`: field id → message.
    pub field: String,
    pub message: String,
}

#[derive(Default)]
struct State {
    issues: Vec<Issue>,
    /// Rejections by summary, each used up by the element it rejects.
    reject: HashMap<String, Rejection>,
    /// The summaries of every bulk request, in order.
    bulk_requests: Vec<Vec<String>>,
    /// Bulk requests still to be answered 503 after Jira created their issues.
    lose_answers: usize,
    /// Assignable users: (accountId, email).
    users: Vec<(String, String)>,
    /// The `query` or `accountId` of every assignable-user search, in order.
    user_searches: Vec<String>,
    /// Assignable-user searches are answered 500 while this is set.
    user_search_down: bool,
    /// How many createmeta requests were answered.
    createmeta_requests: usize,
    /// How long each assignable-user search takes to answer.
    user_search_delay: std::time::Duration,
}

#[derive(Clone)]
pub struct Jira(Arc<Mutex<State>>);

fn lock(j: &Jira) -> std::sync::MutexGuard<'_, State> {
    j.0.lock().unwrap_or_else(|p| p.into_inner())
}

impl Jira {
    pub async fn mount(server: &MockServer) -> Self {
        let jira = Self(Arc::new(Mutex::new(State::default())));
        let route = |op| Route { jira: jira.clone(), op };
        Mock::given(method("POST"))
            .and(path("/rest/api/3/issue/bulk"))
            .respond_with(route(Op::Bulk))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/rest/api/3/search/jql"))
            .respond_with(route(Op::Search))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/rest/api/3/user/assignable/search"))
            .respond_with(route(Op::UserSearch))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/rest/api/3/issue/createmeta/[^/]+/issuetypes/[^/]+$"))
            .respond_with(route(Op::CreateMeta))
            .mount(server)
            .await;
        jira
    }

    /// A user assignable in every project, found by the full `email` (the email shown).
    pub fn add_user(&self, account_id: &str, email: &str) {
        lock(self).users.push((account_id.to_owned(), email.to_owned()));
    }

    /// While `down`, every assignable-user search is answered 500.
    pub fn user_search_down(&self, down: bool) {
        lock(self).user_search_down = down;
    }

    /// Every assignable-user search takes `delay` to answer (a slow directory).
    pub fn slow_user_search(&self, delay: std::time::Duration) {
        lock(self).user_search_delay = delay;
    }

    /// What each assignable-user search asked for (`query` or `accountId`), in order.
    pub fn user_searches(&self) -> Vec<String> {
        lock(self).user_searches.clone()
    }

    pub fn createmeta_requests(&self) -> usize {
        lock(self).createmeta_requests
    }

    /// The next element with this summary is refused (once), e.g. a field the screen refuses.
    pub fn reject_once(&self, summary: &str, rejection: Rejection) {
        lock(self).reject.insert(summary.to_owned(), rejection);
    }

    /// The next bulk request creates its issues, then its answer is lost: 503, as when Jira
    /// committed and the gateway in front of it timed out.
    pub fn lose_next_answer(&self) {
        lock(self).lose_answers += 1;
    }

    pub fn issues(&self) -> Vec<Issue> {
        lock(self).issues.clone()
    }

    pub fn issues_labelled(&self, label: &str) -> Vec<Issue> {
        self.issues().into_iter().filter(|i| i.labels.iter().any(|l| l == label)).collect()
    }

    /// The summaries each bulk request carried.
    pub fn bulk_requests(&self) -> Vec<Vec<String>> {
        lock(self).bulk_requests.clone()
    }
}

#[derive(Clone, Copy)]
enum Op {
    Bulk,
    Search,
    UserSearch,
    CreateMeta,
}

struct Route {
    jira: Jira,
    op: Op,
}

impl Respond for Route {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.jira);
        match self.op {
            Op::Bulk => {
                let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                    return ResponseTemplate::new(400)
                        .set_body_json(json!({"errorMessages": ["Unexpected request body"], "errors": {}}));
                };
                let updates = body["issueUpdates"].as_array().cloned().unwrap_or_default();
                let summaries: Vec<String> = updates
                    .iter()
                    .map(|u| u.pointer("/fields/summary").and_then(Value::as_str).unwrap_or_default().to_owned())
                    .collect();
                state.bulk_requests.push(summaries.clone());
                let mut issues = Vec::new();
                let mut errors = Vec::new();
                for (i, (update, summary)) in updates.iter().zip(summaries).enumerate() {
                    if let Some(r) = state.reject.remove(&summary) {
                        errors.push(json!({"status": r.status, "failedElementNumber": i,
                                           "elementErrors": {"errorMessages": [], "errors": {r.field: r.message}}}));
                        continue;
                    }
                    let n = state.issues.len() + 1;
                    let project = update.pointer("/fields/project/key").and_then(Value::as_str).unwrap_or_default();
                    let issue = Issue {
                        id: (10000 + n).to_string(),
                        key: format!("{project}-{n}"),
                        summary,
                        project: project.to_owned(),
                        assignee: update
                            .pointer("/fields/assignee/accountId")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        labels: update
                            .pointer("/fields/labels")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                    };
                    issues.push(json!({"id": issue.id, "key": issue.key,
                                       "self": format!("https://acme.atlassian.net/rest/api/3/issue/{}", issue.id)}));
                    state.issues.push(issue);
                }
                if state.lose_answers > 0 {
                    state.lose_answers -= 1;
                    return ResponseTemplate::new(503).set_body_string("upstream request timeout");
                }
                let status = if issues.is_empty() && !errors.is_empty() { 400 } else { 201 };
                ResponseTemplate::new(status).set_body_json(json!({"issues": issues, "errors": errors}))
            }
            Op::Search => {
                let jql = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "jql")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let (project, labels) = parse_jql(&jql);
                let found: Vec<Value> = state
                    .issues
                    .iter()
                    .filter(|i| project.as_deref().is_none_or(|p| p == i.project))
                    .filter(|i| i.labels.iter().any(|l| labels.contains(l)))
                    .map(|i| json!({"id": i.id, "key": i.key, "self": format!("https://acme.atlassian.net/rest/api/3/issue/{}", i.id), "fields": {}}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"issues": found, "isLast": true}))
            }
            Op::UserSearch => {
                let param =
                    |name: &str| request.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
                let (query, account_id) = (param("query"), param("accountId"));
                state.user_searches.push(query.clone().or(account_id.clone()).unwrap_or_default());
                if state.user_search_down {
                    return ResponseTemplate::new(500).set_body_string("internal error");
                }
                let found: Vec<Value> = state
                    .users
                    .iter()
                    .filter(|(id, email)| {
                        query.as_deref().is_some_and(|q| q.eq_ignore_ascii_case(email))
                            || account_id.as_deref() == Some(id.as_str())
                    })
                    .map(|(id, email)| {
                        json!({"accountId": id, "displayName": format!("User {id}"), "emailAddress": email, "active": true})
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(found).set_delay(state.user_search_delay)
            }
            Op::CreateMeta => {
                state.createmeta_requests += 1;
                let fields = super::create_screen_json();
                let total = fields.as_array().map_or(0, Vec::len);
                ResponseTemplate::new(200)
                    .set_body_json(json!({"startAt": 0, "maxResults": 200, "total": total, "fields": fields}))
            }
        }
    }
}

/// `project = "ENG" AND labels in ("a", "b")`: the project and the labels.
fn parse_jql(jql: &str) -> (Option<String>, Vec<String>) {
    let quoted = |s: &str| s.split('"').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>();
    let project = jql.split(" AND ").find(|c| c.trim_start().starts_with("project")).and_then(|c| quoted(c).pop());
    let labels = jql.split("labels in").nth(1).map(quoted).unwrap_or_default();
    (project, labels)
}
