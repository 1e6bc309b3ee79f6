"""Tests of the Atlassian simulator itself (run: .venv/bin/python -m pytest tests/sim -q)."""

from __future__ import annotations

import base64
import concurrent.futures
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from .conftest import REDIRECT
from .state import DEFAULT_CLIENT_SCOPES
from .harness import SimProcess

CLIENT_ID = "bridge-local-client"
CLIENT_SECRET = "sim-client-secret"
SITE = "11111111-1111-4111-8111-111111111111"
JIRA_SCOPES = "read:jira-work write:jira-work read:jira-user offline_access"
ALL_SCOPES = ("read:jira-work write:jira-work read:jira-user read:confluence-space.summary "
              "write:confluence-content write:confluence-file read:confluence-content.summary "
              "read:confluence-user read:space:confluence offline_access")
INVALID_REFRESH = {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}
MYSELF = "/ex/jira/{}/rest/api/3/myself"
MYSELF_ROUTE = "GET /ex/jira/{cloudId}/rest/api/3/myself"


# ----------------------------------------------------------------------------- helpers
def authorize(sim, scope=JIRA_SCOPES, redirect_uri=REDIRECT, state="st-123", **over):
    params = {"audience": "api.atlassian.com", "client_id": CLIENT_ID, "scope": scope,
              "redirect_uri": redirect_uri, "state": state, "response_type": "code",
              "prompt": "consent"}
    params.update(over)
    params = {k: v for k, v in params.items() if v is not None}
    return requests.get(f"{sim.url}/authorize", params=params, allow_redirects=False, timeout=5)


def location_params(resp) -> dict:
    loc = resp.headers["Location"]
    assert loc.startswith(REDIRECT + "?"), loc
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}


def configure_app_for(sim, scope: str | None) -> None:
    """The app a test plays is configured with the scopes it requests: the default app has only
    the bridge's (test_sim_strict.py checks that /authorize refuses others)."""
    wanted = set((scope or "").split()) - set(DEFAULT_CLIENT_SCOPES)
    if wanted:
        sim.control("PUT", "/oauth/client", {"scopes": sorted(set(DEFAULT_CLIENT_SCOPES) | wanted)},
                    expect=200)


def get_code(sim, scope=JIRA_SCOPES) -> str:
    configure_app_for(sim, scope)
    r = authorize(sim, scope=scope)
    assert r.status_code == 302, r.text
    q = location_params(r)
    assert q["state"] == "st-123"
    return q["code"]


def token_request(sim, body, form=False, auth=None):
    if form:
        return requests.post(f"{sim.url}/oauth/token", data=body, auth=auth, timeout=5)
    return requests.post(f"{sim.url}/oauth/token", json=body, auth=auth, timeout=5)


def exchange(sim, code, redirect_uri=REDIRECT, **over):
    body = {"grant_type": "authorization_code", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "code": code, "redirect_uri": redirect_uri}
    body.update(over)
    return token_request(sim, body)


def refresh(sim, rt, **over):
    body = {"grant_type": "refresh_token", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "refresh_token": rt}
    body.update(over)
    return token_request(sim, body)


def tokens(sim, scope=JIRA_SCOPES) -> dict:
    r = exchange(sim, get_code(sim, scope))
    assert r.status_code == 200, r.text
    return r.json()


def api(sim, path, at, method="GET", **kw):
    return requests.request(method, sim.url + path, headers={"Authorization": f"Bearer {at}"},
                            timeout=5, **kw)


