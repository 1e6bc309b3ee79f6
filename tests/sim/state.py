"""All mutable simulator state. One instance per server; `reset()` restores defaults.

Everything runs on one asyncio thread: code that checks and then changes state must not
`await` in between (the token endpoint relies on this for atomic rotation).
"""

from __future__ import annotations

import asyncio

import datetime as _dt
import secrets
import time
import uuid
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
# above every generated page id (at most ~1.7 million for the largest seedable dataset)
CONTENT_ID_BASE = 3_000_000


# What the bridge asks for (shared/src/domain.rs) plus manage:jira-webhook: the registered app is
# configured with exactly these, so /authorize refuses any other scope, as Atlassian does.
DEFAULT_CLIENT_SCOPES = ["read:space:confluence", "read:page:confluence", "write:page:confluence",
                         "write:confluence-file", "read:jira-work", "write:jira-work",
                         "read:jira-user", "offline_access", "manage:jira-webhook"]
CONFLUENCE_MAX_BODY_BYTES = 5 * 1024 * 1024   # v2 spec: "413 ... too large in size (over 5 MB)"


def default_quirks() -> dict[str, Any]:
    """Switches between the products' strict behaviour (the defaults) and a friendlier one; a
    number's type is kept by `PUT /_sim/quirks` (README: "Strict by default")."""
    return {
        "omit_is_last": False,               # Cloud PageBean responses without `isLast`
        "hidden_email_exact_match": True,    # Cloud user search: an exact email finds a hidden-email user
        "adf_reject_newlines": True,         # Jira Cloud v3: a newline in an ADF text node (outside codeBlock) is refused
        "enforce_permissions": True,         # project/space permissions and page restrictions apply
        "strict_page_titles": True,          # draft, archived and restricted pages take their titles too
        "cloud_hidden_emails": True,         # Cloud users with a hidden email (every 5th generated one) hide it
        "cloud_search_index_delay_seconds": 3.0,  # Cloud JQL sees a new issue after this (sim clock)
        "dc_search_index_delay_seconds": 1.0,     # DC JQL likewise (cluster index replication)
        "confluence_max_body_bytes": CONFLUENCE_MAX_BODY_BYTES,  # Cloud v2 creates: larger -> 413 (0 = no limit)
        "webhooks_allow_http_loopback": False,    # dynamic webhooks may deliver to http://127.0.0.1 (test stacks)
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
    every: int = 1                             # applies to every Nth matching request (1 = each)
    size_bytes: int | None = None              # `oversize`: how much to stream
    content_length: bool = False               # `oversize`: announce the length up front
    seen: int = 0                              # matching requests counted for `every`
    hits: int = 0
    # kind=hold: set when a request is held, and by POST /_sim/faults/{id}/release
    arrived: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)
    released: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in (
            "id", "route", "kind", "status", "retry_after", "headers", "body",
            "latency_ms", "times", "reason", "every", "size_bytes", "content_length", "seen", "hits")}


