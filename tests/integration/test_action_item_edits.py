"""Edits forward: `PATCH /v1/tenants/{tenant}/action-items/{id}` and the `Action Items Changed`
event change exactly the fields sent of the issue we created, by Jira's own edit (`PUT issue`),
on Cloud (ADF) and Data Center, with the optimistic rule, the edit screen, deletions and the
connected user's permissions answered as the README says."""

import uuid

import pytest

from . import jobs
from .test_create_issues import TASK, create, project_key

# The connected user as the simulator's permission table names it (see test_permission_denied).
USER = {"cloud": "mia.krystof@example.com", "dc": "bridge-bot"}


@pytest.fixture(params=["cloud", "dc"])
def jira(request, bridge):
    flavour = request.param
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", flavour)
    project = project_key(bridge, flavour)
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK[flavour],
                                            "labels": ["retro"], "assignee_matching": "email"})
    return bridge, tenant, flavour, project


def created(bridge, tenant, *items):
    r = create(bridge, tenant, {"action_items": list(items)})
    assert r.status_code == 200, r.text
    return [x["key"] for x in r.json()["results"]]


def patch(bridge, tenant, item_id, body):
    return bridge.call("PATCH", f"/v1/tenants/{tenant}/action-items/{item_id}", tenant, json_body=body)


def issue(bridge, flavour, key):
    return next(i for i in jobs.issues(bridge, flavour) if i["key"] == key)


def fields_of(bridge, flavour, key):
    return issue(bridge, flavour, key)["values"]


def sim_calls(bridge, method, path_ends):
    return [c for c in bridge.stack.sim("GET", "/_sim/calls").json()["calls"]
            if c["method"] == method and c["path"].endswith(path_ends)]


def edits_sent(bridge, key):
    return sim_calls(bridge, "PUT", f"/issue/{key}")


def error(r):
    return r.status_code, r.json()["error"]["code"]


def advance(bridge, seconds=60):
    bridge.sim("POST", "/_sim/clock/advance", {"seconds": seconds})


