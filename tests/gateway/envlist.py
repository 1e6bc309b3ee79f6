"""The functions' environment variables, from their one list: shared/env.json.

The gateway (config file and PUT /_gateway/functions/{name}/env) and tests/devstack.py refuse a
``BRIDGE_*`` name the list does not hold, so a typo in a test's settings fails loudly instead of
silently testing the default. README.md's "Environment variables" table is generated from the list:

    .venv/bin/python -m tests.gateway.envlist --write-readme     # rewrite the table
    .venv/bin/python -m tests.gateway.envlist                    # exit 1 when the README drifted
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_LIST = REPO_ROOT / "shared" / "env.json"
README = REPO_ROOT / "README.md"
PREFIX = "BRIDGE_"
TABLE_START = "<!-- env-table: generated from shared/env.json by `python -m tests.gateway.envlist --write-readme` -->"
TABLE_END = "<!-- /env-table -->"


@functools.cache
def variables() -> tuple[dict, ...]:
    return tuple(json.loads(ENV_LIST.read_text())["variables"])


def names() -> frozenset[str]:
    return frozenset(v["name"] for v in variables())


def unknown_bridge_names(env) -> list[str]:
    """The ``BRIDGE_*`` names in ``env`` (any iterable of names) that shared/env.json lacks."""
    known = names()
    return sorted(n for n in env if n.startswith(PREFIX) and n not in known)


def check(env, where: str) -> None:
    """Raises ValueError naming every ``BRIDGE_*`` variable in ``env`` that the list lacks."""
    unknown = unknown_bridge_names(env)
    if unknown:
        raise ValueError(f"{where}: {', '.join(unknown)} not in {ENV_LIST.relative_to(REPO_ROOT)} "
                         f"(a typo, or a new variable to add there)")


# ---------------------------------------------------------------------------------- the README
def render_table() -> str:
    rows = ["| variable | required | default | meaning |", "|---|---|---|---|"]
    for v in variables():
        if not v["required"]:
            required = "no"
        elif v["functions"] == "all":
            required = "yes"
        else:
            required = ", ".join(v["functions"])
        default = f" `{v['default']}` " if v["default"] is not None else " "
        rows.append(f"| `{v['name']}` | {required} |{default}| {v['description']} |")
    return "\n".join(rows)


def readme_with_table(text: str) -> str:
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {TABLE_START!r} ... {TABLE_END!r}")
    return text[:start] + TABLE_START + "\n" + render_table() + "\n" + text[end:]


def main(argv: list[str]) -> int:
    text = README.read_text()
    wanted = readme_with_table(text)
    if "--write-readme" in argv:
        README.write_text(wanted)
        return 0
    if wanted != text:
        print("README.md's environment variables table differs from shared/env.json; run "
              "`python -m tests.gateway.envlist --write-readme`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
