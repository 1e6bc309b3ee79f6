"""Status back by polling, end to end: the real `issue-sync` binary fired as its EventBridge
Scheduler schedule through the local gateway, against moto and the simulator, on Cloud and DC.
A person moves, deletes and edits issues in the simulator's Jira (its control API); the test
reads our outgoing events from the bus's tap queue and counts Jira searches in the simulator."""

from __future__ import annotations

import math
import time
import uuid

import pytest

from . import jobs
from .conftest import own_stack
from .test_create_issues import TASK, create, project_key


# The sweep/poll here visits every tenant in the table: a stack of its own (see own_stack).
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from own_stack(tmp_path_factory, "issue-sync")


UPDATED, DELETED = "Issues Updated", "Issue Deleted"
PAGE_SIZE = 100          # shared/src/sync/poll.rs PAGE_SIZE


@pytest.fixture(params=["cloud", "dc"])
def jira(request, bridge):
    flavour = request.param
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", flavour)
    project = project_key(bridge, flavour)
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK[flavour]})
    return bridge, tenant, flavour, project


def created(bridge, tenant, n):
    items = [{"id": f"sync-{uuid.uuid4().hex[:8]}", "title": f"Action item {i}"} for i in range(n)]
    r = create(bridge, tenant, {"action_items": items})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert all(x["status"] == "created" for x in results), results
    return [(x["action_item_id"], x["key"]) for x in results]


def later(bridge, seconds=10):
    """Moves the simulator's clock past its search index delay (and apart from earlier changes)."""
    bridge.sim("POST", "/_sim/clock/advance", {"seconds": seconds})


def sync(bridge) -> dict:
    result = bridge.stack.fire_schedule("issue-sync")
    assert result["status"] == "ok", result
    return result["response"]


def events(bridge, tenant, kind=UPDATED) -> list[dict]:
    return [e["detail"] for e in bridge.stack.published_events()
            if e["detail-type"] == kind and e["detail"].get("tenant_id") == tenant]


def changes(details) -> list[dict]:
    return [c for d in details for c in d["changes"]]


def transition(bridge, flavour, key, status):
    r = bridge.sim("POST", f"/_sim/jira/issues/{key}/transition?flavour={flavour}", {"status": status})
    assert r.status_code == 200, r.text


def tenant_label(bridge, flavour, key) -> str:
    issue = next(i for i in jobs.issues(bridge, flavour) if i["key"] == key)
    return next(label for label in issue["fields"]["labels"] if label.startswith("bridge-t-"))


def lapse_run_lease(bridge):
    """A crashed run held the run lease until its deadline; a dead instance's lease lapses, which
    here we do at once instead of waiting minutes."""
    bridge.stack.aws("dynamodb").delete_item(TableName=bridge.stack.table_name, Key={
        "pk": {"S": "LEASE#issue-sync#run"}, "sk": {"S": "LEASE"}})


def test_an_issue_moved_to_done_is_announced_in_exactly_one_event(jira):
    bridge, tenant, flavour, _ = jira
    [(done_item, done_key), (_, todo_key)] = created(bridge, tenant, 2)
    later(bridge)
    transition(bridge, flavour, done_key, "Done")
    bridge.stack.published_events()
    report = sync(bridge)
    assert report["searches"] >= 1, report
    details = events(bridge, tenant)
    assert len(details) == 1, details
    site = details[0]["site"]
    by_key = {c["issue_key"]: c for c in changes(details)}
    done = by_key[done_key]
    assert (done["item_id"], done["done"], done["source"]) == (done_item, True, "poll")
    assert (done["state"]["status"], done["state"]["status_category"]) == ("Done", "done")
    assert done["state"]["resolution"] == "Done"
    assert by_key[todo_key]["done"] is False
    # The ledger keeps the last known state.
    items = {i["sk"]["S"]: i for i in bridge.items(tenant)}
    assert '"status_category":"done"' in items[f"ACTION#{done_item}"]["jira_state"]["S"]
    assert f"SYNC_CURSOR#{site}" in items and "SYNC" in items
    # Nothing changed since: the next run says nothing, though its search overlaps the last.
    sync(bridge)
    assert events(bridge, tenant) == []
    # A person reopens it: announced again, once.
    later(bridge, 60)
    transition(bridge, flavour, done_key, "In Progress")
    sync(bridge)
    [again] = changes(events(bridge, tenant))
    assert (again["issue_key"], again["done"], again["state"]["status_category"]) == (done_key, False, "indeterminate")


@pytest.mark.parametrize("step", ["issue-sync:after-search", "issue-sync:after-stage"])
def test_a_crash_after_the_search_and_before_the_cursor_write_announces_once(jira, step):
    bridge, tenant, flavour, _ = jira
    [(_, key)] = created(bridge, tenant, 1)
    later(bridge)
    sync(bridge)
    bridge.stack.published_events()
    later(bridge, 60)
    transition(bridge, flavour, key, "Done")
    bridge.stack.set_function_env("issue-sync", {"BRIDGE_TEST_CRASH_AT": step})
    try:
        crashed = bridge.stack.fire_schedule("issue-sync")
        assert crashed["status"] != "ok", crashed
    finally:
        bridge.stack.set_function_env("issue-sync", {"BRIDGE_TEST_CRASH_AT": None})
    lapse_run_lease(bridge)
    sync(bridge)
    sync(bridge)
    seen = [c for c in changes(events(bridge, tenant)) if c["issue_key"] == key]
    assert len(seen) == 1 and seen[0]["done"] is True, seen


