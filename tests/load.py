"""The load scenario of `make bench` (issue 16): many tenants publishing reports at once through
the local gateway, for a fixed time, and what it cost.

- Tenants: `tenants` of them, connected to Confluence in turn as Cloud OAuth (3LO), Cloud API
  token and Data Center (Basic), each with the space `SPA` saved. Connecting is not timed.
  publish-page runs with the stack's fair share (64 jobs per tenant, far above one in flight);
  `slots` sets another for the loop (production's default is 4) and `inflight` runs more loops
  per tenant, so publishes beyond the share meet `429 tenant_rate_limited`.
- The load: one thread per tenant (`inflight` of them), each a closed loop — it sends its next
  publish when the last one is done, so `tenants` × `inflight` publishes are in flight — through
  the HTTP route
  `POST /v1/tenants/{tenant}/pages` (not the `Report Ready` event: the gateway's event delivery
  answers with the invocation's outcome too, so it would measure the same function behind a
  different door). Each publish is a new report (its own report id, title and Idempotency-Key).
  The loop stops sending after `seconds` of wall time; publishes in flight then are finished and
  counted, and the throughput is over the whole time until the last one ended. Bounded besides:
  at most `MAX_PUBLISHES_PER_TENANT` each, every request with a timeout. Loopback only.
- Per publish two latencies: "accepted" is the client-side wall time of the request that was
  answered 200 (gateway, JWT, the Lambda Runtime API, the function, moto, the simulator); "page
  visible" runs from the first send (429 waits included) until the simulator shows the page with
  its PDF attached: read back once, right after the 200 — the route is synchronous, so this adds
  the read-back, and a 200 whose page is not there is an error, not a lag to wait out.
- Errors: every answer that is not 2xx must be a 429 that `shared/openapi.json` documents for the
  route, with one of the error codes it names (or API Gateway's own `{"message"}` answer, which it
  documents too); it is counted, its `Retry-After` honoured and the same publish sent again with
  the same Idempotency-Key. Anything else (another status, a 429 with an undocumented code, a
  dropped connection, a timeout) is an error and fails the scenario.
- At the end, from the simulator's state: every publish answered 200 has exactly one page (by its
  unique title) on the deployment its tenant is connected to, with exactly one PDF — no duplicate,
  none lost — and no other page carries this run's titles.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.integration import jobs, registration as reg

REPO = Path(__file__).resolve().parents[1]
SPACE = "SPA"
FLAVOURS = ("cloud_oauth", "cloud_token", "dc")
FLAVOUR_NAMES = {"cloud_oauth": "Cloud OAuth", "cloud_token": "Cloud API token", "dc": "Data Center"}
ROUTE = ("post", "/v1/tenants/{tenant}/pages")
TENANTS = 50
SECONDS = 60
MAX_PUBLISHES_PER_TENANT = 10_000       # the loop's bound besides the clock
MAX_ATTEMPTS = 20                       # sends of one publish (429s answered with Retry-After)
MAX_RETRY_AFTER_S = 5                   # a longer Retry-After than this is waited this long
REQUEST_TIMEOUT_S = 60                  # above API Gateway's 30 s: the gateway answers first


def documented_429(openapi: Path = REPO / "shared" / "openapi.json", route=ROUTE) -> tuple[set[str], bool]:
    """The error codes the route's documented 429 names, and whether it documents API Gateway's
    own `{"message"}` answer. Empty when the route documents no 429 (then every 429 is an error)."""
    method, path = route
    responses = json.loads(openapi.read_text())["paths"][path][method]["responses"]
    if "429" not in responses:
        return set(), False
    doc = responses["429"]
    return set(re.findall(r"`([a-z_]+)`", doc.get("description", ""))), "GatewayError" in json.dumps(doc)


def is_documented_429(response: requests.Response, codes: set[str], gateway_own: bool) -> bool:
    if response.status_code != 429:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    if isinstance(body.get("error"), dict):
        return body["error"].get("code") in codes
    return gateway_own and set(body) == {"message"} and isinstance(body["message"], str)


@dataclass
class Tenant:
    id: str
    flavour: str                        # cloud_oauth | cloud_token | dc

    @property
    def deployment(self) -> str:        # the simulator's flavour
        return "dc" if self.flavour == "dc" else "cloud"


@dataclass
class Publish:
    tenant: Tenant
    title: str
    key: str
    status: int | None = None           # the last answer's status (None: no answer)
    page_id: str | None = None
    attempts: int = 0
    accepted_ms: float | None = None
    visible_ms: float | None = None
    error: str | None = None
    verdict: str | None = None          # from the simulator's pages at the end: None (one), duplicated, lost


@dataclass
class Result:
    tenants: list[Tenant]
    planned: float                      # how long the tenants were to keep sending
    seconds: float                      # the loop's wall time, until the last publish ended
    publishes: list[Publish]
    statuses: collections.Counter = field(default_factory=collections.Counter)   # every answer
    rate_limited: collections.Counter = field(default_factory=collections.Counter)  # 429s by code
    errors: list[str] = field(default_factory=list)
    duplicates: int = 0
    lost: int = 0
    stray: int = 0                      # pages with this run's titles that no 200 accounts for
    instances: int | None = None        # publish-page instances the gateway started, if known
    moto: dict | None = None            # tests/moto_serial.py's stats over the loop (a difference)
    load_average: tuple[float, float] | None = None     # the machine's 1-min load average, start and end
    inflight: int = 1                   # closed loops per tenant
    slots: int | None = None            # publish-page's BRIDGE_TENANT_SLOTS for the loop (None: the stack's)

    def completed(self, flavour: str | None = None) -> list[Publish]:
        return [p for p in self.publishes if p.visible_ms is not None and p.error is None
                and (flavour is None or p.tenant.flavour == flavour)]

    def failures(self) -> list[str]:
        out = list(self.errors)
        if self.duplicates:
            out.append(f"{self.duplicates} publishes made more than one page")
        if self.lost:
            out.append(f"{self.lost} publishes answered 200 have no page with one PDF")
        if self.stray:
            out.append(f"{self.stray} pages with this run's titles that no publish accounts for")
        if not self.completed():
            out.append("no publish completed")
        return out


def connect(bridge, tenants: int) -> list[Tenant]:
    """`tenants` tenants connected to Confluence, the flavours in turn, with the space saved."""
    out = []
    for i in range(tenants):
        t = Tenant(bridge.tenant(), FLAVOURS[i % len(FLAVOURS)])
        if t.flavour == "cloud_oauth":
            assert bridge.connect(t.id, "confluence")["status"] == "connected"
        elif t.flavour == "cloud_token":
            reg.register(bridge, t.id, "confluence", "api_token")
        else:
            jobs.connect_dc(bridge, t.id, "confluence")
        jobs.settings(bridge, t.id, "confluence", {"space_key": SPACE})
        out.append(t)
    return out


def percentile(samples: list[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0..100) of `samples`, None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


class _Worker(threading.Thread):
    """One tenant's closed loop (see the module docstring)."""

    def __init__(self, bridge, tenant: Tenant, lane: int, run: str, until: float, codes: set[str], gateway_own: bool,
                 lock: threading.Lock, result: Result):
        super().__init__(name=f"load-{tenant.id}-{lane}", daemon=True)
        self.bridge, self.tenant, self.until = bridge, tenant, until
        self.run_id = f"{run} {tenant.id} #{lane}."     # unique per tenant and lane; titles end with the count
        self.codes, self.gateway_own, self.lock, self.result = codes, gateway_own, lock, result
        self.http = requests.Session()      # one per thread: a shared pool would queue the threads
        self.url = f"{bridge.gw}/v1/tenants/{tenant.id}/pages"

    def run(self) -> None:
        n = 0
        # At least one publish each, however late the thread starts.
        while n == 0 or (time.monotonic() < self.until and n < MAX_PUBLISHES_PER_TENANT):
            publish = Publish(self.tenant, f"Load {self.run_id}{n}", uuid.uuid4().hex)
            with self.lock:
                self.result.publishes.append(publish)
            try:
                self.publish(publish, n)
            except Exception as exc:  # noqa: BLE001 - a broken publish is a counted error, not a dead thread
                publish.error = f"{type(exc).__name__}: {str(exc)[:200]}"
            if publish.error:
                with self.lock:
                    self.result.errors.append(f"{FLAVOUR_NAMES[self.tenant.flavour]} tenant: {publish.title}: "
                                              f"{publish.error}")
            n += 1

    def publish(self, publish: Publish, n: int) -> None:
        report = jobs.retrospective(report_id=f"load-{uuid.uuid4().hex}",
                                    items=[f"Item {i}: something that went well" for i in range(10)],
                                    title=publish.title)
        token = self.bridge.token(self.tenant.id)
        first = time.perf_counter()
        while True:
            publish.attempts += 1
            start = time.perf_counter()
            try:
                r = self.http.post(self.url, json=report, timeout=REQUEST_TIMEOUT_S,
                                   headers={"authorization": f"Bearer {token}", "Idempotency-Key": publish.key})
            except requests.RequestException as exc:
                publish.error = f"no answer: {type(exc).__name__}"
                return
            took = (time.perf_counter() - start) * 1000
            publish.status = r.status_code
            with self.lock:
                self.result.statuses[r.status_code] += 1
            if r.status_code == 200:
                publish.accepted_ms = took
                break
            if is_documented_429(r, self.codes, self.gateway_own) and publish.attempts < MAX_ATTEMPTS:
                code = (r.json().get("error") or {}).get("code", "gateway")
                with self.lock:
                    self.result.rate_limited[code] += 1
                # Honouring Retry-After is the protocol, not synchronisation: the same publish is
                # sent again with its key, as a client would.
                time.sleep(min(float(r.headers.get("Retry-After") or 1), MAX_RETRY_AFTER_S))
                continue
            publish.error = f"{r.status_code} {r.text[:200]}"
            return
        publish.page_id = str(r.json().get("page_id") or "")
        if not publish.page_id:
            publish.error = f"200 without a page id: {r.text[:200]}"
            return
        # Once, right after the answer: the route is synchronous, so a 200 whose page (or PDF) is
        # not there yet is a lie, not a lag to wait out.
        seen = self.http.get(f"{self.bridge.stack.sim_url}/_sim/confluence/attachments?page_id="
                             f"{publish.page_id}&flavour={self.tenant.deployment}", timeout=REQUEST_TIMEOUT_S)
        if seen.status_code == 200 and len(seen.json().get("attachments", [])) == 1:
            publish.visible_ms = (time.perf_counter() - first) * 1000
        else:
            publish.error = (f"answered 200 with page {publish.page_id}, which the simulator does not show with "
                             f"one PDF: {seen.status_code} {seen.text[:120]}")