# ----------------------------------------------------------------------------- oauth flow
def test_code_token_refresh_rotation(sim):
    tok = tokens(sim)
    assert set(tok) == {"access_token", "expires_in", "token_type", "refresh_token", "scope"}
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 3600
    assert tok["scope"].split() == JIRA_SCOPES.split()
    assert api(sim, MYSELF.format(SITE), tok["access_token"]).status_code == 200

    r1 = refresh(sim, tok["refresh_token"])
    assert r1.status_code == 200, r1.text
    new = r1.json()
    assert new["access_token"] != tok["access_token"]
    assert new["refresh_token"] != tok["refresh_token"]
    assert new["scope"] == tok["scope"]
    assert api(sim, MYSELF.format(SITE), new["access_token"]).status_code == 200

    # the retired token still works inside the reuse leeway, and rotates again
    r2 = refresh(sim, tok["refresh_token"])
    assert r2.status_code == 200
    assert r2.json()["refresh_token"] not in (tok["refresh_token"], new["refresh_token"])

    # leeway 0: a used token is dead at once; an unused one still works once
    sim.config(reuse_leeway_seconds=0)
    r3 = refresh(sim, tok["refresh_token"])
    assert r3.status_code == 403
    assert r3.json() == INVALID_REFRESH
    r4 = refresh(sim, new["refresh_token"])
    assert r4.status_code == 200
    r5 = refresh(sim, new["refresh_token"])
    assert (r5.status_code, r5.json()) == (403, INVALID_REFRESH)


def test_leeway_expires_with_time(sim):
    tok = tokens(sim)
    assert refresh(sim, tok["refresh_token"]).status_code == 200
    sim.control("POST", "/clock/advance", {"seconds": 599}, expect=200)
    assert refresh(sim, tok["refresh_token"]).status_code == 200
    sim.control("POST", "/clock/advance", {"seconds": 2}, expect=200)
    r = refresh(sim, tok["refresh_token"])
    assert (r.status_code, r.json()) == (403, INVALID_REFRESH)


def test_refresh_token_inactivity_and_absolute_expiry(sim):
    tok = tokens(sim)
    sim.control("POST", "/clock/advance", {"seconds": 90 * 86400 + 1}, expect=200)
    r = refresh(sim, tok["refresh_token"])
    assert (r.status_code, r.json()) == (403, INVALID_REFRESH)

    tok = tokens(sim)
    rt = tok["refresh_token"]
    for _ in range(4):      # keep it active, 80 days at a time: 320 days
        sim.control("POST", "/clock/advance", {"seconds": 80 * 86400}, expect=200)
        r = refresh(sim, rt)
        assert r.status_code == 200
        rt = r.json()["refresh_token"]
    sim.control("POST", "/clock/advance", {"seconds": 46 * 86400}, expect=200)
    r = refresh(sim, rt)    # 366 days after consent: absolute expiry
    assert (r.status_code, r.json()) == (403, INVALID_REFRESH)


def test_unknown_refresh_token(sim):
    r = refresh(sim, "not-a-token")
    assert (r.status_code, r.json()) == (403, INVALID_REFRESH)


def test_form_body_and_basic_client_auth(sim):
    code = get_code(sim)
    r = token_request(sim, {"grant_type": "authorization_code", "code": code,
                            "redirect_uri": REDIRECT}, form=True, auth=(CLIENT_ID, CLIENT_SECRET))
    assert r.status_code == 200, r.text
    rt = r.json()["refresh_token"]
    r = token_request(sim, {"grant_type": "refresh_token", "client_id": CLIENT_ID,
                            "client_secret": CLIENT_SECRET, "refresh_token": rt}, form=True)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"


def test_no_offline_access_no_refresh_token(sim):
    tok = tokens(sim, scope="read:jira-user")
    assert "refresh_token" not in tok


def test_code_is_single_use_and_expires(sim):
    code = get_code(sim)
    assert exchange(sim, code).status_code == 200
    r = exchange(sim, code)
    assert r.status_code == 403 and r.json()["error"] == "invalid_grant"

    code = get_code(sim)
    sim.control("POST", "/clock/advance", {"seconds": 601}, expect=200)
    r = exchange(sim, code)
    assert r.status_code == 403 and r.json()["error"] == "invalid_grant"


def test_bad_redirect_uri_on_exchange(sim):
    code = get_code(sim)
    r = exchange(sim, code, redirect_uri="http://127.0.0.1:9999/other")
    assert r.status_code == 403 and r.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("over", [{"client_secret": "wrong"}, {"client_id": "other-client"},
                                  {"client_secret": None}])
def test_bad_client(sim, over):
    code = get_code(sim)
    body = {"grant_type": "authorization_code", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "code": code, "redirect_uri": REDIRECT, **over}
    r = token_request(sim, {k: v for k, v in body.items() if v is not None})
    assert r.status_code == 401
    assert r.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    # the code was not consumed by the failed attempt
    assert exchange(sim, code).status_code == 200


