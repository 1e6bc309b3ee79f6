//! Every HTTP route, declared once: its method and path, the function that serves it, the scope
//! its caller needs, its request body, and what the OpenAPI document says about it. The functions
//! bind a handler to each of their routes (`api::Router`); `shared/routes.json` (read by the
//! local gateway and the CDK app) and the operations of `shared/openapi.json` are generated from
//! this table, and tests fail when either committed file differs from it.

use std::marker::PhantomData;

use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::{
    ConfirmOAuthRequest, ConfirmOAuthResponse, ConnectionRequest, ConnectionView, SelectSiteRequest, SettingsBody,
    SiteSelectionResponse, StartOAuthRequest, StartOAuthResponse, VerifyResponse,
};
use crate::caller::{BridgeScope, Caller, Public};
use crate::discovery as find;
use crate::http::{Json, NoBody};
use crate::issues::edit::{ActionItemEdit, ActionItemEdited};
use crate::issues::read::ActionItemList;
use crate::issues::{IssuesCreated, IssuesJob, IssuesRequest};
use crate::reports::{Publication, Report};

/// The Lambda functions, by their crate (and deployment) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    OAuthCallback,
    Connections,
    Discovery,
    PublishPage,
    CreateIssue,
    /// No HTTP route and no rule: the keep-alive sweep, run by a schedule ([`SCHEDULES`]).
    KeepAlive,
    /// The public receiver of Jira's dynamic webhook deliveries.
    IssueWebhook,
    /// No HTTP route and no rule: the issue sync's poll, run by a schedule ([`SCHEDULES`]).
    IssueSync,
    /// The public routes of the Marketplace apps: Connect's descriptor and lifecycle, Forge
    /// Remote's invocations and triggers, and the pages that link an installation to a tenant.
    AppLifecycle,
}

impl Function {
    pub const fn name(self) -> &'static str {
        match self {
            Self::OAuthCallback => "oauth-callback",
            Self::Connections => "connections",
            Self::Discovery => "discovery",
            Self::PublishPage => "publish-page",
            Self::CreateIssue => "create-issue",
            Self::KeepAlive => "keep-alive",
            Self::IssueWebhook => "issue-webhook",
            Self::IssueSync => "issue-sync",
            Self::AppLifecycle => "app-lifecycle",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// Schemas for the OpenAPI document, by name.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// A schema of the document: its name, and how to add it with every schema it refers to.
#[derive(Clone, Copy)]
pub struct SchemaOf {
    pub name: fn() -> String,
    pub collect: fn(&mut Schemas),
}

impl SchemaOf {
    pub const fn of<T: ToSchema>() -> Self {
        Self { name: name_of::<T>, collect: collect_of::<T> }
    }
}

fn name_of<T: ToSchema>() -> String {
    T::name().into_owned()
}

fn collect_of<T: ToSchema>(out: &mut Schemas) {
    out.push((T::name().into_owned(), <T as PartialSchema>::schema()));
    T::schemas(out);
}

/// A route's request body: `NoBody`, `Json<T>`, or a body whose type follows from the path
/// (`SettingsBody`).
pub trait Body: Send + 'static {
    /// Its schema in the document; `None` when the route takes no body.
    const SCHEMA: Option<SchemaOf>;
}

impl Body for NoBody {
    const SCHEMA: Option<SchemaOf> = None;
}

impl<T: ToSchema + Send + 'static> Body for Json<T> {
    const SCHEMA: Option<SchemaOf> = Some(SchemaOf::of::<T>());
}

/// The successful answer, as documented.
pub struct Answer {
    pub status: u16,
    pub description: &'static str,
    pub schema: Option<SchemaOf>,
}

/// What the document says about a route beyond what the dispatch needs.
pub struct Doc {
    pub id: &'static str,
    pub summary: &'static str,
    /// Optional query parameters, with their descriptions.
    pub query: &'static [(&'static str, &'static str)],
    pub ok: Answer,
    pub errors: &'static [u16],
}

/// One route, untyped: what routes.json, the document and the dispatch read.
pub struct Spec {
    pub method: Method,
    /// The API Gateway path template; its `{name}`s are the path parameters.
    pub path: &'static str,
    pub function: Function,
    /// The scope the caller's JWT must carry; `None` for a public route.
    pub scope: Option<BridgeScope>,
    /// Whether the route requires an `Idempotency-Key` header (checked before the handler runs).
    pub idempotent: bool,
    pub body: Option<SchemaOf>,
    pub doc: Doc,
    /// A second success the route may answer (`202` for a job finished later).
    pub accepted: Option<Answer>,
}

impl Spec {
    /// Whether each request runs inside a fair-share slot of its tenant ([`FAIR_SHARE_ROUTES`]).
    pub fn fair_share(&self) -> bool {
        FAIR_SHARE_ROUTES.iter().any(|r| r.method == self.method && r.path == self.path)
    }

    /// The API Gateway route key, `"GET /v1/..."`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method.as_str(), self.path)
    }

    /// The path template's parameters, in order.
    pub fn path_params(&self) -> impl Iterator<Item = &'static str> {
        self.path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }
}

/// A route with its types: the body `B` its handler reads, and `A`, who calls it (`Caller`
/// authorized for the route's scope, or `Public`). Handlers are bound to these, so the types
/// the table declares are the types the handlers get.
pub struct Route<B, A = Caller> {
    pub spec: Spec,
    types: PhantomData<fn() -> (B, A)>,
}

