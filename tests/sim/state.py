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

DEFAULT_DC_INSTANCES = [
    {"id": "jira-dc", "product": "jira", "context_path": "/jira"},
    {"id": "conf-dc", "product": "confluence", "context_path": "/confluence"},
]
DEFAULT_DC_USERS = [
    {"username": "bridge-bot", "password": "s3cret-pass", "display_name": "Bridge Bot",
     "email": "bridge-bot@corp.test"},
]
DEFAULT_API_TOKENS = [
    {"email": "admin@acme.test", "token": "ATATT3xFfGF0-sim-acme-admin-token",
     "site": DEFAULT_SITE["id"], "display_name": "Acme Admin"},
]
DEFAULT_OIDC_CLIENTS = [
    {"provider": "corp", "client_id": "bridge-dc-client", "client_secret": "sim-oidc-secret",
     "auth_method": "client_secret_basic", "acts_as": "bridge-bot",
     "instances": ["jira-dc", "conf-dc"]},
]
DEFAULT_SIZES = {"projects": 260, "spaces": 600, "users": 1200}


def default_quirks() -> dict[str, Any]:
    return {
        "omit_is_last": False,               # Cloud PageBean responses without `isLast`
        "hidden_email_exact_match": True,    # Cloud user search: an exact email finds a hidden-email user
    }


def default_oidc_config() -> dict[str, Any]:
    return {"expires_in": 300}


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
class DcInstance:
    id: str
    product: str                               # jira | confluence
    context_path: str                          # "" or "/jira"
    captcha_after_failures: int | None = None  # None: never ask for a CAPTCHA

    @property
    def prefix(self) -> str:
        return f"/dc/{self.id}{self.context_path}"

    def to_json(self) -> dict:
        return {"id": self.id, "product": self.product, "context_path": self.context_path,
                "captcha_after_failures": self.captcha_after_failures}


@dataclass
class Pat:
    id: str
    token: str
    instance: str
    username: str                              # lower-case
    revoked: bool = False


@dataclass
class OidcClient:
    provider: str
    client_id: str
    client_secret: str
    auth_method: str                           # client_secret_basic | client_secret_post
    acts_as: str                               # DC username
    instances: list[str]
    scopes: list[str] | None = None            # None: any scope may be requested
    audience: str | None = None                # None: any (or no) audience accepted
    expires_in: int | None = None              # None: oidc config expires_in

    def to_json(self) -> dict:
        return {"provider": self.provider, "client_id": self.client_id,
                "client_secret": self.client_secret, "auth_method": self.auth_method,
                "acts_as": self.acts_as, "instances": list(self.instances), "scopes": self.scopes,
                "audience": self.audience, "expires_in": self.expires_in}


@dataclass
class OidcToken:
    value: str
    provider: str
    client_id: str
    acts_as: str
    instances: list[str]
    issued_at: float
    expires_at: float


