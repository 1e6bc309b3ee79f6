"""The read model: `GET /v1/tenants/{tenant}/action-items` lists what we created, with the report
each item came from, paged by an HMAC-tagged cursor that cannot be forged or reused by another tenant."""

import uuid

import pytest

from . import jobs
from .test_create_issues import TASK, create, project_key


@pytest.fixture(params=["cloud", "dc"])
def jira(request, bridge):
    flavour = request.param
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", flavour)
    jobs.settings(bridge, tenant, "jira", {"project_key": project_key(bridge, flavour), "issue_type_id": TASK[flavour]})
    return bridge, tenant


def listing(bridge, tenant, **query):
    return bridge.call("GET", f"/v1/tenants/{tenant}/action-items", tenant, params=query)


def every_page(bridge, tenant, **query):
    items, pages = [], 0
    while True:
        r = listing(bridge, tenant, **query)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        pages += 1
        if body["next_cursor"] is None:
            return items, pages
        query = {**query, "cursor": body["next_cursor"]}


def test_created_items_are_listed_with_their_report_and_echoed_report_id(jira):
    bridge, tenant = jira
    body = {"action_items": [
        {"id": "a-1", "title": "One", "report_id": "retro-42"},
        {"id": "a-2", "title": "Two", "report_id": "retro-42"},
        {"id": "a-3", "title": "Three"},
    ]}
    r = create(bridge, tenant, body)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x.get("report_id") for x in results] == ["retro-42", "retro-42", None]
    # Through the event too, and the report id survives a redelivery answered from the ledger.
    detail = {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex,
              "action_items": [{"id": "e-1", "title": "From the event", "report_id": "retro-43"}]}
    for _ in range(2):
        assert jobs.event(bridge, "Action Items Ready", detail)["status"] == "ok"
    created = [e["detail"] for e in bridge.stack.published_events()
               if e["detail-type"] == "Issues Created" and e["detail"]["tenant_id"] == tenant]
    assert [d["results"][0]["report_id"] for d in created if d["results"][0]["action_item_id"] == "e-1"] == ["retro-43"] * 2

    items, _ = every_page(bridge, tenant)
    assert [i["action_item_id"] for i in items] == ["a-1", "a-2", "a-3", "e-1"]
    by_id = {i["action_item_id"]: i for i in items}
    assert by_id["a-1"]["issue_key"] == results[0]["key"]
    assert by_id["a-1"]["report_id"] == "retro-42" and by_id["a-3"]["report_id"] is None
    assert by_id["a-1"]["state"] is None and by_id["a-1"]["synced_at"] is None
    assert by_id["a-1"]["deleted"] is False and by_id["a-1"]["site"]

    only, _ = every_page(bridge, tenant, report_id="retro-42")
    assert [i["action_item_id"] for i in only] == ["a-1", "a-2"]
    # Nothing is synced yet, so no item has a status category.
    done, _ = every_page(bridge, tenant, status_category="done")
    assert done == []
    # Another tenant sees none of it.
    stranger = bridge.tenant()
    assert listing(bridge, stranger).json() == {"items": [], "next_cursor": None}


def test_pages_follow_the_cursor_and_a_tampered_or_foreign_cursor_is_refused(bridge):
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", "cloud")
    jobs.settings(bridge, tenant, "jira", {"project_key": project_key(bridge, "cloud"), "issue_type_id": TASK["cloud"]})
    r = create(bridge, tenant, {"action_items": [{"id": f"p-{i}", "title": f"Item {i}", "report_id": "r-1"}
                                                 for i in range(5)]})
    assert r.status_code == 200, r.text
    items, pages = every_page(bridge, tenant, limit="2")
    assert [i["action_item_id"] for i in items] == [f"p-{i}" for i in range(5)]
    assert pages == 3
    cursor = listing(bridge, tenant, limit="2").json()["next_cursor"]
    payload, tag = cursor.split(".")
    flipped = tag[:-1] + ("0" if tag[-1] != "0" else "1")
    for bad in [f"{payload}.{flipped}", payload, "eyJhZnRlciI6InAtMCJ9.00", "x" * 40]:
        r = listing(bridge, tenant, cursor=bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor", (bad, r.text)
    other = bridge.tenant()
    r = listing(bridge, other, cursor=cursor)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor", r.text
    # A cursor keeps its filters: another filter beside it is refused, not silently mixed.
    filtered = listing(bridge, tenant, limit="2", report_id="r-1").json()["next_cursor"]
    r = listing(bridge, tenant, cursor=filtered, report_id="r-2")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor", r.text


def test_bad_filters_and_report_ids_say_what_to_fix(bridge):
    tenant = bridge.tenant()
    for query in [{"report_id": "has space"}, {"status_category": "finished"}, {"limit": "0"}, {"limit": "many"}]:
        r = listing(bridge, tenant, **query)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (query, r.text)
        assert next(iter(query)) in r.json()["error"]["message"]
    r = create(bridge, tenant, {"action_items": [{"id": "a", "title": "t", "report_id": "no spaces allowed"}]})
    assert r.status_code == 400, r.text
    assert "report_id must be" in r.json()["error"]["message"] and "no spaces allowed" not in r.json()["error"]["message"]
    # Reading needs bridge:read.
    r = bridge.call("GET", f"/v1/tenants/{tenant}/action-items", tenant, scopes="bridge:publish")
    assert r.status_code == 403, r.text
