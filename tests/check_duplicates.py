"""Repetition in the library (shared/src) stays where we decided it may.

Runs the `duplicates` command (the workplace's tool library; not on every machine) over shared/src
and compares the pairs of files it reports with shared/duplicates-allow.txt, where each accepted
pair has its reason. A pair the allowlist does not name fails the check, and so does an allowlist
entry that no longer matches anything (so the list cannot rot). Pairs are matched by file, not by
line numbers, which move with every edit.

    python tests/check_duplicates.py          # the check (skipped, with a notice, without the tool)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ALLOW = REPO / "shared" / "duplicates-allow.txt"
ROW = re.compile(r"^D\d+ (?P<a>[^:\s]+):\d+-\d+ ~ (?P<b>[^:\s]+):\d+-\d+")


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def allowlist() -> dict[tuple[str, str], str]:
    allowed: dict[tuple[str, str], str] = {}
    for number, raw in enumerate(ALLOW.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        files, sep, reason = line.partition(":")
        a, tilde, b = files.partition(" ~ ")
        if not sep or not tilde or not reason.strip():
            sys.exit(f"{ALLOW.name}:{number}: expected `a.rs ~ b.rs: why this repetition stays`, got {raw!r}")
        allowed[pair(a.strip(), b.strip())] = reason.strip()
    return allowed


def reported() -> set[tuple[str, str]]:
    out = subprocess.run(
        ["duplicates", "--repo", str(REPO / "shared" / "src"), "--most", "200", "--seconds", "120"],
        check=True, capture_output=True, text=True,
    ).stdout
    if "incomplete:" in out:
        sys.exit(f"duplicates did not read the whole tree:\n{out}")
    return {pair(m["a"], m["b"]) for m in map(ROW.match, out.splitlines()) if m}


def main() -> int:
    if shutil.which("duplicates") is None:
        print("check_duplicates: the `duplicates` command is not installed here; skipped")
        return 0
    allowed, found = allowlist(), reported()
    new = sorted(found - allowed.keys())
    stale = sorted(allowed.keys() - found)
    for a, b in new:
        print(f"repeated and not in {ALLOW.name}: {a} ~ {b} (make one piece of code serve both, or add the pair with its reason)")
    for a, b in stale:
        print(f"in {ALLOW.name} but no longer repeated: {a} ~ {b} (remove the entry)")
    if not new and not stale:
        print(f"check_duplicates: {len(found)} repeated pair(s) in shared/src, each accepted in {ALLOW.name}")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
