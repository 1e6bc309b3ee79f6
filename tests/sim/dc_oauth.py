"""Data Center instances as OAuth 2.0 providers (incoming application links), as Jira 8.22+ and
Confluence 7.20+ are: below each instance's base URL (context path kept)

    GET  {base}/rest/oauth2/latest/authorize   consent (auto-consents, like the Cloud sim)
    POST {base}/rest/oauth2/latest/token       authorization_code (PKCE) and refresh_token

Sources: Atlassian's "Jira OAuth 2.0 provider API" and "OAuth 2.0 provider system properties"
(access tokens 3600 s, refresh tokens at most 90 days, codes short-lived), "OAuth 2.0 scopes for
incoming links" (READ < WRITE < ADMIN < SYSTEM_ADMIN, capped at the authorizing user).

An incoming link is registered per instance with the control API (`PUT /_sim/dc/oauth/links`):
client id and secret, the redirect URL (matched exactly), the scopes it allows (the highest one
counts: WRITE allows READ), and the DC user who consents (`acts_as`, default `bridge-bot`).

Authorize: an unknown client or a redirect URI other than the link's -> 400 page (no redirect);
otherwise errors go back to the redirect URI (`unsupported_response_type`, `invalid_scope`,
`invalid_request` for a `code_challenge_method` other than S256). Success: 302 to the redirect
URI with `code` and `state`.

Token: form body (query parameters are read too, as the provider API's examples send them);
the client authenticates with `client_id` + `client_secret` (or HTTP Basic), else 401
`invalid_client`. `authorization_code`: the code (single use, `code_ttl_seconds`), the same
client and `redirect_uri`, and — when the authorize request carried a challenge — a
`code_verifier` whose S256 is that challenge; a missing or wrong verifier -> 400 `invalid_grant`.
`refresh_token`: the refresh token of this client and instance, unexpired, unused and unrevoked,
with the link's `redirect_uri` (the provider checks it on refresh too) -> a new access token AND a
new refresh token; the old refresh token is spent (its reuse -> `invalid_grant`). The old access
token stays valid until it expires.

Access tokens are accepted as `Authorization: Bearer` on the instance's REST API until they
expire (`access_token_ttl_seconds`, default 3600, on the sim's clock); a token with only READ
may not write (403).

Control: `PUT|GET /_sim/dc/oauth/links`, `PUT|GET /_sim/dc/oauth/config`,
`POST /_sim/dc/oauth/revoke` (every grant, or `{"client_id"}`'s: refresh and access tokens die),
`POST /_sim/dc/oauth/expire` (every access token expires now), `GET /_sim/dc/oauth/grants`
(refresh tokens issued per grant, without the values).
"""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlencode

from aiohttp import web

from .cloud import const_eq
from .state import DcInstance, State
from .util import basic_credentials, html_page, html_response, json_response, sim_error

OAUTH_PREFIX = "/rest/oauth2/latest/"
AUTHORIZE_ROUTE = "GET /dc/{instance}/rest/oauth2/latest/authorize"
TOKEN_ROUTE = "POST /dc/{instance}/rest/oauth2/latest/token"
SCOPE_RANK = {"READ": 1, "WRITE": 2, "ADMIN": 3, "SYSTEM_ADMIN": 4}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def default_config() -> dict:
    return {"access_token_ttl_seconds": 3600, "refresh_token_ttl_seconds": 7776000, "code_ttl_seconds": 60}


def reset(state: State) -> None:
    state.dc_links = {}            # (instance, client_id) -> link
    state.dc_oauth_codes = {}      # code -> pending grant
    state.dc_oauth_access = {}     # access token -> {instance, client_id, user, scopes, expires_at, grant}
    state.dc_oauth_refresh = {}    # refresh token -> {instance, client_id, user, scopes, expires_at, grant, used, revoked}
    state.dc_oauth_config = default_config()
    state.dc_oauth_grant_seq = 0