def run(bridge, tenants: int = TENANTS, seconds: float = SECONDS, log=None, inflight: int = 1,
        slots: int | None = None) -> Result:
    """Connects `tenants` tenants, runs the loop for `seconds`, then checks the simulator's pages."""
    return drive(bridge, connect(bridge, tenants), seconds, log, inflight, slots)


def drive(bridge, people: list[Tenant], seconds: float, log=None, inflight: int = 1, slots: int | None = None) -> Result:
    """The loop of connected tenants for `seconds`, then the check of the simulator's pages.
    `inflight`: closed loops per tenant. `slots`: publish-page's fair share per tenant
    (`BRIDGE_TENANT_SLOTS`) for the loop, e.g. production's default 4 instead of the stack's 64
    — beyond it the route answers `429 tenant_rate_limited`; restored afterwards."""
    if slots is None:
        return _drive(bridge, people, seconds, log, inflight, None)
    stack = bridge.stack
    stack.set_function_env("publish-page", {"BRIDGE_TENANT_SLOTS": str(slots)})
    try:
        return _drive(bridge, people, seconds, log, inflight, slots)
    finally:
        stack.set_function_env("publish-page", {"BRIDGE_TENANT_SLOTS": stack.function_env.get("BRIDGE_TENANT_SLOTS")})


