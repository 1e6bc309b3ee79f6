"""Our egress IPs are no password-spraying platform (issue 11, item 2), end to end: refused
credential checks are counted per destination across all tenants, and a destination past the
threshold is locked — `429 destination_locked` with Retry-After, before anything is sent to it,
even with the right credentials — while other destinations and existing connections carry on,
and one `Egress Abuse Suspected` event goes to the bus.

This module runs its own stack with the production policy (5 refusals in 15 minutes lock a host
for 15 minutes): the session stack raises the threshold, since the rest of the suite registers
wrong credentials against the simulator's one host on purpose, many times.

Two destinations on one simulator: the base URL's host is the key, without the port (see
shared/src/lockout.rs), so `127.0.0.1` and `localhost` — both the simulator, both allowed by the
test-only loopback rule — are two hosts, as two customers' servers are."""

from __future__ import annotations

import json

import pytest

from . import registration as reg
from .conftest import Bridge, assert_not_logged, own_stack

LOCKED_HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def lockout_stack(tmp_path_factory):
    yield from own_stack(tmp_path_factory, "lockout", env_overrides={
        # The production defaults, spelled out (the session stack raises the threshold).
        "BRIDGE_DESTINATION_LOCKOUT_THRESHOLD": "5",
        "BRIDGE_DESTINATION_LOCKOUT_WINDOW_SECONDS": "900",
        "BRIDGE_DESTINATION_LOCKOUT_COOL_DOWN_SECONDS": "900",
    })


@pytest.fixture
def bridge(lockout_stack):
    b = Bridge(lockout_stack)
    lockout_stack.sim("POST", "/_sim/reset")
    lockout_stack.register_client()
    yield b
    issued = lockout_stack.sim("GET", "/_sim/oauth/issued").json()
    assert_not_logged(lockout_stack, [s for group in issued.values() for s in group] + b.secrets_seen)


def on_host(url: str, host: str) -> str:
    assert f"//{LOCKED_HOST}:" in url, url
    return url.replace(f"//{LOCKED_HOST}:", f"//{host}:", 1)


def basic(bridge, product: str, password: str, host: str = LOCKED_HOST) -> dict:
    bridge.secrets_seen.append(password)
    return {"deployment": "datacenter", "base_url": on_host(reg.dc_url(bridge, product), host),
            "auth": {"type": "basic", "username": reg.DC_USER, "password": password}}


def abuse_events(bridge) -> list[dict]:
    return [e for e in bridge.stack.published_events() if e["detail-type"] == "Egress Abuse Suspected"]


def test_six_wrong_passwords_from_three_tenants_lock_the_host_and_nothing_else(bridge):
    # Before the attack: a customer's working connection to that host.
    customer = bridge.tenant()
    assert reg.put(bridge, customer, "jira", basic(bridge, "jira", reg.DC_PASSWORD)).status_code == 200
    assert abuse_events(bridge) == []

    attackers = [bridge.tenant() for _ in range(3)]
    answers = []
    for attempt in range(6):
        tenant = attackers[attempt % 3]
        r = reg.put(bridge, tenant, "jira", basic(bridge, "jira", f"guess-{attempt}-Winter2026!"))
        answers.append((r.status_code, r.json()["error"]["code"], r.headers.get("retry-after")))
    assert answers[:5] == [(422, "credentials_rejected", None)] * 5, answers
    status, code, retry_after = answers[5]
    assert (status, code) == (429, "destination_locked"), answers
    assert 1 <= int(retry_after) <= 900

    # The right password, from a tenant that never failed, and another product on the same host:
    # refused, and nothing reaches the server.
    bridge.sim("DELETE", "/_sim/calls")
    newcomer = bridge.tenant()
    for product in ("jira", "confluence"):
        r = reg.put(bridge, newcomer, product, basic(bridge, product, reg.DC_PASSWORD))
        assert r.status_code == 429, r.text
        error = r.json()["error"]
        assert error["code"] == "destination_locked"
        assert LOCKED_HOST in error["message"] and "retry after" in error["message"], error
        assert 1 <= int(r.headers["retry-after"]) <= 900
    # The customer's verify is refused too (it would send credentials to the locked host).
    r = reg.verify(bridge, customer, "jira")
    assert (r.status_code, r.json()["error"]["code"]) == (429, "destination_locked"), r.text
    assert reg.calls(bridge) == []

    # Another host registers fine; the existing connection to the locked host keeps working.
    elsewhere = reg.put(bridge, newcomer, "jira", basic(bridge, "jira", reg.DC_PASSWORD, host="localhost"))
    assert elsewhere.status_code == 200, elsewhere.text
    assert elsewhere.json()["base_url"].startswith("http://localhost:")
    projects = bridge.call("GET", f"/v1/tenants/{customer}/jira/projects", customer)
    assert projects.status_code == 200, projects.text
    assert projects.json()["items"]
    assert bridge.connection(customer, "jira").json()["status"] == "connected"

    # One event for the one lock: the host, the count that tripped it, three tenants — and no
    # tenant id, user name or password.
    events = abuse_events(bridge)
    assert len(events) == 1, events
    detail = events[0]["detail"]
    assert {k: detail[k] for k in ("destination", "kind", "failures", "window_seconds", "tenants")} == {
        "destination": LOCKED_HOST, "kind": "host", "failures": 5, "window_seconds": 900, "tenants": 3}
    assert set(detail) == {"destination", "kind", "failures", "window_seconds", "tenants", "locked_until"}
    text = json.dumps(events)
    assert "Winter2026" not in text and reg.DC_USER not in text
    assert not any(t in text for t in attackers + [customer, newcomer])