def test_bad_client_on_refresh(sim):
    tok = tokens(sim)
    r = refresh(sim, tok["refresh_token"], client_secret="nope")
    assert r.status_code == 401
    assert r.json() == {"error": "access_denied", "error_description": "Unauthorized"}


def test_unsupported_grant_type(sim):
    r = token_request(sim, {"grant_type": "password", "client_id": CLIENT_ID,
                            "client_secret": CLIENT_SECRET})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("over", [
    {"audience": "example.com"}, {"audience": None}, {"client_id": "unknown"},
    {"redirect_uri": "http://127.0.0.1:9999/v1/oauth/callback/extra"}, {"redirect_uri": None},
    {"response_type": "token"}, {"scope": ""}, {"scope": "read:jira-user delete:everything"},
    {"state": None},
])
def test_authorize_rejects_invalid_requests(sim, over):
    r = authorize(sim, **over)
    assert r.status_code == 400
    assert "Location" not in r.headers


def test_authorize_deny(sim):
    sim.config(deny=True)
    r = authorize(sim, state="s-deny")
    assert r.status_code == 302
    q = location_params(r)
    assert q["error"] == "access_denied" and q["state"] == "s-deny" and "code" not in q


def test_revoke(sim):
    tok = tokens(sim)
    sim.control("POST", "/oauth/revoke", {}, expect=200)
    r = refresh(sim, tok["refresh_token"])
    assert (r.status_code, r.json()) == (403, INVALID_REFRESH)
    # a new consent works again
    assert refresh(sim, tokens(sim)["refresh_token"]).status_code == 200


def test_expire_access_tokens_and_ttl(sim):
    tok = tokens(sim)
    sim.control("POST", "/oauth/expire-access-tokens", {}, expect=200)
    r = api(sim, MYSELF.format(SITE), tok["access_token"])
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert r.json() == {"code": 401, "message": "Unauthorized"}
    assert requests.get(f"{sim.url}/oauth/token/accessible-resources",
                        headers={"Authorization": f"Bearer {tok['access_token']}"}).status_code == 401
    new = refresh(sim, tok["refresh_token"]).json()
    assert api(sim, MYSELF.format(SITE), new["access_token"]).status_code == 200

    sim.config(access_token_ttl_seconds=60)
    tok = tokens(sim)
    assert tok["expires_in"] == 60
    sim.control("POST", "/clock/advance", {"seconds": 61}, expect=200)
    assert api(sim, MYSELF.format(SITE), tok["access_token"]).status_code == 401


# ----------------------------------------------------------------------------- product APIs
def test_scope_enforcement(sim):
    at = tokens(sim, scope="read:jira-work offline_access")["access_token"]
    r = api(sim, MYSELF.format(SITE), at)
    assert r.status_code == 401
    assert r.json() == {"code": 401, "message": "Unauthorized; scope does not match"}

    at = tokens(sim, scope="read:jira-user")["access_token"]
    r = api(sim, MYSELF.format(SITE), at)
    assert r.status_code == 200
    me = r.json()
    assert me["accountType"] == "atlassian" and me["active"] is True
    for k in ("accountId", "emailAddress", "displayName", "timeZone", "self"):
        assert me[k]

    # the Beta granular alternative from x-atlassian-oauth2-scopes also satisfies it ...
    at = tokens(sim, scope="read:application-role:jira read:group:jira read:user:jira read:avatar:jira")["access_token"]
    assert api(sim, MYSELF.format(SITE), at).status_code == 200
    # ... but only when complete
    at = tokens(sim, scope="read:user:jira read:avatar:jira")["access_token"]
    assert api(sim, MYSELF.format(SITE), at).status_code == 401

    # Confluence v2 spaces need read:space:confluence; the classic summary scope is not listed
    at = tokens(sim, scope="read:confluence-space.summary")["access_token"]
    r = api(sim, f"/ex/confluence/{SITE}/wiki/api/v2/spaces", at)
    assert r.status_code == 401 and r.json()["message"] == "Unauthorized; scope does not match"


