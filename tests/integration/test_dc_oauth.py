"""Data Center OAuth 2.0 through an incoming application link (issue 14, item 4), end to end
through the local gateway: start (with the link's base URL, client id and secret) → the
instance's consent page (the simulator auto-consents) → our callback (code + PKCE verifier) →
the same confirmation as a Cloud consent → publish / create issues with the grant's Bearer token
→ refresh (after a 401, and when due) under the single-refresher lease → publish again.
Refusals: PKCE (no verifier, a wrong one, another consent's code), a refused client, a revoked
refresh token (reconnect_required), base URLs the egress guard refuses."""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from . import jobs
from .conftest import RETURN_URL, own_stack, query
from .test_keep_alive import EXPIRING, events_of, sweep, year  # noqa: F401  (year: the clock-shift fixture)


# The sweep/poll here visits every tenant in the table: a stack of its own (see own_stack).
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from own_stack(tmp_path_factory, "dc-oauth")


INSTANCE = {"jira": "jira-dc", "confluence": "conf-dc"}
BASE = {"jira": "/dc/jira-dc/jira", "confluence": "/dc/conf-dc/confluence"}
CLIENT_ID = "bridge-incoming-link"
TOKEN_ROUTE = "POST /dc/{instance}/rest/oauth2/latest/token"
SPACE = "SPA"


def base_url(bridge, product):
    return bridge.stack.sim_url + BASE[product]


def link(bridge, product, secret=None, **extra) -> str:
    """The instance's admin creates the incoming link: our callback, WRITE; we get id and secret."""
    secret = secret or "link-secret-" + uuid.uuid4().hex
    bridge.secrets_seen.append(secret)
    bridge.sim("PUT", "/_sim/dc/oauth/links", [{
        "instance": INSTANCE[product], "client_id": CLIENT_ID, "client_secret": secret,
        "redirect_uri": bridge.gw + "/v1/oauth/callback", "scopes": ["WRITE"], **extra}])
    return secret


def start(bridge, tenant, product, secret, base=None, client_id=CLIENT_ID):
    bridge.secrets_seen.append(secret)
    return bridge.call("POST", f"/v1/tenants/{tenant}/connections/{product}/oauth/start", tenant, json_body={
        "return_url": RETURN_URL,
        "data_center": {"base_url": base or base_url(bridge, product), "client_id": client_id,
                        "client_secret": secret}})


def authorize_url(bridge, tenant, product, secret) -> str:
    r = start(bridge, tenant, product, secret)
    assert r.status_code == 200, r.text
    url = r.json()["authorize_url"]
    bridge.secrets_seen.append(query(url)["state"])
    return url


def land(bridge, callback_url) -> dict:
    r = bridge.callback(callback_url)
    assert r.status_code == 302, r.text
    assert r.headers["location"].startswith(RETURN_URL), r.headers["location"]
    landing = query(r.headers["location"])
    if landing.get("confirmation"):
        bridge.secrets_seen.append(landing["confirmation"])
    return landing


def connect(bridge, tenant, product, secret) -> dict:
    landing = land(bridge, bridge.authorize(authorize_url(bridge, tenant, product, secret)))
    assert landing["status"] == "pending_confirmation", landing
    r = bridge.confirm(tenant, product, landing["confirmation"])
    assert r.status_code == 200, r.text
    [view] = r.json()["connections"]
    return view


def token_calls(bridge, grant_type):
    calls = bridge.sim("GET", "/_sim/calls").json()["calls"]
    return [c for c in calls if c["route"] == TOKEN_ROUTE and c.get("grant_type") == grant_type]


def stored(bridge, tenant, product) -> dict:
    sm = bridge.stack.aws("secretsmanager")
    return json.loads(sm.get_secret_value(SecretId=bridge.grant_secret(tenant, product))["SecretString"])


def assert_nothing_stored(bridge, tenant, product):
    assert bridge.secret_names(tenant) == []
    r = bridge.connection(tenant, product)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_connected"), r.text


def verify(bridge, tenant, product):
    return bridge.call("POST", f"/v1/tenants/{tenant}/connections/{product}/verify", tenant)


