"""Forge: the platform side of a Forge app whose remote is the bridge.

- a JWKS (`GET /forge/.well-known/jwks.json`, Forge's is
  `https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json`) with the simulator's own
  RS256 keys, rotated by `POST /_sim/forge/keys/rotate`;
- Forge Invocation Tokens minted with the documented claims (`iss` `forge/invocation-token`,
  `aud` the app id, `app.installationId`, `app.apiBaseUrl`, `context.cloudId`, `exp` a minute
  ahead), see developer.atlassian.com/platform/forge/forge-remote-invocation-contract;
- app system tokens (`x-forge-oauth-system`): JWT-shaped, expiring (`exp`, on the sim clock),
  accepted by the gateway `/ex/{product}/{cloudId}/...` for the installation's site and product
  with the app's scopes (cloud.py asks `system_token`), as the bot account of the app;
- control endpoints that invoke the remote as Forge would: `POST /_sim/forge/invoke/{kind}` with
  `kind` one of installed, upgraded, uninstalled (the lifecycle trigger), scheduled (the
  scheduled trigger), link (the admin page's `invokeRemote`), or any other event name.

Control API:
  PUT  /_sim/forge/app            {"app_id"?, "scopes"?}: the app (defaults below)
  GET  /_sim/forge/app            the app, its installations, its published key ids
  POST /_sim/forge/installations  {"product", "cloud_id"?}: a new installation -> {"installation_id"}
  POST /_sim/forge/keys/rotate    {"keep_old"?: true}: a new signing key (the old one stays
                                  published unless keep_old is false)
  POST /_sim/forge/invoke/{kind}  {"remote": URL, "installation_id", "body"?, "token_ttl"?: s,
                                  "system_token"?: true, "fit"?: {"aud", "iss", "exp_in", "kid",
                                  "alg": "none" | "HS256", "claims": {...}}}
                                  -> {"status", "body", "system_token_expires_at"}
  POST /_sim/forge/tokens/expire  {"installation_id"?}: every (or that installation's) app system
                                  token stops working now
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .util import json_response, sim_error

DEFAULT_APP_ID = "ari:cloud:ecosystem::app/5a6b0f3c-bridge-sim-forge-app"
ISSUER = "forge/invocation-token"
FIT_LIFETIME_SECONDS = 60
DEFAULT_TOKEN_TTL_SECONDS = 3600
LIFECYCLE_EVENTS = {"installed": "avi:forge:installed:app", "upgraded": "avi:forge:upgraded:app",
                    "uninstalled": "avi:forge:uninstalled:app"}
APP_BOT_EMAIL = "bridge-forge-app@connect.atlassian.com"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _uint(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass
class Key:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict:
        pub = self.private.public_key().public_numbers()
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                "n": _uint(pub.n), "e": _uint(pub.e)}

    def sign(self, signed: bytes) -> bytes:
        return self.private.sign(signed, padding.PKCS1v15(), hashes.SHA256())

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def new_key() -> Key:
    return Key(kid=f"forge-sim-{secrets.token_hex(6)}",
               private=rsa.generate_private_key(public_exponent=65537, key_size=2048))


@dataclass
class Installation:
    id: str
    product: str
    cloud_id: str


@dataclass
class SystemToken:
    value: str
    installation_id: str
    product: str
    cloud_id: str
    expires_at: float


@dataclass
class ForgeState:
    app_id: str = DEFAULT_APP_ID
    scopes: list[str] | None = None          # None: the OAuth client's scopes
    keys: list[Key] = field(default_factory=list)   # published; the last one signs
    installations: dict[str, Installation] = field(default_factory=dict)
    tokens: dict[str, SystemToken] = field(default_factory=dict)
    bot_account_id: str | None = None

    @property
    def signing(self) -> Key:
        if not self.keys:
            self.keys.append(new_key())
        return self.keys[-1]


def forge_state(state) -> ForgeState:
    fs = getattr(state, "forge", None)
    if fs is None:
        fs = ForgeState()
        state.forge = fs
    return fs


def jws(header: dict, claims: dict, key: Key | None) -> str:
    signed = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if header.get("alg") == "none" or key is None:
        return signed + "."
    if header.get("alg") == "HS256":
        # the classic confusion: HMAC keyed with the public key
        mac = hmac.new(key.public_pem(), signed.encode(), hashlib.sha256).digest()
        return f"{signed}.{b64url(mac)}"
    return f"{signed}.{b64url(key.sign(signed.encode()))}"


def _app_scopes(state, fs: ForgeState) -> list[str]:
    if fs.scopes is not None:
        return list(fs.scopes)
    client = next(iter(state.clients.values()), None)
    return list(client.scopes or []) if client is not None else []


def _bot(state, fs: ForgeState) -> str:
    """The app's bot account (an `app` account in the site's directory)."""
    from . import data
    if fs.bot_account_id is None or fs.bot_account_id not in state.users:
        account = data.cloud_account_for_email(APP_BOT_EMAIL, "Bridge (Forge app)")
        account["accountType"] = "app"
        state.users[account["accountId"]] = account
        fs.bot_account_id = account["accountId"]
    return fs.bot_account_id


def system_token(request: web.Request):
    """The app system token behind a valid, unexpired Bearer, or None (for cloud.gateway)."""
    state = request.app["state"]
    fs = getattr(state, "forge", None)
    if fs is None:
        return None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    tok = fs.tokens.get(value.strip())
    if tok is None or tok.expires_at <= state.now():
        return None
    if tok.installation_id not in fs.installations:
        return None  # uninstalled: its tokens stop working
    return tok, _app_scopes(state, fs), _bot(state, fs)


def mint_system_token(state, fs: ForgeState, inst: Installation, ttl: float) -> SystemToken:
    now = state.now()
    claims = {"iss": "forge/app-system-token", "aud": fs.app_id, "sub": _bot(state, fs),
              "iat": int(now), "exp": int(now + ttl), "jti": str(uuid.uuid4()),
              "installationId": inst.id, "cloudId": inst.cloud_id}
    value = jws({"alg": "RS256", "kid": fs.signing.kid}, claims, fs.signing)
    state.issued.setdefault("forge_system_tokens", [])
    state._remember("forge_system_tokens", value)
    tok = SystemToken(value=value, installation_id=inst.id, product=inst.product,
                      cloud_id=inst.cloud_id, expires_at=now + ttl)
    fs.tokens[value] = tok
    return tok


def mint_fit(request: web.Request, fs: ForgeState, inst: Installation, module_key: str,
             overrides: dict, principal: str | None) -> str:
    state = request.app["state"]
    now = int(state.now())
    site = state.sites.get(inst.cloud_id)
    base = f"{request.scheme}://{request.host}"
    claims = {
        "iss": overrides.get("iss", ISSUER), "aud": overrides.get("aud", fs.app_id),
        "iat": now, "nbf": now, "exp": now + int(overrides.get("exp_in", FIT_LIFETIME_SECONDS)),
        "jti": str(uuid.uuid4()),
        "app": {"id": fs.app_id, "version": "1", "installationId": inst.id,
                "apiBaseUrl": f"{base}/ex/{inst.product}/{inst.cloud_id}",
                "environment": {"type": "PRODUCTION", "id": "ari:cloud:ecosystem::environment/sim"},
                "module": {"type": "core:endpoint", "key": module_key}},
        "context": {"cloudId": inst.cloud_id, **({"siteUrl": site.url} if site else {})},
    }
    if principal:
        claims["principal"] = principal
    claims.update(overrides.get("claims") or {})
    key = fs.signing
    kid = overrides.get("kid", key.kid)
    if "kid" in overrides and overrides["kid"] not in {k.kid for k in fs.keys}:
        key = new_key()  # a key Forge does not publish
    header = {"alg": overrides.get("alg", "RS256"), "kid": kid, "typ": "JWT"}
    token = jws(header, claims, key)
    state.issued.setdefault("forge_fits", [])
    state._remember("forge_fits", token)
    return token


# ---- control ----------------------------------------------------------------------------
async def _body(request: web.Request) -> dict:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text=json.dumps({"error": "invalid JSON"}),
                                 content_type="application/json") from None
    if not isinstance(doc, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "expected a JSON object"}),
                                 content_type="application/json")
    return doc


async def get_app(request):
    state = request.app["state"]
    fs = forge_state(state)
    return json_response({"app_id": fs.app_id, "scopes": _app_scopes(state, fs),
                          "keys": [k.kid for k in fs.keys] or [fs.signing.kid],
                          "installations": [vars(i) for i in fs.installations.values()]})


async def put_app(request):
    doc = await _body(request)
    fs = forge_state(request.app["state"])
    if "app_id" in doc:
        fs.app_id = str(doc["app_id"])
    if "scopes" in doc:
        fs.scopes = None if doc["scopes"] is None else [str(s) for s in doc["scopes"]]
    return await get_app(request)


async def add_installation(request):
    state = request.app["state"]
    doc = await _body(request)
    product = doc.get("product")
    if product not in ("jira", "confluence"):
        return sim_error("product must be jira or confluence")
    cloud_id = str(doc.get("cloud_id") or next(iter(state.sites)))
    if cloud_id not in state.sites:
        return sim_error("no such site")
    fs = forge_state(state)
    inst = Installation(id=f"ari:cloud:ecosystem::installation/{uuid.uuid4()}", product=product,
                        cloud_id=cloud_id)
    fs.installations[inst.id] = inst
    return json_response({"installation_id": inst.id, "product": product, "cloud_id": cloud_id})


async def rotate_keys(request):
    doc = await _body(request)
    fs = forge_state(request.app["state"])
    old = fs.signing
    fs.keys = ([old] if doc.get("keep_old", True) else []) + [new_key()]
    return json_response({"signing": fs.signing.kid, "published": [k.kid for k in fs.keys]})


async def expire_tokens(request):
    state = request.app["state"]
    doc = await _body(request)
    fs = forge_state(state)
    for tok in fs.tokens.values():
        if doc.get("installation_id") in (None, tok.installation_id):
            tok.expires_at = min(tok.expires_at, state.now())
    return json_response({"ok": True})


async def invoke(request):
    """Invokes the remote as Forge would: a FIT in Authorization, an app system token in
    x-forge-oauth-system, the lifecycle event / trigger / invokeRemote body."""
    state = request.app["state"]
    fs = forge_state(state)
    kind = request.match_info["kind"]
    doc = await _body(request)
    remote = doc.get("remote")
    inst = fs.installations.get(str(doc.get("installation_id")))
    if not isinstance(remote, str) or inst is None:
        return sim_error("remote (URL) and a known installation_id are required")
    principal = None
    if kind in LIFECYCLE_EVENTS:
        body = {"eventType": LIFECYCLE_EVENTS[kind], "id": inst.id,
                "installerAccountId": state.current_account_id,
                "app": {"id": fs.app_id, "version": "1"},
                "environment": {"id": "ari:cloud:ecosystem::environment/sim"},
                "context": {"cloudId": inst.cloud_id}}
        module_key = "bridge-lifecycle"
    elif kind == "scheduled":
        body = {"context": {"cloudId": inst.cloud_id}}
        module_key = "bridge-keep-token"
    elif kind == "link":
        body = {}
        module_key = "bridge-admin-page"
        principal = state.current_account_id
    else:
        body = {"eventType": kind}
        module_key = "bridge-events"
    body.update(doc.get("body") or {})
    fit = mint_fit(request, fs, inst, module_key, doc.get("fit") or {}, principal)
    headers = {"Authorization": f"Bearer {fit}", "Content-Type": "application/json"}
    expires_at = None
    if doc.get("system_token", True):
        tok = mint_system_token(state, fs, inst, float(doc.get("token_ttl", DEFAULT_TOKEN_TTL_SECONDS)))
        headers["x-forge-oauth-system"] = tok.value
        expires_at = tok.expires_at
    # Forge's timeouts: 25 s for invokeRemote, 5 s for events and triggers.
    timeout = 25 if kind == "link" else 5
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(remote, data=json.dumps(body), headers=headers) as resp:
            text = await resp.text()
            try:
                answer = json.loads(text)
            except json.JSONDecodeError:
                answer = text
            if kind == "uninstalled" and resp.status < 300:
                fs.installations.pop(inst.id, None)
            return json_response({"status": resp.status, "body": answer,
                                  "content_type": resp.headers.get("Content-Type"),
                                  "system_token_expires_at": expires_at})


# ---- platform ---------------------------------------------------------------------------
async def jwks(request):
    fs = forge_state(request.app["state"])
    fs.signing  # noqa: B018  (a first key, when none yet)
    return json_response({"keys": [k.jwk() for k in fs.keys]})


def routes() -> list[web.RouteDef]:
    p = "/_sim/forge"
    return [
        web.get("/forge/.well-known/jwks.json", jwks),
        web.get(p + "/app", get_app),
        web.put(p + "/app", put_app),
        web.post(p + "/installations", add_installation),
        web.post(p + "/keys/rotate", rotate_keys),
        web.post(p + "/tokens/expire", expire_tokens),
        web.post(p + "/invoke/{kind}", invoke),
    ]
