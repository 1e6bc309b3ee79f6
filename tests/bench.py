"""`make bench`: the real functions (release builds) through the local gateway against moto and the
simulator, on this machine, side by side with Python peers (issue 12). Prints Markdown tables and
the ratios; `--write-readme` puts them into the README between the bench markers.

What is timed, and how — read this before quoting a figure:

- Bridge operations and jobs: client-side wall time of the HTTP request through the local gateway
  (JWT check, API Gateway event, Lambda Runtime API, the function, moto, the simulator). A job
  answered 202 is timed until the simulator holds all of its issues (polled), so 200 and 202 are
  comparable.
- The Python peers (tests/peers: `sequential` per item, `bulk` batched without exactly-once) run
  **in this process**, timed from start to finish of the job: no gateway, no Lambda Runtime API, no
  JWT, no cold start, a warm Python. That favours the peers. They use the same moto table (under
  their own tenants) and the same simulator, with the same injected latency.
- Latency is injected on every simulator request (`{"route":"*","kind":"latency",...}`), standing
  in for the network to Atlassian; moto answers at local speed for everyone.
- Every job runs under a fresh tenant (cold caches: connection, createmeta, assignees) except the
  "warm" assignee row, the same team's second job. After each job its ledger items (`ACTION#`,
  `ISSUE#`) are deleted, untimed, so every row starts from the same small table (moto's own
  `transact_write_items` copied the whole table per action; tests/moto_serial.py now backs up only
  the items a transaction names, but the rows stay independent of each other this way).
- Cold start: the function's instances are recycled, then its first request is timed end to end
  (client side), and the gateway reports the instance's init duration (spawn to first `/next`) and
  peak RSS (`VmHWM`). The Python equivalent (tests/peers/pyfunction) is put behind the same routes
  with the gateway's code swap and timed the same way: same gateway, same Runtime API, same env,
  same secret read, same first request and answer.
- The issue sync (`sync`): 200 tenants, each connected to DC and with a few issues created
  through the API (so enrolled, as in production), two of each moved to Done by "a person in
  Jira"; then one `issue-sync` run fired as its schedule, timed client side (gateway to answer),
  against the function's 300 s timeout. One run must visit every tenant: the row says whether the
  round completed, and how many searches it took.
- The 429 storm: every 3rd `POST issue/bulk` is answered 429 `Retry-After: 1` (simulator fault
  `every: 3`) with the latency on everything else. With an every-Nth storm a client's 429 count
  grows only with the calls it makes: for 500 items (10 bulk calls) a client that retries each
  refused call once, and makes no other bulk call, gets 4 — the "minimum" in the table.
- The load (`load`): 50 tenants (Cloud OAuth, Cloud API token, DC in turn) publishing reports
  through the HTTP route at once for 60 s, each a closed loop; tests/load.py says what is timed
  and checked. It fails the bench (exit 1, README untouched) on any answer but a documented 429,
  or a publish without exactly one page. `--sections load --write-readme` rewrites only its table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests import load
from tests.devstack import Stack
from tests.integration import jobs
from tests.integration.conftest import Bridge
from tests.peers import bulk, sequential
from tests.peers.common import Job

REPO = Path(__file__).resolve().parents[1]
# The release binaries to measure (`make bench` builds them into target/release); another checkout's
# with BRIDGE_BIN_DIR, e.g. a worktree measuring the main checkout's build.
BIN_DIR = Path(os.environ.get("BRIDGE_BIN_DIR") or REPO / "target" / "release")
PY_FUNCTION = REPO / "tests" / "peers" / "pyfunction" / "bootstrap.py"
ROUNDS = 20
COLD_ROUNDS = 10
LATENCY_MS = 50
SIZES = (50, 200, 500)
ASSIGNEES = 100
BULK_ROUTE = "POST /dc/jira-dc/jira/rest/api/2/issue/bulk"
STORM_EVERY = 3
JOB_DEADLINE_S = 90                 # how long a 202-answered job may take to show all its issues


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


def python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@dataclass
class Run:
    seconds: float | None           # None: the job did not finish
    created: int
    duplicates: int
    note: str = ""
    at_least: float | None = None   # a job cut off (30 s timeout) took at least this long

    def cell(self) -> str:
        if self.seconds is None:
            return f"failed ({self.note}; {self.created} created)"
        return f"{self.seconds:.2f}" + (f" ({self.note})" if self.note else "")


class Bench:
    def __init__(self, stack: Stack, bridge: Bridge):
        self.stack, self.bridge = stack, bridge
        self.projects = [p["key"] for p in stack.sim("GET", "/_sim/data/projects?flavour=dc").json()["items"]
                         if p["key"] != "REQ"]
        self._next_project = 0
        self.ddb = stack.aws("dynamodb")

    # ------------------------------------------------------------------ setup
    def project(self) -> str:
        """A project of its own for each job, so its issues can be read back without the others'."""
        key = self.projects[self._next_project % len(self.projects)]
        self._next_project += 1
        return key

    def emails(self, project: str, n: int) -> list[str]:
        users = self.stack.sim("GET", f"/_sim/data/assignable?flavour=dc&project={project}").json()["items"]
        return [u["emailAddress"] for u in users if u.get("emailAddress")][:n]

    def tenant(self, project: str) -> str:
        tenant = self.bridge.tenant()
        jobs.connect(self.bridge, tenant, "jira", "dc")
        jobs.settings(self.bridge, tenant, "jira", {"project_key": project, "issue_type_id": "3",
                                                    "assignee_matching": "email"})
        return tenant

    def latency(self, ms: int) -> None:
        self.stack.sim("DELETE", "/_sim/faults")
        if ms:
            self.stack.sim("POST", "/_sim/faults", {"route": "*", "kind": "latency", "latency_ms": ms, "times": None})

    # ------------------------------------------------------------------ read-back and cleanup
    def issues(self, project: str, run: str) -> tuple[int, int]:
        """(distinct items created, duplicates) of one run, by its summaries in the simulator."""
        got = self.stack.sim("GET", f"/_sim/jira/issues?flavour=dc&project={project}").json()["issues"]
        summaries = [i["fields"].get("summary", "") for i in got if i["fields"].get("summary", "").startswith(run)]
        return len(set(summaries)), len(summaries) - len(set(summaries))

    def forget(self, tenant: str) -> None:
        """Delete a finished job's ledger items (untimed; see the module docstring)."""
        for prefix in ("ACTION#", "ISSUE#"):
            kwargs = {"TableName": self.stack.table_name, "ProjectionExpression": "pk, sk",
                      "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
                      "ExpressionAttributeValues": {":pk": {"S": f"TENANT#{tenant}"}, ":p": {"S": prefix}}}
            keys = []
            while True:
                page = self.ddb.query(**kwargs)
                keys += page["Items"]
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            for start in range(0, len(keys), 25):
                pending = {self.stack.table_name: [{"DeleteRequest": {"Key": k}} for k in keys[start:start + 25]]}
                while pending:
                    pending = self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    # ------------------------------------------------------------------ one job
    @staticmethod
    def items(run: str, n: int, emails: list[str]) -> list[dict]:
        items = [{"id": uuid.uuid4().hex, "title": f"{run} action item {i}: follow up on the retro"} for i in range(n)]
        for i, item in enumerate(items):
            if emails:
                item["assignee_email"] = emails[i % len(emails)]
        return items

    def bridge_job(self, n: int, assignees: int, tenant: str | None = None, project: str | None = None) -> Run:
        if tenant is None:
            project = self.project()
            tenant = self.tenant(project)
        run = "b" + uuid.uuid4().hex[:10]
        items = self.items(run, n, self.emails(project, assignees) if assignees else [])
        start = time.perf_counter()
        r = self.bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant, json_body={"action_items": items},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
        answered = time.perf_counter() - start
        note = ""
        if r.status_code == 202:
            note = f"202 after {answered:.1f} s"
            while time.perf_counter() - start < JOB_DEADLINE_S and self.issues(project, run)[0] < n:
                time.sleep(0.2)
        created, duplicates = self.issues(project, run)
        seconds = time.perf_counter() - start
        # The ledger goes; what the team's next job may reuse (caches: other items) stays.
        self.forget(tenant)
        if r.status_code >= 300:
            reason = "past the 30 s function timeout" if r.status_code in (502, 503, 504) else r.text[:80]
            return Run(None, created, duplicates, f"{r.status_code} after {answered:.1f} s, {reason}",
                       at_least=answered if r.status_code in (503, 504) else None)
        if created < n:
            return Run(None, created, duplicates, f"{r.status_code}, only {created}/{n} created")
        return Run(seconds, created, duplicates, note)

    def peer_job(self, peer, n: int, assignees: int, retry_429: bool = False) -> Run:
        project = self.project()
        job = Job(self.stack.sim_url + "/dc/jira-dc/jira", jobs.DC_USER, jobs.DC_PASSWORD, project, "3",
                  self.ddb, self.stack.table_name, retry_429=retry_429)
        run = "p" + uuid.uuid4().hex[:10]
        items = self.items(run, n, self.emails(project, assignees) if assignees else [])
        start = time.perf_counter()
        try:
            outcomes = peer.run(job, items)
        except Exception as exc:  # noqa: BLE001 - a failed peer is a row too
            seconds, note = None, f"{type(exc).__name__}: {str(exc)[:80]}"
        else:
            seconds = time.perf_counter() - start
            failed = [o for o in outcomes if o.error]
            note = f"{len(failed)} failed" if failed else ""
            if failed:
                seconds = None
        created, duplicates = self.issues(project, run)
        self.forget(job.tenant)
        return Run(seconds, created, duplicates, note)