# --------------------------------------------------------------------------- end to end
def test_confluence_dc_connect_publish_refresh_publish(bridge):
    tenant, secret = bridge.tenant(), link(bridge, "confluence")
    view = connect(bridge, tenant, "confluence", secret)
    assert (view["deployment"], view["auth_type"], view["status"]) == ("datacenter", "dc_oauth2", "connected")
    assert view["base_url"] == base_url(bridge, "confluence")
    assert view["acting_as"] == "Bridge Bot"
    # One secret per grant: the pair and the link's credentials together.
    grant = stored(bridge, tenant, "confluence")
    assert grant["dc_client"]["client_id"] == CLIENT_ID and grant["dc_client"]["client_secret"] == secret
    assert grant["refresh_token"] == bridge.sim("GET", "/_sim/oauth/issued").json()["refresh_tokens"][-1]

    jobs.settings(bridge, tenant, "confluence", {"space_key": SPACE})
    first = jobs.publish(bridge, tenant, jobs.retrospective(title="DC OAuth retro 1"))
    assert first.status_code == 200 and first.json()["state"] == "published", first.text
    assert token_calls(bridge, "refresh_token") == []

    # The instance ends every access token early: the next request's 401 refreshes once.
    bridge.sim("POST", "/_sim/dc/oauth/expire", {})
    second = jobs.publish(bridge, tenant, jobs.retrospective(title="DC OAuth retro 2"))
    assert second.status_code == 200 and second.json()["state"] == "published", second.text
    assert len(token_calls(bridge, "refresh_token")) == 1
    titles = {p["title"] for p in jobs.pages(bridge, SPACE, "dc")}
    assert {"DC OAuth retro 1", "DC OAuth retro 2"} <= titles
    # The rotated refresh token was stored (before use), with the link's credentials kept.
    after = stored(bridge, tenant, "confluence")
    assert after["refresh_token"] == bridge.sim("GET", "/_sim/oauth/issued").json()["refresh_tokens"][-1]
    assert after["refresh_token"] != grant["refresh_token"]
    assert after["dc_client"] == grant["dc_client"]
    assert bridge.connection(tenant, "confluence").json()["status"] == "connected"


