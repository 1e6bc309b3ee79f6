"""Our Connect query string hash (shared/src/connect/qsh.rs) agrees with Atlassian's reference
implementation, the npm package atlassian-jwt (pinned in tests/connect/package.json), on every
request in tests/connect/requests.json: repeated and empty parameters, a parameter without `=`,
spaces vs `%20` vs `+`, `*`, `~`, reserved characters, non-ASCII, trailing slashes, the context
path, the `jwt` parameter, percent-encoded input. Both sides run on each test run, so neither the
vectors nor the expected hashes are ever frozen."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONNECT = REPO / "tests" / "connect"
REQUESTS = CONNECT / "requests.json"


def requests() -> list[dict]:
    return json.loads(REQUESTS.read_text(encoding="utf-8"))


def reference(cases: list[dict]) -> list[dict]:
    installed = CONNECT / "node_modules" / "atlassian-jwt" / "package.json"
    assert installed.exists(), "atlassian-jwt is not installed: run `make test-tools`"
    pinned = json.loads((CONNECT / "package.json").read_text())["dependencies"]["atlassian-jwt"]
    assert json.loads(installed.read_text())["version"] == pinned, "node_modules is not the pinned atlassian-jwt"
    out = subprocess.run(["node", str(CONNECT / "qsh.js")], input=json.dumps(cases), capture_output=True,
                         text=True, encoding="utf-8", check=True, cwd=CONNECT)
    return json.loads(out.stdout)


def ours(cases: list[dict]) -> list[dict]:
    out = subprocess.run(["cargo", "run", "-q", "-p", "bridge-shared", "--features", "fault-injection",
                          "--example", "connect_qsh"], input=json.dumps(cases), capture_output=True,
                         text=True, encoding="utf-8", cwd=REPO)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_vectors_cover_at_least_forty_requests_of_every_kind():
    cases = requests()
    assert len(cases) >= 40
    urls = " ".join(c["url"] for c in cases)
    for needle in ["&&", "+", "%20", " ", "*", "~", "é", "日本", "😀", "jwt=", "/wiki", "%2F", "/?", "?flag&", "/a&b"]:
        assert needle in urls, needle
    assert any(c["method"] != c["method"].upper() for c in cases)
    assert any(c["base"] for c in cases)


def test_our_qsh_agrees_with_atlassians_reference_implementation():
    cases = requests()
    theirs, mine = reference(cases), ours(cases)
    assert len(theirs) == len(mine) == len(cases)
    differ = [f"{c['case']}: {c['method']} {c['url']} (base {c['base']!r})\n  atlassian-jwt {t['canonical']}\n"
              f"  ours          {m['canonical']}" for c, t, m in zip(cases, theirs, mine) if t != m]
    assert not differ, "\n".join(differ)
    # A hash is 64 lowercase hex digits, and the cases are not all one request.
    assert all(len(m["qsh"]) == 64 and m["qsh"] == m["qsh"].lower() for m in mine)
    assert len({m["qsh"] for m in mine}) > 40
