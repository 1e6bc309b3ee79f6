"""Application assembly: routes, call recording and fault injection."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from . import cloud, connect, control, dc, dc_oauth, faults, forge, oauth, oidc
from . import products  # noqa: F401  (registers product handlers)
from .spec import Catalog
from .state import State

log = logging.getLogger("sim")

CONTROL_PREFIX = "/_sim/"


def route_of(request: web.Request) -> str | None:
    """The route template a request is recorded and fault-matched under."""
    if request.path.startswith("/ex/"):
        m = cloud.resolve(request, request.app["catalog"])
        return m.route if m else None
    if request.path.startswith("/site/") and not request.path.endswith("/_edge/tenant_info"):
        m = cloud.resolve_site(request, request.app["catalog"])
        return m.route if m else None
    if request.path.startswith("/dc/"):
        oauth_route = dc_oauth.route_of(request, request.app["state"])
        if oauth_route:
            return oauth_route
        m = dc.resolve(request, request.app["catalog"], request.app["state"])
        return m.route if m else None
    info = request.match_info
    if info.http_exception is not None:
        return None
    canonical = info.route.resource.canonical if info.route.resource else None
    return f"{request.method} {canonical}" if canonical else None


@web.middleware
async def record_and_inject(request: web.Request, handler):
    if request.path.startswith(CONTROL_PREFIX) or request.path == "/_sim":
        return await handler(request)
    state: State = request.app["state"]
    route = route_of(request)
    raw_path, _, raw_query = request.raw_path.partition("?")
    call = {"method": request.method, "path": raw_path, "query": raw_query,
            "route": route, "status": None}
    state.record_call(call)
    started = time.monotonic()
    try:
        fault = faults.take(state, route)
        if fault is None and state.chaos is not None:
            fault = state.chaos.draw(request, route)
        resp = None
        if fault is not None:
            resp = await faults.apply(request, fault, route, call)
        if resp is None:
            try:
                resp = await handler(request)
            except web.HTTPException as exc:
                resp = exc
            if fault is not None and fault.kind in faults.COMMIT_KINDS:
                resp = await faults.after_commit(request, fault, resp, call)
        call["status"] = resp.status
        if request.get("grant_type") is not None or route == "POST /oauth/token":
            call["grant_type"] = request.get("grant_type")
        return resp
    except faults.Dropped:
        call["status"] = None
        call["dropped"] = True
        # the transport is closed: aiohttp ignores the failed write of this response
        return web.Response(status=499)
    except asyncio.CancelledError:
        call["status"] = None
        call["cancelled"] = True
        raise
    finally:
        outcome = ("dropped" if call.get("dropped") else
                   "cancelled" if call.get("cancelled") else call.get("status"))
        log.info("%s %s -> %s [%s] %.0fms", request.method, request.path, outcome,
                 route or "unmatched", (time.monotonic() - started) * 1000)


def build_app(specs_dir: str, consent_page: bool = False) -> web.Application:
    app = web.Application(middlewares=[record_and_inject], client_max_size=64 * 1024 * 1024)
    catalog = Catalog(specs_dir)
    state = State()
    state.catalog = catalog
    app["catalog"] = catalog
    app["state"] = state
    app["consent_page"] = consent_page
    app.add_routes(control.routes())
    app.add_routes(oauth.routes())
    app.add_routes(cloud.routes())
    app.add_routes(dc.routes())
    app.add_routes(oidc.routes())
    app.add_routes(connect.routes())
    app.add_routes(dc_oauth.routes())
    app.add_routes(forge.routes())
    return app
