"""Server / Data Center instances: `/dc/{instance}{context_path}/<path>` on the sim's own port.

A client's base URL is `http://127.0.0.1:P/dc/jira-dc/jira` (context path kept); Jira DC REST v2
is then `{base}/rest/api/2/...` (the Jira DC spec's server is `{baseurl}/rest`), Confluence DC
`{base}/rest/api/...`.

Steps, in order:
 1. the instance exists and the path starts with its context path -> else 404
 2. authentication, as Seraph and the auth add-ons do it:
      `Basic user:password`  -> a known, active user with that password, else 401
                                (`X-Seraph-LoginReason: AUTHENTICATED_FAILED`); after
                                `captcha_after_failures` failed logins of a user, 403
                                `AUTHENTICATION_DENIED` (CAPTCHA) even with the right password
      `Bearer <token>`       -> a Personal Access Token of this instance, an access token of
                                the simulated OIDC provider whose client lists this instance
                                (until it expires), or an OAuth 2.0 access token this instance
                                issued through an incoming link (`dc_oauth.py`; until it
                                expires; READ alone may not write: 403), else 401
      no (or another) scheme -> anonymous
 3. method + path match an operation of the instance's spec -> else 404 (405: wrong method)
 4. the user is flagged `forbidden` -> 403
 5. the handler (which answers anonymous callers as the product does: mostly 401) -> else 501

401 bodies are the products' own: Jira `{"errorMessages":[...],"errors":{}}` with
`WWW-Authenticate: OAuth realm="<url-encoded base URL>"`; Confluence a `RestError`.
Every response carries `X-AUSERNAME` (the user name, or `anonymous`).
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from . import dc_oauth
from .cloud import Ctx, Match, const_eq, dispatch, match_operation
from .spec import Catalog
from .state import DcInstance, State
from .util import basic_credentials, json_response

JIRA_401 = "You are not authenticated. Authentication required to perform this operation."
JIRA_403 = "You do not have the permission to see the specified resource."
CONFLUENCE_401 = "This request requires authentication."
CONFLUENCE_403 = "User not permitted to use Confluence"


def resolve(request: web.Request, catalog: Catalog, state: State) -> Match | None:
    """Parse and spec-match a `/dc/...` request against the instance's spec."""
    cached = request.get("sim_match", False)
    if cached is not False:
        return cached
    raw = request.raw_path.split("?", 1)[0]
    parts = raw.split("/", 3)                 # '', 'dc', id, rest
    m: Match | None = None
    inst = state.dc_instances.get(parts[2]) if len(parts) >= 3 and parts[1] == "dc" else None
    if inst is not None and len(parts) == 4:
        rest = "/" + parts[3]
        ctx = inst.context_path
        if not ctx or rest == ctx or rest.startswith(ctx + "/"):
            tail = rest[len(ctx):] or "/"
            m = Match(product=inst.product, tail=tail, prefix=inst.prefix, instance_id=inst.id)
            match_operation(catalog.dc[inst.product], m, request.method)
            request["sim_product"] = inst.product
    request["sim_match"] = m
    return m


def base_url(request: web.Request, inst: DcInstance) -> str:
    return f"{request.scheme}://{request.host}{inst.prefix}"


# --------------------------------------------------------------------------- product errors
def rest_error(status: int, message: str, reason: str, headers: dict | None = None,
               authorized: bool = True) -> web.Response:
    """Confluence Server/DC `RestError`."""
    body = {"statusCode": status,
            "data": {"authorized": authorized, "valid": True, "allowedInReadOnlyMode": True,
                     "errors": [], "successful": False},
            "message": message, "reason": reason}
    return json_response(body, status=status, headers=headers)


def jira_error(status: int, *messages: str, errors: dict | None = None,
               headers: dict | None = None) -> web.Response:
    return json_response({"errorMessages": list(messages), "errors": errors or {}},
                         status=status, headers=headers)


def unauthenticated(request: web.Request, inst: DcInstance, failed_basic: bool = False) -> web.Response:
    headers = {"WWW-Authenticate": f'OAuth realm="{quote(base_url(request, inst), safe="")}"',
               "X-AUSERNAME": "anonymous"}
    if failed_basic:
        headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
    if inst.product == "jira":
        return jira_error(401, JIRA_401, headers=headers)
    return rest_error(401, CONFLUENCE_401, "Unauthorized", headers=headers, authorized=False)


def forbidden(inst: DcInstance, username: str) -> web.Response:
    headers = {"X-AUSERNAME": username}
    if inst.product == "jira":
        return jira_error(403, JIRA_403, headers=headers)
    return rest_error(403, CONFLUENCE_403, "Forbidden", headers=headers, authorized=False)


