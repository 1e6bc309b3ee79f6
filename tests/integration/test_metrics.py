"""Metrics in CloudWatch Embedded Metric Format: the EMF lines the functions write to their logs
(shared/src/metrics.rs) count what the simulator saw — jobs, pages, issues, Atlassian requests and
429s per product, token refreshes — with the tenant as a property, never a dimension."""

from __future__ import annotations

import uuid

from . import jobs
from .emf import Logs, matching, samples, total

NAMESPACE = "AtlassianBridge"  # the default of BRIDGE_METRICS_NAMESPACE
DIMENSIONS = {"Function", "Product", "ErrorCode"}
BULK = "POST /ex/jira/{cloudId}/rest/api/3/issue/bulk"


def check_shape(doc: dict) -> None:
    """The EMF specification's shape, our dimensions only, the tenant only ever a property."""
    directive = doc["_aws"]["CloudWatchMetrics"]
    assert isinstance(doc["_aws"]["Timestamp"], int)
    assert len(directive) == 1 and directive[0]["Namespace"] == NAMESPACE, doc
    sets = directive[0]["Dimensions"]
    assert sets and all(1 <= len(s) <= 30 for s in sets), doc
    for s in sets:
        assert set(s) <= DIMENSIONS, f"unexpected dimension in {doc}"
        assert all(isinstance(doc[k], str) for k in s), doc
    metrics = directive[0]["Metrics"]
    assert 1 <= len(metrics) <= 100
    for m in metrics:
        assert m["Unit"] in ("Count", "Milliseconds")
        value = doc[m["Name"]]
        assert isinstance(value, (int, float)) or (isinstance(value, list) and len(value) <= 100), doc
    allowed = {"_aws", "tenant"} | DIMENSIONS | {m["Name"] for m in metrics}
    assert set(doc) <= allowed, f"a field that is neither metric, dimension nor the tenant: {doc}"


def test_a_publish_and_an_issue_job_are_counted_in_emf(bridge):
    tenant, unset = bridge.tenant(), bridge.tenant()
    logs = Logs(bridge.stack)
    # Confluence with a token that lasts; Jira with one inside the refresh leeway, refreshed by the
    # settings check (connections) and again by the issue job (a 60 s token each time).
    assert bridge.connect(tenant, "confluence")["status"] == "connected"
    jobs.settings(bridge, tenant, "confluence", {"space_key": "SPA"})
    bridge.sim("PUT", "/_sim/oauth/config", {"access_token_ttl_seconds": 60})
    assert bridge.connect(tenant, "jira")["status"] == "connected"
    projects = bridge.stack.sim("GET", "/_sim/data/projects?flavour=cloud").json()["items"]
    project = next(p["key"] for p in projects if not p.get("team_managed") and not p.get("archived") and p["key"] != "REQ")
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": "10002"})
    bridge.sim("PUT", "/_sim/oauth/config", {"access_token_ttl_seconds": 3600})

    # The jobs, and what the simulator saw of them alone.
    refreshes_before_jobs = bridge.token_calls("refresh_token")
    bridge.sim("DELETE", "/_sim/calls")
    bridge.sim("POST", "/_sim/faults", {"route": BULK, "kind": "rate_limit", "retry_after": 1, "times": 1})
    r = jobs.publish(bridge, tenant, jobs.retrospective())
    assert r.status_code == 200, r.text
    refused = jobs.publish(bridge, unset, jobs.retrospective())
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "no_settings", refused.text
    detail = {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex,
              "action_items": [{"id": f"m-{i}", "title": f"Metric item {i}"} for i in range(3)]}
    assert jobs.event(bridge, "Action Items Ready", detail)["status"] == "ok"
    seen = bridge.sim("GET", "/_sim/calls").json()["calls"]
    refreshes_in_jobs = bridge.token_calls("refresh_token")

    docs = logs.documents()
    assert docs, "no EMF line in the functions' logs"
    for doc in docs:
        check_shape(doc)
    ours = [d for d in docs if d.get("tenant") == tenant]

    # The synchronous publish: one job run, done, one page.
    publish = [d for d in ours if d["Function"] == "publish-page"]
    assert total(publish, "JobsStarted") == 1
    assert total(publish, "JobsSucceeded") == 1
    assert total(publish, "PagesPublished") == 1
    assert not matching(publish, "JobsFailed") and not matching(publish, "JobsRetried")
    confluence_calls = [c for c in seen if c["path"].startswith("/ex/confluence/")]
    assert len(samples(publish, "AtlassianLatency", Product="confluence")) == len(confluence_calls) > 0
    # The other tenant's publish failed for good, by its code, in its own documents.
    theirs = [d for d in docs if d.get("tenant") == unset]
    assert total(theirs, "JobsStarted") == 1
    assert total(theirs, "JobsFailed", ErrorCode="no_settings") == 1
    assert total(theirs, "JobsSucceeded") == 0

    # The issue job through its event: one run, three issues, one 429 from Jira, retried.
    issue = [d for d in ours if d["Function"] == "create-issue"]
    assert total(issue, "JobsStarted") == 1
    assert total(issue, "JobsSucceeded") == 1
    assert total(issue, "ItemsCreated") == 3
    assert total(issue, "ItemsFailed") == 0
    jira_calls = [c for c in seen if c["path"].startswith("/ex/jira/")]
    assert total(issue, "AtlassianThrottled", Product="jira") == 1 == sum(c["status"] == 429 for c in jira_calls)
    assert len(samples(issue, "AtlassianLatency", Product="jira")) == len(jira_calls)
    assert samples(issue, "TenantSlotWait"), "the event was admitted into a fair-share slot"

    # Token refreshes: the issue job's, and over the whole test every refresh the simulator saw.
    assert refreshes_in_jobs == 1
    assert total(issue, "TokenRefreshes") == 1
    assert total(docs, "TokenRefreshes") == refreshes_before_jobs + refreshes_in_jobs
    assert refreshes_before_jobs >= 1, "the Jira settings check refreshed the 60 s token"
    assert total(docs, "TokenRefreshFailures") == 0

    # The tenant is a property only: in no document's dimension set, and no dimension value is it.
    for doc in docs:
        for s in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]:
            assert all(doc[k] not in (tenant, unset) for k in s)
