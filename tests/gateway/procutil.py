"""Child processes for the test equipment (used by the gateway tests and tests/devstack.py):
output to a log file, readiness via a ``READY <url>`` stdout line, clean stop, no orphans."""
from __future__ import annotations

import collections
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

try:
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - non-glibc platforms
    _LIBC = None


def _child_setup() -> None:
    # Own session (Ctrl-C in a terminal reaches only the parent, which stops children in order)
    # and SIGTERM when the parent dies without cleaning up.
    os.setsid()
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ChildProcess:
    """A subprocess whose stdout and stderr go to ``log_path`` (stdout is also scanned for READY)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, *, env: dict | None = None,
                 cwd: str | Path | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self._ready = threading.Event()
        self._log = None
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> "ChildProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab", buffering=0)
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            env=self.env, cwd=self.cwd, preexec_fn=_child_setup)
        self._reader = threading.Thread(target=self._pump, name=f"{self.name}-stdout", daemon=True)
        self._reader.start()
        return self

    def _pump(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            self._log.write(raw)
            line = raw.decode("utf-8", "replace").strip()
            self._tail.append(line)
            if not self._ready.is_set() and line.startswith("READY "):
                self.url = line.split(None, 1)[1].strip()
                self._ready.set()
        self.proc.stdout.close()

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Wait for the READY line; raise with the log's tail if the process exits or times out."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._ready.wait(0.5)  # the READY line may still be in the pipe
                if self._ready.is_set():
                    break
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was "
                                   f"ready; see {self.log_path}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log_path}:\n"
                                   f"{self.log_tail()}")
        return self.url

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the whole process group. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Still alive (so its pid is still its process group's id): kill the whole group.
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    self.proc.kill()
        rc = self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc
