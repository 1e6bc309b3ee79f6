"""cfn-lint and checkov over the synthesized templates, with the accepted findings of checks/skips.yaml.

    infra/.venv/bin/python infra/checks/run_checks.py [CDK_OUT_DIR ...]

Fails (exit 1) on any finding that no skip covers. A skip names a rule or check and the resources
(logical-id globs) it applies to, so one accepted finding never hides the same problem elsewhere.
Runs offline: checkov gets --skip-download (without it, it tries the network).
"""
from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def load_skips() -> dict[str, list[dict]]:
    doc = yaml.safe_load((HERE / "skips.yaml").read_text()) or {}
    out: dict[str, list[dict]] = {"cfn-lint": [], "checkov": []}
    for tool, id_key in (("cfn-lint", "rule"), ("checkov", "check")):
        for entry in doc.get(tool) or []:
            if not entry.get(id_key) or not entry.get("resources") or not str(entry.get("reason", "")).strip():
                sys.exit(f"skips.yaml: every {tool} entry needs {id_key}, resources and a reason: {entry}")
            out[tool].append({"id": entry[id_key], "resources": list(entry["resources"]), "used": 0, "globs": set()})
    return out


def covered(skips: list[dict], rule: str, resource: str) -> bool:
    for s in skips:
        globs = [g for g in s["resources"] if fnmatch.fnmatchcase(resource, g)]
        if s["id"] == rule and globs:
            s["used"] += 1
            s["globs"].update(globs)
            return True
    return False


def run_cfn_lint(templates: list[Path], skips: list[dict]) -> list[str]:
    proc = subprocess.run([str(BIN / "cfn-lint"), "--format", "json", "--", *map(str, templates)],
                          capture_output=True, text=True)
    # Exit status is a bit mask: 2 errors, 4 warnings, 8 informational; 1 means cfn-lint itself failed.
    if proc.returncode & 1:
        raise SystemExit(f"cfn-lint failed to run (exit {proc.returncode}):\n{proc.stderr}")
    failures = []
    for m in json.loads(proc.stdout or "[]"):
        if m["Level"] not in ("Error", "Warning"):
            continue
        path = m["Location"]["Path"] or []
        resource = path[1] if len(path) > 1 and path[0] == "Resources" else "/".join(map(str, path))
        if not covered(skips, m["Rule"]["Id"], resource):
            failures.append(f"cfn-lint {m['Rule']['Id']} {m['Filename']} {resource}: {m['Message']}")
    return failures


def run_checkov(templates: list[Path], skips: list[dict]) -> tuple[list[str], int]:
    args = [str(BIN / "checkov"), "--framework", "cloudformation", "--skip-download", "--quiet", "-o", "json"]
    for t in templates:
        args += ["-f", str(t)]
    proc = subprocess.run(args, capture_output=True, text=True)
    try:
        reports = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"checkov failed to run (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if isinstance(reports, dict):
        reports = [reports]
    failures, passed = [], 0
    for report in reports:
        if report.get("summary", {}).get("parsing_errors"):
            failures.append(f"checkov could not parse: {report['results'].get('parsing_errors')}")
        passed += report.get("summary", {}).get("passed", 0)
        for f in report.get("results", {}).get("failed_checks", []):
            resource = f["resource"].split(".", 1)[-1]   # "AWS::Lambda::Function.LogicalId"
            if not covered(skips, f["check_id"], resource):
                failures.append(f"checkov {f['check_id']} {f['file_path']} {f['resource']}: {f['check_name']}")
    return failures, passed


def main() -> int:
    dirs = [Path(d) for d in sys.argv[1:]] or [HERE.parent / "cdk.out"]
    templates = []
    for d in dirs:
        found = sorted(d.glob("*.template.json"))
        if not found:
            print(f"no templates in {d}: run cdk synth first", file=sys.stderr)
            return 1
        templates += found
    skips = load_skips()

    t0 = time.monotonic()
    lint_failures = run_cfn_lint(templates, skips["cfn-lint"])
    t1 = time.monotonic()
    checkov_failures, checkov_passed = run_checkov(templates, skips["checkov"])
    t2 = time.monotonic()

    names = ", ".join(f"{t.parent.name}/{t.name}" for t in templates)
    print(f"cfn-lint: {len(lint_failures)} unaccepted finding(s) over {names} ({t1 - t0:.1f} s)")
    print(f"checkov:  {checkov_passed} passed, {len(checkov_failures)} unaccepted failure(s) ({t2 - t1:.1f} s)")
    for tool, entries in skips.items():
        for s in entries:
            unused = [g for g in s["resources"] if g not in s["globs"]]
            state = f"accepted {s['used']} finding(s)" if s["used"] else "STALE: matched nothing (remove it?)"
            if s["used"] and unused:
                state += f"; STALE resources {unused} (remove them?)"
            print(f"  skip {tool} {s['id']} {s['resources']}: {state}")
    for f in lint_failures + checkov_failures:
        print(f"FAIL {f}")
    return 1 if lint_failures or checkov_failures else 0


if __name__ == "__main__":
    sys.exit(main())
