"""Caller authorization: no token, another tenant, a missing scope."""

import pytest

from .conftest import RETURN_URL


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/tenants/{t}/connections/jira/oauth/start"),
    ("GET", "/v1/tenants/{t}/connections/jira"),
    ("DELETE", "/v1/tenants/{t}/connections/jira"),
    ("PUT", "/v1/tenants/{t}/connections/jira/site"),
    ("POST", "/v1/tenants/{t}/connections/jira/verify"),
])
def test_no_token_or_a_bad_one_is_unauthorized(bridge, method, path):
    tenant = bridge.tenant()
    for token in (None, "not-a-jwt", bridge.token(tenant)[:-4] + "AAAA"):
        r = bridge.call(method, path.format(t=tenant), token=token, json_body={})
        assert r.status_code == 401, (token, r.text)


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/v1/tenants/{t}/connections/jira/oauth/start", {"return_url": RETURN_URL}),
    ("GET", "/v1/tenants/{t}/connections/jira", None),
    ("DELETE", "/v1/tenants/{t}/connections/jira", None),
    ("PUT", "/v1/tenants/{t}/connections/jira/site", {"cloud_id": "x"}),
    ("POST", "/v1/tenants/{t}/connections/jira/verify", None),
])
def test_a_token_for_another_tenant_is_forbidden(bridge, method, path, body):
    victim, attacker = bridge.tenant(), bridge.tenant()
    bridge.connect(victim, "jira")
    r = bridge.call(method, path.format(t=victim), token=bridge.token(attacker), json_body=body)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert bridge.connection(victim, "jira").status_code == 200


@pytest.mark.parametrize("method,path,body,needed", [
    ("POST", "/v1/tenants/{t}/connections/jira/oauth/start", {"return_url": RETURN_URL}, "bridge:admin"),
    ("GET", "/v1/tenants/{t}/connections/jira", None, "bridge:read"),
    ("DELETE", "/v1/tenants/{t}/connections/jira", None, "bridge:admin"),
    ("PUT", "/v1/tenants/{t}/connections/jira/site", {"cloud_id": "x"}, "bridge:admin"),
    ("POST", "/v1/tenants/{t}/connections/jira/verify", None, "bridge:admin"),
])
def test_a_missing_scope_is_forbidden(bridge, method, path, body, needed):
    tenant = bridge.tenant()
    others = " ".join(s for s in ("bridge:admin", "bridge:read", "bridge:publish") if s != needed)
    r = bridge.call(method, path.format(t=tenant), tenant, scopes=others, json_body=body)
    assert r.status_code == 403 and needed in r.json()["error"]["message"]


def test_a_malformed_tenant_id_is_a_bad_request(bridge):
    r = bridge.call("GET", "/v1/tenants/a%23b/connections/jira", "a#b")
    assert r.status_code in (400, 403)
