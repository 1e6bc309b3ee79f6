"""The gateway's asynchronous invocation of EventBridge targets (`PUT /_gateway/chaos`): two
retries with backoff, then the function's DLQ (SQS in moto); duplicate deliveries; instances
killed mid-invocation. Off by default: /_gateway/events stays one synchronous invocation per rule.

Run: .venv/bin/python -m pytest tests/gateway/test_async_invoke.py -q
"""
from __future__ import annotations

import json
import os
import sys

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from .procutil import ChildProcess
from .test_gateway import FAKE, REPO

ROUTES = {"routes": [], "events": [{"detail_type": "Thing Happened", "function": "fake"},
                                   {"detail_type": "Thing Destined", "function": "fake-dest"}], "schedules": []}


@pytest.fixture(scope="module")
def moto():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    queue = sqs.create_queue(QueueName="fake-dlq")["QueueUrl"]
    sqs.create_queue(QueueName="fake-dest-dlq")
    yield url, sqs, queue
    server.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, moto):
    tmp = tmp_path_factory.mktemp("gateway-async")
    (tmp / "routes.json").write_text(json.dumps(ROUTES))
    env = {"AWS_ENDPOINT_URL": moto[0], "AWS_REGION": "us-east-1"}
    config = {"host": "127.0.0.1", "port": 0, "routes_file": str(tmp / "routes.json"),
              "functions": {"fake": {"command": FAKE, "env": env, "timeout_seconds": 5},
                            # As infra configures an event consumer: its on-failure destination is the bus.
                            "fake-dest": {"command": FAKE, "env": env, "timeout_seconds": 5, "on_failure_to_bus": True}},
              "logs_dir": str(tmp / "logs")}
    (tmp / "config.json").write_text(json.dumps(config))
    child = ChildProcess("gateway", [sys.executable, "-m", "tests.gateway", "--config", str(tmp / "config.json")],
                         tmp / "logs" / "gateway.log", env=dict(os.environ), cwd=REPO)
    child.start().wait_ready(timeout=20)
    yield child
    requests.delete(child.url + "/_gateway/chaos", timeout=10)
    assert child.stop() == 0, child.log_tail()


def chaos(gw, **body):
    r = requests.put(gw.url + "/_gateway/chaos", json={"seed": 1, "backoff_ms": [10, 20], **body}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["chaos"]


def event(gw, **detail):
    r = requests.post(gw.url + "/_gateway/events", timeout=60, json={
        "Source": "saas.test", "DetailType": "Thing Happened", "Detail": json.dumps(detail)})
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


def drain(moto) -> list[dict]:
    _, sqs, queue = moto
    out = []
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                       WaitTimeSeconds=0).get("Messages", []):
        for m in batch:
            out.append(m)
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return out


def test_a_failing_event_is_tried_three_times_then_dead_lettered(gw, moto):
    drain(moto)
    chaos(gw)
    [inv] = event(gw, fake="error", n=1)
    assert inv["status"] == "error" and inv["attempts"] == ["error"] * 3 and inv["dead_lettered"]
    [message] = drain(moto)
    body = json.loads(message["Body"])
    assert body["id"] == inv["event_id"] and body["detail"]["n"] == 1
    assert message["MessageAttributes"]["RequestID"]["StringValue"] == inv["event_id"]
    assert message["MessageAttributes"]["ErrorMessage"]["StringValue"]
    stats = requests.get(gw.url + "/_gateway/chaos", timeout=10).json()["chaos"]
    assert stats["attempts"] == 3 and stats["retries"] == 2 and stats["dead_lettered"] == 1


def test_a_crash_is_retried_and_a_success_is_not(gw, moto):
    drain(moto)
    chaos(gw)
    [crashed] = event(gw, fake="crash")
    assert crashed["attempts"] == ["crash"] * 3 and crashed["dead_lettered"]
    [ok] = event(gw, fake="echo")
    assert ok["status"] == "ok" and ok["attempts"] == ["ok"] and "dead_lettered" not in ok
    assert len(drain(moto)) == 1


def test_duplicates_are_delivered_concurrently(gw, moto):
    chaos(gw, duplicate_probability=1.0)
    invs = event(gw, fake="slow", sleep=0.3)
    assert [i["copy"] for i in invs] == [0, 1] and all(i["status"] == "ok" for i in invs)
    assert invs[0]["event_id"] == invs[1]["event_id"]
    # concurrently: two instances served them
    assert invs[0]["response"]["pid"] != invs[1]["response"]["pid"]


def test_instances_are_killed_mid_invocation_and_the_retry_gets_a_fresh_one(gw, moto):
    drain(moto)
    chaos(gw, kill_probability=1.0, kill_max_ms=50)
    [inv] = event(gw, fake="slow", sleep=1)
    assert inv["attempts"] == ["crash"] * 3 and inv["dead_lettered"]
    assert requests.get(gw.url + "/_gateway/chaos", timeout=10).json()["chaos"]["kills"] == 3
    assert len(drain(moto)) == 1
    requests.delete(gw.url + "/_gateway/chaos", timeout=10)
    [plain] = event(gw, fake="error")                  # off again: one synchronous invocation
    assert plain["status"] == "error" and "attempts" not in plain


def test_a_dead_letter_of_a_function_with_an_on_failure_destination_comes_back_as_lambdas_record(gw, moto):
    chaos(gw)
    [plain] = event(gw, fake="error")
    assert plain["dead_lettered"] and "on_failure" not in plain, plain   # no destination: the DLQ only
    r = requests.post(gw.url + "/_gateway/events", timeout=60, json={
        "Source": "saas.test", "DetailType": "Thing Destined", "Detail": json.dumps({"fake": "error"})})
    [inv] = r.json()["invocations"]
    assert inv["attempts"] == ["error"] * 3 and inv["dead_lettered"], inv
    # The record went through the rules to its function's own record rule, asynchronously (and
    # the record, no longer an error to the fake, is echoed).
    [back] = inv["on_failure"]
    assert back["function"] == "fake-dest" and back["attempts"] == ["ok"], back
    record = back["response"]["event"]
    assert (record["source"], record["detail-type"]) == ("lambda", "Lambda Function Invocation Result - Failure")
    context = record["detail"]["requestContext"]
    assert context["functionArn"].split(":")[6] == "fake-dest" and context["condition"] == "RetriesExhausted"
    assert context["approximateInvokeCount"] == 3
    assert record["detail"]["requestPayload"]["id"] == inv["event_id"]
    assert requests.get(gw.url + "/_gateway/chaos", timeout=10).json()["chaos"]["failure_records"] == 1
    drain(moto)


def test_bad_chaos_bodies_are_refused(gw):
    for body in ({}, {"seed": 1, "retries": 3}, {"seed": 1, "kill_probability": 2}):
        assert requests.put(gw.url + "/_gateway/chaos", json=body, timeout=10).status_code == 400
