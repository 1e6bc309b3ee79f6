"""Lambda's asynchronous invocation, as an EventBridge rule target gets it, and EventBridge's
at-least-once delivery — switched on for the fault campaign (`PUT /_gateway/chaos`).

- A failed invocation (function error, crash, timeout) is retried twice more with a backoff
  (Lambda waits about 1 and 2 minutes; here `backoff_ms`), then the event goes to the function's
  dead-letter queue: an SQS queue `<function>-dlq` in moto (the devstack creates one per
  event-consuming function, as infra/lib/constructs/events.ts configures one per function), with
  Lambda's DLQ message attributes RequestID, ErrorCode and ErrorMessage.
- When the function's on-failure destination is the bus (`on_failure_to_bus` in the gateway
  config, as infra's EventInvokeConfig sets it for every event consumer), Lambda also puts an
  invocation record on the bus once the event is dead-lettered: source `lambda`, detail-type
  `Lambda Function Invocation Result - Failure`, the original event as `requestPayload` (see
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html). Here it
  takes the path a PutEvents entry takes to the rules (`Gateway.route`): the rule for that
  function's records (`failure_rules`) delivers it back to the function, asynchronously too.
- EventBridge delivers at least once: with `duplicate_probability` an event is handed to its
  target twice, concurrently (each delivery runs its own retries).
- With `kill_probability` an instance is killed mid-invocation (runtime.FunctionPool).

Decisions come from `random.Random(seed)` streams (one for duplicates, one per function for
kills), so one seed gives one run of decisions for one sequence of events.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .events import ACCOUNT_ID
from .routing import EventRule

INVOCATION_FAILURE = "Lambda Function Invocation Result - Failure"

log = logging.getLogger("gateway.async")


@dataclass
class AsyncChaos:
    seed: int
    retries: int = 2
    backoff_ms: list[float] = field(default_factory=lambda: [50.0, 100.0])
    duplicate_probability: float = 0.0
    kill_probability: float = 0.0
    kill_max_ms: float = 2000.0
    rng: random.Random = field(init=False)
    stats: dict = field(default_factory=lambda: {"deliveries": 0, "attempts": 0, "retries": 0,
                                                 "failed_attempts": 0, "dead_lettered": 0,
                                                 "duplicates_delivered": 0, "dlq_errors": 0,
                                                 "failure_records": 0})

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}\0duplicates")

    def to_json(self) -> dict:
        return {"seed": self.seed, "retries": self.retries, "backoff_ms": self.backoff_ms,
                "duplicate_probability": self.duplicate_probability,
                "kill_probability": self.kill_probability, "kill_max_ms": self.kill_max_ms,
                **self.stats}


def parse(body) -> AsyncChaos:
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    seed = body.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("'seed' must be an integer")
    kw = {}
    for key in ("duplicate_probability", "kill_probability"):
        if key in body:
            v = body[key]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
                raise ValueError(f"'{key}' must be between 0 and 1")
            kw[key] = float(v)
    if "kill_max_ms" in body:
        v = body["kill_max_ms"]
        if not isinstance(v, (int, float)) or v < 0:
            raise ValueError("'kill_max_ms' must be a non-negative number")
        kw["kill_max_ms"] = float(v)
    if "retries" in body:
        v = body["retries"]
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 2:
            raise ValueError("'retries' must be 0, 1 or 2 (Lambda's MaximumRetryAttempts)")
        kw["retries"] = v
    if "backoff_ms" in body:
        v = body["backoff_ms"]
        if not isinstance(v, list) or not all(isinstance(x, (int, float)) and x >= 0 for x in v):
            raise ValueError("'backoff_ms' must be a list of non-negative numbers")
        kw["backoff_ms"] = [float(x) for x in v]
    return AsyncChaos(seed, **kw)


def function_arn(region: str, function: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function}:$LATEST"


def failure_rules(functions: dict) -> list[EventRule]:
    """One rule per function whose on-failure destination is the bus: its own records back to it
    (infra/lib/constructs/events.ts builds the same rule)."""
    return [EventRule(detail_type=INVOCATION_FAILURE, function=name, source="lambda", failure_of=name)
            for name, fn in functions.items() if fn.on_failure_to_bus]


def failure_record(region: str, function: str, event: dict, attempts: int, error: dict) -> dict:
    """The EventBridge event Lambda's on-failure destination puts on the bus."""
    now = time.time()
    record = {
        "version": "1.0",
        "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": function_arn(region, function),
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": str(error.get("errorType", "")),
                            "errorMessage": str(error.get("errorMessage", ""))[:256]},
    }
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": INVOCATION_FAILURE, "source": "lambda",
            "account": ACCOUNT_ID,
            "time": datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region, "resources": [function_arn(region, function)], "detail": record}


