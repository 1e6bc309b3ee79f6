"""Status back by dynamic webhook, end to end (Cloud OAuth, opt-in): the real binaries behind the
local gateway, against moto and the simulator, which registers webhooks like Jira and delivers
HS256-signed bodies to the gateway's public `POST /v1/webhooks/jira`.

A tenant that consents with `status_webhooks` also grants `manage:jira-webhook`; its webhook is
registered filtered to its project, a change made by a person in Jira reaches the SaaS as one
`Issues Updated` (source `webhook`), and neither a redelivery (Jira's retry) nor the poll seeing the
same change emits it again. Forged, expired and foreign tokens are refused with 401 and logged
without the token or the body. The keep-alive run refreshes the webhook before its 30 days end and
registers it again once Jira has dropped it. A tenant without the scope never registers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import pytest

from . import jobs
from .conftest import own_stack
from .test_create_issues import TASK, create, project_key


# The sweep/poll here visits every tenant in the table: a stack of its own (see own_stack).
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from own_stack(tmp_path_factory, "issue-webhooks")


UPDATED = "Issues Updated"
DAY = 86400
RECEIVER = "/v1/webhooks/jira"


def connect_with_webhooks(bridge, tenant: str) -> dict:
    r = bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/oauth/start", tenant,
                    json_body={"return_url": "https://app.example.test/done", "status_webhooks": True})
    assert r.status_code == 200, r.text
    url = r.json()["authorize_url"]
    assert "manage%3Ajira-webhook" in url or "manage:jira-webhook" in url
    bridge.secrets_seen.append(jobs_query(url)["state"])
    callback = bridge.callback(bridge.authorize(url))
    assert callback.status_code == 302, callback.text
    code = jobs_query(callback.headers["location"])["confirmation"]
    bridge.secrets_seen.append(code)
    confirmed = bridge.confirm(tenant, "jira", code)
    assert confirmed.status_code == 200, confirmed.text
    [connection] = confirmed.json()["connections"]
    assert "manage:jira-webhook" in connection["scopes"]
    return connection


def jobs_query(url: str) -> dict:
    from .conftest import query
    return query(url)


@pytest.fixture
def hooked(bridge):
    """A Cloud OAuth tenant that opted in, with its Jira project configured."""
    tenant = bridge.tenant()
    project = project_key(bridge, "cloud")
    connect_with_webhooks(bridge, tenant)
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK["cloud"]})
    return bridge, tenant, project


def sim_webhooks(bridge) -> dict:
    return bridge.sim("GET", "/_sim/webhooks").json()


def registration(bridge, tenant) -> dict | None:
    out = bridge.stack.aws("dynamodb").get_item(TableName=bridge.stack.table_name, ConsistentRead=True, Key={
        "pk": {"S": "JIRA_WEBHOOKS"}, "sk": {"S": f"TENANT#{tenant}"}})
    return out.get("Item")


def created(bridge, tenant, n):
    items = [{"id": f"hook-{uuid.uuid4().hex[:8]}", "title": f"Action item {i}"} for i in range(n)]
    r = create(bridge, tenant, {"action_items": items})
    assert r.status_code == 200, r.text
    return [(x["action_item_id"], x["key"]) for x in r.json()["results"]]


def events(bridge, tenant) -> list[dict]:
    return [e["detail"] for e in bridge.stack.published_events()
            if e["detail-type"] == UPDATED and e["detail"].get("tenant_id") == tenant]


def changes(details) -> list[dict]:
    return [c for d in details for c in d["changes"]]


def flush(bridge) -> list[dict]:
    return bridge.sim("POST", "/_sim/webhooks/flush").json()["deliveries"]


def transition(bridge, key, status):
    bridge.sim("POST", f"/_sim/jira/issues/{key}/transition?flavour=cloud", {"status": status})


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(secret: str, claims: dict, alg: str = "HS256") -> str:
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def test_an_opted_in_tenant_registers_its_project_and_hears_of_a_change_once(hooked):
    bridge, tenant, project = hooked
    [wh] = [w for w in sim_webhooks(bridge)["webhooks"] if not w["expired"]]
    assert wh["url"] == bridge.gw + RECEIVER
    assert wh["jqlFilter"] == f'project IN ("{project}")'
    assert sorted(wh["events"]) == ["jira:issue_deleted", "jira:issue_updated"]
    stored = registration(bridge, tenant)
    assert stored and [int(n["N"]) for n in stored["webhook_ids"]["L"]] == [wh["id"]]

    [(done_item, done_key), _] = created(bridge, tenant, 2)
    bridge.sim("POST", "/_sim/clock/advance", {"seconds": 10})
    bridge.stack.published_events()
    transition(bridge, done_key, "Done")
    delivered = [d for d in flush(bridge) if d["key"] == done_key]
    assert [a["status"] for a in delivered[-1]["attempts"]] == [200], delivered
    [change] = changes(events(bridge, tenant))
    assert (change["issue_key"], change["item_id"], change["done"], change["source"]) == \
        (done_key, done_item, True, "webhook")

    # Jira's retry of the same delivery: acknowledged, nothing emitted again.
    again = bridge.sim("POST", f"/_sim/webhooks/deliveries/{delivered[-1]['id']}/redeliver").json()
    assert again["attempts"][-1]["status"] == 200
    assert events(bridge, tenant) == []
    # The poll sees the same change (same `updated`): not announced twice.
    bridge.sim("POST", "/_sim/clock/advance", {"seconds": 10})
    result = bridge.stack.fire_schedule("issue-sync")
    assert result["status"] == "ok", result
    assert done_key not in [c["issue_key"] for c in changes(events(bridge, tenant))]


def test_a_lost_delivery_is_caught_by_the_poll(hooked):
    bridge, tenant, _ = hooked
    [(_, key)] = created(bridge, tenant, 1)
    bridge.sim("POST", "/_sim/clock/advance", {"seconds": 10})
    bridge.stack.published_events()
    bridge.sim("POST", "/_sim/webhooks/drop", {"count": 1})
    transition(bridge, key, "Done")
    assert all(d["dropped"] or d["key"] != key for d in flush(bridge))
    assert events(bridge, tenant) == []
    bridge.sim("POST", "/_sim/clock/advance", {"seconds": 10})
    assert bridge.stack.fire_schedule("issue-sync")["status"] == "ok"
    [change] = [c for c in changes(events(bridge, tenant)) if c["issue_key"] == key]
    assert (change["done"], change["source"]) == (True, "poll")


def test_forged_expired_and_foreign_tokens_are_refused_and_logged_without_token_or_body(hooked):
    bridge, tenant, _ = hooked
    secret, client = bridge.app_secret()["client_secret"], bridge.stack.client_id
    now = int(time.time())
    marker = f"body-marker-{uuid.uuid4().hex}"
    body = {"webhookEvent": "jira:issue_updated", "matchedWebhookIds": [1], "issue": {"key": marker}}
    cases = {
        "bad_signature": forge("not-the-client-secret", {"iss": client, "exp": now + 60}),
        "expired": forge(secret, {"iss": client, "exp": now - 3600}),
        "wrong_issuer": forge(secret, {"iss": "another-app", "exp": now + 60}),
        "wrong_algorithm": forge(secret, {"iss": client, "exp": now + 60}, alg="none"),
        "missing": None,
    }
    for reason, token in cases.items():
        headers = {"authorization": f"Bearer {token}"} if token else {}
        r = bridge.http.post(bridge.gw + RECEIVER, json=body, headers=headers, timeout=30)
        assert r.status_code == 401, (reason, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
        assert marker not in r.text
    log = (Path(bridge.stack.logs_dir) / "issue-webhook.log").read_text()
    refusals = [json.loads(line) for line in log.splitlines()
                if line.startswith("{") and "webhook delivery refused" in line]
    reasons = {r.get("reason") for r in refusals}
    assert set(cases) <= reasons, reasons
    assert marker not in log
    for token in filter(None, cases.values()):
        assert token not in log and token.split(".")[2] not in log
    # A genuine token for an issue nobody created: acknowledged (Jira must not retry), ignored.
    ok = bridge.http.post(bridge.gw + RECEIVER, json=body, timeout=30,
                          headers={"authorization": f"Bearer {forge(secret, {'iss': client, 'exp': now + 60})}"})
    assert ok.status_code == 200 and ok.json()["outcome"] == "ignored", ok.text


class Clocks:
    """Moves the simulator's clock and every function's clock together."""

    def __init__(self, bridge):
        self.bridge, self.days = bridge, 0

    def to(self, day: int) -> None:
        self.bridge.sim("POST", "/_sim/clock/advance", {"days": day - self.days})
        for function in self.bridge.stack.functions:
            self.bridge.stack.set_function_env(function, {"BRIDGE_TEST_CLOCK_OFFSET_SECONDS": str(day * DAY)})
        self.days = day

    def reset(self) -> None:
        for function in self.bridge.stack.functions:
            self.bridge.stack.set_function_env(function, {"BRIDGE_TEST_CLOCK_OFFSET_SECONDS": None})


@pytest.fixture
def clocks(bridge):
    c = Clocks(bridge)
    yield c
    c.reset()


def keep_alive(bridge) -> None:
    result = bridge.stack.fire_schedule("keep-alive")
    assert result["status"] == "ok", result


def test_the_webhook_is_refreshed_before_it_expires_and_registered_again_when_gone(hooked, clocks):
    bridge, tenant, _ = hooked
    [wh] = sim_webhooks(bridge)["webhooks"]
    first_expiry = wh["expires_at"]
    clocks.to(10)
    keep_alive(bridge)
    assert sim_webhooks(bridge)["webhooks"][0]["expires_at"] == first_expiry, "not due yet: left alone"
    clocks.to(24)
    keep_alive(bridge)
    [refreshed] = sim_webhooks(bridge)["webhooks"]
    assert refreshed["id"] == wh["id"] and refreshed["expires_at"] > first_expiry + 20 * DAY
    stored = registration(bridge, tenant)
    assert int(stored["expires_at_ms"]["N"]) == int(refreshed["expires_at"] * 1000)
    # Jira drops it (the app's webhooks deleted at the site): the next due run registers anew.
    bridge.sim("POST", "/_sim/clock/advance", {"days": 31})
    clocks.days += 31
    for function in bridge.stack.functions:
        bridge.stack.set_function_env(function, {"BRIDGE_TEST_CLOCK_OFFSET_SECONDS": str(clocks.days * DAY)})
    keep_alive(bridge)
    live = [w for w in sim_webhooks(bridge)["webhooks"] if not w["expired"]]
    assert len(live) == 1 and live[0]["id"] != wh["id"]
    assert [int(n["N"]) for n in registration(bridge, tenant)["webhook_ids"]["L"]] == [live[0]["id"]]


def test_a_tenant_without_the_scope_never_registers(bridge):
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", "cloud")
    jobs.settings(bridge, tenant, "jira", {"project_key": project_key(bridge, "cloud"),
                                           "issue_type_id": TASK["cloud"]})
    keep_alive(bridge)
    assert sim_webhooks(bridge)["webhooks"] == []
    assert registration(bridge, tenant) is None
    r = bridge.connection(tenant, "jira")
    assert "manage:jira-webhook" not in r.json()["scopes"]


def test_disconnecting_removes_the_webhook(hooked):
    bridge, tenant, _ = hooked
    assert len(sim_webhooks(bridge)["webhooks"]) == 1
    r = bridge.call("DELETE", f"/v1/tenants/{tenant}/connections/jira", tenant)
    assert r.status_code == 204, r.text
    assert sim_webhooks(bridge)["webhooks"] == []
    assert registration(bridge, tenant) is None
