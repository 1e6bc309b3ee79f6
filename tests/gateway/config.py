"""The gateway's configuration file (written by tests/devstack.py, or by tests by hand)."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import envlist
from .routing import EventRule, Router, Schedule, load_routes, load_schedules
from .runtime import FunctionConfig


class ConfigError(ValueError):
    pass


@dataclass
class JwtConfig:
    secret: str
    issuer: str
    audience: str | list[str]


@dataclass
class GatewayConfig:
    host: str
    port: int
    router: Router
    event_rules: list[EventRule]
    functions: dict[str, FunctionConfig]
    jwt: JwtConfig | None
    logs_dir: Path
    static_routes: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    integration_timeout_seconds: float = 30.0
    schedules: list[Schedule] = field(default_factory=list)


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None

    routes_file = doc.get("routes_file")
    if not routes_file:
        raise ConfigError("config lacks routes_file")
    routes_file = (path.parent / routes_file) if not os.path.isabs(routes_file) else Path(routes_file)
    router, rules = load_routes(routes_file)
    schedules = load_schedules(routes_file)

    functions: dict[str, FunctionConfig] = {}
    for name, raw in (doc.get("functions") or {}).items():
        command = raw.get("command")
        if not command or not isinstance(command, list):
            raise ConfigError(f"function {name}: command must be a non-empty list")
        exe = command[0]
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)) and shutil.which(exe) is None:
            raise ConfigError(f"function {name}: command {exe!r} not found or not executable")
        env = {k: str(v) for k, v in (raw.get("env") or {}).items()}
        try:
            envlist.check(env, f"function {name}: env")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        functions[name] = FunctionConfig(
            name=name, command=[str(c) for c in command],
            env=env,
            timeout_seconds=float(raw.get("timeout_seconds", 30)),
            max_concurrency=int(raw.get("max_concurrency", 64)),
            init_timeout_seconds=float(raw.get("init_timeout_seconds", 10)),
            memory_mb=int(raw.get("memory_mb", 256)),
            on_failure_to_bus=bool(raw.get("on_failure_to_bus", False)))

    wanted = {r.function for r in router.routes} | {r.function for r in rules} | {s.function for s in schedules}
    missing = sorted(wanted - functions.keys())
    if missing:
        raise ConfigError(f"routes file names functions the config does not define: {missing}")

    jwt_raw = doc.get("jwt")
    jwt_cfg = None
    if jwt_raw:
        try:
            jwt_cfg = JwtConfig(secret=jwt_raw["secret"], issuer=jwt_raw["issuer"],
                                audience=jwt_raw["audience"])
        except KeyError as exc:
            raise ConfigError(f"jwt lacks {exc.args[0]!r}") from None
    elif any(r.auth == "jwt" for r in router.routes):
        raise ConfigError("routes use the JWT authorizer but the config has no jwt section")

    region = (doc.get("region") or os.environ.get("AWS_REGION")
              or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    return GatewayConfig(
        host=doc.get("host", "127.0.0.1"),
        port=int(doc.get("port", 0)),
        router=router, event_rules=rules, functions=functions, jwt=jwt_cfg,
        logs_dir=Path(doc.get("logs_dir") or "."),
        static_routes=dict(doc.get("static_routes") or {}),
        region=region,
        integration_timeout_seconds=float(doc.get("integration_timeout_seconds", 30)),
        schedules=schedules)