impl<B: Body> Route<B, Caller> {
    pub const fn jwt(method: Method, path: &'static str, function: Function, scope: BridgeScope, doc: Doc) -> Self {
        let spec = Spec {
            method,
            path,
            function,
            scope: Some(scope),
            idempotent: false,
            body: B::SCHEMA,
            doc,
            accepted: None,
        };
        Self { spec, types: PhantomData }
    }
}

impl<B: Body> Route<B, Public> {
    pub const fn public(method: Method, path: &'static str, function: Function, doc: Doc) -> Self {
        let spec =
            Spec { method, path, function, scope: None, idempotent: false, body: B::SCHEMA, doc, accepted: None };
        Self { spec, types: PhantomData }
    }
}

impl<B, A> Route<B, A> {
    /// Requires an `Idempotency-Key` header.
    pub const fn idempotent(mut self) -> Self {
        self.spec.idempotent = true;
        self
    }

    /// May also answer `answer` (a job accepted with `202`).
    pub const fn accepts(mut self, answer: Answer) -> Self {
        self.spec.accepted = Some(answer);
        self
    }
}

/// An EventBridge rule: events of this detail type go to this function.
pub struct EventRule {
    pub detail_type: &'static str,
    pub function: Function,
    /// The bridge's own event, matched only from the bridge's own source; every other rule
    /// matches any source but ours, so no event of ours loops back into us by accident.
    pub own: bool,
}

pub const EVENT_RULES: &[EventRule] = &[
    EventRule { detail_type: "Report Ready", function: Function::PublishPage, own: false },
    EventRule { detail_type: "Action Items Ready", function: Function::CreateIssue, own: false },
    // The rest of an issue job that was answered with 202 (`POST /v1/tenants/{tenant}/issues`).
    EventRule { detail_type: "Action Items Deferred", function: Function::CreateIssue, own: true },
    // Edits of action items whose issues we created (`PATCH .../action-items/{id}` as an event).
    EventRule { detail_type: "Action Items Changed", function: Function::CreateIssue, own: false },
    // Issues created for a report's action items: publish-page links them from the report's page.
    EventRule { detail_type: "Report Issues Created", function: Function::PublishPage, own: true },
    // A report's page published: create-issue adds remote links from the report's issues to it.
    EventRule { detail_type: "Page Published", function: Function::CreateIssue, own: true },
];

/// An EventBridge Scheduler schedule: it invokes `function` with `input` (a JSON object) at
/// `expression`.
pub struct Schedule {
    pub name: &'static str,
    pub function: Function,
    pub expression: &'static str,
    pub input: &'static str,
}

pub const SCHEDULES: &[Schedule] = &[
    // Hourly slices of a daily round (shared/src/keep_alive.rs): every connection is visited
    // at least once a day, and a run cut short leaves the rest to the next hour.
    Schedule {
        name: "keep-alive",
        function: Function::KeepAlive,
        expression: "rate(1 hour)",
        input: r#"{"sweep": "scheduled"}"#,
    },
    // Status back by polling (shared/src/sync/poll.rs): a slice of the enrolled tenants per run,
    // each tenant's changes since its cursor.
    Schedule {
        name: "issue-sync",
        function: Function::IssueSync,
        expression: crate::sync::poll::SCHEDULE,
        input: r#"{"sync": "scheduled"}"#,
    },
];

use BridgeScope::{Admin, Publish, Read};
use Function::{Connections, CreateIssue, Discovery, OAuthCallback, PublishPage};
use Method::{Delete, Get, Patch, Post, Put};

/// What a route that calls Atlassian may answer besides its success.
const UPSTREAM: &[u16] = &[400, 401, 403, 404, 409, 413, 422, 502, 503];
/// Registration and verification also answer `429 destination_locked` (see `lockout.rs`).
const CREDENTIAL_CHECK: &[u16] = &[400, 401, 403, 404, 409, 413, 422, 429, 502, 503];

const fn ok(status: u16, description: &'static str, schema: Option<SchemaOf>) -> Answer {
    Answer { status, description, schema }
}

const fn json<T: ToSchema>() -> Option<SchemaOf> {
    Some(SchemaOf::of::<T>())
}

const fn answer<T: ToSchema>() -> Answer {
    ok(200, "The answer", json::<T>())
}

// oauth-callback

pub const START_OAUTH: Route<Json<StartOAuthRequest>> = Route::jwt(
    Post,
    "/v1/tenants/{tenant}/connections/{product}/oauth/start",
    OAuthCallback,
    Admin,
    Doc {
        id: "startOAuth",
        summary: "Start an Atlassian Cloud OAuth 2.0 (3LO) consent. `product` is jira, confluence, or atlassian (both in one consent). With `data_center` (an incoming application link's base URL, client id and secret; jira or confluence), a Data Center OAuth 2.0 consent instead: the admin's browser goes to `{base_url}/rest/oauth2/latest/authorize` (PKCE S256), and the grant waits for the same confirmation. The base URL passes the egress rules (400 egress_refused) and the destination lockout (429 destination_locked).",
        query: &[],
        ok: ok(200, "The consent URL to send the admin's browser to", json::<StartOAuthResponse>()),
        errors: &[400, 401, 403, 429],
    },
);