def _drive(bridge, people: list[Tenant], seconds: float, log, inflight: int, slots: int | None) -> Result:
    codes, gateway_own = documented_429()
    run_id = uuid.uuid4().hex[:8]
    result = Result(people, seconds, 0.0, [], inflight=inflight, slots=slots)
    gateway = bridge.gw + "/_gateway/functions"
    before = bridge.http.get(gateway, timeout=10).json().get("publish-page", {}).get("cold_starts")
    moto_before = moto_stats(bridge)
    load_before = os.getloadavg()[0]
    lock = threading.Lock()
    start = time.monotonic()
    workers = [_Worker(bridge, t, lane, run_id, start + seconds, codes, gateway_own, lock, result)
               for t in people for lane in range(inflight)]
    for w in workers:
        w.start()
    for w in workers:
        # Bounded: a publish is at most MAX_ATTEMPTS requests with their timeouts and waits.
        w.join(timeout=seconds + (MAX_ATTEMPTS + 1) * (REQUEST_TIMEOUT_S + MAX_RETRY_AFTER_S))
        if w.is_alive():
            result.errors.append(f"tenant {w.tenant.id}'s loop did not end")
    result.seconds = time.monotonic() - start
    after = bridge.http.get(gateway, timeout=10).json().get("publish-page", {}).get("cold_starts")
    moto_after = moto_stats(bridge)
    result.load_average = (load_before, os.getloadavg()[0])
    if moto_before and moto_after:
        ops = {op: {k: o[k] - moto_before["operations"].get(op, {}).get(k, 0) for k in ("requests", "busy_ms")}
               for op, o in moto_after["operations"].items()}
        result.moto = {"busy_ms": moto_after["busy_ms"] - moto_before["busy_ms"],
                       "requests": moto_after["requests"] - moto_before["requests"],
                       "operations": {op: o for op, o in ops.items() if o["requests"]}}
    if before is not None and after is not None:
        result.instances = after - before
    if log:
        log(f"  {len(result.completed())} publishes in {result.seconds:.1f} s; checking the simulator's pages")
    verify(bridge, run_id, result)
    return result


