"""Simulator tests: Server/Data Center instances (auth variants, product error bodies, spec
routing) and the simulated OIDC provider. Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import base64

import requests

BOT = ("bridge-bot", "s3cret-pass")
JIRA_401 = {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
            "errors": {}}
OIDC_CLIENT = ("bridge-dc-client", "sim-oidc-secret")


def get(url, auth=None, token=None, **kw):
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(url, auth=auth, headers=headers, timeout=5, **kw)


def oidc_token(sim, provider="corp", auth=OIDC_CLIENT, data=None, **kw):
    body = {"grant_type": "client_credentials", **(data or {})}
    return requests.post(f"{sim.url}/oidc/{provider}/token", data=body, auth=auth, timeout=5, **kw)


# ----------------------------------------------------------------------------- instances & users
def test_default_instances_and_current_users(sim):
    assert sim.control("GET", "/dc/instances") == [
        {"id": "jira-dc", "product": "jira", "context_path": "/jira", "captcha_after_failures": None,
         "email_visibility": "show"},
        {"id": "conf-dc", "product": "confluence", "context_path": "/confluence", "captcha_after_failures": None,
         "email_visibility": "show"}]
    jira, conf = sim.dc_base("jira-dc"), sim.dc_base("conf-dc")
    assert jira == f"{sim.url}/dc/jira-dc/jira" and conf == f"{sim.url}/dc/conf-dc/confluence"

    r = get(f"{jira}/rest/api/2/myself", auth=BOT)
    assert r.status_code == 200 and r.headers["X-AUSERNAME"] == "bridge-bot"
    me = r.json()
    assert (me["name"], me["displayName"], me["emailAddress"], me["active"]) == \
        ("bridge-bot", "Bridge Bot", "bridge-bot@corp.test", True)
    assert me["key"] and me["self"] == f"{jira}/rest/api/2/user?username=bridge-bot"
    assert "accountId" not in me

    r = get(f"{conf}/rest/api/user/current", auth=BOT)
    assert r.status_code == 200
    u = r.json()
    assert (u["type"], u["username"], u["displayName"]) == ("known", "bridge-bot", "Bridge Bot")
    assert len(u["userKey"]) == 32
    assert u["_links"]["base"] == conf and u["_links"]["context"] == "/confluence"


def test_failed_and_missing_credentials(sim):
    jira, conf = sim.dc_base("jira-dc"), sim.dc_base("conf-dc")
    for auth in [("bridge-bot", "wrong"), ("nobody", "s3cret-pass"), ("BRIDGE-BOT", "wrong")]:
        r = get(f"{jira}/rest/api/2/myself", auth=auth)
        assert r.status_code == 401 and r.json() == JIRA_401
        assert r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
        assert r.headers["WWW-Authenticate"] == 'OAuth realm="' + jira.replace(":", "%3A").replace("/", "%2F") + '"'
    # user names are case-insensitive, passwords are not
    assert get(f"{jira}/rest/api/2/myself", auth=("Bridge-Bot", "s3cret-pass")).status_code == 200
    # malformed Basic
    r = get(f"{jira}/rest/api/2/myself", headers={"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()})
    assert r.status_code == 401 and r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    # no credentials at all: 401 for myself, without a login reason
    r = get(f"{jira}/rest/api/2/myself")
    assert r.status_code == 401 and r.json() == JIRA_401 and "X-Seraph-LoginReason" not in r.headers
    assert r.headers["X-AUSERNAME"] == "anonymous"

    r = get(f"{conf}/rest/api/space", auth=("bridge-bot", "wrong"))
    assert r.status_code == 401
    body = r.json()
    assert (body["statusCode"], body["reason"]) == (401, "Unauthorized") and body["message"]
    assert r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    assert r.headers["WWW-Authenticate"].startswith("OAuth realm=")


def test_anonymous_callers_see_what_anonymous_sees(sim):
    jira, conf = sim.dc_base("jira-dc"), sim.dc_base("conf-dc")
    r = get(f"{jira}/rest/api/2/project")
    assert (r.status_code, r.json()) == (200, [])
    assert get(f"{jira}/rest/api/2/project/REQ").status_code == 401
    # an unknown auth scheme is ignored (anonymous), as Seraph does
    r = get(f"{jira}/rest/api/2/project", headers={"Authorization": "Token abc"})
    assert (r.status_code, r.json()) == (200, [])
    r = get(f"{conf}/rest/api/user/current")
    assert r.status_code == 200 and r.json()["type"] == "anonymous"
    r = get(f"{conf}/rest/api/space")
    assert r.status_code == 200 and r.json()["results"] == [] and r.json()["size"] == 0
    assert get(f"{conf}/rest/api/content?spaceKey=SPA&title=Meeting%20notes").json()["results"] == []
    assert get(f"{conf}/rest/api/space/SPA").status_code == 404


def test_forbidden_and_inactive_users(sim):
    sim.control("PUT", "/dc/users", [
        {"username": "bridge-bot", "password": "s3cret-pass", "display_name": "Bridge Bot"},
        {"username": "locked", "password": "pw-locked-123456", "forbidden": True},
        {"username": "gone", "password": "pw-gone-123456", "active": False},
    ], expect=200)
    jira, conf = sim.dc_base("jira-dc"), sim.dc_base("conf-dc")
    for path in ("/rest/api/2/myself", "/rest/api/2/project", "/rest/api/2/priority"):
        r = get(jira + path, auth=("locked", "pw-locked-123456"))
        assert r.status_code == 403, path
        assert r.json()["errorMessages"] and r.json()["errors"] == {}
    for path in ("/rest/api/user/current", "/rest/api/space"):
        r = get(conf + path, auth=("locked", "pw-locked-123456"))
        assert r.status_code == 403
        assert (r.json()["statusCode"], r.json()["reason"]) == (403, "Forbidden")
    # a PAT of a forbidden user is forbidden too
    assert get(jira + "/rest/api/2/myself", token=sim.pat("jira-dc", "locked")).status_code == 403
    # deactivated users cannot log in
    r = get(jira + "/rest/api/2/myself", auth=("gone", "pw-gone-123456"))
    assert r.status_code == 401 and r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    users = {u["name"]: u for u in sim.control("GET", "/dc/users")}
    assert users["locked"]["forbidden"] is True and users["gone"]["active"] is False
    assert "password" not in users["locked"] and users["locked"]["has_password"] is True


def test_configured_user_overlays_generated_user(sim):
    gen = next(u for u in sim.data("users", flavour="dc") if u["name"] == "ben.abbott")
    sim.control("PUT", "/dc/users", [{"username": "ben.abbott", "password": "pw-ben-123456"}], expect=200)
    r = get(sim.dc_base() + "/rest/api/2/myself", auth=("ben.abbott", "pw-ben-123456"))
    assert r.status_code == 200
    assert (r.json()["key"], r.json()["displayName"]) == (gen["key"], "Ben Abbott")
    # bridge-bot was replaced
    assert get(sim.dc_base() + "/rest/api/2/myself", auth=BOT).status_code == 401


def test_personal_access_tokens(sim):
    jira, conf = sim.dc_base("jira-dc"), sim.dc_base("conf-dc")
    assert sim.control("GET", "/dc/pats") == {"pats": []}
    token = sim.pat("jira-dc", "bridge-bot")
    r = get(jira + "/rest/api/2/myself", token=token)
    assert r.status_code == 200 and r.json()["name"] == "bridge-bot"
    # a PAT belongs to one instance
    r = get(conf + "/rest/api/user/current", token=token)
    assert r.status_code == 401 and r.json()["statusCode"] == 401
    # generated users (no password) can hold PATs
    r = get(jira + "/rest/api/2/myself", token=sim.pat("jira-dc", "ben.abbott"))
    assert r.status_code == 200 and r.json()["name"] == "ben.abbott"
    r = get(jira + "/rest/api/2/myself", token="not-a-pat")
    assert r.status_code == 401 and r.json() == JIRA_401 and "X-Seraph-LoginReason" not in r.headers
    sim.control("DELETE", "/dc/pats", expect=200)
    assert get(jira + "/rest/api/2/myself", token=token).status_code == 401
    assert requests.post(f"{sim.url}/_sim/dc/pats", json={"instance": "nope", "user": "bridge-bot"}).status_code == 404
    assert requests.post(f"{sim.url}/_sim/dc/pats", json={"instance": "jira-dc", "user": "nobody"}).status_code == 404


def test_spec_routing_on_dc(sim):
    jira, conf = sim.dc_base("jira-dc"), sim.dc_base("conf-dc")
    r = get(jira + "/rest/api/2/nothing-here", auth=BOT)
    assert r.status_code == 404 and r.json()["message"].startswith("null for uri: ")
    r = requests.delete(jira + "/rest/api/2/myself", auth=BOT, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, PUT"
    # Cloud paths do not exist on DC, Confluence paths not on Jira, and the context path matters
    assert get(jira + "/rest/api/3/myself", auth=BOT).status_code == 404
    assert get(jira + "/rest/api/space", auth=BOT).status_code == 404
    assert get(f"{sim.url}/dc/jira-dc/rest/api/2/myself", auth=BOT).status_code == 404
    assert get(f"{sim.url}/dc/nope/jira/rest/api/2/myself", auth=BOT).status_code == 404
    r = get(conf + "/rest/api/nothing", auth=BOT)
    assert r.status_code == 404 and r.json()["statusCode"] == 404
    assert get(conf + "/wiki/api/v2/spaces", auth=BOT).status_code == 404
    # in the spec but not simulated
    r = get(jira + "/rest/api/2/project/REQ/versions", auth=BOT)
    assert r.status_code == 501 and r.json()["message"] == "not implemented in simulator"
    # wrong credentials beat routing, as the login filter runs first
    assert get(jira + "/rest/api/2/nothing-here", auth=("bridge-bot", "x")).status_code == 401
    routes = [c["route"] for c in sim.calls()["calls"]]
    assert "GET /dc/jira-dc/jira/rest/api/2/project/{projectIdOrKey}/versions" in routes


def test_custom_instances_root_context(sim):
    sim.control("PUT", "/dc/instances", [
        {"id": "jira-root", "product": "jira", "context_path": ""},
        {"id": "wiki", "product": "confluence", "context_path": "/wiki/confluence"}], expect=200)
    assert get(f"{sim.url}/dc/jira-root/rest/api/2/myself", auth=BOT).status_code == 200
    r = get(f"{sim.url}/dc/wiki/wiki/confluence/rest/api/user/current", auth=BOT)
    assert r.status_code == 200 and r.json()["_links"]["context"] == "/wiki/confluence"
    assert get(f"{sim.url}/dc/jira-dc/jira/rest/api/2/myself", auth=BOT).status_code == 404
    for bad in ([{"id": "x", "product": "bitbucket"}], [{"id": "x", "product": "jira", "context_path": "/jira/"}],
                [{"id": "X Y", "product": "jira"}]):
        assert requests.put(f"{sim.url}/_sim/dc/instances", json=bad).status_code == 400


def test_redirect_fault_on_dc_route(sim):
    metadata = "http://169.254.169.254/latest/meta-data/"
    sim.fault(route="GET /dc/jira-dc/jira/rest/api/2/myself", kind="status", status=302,
              headers={"Location": metadata})
    r = requests.get(sim.dc_base() + "/rest/api/2/myself", auth=BOT, allow_redirects=False, timeout=5)
    assert r.status_code == 302 and r.headers["Location"] == metadata
    # a prefix fault covers a whole instance, any route
    sim.fault(route="GET /dc/conf-dc/", kind="status", status=301, times=None,
              headers={"Location": "http://127.0.0.1:1/elsewhere"})
    for path in ("/rest/api/space", "/rest/api/content"):
        r = requests.get(sim.dc_base("conf-dc") + path, auth=BOT, allow_redirects=False, timeout=5)
        assert r.status_code == 301
    assert get(sim.dc_base() + "/rest/api/2/myself", auth=BOT).status_code == 200
    calls = [c for c in sim.calls()["calls"] if c.get("fault")]
    assert [c["status"] for c in calls] == [302, 301, 301]


def test_rate_limit_reason_on_dc_confluence(sim):
    sim.fault(route="GET /dc/conf-dc/", kind="rate_limit")
    r = get(sim.dc_base("conf-dc") + "/rest/api/space", auth=BOT)
    assert r.status_code == 429 and r.headers["RateLimit-Reason"] == "confluence-burst-based"


def test_captcha_after_failed_logins(sim):
    sim.control("PUT", "/dc/instances", [
        {"id": "jira-dc", "product": "jira", "context_path": "/jira", "captcha_after_failures": 2}], expect=200)
    url = sim.dc_base() + "/rest/api/2/myself"
    assert get(url, auth=BOT).status_code == 200
    for _ in range(2):
        assert get(url, auth=("bridge-bot", "wrong")).status_code == 401
    r = get(url, auth=BOT)
    assert r.status_code == 403
    assert r.headers["X-Seraph-LoginReason"] == "AUTHENTICATION_DENIED"
    assert r.headers["X-Authentication-Denied-Reason"].startswith("CAPTCHA_CHALLENGE; login-url=")
    # a PAT is not subject to the CAPTCHA
    assert get(url, token=sim.pat("jira-dc", "bridge-bot")).status_code == 200


# ----------------------------------------------------------------------------- OIDC provider
def test_oidc_client_secret_basic(sim):
    r = oidc_token(sim, data={"scope": "jira confluence"})
    assert r.status_code == 200, r.text
    tok = r.json()
    assert set(tok) == {"access_token", "token_type", "expires_in", "scope"}
    assert (tok["token_type"], tok["expires_in"], tok["scope"]) == ("Bearer", 300, "jira confluence")
    assert r.headers["Cache-Control"] == "no-store"
    for inst, path in (("jira-dc", "/rest/api/2/myself"), ("conf-dc", "/rest/api/user/current")):
        r = get(sim.dc_base(inst) + path, token=tok["access_token"])
        assert r.status_code == 200 and r.headers["X-AUSERNAME"] == "bridge-bot"
    # the same client presenting its secret in the body uses the wrong method
    r = oidc_token(sim, auth=None, data={"client_id": OIDC_CLIENT[0], "client_secret": OIDC_CLIENT[1]})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    calls = [c for c in sim.calls()["calls"] if c["route"] == "POST /oidc/{provider}/token"]
    assert [c["grant_type"] for c in calls] == ["client_credentials", "client_credentials"]


def test_oidc_client_secret_post_and_wrong_methods(sim):
    sim.control("PUT", "/oidc/clients", [
        {"provider": "corp", "client_id": "poster", "client_secret": "poster-secret-123",
         "auth_method": "client_secret_post", "acts_as": "bridge-bot", "instances": ["conf-dc"],
         "expires_in": 120},
        {"provider": "corp", "client_id": "basic one", "client_secret": "s:e&c-secret-123",
         "auth_method": "client_secret_basic", "acts_as": "bridge-bot", "instances": ["jira-dc"]},
    ], expect=200)
    r = oidc_token(sim, auth=None, data={"client_id": "poster", "client_secret": "poster-secret-123"})
    assert r.status_code == 200 and r.json()["expires_in"] == 120 and "scope" not in r.json()
    at = r.json()["access_token"]
    assert get(sim.dc_base("conf-dc") + "/rest/api/space", token=at).status_code == 200
    # only the client's instances accept its tokens
    assert get(sim.dc_base("jira-dc") + "/rest/api/2/myself", token=at).status_code == 401
    # post client using Basic -> invalid_client, with a Basic challenge
    r = oidc_token(sim, auth=("poster", "poster-secret-123"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    # both methods at once
    r = oidc_token(sim, auth=("poster", "poster-secret-123"), data={"client_secret": "poster-secret-123"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # client_secret_basic: id and secret are form-urlencoded before base64 (RFC 6749 2.3.1)
    raw = base64.b64encode(b"basic+one:s%3Ae%26c-secret-123").decode()
    r = requests.post(f"{sim.url}/oidc/corp/token", data={"grant_type": "client_credentials"},
                      headers={"Authorization": f"Basic {raw}"}, timeout=5)
    assert r.status_code == 200, r.text
    # wrong secret, unknown client, unknown provider
    assert oidc_token(sim, auth=("basic one", "nope")).status_code == 401
    assert oidc_token(sim, auth=("who", "x")).status_code == 401
    assert oidc_token(sim, provider="other", auth=("basic one", "s:e&c-secret-123")).status_code == 404


def test_oidc_request_errors(sim):
    r = oidc_token(sim, data={"grant_type": "password"})
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
    r = requests.post(f"{sim.url}/oidc/corp/token", json={"grant_type": "client_credentials"},
                      auth=OIDC_CLIENT, timeout=5)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = requests.post(f"{sim.url}/oidc/corp/token", data={}, auth=OIDC_CLIENT, timeout=5)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    sim.control("PUT", "/oidc/clients", [
        {"provider": "corp", "client_id": "scoped-client", "client_secret": "scoped-client-secret", "auth_method": "client_secret_basic",
         "acts_as": "bridge-bot", "instances": ["jira-dc"], "scopes": ["read"], "audience": "https://jira"}],
        expect=200)
    r = oidc_token(sim, auth=("scoped-client", "scoped-client-secret"), data={"scope": "read write", "audience": "https://jira"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")
    r = oidc_token(sim, auth=("scoped-client", "scoped-client-secret"), data={"scope": "read", "audience": "https://other"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_target")
    assert oidc_token(sim, auth=("scoped-client", "scoped-client-secret"), data={"scope": "read", "audience": "https://jira"}).status_code == 200
    d = requests.get(f"{sim.url}/oidc/corp/.well-known/openid-configuration", timeout=5).json()
    assert d["token_endpoint"] == f"{sim.url}/oidc/corp/token"
    assert set(d["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    for bad in ([{"provider": "corp"}], [{"provider": "corp", "client_id": "scoped-client", "client_secret": "scoped-client-secret",
                                          "auth_method": "private_key_jwt", "acts_as": "x"}]):
        assert requests.put(f"{sim.url}/_sim/oidc/clients", json=bad).status_code == 400


def test_oidc_expiry_then_one_new_token(sim):
    at = oidc_token(sim).json()["access_token"]
    url = sim.dc_base() + "/rest/api/2/myself"
    assert get(url, token=at).status_code == 200
    sim.control("POST", "/oidc/expire", expect=200)
    r = get(url, token=at)
    assert r.status_code == 401 and r.json() == JIRA_401
    fresh = oidc_token(sim).json()["access_token"]
    assert fresh != at and get(url, token=fresh).status_code == 200
    # expiry follows the sim's clock; the TTL is configurable
    sim.control("PUT", "/oidc/config", {"expires_in": 60}, expect=200)
    tok = oidc_token(sim).json()
    assert tok["expires_in"] == 60
    sim.control("POST", "/clock/advance", {"seconds": 59}, expect=200)
    assert get(url, token=tok["access_token"]).status_code == 200
    sim.control("POST", "/clock/advance", {"seconds": 2}, expect=200)
    assert get(url, token=tok["access_token"]).status_code == 401


def test_dc_secrets_recorded_and_not_logged(sim):
    pat = sim.pat("jira-dc", "bridge-bot")
    at = oidc_token(sim).json()["access_token"]
    get(sim.dc_base() + "/rest/api/2/myself", token=pat)
    get(sim.dc_base() + "/rest/api/2/myself", token=at)
    get(sim.dc_base() + "/rest/api/2/myself", auth=BOT)
    issued = sim.issued()
    assert pat in issued["pats"] and at in issued["oidc_access_tokens"]
    assert "s3cret-pass" in issued["passwords"] and "sim-oidc-secret" in issued["oidc_client_secrets"]
    log = sim.log_text()
    for values in issued.values():
        for v in values:
            assert v not in log


# ----------------------------------------------------------------------------- Jira DC discovery
def test_jira_dc_projects(sim):
    jira = sim.dc_base()
    truth = sim.data("projects", flavour="dc")
    assert len(truth) >= 260
    r = get(jira + "/rest/api/2/project", auth=BOT)
    assert r.status_code == 200 and isinstance(r.json(), list)
    got = r.json()
    assert sorted(p["key"] for p in got) == sorted(p["key"] for p in truth)
    assert len({p["id"] for p in got}) == len(got)
    p0 = got[0]
    for k in ("self", "id", "key", "name", "avatarUrls", "projectTypeKey"):
        assert k in p0
    assert "lead" not in p0
    everything = get(jira + "/rest/api/2/project?includeArchived=true&expand=lead", auth=BOT).json()
    assert len(everything) == len(sim.data("projects", flavour="dc", include_archived="true")) > len(got)
    assert all("lead" in p and "name" in p["lead"] for p in everything)

    r = get(jira + "/rest/api/2/project/REQ", auth=BOT)
    assert r.status_code == 200
    req = r.json()
    assert req["key"] == "REQ" and req["lead"]["name"] and "accountId" not in req["lead"]
    assert [t["name"] for t in req["issueTypes"]] == ["Story", "Task", "Bug", "Sub-task"]
    assert [t["id"] for t in req["issueTypes"]] == ["10001", "3", "1", "5"]
    assert get(jira + f"/rest/api/2/project/{req['id']}", auth=BOT).json()["key"] == "REQ"
    r = get(jira + "/rest/api/2/project/NOPE", auth=BOT)
    assert r.status_code == 404 and r.json()["errorMessages"] == ["No project could be found with key 'NOPE'."]


def test_jira_dc_createmeta_paged_under_values(sim):
    jira = sim.dc_base()
    truth = sim.data("issuetypes", flavour="dc", project="REQ")
    seen, start = [], 0
    while True:
        r = get(jira + f"/rest/api/2/issue/createmeta/REQ/issuetypes?startAt={start}&maxResults=3", auth=BOT)
        assert r.status_code == 200
        page = r.json()
        assert set(page) == {"maxResults", "startAt", "total", "isLast", "values"}
        assert page["total"] == len(truth)
        seen += [t["id"] for t in page["values"]]
        if page["isLast"]:
            break
        start += len(page["values"])
    assert seen == [t["id"] for t in truth]

    fields_truth = sim.data("fields", flavour="dc", project="REQ", issuetype="3")
    got, start = [], 0
    while True:
        page = get(jira + f"/rest/api/2/issue/createmeta/REQ/issuetypes/3?startAt={start}&maxResults=4",
                   auth=BOT).json()
        got += page["values"]
        start += page["maxResults"]
        if page["isLast"]:
            break
    assert [f["fieldId"] for f in got] == [f["fieldId"] for f in fields_truth]
    team = next(f for f in got if f["fieldId"] == "customfield_10050")
    assert team["required"] is True and team["hasDefaultValue"] is False and "defaultValue" not in team
    assert [v["value"] for v in team["allowedValues"]] == ["Platform", "Payments", "Mobile", "Data"]
    assert team["schema"]["custom"].endswith(":select") and "key" not in team
    prio = next(f for f in got if f["fieldId"] == "priority")
    assert prio["required"] and prio["hasDefaultValue"] and prio["defaultValue"]["name"] == "Medium"
    assert [v["name"] for v in prio["allowedValues"]] == ["Highest", "High", "Medium", "Low", "Lowest"]
    # other projects' Task has no required field without a default, except the system ones
    plain = get(jira + "/rest/api/2/issue/createmeta/AGF/issuetypes/3", auth=BOT).json()["values"]
    assert {f["fieldId"] for f in plain if f["required"] and not f["hasDefaultValue"]} == \
        {"summary", "issuetype", "project"}
    sub = get(jira + "/rest/api/2/issue/createmeta/REQ/issuetypes/5", auth=BOT).json()["values"]
    assert next(f for f in sub if f["fieldId"] == "parent")["required"] is True
    assert get(jira + "/rest/api/2/issue/createmeta/NOPE/issuetypes", auth=BOT).status_code == 400
    assert get(jira + "/rest/api/2/issue/createmeta/REQ/issuetypes/10002", auth=BOT).status_code == 400


def test_jira_dc_components_users_priorities(sim):
    jira = sim.dc_base()
    projects = sim.data("projects", flavour="dc")
    by_count = {}
    for idx in (0, 3, 42):
        key = next(p["key"] for p in projects if p["index"] == idx)
        by_count[len(sim.data("components", flavour="dc", project=key))] = key
    assert set(by_count) == {0, 55, 120}
    for n, key in by_count.items():
        comps = get(jira + f"/rest/api/2/project/{key}/components", auth=BOT).json()
        assert len(comps) == n and len({c["id"] for c in comps}) == n
    comp = get(jira + f"/rest/api/2/project/{by_count[120]}/components", auth=BOT).json()[0]
    assert comp["project"] == by_count[120] and ("leadUserName" in comp or "lead" not in comp)

    users = sim.data("users", flavour="dc")
    assert len(users) >= 1200 and all(u["emailAddress"] for u in users)
    r = get(jira + "/rest/api/2/user/assignable/search?project=REQ&username=ben", auth=BOT)
    found = r.json()
    truth = [u for u in sim.data("assignable", flavour="dc", project="REQ")
             if u["name"].startswith("ben") or any(w.lower().startswith("ben") for w in u["displayName"].split())]
    assert [u["name"] for u in found] == [u["name"] for u in truth][:50]
    assert all(set(u) >= {"name", "key", "displayName", "emailAddress", "active"} for u in found)
    by_email = get(jira + "/rest/api/2/user/assignable/search?project=REQ&username=ben.abbott2@corp.test",
                   auth=BOT).json()
    assert [u["name"] for u in by_email] == ["ben.abbott2"]
    capped = get(jira + "/rest/api/2/user/assignable/search?project=REQ&maxResults=500", auth=BOT).json()
    assert len(capped) == 100
    inactive = next(u for u in users if not u["active"])
    assert get(jira + f"/rest/api/2/user/assignable/search?project=REQ&username={inactive['name']}",
               auth=BOT).json() == []
    assert get(jira + "/rest/api/2/user/assignable/search?username=ben", auth=BOT).status_code == 400
    assert get(jira + "/rest/api/2/user/assignable/search?project=NOPE", auth=BOT).status_code == 404

    picker = get(jira + "/rest/api/2/user/picker?query=ben.abb&showAvatar=true", auth=BOT).json()
    assert picker["total"] == 2 and [u["name"] for u in picker["users"]] == ["ben.abbott", "ben.abbott2"]
    assert "<strong>" in picker["users"][0]["html"] and picker["users"][0]["avatarUrl"]

    prios = get(jira + "/rest/api/2/priority", auth=BOT).json()
    assert [p["name"] for p in prios] == ["Highest", "High", "Medium", "Low", "Lowest"]
    assert all(set(p) == {"self", "statusColor", "description", "iconUrl", "name", "id"} for p in prios)


# ----------------------------------------------------------------------------- Confluence DC discovery
def test_confluence_dc_spaces_paginated(sim):
    conf = sim.dc_base("conf-dc")
    truth = sim.data("spaces", flavour="dc")
    assert len(truth) >= 600
    url, keys, pages = conf + "/rest/api/space?limit=200", [], 0
    while url:
        r = get(url, auth=BOT)
        assert r.status_code == 200
        body = r.json()
        pages += 1
        assert body["size"] == len(body["results"]) and body["limit"] == 200
        assert body["_links"]["base"] == conf and body["_links"]["context"] == "/confluence"
        keys += [s["key"] for s in body["results"]]
        nxt = body["_links"].get("next")
        url = body["_links"]["base"] + nxt if nxt else None
    assert pages == 3 and len(keys) == len(set(keys)) == len(truth)
    assert set(keys) == {s["key"] for s in truth}
    # the system limit wins over a larger requested limit
    body = get(conf + "/rest/api/space?limit=1000", auth=BOT).json()
    assert body["limit"] == 500 and body["size"] == 500 and "next" in body["_links"]
    body = get(conf + "/rest/api/space?spaceKey=SPB&spaceKey=SPC&expand=homepage", auth=BOT).json()
    assert [s["key"] for s in body["results"]] == ["SPB", "SPC"]
    assert body["results"][0]["homepage"]["id"] == truth[1]["homepageId"]
    personal = next(s for s in truth if s["type"] == "personal")
    assert personal["key"].startswith("~")
    r = get(conf + "/rest/api/space/" + requests.utils.quote(personal["key"], safe=""), auth=BOT)
    assert r.status_code == 200 and r.json()["type"] == "personal"
    r = get(conf + "/rest/api/space/NOPE", auth=BOT)
    assert r.status_code == 404 and r.json()["statusCode"] == 404
    assert get(conf + "/rest/api/space?type=weird", auth=BOT).status_code == 400


def test_confluence_dc_content_lookup(sim):
    conf = sim.dc_base("conf-dc")
    r = get(conf + "/rest/api/content", auth=BOT,
            params={"spaceKey": "SPA", "title": "Retrospectives", "type": "page", "expand": "version,ancestors,space"})
    body = r.json()
    assert r.status_code == 200 and body["size"] == 1
    page = body["results"][0]
    assert page["title"] == "Retrospectives" and page["version"]["number"] == 1
    assert [a["title"] for a in page["ancestors"]] == ["Space A Team Home"]
    assert page["space"]["key"] == "SPA"
    # titles repeat across spaces: the space key narrows
    everywhere = get(conf + "/rest/api/content?title=Retrospectives&limit=200", auth=BOT).json()
    assert everywhere["size"] > 1 and len({p["id"] for p in everywhere["results"]}) == everywhere["size"]
    r = get(conf + "/rest/api/content", auth=BOT, params={"spaceKey": "SPA", "title": "Q&A / Notes + Ideas"})
    assert r.json()["size"] == 1
    assert get(conf + "/rest/api/content?spaceKey=SPB&title=Retrospectives", auth=BOT).json()["results"] == []
    # all pages of a space, paged
    truth = sim.data("pages", flavour="dc", space="SPA")
    url, ids = conf + "/rest/api/content?spaceKey=SPA&limit=2", []
    while url:
        b = get(url, auth=BOT).json()
        ids += [p["id"] for p in b["results"]]
        url = b["_links"]["base"] + b["_links"]["next"] if "next" in b["_links"] else None
    assert ids == [p["id"] for p in truth]
    r = get(conf + f"/rest/api/content/{truth[0]['id']}?expand=version", auth=BOT)
    assert r.status_code == 200 and r.json()["version"]["number"] == 1
    assert get(conf + "/rest/api/content/1", auth=BOT).status_code == 404
