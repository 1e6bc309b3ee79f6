"""Injected faults: applied before normal handling, matched by route template or prefix.

A fault's `route` matches a request whose route (`"GET /ex/jira/{cloudId}/rest/api/3/myself"`,
`"GET /site/{siteName}/rest/api/3/myself"`, `"GET /dc/jira-dc/jira/rest/api/2/myself"`,
`"POST /oauth/token"`, `"POST /oidc/{provider}/token"`) equals it or starts with it; `"*"` matches every recorded request.
The first active matching fault (in creation order) applies; `times` counts down
(null = forever). With `every: N` a fault applies to every Nth request it matches (the Nth, 2Nth,
...; default 1 = each); the requests in between pass it by, on to the next matching fault (so a
storm of every 3rd call answered 429 combines with a latency fault on every call).

Kinds `commit_then_drop` and `commit_then_status` simulate a crash between the product's commit
and its response: the request is handled for real first, then the connection is closed or
another status is answered (see `after_commit`).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import itertools
import logging
import time

from aiohttp import web

from .state import Fault, State
from .util import json_response

log = logging.getLogger("sim.faults")

KINDS = {"status", "rate_limit", "latency", "timeout", "drop", "commit_then_drop", "commit_then_status", "oversize", "hold"}
# kinds that let the request be handled for real (the product commits) and then spoil the answer
COMMIT_KINDS = {"commit_then_drop", "commit_then_status"}
DEFAULT_TIMEOUT_HOLD_MS = 60_000
# What an `oversize` answer streams by default: a server that answers far more than any client
# should read (a broken proxy's error page loop, an export endpoint, a hostile server).
DEFAULT_OVERSIZE_BYTES = 50 * 1024 * 1024
OVERSIZE_CHUNK = 64 * 1024
DEFAULT_HOLD_MS = 30_000
_ids = itertools.count(1)


class Dropped(Exception):
    """Raised after the connection was closed without a response."""


def parse_fault(body: dict) -> Fault:
    if not isinstance(body, dict):
        raise ValueError("fault must be a JSON object")
    route = body.get("route")
    kind = body.get("kind")
    if not isinstance(route, str) or not route:
        raise ValueError("'route' is required")
    if kind not in KINDS:
        raise ValueError(f"'kind' must be one of {sorted(KINDS)}")
    status = body.get("status")
    if kind == "status":
        status = 503 if status is None else status
    if kind == "commit_then_status":
        status = 502 if status is None else status
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise ValueError("'status' must be an HTTP status code")
    times = body.get("times", 1)
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ValueError("'times' must be a positive integer or null")
    latency = body.get("latency_ms")
    if latency is not None and (not isinstance(latency, (int, float)) or latency < 0):
        raise ValueError("'latency_ms' must be a non-negative number")
    if kind == "latency" and latency is None:
        raise ValueError("'latency_ms' is required for kind=latency")
    retry_after = body.get("retry_after")
    if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
        raise ValueError("'retry_after' must be a non-negative integer (seconds)")
    headers = body.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, (str, int)) for v in headers.values()):
        raise ValueError("'headers' must be an object of strings")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("'reason' must be a string")
    size_bytes = body.get("size_bytes")
    if size_bytes is not None and (not isinstance(size_bytes, int) or isinstance(size_bytes, bool) or size_bytes < 1):
        raise ValueError("'size_bytes' must be a positive integer")
    with_length = body.get("content_length", False)
    if not isinstance(with_length, bool):
        raise ValueError("'content_length' must be true or false")
    every = body.get("every", 1)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError("'every' must be a positive integer")
    return Fault(id=f"f{next(_ids)}", route=route, kind=kind, status=status,
                 retry_after=retry_after, headers={k: str(v) for k, v in headers.items()},
                 body=body.get("body"), latency_ms=latency, times=times, reason=reason, every=every,
                 size_bytes=size_bytes, content_length=with_length)


def _matches(fault: Fault, route: str | None) -> bool:
    if fault.route == "*":
        return True
    if route is None:
        return False
    return route == fault.route or route.startswith(fault.route)


def take(state: State, route: str | None) -> Fault | None:
    """Find the first active fault for this route and consume one use of it. A fault with
    `every` > 1 counts the requests it matches and applies to each Nth; the others go on to the
    next fault."""
    for f in state.faults:
        if f.times is not None and f.times <= 0:
            continue
        if _matches(f, route):
            f.seen += 1
            if f.seen % f.every:
                continue
            if f.times is not None:
                f.times -= 1
            f.hits += 1
            return f
    return None


def _default_reason(request: web.Request, route: str | None) -> str:
    if request.get("sim_product") == "confluence" or (route and "/ex/confluence/" in route):
        return "confluence-burst-based"
    return "jira-burst-based"


def _body_response(status: int, body, headers: dict[str, str]) -> web.Response:
    if body is None or isinstance(body, (dict, list)):
        return json_response(body if body is not None else {"code": status, "message": _reason_phrase(status)},
                             status=status, headers=headers)
    return web.Response(status=status, text=str(body), headers=headers)


def _reason_phrase(status: int) -> str:
    from http import HTTPStatus
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def rate_limit_headers(retry_after: int, reason: str) -> dict[str, str]:
    reset = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=retry_after)
    return {
        "Retry-After": str(retry_after),
        "Beta-Retry-After": str(retry_after),
        "RateLimit-Reason": reason,
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
        "X-RateLimit-NearLimit": "true",
    }


def _client_gone(request: web.Request) -> bool:
    t = request.transport
    return t is None or t.is_closing()


async def apply(request: web.Request, fault: Fault, route: str | None, call: dict):
    """Return a response, None to continue with normal handling, or raise Dropped."""
    call["fault"] = fault.kind
    if fault.kind in COMMIT_KINDS:
        return None                       # handled for real first, see after_commit
    if fault.kind == "latency":
        await asyncio.sleep((fault.latency_ms or 0) / 1000)
        return None
    if fault.kind == "hold":
        # A test switch, not Atlassian behaviour: the request waits (as a slow answer would)
        # until the test releases it, so the test can act while it is in flight without sleeping.
        fault.arrived.set()
        hold = (fault.latency_ms if fault.latency_ms is not None else DEFAULT_HOLD_MS) / 1000
        try:
            await asyncio.wait_for(fault.released.wait(), hold)
        except asyncio.TimeoutError:
            log.warning("fault %s: held request never released; serving it", fault.id)
        return None
    if fault.kind == "status":
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers.setdefault("Retry-After", str(fault.retry_after))
        return _body_response(fault.status or 503, fault.body, headers)
    if fault.kind == "rate_limit":
        ra = fault.retry_after if fault.retry_after is not None else 1
        headers = rate_limit_headers(ra, fault.reason or _default_reason(request, route))
        headers.update(fault.headers)
        body = fault.body if fault.body is not None else {"code": 429, "message": "Rate limit exceeded."}
        return _body_response(fault.status or 429, body, headers)
    if fault.kind == "timeout":
        hold = (fault.latency_ms if fault.latency_ms is not None else DEFAULT_TIMEOUT_HOLD_MS) / 1000
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            if _client_gone(request):
                call["status"] = None
                raise Dropped()
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return _body_response(fault.status or 504, fault.body, dict(fault.headers))
    if fault.kind == "oversize":
        return await _oversize(request, fault, call)
    if fault.kind == "drop":
        t = request.transport
        if t is not None:
            t.close()
        raise Dropped()
    raise AssertionError(fault.kind)


async def _oversize(request: web.Request, fault: Fault, call: dict) -> web.StreamResponse:
    """A 200 JSON answer of `size_bytes` (default 50 MB): a JSON string of spaces, streamed in
    64 KB chunks, chunked unless `content_length` (then the length is announced up front). The
    call log's `sent_bytes` says how much went out before the client hung up."""
    size = fault.size_bytes or DEFAULT_OVERSIZE_BYTES
    resp = web.StreamResponse(status=fault.status or 200, headers={"Content-Type": "application/json", **fault.headers})
    if fault.content_length:
        resp.content_length = size
    else:
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    sent = 0
    try:
        body_start, chunk = b'"', b" " * OVERSIZE_CHUNK
        await resp.write(body_start)
        sent = 1
        while sent < size - 1:
            piece = chunk[: min(OVERSIZE_CHUNK, size - 1 - sent)]
            await resp.write(piece)
            sent += len(piece)
        await resp.write(b'"')
        sent += 1
        await resp.write_eof()
    except (ConnectionResetError, ConnectionError, RuntimeError):
        call["sent_bytes"] = sent
        raise Dropped() from None
    call["sent_bytes"] = sent
    return resp


