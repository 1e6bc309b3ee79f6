"""Markers can't be forged (issue 10 §3).

A retry recognises what an interrupted attempt wrote by a marker (an issue label, a page anchor).
Those were plain hashes of tenant and item/report id, which anyone who can write to the customer's
Jira or Confluence could compute and plant. They are now HMACs under a deployment secret; the old
form is still accepted for records that predate it (so nothing pending is lost), and an issue
marker is searched for within the configured project only. Every issue also carries one
tenant-level label.
"""

import hashlib
import uuid

from . import jobs

TASK = "3"
DC_JIRA = "/dc/jira-dc/jira/rest/api/2"
DC_CONFLUENCE = "/dc/conf-dc/confluence/rest/api"
SPACE = "SPA"


def legacy_issue_marker(tenant, item_id):
    return "bridge-" + hashlib.sha256(f"{tenant}\0{item_id}".encode()).digest()[:10].hex()


def legacy_page_marker(tenant, report_id):
    return "bridge-report-" + hashlib.sha256(f"{tenant}\0{report_id}".encode()).digest()[:10].hex()


def projects(bridge):
    items = bridge.stack.sim("GET", "/_sim/data/projects?flavour=dc").json()["items"]
    return [p["key"] for p in items if not p.get("team_managed") and not p.get("archived") and p["key"] != "REQ"]


def jira_tenant(bridge, project):
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", "dc")
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK})
    return tenant


def plant_issue(bridge, project, labels, summary="planted by someone else"):
    r = bridge.http.post(bridge.stack.sim_url + DC_JIRA + "/issue", auth=(jobs.DC_USER, jobs.DC_PASSWORD), json={
        "fields": {"project": {"key": project}, "issuetype": {"id": TASK}, "summary": summary, "labels": labels}})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def create(bridge, tenant, ids, key):
    r = bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant, headers={"Idempotency-Key": key},
                    json_body={"action_items": [{"id": i, "title": f"Item {i}"} for i in ids]})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def labels_of(bridge, key):
    return next(i for i in jobs.issues(bridge, "dc") if i["key"] == key)["fields"]["labels"]


def test_every_issue_carries_a_keyed_marker_and_one_tenant_label(bridge):
    project = projects(bridge)[0]
    one, two = jira_tenant(bridge, project), jira_tenant(bridge, project)
    keys = [r["key"] for r in create(bridge, one, ["a", "b"], uuid.uuid4().hex)]
    other = create(bridge, two, ["a"], uuid.uuid4().hex)[0]["key"]
    labels = [labels_of(bridge, k) for k in keys + [other]]
    markers = [[l for l in ls if l.startswith("bridge-i-")] for ls in labels]
    tenant_labels = [[l for l in ls if l.startswith("bridge-t-")] for ls in labels]
    assert all(len(m) == 1 for m in markers + tenant_labels), labels
    # Not the guessable hash of the ids.
    assert markers[0] != [legacy_issue_marker(one, "a")] and markers[0] != markers[2]
    # One label finds all of one tenant's issues, and only theirs.
    assert tenant_labels[0] == tenant_labels[1] != tenant_labels[2]


def test_a_planted_issue_with_a_guessable_marker_is_not_taken_for_ours(bridge):
    project = projects(bridge)[0]
    tenant = jira_tenant(bridge, project)
    planted = plant_issue(bridge, project, [legacy_issue_marker(tenant, "p-1")])
    bridge.stack.sim("PUT", "/_sim/quirks", {"dc_search_index_delay_seconds": 0})
    bridge.stack.sim("POST", "/_sim/faults", {"route": "POST ", "kind": "commit_then_drop", "times": 1})
    first = create(bridge, tenant, ["p-1"], "k-planted")
    assert first[0]["status"] == "failed" and first[0]["retryable"], first
    [again] = create(bridge, tenant, ["p-1"], "k-planted")
    assert again["status"] == "existing" and again["key"] != planted, again
    assert legacy_issue_marker(tenant, "p-1") not in labels_of(bridge, again["key"])


def old_pending_record(bridge, tenant, item_id):
    """What the code before keyed markers left after a crash: a pending claim, lease lapsed."""
    bridge.stack.aws("dynamodb").put_item(TableName=bridge.stack.table_name, Item={
        "pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": f"ACTION#{item_id}"}, "state": {"S": "pending"},
        "owner": {"S": "an-old-invocation"}, "lease_until_ms": {"N": "0"}})


def test_an_item_pending_from_before_keyed_markers_is_still_found(bridge):
    project = projects(bridge)[0]
    tenant = jira_tenant(bridge, project)
    old = plant_issue(bridge, project, [legacy_issue_marker(tenant, "o-1")], summary="Item o-1")
    old_pending_record(bridge, tenant, "o-1")
    bridge.stack.sim("POST", "/_sim/clock/advance", {"seconds": 60})     # created long ago: indexed
    [result] = create(bridge, tenant, ["o-1"], uuid.uuid4().hex)
    assert (result["status"], result["key"]) == ("existing", old), result


def test_a_marker_is_looked_for_in_the_configured_project_only(bridge):
    mine, elsewhere = projects(bridge)[:2]
    tenant = jira_tenant(bridge, mine)
    foreign = plant_issue(bridge, elsewhere, [legacy_issue_marker(tenant, "e-1")])
    old_pending_record(bridge, tenant, "e-1")
    bridge.stack.sim("POST", "/_sim/clock/advance", {"seconds": 60})
    [result] = create(bridge, tenant, ["e-1"], uuid.uuid4().hex)
    assert result["status"] == "created" and result["key"] != foreign, result
    assert result["key"].startswith(mine + "-")


def test_a_planted_page_with_a_guessable_anchor_is_not_taken_over(bridge):
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "confluence", "dc")
    jobs.settings(bridge, tenant, "confluence", {"space_key": SPACE})
    report = jobs.retrospective(title="Planted " + uuid.uuid4().hex[:6])
    anchor = ('<ac:structured-macro ac:name="anchor" ac:schema-version="1"><ac:parameter ac:name="">'
              f'{legacy_page_marker(tenant, report["report_id"])}</ac:parameter></ac:structured-macro>')
    r = bridge.http.post(bridge.stack.sim_url + DC_CONFLUENCE + "/content", auth=(jobs.DC_USER, jobs.DC_PASSWORD),
                         json={"type": "page", "title": report["title"], "space": {"key": SPACE},
                               "body": {"storage": {"value": anchor + "<p>someone else's page</p>",
                                                    "representation": "storage"}}})
    assert r.status_code == 200, r.text
    planted = r.json()["id"]
    published = bridge.call("POST", f"/v1/tenants/{tenant}/pages", tenant, json_body=report,
                            headers={"Idempotency-Key": uuid.uuid4().hex})
    assert published.status_code == 200, published.text
    body = published.json()
    assert body["page_id"] != planted and body["title"] == f"{report['title']} ({report['date']})", body
    page = next(p for p in jobs.pages(bridge, SPACE, "dc") if str(p["id"]) == str(planted))
    assert page["version"] == 1, page