@dataclass
class ApiToken:
    email: str
    token: str
    site: str                                  # cloudId
    account_id: str
    display_name: str
    scopes: list[str] | None = None            # None: classic token (site URL); else scoped (gateway)

    def to_json(self) -> dict:
        return {"email": self.email, "token": self.token, "site": self.site,
                "account_id": self.account_id, "display_name": self.display_name,
                "scopes": self.scopes}


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
            "codes": [], "access_tokens": [], "refresh_tokens": [], "client_secrets": [],
            "passwords": [], "pats": [], "oidc_client_secrets": [], "oidc_access_tokens": [],
            "api_tokens": []}
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
        self.users: dict[str, dict] = {}       # Cloud accounts (consenting user, API-token users)
        self.current_account_id: str = ""
        self.quirks: dict[str, Any] = default_quirks()
        # generated product data: sizes per Cloud site / for DC, datasets built on first use
        self.cloud_sizes: dict[str, dict[str, int]] = {}
        self.dc_sizes: dict[str, int] = dict(DEFAULT_SIZES)
        self._cloud_data: dict[str, Any] = {}
        self._dc_data: Any = None
        # Data Center
        self.dc_instances: dict[str, DcInstance] = {}
        self.dc_accounts: dict[str, dict] = {}  # lower-case username -> account overlay
        self.pats: dict[str, Pat] = {}
        self.failed_logins: dict[tuple[str, str], int] = {}
        # OIDC provider
        self.oidc_config: dict[str, Any] = default_oidc_config()
        self.oidc_clients: dict[tuple[str, str], OidcClient] = {}
        self.oidc_tokens: dict[str, OidcToken] = {}
        # Cloud API tokens
        self.api_tokens: list[ApiToken] = []
        data.seed_defaults(self)
        self.set_sites([DEFAULT_SITE])
        self.set_dc_instances(DEFAULT_DC_INSTANCES)
        self.set_dc_users(DEFAULT_DC_USERS)
        self.set_oidc_clients(DEFAULT_OIDC_CLIENTS)
        self.set_api_tokens(DEFAULT_API_TOKENS)

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
        self.sites = {}
        for s in sites:
            products = s.get("products")
            site = Site(str(s["id"]), str(s["name"]),
                        list(products) if products is not None else ["jira", "confluence"])
            self.sites[site.id] = site
            self.cloud_sizes.setdefault(site.id, dict(DEFAULT_SIZES))
        for site_id in list(self.cloud_sizes):
            if site_id not in self.sites:
                del self.cloud_sizes[site_id]
                self._cloud_data.pop(site_id, None)

    def site_by_name(self, name: str) -> Site | None:
        for site in self.sites.values():
            if site.name == name:
                return site
        return None

    # ---- generated data ----------------------------------------------------------------
    def cloud_data(self, site_id: str):
        """The site's generated dataset (built on first use, deterministic)."""
        from . import data
        ds = self._cloud_data.get(site_id)
        if ds is None:
            ds = data.build_dataset("cloud", self.cloud_sizes.get(site_id, DEFAULT_SIZES),
                                    self.current_account_id)
            self._cloud_data[site_id] = ds
        return ds

    def dc_data(self):
        from . import data
        if self._dc_data is None:
            self._dc_data = data.build_dataset("dc", self.dc_sizes, "")
        return self._dc_data

    def resize(self, flavour: str, site_id: str | None, sizes: dict[str, int]) -> None:
        if flavour == "dc":
            self.dc_sizes.update(sizes)
            self._dc_data = None
        else:
            self.cloud_sizes.setdefault(site_id, dict(DEFAULT_SIZES)).update(sizes)
            self._cloud_data.pop(site_id, None)

    def cloud_directory(self, site_id: str) -> list[dict]:
        """Every Cloud account the site knows: the consenting user, its API-token users, then
        the generated ones."""
        special = [self.users[self.current_account_id]]
        for t in self.api_tokens:
            u = self.users.get(t.account_id)
            if t.site == site_id and u is not None and u not in special:
                special.append(u)
        ids = {u["accountId"] for u in special}
        return special + [u for u in self.cloud_data(site_id).users if u["accountId"] not in ids]

    def cloud_user(self, site_id: str, account_id: str) -> dict | None:
        if account_id in self.users:
            return self.users[account_id]
        return self.cloud_data(site_id).user_by_id.get(account_id)

    # ---- Data Center ----------------------------------------------------------------------
    def set_dc_instances(self, instances: list[dict]) -> None:
        self.dc_instances = {}
        for i in instances:
            inst = DcInstance(i["id"], i["product"], i.get("context_path", ""),
                              i.get("captcha_after_failures"))
            self.dc_instances[inst.id] = inst
        self.failed_logins = {}
        self.pats = {k: p for k, p in self.pats.items() if p.instance in self.dc_instances}

    def set_dc_users(self, users: list[dict]) -> None:
        from . import data
        self.dc_accounts = {}
        for u in users:
            acc = data.dc_account_entry(u, len(self.dc_accounts))
            self.dc_accounts[acc["name"].lower()] = acc
            if acc.get("password"):
                self._remember("passwords", acc["password"])

    def dc_directory(self) -> list[dict]:
        """Every DC user: the configured accounts first (each overlaying the generated user of
        its name), then the other generated users."""
        from . import data
        ds = self.dc_data()
        accounts = [data.materialize_dc_account(a, ds.user_by_name.get(k))
                    for k, a in self.dc_accounts.items()]
        return accounts + [u for u in ds.users if u["name"].lower() not in self.dc_accounts]

    def dc_user(self, username: str) -> dict | None:
        from . import data
        key = username.lower()
        generated = self.dc_data().user_by_name.get(key)
        if key in self.dc_accounts:
            return data.materialize_dc_account(self.dc_accounts[key], generated)
        return generated

    def issue_pat(self, instance: str, username: str) -> Pat:
        value = self.new_secret("pats", 33)
        next_id = max((int(p.id) for p in self.pats.values()), default=0) + 1
        pat = Pat(id=str(next_id), token=value, instance=instance, username=username.lower())
        self.pats[value] = pat
        return pat

    # ---- OIDC provider ---------------------------------------------------------------------
    def set_oidc_clients(self, clients: list[dict]) -> None:
        self.oidc_clients = {}
        for c in clients:
            client = OidcClient(provider=c["provider"], client_id=c["client_id"],
                                client_secret=c["client_secret"], auth_method=c["auth_method"],
                                acts_as=c["acts_as"], instances=list(c.get("instances") or []),
                                scopes=c.get("scopes"), audience=c.get("audience"),
                                expires_in=c.get("expires_in"))
            self.oidc_clients[(client.provider, client.client_id)] = client
            self._remember("oidc_client_secrets", client.client_secret)

    # ---- Cloud API tokens -----------------------------------------------------------------
    def set_api_tokens(self, tokens: list[dict]) -> None:
        from . import data
        self.api_tokens = []
        for t in tokens:
            account = next((u for u in self.users.values()
                            if u["emailAddress"].lower() == t["email"].lower()), None)
            if account is None or (t.get("display_name") and account["accountId"] != self.current_account_id):
                account = data.cloud_account_for_email(t["email"], t.get("display_name"))
                self.users[account["accountId"]] = account
            self.api_tokens.append(ApiToken(email=t["email"], token=t["token"], site=t["site"],
                                            account_id=account["accountId"],
                                            display_name=account["displayName"],
                                            scopes=t.get("scopes")))
            self._remember("api_tokens", t["token"])

    # ---- calls ----------------------------------------------------------------------
    def record_call(self, call: dict) -> None:
        self.calls.append(call)
        key = call.get("route") or "UNMATCHED"
        self.counts[key] = self.counts.get(key, 0) + 1
