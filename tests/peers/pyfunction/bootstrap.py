#!/usr/bin/env python3
"""A Python Lambda runtime, as AWS's Python runtime (awslambdaric) runs a handler: import the
handler module at init (`_HANDLER`, else argv[1], e.g. `function.handler`; the task root is this
directory, `LAMBDA_TASK_ROOT` when set), report an import failure to `/init/error`, then loop on
the Runtime API — `GET /invocation/next`, call the handler, `POST .../response` or `.../error`.
Stdlib only, one keep-alive connection (the real runtime's client keeps its connection too).

    python tests/peers/pyfunction/bootstrap.py function.handler
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import sys
import time
import traceback

API = "/2018-06-01/runtime"


class RuntimeClient:
    def __init__(self, address: str):
        host, _, port = address.partition(":")
        self.conn = http.client.HTTPConnection(host, int(port or 80), timeout=None)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        for attempt in (1, 2):
            try:
                self.conn.request(method, API + path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                return resp.status, resp.headers, resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()          # a dropped keep-alive connection: reconnect once
                if attempt == 2:
                    raise


class Context:
    """The handler's context object, with what AWS's runtime offers."""

    def __init__(self, headers):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def error_body(exc: BaseException) -> bytes:
    return json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__,
                       "stackTrace": traceback.format_tb(exc.__traceback__)}).encode()


def main() -> int:
    client = RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, task_root)
    name = os.environ.get("_HANDLER") or (sys.argv[1] if len(sys.argv) > 1 else "function.handler")
    try:
        module, _, attr = name.rpartition(".")
        handler = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # noqa: BLE001 - every init failure is reported, as AWS's runtime does
        client.request("POST", "/init/error", error_body(exc),
                       {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
        return 1
    while True:
        status, headers, body = client.request("GET", "/invocation/next")
        if status != 200:
            return 0                                   # the environment is gone
        request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        try:
            result = handler(json.loads(body or b"null"), Context(headers))
            payload = json.dumps(result).encode()
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            client.request("POST", f"/invocation/{request_id}/error", error_body(exc),
                           {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
            continue
        client.request("POST", f"/invocation/{request_id}/response", payload,
                       {"Content-Type": "application/json"})


if __name__ == "__main__":
    sys.exit(main())
