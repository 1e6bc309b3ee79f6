//! Caller authorization from the API Gateway JWT authorizer's verified claims.
//!
//! API Gateway has already checked the token's signature, issuer, audience and expiry; the
//! functions check what only they know: that the token's tenant is the path's tenant and that it
//! carries the route's scope.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::domain::TenantId;
use crate::error::ApiError;

/// Scopes the SaaS backend's tokens carry; each route needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeScope {
    Admin,
    Read,
    Publish,
}

impl BridgeScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "bridge:admin",
            Self::Read => "bridge:read",
            Self::Publish => "bridge:publish",
        }
    }
}

/// A caller whose tenant and scope were checked for this request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub subject: Option<String>,
}

/// Who calls a route, as its handler gets it: taken from the request before the handler runs.
pub trait Access: Sized + Send + 'static {
    /// `scope` is the route's, from the table (`None` for a public route).
    fn extract(req: &Request, tenant_claim: &str, scope: Option<BridgeScope>) -> Result<Self, ApiError>;

    /// The tenant the caller was authorized for, if any: whose fair share a request uses.
    fn tenant(&self) -> Option<&TenantId> {
        None
    }
}

/// The caller of a scoped route: authorized for the path's `{tenant}` and the route's scope.
impl Access for Caller {
    fn extract(req: &Request, tenant_claim: &str, scope: Option<BridgeScope>) -> Result<Self, ApiError> {
        let Some(scope) = scope else {
            tracing::error!("a public route's handler asked for an authorized caller");
            return Err(ApiError::internal());
        };
        let tenant = crate::http::path_param(req, "tenant")?;
        authorize(req, tenant_claim, &tenant, scope)
    }

    fn tenant(&self) -> Option<&TenantId> {
        Some(&self.tenant)
    }
}

/// The caller of a public route (the OAuth callback): anyone; the handler trusts only what it
/// checks itself.
#[derive(Debug, Clone, Copy)]
pub struct Public;

impl Access for Public {
    fn extract(_: &Request, _: &str, _: Option<BridgeScope>) -> Result<Self, ApiError> {
        Ok(Self)
    }
}

/// Checks the caller against the path's tenant and the route's scope:
/// no claims → 401; another tenant or a missing scope → 403.
pub fn authorize(
    req: &Request,
    tenant_claim: &str,
    path_tenant: &str,
    needed: BridgeScope,
) -> Result<Caller, ApiError> {
    let jwt = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()),
        _ => None,
    }
    .ok_or_else(ApiError::unauthorized)?;

    let tenant = TenantId::parse(path_tenant)?;
    let claimed = jwt.claims.get(tenant_claim).map(String::as_str);
    if claimed != Some(tenant.as_str()) {
        return Err(ApiError::forbidden(format!("the token is not valid for tenant {tenant}")));
    }

    // API Gateway fills `scopes` only for routes with authorization scopes; the `scope` claim
    // (space-separated, RFC 8693) is always there, so both are read.
    let has_scope = jwt.scopes.iter().flatten().any(|s| s == needed.as_str())
        || jwt.claims.get("scope").is_some_and(|s| s.split_whitespace().any(|s| s == needed.as_str()));
    if !has_scope {
        return Err(ApiError::forbidden(format!("the token lacks the {} scope", needed.as_str())));
    }
    Ok(Caller { tenant, subject: jwt.claims.get("sub").cloned() })
}

#[cfg(test)]
mod tests {
    use lambda_http::request::from_str;

    use super::*;

    fn request(authorizer: &str) -> Request {
        let event = format!(
            r#"{{"version":"2.0","routeKey":"GET /x","rawPath":"/x","rawQueryString":"","headers":{{}},
            "requestContext":{{"accountId":"1","apiId":"a","domainName":"d","domainPrefix":"d",
            "http":{{"method":"GET","path":"/x","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"t"}},
            "requestId":"r","routeKey":"GET /x","stage":"$default","time":"t","timeEpoch":0{authorizer}}},
            "isBase64Encoded":false}}"#
        );
        from_str(&event).expect("valid API Gateway v2 event")
    }

    fn with_claims(claims: &str) -> Request {
        request(&format!(r#","authorizer":{{"jwt":{{"claims":{claims},"scopes":null}}}}"#))
    }

    #[test]
    fn no_authorizer_is_unauthorized() {
        let err = authorize(&request(""), "tenant_id", "acme", BridgeScope::Read).unwrap_err();
        assert_eq!(err.status().as_u16(), 401);
    }

    #[test]
    fn matching_tenant_and_scope_is_allowed() {
        let req = with_claims(r#"{"tenant_id":"acme","scope":"bridge:read bridge:admin","sub":"svc"}"#);
        let caller = authorize(&req, "tenant_id", "acme", BridgeScope::Admin).unwrap();
        assert_eq!(caller.tenant.as_str(), "acme");
        assert_eq!(caller.subject.as_deref(), Some("svc"));
    }

    #[test]
    fn another_tenant_is_forbidden() {
        let req = with_claims(r#"{"tenant_id":"other","scope":"bridge:admin"}"#);
        let err = authorize(&req, "tenant_id", "acme", BridgeScope::Admin).unwrap_err();
        assert_eq!(err.status().as_u16(), 403);
    }

    #[test]
    fn a_missing_scope_is_forbidden_even_when_a_prefix_matches() {
        let req = with_claims(r#"{"tenant_id":"acme","scope":"bridge:read bridge:adminx"}"#);
        let err = authorize(&req, "tenant_id", "acme", BridgeScope::Admin).unwrap_err();
        assert_eq!(err.status().as_u16(), 403);
        assert!(err.message.contains("bridge:admin"));
    }

    #[test]
    fn scopes_from_the_authorizer_list_count() {
        let req = request(r#","authorizer":{"jwt":{"claims":{"tenant_id":"acme"},"scopes":["bridge:publish"]}}"#);
        assert!(authorize(&req, "tenant_id", "acme", BridgeScope::Publish).is_ok());
    }
}
