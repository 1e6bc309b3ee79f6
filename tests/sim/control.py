"""Control API under /_sim/ (JSON, no auth) for tests. Calls to it are not recorded."""

from __future__ import annotations

import json
import re

from aiohttp import web

from . import data, faults
from .state import State, default_config
from .util import json_response, sim_error

UUIDISH = re.compile(r"^[A-Za-z0-9-]{1,64}$")
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PRODUCTS = {"jira", "confluence"}


def _state(request: web.Request) -> State:
    return request.app["state"]


async def _json(request: web.Request, default=None):
    raw = await request.read()
    if not raw.strip():
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"invalid JSON: {e}"}),
                                 content_type="application/json") from None


async def health(request):
    return json_response({"ok": True})


async def reset(request):
    _state(request).reset()
    return json_response({"ok": True})


# ---- oauth client / config -----------------------------------------------------------
def _client_json(c) -> dict:
    return {"client_id": c.client_id, "client_secret": c.client_secret,
            "redirect_uris": list(c.redirect_uris), "scopes": c.scopes}


async def get_client(request):
    st = _state(request)
    return json_response(_client_json(next(iter(st.clients.values()))))


async def put_client(request):
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    current = next(iter(st.clients.values()))
    cid = body.get("client_id", current.client_id)
    secret = body.get("client_secret", current.client_secret)
    uris = body.get("redirect_uris", current.redirect_uris)
    scopes = body.get("scopes", current.scopes)
    if not isinstance(cid, str) or not cid or not isinstance(secret, str) or not secret:
        return sim_error("client_id and client_secret must be non-empty strings")
    if not isinstance(uris, list) or not all(isinstance(u, str) and re.match(r"^https?://", u) for u in uris):
        return sim_error("redirect_uris must be a list of http(s) URLs")
    if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
        return sim_error("scopes must be null or a list of strings")
    c = st.set_client(cid, secret, uris, scopes)
    return json_response(_client_json(c))


CONFIG_TYPES = {
    "deny": bool,
    "reuse_leeway_seconds": (int, float),
    "access_token_ttl_seconds": int,
    "refresh_inactivity_seconds": (int, float),
    "refresh_absolute_seconds": (int, float),
}


async def get_config(request):
    return json_response(_state(request).config)


async def put_config(request):
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    defaults = default_config()
    for k, v in body.items():
        if k not in defaults:
            return sim_error(f"unknown config key {k!r}")
        if k == "consent_sites":
            if v is not None and (not isinstance(v, list) or not all(isinstance(s, str) for s in v)):
                return sim_error("consent_sites must be null or a list of cloud ids")
            continue
        t = CONFIG_TYPES[k]
        if isinstance(v, bool) and t is not bool:
            return sim_error(f"{k} must be a number")
        if not isinstance(v, t) or (t is not bool and v < 0):
            return sim_error(f"{k} has the wrong type or is negative")
    st.config.update(body)
    return json_response(st.config)


# ---- sites ----------------------------------------------------------------------------
async def get_sites(request):
    return json_response([s.to_json() for s in _state(request).sites.values()])


async def put_sites(request):
    st = _state(request)
    body = await _json(request, [])
    if not isinstance(body, list):
        return sim_error("body must be a list of sites")
    seen = set()
    for s in body:
        if not isinstance(s, dict) or not isinstance(s.get("id"), str) or not UUIDISH.match(s["id"]):
            return sim_error("each site needs an 'id' (cloud id)")
        if not isinstance(s.get("name"), str) or not SITE_NAME.match(s["name"]):
            return sim_error("each site needs a 'name' (lower-case host label)")
        prods = s.get("products", ["jira", "confluence"])
        if not isinstance(prods, list) or not set(prods) <= PRODUCTS:
            return sim_error("products must be a list drawn from jira, confluence")
        if s["id"] in seen:
            return sim_error("duplicate site id")
        seen.add(s["id"])
    st.set_sites(body)
    return json_response([s.to_json() for s in st.sites.values()])


async def seed(request):
    """{"site": cloudId (optional, default all confluence sites), "spaces": n}"""
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    site_id = body.get("site")
    targets = [site_id] if site_id else [s.id for s in st.sites.values() if "confluence" in s.products]
    for t in targets:
        if t not in st.sites:
            return sim_error(f"unknown site {t!r}", 404)
    out = {}
    if "spaces" in body:
        n = body["spaces"]
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 10000:
            return sim_error("spaces must be an integer 0..10000")
        for t in targets:
            out[t] = {"spaces": len(data.seed_spaces(st, t, n))}
    return json_response(out)


