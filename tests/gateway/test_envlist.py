"""shared/env.json, the functions' one list of environment variables: the README's table is
generated from it, and the local stack (gateway config, its env endpoint, tests/devstack.py)
refuses BRIDGE_* names it does not hold."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.devstack import Stack, StackError
from tests.gateway import envlist
from tests.gateway.config import ConfigError, load_config
from tests.gateway.test_gateway import FAKE

REPO = Path(__file__).resolve().parents[2]


def test_readme_table_is_generated_from_the_list():
    text = (REPO / "README.md").read_text()
    assert envlist.readme_with_table(text) == text, (
        "README.md's environment variables table differs from shared/env.json: run "
        "`.venv/bin/python -m tests.gateway.envlist --write-readme`")
    assert envlist.main([]) == 0


def test_every_entry_is_complete():
    doc = json.loads((REPO / "shared" / "routes.json").read_text())
    functions = {r["function"] for r in doc["routes"]} | {s["function"] for s in doc.get("schedules", [])}
    for v in envlist.variables():
        assert set(v) == {"name", "required", "default", "functions", "set_by_infra", "description"}, v
        assert isinstance(v["required"], bool) and isinstance(v["set_by_infra"], bool), v["name"]
        assert v["functions"] == "all" or set(v["functions"]) <= functions, v["name"]
        assert v["default"] is None or not v["required"], f"{v['name']}: required with a default"


def test_unknown_bridge_names_are_refused_others_pass():
    assert envlist.unknown_bridge_names({"BRIDGE_TABLE_NAME": "t", "BRIDGE_TABEL_NAME": "t", "EXTRA": "1"}) \
        == ["BRIDGE_TABEL_NAME"]
    with pytest.raises(ValueError, match="BRIDGE_TABEL_NAME not in shared/env.json"):
        envlist.check(["BRIDGE_TABEL_NAME"], "here")


def test_gateway_config_refuses_an_unlisted_bridge_variable(tmp_path):
    (tmp_path / "routes.json").write_text(json.dumps({"routes": [
        {"method": "GET", "path": "/x", "function": "fake", "auth": "none"}], "events": []}))
    config = {"routes_file": "routes.json", "functions": {"fake": {
        "command": FAKE, "env": {"BRIDGE_TABLE_NAME": "t", "BRIDGE_NOPE": "1"}}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="function fake: env: BRIDGE_NOPE not in shared/env.json"):
        load_config(tmp_path / "config.json")
    config["functions"]["fake"]["env"].pop("BRIDGE_NOPE")
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_config(tmp_path / "config.json").functions["fake"].env == {"BRIDGE_TABLE_NAME": "t"}


def test_devstack_refuses_an_unlisted_bridge_override(tmp_path):
    stack = Stack(REPO, tmp_path / "logs", tmp_path, env_overrides={"BRIDGE_JOB_LEASE_SECOND": "3"})
    with pytest.raises(StackError, match="BRIDGE_JOB_LEASE_SECOND"):
        stack._build_function_env()  # noqa: SLF001
    env = Stack(REPO, tmp_path / "logs", tmp_path)._build_function_env()  # noqa: SLF001
    assert envlist.unknown_bridge_names(env) == []
