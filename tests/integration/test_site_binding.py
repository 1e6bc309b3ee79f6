"""Records bound to the site they were written to (issue 10 §3).

Issue keys are unique within a site only: after a tenant re-connects Jira to another site, the
same key can name someone else's issue there. The ledger remembers the site (cloudId, or the DC
base URL) each issue was written to, and `DELETE /issues/{key}` refuses keys written elsewhere.
"""

import uuid

from . import jobs

SITE_A = {"id": "11111111-1111-4111-8111-111111111111", "name": "acme", "products": ["jira", "confluence"]}
SITE_B = {"id": "22222222-2222-4222-8222-222222222222", "name": "acme-eu", "products": ["jira", "confluence"]}


def connect_to(bridge, tenant, site):
    bridge.sim("PUT", "/_sim/oauth/config", {"consent_sites": [site["id"]]})
    assert bridge.connect(tenant, "jira")["status"] == "connected"
    assert bridge.connection(tenant, "jira").json()["site"]["cloud_id"] == site["id"]


def issues_on(bridge, site, project):
    r = bridge.stack.sim("GET", f"/_sim/jira/issues?flavour=cloud&site={site['id']}&project={project}")
    body = r.json()
    return body["issues"] if isinstance(body, dict) else body


def test_after_a_reconnect_to_another_site_delete_refuses_keys_written_to_the_first(bridge):
    bridge.sim("PUT", "/_sim/sites", [SITE_A, SITE_B])
    tenant = bridge.tenant()
    connect_to(bridge, tenant, SITE_A)
    projects = bridge.stack.sim("GET", f"/_sim/data/projects?flavour=cloud&site={SITE_A['id']}").json()["items"]
    project = next(p["key"] for p in projects if not p.get("team_managed") and not p.get("archived") and p["key"] != "REQ")
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": "10002"})
    r = bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant, json_body={"action_items": [{"id": "x-1", "title": "On A"}]},
                    headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 200, r.text
    key = r.json()["results"][0]["key"]

    # The same project and key exist on the second site: someone else's issue.
    connect_to(bridge, tenant, SITE_B)
    r = bridge.call("DELETE", f"/v1/tenants/{tenant}/issues/{key}", tenant)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "issue_on_another_site"), r.text
    assert key in {i["key"] for i in issues_on(bridge, SITE_A, project)}
    deletes = [c for c in bridge.stack.sim("GET", "/_sim/calls").json()["calls"] if c["route"].startswith("DELETE ")]
    assert deletes == []

    # Back on the first site, the key is ours again.
    connect_to(bridge, tenant, SITE_A)
    r = bridge.call("DELETE", f"/v1/tenants/{tenant}/issues/{key}", tenant)
    assert r.status_code == 204, r.text
    assert key not in {i["key"] for i in issues_on(bridge, SITE_A, project)}