# ---- oauth state ------------------------------------------------------------------------
async def revoke(request):
    """Revoke every grant (so every refresh token known now); {"access_tokens": true} also
    expires their access tokens."""
    st = _state(request)
    body = await _json(request, {}) or {}
    n = 0
    for g in st.grants.values():
        if not g.revoked:
            g.revoked = True
            n += 1
    if isinstance(body, dict) and body.get("access_tokens"):
        now = st.now()
        for at in st.access_tokens.values():
            at.expires_at = min(at.expires_at, now)
    return json_response({"revoked_grants": n})


async def expire_access_tokens(request):
    st = _state(request)
    now = st.now()
    for at in st.access_tokens.values():
        at.expires_at = min(at.expires_at, now)
    return json_response({"expired": len(st.access_tokens)})


async def issued(request):
    st = _state(request)
    return json_response({k: list(v) for k, v in st.issued.items()})


async def grants(request):
    st = _state(request)
    out = []
    for g in st.grants.values():
        out.append({"id": g.id, "client_id": g.client_id, "scopes": g.scopes, "sites": g.sites,
                    "account_id": g.account_id, "revoked": g.revoked,
                    "refresh_tokens": sum(1 for r in st.refresh_tokens.values() if r.grant_id == g.id),
                    "access_tokens": sum(1 for a in st.access_tokens.values() if a.grant_id == g.id)})
    return json_response({"grants": out})


# ---- clock ------------------------------------------------------------------------------
async def get_clock(request):
    st = _state(request)
    return json_response({"now": st.now(), "offset_seconds": st.clock_offset})


async def advance_clock(request):
    st = _state(request)
    body = await _json(request, {})
    secs = body.get("seconds") if isinstance(body, dict) else None
    if not isinstance(secs, (int, float)) or isinstance(secs, bool) or secs < 0:
        return sim_error("seconds must be a non-negative number")
    st.clock_offset += secs
    return json_response({"now": st.now(), "offset_seconds": st.clock_offset})


# ---- calls ------------------------------------------------------------------------------
async def get_calls(request):
    st = _state(request)
    calls = st.calls
    route = request.query.get("route")
    if route:
        calls = [c for c in calls if c.get("route") == route]
    return json_response({"calls": calls, "counts": dict(st.counts)})


async def clear_calls(request):
    st = _state(request)
    st.calls = []
    st.counts = {}
    return json_response({"ok": True})


# ---- faults -----------------------------------------------------------------------------
async def add_fault(request):
    st = _state(request)
    body = await _json(request, {})
    try:
        f = faults.parse_fault(body)
    except ValueError as e:
        return sim_error(str(e))
    st.faults.append(f)
    return json_response({"id": f.id, "fault": f.to_json()}, status=201)


async def list_faults(request):
    return json_response({"faults": [f.to_json() for f in _state(request).faults]})


async def clear_faults(request):
    _state(request).faults = []
    return json_response({"ok": True})


async def delete_fault(request):
    st = _state(request)
    fid = request.match_info["id"]
    before = len(st.faults)
    st.faults = [f for f in st.faults if f.id != fid]
    if len(st.faults) == before:
        return sim_error("no such fault", 404)
    return json_response({"ok": True})


def routes() -> list[web.RouteDef]:
    p = "/_sim"
    return [
        web.get(p + "/health", health),
        web.post(p + "/reset", reset),
        web.get(p + "/oauth/client", get_client),
        web.put(p + "/oauth/client", put_client),
        web.get(p + "/oauth/config", get_config),
        web.put(p + "/oauth/config", put_config),
        web.post(p + "/oauth/revoke", revoke),
        web.post(p + "/oauth/expire-access-tokens", expire_access_tokens),
        web.get(p + "/oauth/issued", issued),
        web.get(p + "/oauth/grants", grants),
        web.get(p + "/sites", get_sites),
        web.put(p + "/sites", put_sites),
        web.post(p + "/seed", seed),
        web.get(p + "/clock", get_clock),
        web.post(p + "/clock/advance", advance_clock),
        web.get(p + "/calls", get_calls),
        web.delete(p + "/calls", clear_calls),
        web.post(p + "/faults", add_fault),
        web.get(p + "/faults", list_faults),
        web.delete(p + "/faults", clear_faults),
        web.delete(p + "/faults/{id}", delete_fault),
    ]