def captcha_denied(request: web.Request, inst: DcInstance) -> web.Response:
    login = f"{base_url(request, inst)}/login.{'jsp' if inst.product == 'jira' else 'action'}"
    headers = {"X-Seraph-LoginReason": "AUTHENTICATION_DENIED",
               "X-Authentication-Denied-Reason": f"CAPTCHA_CHALLENGE; login-url={login}",
               "X-AUSERNAME": "anonymous"}
    if inst.product == "jira":
        return jira_error(403, "CAPTCHA_CHALLENGE; login-url=" + login, headers=headers)
    return rest_error(403, "CAPTCHA_CHALLENGE; login-url=" + login, "Forbidden", headers=headers,
                      authorized=False)


def not_found(request: web.Request, inst: DcInstance | None) -> web.Response:
    url = f"{request.scheme}://{request.host}{request.raw_path.split('?', 1)[0]}"
    if inst is not None and inst.product == "confluence":
        return rest_error(404, f"null for uri: {url}", "Not Found")
    return json_response({"message": f"null for uri: {url}", "status-code": 404}, status=404)


def method_not_allowed(inst: DcInstance, allowed: list[str]) -> web.Response:
    headers = {"Allow": ", ".join(allowed)}
    if inst.product == "confluence":
        return rest_error(405, "Method Not Allowed", "Method Not Allowed", headers=headers)
    return json_response({"message": "Method Not Allowed", "status-code": 405}, status=405,
                         headers=headers)


# --------------------------------------------------------------------------- authentication
class AuthFailed(Exception):
    def __init__(self, response: web.Response):
        self.response = response


def authenticate(request: web.Request, state: State, inst: DcInstance) -> tuple[dict | None, str]:
    """(user or None for anonymous, auth kind); raises AuthFailed with the response to send."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        creds = basic_credentials(request)
        if not creds:
            raise AuthFailed(unauthenticated(request, inst, failed_basic=True))
        username, password = creds
        key = (inst.id, username.lower())
        limit = inst.captcha_after_failures
        if limit is not None and state.failed_logins.get(key, 0) >= limit:
            raise AuthFailed(captcha_denied(request, inst))
        user = state.dc_user(username)
        if (user is None or not user.get("password") or not user.get("active", True)
                or not const_eq(user["password"], password)):
            state.failed_logins[key] = state.failed_logins.get(key, 0) + 1
            raise AuthFailed(unauthenticated(request, inst, failed_basic=True))
        state.failed_logins.pop(key, None)
        return user, "basic"
    if scheme == "bearer":
        token = value.strip()
        pat = state.pats.get(token)
        if pat is not None and not pat.revoked and pat.instance == inst.id:
            user = state.dc_user(pat.username)
            if user is not None and user.get("active", True):
                return user, "pat"
            raise AuthFailed(unauthenticated(request, inst))
        ot = state.oidc_tokens.get(token)
        if ot is not None and inst.id in ot.instances and ot.expires_at > state.now():
            user = state.dc_user(ot.acts_as)
            if user is not None and user.get("active", True):
                return user, "oidc"
        oauth = dc_oauth.bearer_user(state, inst, token, request.method)
        if oauth is not None:
            user = state.dc_user(oauth[0])
            if user is not None and user.get("active", True):
                if not oauth[1] and request.method not in ("GET", "HEAD"):
                    raise AuthFailed(forbidden(inst, user["name"]))
                return user, "oauth2"
        raise AuthFailed(unauthenticated(request, inst))
    return None, "anonymous"


# --------------------------------------------------------------------------- entry point
async def gateway(request: web.Request) -> web.StreamResponse:
    state: State = request.app["state"]
    catalog: Catalog = request.app["catalog"]
    m = resolve(request, catalog, state)
    parts = request.raw_path.split("?", 1)[0].split("/", 3)
    inst = state.dc_instances.get(parts[2]) if len(parts) >= 3 else None
    if inst is not None and dc_oauth.is_oauth(request, inst):
        return await dc_oauth.handle(request, state, inst)
    if m is None or inst is None:
        return not_found(request, None)
    try:
        user, kind = authenticate(request, state, inst)
    except AuthFailed as e:
        return e.response
    username = user["name"] if user else "anonymous"
    if m.operation is None:
        allowed = catalog.dc[inst.product].allowed_methods(m.tail)
        resp = method_not_allowed(inst, allowed) if allowed else not_found(request, inst)
    elif user is not None and user.get("forbidden"):
        return forbidden(inst, username)
    else:
        ctx = Ctx(request=request, state=state, match=m, flavour="dc",
                  base=base_url(request, inst), instance=inst, user=user, auth=kind)
        resp = await dispatch(ctx)
    resp.headers["X-AUSERNAME"] = username
    return resp


def require_user(ctx: Ctx) -> web.Response | None:
    """The products' answer to an anonymous caller where a user is needed (else None)."""
    if ctx.user is not None:
        return None
    return unauthenticated(ctx.request, ctx.instance)


def routes() -> list[web.RouteDef]:
    return [web.route("*", "/dc/{tail:.*}", gateway)]
