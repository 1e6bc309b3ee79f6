"""The Lambda service, locally: a pool of execution environments per function, each one a process
of the real function binary talking to its own Lambda Runtime API endpoint
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).

Model (as in Lambda): an invocation goes to an idle environment (one blocked in GET .../next); if
there is none, a new environment is started (up to max_concurrency; beyond that, invocations wait
in a queue). An environment runs one invocation at a time and stays warm afterwards. A process that
exits mid-invocation fails that invocation; one that overruns the timeout is killed.

Every environment gets its own Runtime API listening socket (AWS_LAMBDA_RUNTIME_API points at it),
as every Lambda sandbox has its own: that is what tells us which process holds which invocation.
All of a function's sockets are served by one aiohttp server, the function's Runtime API.
"""
from __future__ import annotations

import asyncio
import ctypes
import itertools
import json
import logging
import os
import secrets
import signal
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

log = logging.getLogger("gateway.runtime")

API = "/2018-06-01/runtime"
EXT_API = "/2020-01-01/extension"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024          # Lambda's synchronous response limit
STALE_RETURNING_SECONDS = 1.0                 # how long a just-answered instance counts as "about to poll"
OUTPUT_LINE_LIMIT = 4 * 1024 * 1024

try:  # children get SIGTERM if the gateway dies without cleaning up (Linux)
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - non-glibc platforms
    _LIBC = None


def _child_setup() -> None:
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class FunctionConfig:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    max_concurrency: int = 64
    init_timeout_seconds: float = 10.0
    memory_mb: int = 256
    # Lambda's on-failure destination for asynchronous invocations is the event bus (infra:
    # EventInvokeConfig onFailure, see asyncinvoke.py): the gateway then puts the invocation
    # record of an event that failed for good on its rules.
    on_failure_to_bus: bool = False


@dataclass
class InvocationResult:
    status: str                        # "ok" | "error" | "crash" | "timeout"
    payload: bytes = b""               # the function's response (status ok)
    error: dict | None = None          # {"errorType", "errorMessage", ...} otherwise
    instance: str | None = None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Invocation:
    def __init__(self, payload: bytes):
        self.request_id = str(uuid.uuid4())
        self.payload = payload
        self.future: asyncio.Future[InvocationResult] = asyncio.get_running_loop().create_future()
        self.trace_id = (f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
                         f"Parent={secrets.token_hex(8)};Sampled=0")
        self.deadline_ms = 0
        self.started = 0.0


class Instance:
    def __init__(self, instance_id: str):
        self.id = instance_id
        self.process: asyncio.subprocess.Process | None = None
        self.site: web.SockSite | None = None
        self.port = 0
        self.state = "init"            # init -> idle <-> busy -> returning -> idle ... -> dead
        self.waiter: asyncio.Future[Invocation] | None = None
        self.current: Invocation | None = None
        self.polled = False            # has called /next at least once (init done)
        self.stopping = False
        self.init_error: dict | None = None
        self.spawned_at = time.monotonic()
        self.init_ms: float | None = None          # for the first REPORT line, then cleared
        self.init_duration_ms: float | None = None  # spawn -> first /next, kept for the stats
        self.peak_rss_kib: int | None = None        # VmHWM, sampled after each invocation and at the end
        self.invocations = 0
        self.returned_at = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: list[asyncio.Task] = []
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def sample_memory(self) -> dict[str, int | None]:
        """The process's resident memory now and its peak so far (Linux /proc; None elsewhere
        or once it is gone). The peak is remembered, so it survives the process."""
        mem = _proc_memory_kib(self.pid) if self.pid and self.state != "dead" else {}
        if mem.get("VmHWM") is not None:
            self.peak_rss_kib = max(self.peak_rss_kib or 0, mem["VmHWM"])
        return {"rss_kib": mem.get("VmRSS"), "peak_rss_kib": self.peak_rss_kib}

    def describe(self) -> dict:
        return {"id": self.id, "pid": self.pid, "state": self.state, "invocations": self.invocations,
                "init_ms": None if self.init_duration_ms is None else round(self.init_duration_ms, 2),
                **self.sample_memory()}


