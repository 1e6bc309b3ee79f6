"""A Connect host: Jira and Confluence Cloud installing a Connect (or Connect on Forge) app.

- Signed installs (https://developer.atlassian.com/cloud/jira/platform/understanding-jwt-for-connect-apps/,
  "Asymmetric JWT token"): the lifecycle callbacks carry an RS256 JWT whose `kid` names a public key
  on the install-key CDN, here `GET /connect-install-keys/{kid}` (PEM; 404 for any other kid), as
  `https://connect-install-keys.atlassian.com/{kid}` serves them. Claims: `iss` = clientKey, `aud` =
  the app's baseUrl, `qsh` of the callback request, `iat`, `exp` (+180 s).
- `POST /_sim/connect/install` fetches the app's descriptor from the URL it is given, and POSTs the
  `installed` (or `uninstalled`) payload (key, clientKey, sharedSecret, baseUrl — Confluence's ends in
  `/wiki` —, displayUrl, productType, cloudId, eventType) to the descriptor's lifecycle URL. A
  `variant` makes the bad installs the app must refuse: `unknown_key` (signed by a key the CDN does not
  serve), `wrong_aud`, `expired`, `other_client_key` (a genuine token of one clientKey with another
  clientKey's payload: a replay).
- `POST /_sim/connect/request` sends a request to the app signed like the product signs iframe and
  callback requests (HS256 with the installation's sharedSecret, `iss` = clientKey, `qsh` of the
  request), or a bad one (`wrong_qsh`, `wrong_secret`, `alg_none`, `expired`; `context` sends
  `qsh: "context-qsh"` as `AP.context.getToken()` does).
- Requests from the app to a site (`/site/{name}/...`) with `Authorization: JWT <token>`
  (`authenticate`): HS256 under the sharedSecret of the app's installation on that site and product,
  `iss` = the app key, `qsh` of the request with the product's context path stripped (`/wiki` for
  Confluence), `exp` — else 401 as the site answers it. They act as the app's own user (accountType
  `app`), with the descriptor's scopes (READ for reads, WRITE for writes, DELETE for deletes).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from urllib.parse import quote, unquote_plus, urlsplit

import aiohttp
import jwt as pyjwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .util import json_response, sim_error

TOKEN_LIFETIME = 180
KID = "sim-install-key-1"
UNKNOWN_KID = "sim-install-key-unpublished"
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_UNPUBLISHED = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = _KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
_NS = uuid.UUID("7d1c4a52-0b8e-4d55-9a3e-3c0f5c8a1b27")


# --------------------------------------------------------------------------- query string hash
def _enc(s: str) -> str:
    return quote(s, safe="-._~")


def canonical_query(raw: str) -> str:
    params: dict[str, list[str]] = {}
    for piece in raw.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        name, value = unquote_plus(name), unquote_plus(value)
        if name == "jwt":
            continue
        params.setdefault(name, []).append(value)
    return "&".join(f"{_enc(n)}={','.join(_enc(v) for v in sorted(vs))}" for n, vs in sorted(params.items()))


def canonical_uri(path: str, context: str) -> str:
    context = context.rstrip("/")
    if context and (path == context or path.startswith(context + "/")):
        path = path[len(context):]
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path.replace("&", "%26")


def qsh(method: str, path: str, query: str, context: str) -> str:
    canonical = f"{method.upper()}&{canonical_uri(path, context)}&{canonical_query(query)}"
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def context_of(base_url: str) -> str:
    return urlsplit(base_url).path.rstrip("/")


# --------------------------------------------------------------------------- state
def installs(state) -> dict[str, dict]:
    """clientKey -> installation, reset with the simulator's state."""
    if getattr(state, "connect_installations", None) is None:
        state.connect_installations = {}
    return state.connect_installations


def app_user(state, app_key: str, name: str) -> str:
    account_id = "557058:" + str(uuid.uuid5(_NS, "connect-app:" + app_key))
    state.users.setdefault(account_id, {
        "accountId": account_id, "accountType": "app", "emailAddress": f"{app_key}@connect.atlassian.com",
        "email_visible": False, "displayName": name, "publicName": name, "active": True,
        "timeZone": "UTC", "locale": "en_US"})
    return account_id


# --------------------------------------------------------------------------- install-key CDN
async def install_key(request: web.Request) -> web.Response:
    if request.match_info["kid"] != KID:
        return web.Response(status=404, text="Not Found")
    return web.Response(text=PUBLIC_PEM, content_type="application/x-pem-file")


# --------------------------------------------------------------------------- control: install
def _rs256(claims: dict, unknown_key: bool = False) -> str:
    key, kid = (_UNPUBLISHED, UNKNOWN_KID) if unknown_key else (_KEY, KID)
    return pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def control_install(request: web.Request) -> web.Response:
    state = request.app["state"]
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return sim_error("invalid JSON")
    site = state.site_by_name(body.get("site", ""))
    product = body.get("product")
    if site is None or product not in ("jira", "confluence"):
        return sim_error("site (a configured site's name) and product (jira | confluence) are required")
    event = body.get("event", "installed")
    variant = body.get("variant")
    async with aiohttp.ClientSession() as http:
        async with http.get(body["descriptor_url"]) as r:
            if r.status != 200:
                return sim_error(f"the descriptor answered {r.status}", 502)
            descriptor = await r.json(content_type=None)
    app_key, app_base = descriptor["key"], descriptor["baseUrl"].rstrip("/")
    site_base = f"{request.scheme}://{request.host}/site/{site.name}"
    base_url = site_base + ("/wiki" if product == "confluence" else "")
    existing = next((i for i in installs(state).values()
                     if i["app_key"] == app_key and i["site_id"] == site.id and i["product"] == product), None)
    client_key = body.get("client_key") or (existing["client_key"] if existing else str(uuid.uuid4()))
    shared_secret = state.new_secret("client_secrets", 32) if event == "installed" else None
    payload = {"key": app_key, "clientKey": client_key, "serverVersion": "100", "pluginsVersion": "1001.0.0",
               "baseUrl": base_url, "displayUrl": base_url, "productType": product,
               "description": f"Atlassian {product} at {site.name}", "eventType": event, "cloudId": site.id}
    if shared_secret:
        payload["sharedSecret"] = shared_secret
    lifecycle = descriptor.get("lifecycle", {}).get(event)
    if not lifecycle:
        return sim_error(f"the descriptor has no {event} lifecycle URL")
    url = app_base + lifecycle
    now = int(state.now())
    claims = {"iss": client_key, "aud": app_base, "iat": now, "exp": now + TOKEN_LIFETIME,
              "qsh": qsh("POST", urlsplit(url).path, urlsplit(url).query, context_of(app_base)),
              "sub": "557058:site-admin", "context": {}}
    if variant == "wrong_aud":
        claims["aud"] = "https://another-app.example.com"
    elif variant == "expired":
        claims["iat"], claims["exp"] = now - 600, now - 420
    elif variant == "other_client_key":
        # A genuine token of one installation, replayed with another clientKey's payload.
        claims["iss"] = body.get("replay_of") or str(uuid.uuid4())
    elif variant not in (None, "unknown_key"):
        return sim_error(f"unknown variant {variant!r}")
    token = _rs256(claims, unknown_key=variant == "unknown_key")
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=payload, headers={"Authorization": f"JWT {token}"}) as r:
            status, text = r.status, await r.text()
    if variant is None and event == "installed" and 200 <= status < 300:
        installs(state)[client_key] = {
            "client_key": client_key, "app_key": app_key, "app_base": app_base, "shared_secret": shared_secret,
            "site_id": site.id, "site": site.name, "product": product, "base_url": base_url, "installed": True,
            "scopes": [s.upper() for s in descriptor.get("scopes", [])],
            "account_id": app_user(state, app_key, descriptor.get("name") or app_key)}
    elif variant is None and event == "uninstalled" and client_key in installs(state):
        # The product forgets the app whatever the app answers.
        installs(state)[client_key]["installed"] = False
    return json_response({"status": status, "body": text, "client_key": client_key,
                          "shared_secret": shared_secret, "base_url": base_url})


