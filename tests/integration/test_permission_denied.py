"""A 403 is the connected user lacking a permission, never a dead connection (issue 10 §1).

For Cloud OAuth, Cloud API token and Data Center: a 403 on delete, on discovery and on publish is
answered as `403 atlassian_permission_denied` naming the operation and Atlassian's message; the
connection stays `connected`, and the next job works. Only a 401 that persists after one refresh
(OAuth) or one retry (tokens, passwords) changes a connection's status.
"""

import uuid

import pytest

from . import jobs
from . import registration as reg

SPACE = "SPA"
TASK = {"cloud_oauth": "10002", "cloud_token": "10002", "dc": "3"}
FLAVOURS = ["cloud_oauth", "cloud_token", "dc"]
# The connected user as the simulator's permission table names it.
USER = {"cloud_oauth": "mia.krystof@example.com", "cloud_token": reg.API_EMAIL, "dc": reg.DC_USER}
PROJECT_SEARCH = {"cloud_oauth": "GET /ex/jira/{cloudId}/rest/api/3/project/search",
                  "cloud_token": "GET /site/{siteName}/rest/api/3/project/search",
                  "dc": "GET /dc/jira-dc/jira/rest/api/2/project"}


def sim_flavour(flavour):
    return "dc" if flavour == "dc" else "cloud"


def connect(bridge, tenant, product, flavour):
    if flavour == "cloud_token":
        reg.register(bridge, tenant, product, "api_token")
    else:
        jobs.connect(bridge, tenant, product, sim_flavour(flavour))


def project_key(bridge, flavour):
    projects = bridge.stack.sim("GET", f"/_sim/data/projects?flavour={sim_flavour(flavour)}").json()["items"]
    return next(p["key"] for p in projects if not p.get("team_managed") and not p.get("archived") and p["key"] != "REQ")


def status(bridge, tenant, product):
    return bridge.connection(tenant, product).json()["status"]


def permit(bridge, flavour, kind, key, permissions):
    bridge.sim("PUT", "/_sim/permissions", {"flavour": sim_flavour(flavour), "user": USER[flavour], kind: key,
                                            "permissions": permissions})


def create_issues(bridge, tenant, ids):
    return bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant,
                       json_body={"action_items": [{"id": i, "title": f"Item {i}"} for i in ids]},
                       headers={"Idempotency-Key": uuid.uuid4().hex})


def publish(bridge, tenant, report, key):
    return bridge.call("POST", f"/v1/tenants/{tenant}/pages", tenant, json_body=report,
                       headers={"Idempotency-Key": key})