async def after_commit(request: web.Request, fault: Fault, committed: web.StreamResponse,
                       call: dict) -> web.StreamResponse:
    """The request was handled for real (whatever the product did is done and stays done); now
    lose its answer: close the connection (`commit_then_drop`) or answer `status` instead
    (`commit_then_status`, default 502, with `body`/`headers`/`retry_after` as for `status`).
    The call log keeps the real outcome in `committed_status`."""
    call["committed_status"] = committed.status
    if fault.kind == "commit_then_drop":
        t = request.transport
        if t is not None:
            t.close()
        raise Dropped()
    headers = dict(fault.headers)
    if fault.retry_after is not None:
        headers.setdefault("Retry-After", str(fault.retry_after))
    return _body_response(fault.status or 502, fault.body, headers)


# ---- seeded random faults (the fault campaign, tests/chaos) ---------------------------------
# `PUT /_sim/chaos {"seed": N, "probability": 0.2, ...}` turns it on: each recorded request draws
# from its own random stream, seeded by (seed, route, the route's request number), so the same
# seed and the same per-route sequence of requests give the same faults whatever the interleaving
# of concurrent routes. A request that draws a fault gets one kind picked (uniformly) among those
# that fit its route: commit_then_drop only on creates, token_failure only on the token endpoint,
# expired_token only on a Bearer token already used, once per token. `GET /_sim/chaos` answers the counts per kind.
CHAOS_KINDS = ("rate_limit", "status", "timeout", "latency", "drop", "commit_then_drop",
               "token_failure", "expired_token")
