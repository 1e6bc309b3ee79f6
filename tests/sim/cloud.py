"""The api.atlassian.com product gateway: `/ex/{product}/{cloudId}/<path>`.

Every request goes through the same steps, in this order:
 1. a valid, unexpired Bearer access token        -> else 401
 2. the cloudId is one of the grant's sites        -> else 401 (404 if the site lacks the product)
 3. method + path match an operation of the spec   -> else 404 (405 when only the method is wrong)
 4. the token holds the scopes of one OAuth alternative of that operation
                                                  -> else 401 "Unauthorized; scope does not match"
 5. an implemented handler                         -> else 501

Handlers register with `@handler(spec_name, METHOD, template)` and receive a `Ctx`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from .oauth import bearer_grant, unauthorized
from .spec import Catalog, Operation, Spec
from .state import Grant, Site, State
from .util import json_response

HANDLERS: dict[tuple[str, str, str], Callable[["Ctx"], Awaitable[web.StreamResponse]]] = {}


def handler(spec_name: str, method: str, template: str):
    def deco(fn):
        HANDLERS[(spec_name, method.upper(), template)] = fn
        return fn
    return deco


@dataclass
class Match:
    product: str
    cloud_id: str
    tail: str                       # raw path after the cloudId, e.g. /rest/api/3/myself
    spec: Spec | None = None
    operation: Operation | None = None
    params: dict[str, str] | None = None

    @property
    def route(self) -> str | None:
        if self.operation is None or self.spec is None:
            return None
        return f"{self.operation.method} /ex/{self.product}/{{cloudId}}{self.spec.mount}{self.operation.template}"


@dataclass
class Ctx:
    request: web.Request
    state: State
    match: Match
    site: Site
    grant: Grant

    @property
    def params(self) -> dict[str, str]:
        return self.match.params or {}

    @property
    def gateway_base(self) -> str:
        """`https://api.atlassian.com/ex/<product>/<cloudId>` as this sim is reached."""
        r = self.request
        return f"{r.scheme}://{r.host}/ex/{self.match.product}/{self.site.id}"


def resolve(request: web.Request, catalog: Catalog) -> Match | None:
    """Parse and spec-match an `/ex/...` request (pure: no auth, no state)."""
    cached = request.get("sim_match", False)
    if cached is not False:
        return cached
    raw = request.raw_path.split("?", 1)[0]
    parts = raw.split("/", 4)                 # '', 'ex', product, cloudId, rest
    m: Match | None = None
    if len(parts) == 5 and parts[1] == "ex" and parts[2] in catalog.products and parts[3]:
        m = Match(product=parts[2], cloud_id=parts[3], tail="/" + parts[4])
        hit = catalog.products[m.product].match(request.method, m.tail)
        if hit:
            m.spec, m.operation, m.params = hit
    request["sim_match"] = m
    return m


def _not_found() -> web.Response:
    return json_response({"code": 404, "message": "Not Found"}, status=404)


async def gateway(request: web.Request) -> web.StreamResponse:
    state: State = request.app["state"]
    catalog: Catalog = request.app["catalog"]
    m = resolve(request, catalog)
    if m is None:
        return _not_found()
    # 1. token
    grant, _ = bearer_grant(request)
    if grant is None:
        return unauthorized()
    # 2. site
    site = state.sites.get(m.cloud_id)
    if site is None or m.cloud_id not in grant.sites:
        return unauthorized()
    if m.product not in site.products:
        return _not_found()
    # 3. operation
    if m.operation is None:
        apis = catalog.products[m.product]
        allowed = sorted({op.method for spec in apis.specs for op in spec.operations
                          if _path_matches(spec, m.tail, op)})
        if allowed:
            return json_response({"code": 405, "message": "Method Not Allowed"}, status=405,
                                 headers={"Allow": ", ".join(allowed)})
        return _not_found()
    # 4. scopes
    if not m.operation.scopes_ok(grant.scopes):
        return unauthorized("Unauthorized; scope does not match", error="insufficient_scope")
    # 5. dispatch
    fn = HANDLERS.get((m.spec.name, m.operation.method, m.operation.template))
    if fn is None:
        return json_response({"message": "not implemented in simulator",
                              "operationId": m.operation.operation_id}, status=501)
    return await fn(Ctx(request=request, state=state, match=m, site=site, grant=grant))


def _path_matches(spec: Spec, tail: str, op: Operation) -> bool:
    if spec.mount:
        if not tail.startswith(spec.mount + "/"):
            return False
        tail = tail[len(spec.mount):]
    hit = spec.match(op.method, tail)
    return bool(hit and hit[0] is op)


def routes() -> list[web.RouteDef]:
    return [web.route("*", "/ex/{product}/{cloudId}/{tail:.*}", gateway)]
