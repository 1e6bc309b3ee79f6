"""The fault campaign: a realistic mix through the local gateway while the simulator injects
seeded random faults (tests/sim/faults.py `Chaos`) and the gateway invokes event targets as
Lambda's asynchronous invocation does (retries, DLQ), duplicates deliveries and kills instances
(tests/gateway/asyncinvoke.py); then invariants against the simulator's and moto's state.

    python -m tests.chaos --seed 1 --tenants 20 --publishes 200 --items 2000

Exit status 0 when every invariant holds; otherwise the violations and how to reproduce.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
SPACE = "SPA"
TASK = {"cloud": "10002", "dc": "3"}
FLAVOURS = ("cloud_oauth", "cloud_token", "dc")
RETRYABLE_HTTP = {429, 500, 502, 503, 504}
# The most token refreshes one invocation makes: its grant's refresh when due, and one more after
# an access token refused with 401 (expired early). What a killed invocation had recorded is lost
# with it (metrics are written when an invocation ends), so the metrics may miss at most this many
# refreshes per killed or timed-out invocation.
MAX_REFRESHES_PER_INVOCATION = 2


@dataclass
class Config:
    seed: int = 1
    tenants: int = 6
    publishes: int = 12
    items: int = 60
    batch: int = 10
    workers: int = 6
    probability: float = 0.2
    duplicate_probability: float = 0.1
    kill_probability: float = 0.05
    http_attempts: int = 6
    # Access tokens that live 10 s past the functions' 300 s refresh leeway: the refresh-token
    # chain (rotation on every refresh) is exercised all through the run, not once an hour.
    token_ttl_seconds: int = 310


@dataclass
class Tenant:
    id: str
    flavour: str                 # cloud_oauth | cloud_token | dc
    project: str = ""

    @property
    def data_flavour(self) -> str:
        return "dc" if self.flavour == "dc" else "cloud"


@dataclass
class Report:
    tenant: Tenant
    key: str
    report: dict
    channel: str                 # event | http
    outcome: str = "pending"     # ok | dead_lettered | failed:<reason>
    event: dict | None = None


@dataclass
class ItemJob:
    tenant: Tenant
    key: str
    items: list[dict]
    channel: str
    outcome: str = "pending"
    results: dict = field(default_factory=dict)   # action_item_id -> last ItemResult
    event: dict | None = None


class Counters:
    def __init__(self):
        self._lock = threading.Lock()
        self.c = collections.Counter()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.c[key] += n


class Campaign:
    def __init__(self, stack, cfg: Config, out=sys.stdout):
        from tests.integration.conftest import Bridge
        self.stack, self.cfg, self.out = stack, cfg, out
        self.bridge = Bridge(stack)
        self.rng = random.Random(cfg.seed)
        self.run = uuid.uuid4().hex[:6]
        self.n = Counters()
        self.tenants: list[Tenant] = []
        self.reports: list[Report] = []
        self.jobs: list[ItemJob] = []
        self.violations: list[str] = []
        self.faults_injected = 0
        self.moto_latency: dict = {}
        self.logs = None             # the functions' logs from the start of the run (EMF metrics)

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from tests.integration.emf import Logs
        self.logs = Logs(self.stack)
        self.stack.sim("POST", "/_sim/reset")
        self.stack.register_client()
        r = self.stack.sim("PUT", "/_sim/oauth/config", {"access_token_ttl_seconds": self.cfg.token_ttl_seconds})
        assert r.status_code == 200, r.text
        self.stack.published_events()
        for fn in self.stack.dlq_urls:
            self.stack.dead_letters(fn)

    def connect_tenants(self) -> None:
        """Connects every tenant while the faults are on, as a SaaS's admins do: an attempt that
        fails (a fault reached the flow) is tried again from the start, as a person clicks again."""
        from tests.integration import jobs, registration as reg
        b = self.bridge
        projects = {f: self.stack.sim("GET", f"/_sim/data/projects?flavour={f}").json()["items"]
                    for f in ("cloud", "dc")}
        for i in range(self.cfg.tenants):
            t = Tenant(b.tenant(), FLAVOURS[i % len(FLAVOURS)])
            for product in ("confluence", "jira"):
                self.n.add("connects")
                if t.flavour == "cloud_oauth":
                    self._until_done(f"connect {t.id} {product}",
                                     lambda: b.connect(t.id, product)["status"] == "connected")
                elif t.flavour == "cloud_token":
                    self._until_done(f"connect {t.id} {product}", lambda: reg.register(b, t.id, product, "api_token"))
                else:
                    self._until_done(f"connect {t.id} {product}", lambda: jobs.connect_dc(b, t.id, product) or True)
            self._until_done(f"settings {t.id} confluence",
                             lambda: jobs.settings(b, t.id, "confluence", {"space_key": SPACE}) or True)
            t.project = next(p["key"] for p in projects[t.data_flavour]
                             if not p.get("team_managed") and not p.get("archived") and p["key"] != "REQ")
            self._until_done(f"settings {t.id} jira", lambda: jobs.settings(
                b, t.id, "jira", {"project_key": t.project, "issue_type_id": TASK[t.data_flavour],
                                  "labels": ["chaos"]}) or True)
            self.tenants.append(t)

    def _until_done(self, what: str, attempt, tries: int = 12) -> None:
        last = None
        for n in range(tries):
            if n:
                self.n.add("connect_retries")
                time.sleep(min(2.0, 0.1 * 2 ** n))   # a person's pause before clicking again
            try:
                if attempt():
                    return
                last = "not connected"
            except (AssertionError, requests.RequestException, KeyError, ValueError) as exc:
                last = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise AssertionError(f"{what}: still failing after {tries} attempts ({last})")

    def plan(self) -> None:
        if not self.tenants:
            return   # every connect failed: a violation already says so
        from tests.integration import jobs as j
        for i in range(self.cfg.publishes):
            t = self.tenants[i % len(self.tenants)]
            rid = f"r-{self.run}-{i}"
            make = j.retrospective if i % 2 == 0 else j.health_check
            report = make(rid)
            report["title"] = f"Chaos {self.run} report {i}"
            self.reports.append(Report(t, uuid.uuid4().hex, report, "event" if self.rng.random() < 0.5 else "http"))
        count = 0
        while count < self.cfg.items:
            t = self.tenants[len(self.jobs) % len(self.tenants)]
            size = min(self.cfg.batch, self.cfg.items - count)
            items = [{"id": f"ai-{count + k}", "title": f"Chaos {self.run} item {count + k}",
                      "description": f"Item {count + k} of the fault campaign"} for k in range(size)]
            count += size
            self.jobs.append(ItemJob(t, uuid.uuid4().hex, items, "event" if self.rng.random() < 0.5 else "http"))

    # ------------------------------------------------------------------ chaos on/off
    def chaos_on(self) -> None:
        r = self.stack.sim("PUT", "/_sim/chaos", {"seed": self.cfg.seed, "probability": self.cfg.probability,
                                                 "timeout_ms": 1500, "latency_ms": 300, "retry_after": 1})
        assert r.status_code == 200, r.text
        r = requests.put(self.stack.gateway_url + "/_gateway/chaos", timeout=10, json={
            "seed": self.cfg.seed, "backoff_ms": [100, 200],
            "duplicate_probability": self.cfg.duplicate_probability,
            "kill_probability": self.cfg.kill_probability, "kill_max_ms": 1500})
        assert r.status_code == 200, r.text
        # moto slowed: a fifth of AWS requests (DynamoDB, Secrets Manager, KMS, SQS) answer late.
        r = requests.put(self.stack.moto_url + "/_serial/latency", timeout=10, json={
            "seed": self.cfg.seed, "probability": self.cfg.probability, "min_ms": 5, "max_ms": 150})
        assert r.status_code == 200, r.text

    def chaos_off(self) -> tuple[dict, dict]:
        sim = self.stack.sim("DELETE", "/_sim/chaos").json()["chaos"] or {}
        gw = requests.delete(self.stack.gateway_url + "/_gateway/chaos", timeout=10).json()["chaos"] or {}
        self.moto_latency = requests.delete(self.stack.moto_url + "/_serial/latency", timeout=10).json()["latency"] or {}
        return sim, gw

    # ------------------------------------------------------------------ the mix
    def _http(self, method: str, path: str, tenant: Tenant, body=None, key: str | None = None):
        """A client that retries what is retryable with the same Idempotency-Key, as the SaaS does."""
        headers = {"Idempotency-Key": key} if key else {}
        last = None
        for attempt in range(self.cfg.http_attempts):
            if attempt:
                self.n.add("client_retries")
            try:
                last = self.bridge.call(method, path, tenant.id, json_body=body, headers=dict(headers))
            except requests.RequestException as exc:
                last = exc
                continue
            if last.status_code not in RETRYABLE_HTTP:
                return last
            time.sleep(min(2.0, 0.2 * 2 ** attempt))   # a client's backoff, not a synchronisation
        return last

    def _event(self, detail_type: str, detail: dict) -> list[dict]:
        r = self.bridge.http.post(self.stack.gateway_url + "/_gateway/events", timeout=600, json={
            "Source": "saas.retro", "DetailType": detail_type, "Detail": json.dumps(detail)})
        r.raise_for_status()
        return r.json()["invocations"]

    @staticmethod
    def _event_outcome(invocations: list[dict]) -> str:
        if any(i["status"] == "ok" for i in invocations):
            return "ok"
        return "dead_lettered" if all(i.get("dead_lettered") for i in invocations) else "lost_in_gateway"

    def discovery_walk(self, t: Tenant) -> None:
        for path in ("/confluence/spaces", "/jira/projects", f"/jira/projects/{t.project}/issue-types"):
            self.n.add("discovery_calls")
            r = self._http("GET", f"/v1/tenants/{t.id}{path}", t)
            self.n.add("discovery_ok" if not isinstance(r, Exception) and r.status_code == 200 else "discovery_failed")

    def publish(self, rep: Report) -> None:
        self.n.add(f"publishes_{rep.channel}")
        self._publish(rep)

    def _publish(self, rep: Report) -> None:
        if rep.channel == "event":
            rep.event = {"tenant_id": rep.tenant.id, "idempotency_key": rep.key, "report": rep.report}
            rep.outcome = self._event_outcome(self._event("Report Ready", rep.event))
            return
        r = self._http("POST", f"/v1/tenants/{rep.tenant.id}/pages", rep.tenant, rep.report, rep.key)
        if isinstance(r, Exception) or r.status_code in RETRYABLE_HTTP:
            rep.outcome = "gave_up"
        elif r.status_code == 200:
            rep.outcome = "ok"
        else:
            rep.outcome = f"failed:{r.status_code} {r.text[:200]}"

    def item_job(self, job: ItemJob) -> None:
        self.n.add(f"item_jobs_{job.channel}")
        self.n.add("action_items", len(job.items))
        body = {"action_items": job.items}
        if job.channel == "event":
            job.event = {"tenant_id": job.tenant.id, "idempotency_key": job.key, **body}
            job.outcome = self._event_outcome(self._event("Action Items Ready", job.event))
            return
        self._http_items(job, body)

    def _http_items(self, job: ItemJob, body: dict) -> None:
        for round_ in range(self.cfg.http_attempts):
            if round_:
                self.n.add("client_retries")
            r = self._http("POST", f"/v1/tenants/{job.tenant.id}/issues", job.tenant, body, job.key)
            if isinstance(r, Exception) or r.status_code in RETRYABLE_HTTP:
                job.outcome = "gave_up"
                return
            if r.status_code == 202:
                r = self._wait_job(job, r.json())
                if r is None:
                    job.outcome = "gave_up"
                    return
                doc = r
            elif r.status_code == 200:
                doc = r.json()
            else:
                job.outcome = f"failed:{r.status_code} {r.text[:200]}"
                return
            for res in doc.get("results", []):
                job.results[res["action_item_id"]] = res
            if not any(res["status"] == "failed" and res.get("retryable") for res in job.results.values()):
                job.outcome = "ok"
                return
        job.outcome = "retryable_left"

    def _wait_job(self, job: ItemJob, doc: dict) -> dict | None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if doc.get("status") == "done":
                return doc
            time.sleep(0.5)   # polling the job, as a client does
            r = self._http("GET", f"/v1/tenants/{job.tenant.id}/jobs/{doc['job_id']}", job.tenant)
            if isinstance(r, Exception) or r.status_code != 200:
                continue
            doc = r.json()
        return None

    def workload(self) -> None:
        ops = ([(self.discovery_walk, t) for t in self.tenants] + [(self.publish, r) for r in self.reports]
               + [(self.item_job, j) for j in self.jobs])
        self.rng.shuffle(ops)

        def run(op):
            fn, arg = op
            try:
                fn(arg)
            except Exception as exc:  # noqa: BLE001 - an op that blew up is a violation, not a crash
                self.violations.append(f"driver: {fn.__name__} raised {type(exc).__name__}: {exc}")
        with ThreadPoolExecutor(max_workers=self.cfg.workers) as pool:
            list(pool.map(run, ops))

    # ------------------------------------------------------------------ settle and redrive
    def settle(self, timeout: float = 180) -> None:
        """Until no function is busy and the own-event queue (deferred issue parts) is empty, twice in a row."""
        sqs = self.stack.aws("sqs")
        own = sqs.get_queue_url(QueueName="bridge-own-events")["QueueUrl"]
        quiet, deadline = 0, time.monotonic() + timeout
        while quiet < 3 and time.monotonic() < deadline:
            stats = requests.get(self.stack.gateway_url + "/_gateway/functions", timeout=10).json()
            busy = sum(s["busy"] + s["queued"] for s in stats.values())
            attrs = sqs.get_queue_attributes(QueueUrl=own, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            pending = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
            quiet = quiet + 1 if busy == 0 and pending == 0 else 0
            time.sleep(0.5)

    def redrive(self) -> dict[str, list[dict]]:
        """The operator's redrive: every dead-lettered event is delivered again (chaos off)."""
        dead = {fn: self.stack.dead_letters(fn) for fn in self.stack.dlq_urls}
        for fn, messages in dead.items():
            for m in messages:
                self.n.add("redriven")
                ev = m["event"]
                self._event(ev["detail-type"], ev["detail"])
        for job in self.jobs:
            if job.channel == "http" and job.outcome in ("retryable_left", "gave_up"):
                self.n.add("redriven")
                self._http_items(job, {"action_items": job.items})
        for rep in self.reports:
            if rep.channel == "http" and rep.outcome == "gave_up":
                self.n.add("redriven")
                self._publish(rep)
        return dead

    # ------------------------------------------------------------------ invariants
    def check(self, dead: dict, sim_chaos: dict, gw_chaos: dict) -> dict:
        from tests.integration import jobs as j
        from tests.integration.conftest import assert_not_logged
        b = self.bridge
        self.settle()
        events = self.stack.published_events()
        failed = collections.defaultdict(list)
        issues_created = collections.defaultdict(dict)
        for e in events:
            d = e["detail"]
            if e["detail-type"] == "Publish Failed":
                failed[(d.get("tenant_id"), d.get("idempotency_key"))].append(d)
            elif e["detail-type"] == "Issues Created":
                for res in d.get("results", []):
                    issues_created[(d["tenant_id"], d["idempotency_key"])][res["action_item_id"]] = res
        table = collections.Counter()

        # Reports: exactly one page, with exactly one PDF.
        pages = {}
        for flavour in ("cloud", "dc"):
            for p in j.pages(b, SPACE, flavour):
                pages.setdefault(p["title"], []).append(p)
        for rep in self.reports:
            mine = pages.get(rep.report["title"], [])
            terminal = [f for f in failed[(rep.tenant.id, rep.key)] if not f.get("retryable")]
            if len(mine) > 1:
                table["duplicates"] += 1
                self.violations.append(f"report {rep.report['title']} ({rep.channel}, {rep.tenant.flavour}): {len(mine)} pages")
            elif len(mine) == 1:
                pdfs = j.attachments(b, str(mine[0]["id"]))
                if len(pdfs) != 1:
                    table["duplicates" if pdfs else "lost"] += 1
                    self.violations.append(f"report {rep.report['title']}: {len(pdfs)} PDF attachments")
                else:
                    table["successes"] += 1
                    table["page_successes"] += 1
            elif terminal or rep.outcome.startswith("failed:"):
                table["terminal_failures"] += 1
            else:
                table["lost"] += 1
                self.violations.append(f"report {rep.report['title']} ({rep.channel}, {rep.tenant.flavour}, "
                                       f"{rep.outcome}): no page and no terminal failure")
            if len(terminal) > 1:
                table["duplicates"] += 1
                self.violations.append(f"report {rep.report['title']}: {len(terminal)} Publish Failed retryable:false")

        # Action items: exactly one issue, or a terminal failure with its reason.
        by_summary = collections.Counter()
        issues_of = collections.defaultdict(list)
        for flavour in ("cloud", "dc"):
            for issue in j.issues(b, flavour):
                s = issue["fields"].get("summary", "")
                if s.startswith(f"Chaos {self.run} item "):
                    by_summary[s] += 1
                    issues_of[s].append(f"{issue['key']}@{issue.get('created')}")
        for job in self.jobs:
            results = dict(issues_created.get((job.tenant.id, job.key), {}))
            results.update(job.results)
            terminal_job = [f for f in failed[(job.tenant.id, job.key)] if not f.get("retryable")]
            if len(terminal_job) > 1:
                table["duplicates"] += 1
                self.violations.append(f"item job {job.key}: {len(terminal_job)} Publish Failed retryable:false")
            for item in job.items:
                n = by_summary.get(item["title"], 0)
                res = results.get(item["id"])
                if n > 1:
                    table["duplicates"] += 1
                    self.violations.append(f"{item['title']} ({job.channel}, {job.tenant.flavour}, tenant {job.tenant.id}, "
                                           f"job {job.key}): {n} issues {issues_of[item['title']]}")
                elif n == 1:
                    table["successes"] += 1
                    table["issue_successes"] += 1
                elif (res and res["status"] == "failed" and not res.get("retryable") and res.get("message")) \
                        or terminal_job or job.outcome.startswith("failed:"):
                    table["terminal_failures"] += 1
                else:
                    table["lost"] += 1
                    self.violations.append(f"{item['title']} ({job.channel}, {job.tenant.flavour}, {job.outcome}, "
                                           f"result {res}): no issue and no terminal failure")

        # Events that did not succeed: every one in the DLQ (checked against what the gateway said).
        dead_ids = {m["event"]["id"] for ms in dead.values() for m in ms}
        table["dead_lettered"] = len(dead_ids)
        if gw_chaos.get("dead_lettered", 0) != sum(len(ms) for ms in dead.values()):
            self.violations.append(f"gateway dead-lettered {gw_chaos.get('dead_lettered')} events, "
                                   f"the DLQs hold {sum(len(ms) for ms in dead.values())}")
        for x in list(self.reports) + list(self.jobs):
            if x.outcome == "lost_in_gateway":
                self.violations.append(f"{x.key}: an event failed and is not in the DLQ")
        # ... and exactly one `Publish Failed` retryable:false (`retries_exhausted`, from Lambda's
        # on-failure record of it) was emitted for each dead-lettered job — none only when another
        # delivery of the same event finished the job (the function's hook saw it done).
        jobs_of = {"Report Ready": "page", "Action Items Ready": "issues", "Action Items Deferred": "issues",
                   "Action Items Changed": "edits", "Page Published": "links", "Report Issues Created": "links"}
        exhausted = collections.Counter(
            (d.get("tenant_id"), d.get("idempotency_key"), d.get("job"))
            for ds in failed.values() for d in ds if d.get("code") == "retries_exhausted")
        for d in (d for ds in failed.values() for d in ds if d.get("code") == "retries_exhausted"):
            if d.get("retryable") is not False or not d.get("reason"):
                self.violations.append(f"{d.get('idempotency_key')}: a retries_exhausted Publish Failed that is retryable or says no reason")
        succeeded = {(r.tenant.id, r.key, "page") for r in self.reports if len(pages.get(r.report["title"], [])) == 1}
        succeeded |= {(jb.tenant.id, jb.key, "issues") for jb in self.jobs
                      if all(by_summary.get(i["title"], 0) == 1 for i in jb.items)}
        dead_jobs = {(m["event"]["detail"].get("tenant_id"), m["event"]["detail"].get("idempotency_key"),
                      jobs_of.get(m["event"]["detail-type"], "?")) for ms in dead.values() for m in ms
                     # A record whose settling failed for good is parked too; it is no job.
                     if m["event"].get("source") != "lambda"}
        table["dead_letter_notices"] = sum(exhausted.values())
        for job_key in sorted(dead_jobs, key=str):
            n = exhausted.get(job_key, 0)
            if n > 1:
                table["duplicates"] += 1
                self.violations.append(f"dead-lettered {job_key}: {n} Publish Failed retries_exhausted")
            elif n == 0 and job_key not in succeeded:
                table["lost"] += 1
                self.violations.append(f"dead-lettered {job_key}: no Publish Failed retryable:false for it")
        for job_key in sorted(set(exhausted) - dead_jobs, key=str):
            self.violations.append(f"{job_key}: Publish Failed retries_exhausted for an event not in the DLQ")

        # The refresh-token chain: no invalid_grant on a refresh; every OAuth connection still up.
        calls = self.stack.sim("GET", "/_sim/calls").json()["calls"]
        # Kept beside the logs: every Atlassian request, its fault and its committed status.
        (Path(self.stack.logs_dir) / "sim-calls.json").write_text(json.dumps(calls))
        broken = [c for c in calls if c.get("route") == "POST /oauth/token"
                  and c.get("grant_type") == "refresh_token" and c.get("status") in (400, 403)]
        if broken:
            self.violations.append(f"{len(broken)} refresh_token grants answered invalid_grant")
        table["refreshes"] = sum(1 for c in calls if c.get("route") == "POST /oauth/token"
                                 and c.get("grant_type") == "refresh_token")
        # Token-endpoint calls that were (or may have been) refreshes: a fault answered before the
        # simulator read the body leaves its grant type unknown; the setup's code exchanges ran
        # before any fault.
        token_calls = [c for c in calls if c.get("route") == "POST /oauth/token"
                       and c.get("grant_type") in ("refresh_token", None)]
        table["refresh_calls"] = len(token_calls)
        table["refreshes_ok"] = sum(1 for c in token_calls if c.get("grant_type") == "refresh_token"
                                    and c.get("status") == 200)
        table["throttled"] = sum(1 for c in calls if c.get("status") == 429 and "oauth" not in (c.get("route") or ""))
        self.check_metrics(table, gw_chaos)
        for t in self.tenants:
            for product in ("confluence", "jira"):
                r = b.connection(t.id, product)
                status = r.json().get("status") if r.status_code == 200 else r.status_code
                if status != "connected":
                    self.violations.append(f"{t.flavour} tenant {t.id} {product}: connection {status} after the run")

        # No secret in any log.
        issued = self.stack.sim("GET", "/_sim/oauth/issued").json()
        try:
            assert_not_logged(self.stack, [s for g in issued.values() for s in g] + b.secrets_seen)
        except AssertionError as exc:
            self.violations.append(f"secrets: {exc}")
        return table

    def check_metrics(self, table, gw_chaos: dict) -> None:
        """The same run seen through the functions' EMF metrics (shared/src/metrics.rs), beside the
        simulator's and the gateway's counts. Metrics are written when an invocation ends, so a
        killed (or timed-out) invocation loses what it had recorded: a metric may fall short of
        what the simulator saw by what those invocations did, never exceed it (that would be a
        double count). With no kill, they are equal."""
        from tests.integration.emf import total
        docs = self.logs.documents()
        m = table["metrics"] = {
            "jobs_started": total(docs, "JobsStarted"), "jobs_succeeded": total(docs, "JobsSucceeded"),
            "jobs_retried": total(docs, "JobsRetried"), "jobs_failed": total(docs, "JobsFailed"),
            "refreshes": total(docs, "TokenRefreshes"), "refresh_failures": total(docs, "TokenRefreshFailures"),
            "throttled": total(docs, "AtlassianThrottled"), "pages": total(docs, "PagesPublished"),
            "issues": total(docs, "ItemsCreated"), "items_failed": total(docs, "ItemsFailed"),
        }
        codes = collections.Counter()
        for d in docs:
            for metric in ("JobsFailed", "JobsRetried"):
                if metric in d:
                    codes[f"{metric}:{d.get('ErrorCode')}"] += d[metric]
        table["metrics_by_code"] = dict(codes)
        died = gw_chaos.get("kills", 0) + self._timeouts()
        table["died"] = died

        def agree(name: str, seen: float, counted: float, may_lose: float) -> None:
            if counted > seen or seen - counted > may_lose:
                self.violations.append(f"metrics: {name} counted {counted:g}, the run saw {seen:g} "
                                       f"(killed or timed-out invocations: {died}, may lose {may_lose:g})")
        # Every refresh the simulator served was counted, ok or failed, by the invocation that asked.
        agree("token refreshes (ok + failed)", table["refresh_calls"], m["refreshes"] + m["refresh_failures"],
              died * MAX_REFRESHES_PER_INVOCATION)
        # A refresh counted ok had its new pair from the simulator (a 200 the client may still have
        # lost: commit-then-drop, so ok may be fewer).
        agree("token refreshes ok", table["refreshes_ok"], m["refreshes"], table["refreshes_ok"])
        # Every 429 a product answered reached the transport; a killed invocation may have met many.
        agree("Atlassian 429s", table["throttled"], m["throttled"], table["throttled"] if died else 0)
        # Each page and issue is counted once, by the run that wrote its record, kills aside.
        agree("pages published", table["page_successes"], m["pages"], died)
        agree("issues created", table["issue_successes"], m["issues"], died * self.cfg.batch)

    def _timeouts(self) -> int:
        n = 0
        for path in Path(self.stack.logs_dir).glob("*.log"):
            with path.open("rb") as f:
                f.seek(self.logs.marks.get(path.name, 0))
                n += f.read().count(b"Task timed out after")
        return n

    # ------------------------------------------------------------------ the whole run
    def execute(self) -> tuple[bool, str]:
        started = time.monotonic()
        self.setup()
        self.chaos_on()
        try:
            try:
                self.connect_tenants()
            except AssertionError as exc:
                self.violations.append(f"driver: {exc}")
            self.plan()
            self.workload()
            self.settle()
        finally:
            sim_chaos, gw_chaos = self.chaos_off()
        dead = self.redrive()
        table = self.check(dead, sim_chaos, gw_chaos)
        self.faults_injected = sim_chaos.get("injected_total", 0) + gw_chaos.get("kills", 0) \
            + gw_chaos.get("duplicates_delivered", 0)
        text = self.render(table, sim_chaos, gw_chaos, time.monotonic() - started)
        return not self.violations, text

    def render(self, table, sim_chaos: dict, gw_chaos: dict, seconds: float) -> str:
        c = self.n.c
        rows = [
            ("seed", self.cfg.seed),
            ("tenants (cloud_oauth / cloud_token / dc)", f"{len(self.tenants)} "
             f"({sum(t.flavour == 'cloud_oauth' for t in self.tenants)} / "
             f"{sum(t.flavour == 'cloud_token' for t in self.tenants)} / {sum(t.flavour == 'dc' for t in self.tenants)})"),
            ("operations attempted", c["connects"] + c["discovery_calls"] + c["publishes_event"] + c["publishes_http"]
             + c["item_jobs_event"] + c["item_jobs_http"]),
            ("  connects (under faults; attempts again)", f"{c['connects']} ({c['connect_retries']})"),
            ("  discovery calls", c["discovery_calls"]),
            ("  report publishes (event / http)", f"{c['publishes_event']} / {c['publishes_http']}"),
            ("  action-item jobs (event / http)", f"{c['item_jobs_event']} / {c['item_jobs_http']}"),
            ("  action items", c["action_items"]),
            ("simulator requests", sim_chaos.get("requests", 0)),
            ("faults injected (simulator)", sim_chaos.get("injected_total", 0)),
        ]
        rows += [(f"  {k}", v) for k, v in sorted((sim_chaos.get("injected") or {}).items())]
        rows += [
            ("AWS requests slowed (moto, 5-150 ms)", f"{self.moto_latency.get('delayed', 0)} of "
             f"{self.moto_latency.get('requests', 0)} ({self.moto_latency.get('delayed_ms', 0) / 1000:.0f} s in all)"),
            ("instances killed mid-invocation", gw_chaos.get("kills", 0)),
            ("events delivered twice (EventBridge)", gw_chaos.get("duplicates_delivered", 0)),
            ("retries: Lambda async", gw_chaos.get("retries", 0)),
            ("retries: client (same Idempotency-Key)", c["client_retries"]),
            ("dead-lettered events (redriven after)", f"{table['dead_lettered']} ({c['redriven']} redriven)"),
            ("their terminal Publish Failed (retries_exhausted)", table["dead_letter_notices"]),
            ("token refreshes", table["refreshes"]),
            ("successes (pages + issues)", table["successes"]),
            ("terminal failures (with reason)", table["terminal_failures"]),
            ("duplicates (must be 0)", table["duplicates"]),
            ("lost (must be 0)", table["lost"]),
            ("violations", len(self.violations)),
            ("seconds", f"{seconds:.0f}"),
        ]
        m = table.get("metrics", {})
        metric_rows = {
            "token refreshes": f"{m.get('refreshes', 0):g} ok + {m.get('refresh_failures', 0):g} failed",
            "Atlassian 429s": f"{m.get('throttled', 0):g}",
            "successes (pages + issues)": f"{m.get('pages', 0):g} pages + {m.get('issues', 0):g} issues",
            "terminal failures (with reason)": f"{m.get('jobs_failed', 0):g} jobs + {m.get('items_failed', 0):g} items",
            "job runs (started / succeeded / retried / failed)": f"{m.get('jobs_started', 0):g} / {m.get('jobs_succeeded', 0):g}"
                                                                 f" / {m.get('jobs_retried', 0):g} / {m.get('jobs_failed', 0):g}",
        }
        at = next(i for i, (k, _) in enumerate(rows) if k == "token refreshes")
        rows.insert(at + 1, ("Atlassian 429s", table["throttled"]))
        rows.insert(at + 4, ("job runs (started / succeeded / retried / failed)", "(metrics only)"))
        codes = sorted(table.get("metrics_by_code", {}).items())
        rows[at + 5:at + 5] = [(f"  {code}", "") for code, _ in codes]
        metric_rows.update({f"  {code}": f"{n:g}" for code, n in codes})
        width = max(len(k) for k, _ in rows)
        vwidth = max(len(str(v)) for _, v in rows)
        lines = [f"{'':{width}}  {'simulator / gateway':{vwidth}}  metrics (EMF)"]
        lines += [f"{k.ljust(width)}  {str(v):{vwidth}}  {metric_rows.get(k, '')}".rstrip() for k, v in rows]
        if self.violations:
            lines.append("")
            lines += [f"VIOLATION: {v}" for v in self.violations[:50]]
            lines.append(f"reproduce: python -m tests.chaos --seed {self.cfg.seed} --tenants {self.cfg.tenants} "
                         f"--publishes {self.cfg.publishes} --items {self.cfg.items} (or make chaos CHAOS_SEED={self.cfg.seed})")
        return "\n".join(lines)