def test_confluence_current_user(sim):
    at = tokens(sim, scope="read:confluence-user")["access_token"]
    r = api(sim, f"/ex/confluence/{SITE}/wiki/rest/api/user/current", at)
    assert r.status_code == 200
    u = r.json()
    assert u["type"] == "known" and u["accountType"] == "atlassian" and u["accountId"]
    assert u["_links"]["base"] == "https://acme.atlassian.net/wiki"


def test_paths_and_tokens(sim):
    at = tokens(sim, scope=ALL_SCOPES)["access_token"]
    assert api(sim, f"/ex/jira/{SITE}/rest/api/3/nothing-here", at).status_code == 404
    assert api(sim, f"/ex/confluence/{SITE}/wiki/api/v2/nothing", at).status_code == 404
    assert api(sim, f"/ex/bitbucket/{SITE}/2.0/user", at).status_code == 404
    r = api(sim, f"/ex/jira/{SITE}/rest/api/3/project/ABC/avatars", at)
    assert r.status_code == 501 and r.json()["message"] == "not implemented in simulator"
    # a path template with a parameter matches (and the literal sibling wins over it)
    assert api(sim, f"/ex/jira/{SITE}/rest/api/3/project/ABC/versions", at).status_code == 501
    assert api(sim, f"/ex/jira/{SITE}/rest/api/3/project/search", at).status_code == 200
    r = api(sim, MYSELF.format(SITE), at, method="DELETE")
    assert r.status_code == 405
    assert api(sim, MYSELF.format(SITE), "garbage").status_code == 401
    r = requests.get(sim.url + MYSELF.format(SITE))
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    other = "22222222-2222-4222-8222-222222222222"
    assert api(sim, MYSELF.format(other), at).status_code == 401


def test_accessible_resources_multiple_sites(sim):
    a, b, c = ("aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002",
               "cccccccc-0000-4000-8000-000000000003")
    sim.sites([{"id": a, "name": "alpha", "products": ["jira", "confluence"]},
               {"id": b, "name": "beta", "products": ["jira"]},
               {"id": c, "name": "gamma", "products": ["confluence"]}])
    at = tokens(sim, scope=ALL_SCOPES)["access_token"]
    r = requests.get(f"{sim.url}/oauth/token/accessible-resources",
                     headers={"Authorization": f"Bearer {at}"})
    assert r.status_code == 200
    res = r.json()
    pairs = sorted((e["id"], "jira" if "read:jira-user" in e["scopes"] else "confluence") for e in res)
    assert pairs == [(a, "confluence"), (a, "jira"), (b, "jira"), (c, "confluence")]
    for e in res:
        assert set(e) == {"id", "url", "name", "scopes", "avatarUrl"}
        assert e["url"] == f"https://{e['name']}.atlassian.net"
        assert "offline_access" not in e["scopes"]
        assert not (any(s.endswith("jira-work") for s in e["scopes"])
                    and any("confluence" in s for s in e["scopes"]))

    # consent limited to one site
    sim.config(consent_sites=[b])
    at = tokens(sim, scope=ALL_SCOPES)["access_token"]
    res = requests.get(f"{sim.url}/oauth/token/accessible-resources",
                       headers={"Authorization": f"Bearer {at}"}).json()
    assert [(e["id"], e["name"]) for e in res] == [(b, "beta")]
    assert api(sim, MYSELF.format(b), at).status_code == 200
    assert api(sim, MYSELF.format(a), at).status_code == 401

    r = requests.get(f"{sim.url}/oauth/token/accessible-resources")
    assert r.status_code == 401