def moto_stats(bridge) -> dict | None:
    """What the serialized moto has served so far (tests/moto_serial.py), None if it can't say."""
    try:
        r = bridge.http.get(bridge.stack.moto_url + "/_serial/stats", timeout=10)
        return r.json() if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None


def verify(bridge, run_id: str, result: Result) -> None:
    """Exactly one page with one PDF per publish answered 200, on its tenant's deployment; no
    page with this run's titles beyond those (see the module docstring)."""
    prefix = f"Load {run_id} "
    pages: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for deployment in ("cloud", "dc"):
        for p in jobs.pages(bridge, SPACE, deployment):
            if p["title"].startswith(prefix):
                pages[(deployment, p["title"])].append(p)
    accounted = set()
    for publish in result.publishes:
        where = (publish.tenant.deployment, publish.title)
        accounted.add(where)
        mine = pages.get(where, [])
        if len(mine) > 1:
            publish.verdict = "duplicated"
            result.duplicates += 1
            result.errors.append(f"{publish.title}: {len(mine)} pages")
        elif publish.status == 200 and (len(mine) != 1 or str(mine[0]["id"]) != publish.page_id
                                        or len(mine[0]["attachments"]) != 1):
            publish.verdict = "lost"
            result.lost += 1
            result.errors.append(f"{publish.title}: answered 200 with page {publish.page_id}, the simulator has "
                                 + ", ".join(f"page {p['id']} with {len(p['attachments'])} attachments" for p in mine)
                                 if mine else f"{publish.title}: answered 200, no page")
    result.stray = sum(len(v) for k, v in pages.items() if k not in accounted)