@dataclass
class DcInstance:
    id: str
    product: str                               # jira | confluence
    context_path: str                          # "" or "/jira"
    captcha_after_failures: int | None = None  # None: never ask for a CAPTCHA
    email_visibility: str = "show"             # Jira's jira.option.emailvisible: show | mask | hide

    @property
    def prefix(self) -> str:
        return f"/dc/{self.id}{self.context_path}"

    def to_json(self) -> dict:
        return {"id": self.id, "product": self.product, "context_path": self.context_path,
                "captcha_after_failures": self.captcha_after_failures,
                "email_visibility": self.email_visibility}


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
        self.set_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [], DEFAULT_CLIENT_SCOPES)
        self.sites: dict[str, Site] = {}
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.pending: dict[str, PendingConsent] = {}
        self.faults: list[Fault] = []
        self.chaos = None                      # faults.Chaos while PUT /_sim/chaos is on
        self.calls: list[dict] = []
        self.counts: dict[str, int] = {}
        self.clock_offset = 0.0
        self.content_seq = CONTENT_ID_BASE        # ids of written pages/attachments, every deployment
        self.users: dict[str, dict] = {}       # Cloud accounts (consenting user, API-token users)
        self.current_account_id: str = ""
        self.quirks: dict[str, Any] = default_quirks()
        # (deployment: cloudId | "dc", user: accountId | lower-case name, "project" | "space", KEY)
        # -> permissions; no entry = all (see permissions.py)
        self.permissions: dict[tuple[str, str, str, str], frozenset[str]] = {}
        # Per-element failures for the next bulk creates (a fault switch: Jira-side rules such as
        # workflow validators refuse single elements of a bulk request).
        self.element_faults: dict[str, Any] | None = None
        # (deployment: cloudId | "dc", project key) -> the field ids of its edit screen, where the
        # control API set one (`PUT /_sim/jira/edit-screen`); otherwise the create screen's.
        self.edit_screens: dict[tuple[str, str], list[str]] = {}
        # Every JQL search served (`GET /_sim/jira/searches`): flavour, the JQL, its labels.
        self.jira_searches: list[dict] = []
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
        # Dynamic webhooks (products/jira_webhooks.py): registrations per site, deliveries made
        self.webhooks: dict[str, dict] = {}
        self.webhook_deliveries: list[dict] = []
        self.webhook_drop = 0
        self.webhook_tasks: set = getattr(self, "webhook_tasks", set())
        # Connect apps installed on the sites (connect.py): clientKey -> installation
        self.connect_installations: dict[str, dict] = {}
        data.seed_defaults(self)
        self.set_sites([DEFAULT_SITE])
        self.set_dc_instances(DEFAULT_DC_INSTANCES)
        self.set_dc_users(DEFAULT_DC_USERS)
        self.set_oidc_clients(DEFAULT_OIDC_CLIENTS)
        self.set_api_tokens(DEFAULT_API_TOKENS)
        # Data Center OAuth 2.0 providers: incoming links, codes and tokens (dc_oauth.py)
        from . import dc_oauth  # late import: dc_oauth uses State types
        dc_oauth.reset(self)

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
                              i.get("captcha_after_failures"), i.get("email_visibility", "show"))
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
        self.api_tokens = []
        for t in tokens:
            self.add_api_token(t)

    def add_api_token(self, t: dict, account_type: str = "atlassian") -> ApiToken:
        from . import data
        account = next((u for u in self.users.values()
                        if u["emailAddress"].lower() == t["email"].lower()), None)
        if account is None or (t.get("display_name") and account["accountId"] != self.current_account_id):
            account = data.cloud_account_for_email(t["email"], t.get("display_name"))
            account["accountType"] = account_type
            self.users[account["accountId"]] = account
        tok = ApiToken(email=t["email"], token=t["token"], site=t["site"],
                       account_id=account["accountId"], display_name=account["displayName"],
                       scopes=t.get("scopes"))
        self.api_tokens.append(tok)
        self._remember("api_tokens", t["token"])
        return tok

    # ---- calls ----------------------------------------------------------------------
    def record_call(self, call: dict) -> None:
        self.calls.append(call)
        key = call.get("route") or "UNMATCHED"
        self.counts[key] = self.counts.get(key, 0) + 1

    # ---- what clients wrote: Confluence pages/attachments, Jira issues ----------------------
    def _dataset(self, flavour: str, site_id: str | None):
        return self.dc_data() if flavour == "dc" else self.cloud_data(site_id)

    def confluence_store(self, flavour: str, site_id: str | None = None) -> "ConfluenceStore":
        ds = self._dataset(flavour, site_id)
        store = ds.stores.get("confluence")
        if store is None:
            store = ds.stores["confluence"] = ConfluenceStore(self, ds, flavour)
        return store

    def jira_store(self, flavour: str, site_id: str | None = None) -> "JiraStore":
        ds = self._dataset(flavour, site_id)
        store = ds.stores.get("jira")
        if store is None:
            store = ds.stores["jira"] = JiraStore(self, ds, flavour)
        return store


# =========================================================================== product content
def iso_ms(ts: float) -> str:
    """Confluence's `YYYY-MM-DDTHH:mm:ss.sssZ`."""
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def jira_ts(ts: float) -> str:
    """Jira's `yyyy-MM-ddTHH:mm:ss.SSS+0000`."""
    return iso_ms(ts)[:-1] + "+0000"


