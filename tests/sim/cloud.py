"""Atlassian Cloud: the api.atlassian.com product gateway (`/ex/{product}/{cloudId}/<path>`) and
the site URL (`/site/{siteName}/<path>`, i.e. `https://{siteName}.atlassian.net/<path>`).

Gateway requests go through these steps, in this order:
 1. a valid, unexpired Bearer access token (OAuth 3LO) or Forge app system token (forge.py, its
    installation's product only), or Basic with a *scoped* API token
                                                  -> else 401
 2. the cloudId is one of the grant's sites (the token's site) -> else 401 (404 if the site lacks
    the product)
 3. method + path match an operation of the spec   -> else 404 (405 when only the method is wrong)
 4. the token holds the scopes of one OAuth alternative of that operation
                                                  -> else 401 "Unauthorized; scope does not match"
 5. an implemented handler                         -> else 501

Site requests: the site exists by name (else 404) and serves the product (else 404); Basic
`email:api-token` of a classic (unscoped) token issued for that site (else 401); method + path in
the spec (404/405); the operation lists a Basic alternative (else 401); no scope check (Basic
has the user's own permissions); then the handler (or 501).

Handlers register with `@handler(spec_name, METHOD, template)` (this module's table also holds
the Data Center handlers, see dc.py) and receive a `Ctx`.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from . import forge
from .oauth import bearer_grant, unauthorized
from .spec import Catalog, Operation, ProductApis, Spec
from .state import ApiToken, DcInstance, Grant, Site, State
from .util import basic_credentials, json_response

log = logging.getLogger("sim")

HANDLERS: dict[tuple[str, str, str], Callable[["Ctx"], Awaitable[web.StreamResponse]]] = {}


def handler(spec_name: str, method: str, template: str):
    def deco(fn):
        HANDLERS[(spec_name, method.upper(), template)] = fn
        return fn
    return deco


@dataclass
class Match:
    product: str
    tail: str                       # raw path below the base URL, e.g. /rest/api/3/myself
    prefix: str                     # route prefix, e.g. /ex/jira/{cloudId}, /site/{siteName}
    cloud_id: str | None = None     # gateway
    site_name: str | None = None    # site URL
    instance_id: str | None = None  # Data Center
    spec: Spec | None = None
    operation: Operation | None = None
    params: dict[str, str] | None = None

    @property
    def route(self) -> str | None:
        if self.operation is None or self.spec is None:
            return None
        return f"{self.operation.method} {self.prefix}{self.spec.mount}{self.operation.template}"


@dataclass
class Ctx:
    request: web.Request
    state: State
    match: Match
    flavour: str = "cloud"                  # cloud | dc
    base: str = ""                          # the API base URL as the client reached it
    site: Site | None = None                # Cloud
    grant: Grant | None = None              # Cloud OAuth
    account_id: str | None = None           # Cloud principal
    via_gateway: bool = True                # Cloud: /ex/ (True) or the site URL (False)
    instance: DcInstance | None = None      # DC
    user: dict | None = None                # DC principal (None: anonymous)
    auth: str = "oauth"                     # oauth | api_token | scoped_api_token | basic | pat | oidc | connect | anonymous

    @property
    def params(self) -> dict[str, str]:
        return self.match.params or {}

    @property
    def gateway_base(self) -> str:
        """Where `self` links point: `https://api.atlassian.com/ex/<product>/<cloudId>`, the site
        URL or the DC base URL, as this sim is reached."""
        return self.base

    @property
    def site_url(self) -> str:
        """The site's own URL: `https://<name>.atlassian.net` behind the gateway (what the real
        products put in `_links.base`), the reached site route otherwise."""
        if self.flavour == "cloud" and self.via_gateway and self.site is not None:
            return self.site.url
        return self.base

    @property
    def data(self):
        if self.flavour == "dc":
            return self.state.dc_data()
        return self.state.cloud_data(self.site.id)

    def directory(self) -> list[dict]:
        if self.flavour == "dc":
            return self.state.dc_directory()
        return self.state.cloud_directory(self.site.id)

    def find_user(self, ref: str | None) -> dict | None:
        if ref is None:
            return None
        if self.flavour == "dc":
            return self.state.dc_user(ref)
        return self.state.cloud_user(self.site.id, ref)

    @property
    def quirks(self) -> dict[str, Any]:
        return self.state.quirks


def match_operation(apis: ProductApis, m: Match, method: str) -> None:
    hit = apis.match(method, m.tail)
    if hit:
        m.spec, m.operation, m.params = hit


def resolve(request: web.Request, catalog: Catalog) -> Match | None:
    """Parse and spec-match an `/ex/...` request (pure: no auth, no state)."""
    cached = request.get("sim_match", False)
    if cached is not False:
        return cached
    raw = request.raw_path.split("?", 1)[0]
    parts = raw.split("/", 4)                 # '', 'ex', product, cloudId, rest
    m: Match | None = None
    if len(parts) == 5 and parts[1] == "ex" and parts[2] in catalog.products and parts[3]:
        m = Match(product=parts[2], tail="/" + parts[4], prefix=f"/ex/{parts[2]}/{{cloudId}}",
                  cloud_id=parts[3])
        match_operation(catalog.products[m.product], m, request.method)
        request["sim_product"] = m.product
    request["sim_match"] = m
    return m


def site_product(tail: str) -> str:
    return "confluence" if tail == "/wiki" or tail.startswith("/wiki/") else "jira"


def resolve_site(request: web.Request, catalog: Catalog) -> Match | None:
    """Parse and spec-match a `/site/{siteName}/...` request."""
    cached = request.get("sim_match", False)
    if cached is not False:
        return cached
    raw = request.raw_path.split("?", 1)[0]
    parts = raw.split("/", 3)                 # '', 'site', name, rest
    m: Match | None = None
    if len(parts) == 4 and parts[1] == "site" and parts[2]:
        tail = "/" + parts[3]
        product = site_product(tail)
        m = Match(product=product, tail=tail, prefix="/site/{siteName}", site_name=parts[2])
        match_operation(catalog.products[product], m, request.method)
        request["sim_product"] = product
    request["sim_match"] = m
    return m


def not_found() -> web.Response:
    return json_response({"code": 404, "message": "Not Found"}, status=404)


def method_not_allowed(allowed: list[str]) -> web.Response:
    return json_response({"code": 405, "message": "Method Not Allowed"}, status=405,
                         headers={"Allow": ", ".join(allowed)})


async def dispatch(ctx: Ctx) -> web.StreamResponse:
    m = ctx.match
    fn = HANDLERS.get((m.spec.name, m.operation.method, m.operation.template))
    if fn is None:
        return json_response({"message": "not implemented in simulator",
                              "operationId": m.operation.operation_id}, status=501)
    return await fn(ctx)


# --------------------------------------------------------------------------- credentials
def const_eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def api_token_for(state: State, email: str, token: str, scoped: bool) -> ApiToken | None:
    for t in state.api_tokens:
        if (t.email.lower() == email.lower() and const_eq(t.token, token)
                and (t.scopes is not None) == scoped):
            return t
    return None


# --------------------------------------------------------------------------- gateway
async def gateway(request: web.Request) -> web.StreamResponse:
    state: State = request.app["state"]
    catalog: Catalog = request.app["catalog"]
    m = resolve(request, catalog)
    if m is None:
        return not_found()
    # 1. token: OAuth Bearer, or Basic with a scoped API token
    grant, _ = bearer_grant(request)
    scopes: list[str] | None = None
    account_id = None
    sites: list[str] = []
    auth = "oauth"
    forge_token = None if grant is not None else forge.system_token(request)
    if grant is not None:
        scopes, account_id, sites = grant.scopes, grant.account_id, grant.sites
    elif forge_token is not None:
        # A Forge app system token (forge.py): its installation's site and product only.
        tok, scopes, account_id = forge_token
        if tok.product != m.product:
            return unauthorized()
        sites, auth = [tok.cloud_id], "forge_app_system"
    else:
        creds = basic_credentials(request)
        tok = api_token_for(state, *creds, scoped=True) if creds else None
        if tok is None:
            return unauthorized()
        scopes, account_id, sites, auth = tok.scopes, tok.account_id, [tok.site], "scoped_api_token"
    # 2. site
    site = state.sites.get(m.cloud_id)
    if site is None or m.cloud_id not in sites:
        return unauthorized()
    if m.product not in site.products:
        return not_found()
    # 3. operation
    if m.operation is None:
        allowed = catalog.products[m.product].allowed_methods(m.tail)
        return method_not_allowed(allowed) if allowed else not_found()
    # 4. scopes
    if not m.operation.scopes_ok(scopes):
        return unauthorized("Unauthorized; scope does not match", error="insufficient_scope")
    # 5. dispatch
    base = f"{request.scheme}://{request.host}/ex/{m.product}/{site.id}"
    return await dispatch(Ctx(request=request, state=state, match=m, flavour="cloud", base=base,
                              site=site, grant=grant, account_id=account_id, via_gateway=True,
                              auth=auth))


# --------------------------------------------------------------------------- site URL
SITE_UNAUTHORIZED_JIRA = "Client must be authenticated to access this resource."


def site_unauthorized(product: str) -> web.Response:
    if product == "jira":
        return web.Response(status=401, text=SITE_UNAUTHORIZED_JIRA,
                            headers={"Content-Type": "text/plain;charset=UTF-8"})
    return json_response({"code": 401, "message": "Unauthorized"}, status=401)


async def site_gateway(request: web.Request) -> web.StreamResponse:
    state: State = request.app["state"]
    catalog: Catalog = request.app["catalog"]
    m = resolve_site(request, catalog)
    if m is None:
        return not_found()
    site = state.site_by_name(m.site_name)
    if site is None or m.product not in site.products:
        return not_found()
    if request.headers.get("Authorization", "")[:4].lower() == "jwt ":
        # A Connect app's request (connect.py): HS256 under its installation's shared secret.
        from . import connect
        inst, reason = connect.authenticate(request, state, site, m.product)
        if inst is None:
            log.info("Connect JWT refused: %s", reason)
            return site_unauthorized(m.product)
        if m.operation is None:
            allowed = catalog.products[m.product].allowed_methods(m.tail)
            return method_not_allowed(allowed) if allowed else not_found()
        base = f"{request.scheme}://{request.host}/site/{site.name}"
        return await dispatch(Ctx(request=request, state=state, match=m, flavour="cloud", base=base,
                                  site=site, account_id=inst["account_id"], via_gateway=False,
                                  auth="connect"))
    creds = basic_credentials(request)
    tok = api_token_for(state, *creds, scoped=False) if creds else None
    if tok is None or tok.site != site.id:
        return site_unauthorized(m.product)
    if m.operation is None:
        allowed = catalog.products[m.product].allowed_methods(m.tail)
        return method_not_allowed(allowed) if allowed else not_found()
    if not m.operation.basic_ok:
        return site_unauthorized(m.product)
    base = f"{request.scheme}://{request.host}/site/{site.name}"
    return await dispatch(Ctx(request=request, state=state, match=m, flavour="cloud", base=base,
                              site=site, account_id=tok.account_id, via_gateway=False,
                              auth="api_token"))


async def tenant_info(request: web.Request) -> web.Response:
    """`https://<site>.atlassian.net/_edge/tenant_info`: the site's cloudId, unauthenticated
    (support.atlassian.com/jira/kb/retrieve-my-atlassian-sites-cloud-id)."""
    site = request.app["state"].site_by_name(request.match_info["siteName"])
    if site is None:
        return not_found()
    return json_response({"cloudId": site.id})


def routes() -> list[web.RouteDef]:
    # tenant_info before the site catch-all: it is no product API (no spec, no auth)
    return [web.route("*", "/ex/{product}/{cloudId}/{tail:.*}", gateway),
            web.get("/site/{siteName}/_edge/tenant_info", tenant_info),
            web.route("*", "/site/{siteName}/{tail:.*}", site_gateway)]