pub const OAUTH_CALLBACK: Route<NoBody, Public> = Route::public(
    Get,
    "/v1/oauth/callback",
    OAuthCallback,
    Doc {
        id: "oauthCallback",
        summary: "Atlassian's (or, for a Data Center consent, the instance's) redirect after consent (public; trusts only its signed, single-use state). Stores the grant as pending and redirects to the return URL with status=pending_confirmation&confirmation=CODE (confirm it with confirmOAuth within 10 minutes), or status=error&reason=... (Data Center also: client_refused, verification_failed, destination_locked)",
        query: &[
            ("state", "The signed state from startOAuth"),
            ("code", "The authorization code"),
            ("error", "Set by Atlassian when the consent was denied"),
        ],
        ok: ok(302, "Redirect to the return URL", None),
        errors: &[400],
    },
);

pub const CONFIRM_OAUTH: Route<Json<ConfirmOAuthRequest>> = Route::jwt(
    Post,
    "/v1/tenants/{tenant}/connections/{product}/oauth/confirm",
    OAuthCallback,
    Admin,
    Doc {
        id: "confirmOAuth",
        summary: "Confirm a consent that came back: the SaaS backend sends the `confirmation` code from the redirect, under the token of the tenant whose user is logged in on that browser, within 10 minutes of the callback. Only then does the connection exist (`connected`, or `site_selection_required`), replacing the product's earlier connection. A wrong, reused or other tenant's code (400 invalid_confirmation) or a late one (410 confirmation_expired) deletes the pending grant: start again. This is what keeps a consent link forwarded to another company's admin from connecting that company's site to the tenant that sent it.",
        query: &[],
        ok: ok(200, "The connections the consent made", json::<ConfirmOAuthResponse>()),
        errors: &[400, 401, 403, 410],
    },
);

// connections

pub const GET_CONNECTION: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/connections/{product}",
    Connections,
    Read,
    Doc {
        id: "getConnection",
        summary: "A connection's status, deployment, site, scopes and timestamps (never a credential). A consent that waits for its confirmation shows as status pending_confirmation, without its site, when the product has no connection yet.",
        query: &[],
        ok: ok(200, "The connection", json::<ConnectionView>()),
        errors: &[400, 401, 403, 404],
    },
);

pub const REGISTER_CONNECTION: Route<Json<ConnectionRequest>> = Route::jwt(
    Put,
    "/v1/tenants/{tenant}/connections/{product}",
    Connections,
    Admin,
    Doc {
        id: "registerConnection",
        summary: "Register or replace a Server/DC or Cloud API-token connection. The credentials are verified against the product before anything is saved; a failed replacement leaves the old connection working. `base_url` passes the egress guard. Refused credentials are counted per destination (server host, Cloud site, token endpoint) across all tenants; too many lock it for a while: `429 destination_locked` with `Retry-After`, before anything is sent to it.",
        query: &[],
        ok: ok(200, "The connection (never the credentials)", json::<ConnectionView>()),
        errors: CREDENTIAL_CHECK,
    },
);

pub const DELETE_CONNECTION: Route<NoBody> = Route::jwt(
    Delete,
    "/v1/tenants/{tenant}/connections/{product}",
    Connections,
    Admin,
    Doc {
        id: "deleteConnection",
        summary: "Disconnect: removes the connection, a consent of it still waiting for confirmation, and, when no other connection shares it, its secret. Nothing is revoked at Atlassian: OAuth 2.0 (3LO) has no revocation endpoint, so the grant stays listed under the user's connected apps (where the user or a site admin removes it) and simply goes unused; for API tokens and PATs, revoke them where they were created.",
        query: &[],
        ok: ok(204, "Removed (or there was nothing to remove)", None),
        errors: &[400, 401, 403],
    },
);

pub const SELECT_SITE: Route<Json<SelectSiteRequest>> = Route::jwt(
    Put,
    "/v1/tenants/{tenant}/connections/{product}/site",
    Connections,
    Admin,
    Doc {
        id: "selectSite",
        summary: "Choose the site of a connection whose consent covered several. `product` may be atlassian to set both.",
        query: &[],
        ok: ok(200, "The connections, now connected to that site", json::<SiteSelectionResponse>()),
        errors: &[400, 401, 403, 404, 409],
    },
);

pub const VERIFY_CONNECTION: Route<NoBody> = Route::jwt(
    Post,
    "/v1/tenants/{tenant}/connections/{product}/verify",
    Connections,
    Admin,
    Doc {
        id: "verifyConnection",
        summary: "Re-check a connection against the product (refreshing the token when due) and record last_verified_at. Token, Basic, PAT and OIDC connections are refused with `429 destination_locked` while their destination is locked (see registration).",
        query: &[],
        ok: ok(200, "The connection and who it acts as", json::<VerifyResponse>()),
        errors: CREDENTIAL_CHECK,
    },
);