def test_jira_dc_connect_create_issues_refresh_when_due_create_again(bridge):
    tenant, secret = bridge.tenant(), link(bridge, "jira")
    # Access tokens that live 60 s: inside the refresh leeway, so every use finds them due.
    bridge.sim("PUT", "/_sim/dc/oauth/config", {"access_token_ttl_seconds": 60})
    connect(bridge, tenant, "jira", secret)
    projects = bridge.stack.sim("GET", "/_sim/data/projects?flavour=dc").json()["items"]
    project = next(p["key"] for p in projects if not p.get("archived") and p["key"] != "REQ")
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": "3", "labels": ["retro"],
                                           "assignee_matching": "email"})
    bridge.sim("DELETE", "/_sim/calls")

    def create(title):
        return bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant, headers={"Idempotency-Key": uuid.uuid4().hex},
                           json_body={"retrospective": {"title": "DC retro", "url": "https://app.example.test/r/1"},
                                      "action_items": [{"id": uuid.uuid4().hex, "title": title}]})

    first = create("First DC OAuth item")
    assert first.status_code == 200, first.text
    assert [x["status"] for x in first.json()["results"]] == ["created"]
    # Due before use: refreshed without a 401 first.
    calls = bridge.sim("GET", "/_sim/calls").json()["calls"]
    refreshes = [i for i, c in enumerate(calls) if c["route"] == TOKEN_ROUTE and c.get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1
    assert not any(c["status"] == 401 for c in calls[:refreshes[0]]), calls[:refreshes[0]]
    bridge.sim("PUT", "/_sim/dc/oauth/config", {"access_token_ttl_seconds": 3600})
    second = create("Second DC OAuth item")
    assert second.status_code == 200, second.text
    assert len(token_calls(bridge, "refresh_token")) == 2
    summaries = {i["fields"]["summary"] for i in jobs.issues(bridge, "dc", project)}
    assert {"First DC OAuth item", "Second DC OAuth item"} <= summaries
    # Bearer with the grant's token, to the base URL.
    writes = jobs.calls(bridge, "/rest/api/2/issue")
    assert writes and all(c["status"] in (200, 201) for c in writes), writes


# --------------------------------------------------------------------------- PKCE
def test_pkce_the_instance_refuses_a_missing_or_wrong_verifier_and_ours_works(bridge):
    tenant, secret = bridge.tenant(), link(bridge, "jira")
    url = authorize_url(bridge, tenant, "jira", secret)
    q = query(url)
    assert (q["code_challenge_method"], q["response_type"], q["scope"]) == ("S256", "code", "READ WRITE")
    assert q["client_id"] == CLIENT_ID and q["redirect_uri"] == bridge.gw + "/v1/oauth/callback"
    assert url.startswith(base_url(bridge, "jira") + "/rest/oauth2/latest/authorize?")
    assert secret not in url
    # The consent under way holds neither the client secret nor the verifier in DynamoDB.
    ddb = bridge.stack.aws("dynamodb")
    table = json.dumps(ddb.scan(TableName=bridge.stack.table_name, ConsistentRead=True)["Items"], default=repr)
    assert "OAUTH_STATE#" in table and secret not in table
    callback = bridge.authorize(url)
    code = query(callback)["code"]
    token_url = base_url(bridge, "jira") + "/rest/oauth2/latest/token"
    form = {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID, "client_secret": secret,
            "redirect_uri": bridge.gw + "/v1/oauth/callback"}
    for verifier in (None, "x" * 43):
        body = dict(form, **({"code_verifier": verifier} if verifier else {}))
        r = bridge.http.post(token_url, data=body, timeout=10)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant"), r.text
    # The bridge's callback sends the verifier only it can derive: the same code works.
    landing = land(bridge, callback)
    assert landing["status"] == "pending_confirmation", landing


def test_pkce_a_code_from_another_consent_is_refused_and_nothing_is_stored(bridge):
    tenant, secret = bridge.tenant(), link(bridge, "jira")
    attacker = bridge.authorize(authorize_url(bridge, tenant, "jira", secret))
    victim = bridge.authorize(authorize_url(bridge, tenant, "jira", secret))
    # The first consent's code delivered with the second's state: its verifier does not match.
    injected = victim.replace(f"code={query(victim)['code']}", f"code={query(attacker)['code']}")
    landing = land(bridge, injected)
    assert (landing["status"], landing["reason"]) == ("error", "token_exchange_failed"), landing
    assert_nothing_stored(bridge, tenant, "jira")
    assert token_calls(bridge, "authorization_code")[-1]["status"] == 400


# --------------------------------------------------------------------------- refusals
def test_a_revoked_refresh_token_requires_reconnect(bridge):
    tenant, secret = bridge.tenant(), link(bridge, "jira")
    connect(bridge, tenant, "jira", secret)
    assert verify(bridge, tenant, "jira").status_code == 200
    bridge.sim("POST", "/_sim/dc/oauth/revoke", {})
    r = verify(bridge, tenant, "jira")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "reconnect_required"), r.text
    assert bridge.connection(tenant, "jira").json()["status"] == "reconnect_required"
    assert len(token_calls(bridge, "refresh_token")) == 1
    with ThreadPoolExecutor(max_workers=5) as pool:
        again = list(pool.map(lambda _: verify(bridge, tenant, "jira"), range(5)))
    assert {(a.status_code, a.json()["error"]["code"]) for a in again} == {(409, "reconnect_required")}
    assert len(token_calls(bridge, "refresh_token")) == 1
    # A new consent heals it.
    connect(bridge, tenant, "jira", secret)
    assert verify(bridge, tenant, "jira").status_code == 200


def test_concurrent_requests_refresh_once(bridge):
    tenant, secret = bridge.tenant(), link(bridge, "confluence")
    bridge.sim("PUT", "/_sim/dc/oauth/config", {"access_token_ttl_seconds": 60})
    connect(bridge, tenant, "confluence", secret)
    bridge.sim("PUT", "/_sim/dc/oauth/config", {"access_token_ttl_seconds": 3600})
    bridge.stack.recycle("connections")
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: verify(bridge, tenant, "confluence"), range(20)))
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses if r.status_code != 200]
    assert len(token_calls(bridge, "refresh_token")) == 1
    assert {r.json()["acting_as"] for r in responses} == {"Bridge Bot"}