class AsyncDelivery:
    """Delivers one event to one function as Lambda's async invocation does."""

    def __init__(self, gateway, chaos: AsyncChaos):
        self.gateway = gateway
        self.chaos = chaos

    async def deliver(self, function: str, event: dict) -> list[dict]:
        """The outcome of each delivery of the event (two when EventBridge duplicates it)."""
        copies = 1
        if self.chaos.duplicate_probability and self.chaos.rng.random() < self.chaos.duplicate_probability:
            copies = 2
            self.chaos.stats["duplicates_delivered"] += 1
        return list(await asyncio.gather(*(self._one(function, event, copy) for copy in range(copies))))

    async def _one(self, function: str, event: dict, copy: int) -> dict:
        self.chaos.stats["deliveries"] += 1
        attempts = []
        result = None
        for attempt in range(self.chaos.retries + 1):
            if attempt:
                self.chaos.stats["retries"] += 1
                backoff = self.chaos.backoff_ms[min(attempt - 1, len(self.chaos.backoff_ms) - 1)] \
                    if self.chaos.backoff_ms else 0
                await asyncio.sleep(backoff / 1000)
            self.chaos.stats["attempts"] += 1
            result = await self.gateway.invoke(function, event)
            attempts.append(result.status)
            if result.ok:
                break
            self.chaos.stats["failed_attempts"] += 1
        out = {"event_id": event["id"], "copy": copy, "attempts": attempts,
               **self.gateway._invocation(function, result)}
        if not result.ok:
            out["dead_lettered"] = await self._dead_letter(function, event, result)
            fn = self.gateway.config.functions[function]
            if fn.on_failure_to_bus:
                # Lambda sends the record to the destination as well as the event to the DLQ.
                region = fn.env.get("AWS_REGION") or self.gateway.config.region
                record = failure_record(region, function, event, len(attempts), result.error or {})
                self.chaos.stats["failure_records"] += 1
                out["on_failure"] = await self.gateway.route([record])
        return out

    async def _dead_letter(self, function: str, event: dict, result) -> bool:
        env = self.gateway.config.functions[function].env
        endpoint = env.get("AWS_ENDPOINT_URL")
        if not endpoint:
            log.warning("%s: no AWS_ENDPOINT_URL; event %s not dead-lettered", function, event["id"])
            self.chaos.stats["dlq_errors"] += 1
            return False
        error = result.error or {}

        def send() -> None:
            import boto3
            sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=env.get("AWS_REGION", "us-east-1"),
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            url = sqs.get_queue_url(QueueName=f"{function}-dlq")["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event), MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": event["id"]},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String",
                                 "StringValue": str(error.get("errorType", result.status))[:256]}})

        try:
            await asyncio.get_running_loop().run_in_executor(None, send)
        except Exception as exc:  # noqa: BLE001 - reported in the stats and the answer
            log.warning("%s: dead-lettering event %s failed: %s", function, event["id"], exc)
            self.chaos.stats["dlq_errors"] += 1
            return False
        self.chaos.stats["dead_lettered"] += 1
        log.info("%s: event %s dead-lettered after %d attempts", function, event["id"], self.chaos.retries + 1)
        return True
