"""Links both ways between a report's page and its action items' issues, in either order of the
two events and through any redelivery of them: the page links each issue exactly once and is
written once for the links, and each issue has exactly one remote link back to the page.

The bridge's own events (`Report Issues Created` from create-issue, `Page Published` from
publish-page) are drained from the bus and delivered through the gateway's EventBridge rules,
as EventBridge would deliver them — each twice, once of them concurrently, as deliveries repeat."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from . import jobs
from .test_create_issues import TASK, project_key

SPACE = "SPA"
OWN = "atlassian-bridge"


@pytest.fixture(params=["cloud", "dc"])
def linked(request, bridge):
    """A tenant connected to Jira and Confluence (one flavour), both set up."""
    flavour = request.param
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", flavour)
    jobs.connect(bridge, tenant, "confluence", flavour)
    jobs.settings(bridge, tenant, "confluence", {"space_key": SPACE})
    project = project_key(bridge, flavour)
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK[flavour]})
    bridge.stack.published_events()          # start from an empty outbox
    return bridge, tenant, flavour, project


def report_with_items(run: str) -> tuple[dict, list[dict]]:
    report = jobs.retrospective(report_id=f"r-{run}")
    items = [{"id": f"{run}-a{i}", "title": f"{run} follow-up {i}", "report_id": report["report_id"]}
             for i in range(3)]
    report["action_items"] = [{k: v for k, v in i.items() if k != "report_id"} for i in items]
    return report, items


def deliver(bridge, event: dict) -> list[dict]:
    r = bridge.http.post(bridge.gw + "/_gateway/events", json={
        "Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])},
        timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


def saas(bridge, detail_type: str, detail: dict, twice: bool) -> None:
    """The SaaS's event; with `twice`, delivered again at the same time (EventBridge repeats)."""
    event = {"source": "saas.retro", "detail-type": detail_type, "detail": detail}
    runs = 2 if twice else 1
    with ThreadPoolExecutor(runs) as pool:
        for invocations in pool.map(lambda _: deliver(bridge, event), range(runs)):
            assert [i["status"] for i in invocations] == ["ok"], invocations


def own_events(bridge, twice: bool) -> list[str]:
    """Delivers every event the bridge sent itself since the last call (twice each with `twice`:
    once more in a row, and once concurrently); answers their detail-types."""
    sent = [e for e in bridge.stack.published_events() if e["source"] == OWN
            and e["detail-type"] in ("Report Issues Created", "Page Published")]
    for event in sent:
        runs = 2 if twice else 1
        with ThreadPoolExecutor(runs) as pool:
            for invocations in pool.map(lambda _: deliver(bridge, event), range(runs)):
                assert [i["status"] for i in invocations] == ["ok"], invocations
        if twice:
            [again] = deliver(bridge, event)
            assert again["status"] == "ok", again
    return [e["detail-type"] for e in sent]


def publish(bridge, tenant, report, key, twice):
    saas(bridge, "Report Ready", {"tenant_id": tenant, "idempotency_key": key, "report": report}, twice)


def create_issues(bridge, tenant, items, key, twice):
    saas(bridge, "Action Items Ready", {"tenant_id": tenant, "idempotency_key": key, "action_items": items}, twice)


def assert_linked_both_ways(bridge, flavour, project, page_id, items, link_versions):
    page = next(p for p in jobs.pages(bridge, SPACE, flavour) if str(p["id"]) == str(page_id))
    ours = {i["fields"]["summary"]: i for i in jobs.issues(bridge, flavour, project)}
    issues = [ours[item["title"]] for item in items]
    assert len(issues) == len(items)
    for issue in issues:
        links = issue.get("remotelinks", [])
        assert len(links) == 1, (issue["key"], links)
        [link] = links
        assert link["globalId"].startswith("bridge:confluence-page:") and link["globalId"].endswith(f":{page_id}")
        assert link["object"]["url"].endswith(f"/pages/{page_id}") or link["object"]["url"].endswith(f"pageId={page_id}")
        assert link["object"]["title"] == page["title"]
        assert link["application"] == {"type": "com.atlassian.confluence", "name": "Confluence"}
        assert link["relationship"] == "Wiki Page"
        assert link["updates"] >= 0
    assert page["version"] == link_versions, f"page written {page['version']} times"
    for issue in issues:
        # The page links the issue exactly once (a smart link or a plain link on Cloud, the jira
        # macro's link or a plain link on DC: each carries the issue's browse URL once).
        assert page["body"].count(f"/browse/{issue['key']}\"") == 1, (issue["key"], page["body"])