_CREATE_SUFFIXES = ("/wiki/api/v2/pages", "/rest/api/content", "/child/attachment",
                    "/rest/api/3/issue", "/rest/api/3/issue/bulk", "/api/2/issue", "/api/2/issue/bulk")


def is_create(route: str) -> bool:
    if route.startswith("PUT "):
        return route.endswith("/child/attachment")     # Cloud's create-or-update of an attachment
    return route.startswith("POST ") and any(route.endswith(s) for s in _CREATE_SUFFIXES)


class Chaos:
    def __init__(self, seed: int, probability: float = 0.2, kinds=None, timeout_ms: int = 1500,
                 latency_ms: int = 300, retry_after: int = 1, exclude=None):
        import random as _random
        self._random = _random
        self.seed = seed
        self.probability = probability
        self.kinds = tuple(kinds) if kinds else CHAOS_KINDS
        self.timeout_ms, self.latency_ms, self.retry_after = timeout_ms, latency_ms, retry_after
        # routes that never draw (prefix match): the browser's consent pages by default
        self.exclude = tuple(exclude) if exclude is not None else ("GET /authorize", "POST /authorize")
        self.per_route: dict[str, int] = {}
        self.requests = 0
        self.counts: dict[str, int] = {k: 0 for k in self.kinds}
        # expired_token: only a token already used (a fresh one is never "expired" — refusing a
        # just-issued token is what a revoked grant looks like), and only once per token.
        self._used_tokens: set[str] = set()
        self._expired_tokens: set[str] = set()

    def to_json(self) -> dict:
        return {"seed": self.seed, "probability": self.probability, "kinds": list(self.kinds),
                "requests": self.requests, "injected": dict(self.counts),
                "injected_total": sum(self.counts.values())}

    def _eligible(self, route: str, bearer: bool) -> list[str]:
        token = route in ("POST /oauth/token",) or route.endswith("/token")
        out = []
        for kind in self.kinds:
            if kind == "commit_then_drop" and not is_create(route):
                continue
            if kind == "token_failure" and not token:
                continue
            if kind == "expired_token" and (not bearer or token):
                continue
            if token and kind not in ("token_failure", "drop", "latency"):
                continue
            out.append(kind)
        return out

    def draw(self, request: web.Request, route: str | None) -> Fault | None:
        if route is None or any(route.startswith(x) for x in self.exclude):
            return None
        n = self.per_route.get(route, 0)
        self.per_route[route] = n + 1
        self.requests += 1
        rng = self._random.Random(f"{self.seed}\0{route}\0{n}")
        if rng.random() >= self.probability:
            auth = request.headers.get("Authorization") or ""
            if auth.lower().startswith("bearer "):
                self._used_tokens.add(auth[7:])
            return None
        auth = request.headers.get("Authorization") or ""
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        expirable = token is not None and token in self._used_tokens and token not in self._expired_tokens
        if token is not None:
            self._used_tokens.add(token)
        kinds = self._eligible(route, expirable)
        if not kinds:
            return None
        kind = rng.choice(kinds)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        fid = f"chaos-{kind}"
        if kind == "rate_limit":
            return Fault(id=fid, route=route, kind="rate_limit", retry_after=self.retry_after, times=None)
        if kind == "status":
            return Fault(id=fid, route=route, kind="status", status=rng.choice((500, 502, 503, 504)), times=None)
        if kind == "timeout":
            return Fault(id=fid, route=route, kind="timeout", latency_ms=self.timeout_ms, times=None)
        if kind == "latency":
            return Fault(id=fid, route=route, kind="latency", latency_ms=rng.randint(1, self.latency_ms), times=None)
        if kind == "drop":
            return Fault(id=fid, route=route, kind="drop", times=None)
        if kind == "commit_then_drop":
            return Fault(id=fid, route=route, kind="commit_then_drop", times=None)
        if kind == "token_failure":
            if rng.random() < 0.5:
                return Fault(id=fid, route=route, kind="status", status=503, times=None)
            return Fault(id=fid, route=route, kind="rate_limit", retry_after=self.retry_after, times=None)
        self._expired_tokens.add(token)
        # expired_token: Atlassian's answer to an access token that has just expired (it was
        # valid; the grant and its refresh token are fine): 401, the client refreshes.
        return Fault(id=fid, route=route, kind="status", status=401,
                     body={"code": 401, "message": "Unauthorized; scope does not match"}, times=None)


def parse_chaos(body: dict) -> Chaos:
    if not isinstance(body, dict):
        raise ValueError("chaos must be a JSON object")
    seed = body.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("'seed' must be an integer")
    p = body.get("probability", 0.2)
    if not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError("'probability' must be between 0 and 1")
    kinds = body.get("kinds")
    if kinds is not None and (not isinstance(kinds, list) or not set(kinds) <= set(CHAOS_KINDS)):
        raise ValueError(f"'kinds' must be a list of {list(CHAOS_KINDS)}")
    ints = {}
    for key in ("timeout_ms", "latency_ms", "retry_after"):
        if key in body:
            v = body[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"'{key}' must be a non-negative integer")
            ints[key] = v
    exclude = body.get("exclude")
    if exclude is not None and (not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude)):
        raise ValueError("'exclude' must be a list of route prefixes")
    return Chaos(seed, float(p), kinds, exclude=exclude, **ints)