# --------------------------------------------------------------------------- control: signed request
async def control_request(request: web.Request) -> web.Response:
    """Send a request to the app as the product does, signed for an installation."""
    state = request.app["state"]
    body = await request.json()
    inst = installs(state).get(body.get("client_key", ""))
    if inst is None:
        return sim_error("no such installation", 404)
    method = body.get("method", "GET").upper()
    path = body["path"]                        # relative to the app's baseUrl, with its query
    variant = body.get("variant")
    url = inst["app_base"] + path
    parts = urlsplit(url)
    now = int(state.now())
    claims = {"iss": inst["client_key"], "iat": now, "exp": now + TOKEN_LIFETIME,
              "qsh": qsh(method, parts.path, parts.query, context_of(inst["app_base"])),
              "sub": "557058:site-admin", "context": {"license": {"active": True}}}
    secret = inst["shared_secret"]
    if variant == "wrong_qsh":
        claims["qsh"] = qsh(method, parts.path + "/other", parts.query, context_of(inst["app_base"]))
    elif variant == "context":
        claims["qsh"] = "context-qsh"
    elif variant == "expired":
        claims["iat"], claims["exp"] = now - 600, now - 420
    elif variant == "wrong_secret":
        secret = "not-the-installation-secret-" + "x" * 16
    if variant == "alg_none":
        token = pyjwt.encode(claims, None, algorithm="none")
    elif variant not in (None, "wrong_qsh", "context", "expired", "wrong_secret"):
        return sim_error(f"unknown variant {variant!r}")
    else:
        token = pyjwt.encode(claims, secret, algorithm="HS256")
    headers = {}
    if body.get("token_in") == "query":
        url += ("&" if parts.query else "?") + "jwt=" + token
    else:
        headers["Authorization"] = f"JWT {token}"
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url, json=body.get("body"), headers=headers) as r:
            return json_response({"status": r.status, "body": await r.text(),
                                  "content_type": r.headers.get("Content-Type", "")})


async def control_installations(request: web.Request) -> web.Response:
    return json_response({"installations": list(installs(request.app["state"]).values())})


# --------------------------------------------------------------------------- incoming app requests
REQUIRED_SCOPE = {"GET": "READ", "HEAD": "READ", "OPTIONS": "READ", "POST": "WRITE", "PUT": "WRITE",
                  "PATCH": "WRITE", "DELETE": "DELETE"}
IMPLIED = {"READ": {"READ"}, "WRITE": {"READ", "WRITE"}, "DELETE": {"READ", "WRITE", "DELETE"},
           "PROJECT_ADMIN": {"READ", "WRITE", "PROJECT_ADMIN"},
           "ADMIN": {"READ", "WRITE", "DELETE", "PROJECT_ADMIN", "ADMIN"}}


def authenticate(request: web.Request, state, site, product: str) -> tuple[dict | None, str | None]:
    """(installation, None) for a valid `Authorization: JWT` of an app installed on this site and
    product, else (None, reason). Reasons are the sim's own (logged, never the token)."""
    token = request.headers.get("Authorization", "")[4:].strip()
    try:
        header = pyjwt.get_unverified_header(token)
        unverified = pyjwt.decode(token, options={"verify_signature": False})
    except pyjwt.PyJWTError:
        return None, "malformed"
    if header.get("alg") != "HS256":
        return None, "wrong_algorithm"
    inst = next((i for i in installs(state).values() if i["installed"] and i["app_key"] == unverified.get("iss")
                 and i["site_id"] == site.id and i["product"] == product), None)
    if inst is None:
        return None, "not_installed"
    try:
        claims = pyjwt.decode(token, inst["shared_secret"], algorithms=["HS256"],
                              options={"require": ["iss", "iat", "exp", "qsh"], "verify_aud": False})
    except pyjwt.ExpiredSignatureError:
        return None, "expired"
    except pyjwt.PyJWTError:
        return None, "bad_signature"
    raw_path, _, raw_query = request.raw_path.partition("?")
    if claims["qsh"] != qsh(request.method, raw_path, raw_query, context_of(inst["base_url"])):
        return None, "qsh_mismatch"
    needed = REQUIRED_SCOPE.get(request.method.upper(), "ADMIN")
    if not any(needed in IMPLIED.get(s, {s}) for s in inst["scopes"]):
        return None, "scope"
    return inst, None


def routes() -> list[web.RouteDef]:
    return [web.get("/connect-install-keys/{kid}", install_key),
            web.post("/_sim/connect/install", control_install),
            web.post("/_sim/connect/request", control_request),
            web.get("/_sim/connect/installations", control_installations)]
