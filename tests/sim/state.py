"""All mutable simulator state. One instance per server; `reset()` restores defaults.

Everything runs on one asyncio thread: code that checks and then changes state must not
`await` in between (the token endpoint relies on this for atomic rotation).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CLIENT_ID = "bridge-local-client"
DEFAULT_CLIENT_SECRET = "sim-client-secret"
DEFAULT_SITE = {"id": "11111111-1111-4111-8111-111111111111", "name": "acme",
                "products": ["jira", "confluence"]}

CODE_TTL_SECONDS = 600
DAY = 86400


def default_config() -> dict[str, Any]:
    return {
        "deny": False,
        "reuse_leeway_seconds": 600,
        "access_token_ttl_seconds": 3600,
        "consent_sites": None,                 # None = every site
        "refresh_inactivity_seconds": 90 * DAY,
        "refresh_absolute_seconds": 365 * DAY,
    }


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scopes: list[str] | None = None            # None = any known scope may be requested


@dataclass
class Site:
    id: str
    name: str
    products: list[str]

    @property
    def url(self) -> str:
        return f"https://{self.name}.atlassian.net"

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "products": list(self.products), "url": self.url}


@dataclass
class AuthCode:
    value: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    sites: list[str]
    account_id: str
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    id: str
    client_id: str
    scopes: list[str]
    sites: list[str]
    account_id: str
    created_at: float
    revoked: bool = False


@dataclass
class AccessToken:
    value: str
    grant_id: str
    issued_at: float
    expires_at: float


@dataclass
class RefreshToken:
    value: str
    grant_id: str
    created_at: float
    first_used_at: float | None = None


@dataclass
class Fault:
    id: str
    route: str
    kind: str
    status: int | None = None
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    latency_ms: int | None = None
    times: int | None = 1                      # None = forever
    reason: str | None = None                  # RateLimit-Reason override
    hits: int = 0

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in (
            "id", "route", "kind", "status", "retry_after", "headers", "body",
            "latency_ms", "times", "reason", "hits")}


@dataclass
class PendingConsent:
    id: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str
    sites: list[str]
    expires_at: float


class State:
    def __init__(self):
        # secrets ever issued or held survive reset: tests scan logs for them
        self.issued: dict[str, list[str]] = {
            "codes": [], "access_tokens": [], "refresh_tokens": [], "client_secrets": []}
        self.clock_offset = 0.0
        self.reset()

    # ---- time -----------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    # ---- lifecycle ------------------------------------------------------------------
    def reset(self) -> None:
        from . import data  # late import: data uses State types
        self.config: dict[str, Any] = default_config()
        self.clients: dict[str, Client] = {}
        self.set_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [])
        self.sites: dict[str, Site] = {}
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.pending: dict[str, PendingConsent] = {}
        self.faults: list[Fault] = []
        self.calls: list[dict] = []
        self.counts: dict[str, int] = {}
        self.clock_offset = 0.0
        self.users: dict[str, dict] = {}
        self.current_account_id: str = ""
        # per-site product data, filled by data.seed_*
        self.spaces: dict[str, list[dict]] = {}
        data.seed_defaults(self)
        self.set_sites([DEFAULT_SITE])

    # ---- secrets --------------------------------------------------------------------
    def _remember(self, kind: str, value: str) -> None:
        lst = self.issued[kind]
        if value not in lst:
            lst.append(value)

    def new_secret(self, kind: str, nbytes: int = 32) -> str:
        value = secrets.token_urlsafe(nbytes)
        self._remember(kind, value)
        return value

    # ---- configuration --------------------------------------------------------------
    def set_client(self, client_id: str, client_secret: str, redirect_uris: list[str],
                   scopes: list[str] | None = None) -> Client:
        # exactly one registered client, as the brief says
        self.clients = {client_id: Client(client_id, client_secret, list(redirect_uris),
                                          list(scopes) if scopes is not None else None)}
        self._remember("client_secrets", client_secret)
        return self.clients[client_id]

    def set_sites(self, sites: list[dict]) -> None:
        from . import data
        self.sites = {}
        for s in sites:
            products = s.get("products")
            site = Site(str(s["id"]), str(s["name"]),
                        list(products) if products is not None else ["jira", "confluence"])
            self.sites[site.id] = site
            data.seed_site(self, site)
        for site_id in list(self.spaces):
            if site_id not in self.sites:
                del self.spaces[site_id]

    # ---- calls ----------------------------------------------------------------------
    def record_call(self, call: dict) -> None:
        self.calls.append(call)
        key = call.get("route") or "UNMATCHED"
        self.counts[key] = self.counts.get(key, 0) + 1