pub const APP_LINK: Route<NoBody> = Route::jwt(
    Post,
    "/v1/tenants/{tenant}/connections/{product}/app-link",
    Connections,
    Admin,
    Doc {
        id: "createAppLinkCode",
        summary: "A one-time code (valid 10 minutes; a new one replaces the last) that links a Connect or Forge installation of the app to this tenant's `product` connection: the tenant's Atlassian admin enters it on the app's configure page (Connect) or admin page (Forge) on the site. The installation then is the tenant's connection (type `connect` or `forge`), replacing an earlier one of the product. One installation serves one tenant.",
        query: &[],
        ok: ok(200, "The code, shown once", json::<crate::apps::IssuedLinkCode>()),
        errors: &[400, 401, 403],
    },
);

pub const GET_SETTINGS: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/settings/{product}",
    Connections,
    Read,
    Doc {
        id: "getSettings",
        summary: "The tenant's Confluence (space, parent page titles) or Jira (project, issue type, field defaults, assignee matching, labels) settings.",
        query: &[],
        ok: ok(200, "ConfluenceSettings or JiraSettings, by product", SettingsBody::SCHEMA),
        errors: &[400, 401, 403, 404],
    },
);

pub const PUT_SETTINGS: Route<SettingsBody> = Route::jwt(
    Put,
    "/v1/tenants/{tenant}/settings/{product}",
    Connections,
    Admin,
    Doc {
        id: "putSettings",
        summary: "Save settings. When the product is connected, the space, project and issue type must exist and field_defaults must cover every required field without a default.",
        query: &[],
        ok: ok(200, "The saved settings", SettingsBody::SCHEMA),
        errors: UPSTREAM,
    },
);

// discovery

pub const LIST_SPACES: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/confluence/spaces",
    Discovery,
    Read,
    Doc {
        id: "listSpaces",
        summary: "Confluence spaces, filtered by name or key (`query`); page with `cursor`.",
        query: &[("query", "Part of a space's name or key"), ("cursor", "next_cursor of the previous page")],
        ok: answer::<find::SpaceList>(),
        errors: UPSTREAM,
    },
);

pub const FIND_PAGES: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/confluence/spaces/{key}/pages",
    Discovery,
    Read,
    Doc {
        id: "findPages",
        summary: "Pages with exactly this title in a space (the parent-page check).",
        query: &[("title", "The exact page title (required)")],
        ok: answer::<find::PageList>(),
        errors: UPSTREAM,
    },
);

pub const LIST_PROJECTS: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/jira/projects",
    Discovery,
    Read,
    Doc {
        id: "listProjects",
        summary: "Jira projects, filtered by name or key (`query`); page with `cursor`.",
        query: &[("query", "Part of a project's name or key"), ("cursor", "next_cursor of the previous page")],
        ok: answer::<find::ProjectList>(),
        errors: UPSTREAM,
    },
);

pub const GET_PROJECT: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/jira/projects/{key}",
    Discovery,
    Read,
    Doc {
        id: "getProject",
        summary: "A project with its lead and issue types.",
        query: &[],
        ok: answer::<find::ProjectDetails>(),
        errors: UPSTREAM,
    },
);

pub const LIST_ISSUE_TYPES: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/jira/projects/{key}/issue-types",
    Discovery,
    Read,
    Doc {
        id: "listIssueTypes",
        summary: "Issue types that can be created in the project (createmeta).",
        query: &[],
        ok: answer::<find::IssueTypeList>(),
        errors: UPSTREAM,
    },
);

pub const LIST_FIELDS: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/jira/projects/{key}/issue-types/{id}/fields",
    Discovery,
    Read,
    Doc {
        id: "listFields",
        summary: "The issue type's create fields: required, has_default, schema type, allowed values, and whether it takes ADF.",
        query: &[],
        ok: answer::<find::FieldList>(),
        errors: UPSTREAM,
    },
);

pub const LIST_COMPONENTS: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/jira/projects/{key}/components",
    Discovery,
    Read,
    Doc {
        id: "listComponents",
        summary: "The project's components; page with `cursor`.",
        query: &[("cursor", "next_cursor of the previous page")],
        ok: answer::<find::ComponentList>(),
        errors: UPSTREAM,
    },
);

pub const LIST_ASSIGNABLE_USERS: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/jira/projects/{key}/assignable-users",
    Discovery,
    Read,
    Doc {
        id: "listAssignableUsers",
        summary: "Users who can be assigned issues in the project; `id` is what an assignee field takes (accountId on Cloud, name on Server/DC). On Server/DC `query` is required (400 `invalid_request` without it): Jira DC answers at most 100 assignable users per search and cannot page past them, so an answer of exactly 100 comes with `possibly_incomplete: true` and a message asking for a narrower query.",
        query: &[
            ("query", "Part of a name or an email; required on Server/DC"),
            ("cursor", "next_cursor of the previous page"),
        ],
        ok: answer::<find::AssignableUserList>(),
        errors: UPSTREAM,
    },
);

pub const PICK_USERS: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/jira/users",
    Discovery,
    Read,
    Doc {
        id: "pickUsers",
        summary: "The user picker (`query` required). Hidden emails stay absent.",
        query: &[("query", "Part of a name or an email (required)")],
        ok: answer::<find::UserList>(),
        errors: UPSTREAM,
    },
);

pub const LIST_PRIORITIES: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/jira/priorities",
    Discovery,
    Read,
    Doc {
        id: "listPriorities",
        summary: "Priorities. On Cloud pass project and issue_type (they come from the create screen, since /priority/search needs a scope we do not ask for).",
        query: &[("project", "Project key (Cloud: required with issue_type)"), ("issue_type", "Issue type id")],
        ok: answer::<find::PriorityList>(),
        errors: UPSTREAM,
    },
);