class ContentError(Exception):
    """A product-level refusal; handlers render it in their API's error shape.

    `kind`: title_taken (400), version_conflict (409), not_found (404), bad_request (400),
    duplicate_attachment (400)."""

    STATUS = {"title_taken": 400, "version_conflict": 409, "not_found": 404, "bad_request": 400,
              "duplicate_attachment": 400}

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.status = self.STATUS[kind]
        self.message = message


# Cloud v2 (and v1) text as the products send it (hunyadi/md2conf#149, iamjackg/md2cf#102); DC
# names the title and space instead (docToolchain/docToolchain#435, a Confluence Server RestError).
TITLE_TAKEN = "A page with this title already exists: A page already exists with the same TITLE in this space"
TITLE_TAKEN_DC = ("A page with this title already exists: A page already exists with the title {title} "
                  "in the space with key {key}")
TITLE_MAX = 255
# Statuses whose page keeps its title (Confluence refuses a title an archived page holds:
# sphinx-contrib/confluencebuilder#718, hunyadi/md2conf#149). Trashed pages free it.
TITLE_HOLDERS = ("current", "draft", "archived")


class ConfluenceStore:
    """Pages and attachments of one deployment (a Cloud site or DC), on top of its generated
    dataset: created pages join `ds.pages` (so every list and lookup sees them), updates change
    the page record in place and keep each version. Page records gain `body` (storage, verbatim;
    None = the generated default), `versions` (history, oldest first), `authorId`/`authorName`,
    `updatedAt`, `restricted_to` (who may see it; None = everyone). Attachments: per page, each
    with its versions and their bytes."""

    def __init__(self, state: State, ds, flavour: str):
        self.state = state
        self.ds = ds
        self.flavour = flavour
        self.attachments: dict[str, list[dict]] = {}          # page id -> attachments

    def new_id(self) -> int:
        """Unique across deployments (so a written page id names one page) and clear of every
        generated id."""
        self.state.content_seq += 1
        return self.state.content_seq

    # ---- pages -------------------------------------------------------------------------
    def page(self, page_id: str | None) -> dict | None:
        return self.ds.page_by_id.get(str(page_id)) if page_id is not None else None

    def body_of(self, page: dict) -> str:
        from .data import default_page_body
        return page["body"] if page.get("body") is not None else default_page_body(page)

    def title_taken(self, space_id: str, title: str, exclude: str | None = None,
                    visible=None) -> bool:
        """Confluence keeps titles unique per space, ignoring case (CONFSERVER-40303, md2cf#102),
        counting drafts, archived pages and pages the caller cannot see (restricted). With the
        quirk `strict_page_titles` off: only current pages `visible` to the caller count."""
        t = title.casefold()
        strict = self.state.quirks.get("strict_page_titles", True)
        holders = TITLE_HOLDERS if strict else ("current",)
        return any(p["title"].casefold() == t and p["id"] != exclude and p["status"] in holders
                   and (strict or visible is None or visible(p))
                   for p in self.ds.pages_by_space.get(space_id, []))

    def _check_title(self, space_id: str, title: str, exclude: str | None = None,
                     visible=None) -> None:
        if len(title) > TITLE_MAX:
            raise ContentError("bad_request", f"Title cannot be longer than {TITLE_MAX} characters.")
        if self.title_taken(space_id, title, exclude, visible):
            if self.flavour == "dc":
                key = self.ds.space_by_id[space_id]["key"]
                raise ContentError("title_taken", TITLE_TAKEN_DC.format(title=title, key=key))
            raise ContentError("title_taken", TITLE_TAKEN)

    def _check_parent(self, space: dict, parent_id: str | None, moving: str | None = None) -> dict | None:
        if parent_id is None:
            return None
        parent = self.page(parent_id)
        if parent is None or parent["status"] != "current":
            raise ContentError("not_found", f"No content found with id: ContentId{{id={parent_id}}}")
        if parent["spaceId"] != space["id"]:
            raise ContentError("bad_request", "The parent page must be in the same space as the page.")
        p = parent
        while moving is not None and p is not None:       # no cycles when moving
            if p["id"] == moving:
                raise ContentError("bad_request", "A page cannot be moved below itself or its descendants.")
            p = self.page(p["parentId"])
        return parent

    def _version(self, page: dict, number: int, author: str, message: str, minor: bool, now: float) -> dict:
        return {"number": number, "title": page["title"], "body": self.body_of(page),
                "parentId": page["parentId"], "createdAt": iso_ms(now), "authorId": author,
                "message": message, "minorEdit": minor}

    def _history(self, page: dict) -> list[dict]:
        if "versions" not in page:
            page["versions"] = [{"number": page["version"], "title": page["title"],
                                 "body": self.body_of(page), "parentId": page["parentId"],
                                 "createdAt": page["createdAt"], "authorId": page.get("authorId"),
                                 "message": "", "minorEdit": False}]
        return page["versions"]

    def create_page(self, space: dict, title: str, parent_id: str | None, body: str, status: str,
                    author: str, visible=None, check_title: bool = True,
                    restricted_to: list[str] | None = None, page_id: str | None = None) -> dict:
        """`visible`: the caller's view of pages (friendly title check); `check_title` False,
        `restricted_to` and `page_id` (a chosen id, free in this deployment) are for pages the
        control API plants."""
        if status == "current" and check_title:
            self._check_title(space["id"], title, visible=visible)
        parent = self._check_parent(space, parent_id) if check_title else self.page(parent_id)
        now = self.state.now()
        siblings = [p for p in self.ds.pages_by_space.get(space["id"], [])
                    if p["parentId"] == (parent["id"] if parent else None)]
        position = max((p["position"] for p in siblings if p["position"] is not None), default=-1) + 1
        page = {"id": page_id or str(self.new_id()), "title": title, "spaceId": space["id"],
                "spaceKey": space["key"], "parentId": parent["id"] if parent else None,
                "position": position, "createdAt": iso_ms(now), "updatedAt": iso_ms(now),
                "version": 1, "status": status, "body": body, "authorId": author, "generated": False,
                "restricted_to": restricted_to}
        page["versions"] = [self._version(page, 1, author, "", False, now)]
        self.ds.pages.append(page)
        self.ds.page_by_id[page["id"]] = page
        self.ds.pages_by_space.setdefault(space["id"], []).append(page)
        return page

    def update_page(self, page: dict, version: int, title: str, body: str | None,
                    parent_id: str | None | bool, author: str, message: str = "",
                    minor: bool = False, visible=None) -> dict:
        """`parent_id` False = keep the parent. Version must be current + 1 (else 409)."""
        if version != page["version"] + 1:
            raise ContentError("version_conflict",
                               f"Version must be incremented on update. Current version is: {page['version']}")
        space = self.ds.space_by_id[page["spaceId"]]
        if title != page["title"]:      # keeping its title never conflicts (a draft may share it)
            self._check_title(space["id"], title, exclude=page["id"], visible=visible)
        if parent_id is not False:
            self._check_parent(space, parent_id, moving=page["id"])
        history = self._history(page)
        now = self.state.now()
        page["title"] = title
        if body is not None:
            page["body"] = body
        if parent_id is not False:
            page["parentId"] = parent_id
        page["version"] = version
        page["updatedAt"] = iso_ms(now)
        page["status"] = "current"
        history.append(self._version(page, version, author, message, minor, now))
        return page

    def version_of(self, page: dict, number: int) -> dict | None:
        return next((v for v in self._history(page) if v["number"] == number), None)

    # ---- attachments -------------------------------------------------------------------
    def attachments_of(self, page_id: str) -> list[dict]:
        return self.attachments.get(page_id, [])

    def attachment(self, page_id: str, att_id: str) -> dict | None:
        want = att_id if att_id.startswith("att") else "att" + att_id
        return next((a for a in self.attachments_of(page_id) if a["id"] == want), None)

    def put_attachment(self, page: dict, filename: str, data: bytes, media_type: str,
                       comment: str | None, minor_edit: bool, author: str,
                       replace: bool) -> dict:
        """Add a file to a page. An existing file name: a new version when `replace`, else 400
        (as Confluence's "create attachment" refuses it)."""
        atts = self.attachments.setdefault(page["id"], [])
        existing = next((a for a in atts if a["title"] == filename), None)
        if existing is not None and not replace:
            raise ContentError("duplicate_attachment",
                               "Cannot add a new attachment with same file name as an existing "
                               f"attachment: {filename}")
        if existing is None:
            existing = {"id": f"att{self.new_id()}", "pageId": page["id"], "title": filename,
                        "fileId": str(uuid.uuid4()), "createdAt": iso_ms(self.state.now()),
                        "versions": []}
            atts.append(existing)
        return self.add_attachment_version(existing, filename, data, media_type, comment,
                                           minor_edit, author)

    def add_attachment_version(self, att: dict, filename: str, data: bytes, media_type: str,
                               comment: str | None, minor_edit: bool, author: str) -> dict:
        att["title"] = filename
        att["versions"].append({"number": len(att["versions"]) + 1, "data": data,
                                "mediaType": media_type, "comment": comment or "",
                                "minorEdit": minor_edit, "createdAt": iso_ms(self.state.now()),
                                "authorId": author, "fileSize": len(data)})
        return att