# ---------------------------------------------------------------------------- table
def _median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def render(result: Result) -> tuple[str, list[str]]:
    """The Markdown table (a row for all tenants, then one per flavour) and its summary lines."""
    counts = collections.Counter(t.flavour for t in result.tenants)
    mix = " / ".join(f"{counts[f]} {FLAVOUR_NAMES[f]}" for f in FLAVOURS if counts[f])
    other = sum(1 for p in result.publishes if p.error)
    inflight = "one publish" if result.inflight == 1 else f"{result.inflight} publishes"
    share = "" if result.slots is None else f", a fair share of {result.slots} (`BRIDGE_TENANT_SLOTS`)"
    out = [f"| load: {len(result.tenants)} tenants publishing at once for {result.planned:g} s, {inflight} in "
           f"flight each{share}, `POST /v1/tenants/{{tenant}}/pages` | publishes completed | wall s | publishes/s | "
           "accepted p50 ms | accepted p99 ms | page visible p50 ms | page visible p99 ms | 429s (documented) | "
           "publishes failed | pages per publish |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(f"all ({mix})", None)] + [(FLAVOUR_NAMES[f], f) for f in FLAVOURS if counts[f]]
    for name, flavour in rows:
        mine = [p for p in result.publishes if flavour is None or p.tenant.flavour == flavour]
        done = result.completed(flavour)
        accepted = [p.accepted_ms for p in done]
        visible = [p.visible_ms for p in done]
        duplicated = sum(p.verdict == "duplicated" for p in mine)
        lost = sum(p.verdict == "lost" for p in mine)
        stray = result.stray if flavour is None else 0
        pages = "exactly 1" if not (duplicated or lost or stray) else (
            f"{duplicated} duplicated, {lost} lost" + (f", {stray} stray" if stray else ""))
        out.append(f"| {name} | {len(done)} | {result.seconds:.1f} | {len(done) / result.seconds:.1f} | "
                   f"{_ms(_median(accepted))} | {_ms(percentile(accepted, 99))} | {_ms(_median(visible))} | "
                   f"{_ms(percentile(visible, 99))} | {sum(p.attempts - 1 for p in mine)} | "
                   f"{sum(1 for p in mine if p.error)} | {pages} |")
    if result.moto and result.completed():
        n = len(result.completed())
        top = sorted(result.moto["operations"].items(), key=lambda kv: -kv[1]["busy_ms"])[:5]
        out += ["", "| load: the local stack's share (moto serves one request at a time, tests/moto_serial.py) | "
                "moto busy s | ÷ the loop's wall time | AWS requests per publish | moto ms per publish | "
                "the most time, requests per publish |", "|---|---|---|---|---|---|",
                f"| {len(result.tenants)} tenants, {n} publishes | {result.moto['busy_ms'] / 1000:.1f} | "
                f"{result.moto['busy_ms'] / 1000 / result.seconds:.2f}× | {result.moto['requests'] / n:.1f} | "
                f"{result.moto['busy_ms'] / n:.0f} | "
                + ", ".join(f"{op.split('.')[-1]} {o['requests'] / n:.1f}" for op, o in top) + " |"]
    if result.load_average:
        # Whatever else runs on the machine shares its cores with the stack: say how busy it was.
        out += ["", f"The machine's 1-minute load average was {result.load_average[0]:.1f} when the loop started "
                f"and {result.load_average[1]:.1f} when it ended ({os.cpu_count()} cores)."]
    by_code = ", ".join(f"{n} {code}" for code, n in sorted(result.rate_limited.items())) or "none"
    lines = [f"load: {len(result.completed())} publishes by {len(result.tenants)} tenants in {result.seconds:.1f} s = "
             f"{len(result.completed()) / result.seconds:.1f}/s; answers by status: "
             f"{dict(sorted(result.statuses.items()))}; 429s: {by_code}; publishes failed: {other}; "
             f"publish-page instances started: {'—' if result.instances is None else result.instances}; "
             "no peer to compare with (tests/peers publishes no pages), so no ratio"]
    return "\n".join(out) + "\n", lines