def test_an_edit_changes_exactly_the_fields_sent_and_the_read_model_shows_it(jira):
    bridge, tenant, flavour, _ = jira
    [key] = created(bridge, tenant, {"id": "e-1", "title": "Quarantine flaky tests", "description": "As agreed",
                                      "due_date": "2026-12-01", "labels": ["ci"], "report_id": "retro-1"})
    before = fields_of(bridge, flavour, key)
    advance(bridge)
    r = patch(bridge, tenant, "e-1", {"summary": "Quarantine the flaky tests", "due_date": "2026-12-24"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["issue_key"], body["changed"], body["notes"]) == (key, ["summary", "due_date"], [])
    assert body["state"]["summary"] == "Quarantine the flaky tests" and body["state"]["due_date"] == "2026-12-24"
    after = fields_of(bridge, flavour, key)
    assert (after["summary"], after["duedate"]) == ("Quarantine the flaky tests", "2026-12-24")
    assert (after["description"], after["labels"]) == (before["description"], before["labels"])   # untouched
    assert len(edits_sent(bridge, key)) == 1
    # The read model has the state Jira answered after the edit, at once.
    [listed] = bridge.call("GET", f"/v1/tenants/{tenant}/action-items", tenant).json()["items"]
    assert listed["state"]["summary"] == "Quarantine the flaky tests" and listed["synced_at"]
    assert listed["report_id"] == "retro-1"
    # The same values again: nothing to send, nothing sent.
    again = patch(bridge, tenant, "e-1", {"summary": "Quarantine the flaky tests", "due_date": "2026-12-24"})
    assert again.status_code == 200 and again.json()["changed"] == []
    assert len(edits_sent(bridge, key)) == 1
    # The description, as the deployment writes it (ADF on Cloud, wiki markup on DC).
    r = patch(bridge, tenant, "e-1", {"description": "New *plan*"})
    assert r.status_code == 200 and r.json()["changed"] == ["description"], r.text
    description = fields_of(bridge, flavour, key)["description"]
    if flavour == "cloud":
        assert description["type"] == "doc" and all(v["valid"] for v in jobs.validate_adf([description]))
    else:
        assert description == "New \\*plan\\*"


def test_an_unknown_email_leaves_the_assignee_with_a_note_and_a_known_one_assigns(jira):
    bridge, tenant, flavour, project = jira
    users = bridge.stack.sim("GET", f"/_sim/data/assignable?flavour={flavour}&project={project}").json()["items"]
    visible = next(u for u in users if u.get("emailAddress"))
    [key] = created(bridge, tenant, {"id": "a-1", "title": "Assign me"})
    r = patch(bridge, tenant, "a-1", {"assignee_email": "nobody@nowhere.example", "summary": "Assign me later"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] == ["summary"] and len(body["notes"]) == 1
    assert "assignee unchanged" in body["notes"][0] and "nobody@" not in body["notes"][0]
    assert fields_of(bridge, flavour, key).get("assignee") is None
    r = patch(bridge, tenant, "a-1", {"assignee_email": visible["emailAddress"]})
    assert r.status_code == 200 and r.json()["changed"] == ["assignee"], r.text
    assignee = fields_of(bridge, flavour, key)["assignee"]
    assert assignee == (visible["accountId"] if flavour == "cloud" else visible["name"])


def test_an_item_we_never_created_is_404_and_a_bad_edit_400(jira):
    bridge, tenant, _, _ = jira
    assert error(patch(bridge, tenant, "never-made", {"summary": "x"})) == (404, "action_item_not_found")
    created(bridge, tenant, {"id": "b-1", "title": "T"})
    for body in [{}, {"summary": " "}, {"due_date": "tomorrow"}, {"title": "not a field"}]:
        assert error(patch(bridge, tenant, "b-1", body))[0] == 400, body
    r = bridge.call("PATCH", f"/v1/tenants/{tenant}/action-items/b-1", tenant, json_body={"summary": "x"},
                    scopes="bridge:read")
    assert r.status_code == 403


def test_a_deleted_issue_is_410_and_marked_deleted(jira):
    bridge, tenant, flavour, _ = jira
    [key] = created(bridge, tenant, {"id": "d-1", "title": "Soon gone"})
    bridge.sim("DELETE", f"/_sim/jira/issues/{key}?flavour={flavour}")
    assert error(patch(bridge, tenant, "d-1", {"summary": "Renamed"})) == (410, "issue_deleted")
    [listed] = bridge.call("GET", f"/v1/tenants/{tenant}/action-items", tenant).json()["items"]
    assert listed["deleted"] is True
    # From then on the ledger answers, without asking Jira.
    calls = len(bridge.stack.sim("GET", "/_sim/calls").json()["calls"])
    assert error(patch(bridge, tenant, "d-1", {"summary": "Renamed"})) == (410, "issue_deleted")
    assert len(bridge.stack.sim("GET", "/_sim/calls").json()["calls"]) == calls


def test_a_field_a_person_changed_since_we_last_saw_it_is_not_overwritten(jira):
    bridge, tenant, flavour, _ = jira
    [key] = created(bridge, tenant, {"id": "c-1", "title": "Ours", "due_date": "2026-12-01"})
    # Our edit records the state Jira answered: the baseline.
    assert patch(bridge, tenant, "c-1", {"summary": "Ours, edited"}).status_code == 200
    advance(bridge)
    bridge.sim("PATCH", f"/_sim/jira/issues/{key}?flavour={flavour}", {"fields": {"summary": "A person's"}})
    r = patch(bridge, tenant, "c-1", {"summary": "Ours again"})
    assert error(r) == (409, "issue_changed") and "summary" in r.json()["error"]["message"]
    assert fields_of(bridge, flavour, key)["summary"] == "A person's"
    # The due date nobody touched may still be changed; a transition alone blocks nothing tracked.
    bridge.sim("POST", f"/_sim/jira/issues/{key}/transition?flavour={flavour}", {"status": "In Progress"})
    r = patch(bridge, tenant, "c-1", {"due_date": "2026-12-31"})
    assert r.status_code == 200 and r.json()["changed"] == ["due_date"], r.text
    # The state read back after the edit is the read model's: filtered by its status category.
    listed = bridge.call("GET", f"/v1/tenants/{tenant}/action-items", tenant,
                         params={"status_category": "indeterminate"}).json()["items"]
    assert [i["action_item_id"] for i in listed] == ["c-1"] and listed[0]["state"]["status"] == "In Progress"
    # That edit read the issue again: the person's summary is now the known one, and may be changed.
    assert patch(bridge, tenant, "c-1", {"summary": "Ours again"}).status_code == 200
    # The description is not in the known state: any change since blocks an edit of it.
    advance(bridge)
    bridge.sim("POST", f"/_sim/jira/issues/{key}/transition?flavour={flavour}", {"status": "Done"})
    assert error(patch(bridge, tenant, "c-1", {"description": "New text"})) == (409, "issue_changed")


def test_a_field_off_the_edit_screen_is_422_and_nothing_is_written(jira):
    bridge, tenant, flavour, project = jira
    [key] = created(bridge, tenant, {"id": "s-1", "title": "Screened"})
    assert patch(bridge, tenant, "s-1", {"summary": "Screened once"}).status_code == 200   # screen remembered
    bridge.sim("PUT", f"/_sim/jira/edit-screen?flavour={flavour}", {"project": project, "fields": ["summary"]})
    r = patch(bridge, tenant, "s-1", {"summary": "Screened twice", "due_date": "2026-12-31"})
    assert error(r) == (422, "field_not_editable") and "due_date" in r.json()["error"]["message"]
    assert fields_of(bridge, flavour, key)["summary"] == "Screened once"
    # Back on the screen: the remembered screen lacks it, so it is asked again, and the edit goes.
    bridge.sim("PUT", f"/_sim/jira/edit-screen?flavour={flavour}", {"project": project, "fields": None})
    r = patch(bridge, tenant, "s-1", {"due_date": "2026-12-31"})
    assert r.status_code == 200 and r.json()["changed"] == ["due_date"], r.text


def test_no_edit_permission_is_a_403_and_the_connection_stays_connected(jira):
    bridge, tenant, flavour, project = jira
    created(bridge, tenant, {"id": "p-1", "title": "Guarded"})
    assert patch(bridge, tenant, "p-1", {"summary": "Edited while allowed"}).status_code == 200
    bridge.sim("PUT", "/_sim/permissions", {"flavour": flavour, "user": USER[flavour], "project": project,
                                            "permissions": ["browse", "create", "assign", "delete"]})
    # The remembered screen still lists the field, so Jira itself refuses the edit.
    r = patch(bridge, tenant, "p-1", {"summary": "Edited without Edit Issues"})
    assert error(r) == (403, "atlassian_permission_denied"), r.text
    assert bridge.connection(tenant, "jira").json()["status"] == "connected"


def test_the_event_applies_each_change_once_per_idempotency_key(jira):
    bridge, tenant, flavour, _ = jira
    [key] = created(bridge, tenant, {"id": "v-1", "title": "By event"})
    detail = {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex, "changes": [
        {"action_item_id": "v-1", "summary": "Renamed by event", "due_date": "2026-12-24"},
        {"action_item_id": "not-ours", "summary": "x"},
    ]}
    for _ in range(2):
        assert jobs.event(bridge, "Action Items Changed", detail)["status"] == "ok"
    edited = [e["detail"] for e in bridge.stack.published_events()
              if e["detail-type"] == "Action Items Edited" and e["detail"]["tenant_id"] == tenant]
    assert len(edited) == 2 and edited[0] == edited[1]
    first, missing = edited[0]["results"]
    assert (first["status"], first["changed"], first["issue_key"]) == ("edited", ["summary", "due_date"], key)
    assert (missing["status"], missing["code"], missing["retryable"]) == ("failed", "action_item_not_found", False)
    assert fields_of(bridge, flavour, key)["summary"] == "Renamed by event"
    # The redelivery was answered from the first one's results: one edit sent, not two.
    assert len(edits_sent(bridge, key)) == 1
    # A malformed event is refused as such, naming the field.
    bad = {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex, "changes": [{"action_item_id": "v-1"}]}
    assert jobs.event(bridge, "Action Items Changed", bad)["status"] == "ok"
    failed = [e["detail"] for e in bridge.stack.published_events()
              if e["detail-type"] == "Publish Failed" and e["detail"]["idempotency_key"] == bad["idempotency_key"]]
    assert failed and failed[0]["code"] == "invalid_request" and "changes[0]" in failed[0]["reason"]