class JiraStore:
    """Issues of one deployment (a Cloud site or DC). An issue keeps the `fields` exactly as the
    client sent them and `values`, what the sim resolved from them (ids, defaults applied)."""

    def __init__(self, state: State, ds, flavour: str):
        self.state = state
        self.ds = ds
        self.flavour = flavour
        self.issues: dict[str, dict] = {}          # id -> issue (insertion order = creation)
        self.by_key: dict[str, str] = {}           # KEY-1 -> id
        self.counters: dict[str, int] = {}         # project key -> last number
        self._next_id = 10000
        # Called as `listener(store, kind, issue, changed_fields)` after every change made
        # through the REST API or the control API: kind "created" | "updated" | "deleted".
        # Dynamic webhook deliveries subscribe here; everything that changes an issue calls
        # `changed` (or `delete`), so `updated` and the listeners never miss an edit.
        self.listeners: list = []

    def notify(self, kind: str, issue: dict, changed_fields: list[str]) -> None:
        for listener in list(self.listeners):
            listener(self, kind, issue, changed_fields)

    def changed(self, issue: dict, changed_fields: list[str]) -> None:
        """Records an edit or transition of `issue` (by the API or by "a person in Jira"): Jira
        sets `updated` on every change, which JQL `updated >=` and `ORDER BY updated` read."""
        issue["updated"] = jira_ts(self.state.now())
        issue["updated_at"] = self.state.now()
        self.notify("updated", issue, changed_fields)

    def find(self, id_or_key: str) -> dict | None:
        if id_or_key.isdigit():
            return self.issues.get(id_or_key)
        iid = self.by_key.get(id_or_key.upper())
        return self.issues.get(iid) if iid else None

    def create(self, project: dict, issuetype: dict, fields: dict, values: dict,
               parent: dict | None, creator: str) -> dict:
        self._next_id += 1
        n = self.counters.get(project["key"], 0) + 1
        self.counters[project["key"]] = n
        now = jira_ts(self.state.now())
        issue = {"id": str(self._next_id), "key": f"{project['key']}-{n}",
                 "projectKey": project["key"], "projectId": project["id"],
                 "issueTypeId": issuetype["id"], "fields": fields, "values": values,
                 "parent": parent["key"] if parent else None, "subtasks": [],
                 "created": now, "updated": now, "creator": creator,
                 "created_at": self.state.now(), "updated_at": self.state.now()}
        self.issues[issue["id"]] = issue
        self.by_key[issue["key"]] = issue["id"]
        if parent is not None:
            parent["subtasks"].append(issue["key"])
        self.notify("created", issue, [])
        return issue

    def indexed(self, issue: dict) -> bool:
        """Whether JQL sees the issue yet: search runs on an index that lags behind writes
        (Cloud's search/jql is eventually consistent, gitlab-org/gitlab#577380; DC replicates
        its index between cluster nodes). The delay is a quirk, on the sim clock."""
        delay = self.state.quirks.get(f"{self.flavour}_search_index_delay_seconds", 0)
        return self.state.now() - issue["created_at"] >= delay

    def delete(self, issue: dict) -> list[str]:
        """Delete an issue and its subtasks; returns the deleted keys."""
        gone = [issue["key"]]
        for sub in list(issue["subtasks"]):
            s = self.find(sub)
            if s is not None:
                gone += self.delete(s)
        if issue["parent"]:
            parent = self.find(issue["parent"])
            if parent is not None and issue["key"] in parent["subtasks"]:
                parent["subtasks"].remove(issue["key"])
        self.issues.pop(issue["id"], None)
        self.by_key.pop(issue["key"], None)
        self.notify("deleted", issue, [])
        return gone