def parse_args(argv=None) -> Config:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[0])
    env = os.environ.get
    p.add_argument("--seed", type=int, default=int(env("CHAOS_SEED", "1")))
    p.add_argument("--tenants", type=int, default=int(env("CHAOS_TENANTS", "20")))
    p.add_argument("--publishes", type=int, default=int(env("CHAOS_PUBLISHES", "200")))
    p.add_argument("--items", type=int, default=int(env("CHAOS_ITEMS", "2000")))
    p.add_argument("--batch", type=int, default=int(env("CHAOS_BATCH", "10")))
    p.add_argument("--workers", type=int, default=int(env("CHAOS_WORKERS", "8")))
    p.add_argument("--probability", type=float, default=float(env("CHAOS_PROBABILITY", "0.2")))
    a = p.parse_args(argv)
    return Config(seed=a.seed, tenants=a.tenants, publishes=a.publishes, items=a.items, batch=a.batch,
                  workers=a.workers, probability=a.probability)


def main(argv=None) -> int:
    from tests.devstack import Stack
    cfg = parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="chaos-logs-"))
    stack = Stack(REPO, logs, Path(os.environ.get("CHAOS_BIN_DIR", REPO / "target" / "debug")),
                  env_overrides={"BRIDGE_DESTINATION_LOCKOUT_THRESHOLD": "100000"}, deliver_own_events=True)
    stack.start()
    try:
        ok, text = Campaign(stack, cfg).execute()
    finally:
        stack.stop()
    print(text)
    print(f"logs: {logs}")
    return 0 if ok else 1