// create-issue

pub const CREATE_ISSUES: Route<Json<IssuesRequest>> = Route::jwt(
    Post,
    "/v1/tenants/{tenant}/issues",
    CreateIssue,
    Publish,
    Doc {
        id: "createIssues",
        summary: "Create Jira issues for action items (bulk, 50 per call), once per action item however often it is sent. Answers per item: created, existing, or failed with a reason. A job that cannot finish inside the request's budget (BRIDGE_ISSUE_JOB_BUDGET_SECONDS, default 20 s, estimated from the items done so far) answers 202 with the results so far and a Location to poll; the rest is finished through events.",
        query: &[],
        ok: ok(200, "One result per action item, in request order", json::<IssuesCreated>()),
        errors: UPSTREAM,
    },
)
.idempotent()
.accepts(ok(
    202,
    "Accepted: the results so far; GET the Location (/v1/tenants/{tenant}/jobs/{job}) for the rest",
    json::<IssuesJob>(),
));

pub const GET_ISSUE_JOB: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/jobs/{job}",
    CreateIssue,
    Read,
    Doc {
        id: "getIssueJob",
        summary: "An issue job answered with 202: running or done, and the results of its finished parts in request order.",
        query: &[],
        ok: ok(200, "The job", json::<IssuesJob>()),
        errors: &[400, 401, 403, 404],
    },
);

pub const DELETE_ISSUE: Route<NoBody> = Route::jwt(
    Delete,
    "/v1/tenants/{tenant}/issues/{key}",
    CreateIssue,
    Publish,
    Doc {
        id: "deleteIssue",
        summary: "Delete an issue this integration created for the tenant (any other is refused with 404).",
        query: &[("delete_subtasks", "true to delete the issue's subtasks too (Jira refuses otherwise)")],
        ok: ok(204, "Deleted", None),
        errors: UPSTREAM,
    },
);

pub const LIST_ACTION_ITEMS: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/action-items",
    CreateIssue,
    Read,
    Doc {
        id: "listActionItems",
        summary: "The action items this integration created issues for (deleted ones too, marked), in action-item-id order: issue key and id, site, report_id, the issue's last known Jira state (null until the sync first saw it) and synced_at. Read from our records only (no Jira call). Each page looks at a bounded slice of the records, so with a sparse filter a page may be short or empty and still carry next_cursor: follow it until it is null. A cursor carries its filters; an edited or another tenant's cursor answers 400 invalid_cursor.",
        query: &[
            ("report_id", "Only the items sent with this report_id"),
            ("status_category", "Only items whose last known status category is new, indeterminate, done or unknown"),
            ("cursor", "next_cursor of the previous page"),
            ("limit", "Items per page, 1 to 100 (default 50)"),
        ],
        ok: answer::<ActionItemList>(),
        errors: &[400, 401, 403],
    },
);

pub const EDIT_ACTION_ITEM: Route<Json<ActionItemEdit>> = Route::jwt(
    Patch,
    "/v1/tenants/{tenant}/action-items/{id}",
    CreateIssue,
    Publish,
    Doc {
        id: "editActionItem",
        summary: "Change the summary, description, assignee (by the same email matching as creation) or due date of the issue created for action item `id`: exactly the fields sent, and of those only the ones whose value differs from Jira's. A field not on the issue's edit screen answers 422 field_not_editable and nothing is changed; an email that matches nobody leaves the assignee as it is, with a note. Optimistic: when the issue changed in Jira since its last known state (GET .../action-items) in a field the edit would overwrite (the description: any change), 409 issue_changed and nothing is changed. An item never created answers 404 action_item_not_found; a deleted issue 410 issue_deleted (and the item is marked deleted). The answer carries the issue's state after the edit, which the read model shows at once. The same edits come as the `Action Items Changed` event.",
        query: &[],
        ok: ok(200, "What was changed, with notes and the state after the edit", json::<ActionItemEdited>()),
        errors: &[400, 401, 403, 404, 409, 410, 422, 429, 502, 503],
    },
);

// publish-page

pub const PUBLISH_PAGE: Route<Json<Report>> = Route::jwt(
    Post,
    "/v1/tenants/{tenant}/pages",
    PublishPage,
    Publish,
    Doc {
        id: "publishPage",
        summary: "Publish a retrospective or health-check report as a Confluence page under its parent page, with a PDF summary attached. The same Idempotency-Key never creates a second page or attachment; the same report_id updates its page.",
        query: &[],
        ok: ok(200, "The publication", json::<Publication>()),
        errors: UPSTREAM,
    },
)
.idempotent();

pub const GET_PUBLICATION: Route<NoBody> = Route::jwt(
    Get,
    "/v1/tenants/{tenant}/publications/{id}",
    PublishPage,
    Read,
    Doc {
        id: "getPublication",
        summary: "A publication's state, page id and URL, version, attachment id and last error.",
        query: &[],
        ok: ok(200, "The publication", json::<Publication>()),
        errors: &[400, 401, 403, 404],
    },
);

// issue-webhook

