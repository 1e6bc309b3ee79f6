"""Atlassian's OpenAPI files: operation lookup and the OAuth scopes each operation needs.

A `Spec` is one OpenAPI file mounted at a URL prefix inside a product's base URL
(Cloud gateway `/ex/{product}/{cloudId}<mount><spec path>`, Cloud site `/site/{name}<mount>...`,
Data Center `/dc/{instance}{context path}<mount>...`, the mount being the spec's own server
path, e.g. `/rest` for Jira DC). Matching is done on the raw (still
percent-encoded) request path so that an encoded `/` never splits a segment; path
parameters are returned decoded.

Scope rule (as the files state it): an operation lists alternatives in `security`
(`[{"basicAuth": []}, {"OAuth2": ["read:jira-user"]}]`) and in
`x-atlassian-oauth2-scopes` (`[{"scheme", "scopes", "state": Current|Beta}]`). An OAuth
access token is accepted when it holds every scope of at least one OAuth alternative from
either list. `basicAuth` and the anonymous `{}` alternative do not apply to OAuth tokens.
An operation with no OAuth alternative at all cannot be called with an OAuth token.

Basic rule: HTTP Basic (API token on Cloud, password on DC) is accepted when one alternative
names an `http`/`basic` scheme. An operation with no `security` at all takes Basic on the DC
files (they declare no per-operation security) but not on the Cloud files (there those are
Connect-JWT-only operations).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote

SPECS_DIR_VAR = "ATLASSIAN_SPECS_DIR"
"""The one name, across the test tools, for the directory of Atlassian's OpenAPI files."""


def default_specs_dir() -> Path:
    """``$ATLASSIAN_SPECS_DIR``, else ``shared/specs`` beside the repository (``../shared/specs``)."""
    return Path(os.environ.get(SPECS_DIR_VAR) or Path(__file__).resolve().parents[3] / "shared" / "specs")


HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# Scopes that exist outside any product API file (Atlassian platform scopes).
PLATFORM_SCOPES = frozenset({"offline_access", "read:me", "read:account"})


@dataclass(frozen=True)
class Operation:
    spec: str                       # spec name, e.g. "jira-cloud-v3"
    method: str                     # upper-case
    template: str                   # path template as written in the spec
    operation_id: str | None
    oauth_alternatives: tuple[frozenset[str], ...]
    raw: dict = field(repr=False, compare=False, hash=False)
    basic_ok: bool = True

    def scopes_ok(self, granted: Iterable[str]) -> bool:
        g = set(granted)
        return any(alt <= g for alt in self.oauth_alternatives)


@dataclass
class _Compiled:
    regex: re.Pattern
    names: list[str]
    specificity: tuple[int, ...]    # 1 per literal segment, 0 per templated one
    operation: Operation


def _compile_template(template: str) -> tuple[re.Pattern, list[str], tuple[int, ...]]:
    names: list[str] = []
    parts: list[str] = []
    spec_flags: list[int] = []
    for seg in template.split("/"):
        out = ""
        pos = 0
        literal = True
        for m in re.finditer(r"\{([^}]+)\}", seg):
            out += re.escape(seg[pos:m.start()])
            names.append(m.group(1))
            out += r"([^/]+)"
            pos = m.end()
            literal = False
        out += re.escape(seg[pos:])
        parts.append(out)
        spec_flags.append(1 if literal else 0)
    return re.compile("^" + "/".join(parts) + "$"), names, tuple(spec_flags)


def _oauth_scheme_names(doc: dict) -> set[str]:
    names = set()
    for name, scheme in (doc.get("components", {}).get("securitySchemes") or {}).items():
        if scheme.get("type") == "oauth2" or "flows" in scheme:
            names.add(name)
    return names


def _basic_scheme_names(doc: dict) -> set[str]:
    return {name for name, scheme in (doc.get("components", {}).get("securitySchemes") or {}).items()
            if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "basic"}


def _declared_scopes(doc: dict) -> set[str]:
    scopes: set[str] = set()
    for scheme in (doc.get("components", {}).get("securitySchemes") or {}).values():
        for flow in (scheme.get("flows") or {}).values():
            scopes |= set(flow.get("scopes") or {})
    return scopes