def assert_permission_denied(r, *needles):
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "atlassian_permission_denied", error
    for needle in needles:
        assert needle in error["message"], error


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_403_on_delete_is_answered_and_the_connection_stays_connected(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", flavour)
    project = project_key(bridge, flavour)
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK[flavour]})
    r = create_issues(bridge, tenant, ["del-1"])
    assert r.status_code == 200, r.text
    key = r.json()["results"][0]["key"]

    permit(bridge, flavour, "project", project, ["browse", "create", "assign"])   # no delete
    r = bridge.call("DELETE", f"/v1/tenants/{tenant}/issues/{key}", tenant)
    assert_permission_denied(r, f"issue/{key}", "permission to delete")
    assert status(bridge, tenant, "jira") == "connected"

    # The next job works, and so does the delete once the permission is granted.
    r = create_issues(bridge, tenant, ["del-2"])
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "created", r.text
    permit(bridge, flavour, "project", project, ["browse", "create", "assign", "delete"])
    r = bridge.call("DELETE", f"/v1/tenants/{tenant}/issues/{key}", tenant)
    assert r.status_code == 204, r.text


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_403_in_discovery_is_answered_and_the_connection_stays_connected(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", flavour)
    body = {"errorMessages": ["You do not have the permission to see the specified resource."], "errors": {}}
    bridge.sim("POST", "/_sim/faults", {"route": PROJECT_SEARCH[flavour], "kind": "status", "status": 403,
                                        "body": body, "times": 1})
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert_permission_denied(r, "project", "permission to see the specified resource")
    assert status(bridge, tenant, "jira") == "connected"
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 200 and r.json()["items"], r.text


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_403_on_publish_is_answered_and_the_same_key_publishes_once_permitted(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "confluence", flavour)
    jobs.settings(bridge, tenant, "confluence", {"space_key": SPACE})
    # May add pages but not attach files: the page is written, the PDF upload is refused (403;
    # Confluence Cloud answers a page create in a space one may not add to with 404 instead).
    permit(bridge, flavour, "space", SPACE, ["view", "add_page"])
    report, key = jobs.retrospective(), uuid.uuid4().hex
    r = publish(bridge, tenant, report, key)
    assert_permission_denied(r, "attachment")
    assert status(bridge, tenant, "confluence") == "connected"
    # Not failed for good: once an admin grants the permission, the same key publishes.
    permit(bridge, flavour, "space", SPACE, ["view", "add_page", "attach"])
    r = publish(bridge, tenant, report, key)
    assert r.status_code == 200 and r.json()["state"] == "published", r.text
    assert status(bridge, tenant, "confluence") == "connected"


def test_a_403_in_a_report_ready_event_is_not_retried_and_says_why(bridge):
    tenant = bridge.tenant()
    connect(bridge, tenant, "confluence", "cloud_oauth")
    jobs.settings(bridge, tenant, "confluence", {"space_key": SPACE})
    permit(bridge, "cloud_oauth", "space", SPACE, ["view", "add_page"])
    invocation = jobs.event(bridge, "Report Ready", {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex,
                                                     "report": jobs.retrospective()})
    failed = [e["detail"] for e in bridge.stack.published_events()
              if e["detail-type"] == "Publish Failed" and e["detail"]["tenant_id"] == tenant]
    assert len(failed) == 1, failed
    assert (failed[0]["code"], failed[0]["retryable"]) == ("atlassian_permission_denied", False), failed
    assert invocation["status"] == "ok", invocation          # not delivered again
    assert status(bridge, tenant, "confluence") == "connected"


@pytest.mark.parametrize("flavour", ["cloud_token", "dc"])
def test_one_401_is_retried_once_before_it_counts(bridge, flavour):
    """A transient 401 (Atlassian answers the odd one) does not disable a token connection."""
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", flavour)
    bridge.sim("POST", "/_sim/faults", {"route": PROJECT_SEARCH[flavour], "kind": "status", "status": 401,
                                        "times": 1})
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 200, r.text
    assert status(bridge, tenant, "jira") == "connected"


def test_an_oauth_401_refreshes_once_and_keeps_the_connection(bridge):
    """An access token revoked early: one refresh, then the request succeeds; still connected."""
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", "cloud_oauth")
    bridge.sim("POST", "/_sim/faults", {"route": PROJECT_SEARCH["cloud_oauth"], "kind": "status", "status": 401,
                                        "times": 1})
    bridge.sim("DELETE", "/_sim/calls")
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 200, r.text
    assert status(bridge, tenant, "jira") == "connected"
    calls = [c["route"] for c in bridge.stack.sim("GET", "/_sim/calls").json()["calls"]]
    assert calls.count("POST /oauth/token") == 1, calls


def test_a_401_on_one_product_of_a_joint_consent_disables_neither(bridge):
    """One consent for Jira and Confluence: a refresh that works proves the grant alive, so a 401
    that persists on Jira alone does not mark the shared grant `reconnect_required`."""
    tenant = bridge.tenant()
    assert bridge.connect(tenant, "atlassian")["status"] == "connected"
    bridge.sim("POST", "/_sim/faults", {"route": PROJECT_SEARCH["cloud_oauth"], "kind": "status", "status": 401,
                                        "times": 2})
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert (r.status_code, r.json()["error"]["code"]) == (502, "upstream_unauthorized"), r.text
    assert status(bridge, tenant, "jira") == "connected"
    assert status(bridge, tenant, "confluence") == "connected"


@pytest.mark.parametrize("flavour", ["cloud_token", "dc"])
def test_a_publish_with_refused_credentials_marks_the_connection(bridge, flavour):
    """publish-page goes through the same boundary: a 401 that persists after one retry records
    `invalid_credentials` (before, it failed the publication for good and left the status alone)."""
    tenant = bridge.tenant()
    connect(bridge, tenant, "confluence", flavour)
    jobs.settings(bridge, tenant, "confluence", {"space_key": SPACE})
    if flavour == "dc":
        bridge.secrets_seen.append("rotated-password-7")
        bridge.sim("PUT", "/_sim/dc/users", [{"username": reg.DC_USER, "password": "rotated-password-7"}])
    else:
        bridge.secrets_seen.append("ATATT3xFfGF0-rotated-for-publish")
        bridge.sim("PUT", "/_sim/cloud/api-tokens", [{"email": reg.API_EMAIL, "token": "ATATT3xFfGF0-rotated-for-publish",
                                                      "site": reg.CLOUD_ID}])
    report, key = jobs.retrospective(), uuid.uuid4().hex
    r = publish(bridge, tenant, report, key)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_credentials"), r.text
    assert status(bridge, tenant, "confluence") == "invalid_credentials"
