"""Scoped Cloud API tokens and service accounts (issue 10 §3).

A scoped API token — and every service-account token — works only through
`api.atlassian.com/ex/{product}/{cloudId}` with Basic auth, never on the site URL. The bridge takes
the site URL, reads the cloudId from the site's public `/_edge/tenant_info`, tries the gateway
first and falls back to the site for classic tokens, and remembers which worked. Links shown to
people still point at the site.
"""

import uuid

import pytest

from . import jobs
from . import registration as reg

SCOPES = {"jira": ["read:jira-work", "write:jira-work", "read:jira-user"],
          "confluence": ["read:space:confluence", "read:page:confluence", "write:page:confluence",
                         "write:confluence-file"]}
SCOPED_TOKEN = "ATATT3xFfGF0-sim-scoped-token-for-tests"
TASK = "10002"


def scoped_token(bridge) -> dict:
    """A scoped token for the default site's admin account, with the scopes the jobs need."""
    bridge.secrets_seen.append(SCOPED_TOKEN)
    bridge.sim("PUT", "/_sim/cloud/api-tokens", [
        {"email": reg.API_EMAIL, "token": reg.API_TOKEN, "site": reg.CLOUD_ID},
        {"email": "retro-bot@acme.test", "token": SCOPED_TOKEN, "site": reg.CLOUD_ID,
         "display_name": "Retro Bot", "scopes": SCOPES["jira"] + SCOPES["confluence"]}])
    return {"type": "api_token", "email": "retro-bot@acme.test", "token": SCOPED_TOKEN}


def service_account(bridge) -> dict:
    r = bridge.sim("POST", "/_sim/cloud/service-accounts", {
        "name": "retro-bridge", "site": reg.CLOUD_ID, "scopes": SCOPES["jira"] + SCOPES["confluence"]})
    account = r.json()
    bridge.secrets_seen.append(account["token"])
    return {"type": "api_token", "email": account["email"], "token": account["token"]}


def register(bridge, tenant, product, auth):
    r = reg.put(bridge, tenant, product, {"deployment": "cloud", "base_url": reg.site_url(bridge), "auth": auth})
    assert r.status_code == 200, r.text
    return r.json()


def routes(bridge):
    return [(c["route"], c["status"]) for c in reg.calls(bridge)]


@pytest.mark.parametrize("kind", ["scoped_token", "service_account"])
def test_a_scoped_token_connects_through_the_gateway_and_every_job_works(bridge, kind):
    tenant = bridge.tenant()
    auth = scoped_token(bridge) if kind == "scoped_token" else service_account(bridge)
    bridge.sim("DELETE", "/_sim/calls")
    view = register(bridge, tenant, "jira", auth)
    assert view["status"] == "connected" and view["site"]["cloud_id"] == reg.CLOUD_ID, view
    # The cloudId came from the site's tenant_info; the token was proven on the gateway.
    assert ("GET /site/{siteName}/_edge/tenant_info", 200) in routes(bridge)
    assert ("GET /ex/jira/{cloudId}/rest/api/3/myself", 200) in routes(bridge)
    register(bridge, tenant, "confluence", auth)

    bridge.sim("DELETE", "/_sim/calls")
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 200 and r.json()["items"], r.text
    assert routes(bridge) == [("GET /ex/jira/{cloudId}/rest/api/3/project/search", 200)]

    project = next(p["key"] for p in r.json()["items"] if p["key"] != "REQ")
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK})
    created = bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant,
                          json_body={"action_items": [{"id": "s-1", "title": "Scoped"}]},
                          headers={"Idempotency-Key": uuid.uuid4().hex})
    assert created.status_code == 200, created.text
    [result] = created.json()["results"]
    assert result["status"] == "created"
    # Links people open go to the site, not to the API gateway.
    assert result["url"].startswith(reg.site_url(bridge) + "/browse/"), result

    jobs.settings(bridge, tenant, "confluence", {"space_key": "SPA"})
    page = bridge.call("POST", f"/v1/tenants/{tenant}/pages", tenant, json_body=jobs.retrospective(),
                       headers={"Idempotency-Key": uuid.uuid4().hex})
    assert page.status_code == 200 and page.json()["state"] == "published", page.text
    assert page.json()["page_url"].startswith(reg.site_url(bridge) + "/wiki/"), page.json()
    assert not [c for c in routes(bridge) if c[0].startswith("GET /site/") or c[0].startswith("POST /site/")]


def test_a_classic_token_is_tried_on_the_gateway_first_then_works_on_the_site(bridge):
    tenant = bridge.tenant()
    bridge.sim("DELETE", "/_sim/calls")
    view = reg.register(bridge, tenant, "jira", "api_token")
    assert view["site"]["cloud_id"] == reg.CLOUD_ID
    calls = routes(bridge)
    assert calls.index(("GET /ex/jira/{cloudId}/rest/api/3/myself", 401)) < \
        calls.index(("GET /site/{siteName}/rest/api/3/myself", 200)), calls
    # From then on it goes straight to the site.
    bridge.sim("DELETE", "/_sim/calls")
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 200, r.text
    assert routes(bridge) == [("GET /site/{siteName}/rest/api/3/project/search", 200)]


def test_a_revoked_scoped_token_is_invalid_credentials_after_one_retry(bridge):
    tenant = bridge.tenant()
    register(bridge, tenant, "jira", scoped_token(bridge))
    bridge.sim("PUT", "/_sim/cloud/api-tokens", [{"email": reg.API_EMAIL, "token": reg.API_TOKEN, "site": reg.CLOUD_ID}])
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_credentials"), r.text
    assert bridge.connection(tenant, "jira").json()["status"] == "invalid_credentials"