class Spec:
    """One OpenAPI file, indexed for method + path lookup."""

    def __init__(self, name: str, path: Path, mount: str = "", basic_when_unspecified: bool = False):
        self.name = name
        self.mount = mount.rstrip("/")
        self.path = path
        with open(path, "r", encoding="utf-8") as fh:
            self.doc = json.load(fh)
        oauth_schemes = _oauth_scheme_names(self.doc)
        basic_schemes = _basic_scheme_names(self.doc)
        self.scopes: set[str] = _declared_scopes(self.doc)
        self._by_method: dict[str, dict[int, list[_Compiled]]] = {}
        self.operations: list[Operation] = []
        for template, item in self.doc.get("paths", {}).items():
            for method, op in item.items():
                if method not in HTTP_METHODS:
                    continue
                alts: list[frozenset[str]] = []
                for entry in op.get("security") or []:
                    for scheme, scopes in entry.items():
                        if scheme in oauth_schemes:
                            alts.append(frozenset(scopes or ()))
                for entry in op.get("x-atlassian-oauth2-scopes") or []:
                    alts.append(frozenset(entry.get("scopes") or ()))
                for alt in alts:
                    self.scopes |= alt
                # keep order, drop duplicates
                uniq = tuple(dict.fromkeys(alts))
                security = op.get("security")
                if security is None:
                    basic_ok = basic_when_unspecified
                else:
                    basic_ok = any(s in basic_schemes for entry in security for s in entry)
                operation = Operation(self.name, method.upper(), template,
                                      op.get("operationId"), uniq, op, basic_ok)
                self.operations.append(operation)
                regex, names, specificity = _compile_template(template)
                nseg = template.count("/")
                self._by_method.setdefault(method.upper(), {}).setdefault(nseg, []).append(
                    _Compiled(regex, names, specificity, operation))

    def match(self, method: str, raw_path: str) -> tuple[Operation, dict[str, str]] | None:
        """Match a path relative to this spec's mount (raw, percent-encoded)."""
        candidates = self._by_method.get(method.upper(), {}).get(raw_path.count("/"), [])
        best: tuple[tuple[int, ...], _Compiled, re.Match] | None = None
        for c in candidates:
            m = c.regex.match(raw_path)
            if m and (best is None or c.specificity > best[0]):
                best = (c.specificity, c, m)
        if best is None:
            return None
        _, c, m = best
        return c.operation, {n: unquote(v) for n, v in zip(c.names, m.groups())}

    def path_exists(self, raw_path: str) -> bool:
        for per_len in self._by_method.values():
            for c in per_len.get(raw_path.count("/"), []):
                if c.regex.match(raw_path):
                    return True
        return False

    def operation(self, method: str, template: str) -> Operation | None:
        for op in self.operations:
            if op.method == method.upper() and op.template == template:
                return op
        return None


@dataclass
class ProductApis:
    """The APIs a product serves behind `/ex/{product}/{cloudId}`."""
    product: str
    specs: list[Spec]

    def match(self, method: str, tail: str):
        """Return (spec, operation, params) for a tail like `/wiki/api/v2/spaces`."""
        # longest mount first so `/wiki/api/v2` wins over the empty mount
        for spec in sorted(self.specs, key=lambda s: len(s.mount), reverse=True):
            if spec.mount:
                if not (tail == spec.mount or tail.startswith(spec.mount + "/")):
                    continue
                rel = tail[len(spec.mount):]
            else:
                rel = tail
            hit = spec.match(method, rel)
            if hit:
                return spec, hit[0], hit[1]
        return None

    def allowed_methods(self, tail: str) -> list[str]:
        """Methods of the operations whose path matches `tail` (for a 405's Allow header)."""
        out = set()
        for spec in self.specs:
            if spec.mount:
                if not tail.startswith(spec.mount + "/"):
                    continue
                rel = tail[len(spec.mount):]
            else:
                rel = tail
            for op in spec.operations:
                hit = spec.match(op.method, rel)
                if hit and hit[0] is op:
                    out.add(op.method)
        return sorted(out)

    @property
    def scopes(self) -> set[str]:
        out: set[str] = set()
        for s in self.specs:
            out |= s.scopes
        return out


class Catalog:
    """All loaded specs, by product."""

    CLOUD_FILES = {
        "jira": [("jira-cloud-v3", "jira-cloud-platform-v3.swagger-v3.v3.json", "")],
        "confluence": [
            ("confluence-cloud-v2", "confluence-cloud-v2.openapi-v2.v3.json", "/wiki/api/v2"),
            ("confluence-cloud-v1", "confluence-cloud-v1.swagger.v3.json", ""),
        ],
    }

    # Data Center: the mount is the spec's server path below the instance's base URL (Jira's
    # server is `{baseurl}/rest` with paths `/api/2/...`; Confluence's `{baseurl}/confluence` is the
    # context path, its paths already start with `/rest/api`).
    DC_FILES = {
        "jira": [("jira-dc", "jira-software-dc-10.3-openapi.json", "/rest")],
        "confluence": [("confluence-dc", "confluence-dc-10.0.3-openapi.json", "")],
    }

    def __init__(self, specs_dir: str | Path):
        specs_dir = Path(specs_dir)
        self.products: dict[str, ProductApis] = {}
        self.dc: dict[str, ProductApis] = {}
        self.by_name: dict[str, Spec] = {}
        for target, table, basic_default in ((self.products, self.CLOUD_FILES, False),
                                             (self.dc, self.DC_FILES, True)):
            for product, files in table.items():
                specs = []
                for name, fname, mount in files:
                    spec = Spec(name, specs_dir / fname, mount, basic_when_unspecified=basic_default)
                    specs.append(spec)
                    self.by_name[name] = spec
                target[product] = ProductApis(product, specs)
        self.product_scopes: dict[str, frozenset[str]] = {
            p: frozenset(apis.scopes) for p, apis in self.products.items()}
        known = set(PLATFORM_SCOPES)
        for s in self.product_scopes.values():
            known |= s
        self.known_scopes = frozenset(known)

    def products_for_scopes(self, scopes: Iterable[str]) -> dict[str, list[str]]:
        """Which products a set of granted scopes reaches, with the scopes relevant to each."""
        out: dict[str, list[str]] = {}
        for product, pscopes in self.product_scopes.items():
            rel = [s for s in scopes if s in pscopes]
            if rel:
                out[product] = rel
        return out