def test_spaces_pagination(sim):
    sim.control("POST", "/seed", {"spaces": 7}, expect=200)
    at = tokens(sim, scope="read:space:confluence")["access_token"]
    gateway = f"/ex/confluence/{SITE}"
    url = f"{gateway}/wiki/api/v2/spaces?limit=3"
    seen, pages = [], 0
    while url:
        r = api(sim, url, at)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        seen += [s["key"] for s in body["results"]]
        assert body["_links"]["base"] == "https://acme.atlassian.net/wiki"
        nxt = body["_links"].get("next")
        if nxt:
            assert nxt.startswith("/wiki/api/v2/spaces?")
            assert f'<{nxt}>; rel="next"' in r.headers["Link"]
            url = gateway + nxt
        else:
            assert 'rel="next"' not in r.headers["Link"]
            url = None
    assert pages == 3 and len(seen) == len(set(seen)) == 7

    r = api(sim, f"{gateway}/wiki/api/v2/spaces?keys=SPB,SPD&keys=SPF", at)
    assert sorted(s["key"] for s in r.json()["results"]) == ["SPB", "SPD", "SPF"]
    s = r.json()["results"][0]
    for k in ("id", "key", "name", "type", "status", "authorId", "createdAt", "homepageId", "_links"):
        assert k in s
    for bad in ("limit=0", "limit=251", "limit=x", "cursor=%25%25", "sort=size", "type=odd"):
        r = api(sim, f"{gateway}/wiki/api/v2/spaces?{bad}", at)
        assert r.status_code == 400, bad
        assert r.json()["errors"][0]["status"] == 400


def test_six_hundred_spaces(sim):
    sim.control("POST", "/seed", {"spaces": 600}, expect=200)
    at = tokens(sim, scope="read:space:confluence")["access_token"]
    gateway = f"/ex/confluence/{SITE}"
    url, keys = f"{gateway}/wiki/api/v2/spaces?limit=250&sort=-key", []
    while url:
        body = api(sim, url, at).json()
        keys += [s["key"] for s in body["results"]]
        nxt = body["_links"].get("next")
        url = gateway + nxt if nxt else None
    assert len(keys) == len(set(keys)) == 600
    assert keys == sorted(keys, key=str.lower, reverse=True)


# ----------------------------------------------------------------------------- faults
def test_rate_limit_fault(sim):
    at = tokens(sim)["access_token"]
    sim.fault(route=MYSELF_ROUTE, kind="rate_limit", retry_after=2, times=1)
    r = api(sim, MYSELF.format(SITE), at)
    assert r.status_code == 429
    h = r.headers
    assert h["Retry-After"] == "2" and h["Beta-Retry-After"] == "2"
    assert h["RateLimit-Reason"] == "jira-burst-based"
    assert h["X-RateLimit-Remaining"] == "0" and int(h["X-RateLimit-Limit"]) > 0
    time.strptime(h["X-RateLimit-Reset"], "%Y-%m-%dT%H:%MZ")
    assert api(sim, MYSELF.format(SITE), at).status_code == 200


def test_every_nth_fault_passes_the_others_on(sim):
    """`every: 3` answers the 3rd, 6th, ... matching request; the ones in between reach the next
    fault (here a latency on every request) and are served. Without `every` nothing changes."""
    at = tokens(sim)["access_token"]
    sim.fault(route=MYSELF_ROUTE, kind="rate_limit", retry_after=1, every=3, times=None)
    sim.fault(route="*", kind="latency", latency_ms=1, times=None)
    statuses = [api(sim, MYSELF.format(SITE), at).status_code for _ in range(7)]
    assert statuses == [200, 200, 429, 200, 200, 429, 200]
    calls = [c for c in sim.calls()["calls"] if c["route"] == MYSELF_ROUTE]
    assert [c.get("fault") for c in calls] == ["latency", "latency", "rate_limit"] * 2 + ["latency"]
    storm, latency = sim.control("GET", "/faults")["faults"]
    assert (storm["every"], storm["seen"], storm["hits"]) == (3, 7, 2)
    assert latency["hits"] == 5 and latency["every"] == 1
    # `times` counts the applications only
    sim.control("DELETE", "/faults", expect=200)
    sim.fault(route=MYSELF_ROUTE, kind="status", status=503, every=2, times=1)
    assert [api(sim, MYSELF.format(SITE), at).status_code for _ in range(5)] == [200, 503, 200, 200, 200]
    for bad in (0, -1, "3", True, 1.5):
        r = requests.post(f"{sim.url}/_sim/faults", json={"route": "*", "kind": "drop", "every": bad})
        assert r.status_code == 400, bad