def _tail(request: web.Request, inst: DcInstance) -> str | None:
    raw = request.raw_path.split("?", 1)[0]
    rest = raw[len(f"/dc/{inst.id}"):]
    ctx = inst.context_path
    if ctx and not (rest == ctx or rest.startswith(ctx + "/")):
        return None
    return rest[len(ctx):] or "/"


def route_of(request: web.Request, state: State) -> str | None:
    """The recorded route of an OAuth endpoint request, else None."""
    parts = request.raw_path.split("?", 1)[0].split("/", 3)
    inst = state.dc_instances.get(parts[2]) if len(parts) >= 3 else None
    if inst is None:
        return None
    tail = _tail(request, inst)
    if tail == OAUTH_PREFIX + "authorize" and request.method == "GET":
        return AUTHORIZE_ROUTE
    if tail == OAUTH_PREFIX + "token" and request.method == "POST":
        return TOKEN_ROUTE
    return None


def is_oauth(request: web.Request, inst: DcInstance) -> bool:
    tail = _tail(request, inst)
    return tail is not None and tail.startswith(OAUTH_PREFIX)


def _allowed(link: dict, scopes: list[str]) -> bool:
    top = max(SCOPE_RANK[s] for s in link["scopes"])
    return all(s in SCOPE_RANK and SCOPE_RANK[s] <= top for s in scopes)


def _redirect(uri: str, params: dict[str, str]) -> web.Response:
    sep = "&" if "?" in uri else "?"
    return web.Response(status=302, headers={"Location": uri + sep + urlencode(params)})


def _page_error(message: str) -> web.Response:
    return html_response(html_page("Authorization failed", f"<p>{message}</p>"), status=400)


async def authorize(request: web.Request, state: State, inst: DcInstance) -> web.Response:
    q = {k: v for k, v in request.query.items()}
    link = state.dc_links.get((inst.id, q.get("client_id", "")))
    if link is None:
        return _page_error("Unknown client.")
    if q.get("redirect_uri") != link["redirect_uri"]:
        return _page_error("The redirect URI does not match the application link.")
    redirect_uri = link["redirect_uri"]
    st = q.get("state", "")
    back = {"state": st} if st else {}
    if q.get("response_type") != "code":
        return _redirect(redirect_uri, {"error": "unsupported_response_type", **back})
    scopes = (q.get("scope") or "").split()
    if not scopes or not _allowed(link, scopes):
        return _redirect(redirect_uri, {"error": "invalid_scope", **back})
    challenge = q.get("code_challenge")
    method = q.get("code_challenge_method")
    if challenge is not None and method != "S256":
        return _redirect(redirect_uri, {"error": "invalid_request", **back})
    if challenge is None and method is not None:
        return _redirect(redirect_uri, {"error": "invalid_request", **back})
    code = state.new_secret("codes", 24)
    state.dc_oauth_codes[code] = {
        "instance": inst.id, "client_id": link["client_id"], "redirect_uri": redirect_uri,
        "scopes": scopes, "challenge": challenge, "user": link["acts_as"],
        "expires_at": state.now() + int(state.dc_oauth_config["code_ttl_seconds"]), "used": False}
    return _redirect(redirect_uri, {"code": code, **back})


def _token_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status=status, headers=NO_STORE)


def _issue(state: State, inst: DcInstance, client_id: str, user: str, scopes: list[str], grant: int) -> dict:
    now = state.now()
    cfg = state.dc_oauth_config
    access = state.new_secret("access_tokens", 32)
    refresh = state.new_secret("refresh_tokens", 32)
    ttl = int(cfg["access_token_ttl_seconds"])
    state.dc_oauth_access[access] = {"instance": inst.id, "client_id": client_id, "user": user,
                                     "scopes": scopes, "expires_at": now + ttl, "grant": grant,
                                     "revoked": False}
    state.dc_oauth_refresh[refresh] = {"instance": inst.id, "client_id": client_id, "user": user,
                                       "scopes": scopes, "grant": grant, "used": False, "revoked": False,
                                       "expires_at": now + int(cfg["refresh_token_ttl_seconds"])}
    return {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
            "expires_in": ttl, "scope": " ".join(scopes)}


