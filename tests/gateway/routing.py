"""routes.json: HTTP routes and EventBridge rules, matched the way API Gateway HTTP APIs match them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

# Per-segment specificity: a literal segment beats a {param}, which beats a greedy {param+}.
_LITERAL, _PARAM, _GREEDY = 2, 1, 0
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"}


class RoutesError(ValueError):
    """routes.json is malformed."""


@dataclass(frozen=True)
class Route:
    method: str                      # upper-case HTTP method or ANY
    path: str                        # API Gateway template, e.g. /v1/tenants/{tenant}
    function: str
    auth: str                        # "jwt" | "none"
    scopes: tuple[str, ...] = ()     # optional authorization scopes (API Gateway: any one suffices)
    segments: tuple[tuple[int, str], ...] = field(default=(), compare=False, repr=False)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class EventRule:
    detail_type: str
    function: str
    source: str | None = None
    # The bridge's own event (the continuation of an issue job): matched only from the bridge's
    # own source, which the deployed rule reads from the deployment's config.
    own: bool = False
    # Lambda's invocation records of this function only (the deployed rule matches
    # detail.requestContext.functionArn); never in routes.json: asyncinvoke.failure_rules.
    failure_of: str | None = None

    def matches(self, source: str, detail_type: str, own_source: str | None = None,
                detail: dict | None = None) -> bool:
        if self.detail_type != detail_type:
            return False
        if self.failure_of is not None:
            arn = str(((detail or {}).get("requestContext") or {}).get("functionArn", ""))
            return source == self.source and arn.split(":")[6:7] == [self.failure_of]
        if self.own:
            return own_source is not None and source == own_source
        return self.source is None or self.source == source


def _parse_template(path: str) -> tuple[tuple[int, str], ...]:
    if not path.startswith("/"):
        raise RoutesError(f"route path must start with '/': {path!r}")
    segments = []
    parts = path[1:].split("/")
    for i, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                if i != len(parts) - 1:
                    raise RoutesError(f"greedy parameter must be the last segment: {path!r}")
                segments.append((_GREEDY, name[:-1]))
            else:
                segments.append((_PARAM, name))
        else:
            segments.append((_LITERAL, part))
    return tuple(segments)


def _route(raw: dict) -> Route:
    try:
        method = str(raw["method"]).upper()
        path = str(raw["path"])
        function = str(raw["function"])
    except KeyError as exc:
        raise RoutesError(f"route {raw!r} lacks {exc.args[0]!r}") from None
    if method not in _METHODS:
        raise RoutesError(f"route {raw!r}: unknown method {method!r}")
    auth = str(raw.get("auth", "none"))
    if auth not in ("jwt", "none"):
        raise RoutesError(f"route {raw!r}: auth must be 'jwt' or 'none'")
    return Route(method=method, path=path, function=function, auth=auth,
                 scopes=tuple(raw.get("scopes") or ()), segments=_parse_template(path))


class Router:
    def __init__(self, routes: list[Route]):
        self.routes = list(routes)
        keys = [r.route_key for r in self.routes]
        dupes = {k for k in keys if keys.count(k) > 1}
        if dupes:
            raise RoutesError(f"duplicate routes: {sorted(dupes)}")

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific route for METHOD and the (still percent-encoded) path, with its decoded
        path parameters; None when nothing matches (API Gateway then answers 404)."""
        if not raw_path.startswith("/"):
            return None
        parts = raw_path[1:].split("/")
        best = None
        for route in self.routes:
            if route.method not in (method.upper(), "ANY"):
                continue
            params = _match_segments(route.segments, parts)
            if params is None:
                continue
            # Segment-by-segment specificity, then an exact method over ANY.
            rank = (tuple(kind for kind, _ in route.segments), route.method != "ANY")
            if best is None or rank > best[0]:
                best = (rank, route, params)
        return (best[1], best[2]) if best else None


def _match_segments(segments, parts) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for i, (kind, text) in enumerate(segments):
        if kind == _GREEDY:
            rest = parts[i:]
            if not rest or rest == [""]:
                return None
            params[text] = unquote("/".join(rest))
            return params
        if i >= len(parts):
            return None
        if kind == _LITERAL:
            if parts[i] != text:
                return None
        else:
            if parts[i] == "":
                return None
            params[text] = unquote(parts[i])
    return params if len(parts) == len(segments) else None


@dataclass(frozen=True)
class Schedule:
    """An EventBridge Scheduler schedule: invokes ``function`` with ``input`` (the payload, as
    the Scheduler's templated Lambda target sends it) at ``expression``. The gateway keeps no
    timer: a test fires a schedule with ``POST /_gateway/schedules/{name}``."""
    name: str
    function: str
    expression: str
    input: dict = field(default_factory=dict, compare=False)


def load_schedules(path: str | Path) -> list[Schedule]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RoutesError(f"cannot read routes file {path}: {exc}") from None
    schedules = []
    for raw in doc.get("schedules", []):
        try:
            schedule = Schedule(name=str(raw["name"]), function=str(raw["function"]),
                                expression=str(raw["expression"]), input=raw.get("input", {}))
        except KeyError as exc:
            raise RoutesError(f"schedule {raw!r} lacks {exc.args[0]!r}") from None
        if not isinstance(schedule.input, dict):
            raise RoutesError(f"schedule {schedule.name}: input must be a JSON object")
        schedules.append(schedule)
    names = [s.name for s in schedules]
    if len(set(names)) != len(names):
        raise RoutesError(f"duplicate schedules: {sorted(n for n in names if names.count(n) > 1)}")
    return schedules


def load_routes(path: str | Path) -> tuple[Router, list[EventRule]]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RoutesError(f"cannot read routes file {path}: {exc}") from None
    routes = [_route(r) for r in doc.get("routes", [])]
    rules = []
    for raw in doc.get("events", []):
        try:
            rules.append(EventRule(detail_type=str(raw["detail_type"]), function=str(raw["function"]),
                                   source=raw.get("source"), own=bool(raw.get("own", False))))
        except KeyError as exc:
            raise RoutesError(f"event rule {raw!r} lacks {exc.args[0]!r}") from None
    return Router(routes), rules