def test_status_fault_once_then_ok(sim):
    sim.fault(route="POST /oauth/token", kind="status", status=503, times=1)
    code = get_code(sim)
    assert exchange(sim, code).status_code == 503
    assert exchange(sim, code).status_code == 200     # the fault did not consume the code
    calls = sim.calls()
    assert calls["counts"]["POST /oauth/token"] == 2
    statuses = [c["status"] for c in calls["calls"] if c["route"] == "POST /oauth/token"]
    assert statuses == [503, 200]


def test_forever_fault_by_prefix_and_clear(sim):
    at = tokens(sim, scope=ALL_SCOPES)["access_token"]
    sim.fault(route="GET /ex/", kind="status", status=502, times=None,
              body={"message": "bad gateway"}, headers={"X-Test": "1"})
    for _ in range(3):
        r = api(sim, MYSELF.format(SITE), at)
        assert (r.status_code, r.headers["X-Test"], r.json()) == (502, "1", {"message": "bad gateway"})
    assert api(sim, f"/ex/confluence/{SITE}/wiki/api/v2/spaces", at).status_code == 502
    sim.control("DELETE", "/faults", expect=200)
    assert api(sim, MYSELF.format(SITE), at).status_code == 200


def test_latency_fault(sim):
    at = tokens(sim)["access_token"]
    sim.fault(route=MYSELF_ROUTE, kind="latency", latency_ms=300, times=1)
    t0 = time.monotonic()
    assert api(sim, MYSELF.format(SITE), at).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    assert api(sim, MYSELF.format(SITE), at).status_code == 200
    assert time.monotonic() - t0 < 0.3


def test_oversize_fault_streams_the_size_asked_and_notes_what_went_out(sim):
    at = tokens(sim)["access_token"]
    size = 3 * 1024 * 1024 + 5
    sim.fault(route=MYSELF_ROUTE, kind="oversize", size_bytes=size, times=1)
    r = requests.get(sim.url + MYSELF.format(SITE), headers={"Authorization": f"Bearer {at}"}, timeout=30)
    assert (r.status_code, r.headers.get("Transfer-Encoding"), len(r.content)) == (200, "chunked", size)
    assert r.json().strip() == ""
    sim.fault(route=MYSELF_ROUTE, kind="oversize", size_bytes=size, content_length=True, times=1)
    with requests.get(sim.url + MYSELF.format(SITE), headers={"Authorization": f"Bearer {at}"}, timeout=30,
                      stream=True) as r:
        assert int(r.headers["Content-Length"]) == size
        r.raw.read(1024)  # and hang up: the simulator notes how much it got to send
    oversize = [c for c in sim.calls()["calls"] if c.get("fault") == "oversize"]
    assert oversize[0]["sent_bytes"] == size
    with pytest.raises(ValueError):
        from .faults import parse_fault
        parse_fault({"route": "*", "kind": "oversize", "size_bytes": 0})


