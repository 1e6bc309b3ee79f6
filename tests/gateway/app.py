"""The gateway's HTTP side: API Gateway routes, the JWT authorizer, EventBridge delivery, control
endpoints (/_gateway/...) and dev pages (/_dev/...)."""
from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import shutil
import uuid
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from multidict import CIMultiDict

from . import envlist
from .auth import JwtAuthorizer
from .config import GatewayConfig
from .events import (BadEventEntry, MalformedResponse, build_eventbridge_event, build_http_event,
                     map_function_response)
from . import asyncinvoke
from .runtime import FunctionPool, InvocationResult

log = logging.getLogger("gateway")

MAX_REQUEST_BYTES = 10 * 1024 * 1024          # API Gateway's payload limit
_DROP_RESPONSE_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class AccessLogger(AbstractAccessLogger):
    """Method, path, status, duration: never a query string (OAuth codes and states travel
    there) nor a header."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s -> %s (%.1f ms)", request.method, request.path, response.status,
                         time * 1000)


def _message(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


class Gateway:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.authorizer = (JwtAuthorizer(config.jwt.secret, config.jwt.issuer, config.jwt.audience)
                           if config.jwt else None)
        self.pools: dict[str, FunctionPool] = {
            name: FunctionPool(fn, config.logs_dir, fn.env.get("AWS_REGION") or config.region)
            for name, fn in config.functions.items()}
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.chaos: asyncinvoke.AsyncChaos | None = None

    # ------------------------------------------------------------------ lifecycle
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/_gateway/health", self.health)
        app.router.add_get("/_gateway/functions", self.function_stats)
        app.router.add_post("/_gateway/functions/{name}/recycle", self.recycle)
        app.router.add_put("/_gateway/functions/{name}/env", self.update_env)
        app.router.add_put("/_gateway/functions/{name}/code", self.update_code)
        app.router.add_post("/_gateway/functions/{name}/invoke", self.invoke_function)
        app.router.add_post("/_gateway/schedules/{name}", self.fire_schedule)
        app.router.add_post("/_gateway/events", self.put_events)
        app.router.add_put("/_gateway/chaos", self.put_chaos)
        app.router.add_get("/_gateway/chaos", self.get_chaos)
        app.router.add_delete("/_gateway/chaos", self.delete_chaos)
        app.router.add_get("/_dev/return", self.dev_return)
        for path, page in self.config.static_routes.items():
            app.router.add_get(path, self._static(page))
        # [\s\S], not ".": a path segment may hold an encoded newline, which API Gateway routes too.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.http_api)
        return app

    async def start(self) -> str:
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        for pool in self.pools.values():
            await pool.start()
        self._runner = web.AppRunner(self.make_app(), access_log=logging.getLogger("gateway.access"),
                                     access_log_class=AccessLogger, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        host, port = site._server.sockets[0].getsockname()[:2]  # noqa: SLF001 - aiohttp has no public accessor
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
        if self._runner is not None:
            await self._runner.cleanup()

    async def invoke(self, function: str, event: dict) -> InvocationResult:
        """The invocation core shared by HTTP routes and EventBridge rules (the only two triggers)."""
        return await self.pools[function].invoke(json.dumps(event).encode("utf-8"))

    # ------------------------------------------------------------------ API Gateway
    async def http_api(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        apigw = {"apigw-requestid": request_id}
        raw_path, _, raw_query = request.raw_path.partition("?")
        matched = self.config.router.match(request.method, raw_path)
        if matched is None:
            return _message(404, "Not Found", apigw)
        route, params = matched

        authorizer_ctx = None
        if route.auth == "jwt":
            result = self.authorizer.authorize(request.headers.get("authorization"), route.scopes)
            if result.forbidden:
                return _message(403, "Forbidden", apigw)
            if not result.ok:
                log.info("401 %s %s: %s", request.method, raw_path, result.error or "no token")
                return _message(401, "Unauthorized",
                                {**apigw, "www-authenticate": result.www_authenticate()})
            authorizer_ctx = result.context()

        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        event = build_http_event(
            method=request.method, raw_path=raw_path, raw_query=raw_query,
            headers=list(request.headers.items()),
            body=body, route_key=route.route_key, path_params=params,
            authorizer=authorizer_ctx, source_ip=peer[0] if peer else "127.0.0.1",
            request_id=request_id)

        invocation = asyncio.ensure_future(self.invoke(route.function, event))
        try:
            result = await asyncio.wait_for(asyncio.shield(invocation),
                                            self.config.integration_timeout_seconds)
        except asyncio.TimeoutError:
            log.warning("%s: integration timeout after %ss", route.function,
                        self.config.integration_timeout_seconds)
            return _message(503, "Service Unavailable", apigw)

        if result.status == "timeout":
            return _message(503, "Service Unavailable", apigw)
        if not result.ok:
            # The error's message stays in the function's log; here only its type.
            log.warning("%s %s -> %s failed (%s: %s)", request.method, raw_path, route.function,
                        result.status, (result.error or {}).get("errorType", ""))
            return _message(502, "Internal Server Error", apigw)
        try:
            mapped = map_function_response(result.payload)
        except MalformedResponse as exc:
            log.warning("%s: malformed response: %s", route.function, exc)
            return _message(502, "Internal Server Error", apigw)

        headers = CIMultiDict()
        for name, value in mapped.headers:
            if name.lower() not in _DROP_RESPONSE_HEADERS:
                headers.add(name, value)
        headers.update(apigw)
        response = web.Response(status=mapped.status, body=mapped.body, headers=headers)
        if "content-type" not in {k.lower() for k in headers}:
            # Nothing declared, nothing sent (aiohttp still labels a non-empty body
            # application/octet-stream).
            response.headers.pop("Content-Type", None)
        return response

    # ------------------------------------------------------------------ EventBridge
    def _own_source(self, function: str) -> str | None:
        """The source the bridge's own events carry: the target function's BRIDGE_EVENT_SOURCE."""
        fn = self.config.functions.get(function)
        return fn.env.get("BRIDGE_EVENT_SOURCE") if fn is not None else None

    async def put_events(self, request: web.Request) -> web.Response:
        try:
            doc = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _message(400, "body must be a JSON PutEvents entry")
        entries = doc.get("Entries") if isinstance(doc, dict) and "Entries" in doc else [doc]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            return _message(400, "Entries must be a list of objects")
        try:
            events = [build_eventbridge_event(e, region=self.config.region) for e in entries]
        except BadEventEntry as exc:
            return _message(400, str(exc))

        return web.json_response({"invocations": await self.route(events)})

    async def route(self, events: list[dict]) -> list[dict]:
        """Events on the bus, to the targets of the rules they match (PutEvents' path, which
        Lambda's on-failure records take too): how each delivery ended."""
        rules = self.config.event_rules + asyncinvoke.failure_rules(self.config.functions)
        targets = [(rule.function, event) for event in events for rule in rules
                   if rule.matches(event["source"], event["detail-type"], self._own_source(rule.function),
                                   event.get("detail"))]
        if self.chaos is not None:
            delivery = asyncinvoke.AsyncDelivery(self, self.chaos)
            outcomes = await asyncio.gather(*(delivery.deliver(fn, event) for fn, event in targets))
            return [o for group in outcomes for o in group]
        results = await asyncio.gather(*(self.invoke(fn, event) for fn, event in targets))
        return [{"event_id": event["id"], **self._invocation(function, result)}
                for (function, event), result in zip(targets, results)]

    @staticmethod
    def _invocation(function: str, result: InvocationResult) -> dict:
        """How an invocation ended, as /_gateway/events and the invoke endpoints answer it."""
        item = {"function": function}
        if result.ok:
            item["status"] = "ok"
            try:
                item["response"] = json.loads(result.payload) if result.payload else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                item["response"] = result.payload.decode("utf-8", "replace")
        else:
            item["status"] = "error"
            item["error"] = {**(result.error or {}), "kind": result.status}
        return item

    # ------------------------------------------------------------------ fault campaign
    async def put_chaos(self, request: web.Request) -> web.Response:
        """From now on EventBridge deliveries are asynchronous invocations (retries, then the
        DLQ), maybe duplicated, and instances may be killed mid-invocation (asyncinvoke.py).
        /_gateway/events still answers once every delivery has ended, with each one's attempts."""
        import random
        try:
            chaos = asyncinvoke.parse(await request.json())
        except (ValueError, UnicodeDecodeError) as exc:
            return _message(400, str(exc))
        self.chaos = chaos
        for name, pool in self.pools.items():
            pool.kill_probability, pool.kill_max_ms = chaos.kill_probability, chaos.kill_max_ms
            pool.kill_rng = random.Random(f"{chaos.seed}\0kill\0{name}") if chaos.kill_probability else None
        return web.json_response({"chaos": chaos.to_json()})

    def _chaos_json(self) -> dict | None:
        if self.chaos is None:
            return None
        return {**self.chaos.to_json(), "kills": sum(p.kills for p in self.pools.values()),
                "kills_by_function": {n: p.kills for n, p in self.pools.items() if p.kills}}

    async def get_chaos(self, request: web.Request) -> web.Response:
        return web.json_response({"chaos": self._chaos_json()})

    async def delete_chaos(self, request: web.Request) -> web.Response:
        was = self._chaos_json()
        self.chaos = None
        for pool in self.pools.values():
            pool.kill_probability, pool.kill_rng, pool.kills = 0.0, None, 0
        return web.json_response({"chaos": was})

    # ------------------------------------------------------------------ direct invocation
    async def invoke_function(self, request: web.Request) -> web.Response:
        """Lambda's Invoke (RequestResponse): the body is the payload, the answer how it ended."""
        name = request.match_info["name"]
        if name not in self.pools:
            return _message(404, f"no function named {name}")
        try:
            payload = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _message(400, "body must be the JSON payload to invoke the function with")
        return web.json_response(self._invocation(name, await self.invoke(name, payload)))

    async def fire_schedule(self, request: web.Request) -> web.Response:
        """An EventBridge Scheduler schedule (routes.json `schedules`) fires now: its function is
        invoked with its input, as the Scheduler's templated Lambda target does. A failure is
        reported, not retried (the deployed schedule's retry policy and dead-letter queue do that)."""
        name = request.match_info["name"]
        schedule = next((s for s in self.config.schedules if s.name == name), None)
        if schedule is None:
            return _message(404, f"no schedule named {name}")
        result = await self.invoke(schedule.function, schedule.input)
        return web.json_response({"schedule": name, **self._invocation(schedule.function, result)})

    # ------------------------------------------------------------------ control and dev pages
    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def function_stats(self, request: web.Request) -> web.Response:
        return web.json_response({name: pool.stats() for name, pool in self.pools.items()})

    async def recycle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        pool = self.pools.get(name)
        if pool is None:
            return _message(404, f"no function named {name}")
        stopped = await pool.stop_instances(drain=True)
        log.info("%s: recycled (%d instances stopped)", name, stopped)
        return web.json_response({"function": name, "stopped": stopped})

    async def _pool_and_body(self, request: web.Request, malformed: str):
        """The pool the path names and the JSON body: (pool, body, None), or the 404 / 400 answer."""
        name = request.match_info["name"]
        pool = self.pools.get(name)
        if pool is None:
            return None, None, _message(404, f"no function named {name}")
        try:
            return pool, await request.json(), None
        except ValueError:
            return pool, None, _message(400, malformed)

    async def update_env(self, request: web.Request) -> web.Response:
        """A configuration change, as Lambda makes one: merge the variables (null removes one),
        then retire the environments so the next invocation cold-starts with them."""
        name = request.match_info["name"]
        pool, changes, refused = await self._pool_and_body(request, "body must be a JSON object of variables")
        if refused:
            return refused
        if not isinstance(changes, dict) or not all(isinstance(v, (str, type(None))) for v in changes.values()):
            return _message(400, "body must be a JSON object of string (or null) values")
        try:
            envlist.check(changes, name)
        except ValueError as exc:
            return _message(400, str(exc))
        for key, value in changes.items():
            if value is None:
                pool.config.env.pop(key, None)
            else:
                pool.config.env[key] = value
        stopped = await pool.stop_instances(drain=True)
        log.info("%s: environment updated (%s); %d instances stopped", name, ", ".join(sorted(changes)), stopped)
        return web.json_response({"function": name, "stopped": stopped})

    async def update_code(self, request: web.Request) -> web.Response:
        """A code change, as Lambda's UpdateFunctionCode makes one: `{"command": [...]}` replaces
        the program the function's instances run (same routes, rules and environment), then the
        environments are retired so the next invocation cold-starts the new code. The bench uses
        it to put a Python equivalent behind a function's own routes."""
        name = request.match_info["name"]
        pool, doc, refused = await self._pool_and_body(request, 'body must be {"command": [...]}')
        if refused:
            return refused
        command = doc.get("command") if isinstance(doc, dict) else None
        if not isinstance(command, list) or not command or not all(isinstance(c, str) and c for c in command):
            return _message(400, "command must be a non-empty list of strings")
        exe = command[0]
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)) and shutil.which(exe) is None:
            return _message(400, f"command {exe!r} not found or not executable")
        pool.config.command = list(command)
        stopped = await pool.stop_instances(drain=True)
        log.info("%s: code updated; %d instances stopped", name, stopped)
        return web.json_response({"function": name, "stopped": stopped, "command": command})

    async def dev_return(self, request: web.Request) -> web.Response:
        pairs = parse_qsl(request.query_string, keep_blank_values=True)
        status = dict(pairs).get("status")
        summary = (f"status={status}" if status is not None
                   else ", ".join(f"{k}={v}" for k, v in pairs) or "(no query parameters)")
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
                       for k, v in pairs)
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Atlassian Bridge</title></head>"
            f"<body><h1>Atlassian Bridge: {html.escape(summary)}</h1>"
            f"<table>{rows}</table>"
            "<p>This is the local return page of the OAuth connect flow.</p></body></html>")
        return web.Response(text=page, content_type="text/html")

    @staticmethod
    def _static(page: str):
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=page, content_type="text/html")
        return handler