def test_a_deleted_issue_is_announced_once(jira):
    bridge, tenant, flavour, _ = jira
    [(item, key), (_, kept)] = created(bridge, tenant, 2)
    later(bridge)
    sync(bridge)
    bridge.stack.published_events()
    r = bridge.sim("DELETE", f"/_sim/jira/issues/{key}?flavour={flavour}")
    assert r.status_code == 200, r.text
    report = sync(bridge)
    assert report["deleted"] >= 1, report
    [gone] = events(bridge, tenant, DELETED)
    assert (gone["issue_key"], gone["item_id"], gone["source"]) == (key, item, "poll")
    sync(bridge)
    assert events(bridge, tenant, DELETED) == []
    # The ledger knows: deleting it through the API now answers that it is gone.
    r = bridge.call("DELETE", f"/v1/tenants/{tenant}/issues/{key}", tenant)
    assert r.status_code in (404, 410), r.text
    assert kept


def test_a_tenant_that_must_reconnect_is_skipped_and_counted(jira):
    bridge, tenant, flavour, _ = jira
    [(_, key)] = created(bridge, tenant, 1)
    later(bridge)
    transition(bridge, flavour, key, "Done")
    bridge.stack.aws("dynamodb").update_item(
        TableName=bridge.stack.table_name, Key={"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": "CONNECTION#jira"}},
        UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "reconnect_required"}})
    bridge.stack.published_events()
    label = tenant_label(bridge, flavour, key)
    report = sync(bridge)
    assert report["reconnect_required"] >= 1, report
    assert events(bridge, tenant) == []
    assert bridge.sim("GET", f"/_sim/jira/searches?label={label}").json()["count"] == 0


def seed_ledger(bridge, tenant, site, planted):
    """The ledger records of issues this system created earlier, as the create job writes them."""
    table = bridge.stack.aws("dynamodb")
    rows = []
    for n, issue in enumerate(planted):
        item = f"bulk-{n}"
        rows.append({"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": f"ACTION#{item}"}, "state": {"S": "created"},
                     "issue_key": {"S": issue["key"]}, "issue_id": {"S": issue["id"]}, "site": {"S": site},
                     "marker_form": {"S": "keyed"}})
        rows.append({"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": f"ISSUE#{issue['key']}"}, "state": {"S": "created"},
                     "item_id": {"S": item}, "site": {"S": site}})
    for start in range(0, len(rows), 25):
        batch = [{"PutRequest": {"Item": row}} for row in rows[start:start + 25]]
        while batch:
            out = table.batch_write_item(RequestItems={bridge.stack.table_name: batch})
            batch = out.get("UnprocessedItems", {}).get(bridge.stack.table_name, [])


def forget(bridge, tenant):
    """Deletes the tenant's items again: moto answers every query of the shared table by reading
    all its items, so 10,000 left behind would slow every later test of the session."""
    table, name = bridge.stack.aws("dynamodb"), bridge.stack.table_name
    keys, query = [], {"TableName": name, "KeyConditionExpression": "pk = :pk", "ProjectionExpression": "pk, sk",
                       "ExpressionAttributeValues": {":pk": {"S": f"TENANT#{tenant}"}}}
    while True:
        page = table.query(**query)
        keys += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    for start in range(0, len(keys), 25):
        pending = {name: [{"DeleteRequest": {"Key": k}} for k in keys[start:start + 25]]}
        while pending:
            pending = table.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


@pytest.fixture
def big_jira(jira):
    yield jira
    bridge, tenant, _, _ = jira
    forget(bridge, tenant)


def test_5000_issues_with_300_changed_take_one_search_per_page_of_changes(big_jira):
    bridge, tenant, flavour, project = big_jira
    [(first_item, first_key)] = created(bridge, tenant, 1)
    label = tenant_label(bridge, flavour, first_key)
    site = next(i for i in bridge.items(tenant) if i["sk"]["S"] == f"ACTION#{first_item}")["site"]["S"]
    planted = bridge.sim("POST", f"/_sim/jira/issues?flavour={flavour}",
                         {"project": project, "count": 4999, "labels": [label]}).json()["issues"]
    seed_ledger(bridge, tenant, site, planted)
    # Where an earlier run left the tenant: its cursor at our "now", five minutes (on Jira's
    # clock) after the issues last changed. Seeded rather than run: a first run records 5,000
    # states and outbox entries, minutes of moto's serialized writes, and proves nothing asked here.
    later(bridge, 300)
    bridge.stack.aws("dynamodb").put_item(TableName=bridge.stack.table_name, Item={
        "pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": f"SYNC_CURSOR#{site}"},
        "updated_since_ms": {"N": str(int(time.time() * 1000))}})
    # Ten minutes later (on Jira's clock) a person changes 300 of them.
    later(bridge, 600)
    for issue in planted[:300]:
        transition(bridge, flavour, issue["key"], "Done")
    bridge.stack.published_events()
    bridge.sim("DELETE", "/_sim/jira/searches")
    report = sync(bridge)
    assert report["changes"] == 300, report
    update_searches = bridge.sim("GET", f"/_sim/jira/searches?label={label}").json()["count"]
    assert update_searches <= math.ceil(300 / PAGE_SIZE) + 1, update_searches
    # The deletion check is counted apart: `id in (…)`, no label.
    all_searches = bridge.sim("GET", "/_sim/jira/searches").json()["searches"]
    assert any(s["jql"].startswith("id in (") for s in all_searches)
    details = events(bridge, tenant)
    assert len({c["issue_key"] for c in changes(details)}) == 300
    assert all(c["done"] for c in changes(details))
