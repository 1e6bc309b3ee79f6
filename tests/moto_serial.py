"""moto's server, handling one AWS request at a time.

moto's backends are plain Python dicts without locks (getmoto/moto#372, "Moto running into
thread-safety issues"): its threaded server answers concurrent DynamoDB writes with a 500
(`RuntimeError: dictionary changed size during iteration`) and can interleave a conditional
write's check with another's update — the atomicity per item that our ledger's conditional claims
rely on, and that DynamoDB itself guarantees. Our jobs write to the table concurrently, so the dev
stack serializes the requests: connections are still accepted in parallel (keep-alive works), and
each request runs under one lock, which is what DynamoDB's per-item atomicity looks like from
outside.

It also makes moto's TransactWriteItems cost what the transaction touches. moto 5 backs a
transaction up by deep-copying every table it names once per *action*
(`DynamoDBBackend.transact_write_items`), so a 100-action transaction on a table of 10,000 items
copies a million items, and the bench measured seconds per transaction where DynamoDB takes
milliseconds. `transact_write_items` below snapshots only the items the actions name and restores
exactly those when the transaction is cancelled: the same all-or-nothing outcome, since an action
can change no other item.

For the fault campaign it can also be slowed (`PUT /_serial/latency`, below): AWS's own APIs are
not instant, and a job whose DynamoDB writes take tens of milliseconds holds leases, slots and
idempotency claims longer, which is where races hide.

    python -m tests.moto_serial -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import signal
import sys
import threading
import time
import types

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

_moto_transact_write_items = DynamoDBBackend.transact_write_items


def _touched(backend, transact_items):
    """(table, hash, range) of every item the actions name; None when one can't be read, and then
    moto's own full-table backup is kept."""
    keys = []
    for action in transact_items:
        ((kind, op),) = action.items()
        table = backend.tables.get(op.get("TableName"))
        key = op.get("Item") if kind == "Put" else op.get("Key")
        if table is None or key is None or table.hash_key_attr not in key:
            return None
        if table.has_range_key and table.range_key_attr not in key:
            return None
        range_value = DynamoType(key[table.range_key_attr]) if table.has_range_key else None
        keys.append((table, DynamoType(key[table.hash_key_attr]), range_value))
    return keys


def _restore(table, hash_value, range_value, item):
    if table.has_range_key:
        if item is None:
            table.items.get(hash_value, {}).pop(range_value, None)
        else:
            table.items[hash_value][range_value] = item
    elif item is None:
        table.items.pop(hash_value, None)
    else:
        table.items[hash_value] = item


def transact_write_items(self, transact_items):
    keys = _touched(self, transact_items)
    if keys is None:
        return _moto_transact_write_items(self, transact_items)
    saved = [(t, h, r, copy.deepcopy(t.get_item(h, r))) for t, h, r in keys]
    # moto's backup of each whole table becomes the table itself (its rollback a no-op); ours
    # restores the named items. Safe to swap the module's `copy` because requests are serialized.
    no_table_copies = types.SimpleNamespace(
        deepcopy=lambda obj, memo=None: obj if isinstance(obj, Table) else copy.deepcopy(obj, memo))
    dynamodb_models.copy = no_table_copies
    try:
        return _moto_transact_write_items(self, transact_items)
    except Exception:
        for table, hash_value, range_value, item in reversed(saved):
            _restore(table, hash_value, range_value, item)
        raise
    finally:
        dynamodb_models.copy = copy


DynamoDBBackend.transact_write_items = transact_write_items