async def token(request: web.Request, state: State, inst: DcInstance) -> web.Response:
    raw = await request.read()
    # ---- no await below
    params: dict[str, str] = {}
    sources = [parse_qs(request.query_string, keep_blank_values=True)]
    if raw:
        if request.content_type != "application/x-www-form-urlencoded":
            return _token_error(400, "invalid_request", "The token request must be form-encoded.")
        try:
            sources.append(parse_qs(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return _token_error(400, "invalid_request", "Request body is not valid UTF-8.")
    for source in sources:
        for k, vals in source.items():
            if len(vals) > 1 or k in params:
                return _token_error(400, "invalid_request", f"Parameter '{k}' is repeated.")
            params[k] = vals[0]
    grant_type = params.get("grant_type")
    request["grant_type"] = grant_type
    basic = basic_credentials(request, client_auth=True)
    if basic is False or (basic and "client_secret" in params):
        return _token_error(401, "invalid_client", "Client authentication failed.")
    cid, secret = basic if basic else (params.get("client_id"), params.get("client_secret"))
    link = state.dc_links.get((inst.id, cid or ""))
    if link is None or secret is None or not const_eq(link["client_secret"], secret):
        return _token_error(401, "invalid_client", "Client authentication failed.")
    if grant_type == "authorization_code":
        return _grant_code(state, inst, link, params)
    if grant_type == "refresh_token":
        return _grant_refresh(state, inst, link, params)
    return _token_error(400, "unsupported_grant_type", "Only authorization_code and refresh_token are supported.")


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest()).rstrip(b"=").decode()


def _grant_code(state: State, inst: DcInstance, link: dict, params: dict[str, str]) -> web.Response:
    code = state.dc_oauth_codes.get(params.get("code", ""))
    if (code is None or code["used"] or code["instance"] != inst.id or code["client_id"] != link["client_id"]
            or code["expires_at"] <= state.now()):
        return _token_error(400, "invalid_grant", "The authorization code is invalid or expired.")
    if params.get("redirect_uri") != code["redirect_uri"]:
        return _token_error(400, "invalid_grant", "The redirect URI does not match the authorization request.")
    if code["challenge"] is not None:
        verifier = params.get("code_verifier")
        if not verifier:
            return _token_error(400, "invalid_grant", "PKCE verification failed: the code verifier is missing.")
        if not const_eq(_s256(verifier), code["challenge"]):
            return _token_error(400, "invalid_grant", "PKCE verification failed.")
    code["used"] = True
    state.dc_oauth_grant_seq += 1
    out = _issue(state, inst, link["client_id"], code["user"], code["scopes"], state.dc_oauth_grant_seq)
    return json_response(out, headers=NO_STORE)


def _grant_refresh(state: State, inst: DcInstance, link: dict, params: dict[str, str]) -> web.Response:
    rt = state.dc_oauth_refresh.get(params.get("refresh_token", ""))
    if (rt is None or rt["used"] or rt["revoked"] or rt["instance"] != inst.id
            or rt["client_id"] != link["client_id"] or rt["expires_at"] <= state.now()):
        return _token_error(400, "invalid_grant", "The refresh token is invalid, expired or already used.")
    if params.get("redirect_uri") != link["redirect_uri"]:
        return _token_error(400, "invalid_grant", "The redirect URI does not match the application link.")
    rt["used"] = True
    out = _issue(state, inst, link["client_id"], rt["user"], rt["scopes"], rt["grant"])
    return json_response(out, headers=NO_STORE)


async def handle(request: web.Request, state: State, inst: DcInstance) -> web.Response:
    route = route_of(request, state)
    if route == AUTHORIZE_ROUTE:
        return await authorize(request, state, inst)
    if route == TOKEN_ROUTE:
        return await token(request, state, inst)
    return json_response({"message": "null for uri", "status-code": 404}, status=404)


def bearer_user(state: State, inst: DcInstance, token_value: str, method: str) -> tuple[str, bool] | None:
    """(DC user name, may write) for a live access token of this instance, else None."""
    at = state.dc_oauth_access.get(token_value)
    if at is None or at["revoked"] or at["instance"] != inst.id or at["expires_at"] <= state.now():
        return None
    may_write = max(SCOPE_RANK.get(s, 0) for s in at["scopes"]) >= SCOPE_RANK["WRITE"]
    return at["user"], may_write


# --------------------------------------------------------------------------- control API
def _state(request: web.Request) -> State:
    return request.app["state"]


async def _body(request: web.Request, default=None):
    raw = await request.read()
    if not raw.strip():
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"invalid JSON: {e}"}),
                                 content_type="application/json") from None


