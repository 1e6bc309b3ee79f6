"""The local gateway, driven over HTTP with a fake function that speaks the Lambda Runtime API.

Run: .venv/bin/python -m pytest tests/gateway -q
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import re
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from .auth import claim_to_string
from .procutil import ChildProcess
from .routing import load_routes

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FAKE = [sys.executable, str(HERE / "fake_function.py")]
SECRET, ISSUER, AUDIENCE = "gateway-test-secret-0123456789abcdef", "gateway-test-issuer", "gateway-test-audience"

ROUTES = {
    "routes": [
        {"method": "GET", "path": "/things/{id}", "function": "fake", "auth": "jwt"},
        {"method": "GET", "path": "/things/special", "function": "fake", "auth": "jwt"},
        {"method": "POST", "path": "/things/{id}/parts/{part}", "function": "fake", "auth": "jwt"},
        {"method": "ANY", "path": "/public/{name}", "function": "fake", "auth": "none"},
        {"method": "GET", "path": "/slow", "function": "slowfn", "auth": "none"},
        {"method": "GET", "path": "/pool", "function": "poolfn", "auth": "none"},
        {"method": "GET", "path": "/broken", "function": "initfail", "auth": "none"},
    ],
    "events": [
        {"detail_type": "Thing Happened", "function": "fake"},
        {"detail_type": "Thing Happened", "source": "other.source", "function": "poolfn"},
    ],
    "schedules": [
        {"name": "tick", "function": "ticker", "expression": "rate(1 hour)", "input": {"fake": "echo", "tick": 1}},
    ],
}


def _function(timeout=5, max_concurrency=64, **env):
    return {"command": FAKE, "env": {"FAKE_SETTING": "one", **env}, "timeout_seconds": timeout,
            "max_concurrency": max_concurrency}


def start_gateway(tmp: Path) -> ChildProcess:
    (tmp / "routes.json").write_text(json.dumps(ROUTES))
    config = {
        "host": "127.0.0.1", "port": 0, "routes_file": str(tmp / "routes.json"),
        "functions": {
            "fake": _function(),
            "slowfn": _function(timeout=1, FAKE_EXTENSION="1"),
            "poolfn": _function(timeout=10, max_concurrency=4),
            "initfail": _function(FAKE_INIT="error"),
            "ticker": _function(),
        },
        "jwt": {"secret": SECRET, "issuer": ISSUER, "audience": AUDIENCE},
        "logs_dir": str(tmp / "logs"),
        "static_routes": {"/_dev/hello": "<p>hello</p>"},
    }
    (tmp / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "GATEWAY_ONLY_SECRET": "must-not-leak"}
    child = ChildProcess("gateway", [sys.executable, "-m", "tests.gateway", "--config",
                                     str(tmp / "config.json")],
                         tmp / "logs" / "gateway.log", env=env, cwd=REPO)
    child.start().wait_ready(timeout=20)
    return child


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway")
    child = start_gateway(tmp)
    child.logs_dir = tmp / "logs"
    yield child
    assert child.stop() == 0, child.log_tail()


def token(**overrides) -> str:
    """An HS256 token; a claim given as None is left out; _secret signs with another key."""
    secret = overrides.pop("_secret", SECRET)
    now = int(time.time())
    claims = {"sub": "user-1", "tenant_id": "acme", "scope": "bridge:admin bridge:read",
              "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(tok: str) -> dict:
    return {"authorization": f"Bearer {tok}"}


def stats(gw) -> dict:
    return requests.get(gw.url + "/_gateway/functions", timeout=10).json()


def echo_body(resp) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------- routing


def test_health(gw):
    assert requests.get(gw.url + "/_gateway/health", timeout=5).status_code == 200


@pytest.mark.parametrize("method,path", [
    ("GET", "/nothing/here"),
    ("DELETE", "/things/1"),        # path exists, method does not
    ("GET", "/things/"),            # an empty segment never fills a parameter
    ("GET", "/things/1/extra"),
])
def test_unmatched_route_is_404(gw, method, path):
    before = stats(gw)["fake"]["invocations"]
    resp = requests.request(method, gw.url + path, headers=bearer(token()), timeout=5)
    assert resp.status_code == 404
    assert resp.json() == {"message": "Not Found"}
    assert stats(gw)["fake"]["invocations"] == before


def test_literal_segment_beats_parameter(gw):
    special = echo_body(requests.get(gw.url + "/things/special", headers=bearer(token()), timeout=10))
    assert special["event"]["routeKey"] == "GET /things/special"
    assert "pathParameters" not in special["event"]
    other = echo_body(requests.get(gw.url + "/things/other", headers=bearer(token()), timeout=10))
    assert other["event"]["routeKey"] == "GET /things/{id}"
    assert other["event"]["pathParameters"] == {"id": "other"}


def test_project_routes_file_matches():
    router, rules = load_routes(REPO / "shared" / "routes.json")
    route, params = router.match("POST", "/v1/tenants/acme/connections/jira/oauth/start")
    assert (route.function, route.auth, params) == ("oauth-callback", "jwt",
                                                    {"tenant": "acme", "product": "jira"})
    route, params = router.match("GET", "/v1/oauth/callback")
    assert (route.function, route.auth, params) == ("oauth-callback", "none", {})
    for method in ("GET", "DELETE"):
        route, params = router.match(method, "/v1/tenants/acme/connections/confluence")
        assert route.function == "connections" and params["product"] == "confluence"
    assert router.match("PUT", "/v1/tenants/acme/connections/jira/site")[0].function == "connections"
    assert router.match("GET", "/v1/tenants/acme") is None
    assert router.match("PATCH", "/v1/tenants/acme/connections/jira") is None
    assert isinstance(rules, list)


# ---------------------------------------------------------------------------- JWT authorizer


@pytest.mark.parametrize("case,headers", [
    ("missing", {}),
    ("empty bearer", {"authorization": "Bearer "}),
    ("garbage", {"authorization": "Bearer not.a.jwt"}),
    ("bad signature", {"authorization": "Bearer " + token(_secret="another-secret-entirely-0123456789abcdef")}),
    ("expired", bearer(token(exp=int(time.time()) - 60))),
    ("no exp", bearer(token(exp=None))),
    ("not yet valid", bearer(token(nbf=int(time.time()) + 600))),
    ("wrong audience", bearer(token(aud="someone-else"))),
    ("wrong issuer", bearer(token(iss="https://evil.example"))),
    ("alg none", {"authorization": "Bearer " + jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600}, None, algorithm="none")}),
])
def test_jwt_rejections_never_invoke_the_function(gw, case, headers):
    before = stats(gw)["fake"]["invocations"]
    resp = requests.get(gw.url + "/things/1", headers=headers, timeout=5)
    assert resp.status_code == 401, case
    assert resp.json() == {"message": "Unauthorized"}
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert stats(gw)["fake"]["invocations"] == before


def test_jwt_error_is_described_in_www_authenticate(gw):
    resp = requests.get(gw.url + "/things/1", headers=bearer(token(aud="x")), timeout=5)
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert "audience" in resp.headers["www-authenticate"]


def test_client_id_stands_in_for_a_missing_audience(gw):
    resp = requests.get(gw.url + "/things/1", headers=bearer(token(aud=None, client_id=AUDIENCE)),
                        timeout=10)
    assert resp.status_code == 200


def test_claim_to_string():
    assert claim_to_string("x") == "x"
    assert claim_to_string(1700000000) == "1700000000"
    assert claim_to_string(1.7e9) == "1700000000"
    assert claim_to_string(True) == "true"
    assert claim_to_string(["a", "b"]) == "[a b]"
    assert claim_to_string({"b": 1, "a": "x"}) == "map[a:x b:1]"


# ---------------------------------------------------------------------------- the event


def raw_request(url: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""):
    """http.client, so that repeated headers go out as separate lines."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest(method, path)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def test_event_shape_for_an_authorized_route(gw):
    now = int(time.time())
    tok = token(exp=now + 600, roles=["a", "b"])
    status, _, body = raw_request(
        gw.url, "POST", "/things/a%20b/parts/p1?x=1&x=2&empty=&sp=a+b",
        [("Authorization", f"Bearer {tok}"), ("X-Repeat", "1"), ("X-Repeat", "2"),
         ("Cookie", "c1=v1; c2=v2"), ("Content-Type", "application/json"),
         ("User-Agent", "gateway-test")],
        b'{"hello": "world"}')
    assert status == 200, body
    event = json.loads(body)["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /things/{id}/parts/{part}"
    assert event["rawPath"] == "/things/a%20b/parts/p1"
    assert event["rawQueryString"] == "x=1&x=2&empty=&sp=a+b"
    assert event["queryStringParameters"] == {"x": "1,2", "empty": "", "sp": "a b"}
    assert event["pathParameters"] == {"id": "a b", "part": "p1"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    headers = event["headers"]
    assert all(k == k.lower() for k in headers)
    assert headers["x-repeat"] == "1,2"
    assert "cookie" not in headers
    assert headers["content-type"] == "application/json"
    assert event["body"] == '{"hello": "world"}' and event["isBase64Encoded"] is False
    assert event["stageVariables"] is None

    ctx = event["requestContext"]
    assert ctx["accountId"] == "123456789012" and ctx["apiId"] == "local"
    assert ctx["stage"] == "$default" and ctx["routeKey"] == event["routeKey"]
    assert ctx["domainName"] == "127.0.0.1" and ctx["domainPrefix"] == "127"
    assert ctx["http"] == {"method": "POST", "path": "/things/a%20b/parts/p1",
                           "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                           "userAgent": "gateway-test"}
    uuid.UUID(ctx["requestId"])
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 60
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", ctx["time"])

    jwt_ctx = ctx["authorizer"]["jwt"]
    assert jwt_ctx["scopes"] == ["bridge:admin", "bridge:read"]
    claims = jwt_ctx["claims"]
    assert all(isinstance(v, str) for v in claims.values())
    assert claims["tenant_id"] == "acme" and claims["sub"] == "user-1"
    assert claims["scope"] == "bridge:admin bridge:read"
    assert claims["exp"] == str(now + 600)
    assert claims["roles"] == "[a b]"


def test_token_without_scope_claim_gives_null_scopes(gw):
    event = echo_body(requests.get(gw.url + "/things/1", headers=bearer(token(scope=None)),
                                   timeout=10))["event"]
    assert event["requestContext"]["authorizer"]["jwt"]["scopes"] is None


def test_public_route_binary_body_is_base64_and_has_no_authorizer(gw):
    payload = bytes(range(256))
    resp = requests.put(gw.url + "/public/blob", data=payload,
                        headers={"content-type": "application/octet-stream"}, timeout=10)
    event = echo_body(resp)["event"]
    assert event["routeKey"] == "ANY /public/{name}"
    assert "authorizer" not in event["requestContext"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_request_without_body_has_no_body_member(gw):
    event = echo_body(requests.get(gw.url + "/public/x", timeout=10))["event"]
    assert "body" not in event and event["isBase64Encoded"] is False
    assert "queryStringParameters" not in event and event["rawQueryString"] == ""
    assert "cookies" not in event


def test_function_environment_and_invocation_context(gw):
    reply = echo_body(requests.get(gw.url + "/public/x", timeout=10))
    env, context = reply["env"], reply["context"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fake"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/fake"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["FAKE_SETTING"] == "one" and env["PATH"]
    assert "GATEWAY_ONLY_SECRET" not in env           # only the configured env is passed on
    uuid.UUID(context["request_id"])
    assert context["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:fake"
    assert context["trace_id"].startswith("Root=1-")
    assert 0 < int(context["deadline_ms"]) / 1000 - time.time() <= 5


def test_env_update_refuses_a_bridge_variable_not_in_shared_env_json(gw):
    r = requests.put(f"{gw.url}/_gateway/functions/fake/env", json={"BRIDGE_TEST_CRASH_ATT": "x"}, timeout=10)
    assert r.status_code == 400 and "BRIDGE_TEST_CRASH_ATT not in shared/env.json" in r.json()["message"]


# ---------------------------------------------------------------------------- responses


def test_structured_response_with_binary_body_cookies_and_multi_value_headers(gw):
    resp = requests.get(gw.url + "/public/x?fake=binary", timeout=10)
    assert resp.status_code == 201
    assert resp.content == bytes(range(256))
    assert resp.headers["content-type"] == "application/octet-stream"
    assert resp.headers["x-single"] == "one"
    assert resp.headers["x-multi"] == "a, b"
    assert resp.raw.headers.getlist("set-cookie") == ["session=abc; Path=/; HttpOnly", "theme=dark"]


@pytest.mark.parametrize("value", ['[1, 2]', '"text"', '{"no": "statusCode"}'])
def test_response_without_status_code_is_200_json(gw, value):
    resp = requests.get(gw.url + "/public/x", params={"fake": "raw", "value": value}, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == json.loads(value)


def test_malformed_response_is_502(gw):
    resp = requests.get(gw.url + "/public/x?fake=bad", timeout=10)
    assert resp.status_code == 502
    assert resp.json() == {"message": "Internal Server Error"}


# ---------------------------------------------------------------------------- failures


def test_invocation_error_is_502(gw):
    resp = requests.get(gw.url + "/public/x?fake=error", timeout=10)
    assert resp.status_code == 502
    assert resp.json() == {"message": "Internal Server Error"}


def test_crash_is_502_and_the_next_call_gets_a_fresh_instance(gw):
    resp = requests.get(gw.url + "/public/x?fake=crash", timeout=10)
    assert resp.status_code == 502
    assert resp.json() == {"message": "Internal Server Error"}
    # The crashed instance is gone from the pool; what is left is alive.
    assert all(pid_alive(pid) for pid in stats(gw)["fake"]["pids"])
    assert echo_body(requests.get(gw.url + "/public/x", timeout=10))["pid"] > 0
    log = (gw.logs_dir / "fake.log").read_text()
    assert "Runtime exited with error: exit status 7" in log


def test_timeout_is_503_kills_the_instance_and_recovers(gw):
    started = time.monotonic()
    resp = requests.get(gw.url + "/slow?fake=hang", timeout=20)
    assert resp.status_code == 503
    assert resp.json() == {"message": "Service Unavailable"}
    assert time.monotonic() - started < 5
    assert stats(gw)["slowfn"]["instances"] == 0
    # (slowfn registers an internal extension, as lambda_runtime's graceful shutdown does)
    assert echo_body(requests.get(gw.url + "/slow", timeout=10))["extension_id"]
    assert "Task timed out after 1.00 seconds" in (gw.logs_dir / "slowfn.log").read_text()


def test_init_error_fails_the_invocation_without_respawning_forever(gw):
    for _ in range(2):
        resp = requests.get(gw.url + "/broken", timeout=20)
        assert resp.status_code == 502
    s = stats(gw)["initfail"]
    assert s["instances"] == 0 and s["cold_starts"] == 2
    assert "FakeInitError" in (gw.logs_dir / "initfail.log").read_text()


# ---------------------------------------------------------------------------- instances


def test_warm_instance_is_reused_and_recycle_forces_a_cold_start(gw):
    first = echo_body(requests.get(gw.url + "/public/warm", timeout=10))["pid"]
    second = echo_body(requests.get(gw.url + "/public/warm", timeout=10))["pid"]
    assert first == second
    resp = requests.post(gw.url + "/_gateway/functions/fake/recycle", timeout=10)
    assert resp.status_code == 200 and resp.json()["stopped"] >= 1
    assert stats(gw)["fake"]["instances"] == 0
    assert not pid_alive(first)
    third = echo_body(requests.get(gw.url + "/public/warm", timeout=10))["pid"]
    assert third != first
    assert requests.post(gw.url + "/_gateway/functions/nope/recycle", timeout=5).status_code == 404


def test_stats_report_init_time_and_peak_memory_per_instance(gw):
    requests.post(gw.url + "/_gateway/functions/fake/recycle", timeout=10)
    pid = echo_body(requests.get(gw.url + "/public/mem", timeout=10))["pid"]
    [live] = stats(gw)["fake"]["instance_stats"]
    assert live["pid"] == pid and live["invocations"] == 1 and live["init_ms"] > 0
    # a Python process holds a few MiB at least; its peak is never below what it holds now
    assert 1024 < live["rss_kib"] <= live["peak_rss_kib"]
    requests.post(gw.url + "/_gateway/functions/fake/recycle", timeout=10)
    after = stats(gw)["fake"]
    gone = [r for r in after["retired"] if r["pid"] == pid]
    assert gone and gone[-1]["peak_rss_kib"] >= live["peak_rss_kib"] and gone[-1]["init_ms"] == live["init_ms"]
    assert after["peak_rss_kib"] >= gone[-1]["peak_rss_kib"]
    log = (gw.logs_dir / "fake.log").read_text()
    assert re.search(r"REPORT RequestId: \S+\tDuration: [\d.]+ ms.*\tMax Memory Used: \d+ MB", log)


def test_code_update_runs_another_program_behind_the_same_routes(gw, tmp_path):
    wrapper = tmp_path / "other_function.py"
    wrapper.write_text("import os, runpy, sys\nos.environ['FAKE_SETTING'] = 'swapped'\n"
                       f"sys.argv = [{str(HERE / 'fake_function.py')!r}]\n"
                       f"runpy.run_path({str(HERE / 'fake_function.py')!r}, run_name='__main__')\n")
    before = echo_body(requests.get(gw.url + "/public/code", timeout=10))["pid"]
    try:
        resp = requests.put(gw.url + "/_gateway/functions/fake/code",
                            json={"command": [sys.executable, str(wrapper)]}, timeout=10)
        assert resp.status_code == 200 and resp.json()["stopped"] >= 1
        assert not pid_alive(before)
        body = echo_body(requests.get(gw.url + "/public/code", timeout=10))
        assert body["env"]["FAKE_SETTING"] == "swapped" and body["pid"] != before
        assert stats(gw)["fake"]["command"] == [sys.executable, str(wrapper)]
        for bad in ({}, {"command": []}, {"command": ["/no/such/program"]}, {"command": "python"}):
            assert requests.put(gw.url + "/_gateway/functions/fake/code", json=bad, timeout=5).status_code == 400
        assert requests.put(gw.url + "/_gateway/functions/nope/code", json={"command": FAKE},
                            timeout=5).status_code == 404
    finally:
        requests.put(gw.url + "/_gateway/functions/fake/code", json={"command": FAKE}, timeout=10)
    assert echo_body(requests.get(gw.url + "/public/code", timeout=10))["env"]["FAKE_SETTING"] == "one"


def test_recycle_lets_an_in_flight_invocation_finish(gw):
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(requests.get, gw.url + "/pool?fake=slow&sleep=0.5", timeout=30)
        wait_for(lambda: stats(gw)["poolfn"]["busy"] >= 1, what="a busy poolfn instance")
        resp = requests.post(gw.url + "/_gateway/functions/poolfn/recycle", timeout=30)
        assert resp.status_code == 200
        busy_pid = pending.result().json()["pid"]
    assert stats(gw)["poolfn"]["instances"] == 0
    assert not pid_alive(busy_pid)


def test_parallel_invocations_spawn_instances_up_to_the_limit(gw):
    requests.post(gw.url + "/_gateway/functions/poolfn/recycle", timeout=10)

    def call(_):
        return requests.get(gw.url + "/pool?fake=slow&sleep=0.3", timeout=30)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(call, range(20)))
    assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]
    pids = {r.json()["pid"] for r in responses}
    assert 2 <= len(pids) <= 4          # several instances, never beyond max_concurrency (4)
    s = stats(gw)["poolfn"]
    assert s["instances"] <= 4 and s["queued"] == 0


# ---------------------------------------------------------------------------- EventBridge


def put_events(gw, entry) -> requests.Response:
    return requests.post(gw.url + "/_gateway/events", json=entry, timeout=30)


def test_eventbridge_delivery_to_matching_rules(gw):
    resp = put_events(gw, {"Source": "bridge.test", "DetailType": "Thing Happened",
                           "Detail": json.dumps({"tenant_id": "acme", "n": 1})})
    assert resp.status_code == 200
    invocations = resp.json()["invocations"]
    assert [i["function"] for i in invocations] == ["fake"]
    assert invocations[0]["status"] == "ok"
    event = invocations[0]["response"]["event"]
    assert event["version"] == "0"
    uuid.UUID(event["id"])
    assert event["detail-type"] == "Thing Happened" and event["source"] == "bridge.test"
    assert event["account"] == "123456789012" and event["region"] == "us-east-1"
    assert event["resources"] == []
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", event["time"])
    assert event["detail"] == {"tenant_id": "acme", "n": 1}


def test_eventbridge_source_filter_and_object_detail(gw):
    resp = put_events(gw, {"Source": "other.source", "DetailType": "Thing Happened",
                           "Detail": {"n": 2}})
    functions = sorted(i["function"] for i in resp.json()["invocations"])
    assert functions == ["fake", "poolfn"]


def test_eventbridge_without_matching_rule_invokes_nothing(gw):
    resp = put_events(gw, {"Source": "x", "DetailType": "Nobody Listens", "Detail": "{}"})
    assert resp.status_code == 200 and resp.json() == {"invocations": []}


def test_eventbridge_function_error_is_reported(gw):
    resp = put_events(gw, {"Source": "x", "DetailType": "Thing Happened",
                           "Detail": {"fake": "error"}})
    (inv,) = resp.json()["invocations"]
    assert inv["status"] == "error"
    assert inv["error"]["errorType"] == "RuntimeError"
    assert inv["error"]["errorMessage"] == "fake failure"


@pytest.mark.parametrize("entry", [
    {"Source": "x", "DetailType": "Thing Happened", "Detail": "not json"},
    {"Source": "x", "DetailType": "Thing Happened", "Detail": "[1]"},
    {"Source": "x", "Detail": "{}"},
])
def test_eventbridge_rejects_malformed_entries(gw, entry):
    assert put_events(gw, entry).status_code == 400


# ---------------------------------------------------------------------------- invoke and schedules


def test_a_schedule_fires_its_function_with_its_input(gw):
    before = stats(gw)["ticker"]["invocations"]
    resp = requests.post(gw.url + "/_gateway/schedules/tick", timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["schedule"], body["function"], body["status"]) == ("tick", "ticker", "ok")
    # The payload is the schedule's input itself, as the Scheduler's Lambda target sends it.
    assert body["response"]["event"] == {"fake": "echo", "tick": 1}
    assert stats(gw)["ticker"]["invocations"] == before + 1


def test_an_unknown_schedule_is_404(gw):
    resp = requests.post(gw.url + "/_gateway/schedules/nope", timeout=10)
    assert resp.status_code == 404 and "nope" in resp.json()["message"]


def test_invoke_runs_a_function_with_any_payload_and_reports_errors(gw):
    ok = requests.post(gw.url + "/_gateway/functions/fake/invoke", json={"anything": [1, 2]}, timeout=30).json()
    assert ok["status"] == "ok" and ok["response"]["event"] == {"anything": [1, 2]}
    failed = requests.post(gw.url + "/_gateway/functions/fake/invoke", json={"detail": {"fake": "error"}},
                           timeout=30).json()
    assert failed["status"] == "error" and failed["error"]["errorMessage"] == "fake failure"
    assert requests.post(gw.url + "/_gateway/functions/nope/invoke", json={}, timeout=10).status_code == 404
    bad = requests.post(gw.url + "/_gateway/functions/fake/invoke", data=b"not json", timeout=10)
    assert bad.status_code == 400


# ---------------------------------------------------------------------------- logs and pages


def test_function_output_is_captured_in_its_log(gw):
    marker = uuid.uuid4().hex
    echo_body(requests.get(gw.url + f"/public/x?fake=log&marker={marker}", timeout=10))
    log_path = gw.logs_dir / "fake.log"
    wait_for(lambda: f"stdout {marker}" in log_path.read_text()
             and f"stderr {marker}" in log_path.read_text(), what="the marker in fake.log")
    text = log_path.read_text()
    assert re.search(r"^START RequestId: [0-9a-f-]{36} Version: \$LATEST$", text, re.M)
    assert re.search(r"^REPORT RequestId: [0-9a-f-]{36}\tDuration: ", text, re.M)


def test_gateway_log_holds_no_query_strings_or_tokens(gw):
    tok = token(sub="log-check")
    secret = uuid.uuid4().hex
    echo_body(requests.get(gw.url + f"/things/1?code={secret}", headers=bearer(tok), timeout=10))
    requests.get(gw.url + f"/things/1?state={secret}", headers=bearer(tok + "x"), timeout=10)
    log_path = gw.logs_dir / "gateway.log"
    wait_for(lambda: "GET /things/1 -> 401" in log_path.read_text(), what="the access log line")
    gateway_log = log_path.read_text()
    assert "GET /things/1 -> 200" in gateway_log
    assert secret not in gateway_log and tok not in gateway_log


def test_dev_pages(gw):
    resp = requests.get(gw.url + "/_dev/return?status=connected", timeout=5)
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert "Atlassian Bridge: status=connected" in resp.text
    resp = requests.get(gw.url + "/_dev/hello", timeout=5)
    assert resp.text == "<p>hello</p>"


# ---------------------------------------------------------------------------- shutdown


def test_sigterm_stops_every_instance_and_exits_cleanly(tmp_path):
    child = start_gateway(tmp_path)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            replies = list(pool.map(
                lambda _: requests.get(child.url + "/pool?fake=slow&sleep=0.2", timeout=30), range(3)))
        pids = {r.json()["pid"] for r in replies}
        assert all(pid_alive(p) for p in pids)
    finally:
        rc = child.stop()
    assert rc == 0
    assert not any(pid_alive(p) for p in pids)
