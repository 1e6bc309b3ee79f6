"""The OAuth state: forged, expired, replayed and cross-tenant states are refused, nothing stored."""

import base64
import json
import time

from .conftest import b64url, query


def assert_refused(bridge, response, tenant):
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_state"
    assert bridge.token_calls() == 0
    assert bridge.items(tenant) == [] and bridge.secret_names(tenant) == []


def test_missing_state(bridge):
    r = bridge.callback(bridge.gw + "/v1/oauth/callback?code=abc")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_state")


def test_forged_state_is_refused_before_any_lookup(bridge):
    tenant = bridge.tenant()
    for forged in ["garbage", "a.b", b64url(b'{"sid":"x","tenant":"' + tenant.encode() + b'"}') + ".c2ln"]:
        r = bridge.callback(f"{bridge.gw}/v1/oauth/callback?code=abc&state={forged}")
        assert_refused(bridge, r, tenant)


def test_state_signed_with_another_key_is_refused(bridge):
    tenant = bridge.tenant()
    real = query(bridge.start(tenant, "jira"))["state"]
    payload, _ = real.split(".")
    r = bridge.callback(f"{bridge.gw}/v1/oauth/callback?code=abc&state={payload}.{b64url(b'x' * 32)}")
    assert_refused(bridge, r, tenant)


def test_expired_state_is_refused(bridge):
    tenant = bridge.tenant()
    state = query(bridge.start(tenant, "jira"))["state"]
    claims = json.loads(base64.urlsafe_b64decode(state.split(".")[0] + "=="))
    claims["exp"] = int(time.time()) - 1
    r = bridge.callback(f"{bridge.gw}/v1/oauth/callback?code=abc&state={bridge.sign_state(claims)}")
    assert_refused(bridge, r, tenant)
    assert "expired" in r.json()["error"]["message"]


def test_replayed_state_is_refused(bridge):
    tenant = bridge.tenant()
    callback = bridge.authorize(bridge.start(tenant, "jira"))
    first = bridge.callback(callback)
    landing = query(first.headers["location"])
    bridge.secrets_seen.append(landing.get("confirmation", ""))
    assert first.status_code == 302 and landing["status"] == "pending_confirmation"
    before = bridge.items(tenant)
    again = bridge.callback(callback)
    assert (again.status_code, again.json()["error"]["code"]) == (400, "invalid_state")
    assert bridge.token_calls("authorization_code") == 1
    assert bridge.items(tenant) == before


def test_state_of_one_tenant_cannot_complete_another_tenants_authorization(bridge):
    victim, attacker = bridge.tenant(), bridge.tenant()
    state = query(bridge.start(victim, "jira"))["state"]
    claims = json.loads(base64.urlsafe_b64decode(state.split(".")[0] + "=="))
    claims["tenant"] = attacker
    r = bridge.callback(f"{bridge.gw}/v1/oauth/callback?code=abc&state={bridge.sign_state(claims)}")
    assert_refused(bridge, r, attacker)
    assert bridge.items(victim) == []


def test_denied_consent_consumes_the_state(bridge):
    tenant = bridge.tenant()
    bridge.sim("PUT", "/_sim/oauth/config", {"deny": True})
    callback = bridge.authorize(bridge.start(tenant, "jira"))
    assert query(bridge.callback(callback).headers["location"])["reason"] == "access_denied"
    assert bridge.callback(callback).status_code == 400
