"""`make bench`: latency of the real functions (release builds) through the local gateway against moto
and the simulator, on this machine. Prints a Markdown table for the README. Numbers include the
local gateway, moto and the simulator on the same 2 cores, so they are upper bounds for Lambda's
own overhead, not predictions of production latency (which adds network time to Atlassian)."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.devstack import Stack
from tests.integration import jobs
from tests.integration.conftest import Bridge

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 20


def timed(fn, rounds=ROUNDS):
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)], max(samples)


def ok(response):
    assert response.status_code < 300, response.text
    return response


def main() -> int:
    rows = []
    with Stack(REPO, Path(tempfile.mkdtemp(prefix="bridge-bench-")), REPO / "target" / "release") as stack:
        bridge = Bridge(stack)
        stack.register_client()
        tenant = bridge.tenant()
        jobs.connect(bridge, tenant, "jira", "dc")
        jobs.connect(bridge, tenant, "confluence", "dc")
        project = next(p["key"] for p in stack.sim("GET", "/_sim/data/projects?flavour=dc").json()["items"]
                       if p["key"] != "REQ")
        jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": "3"})
        jobs.settings(bridge, tenant, "confluence", {"space_key": "SPA"})

        def cold_status():
            stack.recycle("connections")
            ok(bridge.call("GET", f"/v1/tenants/{tenant}/connections/jira", tenant))

        rows.append(("connections: status, cold start", *timed(cold_status, 10)))
        rows.append(("connections: status, warm", *timed(lambda: ok(bridge.call("GET", f"/v1/tenants/{tenant}/connections/jira", tenant)))))
        rows.append(("connections: verify (DC basic)", *timed(lambda: ok(bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/verify", tenant)))))
        rows.append(("discovery: projects page (DC)", *timed(lambda: ok(bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)))))
        rows.append(("discovery: fields (cached)", *timed(lambda: ok(bridge.call(
            "GET", f"/v1/tenants/{tenant}/jira/projects/{project}/issue-types/3/fields", tenant)))))
        report = jobs.retrospective(items=[f"Item {i}: something that went well" for i in range(50)])
        rows.append(("publish-page: 50-item report, page + PDF (DC)", *timed(lambda: ok(bridge.call(
            "POST", f"/v1/tenants/{tenant}/pages", tenant, json_body={**report, "report_id": uuid.uuid4().hex},
            headers={"Idempotency-Key": uuid.uuid4().hex})), 10)))
        rows.append(("create-issue: 50 action items, one bulk call (DC)", *timed(lambda: ok(bridge.call(
            "POST", f"/v1/tenants/{tenant}/issues", tenant,
            json_body={"action_items": [{"id": uuid.uuid4().hex, "title": f"Item {i}"} for i in range(50)]},
            headers={"Idempotency-Key": uuid.uuid4().hex})), 10)))
        stats = bridge.http.get(stack.gateway_url + "/_gateway/functions", timeout=10).json()

    print("| operation (through the local gateway) | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for name, p50, p95, worst in rows:
        print(f"| {name} | {p50:.0f} | {p95:.0f} | {worst:.0f} |")
    print()
    print("instances started per function:", {name: s["cold_starts"] for name, s in stats.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
