"""Atlassian Cloud OAuth 2.0 (3LO) authorization server (auth.atlassian.com) and the
accessible-resources endpoint (api.atlassian.com).

Behaviour follows developer.atlassian.com/cloud/oauth/getting-started/: authorization code
grant with `audience=api.atlassian.com`, a JSON (or form) token endpoint, `offline_access`
for refresh tokens, rotating refresh tokens with a reuse leeway, 90-day inactivity and
365-day absolute refresh token expiry.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from aiohttp import web

from .state import AccessToken, AuthCode, CODE_TTL_SECONDS, Grant, PendingConsent, RefreshToken, State
from .util import basic_credentials, html_page, html_response, json_response, wants_json

log = logging.getLogger("sim.oauth")

AUDIENCE = "api.atlassian.com"
INVALID_REFRESH = "Unknown or invalid refresh token."


# --------------------------------------------------------------------------- helpers
def _state(request: web.Request) -> State:
    return request.app["state"]


def _authorize_error(request: web.Request, error: str, description: str) -> web.Response:
    """Invalid authorization request: shown to the user, never redirected (RFC 6749 4.1.2.1)."""
    if wants_json(request):
        return json_response({"error": error, "error_description": description}, status=400)
    inner = (f"<h1>Something went wrong</h1><p>{html.escape(description)}</p>"
             f"<p><code>error={html.escape(error)}</code></p>")
    return html_response(html_page("Authorization error", inner), status=400)


def _redirect_with(redirect_uri: str, params: dict[str, str]) -> web.Response:
    parts = urlsplit(redirect_uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    location = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def _single_params(request: web.Request) -> tuple[dict[str, str], str | None]:
    """Query parameters, refusing repeated ones."""
    out: dict[str, str] = {}
    for k in request.query.keys():
        vals = request.query.getall(k)
        if len(vals) > 1:
            return {}, f"Parameter '{k}' is repeated."
        out[k] = vals[0]
    return out, None


def _validate_authorize(state: State, params: dict[str, str]) -> tuple[str, str] | None:
    """Return (error, description) for an invalid request, else None."""
    audience = params.get("audience")
    if audience != AUDIENCE:
        return "invalid_request", f"The audience parameter must be '{AUDIENCE}'."
    client_id = params.get("client_id")
    if not client_id:
        return "invalid_request", "Missing client_id."
    client = state.clients.get(client_id)
    if client is None:
        return "unauthorized_client", "Unknown client_id."
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        return "invalid_request", "Missing redirect_uri."
    if redirect_uri not in client.redirect_uris:
        return "invalid_request", "The redirect_uri is not registered for this app."
    if params.get("response_type") != "code":
        return "unsupported_response_type", "response_type must be 'code'."
    scope = params.get("scope", "")
    scopes = scope.split()
    if not scopes:
        return "invalid_scope", "The scope parameter is required."
    unknown = [s for s in scopes if s not in state.catalog.known_scopes]
    if unknown:
        return "invalid_scope", "Unknown scope(s): " + " ".join(unknown)
    if client.scopes is not None:
        not_allowed = [s for s in scopes if s not in client.scopes]
        if not_allowed:
            # Atlassian's error page text (OpenHands/OpenHands#12397, atlassian/atlassian-mcp-server#177):
            # shown to the user, no redirect to the app
            return "invalid_scope", ("This app has requested scopes that have not been added to the "
                                     "app. Configure the app at https://developer.atlassian.com/apps "
                                     "and add the following scopes to the app: "
                                     + ", ".join(not_allowed) + ".")
    if not params.get("state"):
        return "invalid_request", "Missing state."
    prompt = params.get("prompt")
    if prompt is not None and prompt not in ("consent", "none", "login"):
        return "invalid_request", "Unsupported prompt value."
    return None


def _consented_sites(state: State) -> list[str]:
    wanted = state.config.get("consent_sites")
    if wanted is None:
        return list(state.sites)
    return [s for s in wanted if s in state.sites]


def _dedup(seq):
    return list(dict.fromkeys(seq))


def _issue_code(state: State, client_id: str, redirect_uri: str, scopes: list[str],
                sites: list[str]) -> str:
    value = state.new_secret("codes", 24)
    state.codes[value] = AuthCode(value=value, client_id=client_id, redirect_uri=redirect_uri,
                                  scopes=_dedup(scopes), sites=list(sites),
                                  account_id=state.current_account_id,
                                  expires_at=state.now() + CODE_TTL_SECONDS)
    return value


def _deny_redirect(redirect_uri: str, st: str) -> web.Response:
    return _redirect_with(redirect_uri, {
        "error": "access_denied",
        "error_description": "User did not authorize the request",
        "state": st,
    })


# --------------------------------------------------------------------------- /authorize
async def authorize(request: web.Request) -> web.Response:
    state = _state(request)
    params, err = _single_params(request)
    if err:
        return _authorize_error(request, "invalid_request", err)
    bad = _validate_authorize(state, params)
    if bad:
        return _authorize_error(request, *bad)
    redirect_uri, st = params["redirect_uri"], params["state"]
    scopes = params["scope"].split()
    sites = _consented_sites(state)

    if request.app["consent_page"]:
        pending = PendingConsent(id=secrets.token_urlsafe(16), client_id=params["client_id"],
                                 redirect_uri=redirect_uri, scopes=_dedup(scopes), state=st,
                                 sites=sites, expires_at=state.now() + CODE_TTL_SECONDS)
        state.pending[pending.id] = pending
        return html_response(_consent_html(state, pending))

    if state.config.get("deny"):
        return _deny_redirect(redirect_uri, st)
    code = _issue_code(state, params["client_id"], redirect_uri, scopes, sites)
    return _redirect_with(redirect_uri, {"code": code, "state": st})


def _consent_html(state: State, p: PendingConsent) -> str:
    scope_items = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in p.scopes)
    site_items = "".join(
        f'<li><label><input type="checkbox" name="site" value="{html.escape(sid)}" checked> '
        f'{html.escape(state.sites[sid].name)} ({html.escape(state.sites[sid].url)}) '
        f'&ndash; {html.escape(", ".join(state.sites[sid].products))}</label></li>'
        for sid in p.sites if sid in state.sites) or "<li><em>no site</em></li>"
    inner = (
        f"<h1>Atlassian simulator: authorize app</h1>"
        f"<p>App <code>{html.escape(p.client_id)}</code> is requesting access to your "
        f"Atlassian account.</p>"
        f'<form method="post" action="/authorize/decision">'
        f'<input type="hidden" name="request_id" value="{html.escape(p.id)}">'
        f"<h2>Sites</h2><ul>{site_items}</ul>"
        f"<h2>Permissions</h2><ul>{scope_items}</ul>"
        f'<button type="submit" name="decision" value="accept">Accept</button>'
        f'<button type="submit" name="decision" value="deny">Deny</button>'
        f"</form>")
    return html_page("Authorize app", inner)


async def authorize_decision(request: web.Request) -> web.Response:
    state = _state(request)
    form = await request.post()
    # --- no await below: check and consume atomically
    pending = state.pending.pop(str(form.get("request_id", "")), None)
    if pending is None or pending.expires_at <= state.now():
        return _authorize_error(request, "invalid_request",
                                "This authorization request is unknown or has expired.")
    if form.get("decision") != "accept":
        return _deny_redirect(pending.redirect_uri, pending.state)
    chosen = [s for s in form.getall("site", []) if s in pending.sites]
    code = _issue_code(state, pending.client_id, pending.redirect_uri, pending.scopes, chosen)
    return _redirect_with(pending.redirect_uri, {"code": code, "state": pending.state})


# --------------------------------------------------------------------------- /oauth/token
def _token_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status=status,
                         headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _unauthorized_client() -> web.Response:
    return _token_error(401, "access_denied", "Unauthorized")


async def _read_token_body(request: web.Request) -> tuple[dict[str, str] | None, str | None]:
    ctype = request.content_type
    raw = await request.read()
    if ctype == "application/json":
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None, "Request body is not valid JSON."
        if not isinstance(body, dict):
            return None, "Request body must be a JSON object."
        return {k: v for k, v in body.items() if v is not None}, None
    if ctype == "application/x-www-form-urlencoded":
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return None, "Request body is not valid UTF-8."
        out = {}
        for k, vals in parsed.items():
            if len(vals) > 1:
                return None, f"Parameter '{k}' is repeated."
            out[k] = vals[0]
        return out, None
    return None, "Unsupported Content-Type; use application/json or application/x-www-form-urlencoded."


def _authenticate_client(state: State, request: web.Request, body: dict):
    """Return the Client, or None when client authentication fails."""
    basic = basic_credentials(request, client_auth=True)
    if basic is False:
        return None
    cid, secret = body.get("client_id"), body.get("client_secret")
    if basic:
        bcid, bsecret = basic
        if cid is not None and cid != bcid:
            return None
        if secret is not None:       # two authentication methods at once (RFC 6749 2.3)
            return None
        cid, secret = bcid, bsecret
    if not isinstance(cid, str) or not isinstance(secret, str):
        return None
    client = state.clients.get(cid)
    if client is None or not _const_eq(client.client_secret, secret):
        return None
    return client


def _const_eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _issue_tokens(state: State, grant: Grant) -> dict:
    now = state.now()
    ttl = int(state.config["access_token_ttl_seconds"])
    at = state.new_secret("access_tokens", 48)
    state.access_tokens[at] = AccessToken(value=at, grant_id=grant.id, issued_at=now,
                                          expires_at=now + ttl)
    out = {"access_token": at, "expires_in": ttl, "token_type": "Bearer",
           "scope": " ".join(grant.scopes)}
    if "offline_access" in grant.scopes:
        rt = state.new_secret("refresh_tokens", 48)
        state.refresh_tokens[rt] = RefreshToken(value=rt, grant_id=grant.id, created_at=now)
        out["refresh_token"] = rt
    return out


async def token(request: web.Request) -> web.Response:
    state = _state(request)
    body, err = await _read_token_body(request)
    # ---- from here on: no await (atomic check-and-rotate) ----
    if body is None:
        return _token_error(400, "invalid_request", err or "Bad request.")
    grant_type = body.get("grant_type")
    request["grant_type"] = grant_type if isinstance(grant_type, str) else None
    client = _authenticate_client(state, request, body)
    if client is None:
        return _unauthorized_client()
    if grant_type == "authorization_code":
        return _grant_authorization_code(state, client, body)
    if grant_type == "refresh_token":
        return _grant_refresh_token(state, client, body)
    if not grant_type:
        return _token_error(400, "invalid_request", "Missing grant_type.")
    return _token_error(400, "unsupported_grant_type", "Unsupported grant_type.")


def _grant_authorization_code(state: State, client, body: dict) -> web.Response:
    code_value = body.get("code")
    redirect_uri = body.get("redirect_uri")
    if not isinstance(code_value, str) or not code_value:
        return _token_error(400, "invalid_request", "Missing code.")
    if not isinstance(redirect_uri, str) or not redirect_uri:
        return _token_error(400, "invalid_request", "Missing redirect_uri.")
    code = state.codes.get(code_value)
    now = state.now()
    if code is None or code.used or code.expires_at <= now or code.client_id != client.client_id:
        return _token_error(403, "invalid_grant", "Invalid authorization code")
    if code.redirect_uri != redirect_uri:
        return _token_error(403, "invalid_grant", "Invalid redirect_uri")
    code.used = True
    grant = Grant(id=_grant_id(),
                  client_id=client.client_id, scopes=list(code.scopes), sites=list(code.sites),
                  account_id=code.account_id, created_at=now)
    state.grants[grant.id] = grant
    return json_response(_issue_tokens(state, grant),
                         headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _grant_id() -> str:
    return "grant-" + secrets.token_hex(8)


def _grant_refresh_token(state: State, client, body: dict) -> web.Response:
    value = body.get("refresh_token")
    if not isinstance(value, str) or not value:
        return _token_error(400, "invalid_request", "Missing refresh_token.")
    rt = state.refresh_tokens.get(value)
    now = state.now()
    cfg = state.config
    grant = state.grants.get(rt.grant_id) if rt else None
    if (rt is None or grant is None or grant.revoked or grant.client_id != client.client_id
            or now - grant.created_at >= cfg["refresh_absolute_seconds"]):
        return _token_error(403, "invalid_grant", INVALID_REFRESH)
    if rt.first_used_at is None:
        if now - rt.created_at >= cfg["refresh_inactivity_seconds"]:
            return _token_error(403, "invalid_grant", INVALID_REFRESH)
        rt.first_used_at = now
    elif now - rt.first_used_at >= cfg["reuse_leeway_seconds"]:
        return _token_error(403, "invalid_grant", INVALID_REFRESH)
    return json_response(_issue_tokens(state, grant),
                         headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# --------------------------------------------------------------------------- bearer auth
def bearer_grant(request: web.Request) -> tuple[Grant | None, AccessToken | None]:
    """The grant behind a valid, unexpired Bearer access token, or (None, None)."""
    state = _state(request)
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None, None
    at = state.access_tokens.get(value.strip())
    if at is None or at.expires_at <= state.now():
        return None, None
    grant = state.grants.get(at.grant_id)
    if grant is None:
        return None, None
    return grant, at


def unauthorized(message: str = "Unauthorized", error: str = "invalid_token") -> web.Response:
    return json_response({"code": 401, "message": message}, status=401, headers={
        "WWW-Authenticate": f'Bearer realm="{AUDIENCE}", error="{error}"'})


AVATAR_URL = "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png"


async def accessible_resources(request: web.Request) -> web.Response:
    state = _state(request)
    grant, _ = bearer_grant(request)
    if grant is None:
        return unauthorized()
    per_product = state.catalog.products_for_scopes(grant.scopes)
    out = []
    for site_id in grant.sites:
        site = state.sites.get(site_id)
        if site is None:
            continue
        for product in site.products:
            scopes = per_product.get(product)
            if not scopes:
                continue
            out.append({"id": site.id, "url": site.url, "name": site.name,
                        "scopes": list(scopes), "avatarUrl": AVATAR_URL})
    return json_response(out)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/authorize", authorize),
        web.post("/authorize/decision", authorize_decision),
        web.post("/oauth/token", token),
        web.get("/oauth/token/accessible-resources", accessible_resources),
    ]
