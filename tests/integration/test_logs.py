"""The deployment's own secrets never reach a log line (per-test scans cover issued tokens)."""

import json
from pathlib import Path

from .conftest import assert_not_logged


def test_client_secret_and_state_key_are_never_logged(bridge):
    tenant = bridge.tenant()
    bridge.connect(tenant, "atlassian")
    app = bridge.app_secret()
    assert_not_logged(bridge.stack, [app["client_secret"], app["state_signing_key"]])


def test_function_logs_are_json_with_request_id_and_tenant(bridge):
    tenant = bridge.tenant()
    bridge.connect(tenant, "jira")
    lines = [json.loads(l) for l in (Path(bridge.stack.logs_dir) / "oauth-callback.log").read_text().splitlines()
             if l.startswith("{")]
    ours = [l for l in lines if any(s.get("tenant") == tenant for s in l.get("spans", []))]
    assert ours, "no log line carries the tenant"
    for line in ours:
        assert any("requestId" in s for s in line["spans"]), line
