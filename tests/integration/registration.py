"""Helpers for token and Server/DC connections: the simulator's base URLs, its default
credentials, and `PUT .../connections/{product}` bodies for every auth variant. Every credential
a helper sends is added to `bridge.secrets_seen`, so the per-test log scan looks for it."""

from __future__ import annotations

CLOUD_ID = "11111111-1111-4111-8111-111111111111"
DC_BASE = {"jira": "/dc/jira-dc/jira", "confluence": "/dc/conf-dc/confluence"}
DC_INSTANCE = {"jira": "jira-dc", "confluence": "conf-dc"}
DC_USER, DC_PASSWORD, DC_DISPLAY = "bridge-bot", "s3cret-pass", "Bridge Bot"
API_EMAIL, API_TOKEN, API_DISPLAY = "admin@acme.test", "ATATT3xFfGF0-sim-acme-admin-token", "Acme Admin"
OIDC_CLIENT, OIDC_SECRET = "bridge-dc-client", "sim-oidc-secret"
OIDC_TOKEN_ROUTE = "POST /oidc/{provider}/token"

VARIANTS = ["api_token", "basic", "pat", "oidc_basic", "oidc_post"]


def site_url(bridge) -> str:
    return bridge.stack.sim_url + "/site/acme"


def dc_url(bridge, product: str) -> str:
    return bridge.stack.sim_url + DC_BASE[product]


def token_url(bridge) -> str:
    return bridge.stack.sim_url + "/oidc/corp/token"


def create_pat(bridge, product: str, user: str = DC_USER) -> str:
    token = bridge.sim("POST", "/_sim/dc/pats", {"instance": DC_INSTANCE[product], "user": user}).json()["token"]
    bridge.secrets_seen.append(token)
    return token


def oidc_client(bridge, method: str, secret: str = OIDC_SECRET, **extra) -> None:
    """(Re-)registers the `corp` provider's client with the given client authentication method."""
    bridge.secrets_seen.append(secret)
    bridge.sim("PUT", "/_sim/oidc/clients", [{
        "provider": "corp", "client_id": OIDC_CLIENT, "client_secret": secret, "auth_method": method,
        "acts_as": DC_USER, "instances": ["jira-dc", "conf-dc"], **extra}])


def body(bridge, product: str, variant: str) -> dict:
    """A valid registration body for the variant (creating the PAT or OIDC client it needs)."""
    if variant == "api_token":
        bridge.secrets_seen.append(API_TOKEN)
        return {"deployment": "cloud", "base_url": site_url(bridge),
                "auth": {"type": "api_token", "email": API_EMAIL, "token": API_TOKEN}}
    if variant == "basic":
        bridge.secrets_seen.append(DC_PASSWORD)
        return {"deployment": "datacenter", "base_url": dc_url(bridge, product),
                "auth": {"type": "basic", "username": DC_USER, "password": DC_PASSWORD}}
    if variant == "pat":
        return {"deployment": "datacenter", "base_url": dc_url(bridge, product),
                "auth": {"type": "pat", "token": create_pat(bridge, product)}}
    if variant in ("oidc_basic", "oidc_post"):
        method = "client_secret_basic" if variant == "oidc_basic" else "client_secret_post"
        oidc_client(bridge, method)
        return {"deployment": "datacenter", "base_url": dc_url(bridge, product),
                "auth": {"type": "oidc_client_credentials", "token_url": token_url(bridge),
                         "client_id": OIDC_CLIENT, "client_secret": OIDC_SECRET, "client_auth": method}}
    raise ValueError(variant)


def expected_acting_as(variant: str) -> str:
    return API_DISPLAY if variant == "api_token" else DC_DISPLAY


def put(bridge, tenant: str, product: str, request_body):
    for value in _credential_values(request_body):
        bridge.secrets_seen.append(value)
    return bridge.call("PUT", f"/v1/tenants/{tenant}/connections/{product}", tenant, json_body=request_body)


def register(bridge, tenant: str, product: str, variant: str) -> dict:
    r = put(bridge, tenant, product, body(bridge, product, variant))
    assert r.status_code == 200, r.text
    return r.json()


def verify(bridge, tenant: str, product: str):
    return bridge.call("POST", f"/v1/tenants/{tenant}/connections/{product}/verify", tenant)


def calls(bridge, route: str | None = None) -> list[dict]:
    return [c for c in bridge.sim("GET", "/_sim/calls").json()["calls"] if route is None or c["route"] == route]


def secret_values(bridge, tenant: str) -> dict[str, str]:
    """Every secret of the tenant: name -> SecretString."""
    sm = bridge.stack.aws("secretsmanager")
    return {n: sm.get_secret_value(SecretId=n)["SecretString"] for n in bridge.secret_names(tenant)}


def _credential_values(value) -> list[str]:
    """The credential strings inside a request body (to scan the logs for them)."""
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("password", "token", "client_secret") and isinstance(v, str):
                out.append(v)
            else:
                out += _credential_values(v)
    elif isinstance(value, list):
        for v in value:
            out += _credential_values(v)
    return out


def no_credential_in(text: str, *credentials: str) -> bool:
    return not any(c and c in text for c in credentials)