class Latency:
    """Seeded slowness: each request, with `probability`, waits a uniform `min_ms`..`max_ms`
    before it queues for the lock, as a slow AWS answer looks to the caller (its latency, not a
    stall of every other request). Draws come from `random.Random(seed)` in arrival order."""

    def __init__(self, seed: int, probability: float, min_ms: float, max_ms: float):
        self.seed, self.probability, self.min_ms, self.max_ms = seed, probability, min_ms, max_ms
        self.rng = random.Random(f"{seed}\0moto")
        self.lock = threading.Lock()
        self.requests = self.delayed = 0
        self.delayed_ms = 0.0

    @classmethod
    def parse(cls, body) -> "Latency":
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        seed = body.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError("'seed' must be an integer")
        probability = body.get("probability", 0.2)
        if not isinstance(probability, (int, float)) or isinstance(probability, bool) or not 0 <= probability <= 1:
            raise ValueError("'probability' must be between 0 and 1")
        lo, hi = body.get("min_ms", 5), body.get("max_ms", 100)
        for name, v in (("min_ms", lo), ("max_ms", hi)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 10_000:
                raise ValueError(f"'{name}' must be between 0 and 10000")
        if lo > hi:
            raise ValueError("'min_ms' must not exceed 'max_ms'")
        return cls(seed, float(probability), float(lo), float(hi))

    def draw(self) -> float:
        """Seconds this request waits (0 for most)."""
        with self.lock:
            self.requests += 1
            if self.rng.random() >= self.probability:
                return 0.0
            ms = self.rng.uniform(self.min_ms, self.max_ms)
            self.delayed += 1
            self.delayed_ms += ms
            return ms / 1000

    def to_json(self) -> dict:
        return {"seed": self.seed, "probability": self.probability, "min_ms": self.min_ms,
                "max_ms": self.max_ms, "requests": self.requests, "delayed": self.delayed,
                "delayed_ms": round(self.delayed_ms)}


CONTROL = "/_serial/latency"
STATS_PATH = "/_serial/stats"


class Serialized:
    """A WSGI app that lets one request at a time into `app`, its response body included; and,
    at `/_serial/latency` (PUT a Latency's JSON, GET its counters, DELETE to stop and read them),
    the seeded slowness of the fault campaign.

    It also counts, per AWS operation (`X-Amz-Target`), the requests and the time they held the
    lock: `GET /_serial/stats` answers `{"busy_ms", "requests", "operations": {op: {"requests",
    "busy_ms"}}}` since the start. One server serves everyone in turn, so its busy time is the
    ceiling of what the stack can do — the bench's load scenario reports it."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.latency: Latency | None = None
        self.operations: dict[str, list] = {}      # op -> [requests, busy seconds]

    def stats(self, start_response):
        with self.lock:
            ops = {op: {"requests": n, "busy_ms": round(busy * 1000, 1)} for op, (n, busy) in self.operations.items()}
        body = json.dumps({"busy_ms": round(sum(o["busy_ms"] for o in ops.values()), 1),
                           "requests": sum(o["requests"] for o in ops.values()), "operations": ops}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def _control(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        status, answer = "200 OK", None
        if method == "PUT":
            try:
                size = int(environ.get("CONTENT_LENGTH") or 0)
                self.latency = Latency.parse(json.loads(environ["wsgi.input"].read(size) or b"null"))
                answer = {"latency": self.latency.to_json()}
            except (ValueError, json.JSONDecodeError) as exc:
                status, answer = "400 Bad Request", {"error": str(exc)}
        elif method in ("GET", "DELETE"):
            answer = {"latency": self.latency.to_json() if self.latency else None}
            if method == "DELETE":
                self.latency = None
        else:
            status, answer = "405 Method Not Allowed", {"error": "GET, PUT or DELETE"}
        body = json.dumps(answer).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == CONTROL:
            return self._control(environ, start_response)
        if environ.get("PATH_INFO") == STATS_PATH:
            return self.stats(start_response)
        latency = self.latency
        if latency is not None:
            wait = latency.draw()
            if wait:
                time.sleep(wait)   # the injected slowness itself, not a synchronisation
        with self.lock:
            start = time.perf_counter()
            # Materialize the body under the lock: moto may build it lazily from its dicts.
            body = list(self.app(environ, start_response))
            # Time under the lock only: an injected wait (above) is the caller's, not moto's work.
            counted = self.operations.setdefault(environ.get("HTTP_X_AMZ_TARGET") or "other", [0, 0.0])
            counted[0] += 1
            counted[1] += time.perf_counter() - start
            return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, Serialized(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