pub const JIRA_WEBHOOK: Route<Json<crate::webhooks::JiraWebhookDelivery>, Public> = Route::public(
    Post,
    "/v1/webhooks/jira",
    Function::IssueWebhook,
    Doc {
        id: "receiveJiraWebhook",
        summary: "Jira's dynamic webhook deliveries (public; for Atlassian, not for the SaaS backend): issue updated or deleted, for tenants who consented to manage:jira-webhook. Trusts only a bearer JWT signed with this app's OAuth client secret (HS256; exp checked): anything else is 401 and logged without its body. A delivery for an issue the bridge did not create is acknowledged and ignored; a change already recorded (a retry, or the poll saw it first) emits nothing again.",
        query: &[],
        ok: ok(200, "Acknowledged", json::<crate::webhooks::WebhookAccepted>()),
        errors: &[400, 401],
    },
);

// app-lifecycle: Connect
//
// Public: Atlassian (and the product's pages) call them; each trusts only the JWT it verifies
// itself (`crate::connect`). Unset BRIDGE_CONNECT_APP_KEY / BRIDGE_PUBLIC_BASE_URL: 404
// `app_not_configured`.

pub const CONNECT_DESCRIPTOR: Route<NoBody, Public> = Route::public(
    Get,
    "/connect/atlassian-connect.json",
    Function::AppLifecycle,
    Doc {
        id: "connectDescriptor",
        summary: "The Connect app descriptor (public): key, baseUrl, JWT authentication, the lifecycle callbacks, signed installs, scopes READ WRITE DELETE, and the configure page that links an installation to a tenant. For a Connect on Forge app its modules go into the manifest's connectModules.",
        query: &[],
        ok: ok(200, "The descriptor (atlassian-connect.json)", None),
        errors: &[404],
    },
);

pub const CONNECT_INSTALLED: Route<Json<crate::connect::install::LifecyclePayload>, Public> = Route::public(
    Post,
    "/connect/installed",
    Function::AppLifecycle,
    Doc {
        id: "connectInstalled",
        summary: "Connect's installed callback (public; for Atlassian). Trusts only an RS256 JWT signed by the install key its kid names (Atlassian's install-key CDN) with aud = this deployment's base URL, iss = the payload's clientKey, the qsh of this request and a current exp; anything else is 401 invalid_app_token with nothing stored. Stores the installation and its sharedSecret (Secrets Manager); a reinstall writes the new secret.",
        query: &[],
        ok: ok(204, "Installed", None),
        errors: &[400, 401, 404],
    },
);

pub const CONNECT_UNINSTALLED: Route<Json<crate::connect::install::LifecyclePayload>, Public> = Route::public(
    Post,
    "/connect/uninstalled",
    Function::AppLifecycle,
    Doc {
        id: "connectUninstalled",
        summary: "Connect's uninstalled callback (public; for Atlassian; verified like connectInstalled). The tenant's connection made from the installation goes and its secret is deleted; the installation's record stays, marked uninstalled.",
        query: &[],
        ok: ok(204, "Uninstalled", None),
        errors: &[400, 401, 404],
    },
);

pub const CONNECT_CONFIGURE: Route<NoBody, Public> = Route::public(
    Get,
    "/connect/configure",
    Function::AppLifecycle,
    Doc {
        id: "connectConfigure",
        summary: "The app's configure page (public; loaded by the product in an iframe with the installation's HS256 JWT, bound to this request by its qsh). A form where the site's admin enters the one-time code from createAppLinkCode; it posts to connectLink.",
        query: &[("jwt", "The installation's JWT (as the product sends it to an iframe)")],
        ok: ok(200, "The page (text/html)", None),
        errors: &[401, 404],
    },
);

pub const CONNECT_LINK: Route<Json<crate::connect::lifecycle::LinkRequest>, Public> = Route::public(
    Post,
    "/connect/link",
    Function::AppLifecycle,
    Doc {
        id: "connectLink",
        summary: "Links the installation whose HS256 JWT signs the request (the request's qsh, or context-qsh from AP.context.getToken()) to the tenant whose one-time code the body carries: the installation becomes the tenant's connection of type connect.",
        query: &[],
        ok: ok(200, "Linked", json::<crate::connect::lifecycle::Linked>()),
        errors: &[400, 401, 404, 409],
    },
);

// app-lifecycle: Forge

/// What a Forge route may answer besides its success.
const FORGE_ERRORS: &[u16] = &[400, 401, 404, 409, 503];

pub const FORGE_LIFECYCLE: Route<Json<crate::forge::ForgeLifecycleEvent>, Public> = Route::public(
    Post,
    "/forge/lifecycle",
    Function::AppLifecycle,
    Doc {
        id: "forgeLifecycle",
        summary: "The Forge app's lifecycle trigger (public; for Forge, not for the SaaS backend): `avi:forge:installed:app` / `avi:forge:upgraded:app` store the installation (and the app system token of `x-forge-oauth-system`), `avi:forge:uninstalled:app` stops using it (its connection removed, its token deleted, the record kept). Trusts only the Forge Invocation Token (RS256 against Forge's JWKS, `aud` = this app): anything else is `401 invalid_app_token`. `404 app_not_configured` when this deployment is no Forge app. Answers at once (Forge waits 5 s for an event).",
        query: &[],
        ok: ok(200, "Acknowledged", json::<crate::forge::ForgeAnswer>()),
        errors: FORGE_ERRORS,
    },
);

