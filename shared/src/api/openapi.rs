//! The OpenAPI 3.1 document of the HTTP API, generated from the Rust types. A test compares it
//! with the committed `shared/openapi.json` and with `shared/routes.json`, so the contract, the
//! gateway's routes and the code cannot drift apart. `make openapi` rewrites the file.

use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::ComponentsBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr, Required,
    ResponseBuilder, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use super::{
    ConnectionRequest, ConnectionView, SelectSiteRequest, SiteSelectionResponse, StartOAuthRequest, StartOAuthResponse,
    VerifyResponse,
};
use crate::discovery;
use crate::error::{ErrorBody, ErrorCode};
use crate::settings::{ConfluenceSettings, JiraSettings};

/// One documented operation.
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    /// The bridge scope the caller's JWT needs; `None` for the public callback.
    scope: Option<&'static str>,
    query: &'static [(&'static str, &'static str)],
    body: Option<&'static str>,
    /// Whether the route takes (and requires) an `Idempotency-Key` header.
    idempotent: bool,
    ok: (u16, &'static str, Option<&'static str>),
    errors: &'static [u16],
}

const OPS: &[Op] = &[
    Op {
        method: "POST",
        path: "/v1/tenants/{tenant}/connections/{product}/oauth/start",
        id: "startOAuth",
        summary: "Start an Atlassian Cloud OAuth 2.0 (3LO) consent. `product` is jira, confluence, or atlassian (both in one consent).",
        scope: Some("bridge:admin"),
        query: &[],
        body: Some("StartOAuthRequest"),
        idempotent: false,
        ok: (200, "The consent URL to send the admin's browser to", Some("StartOAuthResponse")),
        errors: &[400, 401, 403],
    },
    Op {
        method: "GET",
        path: "/v1/oauth/callback",
        id: "oauthCallback",
        summary: "Atlassian's redirect after consent (public; trusts only its signed, single-use state). Redirects to the return URL with status=connected, status=site_selection_required or status=error&reason=...",
        scope: None,
        query: &[
            ("state", "The signed state from startOAuth"),
            ("code", "The authorization code"),
            ("error", "Set by Atlassian when the consent was denied"),
        ],
        body: None,
        idempotent: false,
        ok: (302, "Redirect to the return URL", None),
        errors: &[400],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/connections/{product}",
        id: "getConnection",
        summary: "A connection's status, deployment, site, scopes and timestamps (never a credential).",
        scope: Some("bridge:read"),
        query: &[],
        body: None,
        idempotent: false,
        ok: (200, "The connection", Some("ConnectionView")),
        errors: &[400, 401, 403, 404],
    },
    Op {
        method: "PUT",
        path: "/v1/tenants/{tenant}/connections/{product}",
        id: "registerConnection",
        summary: "Register or replace a Server/DC or Cloud API-token connection. The credentials are verified against the product before anything is saved; a failed replacement leaves the old connection working. `base_url` passes the egress guard.",
        scope: Some("bridge:admin"),
        query: &[],
        body: Some("ConnectionRequest"),
        idempotent: false,
        ok: (200, "The connection (never the credentials)", Some("ConnectionView")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "DELETE",
        path: "/v1/tenants/{tenant}/connections/{product}",
        id: "deleteConnection",
        summary: "Disconnect: removes the connection and, when no other connection shares it, its secret.",
        scope: Some("bridge:admin"),
        query: &[],
        body: None,
        idempotent: false,
        ok: (204, "Removed (or there was nothing to remove)", None),
        errors: &[400, 401, 403],
    },
    Op {
        method: "PUT",
        path: "/v1/tenants/{tenant}/connections/{product}/site",
        id: "selectSite",
        summary: "Choose the site of a connection whose consent covered several. `product` may be atlassian to set both.",
        scope: Some("bridge:admin"),
        query: &[],
        body: Some("SelectSiteRequest"),
        idempotent: false,
        ok: (200, "The connections, now connected to that site", Some("SiteSelectionResponse")),
        errors: &[400, 401, 403, 404, 409],
    },
    Op {
        method: "POST",
        path: "/v1/tenants/{tenant}/connections/{product}/verify",
        id: "verifyConnection",
        summary: "Re-check a connection against the product (refreshing the token when due) and record last_verified_at.",
        scope: Some("bridge:admin"),
        query: &[],
        body: None,
        idempotent: false,
        ok: (200, "The connection and who it acts as", Some("VerifyResponse")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/settings/{product}",
        id: "getSettings",
        summary: "The tenant's Confluence (space, parent page titles) or Jira (project, issue type, field defaults, assignee matching, labels) settings.",
        scope: Some("bridge:read"),
        query: &[],
        body: None,
        idempotent: false,
        ok: (200, "ConfluenceSettings or JiraSettings, by product", Some("Settings")),
        errors: &[400, 401, 403, 404],
    },
    Op {
        method: "PUT",
        path: "/v1/tenants/{tenant}/settings/{product}",
        id: "putSettings",
        summary: "Save settings. When the product is connected, the space, project and issue type must exist and field_defaults must cover every required field without a default.",
        scope: Some("bridge:admin"),
        query: &[],
        body: Some("Settings"),
        idempotent: false,
        ok: (200, "The saved settings", Some("Settings")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/confluence/spaces",
        id: "listSpaces",
        summary: "Confluence spaces, filtered by name or key (`query`); page with `cursor`.",
        scope: Some("bridge:read"),
        query: &[("query", "Part of a space's name or key"), ("cursor", "next_cursor of the previous page")],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("SpaceList")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/confluence/spaces/{key}/pages",
        id: "findPages",
        summary: "Pages with exactly this title in a space (the parent-page check).",
        scope: Some("bridge:read"),
        query: &[("title", "The exact page title (required)")],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("PageList")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/jira/projects",
        id: "listProjects",
        summary: "Jira projects, filtered by name or key (`query`); page with `cursor`.",
        scope: Some("bridge:read"),
        query: &[("query", "Part of a project's name or key"), ("cursor", "next_cursor of the previous page")],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("ProjectList")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/jira/projects/{key}",
        id: "getProject",
        summary: "A project with its lead and issue types.",
        scope: Some("bridge:read"),
        query: &[],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("ProjectDetails")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/jira/projects/{key}/issue-types",
        id: "listIssueTypes",
        summary: "Issue types that can be created in the project (createmeta).",
        scope: Some("bridge:read"),
        query: &[],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("IssueTypeList")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/jira/projects/{key}/issue-types/{id}/fields",
        id: "listFields",
        summary: "The issue type's create fields: required, has_default, schema type, allowed values, and whether it takes ADF.",
        scope: Some("bridge:read"),
        query: &[],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("FieldList")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/jira/projects/{key}/components",
        id: "listComponents",
        summary: "The project's components; page with `cursor`.",
        scope: Some("bridge:read"),
        query: &[("cursor", "next_cursor of the previous page")],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("ComponentList")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/jira/projects/{key}/assignable-users",
        id: "listAssignableUsers",
        summary: "Users who can be assigned issues in the project; `id` is what an assignee field takes (accountId on Cloud, name on Server/DC). On Server/DC `query` is required (400 `invalid_request` without it): Jira DC answers at most 100 assignable users per search and cannot page past them, so an answer of exactly 100 comes with `possibly_incomplete: true` and a message asking for a narrower query.",
        scope: Some("bridge:read"),
        query: &[
            ("query", "Part of a name or an email; required on Server/DC"),
            ("cursor", "next_cursor of the previous page"),
        ],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("AssignableUserList")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/jira/users",
        id: "pickUsers",
        summary: "The user picker (`query` required). Hidden emails stay absent.",
        scope: Some("bridge:read"),
        query: &[("query", "Part of a name or an email (required)")],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("UserList")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/jira/priorities",
        id: "listPriorities",
        summary: "Priorities. On Cloud pass project and issue_type (they come from the create screen, since /priority/search needs a scope we do not ask for).",
        scope: Some("bridge:read"),
        query: &[("project", "Project key (Cloud: required with issue_type)"), ("issue_type", "Issue type id")],
        body: None,
        idempotent: false,
        ok: (200, "The answer", Some("PriorityList")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "POST",
        path: "/v1/tenants/{tenant}/issues",
        id: "createIssues",
        summary: "Create Jira issues for action items (bulk, 50 per call), once per action item however often it is sent. Answers per item: created, existing, or failed with a reason.",
        scope: Some("bridge:publish"),
        query: &[],
        body: Some("IssuesRequest"),
        idempotent: true,
        ok: (200, "One result per action item, in request order", Some("IssuesCreated")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "DELETE",
        path: "/v1/tenants/{tenant}/issues/{key}",
        id: "deleteIssue",
        summary: "Delete an issue this integration created for the tenant (any other is refused with 404).",
        scope: Some("bridge:publish"),
        query: &[("delete_subtasks", "true to delete the issue's subtasks too (Jira refuses otherwise)")],
        body: None,
        idempotent: false,
        ok: (204, "Deleted", None),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "POST",
        path: "/v1/tenants/{tenant}/pages",
        id: "publishPage",
        summary: "Publish a retrospective or health-check report as a Confluence page under its parent page, with a PDF summary attached. The same Idempotency-Key never creates a second page or attachment; the same report_id updates its page.",
        scope: Some("bridge:publish"),
        query: &[],
        body: Some("Report"),
        idempotent: true,
        ok: (200, "The publication", Some("Publication")),
        errors: &[400, 401, 403, 404, 409, 413, 422, 502, 503],
    },
    Op {
        method: "GET",
        path: "/v1/tenants/{tenant}/publications/{id}",
        id: "getPublication",
        summary: "A publication's state, page id and URL, version, attachment id and last error.",
        scope: Some("bridge:read"),
        query: &[],
        body: None,
        idempotent: false,
        ok: (200, "The publication", Some("Publication")),
        errors: &[400, 401, 403, 404],
    },
];

/// A response's description: the codes that answer with this status, from the one table.
fn error_text(status: u16) -> String {
    let codes: Vec<String> =
        ErrorCode::ALL.iter().filter(|c| c.status().as_u16() == status).map(|c| format!("`{}`", c.as_str())).collect();
    format!("See the error code: {}", codes.join(", "))
}

fn http_method(method: &str) -> HttpMethod {
    match method {
        "GET" => HttpMethod::Get,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Post,
    }
}

fn json_ref(name: &str) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build()
}

fn schemas_of<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    out.push((T::name().into_owned(), <T as PartialSchema>::schema()));
    T::schemas(out);
}

pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for op in OPS {
        let mut operation = OperationBuilder::new().operation_id(Some(op.id)).summary(Some(op.summary));
        let path_params = op.path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')));
        for name in path_params {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(String::schema())),
            );
        }
        for (name, description) in op.query {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(String::schema())),
            );
        }
        if op.idempotent {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::True)
                    .description(Some("The same key for a retried request; 1 to 255 characters"))
                    .schema(Some(String::schema())),
            );
        }
        if let Some(body) = op.body {
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", json_ref(body))
                    .build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description(op.ok.1);
        if let Some(schema) = op.ok.2 {
            ok = ok.content("application/json", json_ref(schema));
        }
        operation = operation.response(op.ok.0.to_string(), ok.build());
        for status in op.errors {
            operation = operation.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(error_text(*status))
                    .content("application/json", json_ref("ErrorBody"))
                    .build(),
            );
        }
        if let Some(scope) = op.scope {
            operation = operation.security(SecurityRequirement::new("jwt", [scope]));
        }
        paths = paths.path(op.path, PathItem::new(http_method(op.method), operation.build()));
    }

    let mut schemas = Vec::new();
    schemas_of::<StartOAuthRequest>(&mut schemas);
    schemas_of::<StartOAuthResponse>(&mut schemas);
    schemas_of::<SelectSiteRequest>(&mut schemas);
    schemas_of::<ConnectionView>(&mut schemas);
    schemas_of::<VerifyResponse>(&mut schemas);
    schemas_of::<SiteSelectionResponse>(&mut schemas);
    schemas_of::<ErrorBody>(&mut schemas);
    schemas_of::<ConnectionRequest>(&mut schemas);
    schemas_of::<ConfluenceSettings>(&mut schemas);
    schemas_of::<JiraSettings>(&mut schemas);
    schemas_of::<crate::issues::IssuesRequest>(&mut schemas);
    schemas_of::<crate::reports::Report>(&mut schemas);
    schemas_of::<crate::reports::Publication>(&mut schemas);
    schemas_of::<crate::issues::IssuesCreated>(&mut schemas);
    schemas_of::<discovery::SpaceList>(&mut schemas);
    schemas_of::<discovery::PageList>(&mut schemas);
    schemas_of::<discovery::ProjectList>(&mut schemas);
    schemas_of::<discovery::ProjectDetails>(&mut schemas);
    schemas_of::<discovery::IssueTypeList>(&mut schemas);
    schemas_of::<discovery::FieldList>(&mut schemas);
    schemas_of::<discovery::ComponentList>(&mut schemas);
    schemas_of::<discovery::UserList>(&mut schemas);
    schemas_of::<discovery::AssignableUserList>(&mut schemas);
    schemas_of::<discovery::PriorityList>(&mut schemas);
    // One body schema per settings route: which one applies follows from {product}.
    schemas.push((
        "Settings".into(),
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(Ref::from_schema_name("ConfluenceSettings"))
            .item(Ref::from_schema_name("JiraSettings"))
            .into(),
    ));
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);

    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Atlassian Bridge")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Connect a tenant's Jira and Confluence and publish into them. Every route but the OAuth callback \
                     needs a JWT whose tenant claim equals {tenant} and which carries the listed scope.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(
            ComponentsBuilder::new()
                .schemas_from_iter(schemas)
                .security_scheme(
                    "jwt",
                    SecurityScheme::Http(
                        HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
                    ),
                )
                .build(),
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    const ROUTES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/routes.json");

    fn generated() -> String {
        document().to_pretty_json().expect("the document serializes") + "\n"
    }

    /// Fails when the committed document differs from the types; `BLESS=1` rewrites it.
    #[test]
    fn committed_openapi_matches_the_code() {
        let generated = generated();
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(COMMITTED, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(committed == generated, "shared/openapi.json is stale: run `make openapi` and commit it");
    }

    /// The error schema is the code table: every code we answer, with its status.
    #[test]
    fn the_error_schema_lists_every_code_with_its_status() {
        let doc: serde_json::Value = serde_json::from_str(&generated()).unwrap();
        let schema = &doc["components"]["schemas"]["ErrorCode"];
        let listed: Vec<&str> = schema["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(listed, ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>());
        let table = schema["description"].as_str().unwrap();
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
            assert!(table.contains(&row), "{row} missing");
        }
        assert_eq!(
            doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
            "#/components/schemas/ErrorCode"
        );
    }

    #[test]
    fn openapi_is_version_3_1() {
        let doc: serde_json::Value = serde_json::from_str(&generated()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    }

    #[test]
    fn every_schema_reference_resolves() {
        let text = generated();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            assert!(schemas.contains_key(&name), "unresolved reference to {name}");
        }
    }

    /// The gateway and the CDK app route from routes.json: it must list exactly the documented
    /// operations, with auth exactly where the document asks for a scope.
    #[test]
    fn routes_file_matches_the_document() {
        let routes: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ROUTES).unwrap()).unwrap();
        let listed: BTreeSet<(String, String, bool)> = routes["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (r["method"].as_str().unwrap().to_owned(), r["path"].as_str().unwrap().to_owned(), r["auth"] == "jwt")
            })
            .collect();
        let documented: BTreeSet<(String, String, bool)> =
            OPS.iter().map(|op| (op.method.to_owned(), op.path.to_owned(), op.scope.is_some())).collect();
        assert_eq!(listed, documented);
    }
}
