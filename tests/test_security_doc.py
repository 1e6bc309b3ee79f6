"""SECURITY.md names, next to each threat, the tests that prove its control: every name it gives
must be a test that exists, so the threat model cannot point at tests that were renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "SECURITY.md"

# Rust and Python test names inside backticks: `name`, `module::name`, `file.py::name`,
# `module::{a, b}`; infra test titles in double quotes after "infra".
CODE = re.compile(r"`([^`]+)`")
IDENT = re.compile(r"[a-z][a-z0-9_]{12,}")


def sources() -> str:
    texts = []
    for pattern in ("shared/**/*.rs", "functions/**/*.rs", "fuzz/**/*.rs", "tests/**/*.py"):
        for path in REPO.glob(pattern):
            if "target" in path.parts or "node_modules" in path.parts or ".venv" in path.parts:
                continue
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def error_codes() -> set[str]:
    """The API's error codes (`tenant_rate_limited`, …): named in the controls, not tests."""
    return set(re.findall(r'"([a-z][a-z_]+)"', (REPO / "shared" / "src" / "error.rs").read_text()))


def cells_naming_tests(doc: str) -> list[str]:
    """The third column of every threat table row: where the tests are named."""
    cells = []
    for line in doc.splitlines():
        parts = line.split(" | ")
        if line.startswith("| ") and len(parts) >= 3 and not line.startswith("| threat"):
            cells.append(parts[-1])
    return cells


def named_tests(doc: str) -> set[str]:
    codes = error_codes()
    names = set()
    for cell in cells_naming_tests(doc):
        for span in CODE.findall(cell):
            span = re.sub(r"\b[a-z_0-9]+\.(py|rs|ts)\b", "", span)  # file names, not tests
            for ident in IDENT.findall(span):
                if ident.count("_") >= 2 and ident not in codes:
                    names.add(ident)
    return names


def test_every_test_security_md_names_exists():
    doc = DOC.read_text()
    code = sources()
    names = named_tests(doc)
    assert len(names) >= 60, sorted(names)
    missing = sorted(n for n in names if not re.search(rf"\b(def|fn) {re.escape(n)}\b", code))
    assert missing == [], f"SECURITY.md names tests that do not exist: {missing}"


def test_every_infra_test_title_security_md_quotes_exists():
    doc = DOC.read_text()
    infra = "\n".join(p.read_text() for p in (REPO / "infra" / "test").glob("*.ts")).replace("\\'", "'")
    quoted = {t.replace('\\"', '"') for cell in cells_naming_tests(doc) if "infra" in cell
              for t in re.findall(r'"((?:[^"\\]|\\.)+)"', cell)}
    assert len(quoted) >= 8, quoted
    missing = sorted(t for t in quoted if t.rstrip("…: ") not in infra)
    assert missing == [], f"SECURITY.md quotes infra tests that do not exist: {missing}"