# ---------------------------------------------------------------------------- sections
def basic_operations(stack, bridge, tenant, project) -> list[tuple]:
    rows = [("connections: status, warm", *timed(lambda: ok(bridge.call("GET", f"/v1/tenants/{tenant}/connections/jira", tenant))))]
    rows.append(("connections: verify (DC basic)", *timed(lambda: ok(bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/verify", tenant)))))
    rows.append(("discovery: projects page (DC)", *timed(lambda: ok(bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)))))
    rows.append(("discovery: fields (cached)", *timed(lambda: ok(bridge.call(
        "GET", f"/v1/tenants/{tenant}/jira/projects/{project}/issue-types/3/fields", tenant)))))
    report = jobs.retrospective(items=[f"Item {i}: something that went well" for i in range(50)])
    rows.append(("publish-page: 50-item report, page + PDF (DC)", *timed(lambda: ok(bridge.call(
        "POST", f"/v1/tenants/{tenant}/pages", tenant, json_body={**report, "report_id": uuid.uuid4().hex},
        headers={"Idempotency-Key": uuid.uuid4().hex})), 10)))
    return rows


def job_matrix(bench: Bench, sizes, latencies) -> list[dict]:
    """Every job size, without and with distinct assignees, at each latency: bridge and both peers."""
    bench.bridge_job(1, 0)          # create-issue warm, as the peers are (their cold start is not timed)
    rows = []
    for latency in latencies:
        bench.latency(latency)
        for n in sizes:
            for assignees in (0, min(ASSIGNEES, n)):
                row = {"n": n, "assignees": assignees, "latency": latency}
                row["bridge"] = bench.bridge_job(n, assignees)
                row["sequential"] = bench.peer_job(sequential, n, assignees)
                row["bulk"] = bench.peer_job(bulk, n, assignees)
                print(f"  {n} items, {assignees} assignees, {latency} ms: "
                      + ", ".join(f"{k} {row[k].cell()}" for k in ("bridge", "sequential", "bulk")), file=sys.stderr)
                rows.append(row)
    bench.latency(0)
    return rows


def assignee_cache(bench: Bench) -> dict:
    """The same team's job twice: the first finds every assignee (cold cache), the second should
    find them remembered (warm). 500 items, 100 distinct emails, 50 ms."""
    bench.latency(LATENCY_MS)
    project = bench.project()
    tenant = bench.tenant(project)
    cold = bench.bridge_job(500, ASSIGNEES, tenant, project)
    warm = bench.bridge_job(500, ASSIGNEES, tenant, project)
    plain = bench.bridge_job(500, 0)
    bench.latency(0)
    return {"cold": cold, "warm": warm, "none": plain}


def storm(bench: Bench) -> dict:
    """500 items, every 3rd bulk create answered 429 Retry-After 1, 50 ms on everything else."""
    out = {}
    for name, job in (("bridge", lambda: bench.bridge_job(500, 0)),
                      ("bulk peer", lambda: bench.peer_job(bulk, 500, 0, retry_429=True))):
        bench.stack.sim("DELETE", "/_sim/faults")
        bench.stack.sim("DELETE", "/_sim/calls")
        bench.stack.sim("POST", "/_sim/faults", {"route": BULK_ROUTE, "kind": "rate_limit", "retry_after": 1,
                                                 "every": STORM_EVERY, "times": None})
        bench.stack.sim("POST", "/_sim/faults", {"route": "*", "kind": "latency", "latency_ms": LATENCY_MS, "times": None})
        run = job()
        storm_fault = bench.stack.sim("GET", "/_sim/faults").json()["faults"][0]
        calls = bench.stack.sim("GET", f"/_sim/calls?route={BULK_ROUTE}").json()["calls"]
        out[name] = {"run": run, "injected": storm_fault["hits"], "bulk_calls": len(calls),
                     "received": sum(1 for c in calls if c.get("status") == 429)}
    bench.stack.sim("DELETE", "/_sim/faults")
    return out


SYNC_TENANTS = 200
SYNC_ISSUES = 3                     # created per tenant
SYNC_CHANGED = 2                    # of them moved to Done before the run
SYNC_TIMEOUT_S = 300                # infra/lib/constructs/functions.ts TIMEOUT_SECONDS['issue-sync']


def sync(bench: Bench, tenants: int = SYNC_TENANTS) -> dict:
    """One issue-sync run over `tenants` tenants with issues (see the module docstring)."""
    bench.latency(0)
    project = bench.project()
    keys = []
    for n in range(tenants):
        tenant = bench.tenant(project)
        r = bench.bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant,
                              json_body={"action_items": bench.items(f"sync-{n}", SYNC_ISSUES, [])},
                              headers={"Idempotency-Key": uuid.uuid4().hex})
        ok(r)
        keys += [x["key"] for x in r.json()["results"][:SYNC_CHANGED]]
    bench.stack.sim("POST", "/_sim/clock/advance", {"seconds": 60})
    for key in keys:
        bench.stack.sim("POST", f"/_sim/jira/issues/{key}/transition?flavour=dc", {"status": "Done"})
    bench.stack.sim("DELETE", "/_sim/jira/searches")
    started = time.monotonic()
    result = bench.stack.fire_schedule("issue-sync")
    seconds = time.monotonic() - started
    report = result.get("response") or {}
    searches = bench.stack.sim("GET", "/_sim/jira/searches").json()["count"]
    return {"tenants": tenants, "seconds": seconds, "status": result.get("status"), "report": report,
            "searches": searches, "changed": len(keys)}


def first_requests(tenant: str, project: str) -> dict:
    return {
        "connections": ("GET", f"/v1/tenants/{tenant}/connections/jira", None, "status"),
        "discovery": ("GET", f"/v1/tenants/{tenant}/jira/projects", None, "projects (DC)"),
        "publish-page": ("GET", f"/v1/tenants/{tenant}/publications/bench-none", None, "publication, none"),
        "create-issue": ("DELETE", f"/v1/tenants/{tenant}/issues/{project}-999999", None, "delete, not ours"),
        "oauth-callback": ("POST", f"/v1/tenants/{tenant}/connections/jira/oauth/start",
                           {"return_url": "https://app.example.test/bench"}, "OAuth start"),
    }


def cold_starts(stack, bridge, tenant, project, rounds=COLD_ROUNDS) -> list[dict]:
    """Per function: first-request latency after a recycle, init duration and the instance's peak
    RSS — ours, then the Python equivalent behind the same routes. Also our peak RSS over the
    whole bench so far (every instance of the function)."""
    gateway = stack.gateway_url + "/_gateway/functions"
    rows = []
    for function, (method, path, body, what) in first_requests(tenant, project).items():
        before = bridge.http.get(gateway, timeout=10).json()[function]
        row = {"function": function, "request": what, "bench_peak_kib": before["peak_rss_kib"]}
        original = before["command"]

        def measure(label):
            latencies, inits, peaks, statuses = [], [], [], set()
            for _ in range(rounds):
                stack.recycle(function)
                start = time.perf_counter()
                r = bridge.call(method, path, tenant, json_body=body)
                latencies.append((time.perf_counter() - start) * 1000)
                statuses.add(r.status_code)
                [inst] = bridge.http.get(gateway, timeout=10).json()[function]["instance_stats"]
                inits.append(inst["init_ms"])
                peaks.append(inst["peak_rss_kib"])
            row[label] = {"p50": statistics.median(latencies), "max": max(latencies),
                          "init": statistics.median(inits), "peak_kib": max(peaks), "statuses": statuses}

        measure("bridge")
        ok(bridge.http.put(f"{gateway}/{function}/code", json={"command": [python(), str(PY_FUNCTION), "function.handler"]},
                           timeout=60))
        try:
            measure("python")
        finally:
            ok(bridge.http.put(f"{gateway}/{function}/code", json={"command": original}, timeout=60))
        if row["bridge"]["statuses"] != row["python"]["statuses"]:
            print(f"  {function}: the Python equivalent answered {row['python']['statuses']}, ours "
                  f"{row['bridge']['statuses']}", file=sys.stderr)
        rows.append(row)
    return rows


def big_report() -> dict:
    """The same 1,000-item retrospective as `shared/examples/render_report.rs`: ten sections of
    95 long items and 50 action items."""
    sentence = ("The release train slipped because the integration environment was shared by three teams, "
                "and nobody owned the schedule; we agreed to publish a calendar and to rotate ownership weekly.")
    report = jobs.retrospective(report_id="bench-" + uuid.uuid4().hex[:8])
    report["sections"] = [{"title": f"Section {s}: what we saw",
                           "items": [{"text": f"{sentence} (section {s}, item {i})", "votes": (i * 7 + s) % 13,
                                      "author": "Ben"} for i in range(95)]} for s in range(10)]
    report["action_items"] = [{"id": f"a-{i}", "title": f"Follow up on item {i}: {sentence}", "due_date": "2026-12-31"}
                              for i in range(50)]
    return report


def reports(stack, bridge, tenant) -> dict:
    """Issue 12's reports at size: the renderers' time and CPU on a 1,000-item report (the example
    binary, release build), and publish-page publishing it through the gateway — page and PDF —
    from a fresh instance, with that instance's peak RSS."""
    example = BIN_DIR / "examples" / "render_report"
    rendered = json.loads(subprocess.run([str(example)], check=True, capture_output=True, text=True)
                          .stdout.strip().splitlines()[-1])
    gateway = stack.gateway_url + "/_gateway/functions"
    latencies, peaks = [], []
    for _ in range(3):
        stack.recycle("publish-page")
        start = time.perf_counter()
        ok(bridge.call("POST", f"/v1/tenants/{tenant}/pages", tenant, json_body=big_report(),
                       headers={"Idempotency-Key": uuid.uuid4().hex}))
        latencies.append(time.perf_counter() - start)
        [inst] = bridge.http.get(gateway, timeout=10).json()["publish-page"]["instance_stats"]
        peaks.append(inst["peak_rss_kib"])
    return {**rendered, "publish_s": statistics.median(latencies), "peak_kib": max(peaks)}


# ---------------------------------------------------------------------------- tables
def mib(kib) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f}"


def ratio(a, b) -> str:
    """a / b as "N×", or "—" when either is missing."""
    if a is None or b is None or b == 0 or (isinstance(a, float) and math.isnan(a)):
        return "—"
    value = a / b
    return f"{value:.1f}×" if value >= 1.95 else f"{value:.2f}×"


def job_ratio(a: Run, b: Run) -> str:
    """a's time / b's, or a bound when one of them was cut off at the timeout."""
    if a.seconds is not None and b.seconds is not None:
        return ratio(a.seconds, b.seconds)
    if a.seconds is None and a.at_least is not None and b.seconds is not None:
        return "≥ " + ratio(a.at_least, b.seconds)
    if b.seconds is None and b.at_least is not None and a.seconds is not None:
        return "≤ " + ratio(a.seconds, b.at_least)
    return "—"


def render(basic, matrix, cache, storm_rows, cold, report=None, sync_row=None) -> tuple[str, list[str]]:
    out, ratios = [], []
    if sync_row:
        r = sync_row["report"]
        out += ["| issue sync: one scheduled run | tenants visited | round complete | changes announced | "
                "Jira searches | run s | ÷ the 300 s timeout |", "|---|---|---|---|---|---|---|",
                f"| {sync_row['tenants']} tenants, {SYNC_ISSUES} issues each, {SYNC_CHANGED} each moved to Done (DC) | "
                f"{r.get('tenants_visited', '—')} | {'yes' if r.get('round_complete') else 'no'} | "
                f"{r.get('changes', '—')} | {sync_row['searches']} | {sync_row['seconds']:.1f} | "
                f"{ratio(sync_row['seconds'], SYNC_TIMEOUT_S)} |", ""]
        ratios.append(f"issue sync: {sync_row['tenants']} tenants in one run took {sync_row['seconds']:.1f} s "
                      f"({ratio(sync_row['seconds'], SYNC_TIMEOUT_S)} of the timeout), status {sync_row['status']}")
    if report:
        cpu = "—" if report["cpu_ms"] is None else f"{report['cpu_ms']:.0f}"
        out += ["| 1,000-item retrospective (Latin script) | page ms | PDF ms | CPU ms, page + PDF | page KiB | PDF KiB | "
                "publish through the gateway, cold instance, s | publish-page peak RSS MiB |",
                "|---|---|---|---|---|---|---|---|",
                f"| {report['items']} items | {report['page_ms']:.0f} | {report['pdf_ms']:.0f} | {cpu} | "
                f"{report['page_bytes'] / 1024:.0f} | {report['pdf_bytes'] / 1024:.0f} | {report['publish_s']:.2f} | "
                f"{mib(report['peak_kib'])} |", ""]
        ratios.append(f"1,000-item report: {cpu} ms of CPU for page + PDF (target < 100), "
                      f"publish-page peak RSS {mib(report['peak_kib'])} MiB (target < 64)")
        mixed = report.get("mixed")
        if mixed:
            # The same size in every script a team writes (CJK, Arabic, Hebrew, Devanagari, Thai,
            # emoji, Greek, Cyrillic, mixed right-to-left lines): issue 17's 150 ms budget.
            mixed_cpu = "—" if mixed["cpu_ms"] is None else f"{mixed['cpu_ms']:.0f}"
            out += ["| 1,000-item retrospective (mixed scripts) | page ms | PDF ms | ÷ the 150 ms budget | "
                    "CPU ms, page + PDF | page KiB | PDF KiB | CJK font read, once per instance, ms |",
                    "|---|---|---|---|---|---|---|---|",
                    f"| {report['items']} items | {mixed['page_ms']:.0f} | {mixed['pdf_ms']:.0f} | "
                    f"{ratio(mixed['pdf_ms'], mixed['budget_ms'])} | {mixed_cpu} | {mixed['page_bytes'] / 1024:.0f} | "
                    f"{mixed['pdf_bytes'] / 1024:.0f} | {mixed['cjk_load_ms']:.0f} |", ""]
            ratios.append(f"1,000-item mixed-script report: PDF {mixed['pdf_ms']:.0f} ms "
                          f"({ratio(mixed['pdf_ms'], mixed['budget_ms'])} of the 150 ms budget), "
                          f"CJK font read in {mixed['cjk_load_ms']:.0f} ms")
    if basic:
        out += ["| operation (through the local gateway) | p50 ms | p95 ms | max ms |", "|---|---|---|---|"]
        out += [f"| {name} | {p50:.0f} | {p95:.0f} | {worst:.0f} |" for name, p50, p95, worst in basic]
        out.append("")
    if matrix:
        out += ["| create-issue job (DC) | latency | bridge s | sequential peer s | bulk peer s | "
                "sequential ÷ bridge | bridge ÷ bulk |", "|---|---|---|---|---|---|---|"]
        for r in matrix:
            b, s, k = r["bridge"], r["sequential"], r["bulk"]
            what = f"{r['n']} items, " + (f"{r['assignees']} distinct assignees" if r["assignees"] else "no assignees")
            faster, slower = job_ratio(s, b), job_ratio(b, k)
            out.append(f"| {what} | {r['latency']} ms | {b.cell()} | {s.cell()} | {k.cell()} | {faster} | {slower} |")
            ratios.append(f"{what}, {r['latency']} ms: sequential peer's time ÷ bridge's = {faster}; "
                          f"bridge's ÷ bulk peer's = {slower}")
        out.append("")
    if cache:
        none = cache["none"]
        out += [f"| 500 items, {ASSIGNEES} distinct assignees, {LATENCY_MS} ms (DC) | bridge s | ÷ no-assignee job |",
                "|---|---|---|",
                f"| cold assignee cache (the team's first job) | {cache['cold'].cell()} | {job_ratio(cache['cold'], none)} |",
                f"| warm assignee cache (the same team's next job) | {cache['warm'].cell()} | {job_ratio(cache['warm'], none)} |",
                f"| no assignees (for comparison) | {none.cell()} | 1.00× |", ""]
        ratios.append(f"assignee cache: the warm job's time ÷ the no-assignee job's = {job_ratio(cache['warm'], none)}, "
                      f"the cold job's = {job_ratio(cache['cold'], none)}")
    if storm_rows:
        out += [f"| 429 storm: 500 items, every {STORM_EVERY}rd bulk create 429 `Retry-After: 1`, {LATENCY_MS} ms | s | "
                "issues created | duplicates | bulk calls | 429s injected | 429s received | ÷ minimum (4) |",
                "|---|---|---|---|---|---|---|---|"]
        for name, s in storm_rows.items():
            out.append(f"| {name} | {s['run'].cell()} | {s['run'].created} | {s['run'].duplicates} | {s['bulk_calls']} | "
                       f"{s['injected']} | {s['received']} | {ratio(s['received'], 4)} |")
            ratios.append(f"429 storm, {name}: {s['received']} 429s received for {s['injected']} injected, "
                          f"{s['run'].duplicates} duplicates")
        out.append("")
    if cold:
        out += ["| cold start: first request after a recycle | bridge p50 ms | Python p50 ms | Python ÷ bridge | "
                "bridge init ms | Python init ms | Python ÷ bridge | bridge peak RSS MiB | Python peak RSS MiB | "
                "Python ÷ bridge | bridge peak RSS over the bench MiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in cold:
            b, p = r["bridge"], r["python"]
            out.append(f"| {r['function']}: {r['request']} | {b['p50']:.0f} | {p['p50']:.0f} | {ratio(p['p50'], b['p50'])} | "
                       f"{b['init']:.0f} | {p['init']:.0f} | {ratio(p['init'], b['init'])} | {mib(b['peak_kib'])} | "
                       f"{mib(p['peak_kib'])} | {ratio(p['peak_kib'], b['peak_kib'])} | {mib(r['bench_peak_kib'])} |")
            ratios.append(f"{r['function']}: Python's cold first request ÷ ours = {ratio(p['p50'], b['p50'])} "
                          f"(init {ratio(p['init'], b['init'])}), peak RSS {ratio(p['peak_kib'], b['peak_kib'])}")
        out.append("")
    return "\n".join(out).rstrip() + "\n", ratios


def main() -> int:
    parser = argparse.ArgumentParser(description="make bench: the bridge side by side with Python peers")
    parser.add_argument("--write-readme", action="store_true", help="write the tables into README.md")
    parser.add_argument("--sections", default="basic,reports,jobs,cache,storm,sync,load,cold",
                        help="comma-separated subset of basic,reports,jobs,cache,storm,sync,load,cold (default: all); "
                             "with --write-readme, `load` alone rewrites only its own table")
    parser.add_argument("--sync-tenants", type=int, default=SYNC_TENANTS)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="job sizes (default 50,200,500)")
    parser.add_argument("--latencies", default=f"0,{LATENCY_MS}", help="injected latencies, ms (default 0,50)")
    parser.add_argument("--cold-rounds", type=int, default=COLD_ROUNDS)
    parser.add_argument("--load-tenants", type=int, default=load.TENANTS, help="tenants publishing at once (default 50)")
    parser.add_argument("--load-seconds", type=float, default=load.SECONDS, help="how long they publish (default 60)")
    parser.add_argument("--load-inflight", type=int, default=1, help="publishes in flight per tenant (default 1)")
    parser.add_argument("--load-slots", type=int, default=None,
                        help="publish-page's BRIDGE_TENANT_SLOTS during the load (default: the stack's 64; "
                             "production's is 4)")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    started = time.monotonic()

    basic, matrix, cache, storm_rows, cold, report, sync_row, load_result = [], [], {}, {}, [], None, None, None
    with Stack(REPO, Path(tempfile.mkdtemp(prefix="bridge-bench-")), BIN_DIR, deliver_own_events=True) as stack:
        bridge = Bridge(stack)
        stack.register_client()
        bench = Bench(stack, bridge)
        project = bench.project()
        tenant = bench.tenant(project)
        jobs.connect(bridge, tenant, "confluence", "dc")
        jobs.settings(bridge, tenant, "confluence", {"space_key": "SPA"})
        if "basic" in sections:
            print("basic operations", file=sys.stderr)
            basic = basic_operations(stack, bridge, tenant, project)
        if "reports" in sections:
            print("reports at size: 1,000 items", file=sys.stderr)
            report = reports(stack, bridge, tenant)
        if "jobs" in sections:
            print("create-issue jobs: bridge, sequential peer, bulk peer", file=sys.stderr)
            matrix = job_matrix(bench, [int(s) for s in args.sizes.split(",")],
                                [int(ms) for ms in args.latencies.split(",")])
        if "cache" in sections:
            print("assignee cache: cold, warm", file=sys.stderr)
            cache = assignee_cache(bench)
        if "storm" in sections:
            print("429 storm", file=sys.stderr)
            storm_rows = storm(bench)
        if "sync" in sections:
            print(f"issue sync: {args.sync_tenants} tenants in one run", file=sys.stderr)
            sync_row = sync(bench, args.sync_tenants)
        if "load" in sections:
            print(f"load: {args.load_tenants} tenants publishing for {args.load_seconds:g} s", file=sys.stderr)
            bench.latency(0)
            load_result = load.run(bridge, args.load_tenants, args.load_seconds,
                                   log=lambda line: print(line, file=sys.stderr), inflight=args.load_inflight,
                                   slots=args.load_slots)
        if "cold" in sections:
            # Last: our peak RSS over the bench is read before the Python code takes the functions' place.
            print("cold starts: bridge, Python", file=sys.stderr)
            cold = cold_starts(stack, bridge, tenant, project, args.cold_rounds)
        stats = bridge.http.get(stack.gateway_url + "/_gateway/functions", timeout=10).json()

    table, ratios = render(basic, matrix, cache, storm_rows, cold, report, sync_row)
    load_table = None
    if load_result is not None:
        load_table, load_lines = load.render(load_result)
        ratios += load_lines
    print(table)
    if load_table:
        print(load_table)
    print("ratios:")
    for line in ratios:
        print("  " + line)
    print("instances started per function:", {name: s["cold_starts"] for name, s in stats.items()})
    print(f"bench took {time.monotonic() - started:.0f} s")
    failures = load_result.failures() if load_result is not None else []
    if failures:
        print(f"load FAILED ({len(failures)}), README not written:", file=sys.stderr)
        for line in failures[:50]:
            print("  " + line, file=sys.stderr)
        return 1
    if args.write_readme:
        # Only the load section run: the other tables stay as they were measured.
        write_readme(table if sections - {"load"} else None, load_table)
    return 0


LOAD_START, LOAD_END = "<!-- bench:load:start -->", "<!-- bench:load:end -->"


def write_readme(table: str | None, load_table: str | None = None) -> None:
    """Replaces the tables between the README's bench markers, with the machine it ran on. The load
    table has markers of its own inside them (with its own machine line), so either part can be
    rewritten alone: None keeps that part as it is."""
    readme = REPO / "README.md"
    text = readme.read_text()
    start = text.index("<!-- bench:start")
    start = text.index("\n", start) + 1
    end = text.index("<!-- bench:end -->")
    body, old_load = text[start:end], ""
    if LOAD_START in body:
        at, until = body.index(LOAD_START), body.index(LOAD_END) + len(LOAD_END) + 1
        body, old_load = body[:at] + body[until:], body[at:until]
    machine = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} {platform.system()}, "
               f"{os.cpu_count()} cores, Python {platform.python_version()}.")
    main_part = body.rstrip("\n") + "\n" if table is None else table + "\n" + machine + "\n"
    load_part = old_load if load_table is None else f"{LOAD_START}\n{load_table}\n{machine}\n{LOAD_END}\n"
    readme.write_text(text[:start] + main_part + ("\n" + load_part if load_part else "") + text[end:])
    print(f"wrote {readme.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
