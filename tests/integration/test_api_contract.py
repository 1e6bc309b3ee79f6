"""Contract testing of our own API (issue 16, item 3): Schemathesis generates valid and invalid
requests for every operation of shared/openapi.json and sends them through the local gateway,
for a tenant connected to Jira and Confluence on Cloud OAuth. Nothing may answer 5xx, every
answer must be one the document lists for the operation (status, content type, schema), and
invalid input must be refused with our error shape.

Bounded for `make test` (a fixed seed, a few examples per operation, two workers); the long run is
the same command with a larger `BRIDGE_CONTRACT_EXAMPLES`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = int(os.environ.get("BRIDGE_CONTRACT_EXAMPLES", "10"))
SEED = int(os.environ.get("BRIDGE_CONTRACT_SEED", "20261203"))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "negative_data_rejection")


def run_schemathesis(bridge, tenant: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    config = tmp_path / "schemathesis.toml"
    # Every operation's `{tenant}` is the token's tenant: otherwise nearly every generated request
    # would be a 403 for another tenant, and nothing behind the tenant check would be reached.
    config.write_text(f'[parameters]\n"path.tenant" = "{tenant}"\n')
    cmd = [str(SCHEMATHESIS), "--config-file", str(config), "run", str(REPO / "shared" / "openapi.json"),
           "--url", bridge.gw, "-H", f"Authorization: Bearer {bridge.token(tenant)}",
           "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "2",
           "--request-timeout", "60", "--checks", CHECKS, "--phases", "examples,coverage,fuzzing",
           "--suppress-health-check", "all", "--no-color", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "SCHEMATHESIS_HOOKS": ""})


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is installed by make test (tests/requirements.txt)")
def test_every_operation_answers_as_documented_and_never_5xx(bridge, tmp_path):
    tenant = bridge.tenant()
    assert bridge.connect(tenant, "atlassian")["status"] == "connected"
    result = run_schemathesis(bridge, tenant, tmp_path)
    (tmp_path / "report.txt").write_text(result.stdout + result.stderr)
    if os.environ.get("BRIDGE_CONTRACT_REPORT"):
        Path(os.environ["BRIDGE_CONTRACT_REPORT"]).write_text(result.stdout + result.stderr)
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout or " passed" in result.stdout, report
