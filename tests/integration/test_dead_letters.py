"""A dead-lettered event is told to the SaaS exactly once: an event that fails on all three of
Lambda's attempts lands in the function's DLQ, and Lambda's on-failure record of it (on the bus,
back to the function) becomes one `Publish Failed` with `retryable: false` and the code
`retries_exhausted` — once, however often the record arrives, and never for a job that another
delivery finished. The gateway plays Lambda's asynchronous invocation (`PUT /_gateway/chaos`).

Run: .venv/bin/python -m pytest -q tests/integration/test_dead_letters.py
"""

import json
import uuid

import pytest
import requests

from . import jobs

SPACE = "SPA"
FAILURE = "Lambda Function Invocation Result - Failure"


@pytest.fixture
def async_lambda(bridge):
    """Lambda's asynchronous invocation (retries 10 and 20 ms apart, then the DLQ and the
    on-failure record), no duplicates or kills: this test makes its own duplicates."""
    r = requests.put(bridge.gw + "/_gateway/chaos", json={"seed": 16, "backoff_ms": [10, 20]}, timeout=10)
    assert r.status_code == 200, r.text
    bridge.stack.dead_letters("publish-page")
    yield bridge
    requests.delete(bridge.gw + "/_gateway/chaos", timeout=10)
    bridge.stack.sim("DELETE", "/_sim/faults")