pub const FORGE_SCHEDULED: Route<Json<crate::forge::ForgeScheduledTrigger>, Public> = Route::public(
    Post,
    "/forge/scheduled",
    Function::AppLifecycle,
    Doc {
        id: "forgeScheduled",
        summary: "The Forge app's scheduled trigger (public; for Forge): keeps the installation's app system token from `x-forge-oauth-system` when it lasts longer than the one held, so that publishes started by the SaaS between invocations have a valid one. FIT checked as on forgeLifecycle. Answers at once (Forge waits 5 s).",
        query: &[],
        ok: ok(200, "Acknowledged", json::<crate::forge::ForgeAnswer>()),
        errors: FORGE_ERRORS,
    },
);

pub const FORGE_LINK: Route<Json<crate::forge::ForgeLinkRequest>, Public> = Route::public(
    Post,
    "/forge/link",
    Function::AppLifecycle,
    Doc {
        id: "forgeLink",
        summary: "The Forge admin page's `invokeRemote` with the one-time code from createAppLinkCode: links the installation to the code's tenant as its `forge` connection for the installation's product. FIT checked as on forgeLifecycle. `400 invalid_link_code` for a wrong, used or expired code or another product's; `409 installation_linked` when the installation serves another tenant.",
        query: &[],
        ok: ok(200, "Linked", json::<crate::forge::ForgeAnswer>()),
        errors: FORGE_ERRORS,
    },
);

/// The table, in the order of routes.json and the document.
pub const ROUTES: &[&Spec] = &[
    &START_OAUTH.spec,
    &OAUTH_CALLBACK.spec,
    &CONFIRM_OAUTH.spec,
    &GET_CONNECTION.spec,
    &REGISTER_CONNECTION.spec,
    &DELETE_CONNECTION.spec,
    &SELECT_SITE.spec,
    &VERIFY_CONNECTION.spec,
    &APP_LINK.spec,
    &GET_SETTINGS.spec,
    &PUT_SETTINGS.spec,
    &LIST_SPACES.spec,
    &FIND_PAGES.spec,
    &LIST_PROJECTS.spec,
    &GET_PROJECT.spec,
    &LIST_ISSUE_TYPES.spec,
    &LIST_FIELDS.spec,
    &LIST_COMPONENTS.spec,
    &LIST_ASSIGNABLE_USERS.spec,
    &PICK_USERS.spec,
    &LIST_PRIORITIES.spec,
    &CREATE_ISSUES.spec,
    &DELETE_ISSUE.spec,
    &GET_ISSUE_JOB.spec,
    &LIST_ACTION_ITEMS.spec,
    &EDIT_ACTION_ITEM.spec,
    &PUBLISH_PAGE.spec,
    &GET_PUBLICATION.spec,
    &JIRA_WEBHOOK.spec,
    &CONNECT_DESCRIPTOR.spec,
    &CONNECT_INSTALLED.spec,
    &CONNECT_UNINSTALLED.spec,
    &CONNECT_CONFIGURE.spec,
    &CONNECT_LINK.spec,
    &FORGE_LIFECYCLE.spec,
    &FORGE_SCHEDULED.spec,
    &FORGE_LINK.spec,
];

/// The synchronous jobs: each request is a job run in the metrics (`metrics::Metric::JobsStarted`
/// and how it ended), like each event delivery of the same job.
pub const JOB_ROUTES: &[&Spec] = &[&PUBLISH_PAGE.spec, &CREATE_ISSUES.spec];

/// Whether `route_key` (`"POST /v1/..."`, as API Gateway names it) is one of [`JOB_ROUTES`].
pub fn is_job_route(route_key: &str) -> bool {
    JOB_ROUTES.iter().any(|spec| route_key.split_once(' ') == Some((spec.method.as_str(), spec.path)))
}

/// The routes whose handlers reach Atlassian for the caller's tenant: each request is admitted
/// into one of the tenant's fair-share slots of its function before the handler runs, and may be
/// answered `429 tenant_rate_limited` (`atlassian::governor::FairShares`). Reads of our own
/// records (publications, jobs, settings, connections) are not: they cost no Atlassian work. Nor
/// are registering and verifying a connection: an admin's occasional check, bounded per
/// destination by its own lockout, and a refused registration leaves nothing stored for the tenant.
pub const FAIR_SHARE_ROUTES: &[&Spec] = &[
    &LIST_SPACES.spec,
    &FIND_PAGES.spec,
    &LIST_PROJECTS.spec,
    &GET_PROJECT.spec,
    &LIST_ISSUE_TYPES.spec,
    &LIST_FIELDS.spec,
    &LIST_COMPONENTS.spec,
    &LIST_ASSIGNABLE_USERS.spec,
    &PICK_USERS.spec,
    &LIST_PRIORITIES.spec,
    &CREATE_ISSUES.spec,
    &DELETE_ISSUE.spec,
    &EDIT_ACTION_ITEM.spec,
    &PUBLISH_PAGE.spec,
];

