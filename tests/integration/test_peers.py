"""The bench's Python peers (tests/peers) and Python function (tests/peers/pyfunction) still do
their jobs against the stack, so `make bench` never measures something broken."""

from __future__ import annotations

import uuid

import pytest

from tests.integration import jobs
from tests.peers import bulk, sequential
from tests.peers.common import Job

from .conftest import REPO


def dc_project(stack) -> str:
    return next(p["key"] for p in stack.sim("GET", "/_sim/data/projects?flavour=dc").json()["items"]
                if p["key"] != "REQ")


@pytest.mark.parametrize("peer", [sequential, bulk], ids=["sequential", "bulk"])
def test_peer_creates_each_issue_and_records_it_in_the_ledger(stack, peer):
    project = dc_project(stack)
    users = stack.sim("GET", f"/_sim/data/assignable?flavour=dc&project={project}").json()["items"]
    assignable = [u for u in users if u.get("emailAddress")][:2]
    job = Job(stack.sim_url + "/dc/jira-dc/jira", jobs.DC_USER, jobs.DC_PASSWORD, project, "3",
              stack.aws("dynamodb"), stack.table_name)
    items = [{"id": uuid.uuid4().hex, "title": f"Peer item {i}"} for i in range(5)]
    for item, user in zip(items, assignable):
        item["assignee_email"] = user["emailAddress"]

    outcomes = peer.run(job, items)

    assert [o.item_id for o in outcomes] == [i["id"] for i in items]
    assert all(o.issue_key and not o.error for o in outcomes), outcomes
    issues = stack.sim("GET", f"/_sim/jira/issues?flavour=dc&project={project}").json()["issues"]
    by_label = {}
    for issue in issues:
        for label in issue["fields"].get("labels", []):
            by_label.setdefault(label, []).append(issue)
    for item, outcome in zip(items, outcomes):
        [issue] = by_label[f"peer-{item['id']}"]                       # exactly once
        assert issue["key"] == outcome.issue_key and issue["fields"]["summary"] == item["title"]
    for item, user in zip(items, assignable):
        assert by_label[f"peer-{item['id']}"][0]["fields"]["assignee"] == {"name": user["name"]}
    ddb = stack.aws("dynamodb")
    for outcome in outcomes:
        record = ddb.get_item(TableName=stack.table_name, Key=job.key(outcome.item_id), ConsistentRead=True)["Item"]
        assert record["state"] == {"S": "created"} and record["issue_key"] == {"S": outcome.issue_key}

    if peer is sequential:   # its claims hold: the same items again create nothing
        assert all(o.skipped for o in peer.run(job, items))
        again = stack.sim("GET", f"/_sim/jira/issues?flavour=dc&project={project}").json()["issues"]
        assert len(again) == len(issues)


def test_python_function_answers_the_first_request_as_ours_does(stack):
    """Behind the connections function's own route (the gateway's code swap), the Python function
    starts — clients, the app secret — and answers the status request as the Rust one does."""
    from .conftest import Bridge
    bridge = Bridge(stack)
    tenant = bridge.tenant()
    jobs.connect_dc(bridge, tenant, "jira")
    ours = bridge.connection(tenant, "jira")
    assert ours.status_code == 200, ours.text
    functions = stack.gateway_url + "/_gateway/functions"
    original = bridge.http.get(functions, timeout=10).json()["connections"]["command"]
    bootstrap = REPO / "tests" / "peers" / "pyfunction" / "bootstrap.py"
    r = bridge.http.put(f"{functions}/connections/code", timeout=60,
                        json={"command": [stack._python(), str(bootstrap), "function.handler"]})
    assert r.status_code == 200, r.text
    try:
        theirs = bridge.connection(tenant, "jira")
        assert theirs.status_code == 200, theirs.text
        assert theirs.json() == ours.json()
        assert bridge.connection("t-" + uuid.uuid4().hex[:12], "jira").status_code == 404
        [instance] = bridge.http.get(functions, timeout=10).json()["connections"]["instance_stats"]
        assert instance["init_ms"] > 0 and instance["peak_rss_kib"] > 0
    finally:
        assert bridge.http.put(f"{functions}/connections/code", json={"command": original}, timeout=60).ok
    assert bridge.connection(tenant, "jira").json() == ours.json()