def put(bridge, source: str, detail_type: str, detail: dict) -> list[dict]:
    r = bridge.http.post(bridge.gw + "/_gateway/events", json={
        "Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


def record_of(event: dict, function: str = "publish-page") -> dict:
    """Lambda's invocation record of `event`, as its on-failure destination puts it on the bus."""
    return {"version": "1.0", "timestamp": "2026-12-04T00:00:00.000Z",
            "requestContext": {"requestId": str(uuid.uuid4()),
                               "functionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{function}:$LATEST",
                               "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "&alloc::boxed::Box<dyn Error>", "errorMessage": "upstream_error"}}


def terminal(bridge, tenant: str, key: str) -> list[dict]:
    return [e["detail"] for e in bridge.stack.published_events()
            if e["detail-type"] == "Publish Failed" and e["detail"].get("tenant_id") == tenant
            and e["detail"].get("idempotency_key") == key and e["detail"]["retryable"] is False]


def test_a_dead_lettered_report_is_reported_failed_once(async_lambda):
    bridge = async_lambda
    _, tenant, _ = jobs.confluence_tenant(bridge, "cloud", SPACE)
    # Confluence fails every write: each of the three attempts fails retryably.
    bridge.stack.sim("POST", "/_sim/faults", {"route": "POST ", "kind": "status", "status": 503, "times": None})
    key = uuid.uuid4().hex
    detail = {"tenant_id": tenant, "idempotency_key": key, "report": jobs.retrospective()}
    [invocation] = put(bridge, "saas.retro", "Report Ready", detail)
    assert invocation["attempts"] == ["error"] * 3 and invocation["dead_lettered"], invocation
    # The record went back to the function and was settled there.
    [settled] = invocation["on_failure"]
    assert settled["function"] == "publish-page" and settled["status"] == "ok", settled

    [parked] = bridge.stack.dead_letters("publish-page")
    assert parked["event"]["detail"]["idempotency_key"] == key
    sent = bridge.stack.published_events()
    ours = [e["detail"] for e in sent if e["detail"].get("idempotency_key") == key]
    retried = [e for e in ours if e.get("retryable") is True]
    assert len(retried) == 3, ours  # each attempt said it would be tried again
    [failed] = [e for e in ours if e.get("retryable") is False]
    assert failed["code"] == "retries_exhausted" and failed["job"] == "page", failed
    assert "3 attempt" in failed["reason"] and "dead-letter queue" in failed["reason"], failed
    assert "Sprint 42" not in json.dumps(failed)  # never the payload

    # The record delivered again (EventBridge delivers at least once): still one.
    again = put(bridge, "lambda", FAILURE, record_of(parked["event"]))
    assert [i["status"] for i in again] == ["ok"], again
    assert terminal(bridge, tenant, key) == []

    # A redrive of the dead letter, Confluence healthy again, publishes it.
    bridge.stack.sim("DELETE", "/_sim/faults")
    [redriven] = put(bridge, "saas.retro", "Report Ready", detail)
    assert redriven["status"] == "ok", redriven
    assert [e["detail-type"] for e in bridge.stack.published_events()
            if e["detail"].get("idempotency_key") == key] == ["Page Published"]


def test_a_job_that_succeeded_on_another_delivery_is_not_reported(async_lambda):
    bridge = async_lambda
    _, tenant, _ = jobs.confluence_tenant(bridge, "dc", SPACE)
    key = uuid.uuid4().hex
    detail = {"tenant_id": tenant, "idempotency_key": key, "report": jobs.health_check()}
    [done] = put(bridge, "saas.retro", "Report Ready", detail)
    assert done["status"] == "ok" and "dead_lettered" not in done, done
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Report Ready", "source": "saas.retro",
             "account": "123456789012", "time": "2026-12-04T00:00:00Z", "region": "us-east-1",
             "resources": [], "detail": detail}
    # A duplicate delivery of the same event had failed three times meanwhile: its record comes.
    [settled] = put(bridge, "lambda", FAILURE, record_of(event))
    assert settled["status"] == "ok", settled
    assert [e["detail-type"] for e in bridge.stack.published_events()
            if e["detail"].get("idempotency_key") == key] == ["Page Published"]


def test_a_record_of_a_record_is_ignored(async_lambda):
    bridge = async_lambda
    tenant, key = bridge.tenant(), uuid.uuid4().hex
    inner = {"version": "0", "id": str(uuid.uuid4()), "detail-type": FAILURE, "source": "lambda",
             "account": "123456789012", "time": "2026-12-04T00:00:00Z", "region": "us-east-1", "resources": [],
             "detail": record_of({"detail-type": "Report Ready", "source": "saas.retro",
                                  "detail": {"tenant_id": tenant, "idempotency_key": key}})}
    [settled] = put(bridge, "lambda", FAILURE, record_of(inner))
    assert settled["status"] == "ok", settled
    assert terminal(bridge, tenant, key) == []


def test_a_dead_lettered_part_of_an_issue_job_fails_the_job_with_its_reason(async_lambda):
    from .test_create_issues import TASK, create, project_key
    bridge = async_lambda
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "jira", "dc")
    project = project_key(bridge, "dc")
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK["dc"]})
    run = uuid.uuid4().hex[:8]
    items = [{"id": f"{run}-{i}", "title": f"{run} action item {i}"} for i in range(201)]
    bridge.stack.set_function_env("create-issue", {"BRIDGE_ISSUE_JOB_BUDGET_SECONDS": "0"})
    try:
        bridge.stack.published_events()
        r = create(bridge, tenant, {"action_items": items})
    finally:
        bridge.stack.set_function_env("create-issue", {"BRIDGE_ISSUE_JOB_BUDGET_SECONDS": None})
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    [part] = [e for e in bridge.stack.published_events()
              if e["detail-type"] == "Action Items Deferred" and e["detail"]["job_id"] == job]
    # The part failed on all three attempts (never delivered here): Lambda's record of it comes.
    for _ in range(2):  # twice: still one notice
        [settled] = put(bridge, "lambda", FAILURE, record_of(part, "create-issue"))
        assert settled["status"] == "ok", settled
    polled = bridge.call("GET", f"/v1/tenants/{tenant}/jobs/{job}", tenant).json()
    assert polled["status"] == "failed" and "dead-letter queue" in polled["reason"], polled
    assert polled["results"][-1]["action_item_id"] == items[-1]["id"]
    assert polled["results"][-1]["status"] == "failed" and polled["results"][-1]["retryable"] is False
    [failed] = terminal(bridge, tenant, part["detail"]["idempotency_key"])
    assert (failed["job"], failed["code"]) == ("issues", "retries_exhausted"), failed
