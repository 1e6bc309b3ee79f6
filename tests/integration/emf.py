"""Reading the functions' CloudWatch EMF lines (shared/src/metrics.rs) back from the logs the local
gateway keeps (<logs_dir>/<function>.log), for the integration test and the fault campaign."""

from __future__ import annotations

import json
from pathlib import Path

import requests


class Logs:
    """The functions' log files from where they end now: only what is written afterwards."""

    def __init__(self, stack):
        self.stack = stack
        self.marks = {p.name: p.stat().st_size for p in Path(stack.logs_dir).glob("*.log")}

    def documents(self) -> list[dict]:
        """Every EMF document written since the marks. Stopping the instances first drains their
        output into the logs (the gateway waits for that), so every finished invocation's lines
        are in the files — metrics are written when an invocation ends."""
        functions = requests.get(self.stack.gateway_url + "/_gateway/functions", timeout=10).json()
        for name in functions:
            self.stack.recycle(name)
        docs = []
        for path in Path(self.stack.logs_dir).glob("*.log"):
            with path.open("rb") as f:
                f.seek(self.marks.get(path.name, 0))
                text = f.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if line.startswith("{") and '"_aws"' in line:
                    docs.append(json.loads(line))
        return docs


def matching(docs, metric, **dims) -> list[dict]:
    return [d for d in docs if metric in d and all(d.get(k) == v for k, v in dims.items())]


def total(docs, metric, **dims) -> float:
    """A count's sum (each document holds its invocation's sum)."""
    return sum(d[metric] for d in matching(docs, metric, **dims))


def samples(docs, metric, **dims) -> list[float]:
    """A timing's values (a number, or an array of up to 100 per document)."""
    out = []
    for d in matching(docs, metric, **dims):
        out += d[metric] if isinstance(d[metric], list) else [d[metric]]
    return out