def _link_json(link: dict) -> dict:
    return dict(link)


async def get_links(request):
    return json_response([_link_json(v) for v in _state(request).dc_links.values()])


async def put_links(request):
    st = _state(request)
    body = await _body(request, [])
    if not isinstance(body, list):
        return sim_error("body must be a list of links")
    links = {}
    for item in body:
        inst = item.get("instance")
        if inst not in st.dc_instances:
            return sim_error(f"unknown instance {inst!r}")
        for k in ("client_id", "client_secret", "redirect_uri"):
            if not isinstance(item.get(k), str) or not item[k]:
                return sim_error(f"{k} is required")
        scopes = item.get("scopes") or ["WRITE"]
        if not all(s in SCOPE_RANK for s in scopes):
            return sim_error("scopes must be READ, WRITE, ADMIN or SYSTEM_ADMIN")
        link = {"instance": inst, "client_id": item["client_id"], "client_secret": item["client_secret"],
                "redirect_uri": item["redirect_uri"], "scopes": list(scopes),
                "acts_as": (item.get("acts_as") or "bridge-bot").lower()}
        st._remember("client_secrets", link["client_secret"])
        links[(inst, link["client_id"])] = link
    st.dc_links = links
    return json_response([_link_json(v) for v in links.values()])


async def get_config(request):
    return json_response(_state(request).dc_oauth_config)


async def put_config(request):
    st = _state(request)
    body = await _body(request, {})
    for k, v in body.items():
        if k not in default_config():
            return sim_error(f"unknown config key {k!r}")
        if not isinstance(v, int) or v < 0:
            return sim_error(f"{k} must be a non-negative integer")
    st.dc_oauth_config.update(body)
    return json_response(st.dc_oauth_config)


async def revoke(request):
    st = _state(request)
    body = await _body(request, {}) or {}
    cid = body.get("client_id")
    n = 0
    for table in (st.dc_oauth_refresh, st.dc_oauth_access):
        for t in table.values():
            if cid is None or t["client_id"] == cid:
                t["revoked"] = True
                n += 1
    return json_response({"revoked": n})


async def expire(request):
    st = _state(request)
    now = st.now()
    for t in st.dc_oauth_access.values():
        t["expires_at"] = min(t["expires_at"], now)
    return json_response({"expired": len(st.dc_oauth_access)})


async def grants(request):
    st = _state(request)
    out: dict[int, dict] = {}
    for t in st.dc_oauth_refresh.values():
        g = out.setdefault(t["grant"], {"grant": t["grant"], "instance": t["instance"],
                                        "client_id": t["client_id"], "refresh_tokens": 0, "live": 0})
        g["refresh_tokens"] += 1
        if not (t["used"] or t["revoked"]):
            g["live"] += 1
    return json_response(sorted(out.values(), key=lambda g: g["grant"]))


def routes() -> list[web.RouteDef]:
    p = "/_sim/dc/oauth"
    return [web.get(p + "/links", get_links), web.put(p + "/links", put_links),
            web.get(p + "/config", get_config), web.put(p + "/config", put_config),
            web.post(p + "/revoke", revoke), web.post(p + "/expire", expire),
            web.get(p + "/grants", grants)]
