//! Caller authorization with any JWT claims and scopes: never panics; a caller is accepted only
//! for the tenant its claims name.
//!
//! The input is the authorizer's `jwt` object (`{"claims": {...}, "scopes": [...]}`), put into an
//! otherwise valid API Gateway (HTTP API v2) event. Fuzzing whole events found that lambda_http
//! panics on hosts and paths it cannot put in a URI (`http::request_from_event` catches those
//! panics, covered by a unit test); libFuzzer aborts on every panic, caught or not, so the
//! envelope stays fixed and the claims — the code that is ours — are fuzzed.
#![no_main]

use bridge::caller::{BridgeScope, authorize};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(jwt) = serde_json::from_slice::<Value>(data) else { return };
    let event = json!({
        "version": "2.0", "routeKey": "POST /v1/tenants/{tenant}/issues", "rawPath": "/v1/tenants/acme/issues",
        "rawQueryString": "", "headers": {"content-type": "application/json"},
        "requestContext": {"accountId": "123", "apiId": "api", "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc", "http": {"method": "POST", "path": "/v1/tenants/acme/issues", "protocol": "HTTP/1.1",
            "sourceIp": "1.2.3.4", "userAgent": "t"}, "requestId": "r", "routeKey": "POST /v1/tenants/{tenant}/issues",
            "stage": "$default", "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1, "authorizer": {"jwt": jwt}},
        "pathParameters": {"tenant": "acme"}, "body": "{}", "isBase64Encoded": false
    });
    let Ok(event) = serde_json::from_value(event) else { return };
    let Ok(request) = bridge::http::request_from_event(event) else { return };
    for tenant in ["acme", "t-1", ""] {
        for scope in [BridgeScope::Publish, BridgeScope::Admin] {
            if let Ok(caller) = authorize(&request, "tenant_id", tenant, scope) {
                assert_eq!(caller.tenant.as_str(), tenant);
                assert_eq!(request_claim(&jwt), Some(tenant), "accepted a caller for another tenant");
            }
        }
    }
});

fn request_claim(jwt: &Value) -> Option<&str> {
    jwt.get("claims")?.get("tenant_id")?.as_str()
}
