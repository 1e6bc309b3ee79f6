"""A customer's OAuth 2.0 / OIDC provider (client-credentials grant, RFC 6749 4.4), whose access
tokens the Data Center instances accept as a REST API auth add-on would.

    POST /oidc/{provider}/token                              the token endpoint
    GET  /oidc/{provider}/.well-known/openid-configuration   discovery (issuer, token_endpoint)

Token requests: `application/x-www-form-urlencoded` body, `grant_type=client_credentials`,
optional `scope` (space-separated) and `audience`. The client authenticates exactly as it is
registered: `client_secret_basic` (HTTP Basic, id and secret form-urlencoded first, RFC 6749
2.3.1) or `client_secret_post` (`client_id` + `client_secret` in the body). Another method, both
at once, none, an unknown client or a wrong secret -> 401 `{"error":"invalid_client"}` (with
`WWW-Authenticate: Basic` when Basic was tried). Other errors: 400 `invalid_request`,
`unsupported_grant_type`, `invalid_scope` (a scope outside the client's registered `scopes`),
`invalid_target` (an `audience` other than the client's registered one).

Success: `{"access_token","token_type":"Bearer","expires_in"[,"scope"]}`, `expires_in` from the
client's `expires_in` or the provider config (default 300 s, the sim's clock).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from aiohttp import web

from .cloud import const_eq
from .state import OidcToken, State
from .util import basic_credentials, json_response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _state(request: web.Request) -> State:
    return request.app["state"]


def _error(status: int, error: str, description: str, basic_tried: bool = False) -> web.Response:
    headers = dict(NO_STORE)
    if status == 401 and basic_tried:
        headers["WWW-Authenticate"] = 'Basic realm="oidc"'
    return json_response({"error": error, "error_description": description}, status=status,
                         headers=headers)


async def token(request: web.Request) -> web.Response:
    state = _state(request)
    provider = request.match_info["provider"]
    if not any(p == provider for p, _ in state.oidc_clients):
        return json_response({"error": "not_found", "error_description": "Unknown provider."},
                             status=404)
    raw = await request.read()
    # ---- no await below
    if request.content_type != "application/x-www-form-urlencoded":
        return _error(400, "invalid_request",
                      "The token request must be application/x-www-form-urlencoded.")
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return _error(400, "invalid_request", "Request body is not valid UTF-8.")
    body: dict[str, str] = {}
    for k, vals in parsed.items():
        if len(vals) > 1:
            return _error(400, "invalid_request", f"Parameter '{k}' is repeated.")
        body[k] = vals[0]
    grant_type = body.get("grant_type")
    request["grant_type"] = grant_type
    basic = basic_credentials(request, client_auth=True)
    basic_tried = basic is not None
    if basic is False:
        return _error(401, "invalid_client", "Client authentication failed.", basic_tried)
    if basic and "client_secret" in body:
        return _error(401, "invalid_client", "More than one client authentication method.", True)
    if basic:
        cid, secret = basic
        if body.get("client_id") not in (None, cid):
            return _error(401, "invalid_client", "Client authentication failed.", True)
        method = "client_secret_basic"
    else:
        cid, secret = body.get("client_id"), body.get("client_secret")
        method = "client_secret_post"
    if not cid or secret is None:
        return _error(401, "invalid_client", "Client authentication failed.", basic_tried)
    client = state.oidc_clients.get((provider, cid))
    if client is None or not const_eq(client.client_secret, secret) or client.auth_method != method:
        return _error(401, "invalid_client", "Client authentication failed.", basic_tried)
    if not grant_type:
        return _error(400, "invalid_request", "Missing grant_type.")
    if grant_type != "client_credentials":
        return _error(400, "unsupported_grant_type", "Only client_credentials is supported.")
    scopes = (body.get("scope") or "").split()
    if client.scopes is not None and not set(scopes) <= set(client.scopes):
        return _error(400, "invalid_scope", "A requested scope is not allowed for this client.")
    audience = body.get("audience")
    if client.audience is not None and audience != client.audience:
        return _error(400, "invalid_target", "The audience is not allowed for this client.")
    ttl = client.expires_in if client.expires_in is not None else int(state.oidc_config["expires_in"])
    now = state.now()
    value = state.new_secret("oidc_access_tokens", 40)
    state.oidc_tokens[value] = OidcToken(value=value, provider=provider, client_id=cid,
                                         acts_as=client.acts_as, instances=list(client.instances),
                                         issued_at=now, expires_at=now + ttl)
    out = {"access_token": value, "token_type": "Bearer", "expires_in": ttl}
    if scopes:
        out["scope"] = " ".join(scopes)
    return json_response(out, headers=NO_STORE)


async def discovery(request: web.Request) -> web.Response:
    state = _state(request)
    provider = request.match_info["provider"]
    if not any(p == provider for p, _ in state.oidc_clients):
        return json_response({"error": "not_found"}, status=404)
    issuer = f"{request.scheme}://{request.host}/oidc/{provider}"
    return json_response({
        "issuer": issuer,
        "token_endpoint": issuer + "/token",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["token"],
    })


def routes() -> list[web.RouteDef]:
    return [web.post("/oidc/{provider}/token", token),
            web.get("/oidc/{provider}/.well-known/openid-configuration", discovery)]
