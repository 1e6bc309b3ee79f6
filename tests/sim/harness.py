"""Start and drive the simulator from Python tests (this suite and the integration tests).

    with SimProcess() as sim:
        sim.control("PUT", "/oauth/client", {"redirect_uris": [...]})
        base = sim.url

The process is started with `python -m tests.sim --port 0`; `start()` returns as soon as the
`READY <url>` line arrives (no sleeping). stderr goes to a file (`sim.log_path`) so a busy
server can never block on a full pipe, and so tests can scan it.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import requests

from .spec import default_specs_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPECS = str(default_specs_dir())


class SimProcess:
    def __init__(self, specs: str = DEFAULT_SPECS, consent_page: bool = False,
                 host: str = "127.0.0.1", python: str = sys.executable, ready_timeout: float = 30):
        self.specs = specs
        self.consent_page = consent_page
        self.host = host
        self.python = python
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self._log = None
        self.log_path: str | None = None
        self.http = requests.Session()

    # ---- lifecycle ------------------------------------------------------------------
    def start(self) -> "SimProcess":
        fd, self.log_path = tempfile.mkstemp(prefix="atlassian-sim-", suffix=".log")
        self._log = os.fdopen(fd, "w")
        cmd = [self.python, "-m", "tests.sim", "--host", self.host, "--port", "0",
               "--specs", self.specs]
        if self.consent_page:
            cmd.append("--consent-page")
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.ready_timeout
        line = ""
        while not line.endswith("\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                self.stop(keep_log=True)
                raise RuntimeError(f"simulator not ready in {self.ready_timeout}s; log: {self.log_path}")
            chunk = self.proc.stdout.readline()
            if not chunk:
                self.stop(keep_log=True)
                raise RuntimeError(f"simulator exited before READY; log: {self.log_path}")
            line += chunk
        sel.close()
        if not line.startswith("READY "):
            self.stop(keep_log=True)
            raise RuntimeError(f"unexpected first line {line!r}")
        self.url = line.split(" ", 1)[1].strip()
        return self

    def stop(self, timeout: float = 10, keep_log: bool | None = None) -> int | None:
        """SIGTERM and wait. The log file is removed unless keep_log (default: keep it only
        when the exit code is not 0)."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    rc = self.proc.wait()
            else:
                rc = self.proc.returncode
            if self.proc.stdout:
                self.proc.stdout.close()
        if self._log:
            self._log.close()
            self._log = None
        if keep_log is None:
            keep_log = rc not in (0, None)
        if not keep_log and self.log_path and os.path.exists(self.log_path):
            os.unlink(self.log_path)
        self.http.close()
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_text(self) -> str:
        return Path(self.log_path).read_text() if self.log_path else ""

    # ---- control API ----------------------------------------------------------------
    def control(self, method: str, path: str, body=None, expect: int | None = None):
        r = self.http.request(method, f"{self.url}/_sim{path}", json=body, timeout=10)
        if expect is not None and r.status_code != expect:
            raise AssertionError(f"{method} /_sim{path}: {r.status_code} {r.text}")
        return r.json() if r.content else None

    def reset(self):
        return self.control("POST", "/reset", expect=200)

    def register_client(self, redirect_uris: list[str], client_id: str = "bridge-local-client",
                        client_secret: str = "sim-client-secret"):
        return self.control("PUT", "/oauth/client", {"client_id": client_id, "client_secret": client_secret,
                                                    "redirect_uris": redirect_uris}, expect=200)

    def config(self, **kwargs):
        return self.control("PUT", "/oauth/config", kwargs, expect=200)

    def sites(self, sites: list[dict]):
        return self.control("PUT", "/sites", sites, expect=200)

    def fault(self, **spec) -> str:
        return self.control("POST", "/faults", spec, expect=201)["id"]

    def calls(self) -> dict:
        return self.control("GET", "/calls", expect=200)

    def issued(self) -> dict:
        return self.control("GET", "/oauth/issued", expect=200)

    # ---- Data Center, OIDC, API tokens, data -------------------------------------------
    def dc_base(self, instance: str = "jira-dc") -> str:
        """The base URL a client configures for a DC instance (context path included)."""
        inst = next(i for i in self.control("GET", "/dc/instances", expect=200) if i["id"] == instance)
        return f"{self.url}/dc/{inst['id']}{inst['context_path']}"

    def site_base(self, name: str = "acme") -> str:
        """The site URL (`https://<name>.atlassian.net`) as this sim serves it."""
        return f"{self.url}/site/{name}"

    def pat(self, instance: str, user: str) -> str:
        return self.control("POST", "/dc/pats", {"instance": instance, "user": user}, expect=201)["token"]

    def quirks(self, **kwargs) -> dict:
        return self.control("PUT", "/quirks", kwargs, expect=200)

    def data(self, kind: str, **params) -> list:
        """The complete data set behind the paginated endpoints (`GET /_sim/data/{kind}`)."""
        query = ("?" + urlencode(params)) if params else ""
        return self.control("GET", f"/data/{kind}{query}", expect=200)["items"]
