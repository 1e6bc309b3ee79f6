"""`make bench`: latency of the real functions (release builds) through the local gateway against moto
and the simulator, on this machine. Prints a Markdown table for the README. Numbers include the
local gateway, moto and the simulator on the same 2 cores, so they are upper bounds for Lambda's
own overhead, not predictions of production latency (which adds network time to Atlassian)."""

from __future__ import annotations

import os
import platform
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


LATENCY_MS = 50


def large_jobs(stack, bridge, tenant, project):
    """Issue 12's jobs: 500 action items and 200 with 100 distinct assignees (cold and warm), with
    50 ms injected on every Atlassian request standing in for the network."""
    users = stack.sim("GET", f"/_sim/data/assignable?flavour=dc&project={project}").json()["items"]
    emails = [u["emailAddress"] for u in users if u.get("emailAddress")][:100]

    def job(n, with_assignees):
        items = [{"id": uuid.uuid4().hex, "title": f"Action item {i}: follow up on the retro"} for i in range(n)]
        if with_assignees:
            for i, item in enumerate(items):
                item["assignee_email"] = emails[i % len(emails)]
        return lambda: ok(bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant,
                                       json_body={"action_items": items},
                                       headers={"Idempotency-Key": uuid.uuid4().hex}))

    rows = []
    for latency in (0, LATENCY_MS):
        stack.sim("POST", "/_sim/faults", {"route": "*", "kind": "latency", "latency_ms": latency, "times": None})
        for name, n, with_assignees in (
                (f"create-issue: 500 action items, no assignees, {latency} ms latency (DC)", 500, False),
                (f"create-issue: 200 items, {len(emails)} distinct assignees, {latency} ms latency (DC)", 200, True)):
            try:
                rows.append((name, *timed(job(n, with_assignees), 3)))
            except AssertionError as e:
                # A job past the function's 30 s timeout is a result too: it goes into the table.
                print(f"{name}: {e}", file=sys.stderr)
                rows.append((name, float("nan"), float("nan"), float("nan")))
        stack.sim("DELETE", "/_sim/faults")
    return rows


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
        rows.extend(large_jobs(stack, bridge, tenant, project))
        stats = bridge.http.get(stack.gateway_url + "/_gateway/functions", timeout=10).json()

    lines = ["| operation (through the local gateway) | p50 ms | p95 ms | max ms |", "|---|---|---|---|"]
    lines += [f"| {name} | {p50:.0f} | {p95:.0f} | {worst:.0f} |" if p50 == p50 else f"| {name} | failed (past the 30 s function timeout) | | |"
              for name, p50, p95, worst in rows]
    table = "\n".join(lines)
    print(table)
    print()
    print("instances started per function:", {name: s["cold_starts"] for name, s in stats.items()})
    if "--write-readme" in sys.argv:
        write_readme(table)
    return 0


def write_readme(table: str) -> None:
    """Replaces the table between the README's bench markers, with the machine it ran on."""
    readme = REPO / "README.md"
    text = readme.read_text()
    start = text.index("<!-- bench:start")
    start = text.index("\n", start) + 1
    end = text.index("<!-- bench:end -->")
    machine = f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} {platform.system()}, {os.cpu_count()} cores."
    readme.write_text(text[:start] + table + "\n\n" + machine + "\n" + text[end:])
    print(f"wrote {readme.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
