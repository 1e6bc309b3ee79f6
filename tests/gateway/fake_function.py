#!/usr/bin/env python3
"""A stand-in Lambda function for the gateway's tests: it speaks the Lambda Runtime API
(stdlib only) and behaves as the event asks.

The behaviour is the ``fake`` query parameter of an HTTP event (or ``fake`` in an EventBridge
event's detail, or in a JSON request body):

  echo (default)  200 with the event, the invocation context, the pid and the environment
  slow            sleep ``sleep`` seconds (default 0.5), then echo
  hang            never answer (for timeouts)
  error           report an invocation error (POST .../error)
  crash           exit mid-invocation
  log             print ``marker`` to stdout and stderr, then echo
  raw             return ``value`` (a JSON text) as the bare response
  binary          201, base64 body, cookies and multi-value headers
  bad             a response API Gateway cannot map (statusCode not a number)

At start-up, FAKE_INIT=error reports an init error and FAKE_INIT=crash exits before polling.
"""
import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

BASE = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"


def call(method, path, data=None, headers=None):
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=None) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def options(event):
    opts = {}
    if isinstance(event.get("detail"), dict):
        opts.update(event["detail"])
    body = event.get("body")
    if body and not event.get("isBase64Encoded"):
        try:
            doc = json.loads(body)
            if isinstance(doc, dict):
                opts.update(doc)
        except ValueError:
            pass
    opts.update(event.get("queryStringParameters") or {})
    return opts


def echo(event, context, status=200):
    payload = {"pid": os.getpid(), "event": event, "context": context, "env": dict(os.environ),
               "extension_id": EXTENSION.get("id")}
    if "routeKey" in event:
        return {"statusCode": status, "headers": {"content-type": "application/json",
                                                  "x-fake-pid": str(os.getpid())},
                "body": json.dumps(payload)}
    return payload


def handle(event, context):
    opts = options(event)
    fake = opts.get("fake", "echo")
    if fake == "slow":
        time.sleep(float(opts.get("sleep", 0.5)))
    elif fake == "hang":
        time.sleep(3600)
    elif fake == "crash":
        print("fake function: crashing on purpose", file=sys.stderr, flush=True)
        os._exit(7)
    elif fake == "error":
        raise RuntimeError("fake failure")
    elif fake == "log":
        marker = opts.get("marker", "marker")
        print(f"stdout {marker}", flush=True)
        print(f"stderr {marker}", file=sys.stderr, flush=True)
    elif fake == "raw":
        return json.loads(opts.get("value", "null"))
    elif fake == "binary":
        return {"statusCode": 201,
                "headers": {"content-type": "application/octet-stream", "x-single": "one"},
                "multiValueHeaders": {"x-multi": ["a", "b"]},
                "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
                "isBase64Encoded": True,
                "body": base64.b64encode(bytes(range(256))).decode()}
    elif fake == "bad":
        return {"statusCode": "not-a-number", "body": "x"}
    return echo(event, context)


EXTENSION = {}


def register_extension():
    """Like lambda_runtime's graceful-shutdown helper: an internal extension with no events."""
    base = BASE.replace("/2018-06-01/runtime", "/2020-01-01/extension")
    req = urllib.request.Request(base + "/register", data=b'{"events": []}', method="POST",
                                 headers={"Lambda-Extension-Name": "fake-extension"})
    with urllib.request.urlopen(req) as resp:
        EXTENSION["id"] = resp.headers["Lambda-Extension-Identifier"]

    def wait():
        req = urllib.request.Request(base + "/event/next",
                                     headers={"Lambda-Extension-Identifier": EXTENSION["id"]})
        try:
            urllib.request.urlopen(req).read()
        except OSError:
            pass
    threading.Thread(target=wait, daemon=True).start()


def main():
    init = os.environ.get("FAKE_INIT")
    if init == "error":
        call("POST", "/init/error",
             json.dumps({"errorMessage": "fake init failure", "errorType": "FakeInitError"}).encode(),
             {"Lambda-Runtime-Function-Error-Type": "FakeInitError"})
        sys.exit(1)
    if init == "crash":
        print("fake function: crashing during init", file=sys.stderr, flush=True)
        sys.exit(3)
    if os.environ.get("FAKE_EXTENSION"):
        register_extension()
    print(f"fake function {os.environ.get('AWS_LAMBDA_FUNCTION_NAME')} started, pid {os.getpid()}",
          flush=True)
    while True:
        status, headers, body = call("GET", "/invocation/next")
        if status != 200:
            print(f"fake function: /next answered {status}, exiting", file=sys.stderr, flush=True)
            sys.exit(1)
        headers = {k.lower(): v for k, v in headers.items()}
        request_id = headers["lambda-runtime-aws-request-id"]
        context = {
            "request_id": request_id,
            "deadline_ms": headers.get("lambda-runtime-deadline-ms"),
            "function_arn": headers.get("lambda-runtime-invoked-function-arn"),
            "trace_id": headers.get("lambda-runtime-trace-id"),
        }
        try:
            result = handle(json.loads(body), context)
        except Exception as exc:  # noqa: BLE001 - reported to the Runtime API like a real runtime
            call("POST", f"/invocation/{request_id}/error",
                 json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__,
                             "stackTrace": []}).encode(),
                 {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
            continue
        call("POST", f"/invocation/{request_id}/response", json.dumps(result).encode())


if __name__ == "__main__":
    main()