def test_a_refused_client_lands_as_an_error_and_stores_nothing(bridge):
    tenant = bridge.tenant()
    link(bridge, "jira", secret="the-right-link-secret")
    url = authorize_url(bridge, tenant, "jira", "a-mistyped-link-secret")
    landing = land(bridge, bridge.authorize(url))
    assert (landing["status"], landing["reason"]) == ("error", "client_refused"), landing
    assert_nothing_stored(bridge, tenant, "jira")


def test_start_refuses_other_products_and_urls_the_egress_guard_refuses(bridge):
    tenant = bridge.tenant()
    both = bridge.call("POST", f"/v1/tenants/{tenant}/connections/atlassian/oauth/start", tenant, json_body={
        "return_url": RETURN_URL,
        "data_center": {"base_url": base_url(bridge, "jira"), "client_id": CLIENT_ID, "client_secret": "s-1"}})
    assert (both.status_code, both.json()["error"]["code"]) == (400, "invalid_product")
    for url, code in [("https://10.0.0.7/jira", "egress_refused"), ("https://169.254.169.254/", "egress_refused"),
                      ("http://jira.example.com/jira", "egress_refused"), ("not a url", "invalid_request"),
                      ("https://user:pw@jira.example.com/", "egress_refused")]:
        r = start(bridge, tenant, "jira", "s-1", base=url)
        assert (r.status_code, r.json()["error"]["code"]) == (400, code), (url, r.text)
    r = start(bridge, tenant, "jira", "s-1", client_id="")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request")
    assert "s-1" not in r.text
    assert bridge.secret_names(tenant) == []


def test_disconnect_deletes_the_grant_secret(bridge):
    tenant, secret = bridge.tenant(), link(bridge, "confluence")
    connect(bridge, tenant, "confluence", secret)
    assert len(bridge.secret_names(tenant)) == 1
    r = bridge.call("DELETE", f"/v1/tenants/{tenant}/connections/confluence", tenant)
    assert r.status_code in (200, 204), r.text
    assert_nothing_stored(bridge, tenant, "confluence")


# --------------------------------------------------------------------------- outages and the sweep
def test_a_token_endpoint_outage_is_a_retryable_503_and_keeps_the_connection(bridge):
    tenant, secret = bridge.tenant(), link(bridge, "jira")
    connect(bridge, tenant, "jira", secret)
    bridge.sim("POST", "/_sim/dc/oauth/expire", {})
    bridge.sim("POST", "/_sim/faults", {"route": TOKEN_ROUTE, "kind": "status", "status": 503, "times": 1})
    r = verify(bridge, tenant, "jira")
    assert r.status_code == 503 and r.headers.get("retry-after"), r.text
    assert bridge.connection(tenant, "jira").json()["status"] == "connected"
    assert verify(bridge, tenant, "jira").status_code == 200


def test_the_sweep_keeps_an_idle_dc_grant_alive(bridge, year):
    """The instance retires a refresh token 90 days after it was issued (the simulator too):
    the sweep refreshes the DC grant idle for 30 days, so it still works at day 95."""
    tenant, secret = bridge.tenant(), link(bridge, "jira")
    connect(bridge, tenant, "jira", secret)
    [consent] = [g for g in bridge.sim("GET", "/_sim/dc/oauth/grants").json() if g["client_id"] == CLIENT_ID]
    year.to(31)
    report = sweep(bridge)
    assert report["refreshed"] >= 1 and report["round_complete"], report
    [kept] = [g for g in bridge.sim("GET", "/_sim/dc/oauth/grants").json() if g["grant"] == consent["grant"]]
    assert (kept["refresh_tokens"], kept["live"]) == (consent["refresh_tokens"] + 1, 1)
    # Day 95: the consent's own refresh token died at day 90; the sweep's still works.
    year.to(95)
    assert verify(bridge, tenant, "jira").status_code == 200
    assert bridge.connection(tenant, "jira").json()["status"] == "connected"
    assert not [e for e in events_of(bridge, {tenant}) if e["detail-type"] == EXPIRING]
