"""The token provider across Lambda instances: one refresh per grant, invalid_grant handling."""

import json
from concurrent.futures import ThreadPoolExecutor


def connect_with_short_lived_token(bridge, tenant, product="jira"):
    # An access token that lives 60 s is inside the 300 s refresh leeway: the next use refreshes.
    bridge.sim("PUT", "/_sim/oauth/config", {"access_token_ttl_seconds": 60})
    assert bridge.connect(tenant, product)["status"] == "connected"
    bridge.sim("PUT", "/_sim/oauth/config", {"access_token_ttl_seconds": 3600})
    bridge.sim("DELETE", "/_sim/calls")


def verify(bridge, tenant, product="jira"):
    return bridge.call("POST", f"/v1/tenants/{tenant}/connections/{product}/verify", tenant)


def test_fifty_concurrent_invocations_refresh_once(bridge):
    tenant = bridge.tenant()
    connect_with_short_lived_token(bridge, tenant)
    # Cold instances only, so the 50 invocations run in separate processes like Lambda instances.
    bridge.stack.recycle("connections")
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda _: verify(bridge, tenant), range(50)))
    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses if r.status_code != 200]
    assert all(r.json()["acting_as"] for r in responses)
    assert bridge.token_calls("refresh_token") == 1
    stats = bridge.http.get(bridge.gw + "/_gateway/functions", timeout=10).json()["connections"]
    assert stats["instances"] >= 10, stats
    myself = [c for c in bridge.sim("GET", "/_sim/calls").json()["calls"] if c["path"].endswith("/myself")]
    assert len(myself) == 50 and all(c["status"] == 200 for c in myself)
    view = bridge.connection(tenant, "jira").json()
    assert view["status"] == "connected" and view["last_verified_at"]


def test_the_rotated_refresh_token_is_stored_before_use(bridge):
    tenant = bridge.tenant()
    connect_with_short_lived_token(bridge, tenant)
    sm = bridge.stack.aws("secretsmanager")
    name = bridge.grant_secret(tenant, "jira")
    before = sm.get_secret_value(SecretId=name)["SecretString"]
    assert verify(bridge, tenant).status_code == 200
    after = sm.get_secret_value(SecretId=name)["SecretString"]
    assert before != after
    issued = bridge.sim("GET", "/_sim/oauth/issued").json()
    assert json.loads(after)["refresh_token"] == issued["refresh_tokens"][-1]


def test_invalid_grant_requires_reconnect_and_stops_refreshing(bridge):
    tenant = bridge.tenant()
    connect_with_short_lived_token(bridge, tenant)
    bridge.sim("POST", "/_sim/oauth/revoke", {})
    r = verify(bridge, tenant)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "reconnect_required")
    assert bridge.connection(tenant, "jira").json()["status"] == "reconnect_required"
    assert bridge.token_calls("refresh_token") == 1
    # Further calls fail fast: no retry storm at the token endpoint.
    with ThreadPoolExecutor(max_workers=10) as pool:
        again = list(pool.map(lambda _: verify(bridge, tenant), range(10)))
    assert {(a.status_code, a.json()["error"]["code"]) for a in again} == {(409, "reconnect_required")}
    assert bridge.token_calls("refresh_token") == 1
    # A new consent heals it.
    assert bridge.connect(tenant, "jira")["status"] == "connected"
    assert verify(bridge, tenant).status_code == 200


def test_invalid_grant_on_a_combined_grant_marks_both_products(bridge):
    tenant = bridge.tenant()
    connect_with_short_lived_token(bridge, tenant, "atlassian")
    bridge.sim("POST", "/_sim/oauth/revoke", {})
    assert verify(bridge, tenant, "confluence").status_code == 409
    for product in ("jira", "confluence"):
        assert bridge.connection(tenant, product).json()["status"] == "reconnect_required"


def test_token_endpoint_outage_is_a_retryable_503_and_keeps_the_connection(bridge):
    tenant = bridge.tenant()
    connect_with_short_lived_token(bridge, tenant)
    bridge.sim("POST", "/_sim/faults", {"route": "POST /oauth/token", "kind": "status", "status": 503, "times": 1})
    r = verify(bridge, tenant)
    assert r.status_code == 503 and r.headers.get("retry-after")
    assert bridge.connection(tenant, "jira").json()["status"] == "connected"
    assert verify(bridge, tenant).status_code == 200


def test_atlassian_rate_limit_is_retried_after_retry_after(bridge):
    tenant = bridge.tenant()
    bridge.connect(tenant, "jira")
    bridge.sim("POST", "/_sim/faults", {"route": "GET /ex/jira/{cloudId}/rest/api/3/myself", "kind": "rate_limit",
                                        "retry_after": 1, "times": 1})
    r = verify(bridge, tenant)
    assert r.status_code == 200, r.text
    statuses = [c["status"] for c in bridge.sim("GET", "/_sim/calls").json()["calls"] if c["path"].endswith("/myself")]
    assert statuses == [429, 200]


def test_a_refresh_racing_a_disconnect_leaves_no_secret_behind(bridge):
    tenant = bridge.tenant()
    connect_with_short_lived_token(bridge, tenant)
    assert len(bridge.secret_names(tenant)) == 1
    # Atlassian's token endpoint holds the refresh until the disconnect has happened.
    fault = bridge.sim("POST", "/_sim/faults", {"route": "POST /oauth/token", "kind": "hold", "times": 1}).json()["id"]
    with ThreadPoolExecutor(max_workers=1) as pool:
        refreshing = pool.submit(verify, bridge, tenant)
        assert bridge.sim("GET", f"/_sim/faults/{fault}/held?timeout_ms=30000").json()["held"]
        r = bridge.call("DELETE", f"/v1/tenants/{tenant}/connections/jira", tenant)
        assert r.status_code == 204
        assert bridge.secret_names(tenant) == []
        bridge.sim("POST", f"/_sim/faults/{fault}/release")
        late = refreshing.result(timeout=60)
    # Atlassian did rotate the pair, but it was not stored for a connection that is gone.
    assert bridge.token_calls("refresh_token") == 1
    assert (late.status_code, late.json()["error"]["code"]) == (404, "not_connected"), late.text
    assert bridge.secret_names(tenant) == [], "the refresh resurrected the disconnected grant's secret"
    assert bridge.connection(tenant, "jira").status_code == 404
