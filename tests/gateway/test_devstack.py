"""tests/devstack.py with stand-in function binaries (the fake function under the real names):
moto provisioning, the simulator's client registration, the gateway's config and env, clean stop."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from tests.devstack import Stack, StackError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

pytestmark = pytest.mark.skipif(not (REPO / "tests" / "sim" / "__main__.py").exists(),
                                reason="the Atlassian simulator (tests/sim) is not there yet")


def fake_bin_dir(tmp: Path, names) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name in names:
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'fake_function.py'} \"$@\"\n")
        script.chmod(0o755)
    return bin_dir


def project_functions() -> list[str]:
    doc = json.loads((REPO / "shared" / "routes.json").read_text())
    return sorted({r["function"] for r in doc["routes"]} | {r["function"] for r in doc["events"]}
                  | {s["function"] for s in doc.get("schedules", [])})


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_missing_binary_is_a_clear_error(tmp_path):
    stack = Stack(REPO, tmp_path / "logs", fake_bin_dir(tmp_path, project_functions()[:-1]))
    with pytest.raises(StackError, match=project_functions()[-1]):
        stack.start()


def test_stack_end_to_end_with_stand_in_functions(tmp_path):
    names = project_functions()
    stack = Stack(REPO, tmp_path / "logs", fake_bin_dir(tmp_path, names),
                  env_overrides={"RUST_LOG": "debug", "EXTRA": "1"})
    stack.start()
    try:
        children = [c.pid for c in stack._children]  # noqa: SLF001 - checked for orphans below
        # moto: table with TTL, KMS key, the app's secret under that key
        ddb = stack.aws("dynamodb")
        table = ddb.describe_table(TableName=stack.table_name)["Table"]
        assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        ttl = ddb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
        sm = stack.aws("secretsmanager")
        assert sm.describe_secret(SecretId=stack.client_secret_name)["KmsKeyId"].endswith(stack.kms_key_id)
        app_secret = json.loads(sm.get_secret_value(SecretId=stack.client_secret_name)["SecretString"])
        assert set(app_secret) == {"client_secret", "state_signing_key"}

        # the simulator knows our client and redirect URI (it auto-consents without --consent-page)
        query = urlencode({"audience": "api.atlassian.com", "client_id": "bridge-local-client",
                           "scope": "read:jira-work offline_access", "response_type": "code",
                           "redirect_uri": stack.gateway_url + "/v1/oauth/callback",
                           "state": "s", "prompt": "consent"})
        r = requests.get(f"{stack.sim_url}/authorize?{query}", allow_redirects=False, timeout=10)
        assert r.status_code == 302, r.text
        assert r.headers["location"].startswith(stack.gateway_url + "/v1/oauth/callback?")

        # a token from stack.token() passes the gateway's authorizer; the function sees the env
        r = requests.get(stack.gateway_url + "/v1/tenants/acme/connections/jira",
                         headers={"authorization": "Bearer " + stack.token("acme", ["bridge:read"])},
                         timeout=10)
        assert r.status_code == 200, r.text
        reply = r.json()
        claims = reply["event"]["requestContext"]["authorizer"]["jwt"]["claims"]
        assert claims["tenant_id"] == "acme" and claims["scope"] == "bridge:read"
        env = reply["env"]
        assert {k: env[k] for k in stack.function_env} == stack.function_env
        assert env["AWS_ENDPOINT_URL"] == stack.moto_url
        assert env["BRIDGE_OAUTH_REDIRECT_URI"] == stack.gateway_url + "/v1/oauth/callback"
        assert env["BRIDGE_ATLASSIAN_AUTH_URL"] == env["BRIDGE_ATLASSIAN_API_URL"] == stack.sim_url
        assert env["BRIDGE_KMS_KEY_ID"] == stack.kms_key_id
        assert env["RUST_LOG"] == "debug" and env["EXTRA"] == "1"
        function_pid = reply["pid"]

        assert requests.get(stack.gateway_url + "/v1/tenants/acme/connections/jira",
                            timeout=10).status_code == 401
        stack.recycle("connections")
        assert not alive(function_pid)
        for name in ("moto", "sim", "gateway"):
            assert (stack.logs_dir / f"{name}.log").exists()
        assert (stack.logs_dir / "connections.log").exists()
    finally:
        stack.stop()
    assert not any(alive(pid) for pid in children)
    stack.stop()  # idempotent


def test_one_name_for_the_specs_directory(monkeypatch, tmp_path):
    """ATLASSIAN_SPECS_DIR, read in one place (tests/sim/spec.py) by the simulator, its harness and
    this stack; else ../shared/specs."""
    from tests.sim.spec import SPECS_DIR_VAR, default_specs_dir
    assert SPECS_DIR_VAR == "ATLASSIAN_SPECS_DIR"
    monkeypatch.setenv("ATLASSIAN_SPECS_DIR", str(tmp_path))
    assert default_specs_dir() == tmp_path
    assert Stack(REPO, tmp_path / "logs").specs_dir == tmp_path
    monkeypatch.delenv("ATLASSIAN_SPECS_DIR")
    assert default_specs_dir() == REPO.parent / "shared" / "specs"