/// `shared/routes.json`: the routes (`auth` is `jwt` where a scope is needed, `none` for public
/// routes) and the event rules, one a line, for the local gateway and the CDK app.
pub fn routes_json() -> String {
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    let width = |f: &dyn Fn(&Spec) -> String| ROUTES.iter().map(|r| f(r).len()).max().unwrap_or(0);
    let method = |r: &Spec| format!("{},", quoted(r.method.as_str()));
    let path = |r: &Spec| format!("{},", quoted(r.path));
    let function = |r: &Spec| format!("{},", quoted(r.function.name()));
    let (method_w, path_w, function_w) = (width(&method), width(&path), width(&function));
    let routes: Vec<String> = ROUTES
        .iter()
        .map(|r| {
            let auth = if r.scope.is_some() { "jwt" } else { "none" };
            format!(
                r#"    {{"method": {:method_w$} "path": {:path_w$} "function": {:function_w$} "auth": {}}}"#,
                method(r),
                path(r),
                function(r),
                quoted(auth)
            )
        })
        .collect();
    let events: Vec<String> = EVENT_RULES
        .iter()
        .map(|e| {
            let own = if e.own { r#", "own": true"# } else { "" };
            format!(
                r#"    {{"detail_type": {}, "function": {}{own}}}"#,
                quoted(e.detail_type),
                quoted(e.function.name())
            )
        })
        .collect();
    let schedules: Vec<String> = SCHEDULES
        .iter()
        .map(|s| {
            format!(
                r#"    {{"name": {}, "function": {}, "expression": {}, "input": {}}}"#,
                quoted(s.name),
                quoted(s.function.name()),
                quoted(s.expression),
                s.input
            )
        })
        .collect();
    let comment = "Generated from shared/src/api/routes.rs (make openapi); do not edit. The HTTP API's routes, the \
                   EventBridge rules and the EventBridge Scheduler schedules: one source read by the local gateway \
                   (tests/gateway) and by the CDK app (infra). Method + API Gateway path template -> function; auth \
                   is 'jwt' (JWT authorizer) or 'none' (public). A schedule invokes its function with its input.";
    format!(
        "{{\n  \"_comment\": {},\n  \"routes\": [\n{}\n  ],\n  \"events\": [\n{}\n  ],\n  \"schedules\": [\n{}\n  ]\n}}\n",
        quoted(comment),
        routes.join(",\n"),
        events.join(",\n"),
        schedules.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/routes.json");

    /// Fails when the committed routes.json differs from the table; `BLESS=1` rewrites it.
    #[test]
    fn committed_routes_file_matches_the_table() {
        crate::testing::assert_committed(COMMITTED, &routes_json());
    }

    #[test]
    fn the_routes_file_is_json_the_gateway_reads() {
        let doc: serde_json::Value = serde_json::from_str(&routes_json()).unwrap();
        let routes = doc["routes"].as_array().unwrap();
        assert_eq!(routes.len(), ROUTES.len());
        assert_eq!(
            routes[1],
            serde_json::json!({"method": "GET", "path": "/v1/oauth/callback", "function": "oauth-callback", "auth": "none"})
        );
        assert_eq!(doc["events"][0], serde_json::json!({"detail_type": "Report Ready", "function": "publish-page"}));
        assert_eq!(
            doc["schedules"][0],
            serde_json::json!({"name": "keep-alive", "function": "keep-alive", "expression": "rate(1 hour)",
                "input": {"sweep": "scheduled"}})
        );
    }

    /// A schedule's input is what its function reads: the keep-alive sweep's or the poll's
    /// request.
    #[test]
    fn every_schedule_input_is_a_request_its_function_reads() {
        for schedule in SCHEDULES {
            match schedule.function {
                Function::KeepAlive => {
                    let request: crate::keep_alive::RunRequest = serde_json::from_str(schedule.input).unwrap();
                    assert_eq!(request.sweep, crate::keep_alive::RunKind::Scheduled);
                }
                Function::IssueSync => {
                    let request: crate::sync::poll::RunRequest = serde_json::from_str(schedule.input).unwrap();
                    assert_eq!(request.sync, crate::sync::poll::RunKind::Scheduled);
                }
                other => panic!("{} has no schedule", other.name()),
            }
        }
    }

    #[test]
    fn every_route_is_listed_once() {
        let keys: BTreeSet<String> = ROUTES.iter().map(|r| r.key()).collect();
        assert_eq!(keys.len(), ROUTES.len());
    }

    /// Every route but the public ones (the OAuth callback, Jira's webhook deliveries, each
    /// trusting only what it verifies itself) is a tenant's: the caller extractor checks the
    /// token's tenant against `{tenant}`.
    #[test]
    fn every_scoped_route_has_a_tenant_and_only_the_callback_and_the_webhook_are_public() {
        for route in ROUTES {
            let has_tenant = route.path_params().any(|p| p == "tenant");
            assert_eq!(route.scope.is_some(), has_tenant, "{}", route.key());
        }
        let public: Vec<String> = ROUTES.iter().filter(|r| r.scope.is_none()).map(|r| r.key()).collect();
        assert_eq!(
            public,
            [
                "GET /v1/oauth/callback",
                "POST /v1/webhooks/jira",
                "GET /connect/atlassian-connect.json",
                "POST /connect/installed",
                "POST /connect/uninstalled",
                "GET /connect/configure",
                "POST /connect/link",
                "POST /forge/lifecycle",
                "POST /forge/scheduled",
                "POST /forge/link",
            ]
        );
    }
}