@pytest.mark.parametrize("twice", [False, True], ids=["once", "redelivered"])
def test_page_first_then_issues(linked, twice):
    bridge, tenant, flavour, project = linked
    run = uuid.uuid4().hex[:8]
    report, items = report_with_items(run)
    publish(bridge, tenant, report, f"pub-{run}", twice)
    assert set(own_events(bridge, twice)) == {"Page Published"}
    page_id = jobs.publication_page(bridge, tenant, f"pub-{run}")
    create_issues(bridge, tenant, items, f"iss-{run}", twice)
    # The page is known: the issues got their remote links at once; the page is told once per
    # delivery of the job, and written once for the new set of links.
    kinds = own_events(bridge, twice)
    assert set(kinds) == {"Report Issues Created"}
    assert_linked_both_ways(bridge, flavour, project, page_id, items, link_versions=2)


@pytest.mark.parametrize("twice", [False, True], ids=["once", "redelivered"])
def test_issues_first_then_page(linked, twice):
    bridge, tenant, flavour, project = linked
    run = uuid.uuid4().hex[:8]
    report, items = report_with_items(run)
    create_issues(bridge, tenant, items, f"iss-{run}", twice)
    # No page yet: publish-page has nothing to write (the first publication links them).
    assert set(own_events(bridge, twice)) == {"Report Issues Created"}
    publish(bridge, tenant, report, f"pub-{run}", twice)
    page_id = jobs.publication_page(bridge, tenant, f"pub-{run}")
    # The page's first version already links the issues; its Page Published adds the remote links.
    assert set(own_events(bridge, twice)) == {"Page Published"}
    assert_linked_both_ways(bridge, flavour, project, page_id, items, link_versions=1)


def test_a_new_set_of_issues_writes_the_page_once_more(linked):
    bridge, tenant, flavour, project = linked
    run = uuid.uuid4().hex[:8]
    report, items = report_with_items(run)
    create_issues(bridge, tenant, items[:2], f"iss-{run}-1", False)
    own_events(bridge, False)
    publish(bridge, tenant, report, f"pub-{run}", False)
    own_events(bridge, False)
    page_id = jobs.publication_page(bridge, tenant, f"pub-{run}")
    create_issues(bridge, tenant, items[2:], f"iss-{run}-2", False)
    own_events(bridge, True)
    assert_linked_both_ways(bridge, flavour, project, page_id, items, link_versions=2)


@pytest.mark.parametrize("linked", ["dc"], indirect=True)
def test_a_refused_remote_link_is_recorded_and_fails_nothing(linked):
    """Without Link Issues the issues are still created, the page still links them, and the
    refusal is noted on each item's result; the connection stays connected."""
    bridge, tenant, flavour, project = linked
    run = uuid.uuid4().hex[:8]
    report, items = report_with_items(run)
    publish(bridge, tenant, report, f"pub-{run}", False)
    own_events(bridge, False)
    page_id = jobs.publication_page(bridge, tenant, f"pub-{run}")
    permit = {"flavour": "dc", "user": jobs.DC_USER, "project": project}
    everything = ["browse", "create", "assign", "delete", "edit", "link"]
    assert bridge.stack.sim("PUT", "/_sim/permissions", json=dict(permit, permissions=everything[:-1])).ok
    try:
        create_issues(bridge, tenant, items, f"iss-{run}", False)
        sent = bridge.stack.published_events()
    finally:
        assert bridge.stack.sim("PUT", "/_sim/permissions", json=dict(permit, permissions=everything)).ok
    [results] = [e["detail"]["results"] for e in sent if e["detail-type"] == "Issues Created"
                 and e["detail"]["idempotency_key"] == f"iss-{run}"]
    assert {r["status"] for r in results} == {"created"}
    assert all("may not link issues (403)" in (r["message"] or "") for r in results), results
    ours = {i["fields"]["summary"]: i for i in jobs.issues(bridge, flavour, project)}
    assert all(not ours[item["title"]].get("remotelinks") for item in items)
    connection = bridge.call("GET", f"/v1/tenants/{tenant}/connections/jira", tenant).json()
    assert connection["status"] == "connected", connection
    # The page still links them: publish-page needs no Jira permission for that.
    [linking] = [e for e in sent if e["detail-type"] == "Report Issues Created"]
    [outcome] = deliver(bridge, linking)
    assert outcome["status"] == "ok", outcome
    page = next(p for p in jobs.pages(bridge, SPACE, flavour) if str(p["id"]) == str(page_id))
    assert page["version"] == 2
    for item in items:
        assert page["body"].count(f"/browse/{ours[item['title']]['key']}\"") == 1