def test_hold_fault_keeps_a_request_in_flight_until_released(sim):
    at = tokens(sim)["access_token"]
    fid = sim.fault(route=MYSELF_ROUTE, kind="hold", times=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(api, sim, MYSELF.format(SITE), at)
        assert sim.control("GET", f"/faults/{fid}/held?timeout_ms=5000", expect=200)["held"] is True
        assert not pending.done()
        sim.control("POST", f"/faults/{fid}/release", expect=200)
        assert pending.result(timeout=10).status_code == 200
    # Nothing held: the wait answers 408 instead of hanging.
    other = sim.fault(route=MYSELF_ROUTE, kind="hold", times=1)
    assert sim.control("GET", f"/faults/{other}/held?timeout_ms=50", expect=408)


def test_timeout_and_drop_faults(sim):
    at = tokens(sim)["access_token"]
    sim.fault(route=MYSELF_ROUTE, kind="timeout", times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(sim.url + MYSELF.format(SITE), headers={"Authorization": f"Bearer {at}"},
                     timeout=0.3)
    sim.fault(route=MYSELF_ROUTE, kind="drop", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        api(sim, MYSELF.format(SITE), at)
    assert api(sim, MYSELF.format(SITE), at).status_code == 200
    calls = [c for c in sim.calls()["calls"] if c["route"] == MYSELF_ROUTE]
    assert [c.get("fault") for c in calls] == ["timeout", "drop", None]


# ----------------------------------------------------------------------------- bookkeeping
def test_call_log(sim):
    tok = tokens(sim)
    refresh(sim, tok["refresh_token"])
    api(sim, MYSELF.format(SITE), tok["access_token"])
    api(sim, f"/ex/jira/{SITE}/rest/api/3/unknown", tok["access_token"])
    data = sim.calls()
    routes = [c["route"] for c in data["calls"]]
    assert routes == ["GET /authorize", "POST /oauth/token", "POST /oauth/token", MYSELF_ROUTE, None]
    assert [c.get("grant_type") for c in data["calls"] if c["route"] == "POST /oauth/token"] == \
        ["authorization_code", "refresh_token"]
    assert data["counts"] == {"GET /authorize": 1, "POST /oauth/token": 2, MYSELF_ROUTE: 1,
                              "UNMATCHED": 1}
    assert data["calls"][3]["path"] == MYSELF.format(SITE) and data["calls"][3]["status"] == 200
    sim.control("DELETE", "/calls", expect=200)
    assert sim.calls() == {"calls": [], "counts": {}}


def test_refreshing_within_90_days_keeps_a_grant_alive_until_365_days_after_consent(sim):
    """Atlassian: each refresh issues a new refresh token whose 90-day inactivity countdown
    starts anew; the 365-day limit counts from the consent however often it is refreshed."""
    tok = tokens(sim)
    (grant,) = sim.control("GET", "/oauth/grants", expect=200)["grants"]
    day = 86400
    assert grant["refresh_expires_at"] == pytest.approx(grant["created_at"] + 90 * day, abs=1)
    assert grant["absolute_expires_at"] == grant["created_at"] + 365 * day
    rt = tok["refresh_token"]
    for _ in range(4):                                    # days 89, 178, 267, 356
        sim.control("POST", "/clock/advance", {"days": 89}, expect=200)
        r = refresh(sim, rt)
        assert r.status_code == 200, r.text
        rt = r.json()["refresh_token"]
        (grant,) = sim.control("GET", "/oauth/grants", expect=200)["grants"]
        now = sim.control("GET", "/clock", expect=200)["now"]
        assert grant["refresh_expires_at"] == pytest.approx(min(now + 90 * day, grant["absolute_expires_at"]), abs=1)
    sim.control("POST", "/clock/advance", {"days": 9}, expect=200)      # day 365
    r = refresh(sim, rt)
    assert (r.status_code, r.json()) == (403, INVALID_REFRESH)


def test_the_clock_advances_by_days_or_seconds_and_refuses_nonsense(sim):
    before = sim.control("GET", "/clock", expect=200)["offset_seconds"]
    after = sim.control("POST", "/clock/advance", {"days": 2, "seconds": 5}, expect=200)["offset_seconds"]
    assert after - before == 2 * 86400 + 5
    for bad in ({}, {"days": -1}, {"weeks": 1}, {"days": "2"}):
        sim.control("POST", "/clock/advance", bad, expect=400)


def test_concurrent_refreshes(sim):
    """50 refreshes of one token at once: within the leeway all succeed with distinct new
    pairs; with no leeway exactly one wins."""
    def run(rt, n=50):
        with ThreadPoolExecutor(max_workers=n) as ex:
            return list(ex.map(lambda _: refresh(sim, rt), range(n)))

    results = run(tokens(sim)["refresh_token"])
    assert all(r.status_code == 200 for r in results)
    assert len({r.json()["refresh_token"] for r in results}) == 50

    sim.config(reuse_leeway_seconds=0)
    results = run(tokens(sim)["refresh_token"])
    assert sorted(r.status_code for r in results) == [200] + [403] * 49


def test_issued_secrets_and_sim_log_clean(sim):
    tok = tokens(sim)
    new = refresh(sim, tok["refresh_token"]).json()
    issued = sim.issued()
    assert tok["access_token"] in issued["access_tokens"]
    assert {tok["refresh_token"], new["refresh_token"]} <= set(issued["refresh_tokens"])
    assert CLIENT_SECRET in issued["client_secrets"]
    assert len(issued["codes"]) >= 1
    log = sim.log_text()
    for values in issued.values():
        for v in values:
            assert v not in log


def test_reset_restores_defaults(sim):
    sim.config(deny=True, reuse_leeway_seconds=0)
    sim.sites([{"id": "x1", "name": "other", "products": ["jira"]}])
    sim.fault(route="*", kind="status", status=500, times=None)
    sim.reset()
    cfg = sim.control("GET", "/oauth/config")
    assert cfg["deny"] is False and cfg["reuse_leeway_seconds"] == 600
    assert cfg["access_token_ttl_seconds"] == 3600 and cfg["consent_sites"] is None
    assert [s["id"] for s in sim.control("GET", "/sites")] == [SITE]
    assert sim.control("GET", "/faults") == {"faults": []}
    assert sim.control("GET", "/oauth/client")["redirect_uris"] == []


def test_control_validation(sim):
    assert requests.put(f"{sim.url}/_sim/oauth/config", json={"nope": 1}).status_code == 400
    assert requests.post(f"{sim.url}/_sim/faults", json={"route": "x", "kind": "explode"}).status_code == 400
    assert requests.put(f"{sim.url}/_sim/sites", json=[{"id": "a"}]).status_code == 400


# ----------------------------------------------------------------------------- consent page
def test_consent_page_mode():
    with SimProcess(consent_page=True) as sim:
        sim.register_client([REDIRECT])
        r = authorize(sim, scope=JIRA_SCOPES, state="cp")
        assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
        assert "read:jira-work" in r.text and "acme" in r.text
        request_id = r.text.split('name="request_id" value="')[1].split('"')[0]
        r = requests.post(f"{sim.url}/authorize/decision", allow_redirects=False,
                          data={"request_id": request_id, "decision": "accept", "site": SITE})
        assert r.status_code == 302
        q = location_params(r)
        assert q["state"] == "cp"
        assert exchange(sim, q["code"]).status_code == 200
        # the same pending request cannot be decided twice
        r = requests.post(f"{sim.url}/authorize/decision", allow_redirects=False,
                          data={"request_id": request_id, "decision": "accept"})
        assert r.status_code == 400

        r = authorize(sim, state="cp2")
        request_id = r.text.split('name="request_id" value="')[1].split('"')[0]
        r = requests.post(f"{sim.url}/authorize/decision", allow_redirects=False,
                          data={"request_id": request_id, "decision": "deny"})
        q = location_params(r)
        assert q == {"error": "access_denied", "error_description": q["error_description"],
                     "state": "cp2"}


@pytest.mark.parametrize("header, product_api, token_endpoint", [
    (None, None, None),
    ("Bearer abc", None, False),                                # another scheme
    ("Basic " + base64.b64encode(b"no-colon").decode(), False, False),
    ("Basic not*base64", False, False),
    ("Basic " + base64.b64encode(b"\xff:x").decode(), False, False),   # not UTF-8
    ("basic " + base64.b64encode(b"a%2Bb:s%3Ac+d").decode(), ("a%2Bb", "s%3Ac+d"), ("a+b", "s:c d")),
    ("Basic " + base64.b64encode(b"me@example.com:tok:en").decode(), ("me@example.com", "tok:en"),
     ("me@example.com", "tok:en")),
])
def test_the_one_basic_parser(header, product_api, token_endpoint):
    """util.basic_credentials, for the product APIs (Cloud API tokens, DC passwords: taken as they
    are, other schemes are not Basic's business) and the token endpoints (OAuth, OIDC: RFC 6749
    2.3.1 form-encoding, any other scheme fails client authentication)."""
    from aiohttp.test_utils import make_mocked_request

    from .util import basic_credentials
    request = make_mocked_request("GET", "/", headers={"Authorization": header} if header else {})
    assert basic_credentials(request) == product_api
    assert basic_credentials(request, client_auth=True) == token_endpoint


def test_basic_auth_header_must_be_well_formed(sim):
    code = get_code(sim)
    bad = base64.b64encode(b"no-colon").decode()
    r = requests.post(f"{sim.url}/oauth/token", headers={"Authorization": f"Basic {bad}"},
                      data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert r.status_code == 401
