//! The OpenAPI 3.1 document of the HTTP API, generated from the route table (`api::routes`) and
//! the Rust types. A test compares it with the committed `shared/openapi.json`, as another does
//! routes.json, so the contract, the gateway's routes and the code cannot drift apart.
//! `make openapi` rewrites both.

use utoipa::PartialSchema;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::ComponentsBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref, Required,
    ResponseBuilder,
};

use super::routes::{Method, ROUTES, SchemaOf};
use crate::error::{ErrorBody, ErrorCode};

/// A response's description: the codes that answer with this status, from the one table.
fn error_text(status: u16) -> String {
    let codes: Vec<String> =
        ErrorCode::ALL.iter().filter(|c| c.status().as_u16() == status).map(|c| format!("`{}`", c.as_str())).collect();
    format!("See the error code: {}", codes.join(", "))
}

fn http_method(method: Method) -> HttpMethod {
    match method {
        Method::Get => HttpMethod::Get,
        Method::Put => HttpMethod::Put,
        Method::Patch => HttpMethod::Patch,
        Method::Delete => HttpMethod::Delete,
        Method::Post => HttpMethod::Post,
    }
}

fn json_ref(name: &str) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build()
}

/// API Gateway's own answer, when no function ran: `401` on a JWT route without a valid token,
/// `403` without the route's scope, `429` when the stage or route throttle refuses the request.
/// Its body is API Gateway's, not ours: `{"message": "Unauthorized"}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct GatewayError {
    message: String,
}

/// The statuses API Gateway itself may answer a route with ([`GatewayError`]).
fn gateway_statuses(jwt: bool) -> &'static [u16] {
    if jwt { &[401, 403, 429] } else { &[429] }
}

/// An error response's body: ours, or for the statuses API Gateway answers too, either.
fn error_content(status: u16, jwt: bool) -> utoipa::openapi::Content {
    if !gateway_statuses(jwt).contains(&status) {
        return json_ref("ErrorBody");
    }
    let either = utoipa::openapi::schema::OneOfBuilder::new()
        .item(Ref::from_schema_name("ErrorBody"))
        .item(Ref::from_schema_name("GatewayError"));
    ContentBuilder::new().schema(Some(either)).build()
}

pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut schemas = Vec::new();
    let mut uses = |schema: SchemaOf| {
        (schema.collect)(&mut schemas);
        (schema.name)()
    };
    for route in ROUTES {
        let doc = &route.doc;
        let mut operation = OperationBuilder::new().operation_id(Some(doc.id)).summary(Some(doc.summary));
        for name in route.path_params() {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(String::schema())),
            );
        }
        for (name, description) in doc.query {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(String::schema())),
            );
        }
        if route.idempotent {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::True)
                    .description(Some("The same key for a retried request; 1 to 255 characters"))
                    .schema(Some(String::schema())),
            );
        }
        if let Some(body) = route.body {
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", json_ref(&uses(body)))
                    .build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description(doc.ok.description);
        if let Some(schema) = doc.ok.schema {
            ok = ok.content("application/json", json_ref(&uses(schema)));
        }
        operation = operation.response(doc.ok.status.to_string(), ok.build());
        if let Some(accepted) = &route.accepted {
            let mut answer = ResponseBuilder::new().description(accepted.description);
            if let Some(schema) = accepted.schema {
                answer = answer.content("application/json", json_ref(&uses(schema)));
            }
            operation = operation.response(accepted.status.to_string(), answer.build());
        }
        // Besides the route's own errors: what API Gateway answers by itself (a missing token or
        // scope, its throttle), and 429 from the tenant's fair share (with Retry-After).
        let jwt = route.scope.is_some();
        let mut statuses: Vec<u16> = doc.errors.to_vec();
        statuses.extend(gateway_statuses(jwt));
        statuses.sort_unstable();
        statuses.dedup();
        for status in statuses {
            operation = operation.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(if gateway_statuses(jwt).contains(&status) {
                        format!("{}; or API Gateway's own answer, `{{\"message\": \"...\"}}`", error_text(status))
                    } else {
                        error_text(status)
                    })
                    .content("application/json", error_content(status, jwt))
                    .build(),
            );
        }
        if let Some(scope) = route.scope {
            operation = operation.security(SecurityRequirement::new("jwt", [scope.as_str()]));
        }
        paths = paths.path(route.path, PathItem::new(http_method(route.method), operation.build()));
    }
    uses(SchemaOf::of::<ErrorBody>());
    uses(SchemaOf::of::<GatewayError>());
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
    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

    fn generated() -> String {
        document().to_pretty_json().expect("the document serializes") + "\n"
    }

    /// Fails when the committed document differs from the types; `BLESS=1` rewrites it.
    #[test]
    fn committed_openapi_matches_the_code() {
        crate::testing::assert_committed(COMMITTED, &generated());
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

    /// Each operation asks for the scope its route declares, and only the callback for none.
    #[test]
    fn every_operation_carries_its_routes_scope() {
        let doc: serde_json::Value = serde_json::from_str(&generated()).unwrap();
        for route in ROUTES {
            let operation = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
            assert_eq!(operation["operationId"], route.doc.id);
            let expected = route.scope.map(|scope| serde_json::json!([{"jwt": [scope.as_str()]}]));
            assert_eq!(operation.get("security").cloned(), expected, "{}", route.key());
        }
    }
}
