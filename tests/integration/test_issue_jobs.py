"""POST /issues past its budget: answered 202 with what it did, the rest sent to itself as
`Action Items Deferred` parts and finished by the same function, the job read back by GET."""

import json
import uuid

import pytest

from . import jobs
from .test_create_issues import TASK, create, project_key

BUDGET = "BRIDGE_ISSUE_JOB_BUDGET_SECONDS"


@pytest.fixture
def no_budget(bridge):
    """create-issue with a budget of 0 s: every slice after the first is deferred."""
    bridge.stack.set_function_env("create-issue", {BUDGET: "0"})
    yield bridge
    bridge.stack.set_function_env("create-issue", {BUDGET: None})


def deliver(bridge, event):
    """Delivers an event as EventBridge would, from the source it was put with."""
    r = bridge.http.post(bridge.gw + "/_gateway/events", json={
        "Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])},
        timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


def test_a_job_past_its_budget_is_accepted_and_finished_through_its_own_events(no_budget):
    bridge = no_budget
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", "dc")
    project = project_key(bridge, "dc")
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK["dc"]})
    run = uuid.uuid4().hex[:8]
    items = [{"id": f"{run}-{i}", "title": f"{run} action item {i}"} for i in range(330)]
    bridge.stack.published_events()

    r = create(bridge, tenant, {"action_items": items})
    assert r.status_code == 202, r.text
    accepted = r.json()
    job = accepted["job_id"]
    assert r.headers["location"] == f"/v1/tenants/{tenant}/jobs/{job}"
    # The first slice (four bulk calls of 50) ran in the request; 130 items are left in two parts.
    assert (accepted["status"], accepted["pending_parts"]) == ("running", 2)
    assert [x["action_item_id"] for x in accepted["results"]] == [i["id"] for i in items[:200]]
    assert {x["status"] for x in accepted["results"]} == {"created"}
    polled = bridge.call("GET", f"/v1/tenants/{tenant}/jobs/{job}", tenant).json()
    assert (polled["status"], len(polled["results"])) == ("running", 200)

    parts = [e for e in bridge.stack.published_events()
             if e["detail-type"] == "Action Items Deferred" and e["detail"]["job_id"] == job]
    assert [(e["detail"]["part"], len(e["detail"]["action_items"])) for e in parts] == [(1, 100), (2, 30)]
    # Only the bridge's own source reaches the rule: the same detail from anyone else does nothing.
    assert deliver(bridge, {**parts[0], "source": "saas.retro"}) == []
    # EventBridge delivers each part; the first one twice (deliveries repeat).
    for event in parts + parts[:1]:
        [outcome] = deliver(bridge, event)
        assert outcome["status"] == "ok", outcome

    done = bridge.call("GET", f"/v1/tenants/{tenant}/jobs/{job}", tenant).json()
    assert (done["status"], done["pending_parts"]) == ("done", 0)
    assert [x["action_item_id"] for x in done["results"]] == [i["id"] for i in items]
    # The repeated part did not overwrite what its first delivery created.
    assert {x["status"] for x in done["results"]} == {"created"}, done["results"]
    ours = [i for i in jobs.issues(bridge, "dc", project) if i["fields"]["summary"].startswith(run)]
    assert sorted(i["fields"]["summary"] for i in ours) == sorted(i["title"] for i in items)
    finished = [e["detail"] for e in bridge.stack.published_events()
                if e["detail-type"] == "Issues Created" and e["detail"].get("job_id") == job]
    assert sorted(len(d["results"]) for d in finished) == [30, 100, 100]


def test_a_job_is_read_only_by_its_tenant_and_unknown_ids_are_not_found(bridge):
    tenant = bridge.tenant()
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jobs/{uuid.uuid4()}", tenant)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), r.text
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jobs/not-a-job", tenant)
    assert r.status_code == 404, r.text
    other = bridge.tenant()
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jobs/{uuid.uuid4()}", other)
    assert r.status_code == 403, r.text


def test_a_job_inside_its_budget_answers_200_with_every_result(bridge):
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", "dc")
    jobs.settings(bridge, tenant, "jira", {"project_key": project_key(bridge, "dc"), "issue_type_id": TASK["dc"]})
    items = [{"id": f"small-{i}", "title": f"Item {i}"} for i in range(250)]
    r = create(bridge, tenant, {"action_items": items})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 250 and "job_id" not in r.json()