def _proc_memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in KiB, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    out[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


class LogSink:
    """<logs_dir>/<function>.log, shared by all of a function's instances: every line goes out in
    one O_APPEND write, so lines never interleave."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        os.write(self._fd, data.rstrip(b"\r\n") + b"\n")

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass


class FunctionPool:
    def __init__(self, config: FunctionConfig, logs_dir: Path, region: str):
        self.config = config
        self.region = region
        self.arn = f"arn:aws:lambda:{region}:123456789012:function:{config.name}"
        self.sink = LogSink(Path(logs_dir) / f"{config.name}.log")
        self.queue: deque[Invocation] = deque()
        self.instances: dict[str, Instance] = {}
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._closed = False
        self.invocations_total = 0
        self.cold_starts = 0
        # Instances that have ended (newest last): init time, peak RSS, invocations each.
        self.retired: deque[dict] = deque(maxlen=200)
        self.peak_rss_kib: int | None = None       # the highest VmHWM of any instance so far
        # The fault campaign (PUT /_gateway/chaos): an instance is killed (SIGKILL) at a random
        # moment of an invocation with this probability, from a seeded stream.
        self.kill_probability = 0.0
        self.kill_max_ms = 0.0
        self.kill_rng = None
        self.kills = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_RESPONSE_BYTES)
        app.router.add_get(API + "/invocation/next", self._h_next)
        app.router.add_post(API + "/invocation/{request_id}/response", self._h_response)
        app.router.add_post(API + "/invocation/{request_id}/error", self._h_error)
        app.router.add_post(API + "/init/error", self._h_init_error)
        # A minimal Extensions API: enough for in-process helpers such as lambda_runtime's
        # graceful-shutdown extension (register, then wait on event/next until the end).
        app.router.add_post(EXT_API + "/register", self._h_ext_register)
        app.router.add_get(EXT_API + "/event/next", self._h_ext_next)
        app.router.add_post(EXT_API + "/init/error", self._h_ext_error)
        app.router.add_post(EXT_API + "/exit/error", self._h_ext_error)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)
        await self._runner.setup()

    async def close(self) -> None:
        self._closed = True
        await self.stop_instances()
        for inv in list(self.queue):
            self._resolve(inv, InvocationResult("error", error={
                "errorType": "Gateway.ShuttingDown", "errorMessage": "the gateway is stopping"}))
        self.queue.clear()
        if self._runner is not None:
            await self._runner.cleanup()
        self.sink.close()

    async def stop_instances(self, drain: bool = False) -> int:
        """Stop every instance: the next invocation cold-starts. With ``drain``, an instance busy
        with an invocation takes no new one and is stopped once that one is done (as Lambda
        retires environments after a configuration change); otherwise in-flight invocations fail."""
        instances = list(self.instances.values())

        async def retire(inst: Instance) -> None:
            inv = inst.current
            if drain and inv is not None and not inv.future.done():
                inst.stopping = True
                inst.state = "stopping"
                await asyncio.wait([inv.future], timeout=self.config.timeout_seconds + 1)
            await self._terminate(inst)

        await asyncio.gather(*(retire(i) for i in instances))
        return len(instances)

    def stats(self) -> dict:
        states = [i.state for i in self.instances.values()]
        return {
            "instances": len(states),
            "idle": states.count("idle"),
            "busy": states.count("busy"),
            "queued": len(self.queue),
            "invocations": self.invocations_total,
            "cold_starts": self.cold_starts,
            "pids": sorted(i.pid for i in self.instances.values() if i.pid),
            "command": list(self.config.command),
            # Per live instance: init duration (spawn to first /next, as Lambda's Init Duration),
            # resident memory now and at its peak (VmRSS, VmHWM of /proc/<pid>/status, KiB).
            "instance_stats": [self._note_peak(i.describe()) for i in self.instances.values()],
            "retired": list(self.retired),
            "peak_rss_kib": self.peak_rss_kib,
            "chaos_kills": self.kills,
        }

    def _note_peak(self, described: dict) -> dict:
        peak = described.get("peak_rss_kib")
        if peak is not None:
            self.peak_rss_kib = max(self.peak_rss_kib or 0, peak)
        return described

    # ------------------------------------------------------------------ invoking
    async def invoke(self, payload: bytes) -> InvocationResult:
        """Synchronous (RequestResponse) invocation. Always resolves: ok, error, crash or timeout."""
        if self._closed:
            return InvocationResult("error", error={"errorType": "Gateway.ShuttingDown",
                                                    "errorMessage": "the gateway is stopping"})
        inv = Invocation(payload)
        self.invocations_total += 1
        self.queue.append(inv)
        self._dispatch()
        return await asyncio.shield(inv.future)

    def _dispatch(self) -> None:
        if self._closed:
            return
        while self.queue:
            idle = next((i for i in self.instances.values() if i.state == "idle"), None)
            if idle is None:
                break
            self._assign(idle, self.queue.popleft())
        if not self.queue:
            return
        now = time.monotonic()
        starting = sum(1 for i in self.instances.values() if i.state == "init")
        # An instance that has just answered calls /next again right away; count it as capacity
        # for a moment so back-to-back requests reuse the warm instance (as Lambda does).
        returning = [i for i in self.instances.values()
                     if i.state == "returning" and now - i.returned_at < STALE_RETURNING_SECONDS]
        if returning:
            asyncio.get_running_loop().call_later(STALE_RETURNING_SECONDS, self._dispatch)
        need = len(self.queue) - starting - len(returning)
        while need > 0 and len(self.instances) < self.config.max_concurrency:
            self._spawn()
            need -= 1

    def _assign(self, inst: Instance, inv: Invocation) -> None:
        timeout = self.config.timeout_seconds
        inst.state = "busy"
        inst.current = inv
        inv.started = time.monotonic()
        inv.deadline_ms = int((time.time() + timeout) * 1000)
        inst.timer = asyncio.get_running_loop().call_later(timeout, self._on_timeout, inst, inv)
        self.sink.line(f"START RequestId: {inv.request_id} Version: $LATEST")
        if self.kill_rng is not None and self.kill_rng.random() < self.kill_probability:
            delay = self.kill_rng.uniform(0, self.kill_max_ms) / 1000
            asyncio.get_running_loop().call_later(delay, self._kill_mid_invocation, inst, inv)
        waiter, inst.waiter = inst.waiter, None
        waiter.set_result(inv)

    def _resolve(self, inv: Invocation, result: InvocationResult) -> bool:
        if inv.future.done():
            return False
        inv.future.set_result(result)
        return True

    def _finish(self, inst: Instance, inv: Invocation, result: InvocationResult) -> None:
        if inv.future.done():
            return
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        duration = (time.monotonic() - inv.started) * 1000
        result.instance, result.duration_ms = inst.id, duration
        inst.invocations += 1
        peak = inst.sample_memory()["peak_rss_kib"]
        self._resolve(inv, result)
        if inst.current is inv:
            inst.current = None
        if inst.state == "busy":
            inst.state = "returning"
            inst.returned_at = time.monotonic()
        self.sink.line(f"END RequestId: {inv.request_id}")
        report = (f"REPORT RequestId: {inv.request_id}\tDuration: {duration:.2f} ms\t"
                  f"Billed Duration: {int(duration) + 1} ms\tMemory Size: {self.config.memory_mb} MB")
        if peak is not None:
            report += f"\tMax Memory Used: {peak // 1024} MB"
        if inst.init_ms is not None:
            report += f"\tInit Duration: {inst.init_ms:.2f} ms"
            inst.init_ms = None
        if result.status != "ok":
            report += f"\tStatus: {result.status}"
        self.sink.line(report)

    def _kill_mid_invocation(self, inst: Instance, inv: Invocation) -> None:
        """The fault campaign's instance kill: the process dies with the invocation in flight
        (as a sandbox lost to a host failure or an out-of-memory kill)."""
        if inst.current is not inv or inv.future.done() or inst.state == "dead":
            return
        self.kills += 1
        self.sink.line(f"{_iso_now()} {inv.request_id} CHAOS instance {inst.id} killed mid-invocation")
        asyncio.ensure_future(self._terminate(inst, kill=True, deliberate=False))

    def _on_timeout(self, inst: Instance, inv: Invocation) -> None:
        inst.timer = None
        if inv.future.done():
            return
        seconds = self.config.timeout_seconds
        self.sink.line(f"{_iso_now()} {inv.request_id} Task timed out after {seconds:.2f} seconds")
        self._finish(inst, inv, InvocationResult("timeout", error={
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {inv.request_id} Error: Task timed out after {seconds:.2f} seconds"}))
        inst.state = "dead"
        self.instances.pop(inst.id, None)
        asyncio.ensure_future(self._terminate(inst, kill=True))
        self._dispatch()

    # ------------------------------------------------------------------ instances
    def _spawn(self) -> None:
        inst = Instance(f"{self.config.name}-{next(self._seq)}")
        self.instances[inst.id] = inst
        self.cold_starts += 1
        inst.tasks.append(asyncio.ensure_future(self._run_instance(inst)))

    def _process_env(self, port: int) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
        env.update({k: str(v) for k, v in self.config.env.items()})
        env.update({
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": self.config.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.config.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.config.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME":
                f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        })
        return env

    async def _run_instance(self, inst: Instance) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            inst.port = sock.getsockname()[1]
            inst.site = web.SockSite(self._runner, sock)
            await inst.site.start()
            self.sink.line(f"INIT_START Instance: {inst.id} Runtime API: 127.0.0.1:{inst.port}")
            inst.process = await asyncio.create_subprocess_exec(
                *self.config.command, env=self._process_env(inst.port),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
                preexec_fn=_child_setup, limit=OUTPUT_LINE_LIMIT)
        except OSError as exc:
            self.sink.line(f"INIT_REPORT Instance: {inst.id} Status: error "
                           f"Error Type: Runtime.InvalidEntrypoint ({exc})")
            log.error("%s: cannot start %s: %s", self.config.name, self.config.command, exc)
            inst.init_error = {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": str(exc)}
            await self._on_exit(inst, None)
            return
        log.info("%s: started instance %s (pid %s)", self.config.name, inst.id, inst.pid)
        pumps = [asyncio.ensure_future(self._pump(inst.process.stdout)),
                 asyncio.ensure_future(self._pump(inst.process.stderr))]
        init_timer = asyncio.get_running_loop().call_later(
            self.config.init_timeout_seconds, self._on_init_timeout, inst)
        rc = await inst.process.wait()
        init_timer.cancel()
        # Let the pipes drain so the log holds everything the process wrote.
        await asyncio.wait(pumps, timeout=2)
        await self._on_exit(inst, rc)

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:   # a line beyond the limit: what was buffered is dropped
                self.sink.line("[gateway] (over-long output line dropped)")
                continue
            if not line:
                return
            self.sink.line(line)

    def _on_init_timeout(self, inst: Instance) -> None:
        if inst.polled or inst.state == "dead":
            return
        inst.init_error = {"errorType": "Runtime.InitTimeout", "errorMessage":
                           f"init did not finish within {self.config.init_timeout_seconds} s"}
        asyncio.ensure_future(self._terminate(inst, kill=True, deliberate=False))

    async def _on_exit(self, inst: Instance, rc: int | None) -> None:
        was_stopping = inst.stopping
        inst.state = "dead"
        record = {**inst.describe(), "state": "dead", "exit": rc}
        record.pop("rss_kib", None)
        self.retired.append(self._note_peak(record))
        if not inst.gone.done():
            inst.gone.set_result(None)
        self.instances.pop(inst.id, None)
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        if inst.waiter is not None and not inst.waiter.done():
            inst.waiter.set_exception(InstanceGone())
        inv = inst.current
        if inv is not None and not inv.future.done():
            message = (f"RequestId: {inv.request_id} Error: Runtime exited with error: exit status {rc}"
                       if rc is not None and rc >= 0 else
                       f"RequestId: {inv.request_id} Error: Runtime exited with error: signal {-(rc or 0)}")
            self.sink.line(message)
            self.sink.line("Runtime.ExitError")
            self._finish(inst, inv, InvocationResult("crash", error={
                "errorType": "Runtime.ExitError", "errorMessage": message}))
        elif not inst.polled and not was_stopping and self.queue:
            # Init failed: the invocation this cold start was for fails (no endless respawning).
            error = inst.init_error or {"errorType": "Runtime.ExitError",
                                        "errorMessage": f"Runtime exited during init: exit status {rc}"}
            self.sink.line(f"INIT_REPORT Instance: {inst.id} Status: error Error Type: {error['errorType']}")
            victim = self.queue.popleft()
            self._resolve(victim, InvocationResult("error", error=error, instance=inst.id))
        if rc is not None:
            log.info("%s: instance %s (pid %s) exited with %s", self.config.name, inst.id, inst.pid, rc)
        if inst.site is not None:
            site, inst.site = inst.site, None
            await site.stop()
        self._dispatch()

    async def _terminate(self, inst: Instance, kill: bool = False, deliberate: bool = True) -> None:
        """Stop an instance. ``deliberate`` (recycle, shutdown) means a death during init is not an
        init failure."""
        if deliberate:
            inst.stopping = True
        if inst.state != "dead":
            inst.state = "stopping"
        proc = inst.process
        if proc is None or proc.returncode is not None:
            return
        inst.sample_memory()   # the last look at its peak before it goes
        _signal_group(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=2)
        except asyncio.TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
        # _run_instance sees the exit and cleans up; wait for that so callers see a settled pool.
        await asyncio.wait(inst.tasks, timeout=5)

    # ------------------------------------------------------------------ Runtime API handlers
    def _instance_for(self, request: web.Request) -> Instance | None:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        port = sockname[1] if sockname else None
        return next((i for i in self.instances.values() if i.port == port), None)

    async def _h_next(self, request: web.Request) -> web.StreamResponse:
        inst = self._instance_for(request)
        if inst is None or inst.state in ("dead", "stopping"):
            return _runtime_error(500, "Runtime.Unavailable", "this execution environment is gone")
        if inst.current is not None and not inst.current.future.done():
            self._finish(inst, inst.current, InvocationResult("error", error={
                "errorType": "Runtime.NoResponse",
                "errorMessage": "the runtime asked for the next event without answering this one"}))
        if not inst.polled:
            inst.polled = True
            inst.init_ms = inst.init_duration_ms = (time.monotonic() - inst.spawned_at) * 1000
        inst.state = "idle"
        inst.waiter = asyncio.get_running_loop().create_future()
        waiter = inst.waiter
        self._dispatch()
        try:
            inv = await waiter
        except InstanceGone:
            return _runtime_error(500, "Runtime.Unavailable", "this execution environment is gone")
        return web.Response(body=inv.payload, content_type="application/json", headers={
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.arn,
            "Lambda-Runtime-Trace-Id": inv.trace_id,
        })

    def _current(self, request: web.Request) -> tuple[Instance | None, Invocation | None]:
        inst = self._instance_for(request)
        rid = request.match_info["request_id"]
        if inst is None or inst.current is None or inst.current.request_id != rid:
            return inst, None
        return inst, inst.current

    async def _h_response(self, request: web.Request) -> web.StreamResponse:
        inst, inv = self._current(request)
        if inv is None:
            return _runtime_error(400, "InvalidRequestID", "unknown or finished request id")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._finish(inst, inv, InvocationResult("error", error={
                "errorType": "Function.ResponseSizeTooLarge",
                "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                f"({MAX_RESPONSE_BYTES} bytes)."}))
            return _runtime_error(413, "RequestEntityTooLarge", "response too large")
        self._finish(inst, inv, InvocationResult("ok", payload=body))
        return web.json_response({"status": "OK"}, status=202)

    async def _h_error(self, request: web.Request) -> web.StreamResponse:
        inst, inv = self._current(request)
        if inv is None:
            return _runtime_error(400, "InvalidRequestID", "unknown or finished request id")
        error = await _read_error(request)
        self.sink.line(f"{_iso_now()} {inv.request_id} ERROR Invoke Error {json.dumps(error)}")
        self._finish(inst, inv, InvocationResult("error", error=error))
        return web.json_response({"status": "OK"}, status=202)

    async def _h_init_error(self, request: web.Request) -> web.StreamResponse:
        inst = self._instance_for(request)
        if inst is None or inst.polled:
            return _runtime_error(403, "InvalidStateTransition", "init already finished")
        inst.init_error = await _read_error(request)
        self.sink.line(f"INIT_REPORT Instance: {inst.id} Init Error {json.dumps(inst.init_error)}")
        # Lambda resets the environment after an init error.
        asyncio.get_running_loop().call_later(
            0.2, lambda: asyncio.ensure_future(self._terminate(inst, kill=True, deliberate=False)))
        return web.json_response({"status": "OK"}, status=202)


    async def _h_ext_register(self, request: web.Request) -> web.StreamResponse:
        inst = self._instance_for(request)
        if inst is None or inst.polled:
            return _runtime_error(403, "InvalidStateTransition", "register during init only")
        name = request.headers.get("Lambda-Extension-Name", "")
        self.sink.line(f"EXTENSION Name: {name} State: Ready Events: [] Instance: {inst.id}")
        return web.json_response(
            {"functionName": self.config.name, "functionVersion": "$LATEST", "handler": ""},
            headers={"Lambda-Extension-Identifier": str(uuid.uuid4())})

    async def _h_ext_next(self, request: web.Request) -> web.StreamResponse:
        inst = self._instance_for(request)
        if inst is not None:
            await asyncio.shield(inst.gone)   # no events are delivered; this ends with the instance
        return web.json_response({"eventType": "SHUTDOWN", "shutdownReason": "spindown",
                                  "deadlineMs": int(time.time() * 1000) + 2000})

    async def _h_ext_error(self, request: web.Request) -> web.StreamResponse:
        self.sink.line(f"EXTENSION error: {request.headers.get('Lambda-Extension-Function-Error-Type', '')}")
        return web.json_response({"status": "OK"}, status=202)


class InstanceGone(Exception):
    pass


async def _read_error(request: web.Request) -> dict:
    raw = await request.read()
    try:
        error = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        error = {"errorMessage": raw.decode("utf-8", "replace")}
    if not isinstance(error, dict):
        error = {"errorMessage": str(error)}
    error.setdefault("errorType", request.headers.get("Lambda-Runtime-Function-Error-Type",
                                                      "Unhandled"))
    error.setdefault("errorMessage", "")
    return error


def _runtime_error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"errorType": error_type, "errorMessage": message}, status=status)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)   # the instance runs in its own session: its pgid is its pid
    except ProcessLookupError:
        pass
    except PermissionError:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
