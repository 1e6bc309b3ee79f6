"""Token and Server/DC connections end to end (issue 3): Cloud API token, DC Basic, DC PAT and DC
OIDC client credentials (client_secret_basic and client_secret_post), for Jira and Confluence —
register, status, verify, refusals, atomic replacement, credentials that stop working, the OIDC
token cache, validation, and where the secret lives."""

import copy
import json
import re
from datetime import datetime

import pytest

from . import registration as reg
from .registration import DC_DISPLAY, DC_PASSWORD, DC_USER, OIDC_TOKEN_ROUTE

PRODUCTS = ["jira", "confluence"]
AUTH_TYPE = {"api_token": "api_token", "basic": "basic", "pat": "pat",
             "oidc_basic": "oidc_client_credentials", "oidc_post": "oidc_client_credentials"}
MYSELF = {"jira": "rest/api/2/myself", "confluence": "rest/api/user/current"}


def whoami_route(product: str, variant: str) -> str:
    if variant == "api_token":
        return ("GET /site/{siteName}/rest/api/3/myself" if product == "jira"
                else "GET /site/{siteName}/wiki/rest/api/user/current")
    return f"GET {reg.DC_BASE[product]}/{MYSELF[product]}"


def instant(rfc3339: str) -> datetime:
    """An RFC 3339 timestamp (any number of fraction digits, `Z` or an offset) as a datetime."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", rfc3339)
    assert m, rfc3339
    fraction = (m.group(2) or "0")[:6].ljust(6, "0")
    offset = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}.{fraction}{offset}")


def credentials_of(request_body: dict) -> list[str]:
    auth = request_body["auth"]
    return [auth[k] for k in ("password", "token", "client_secret") if k in auth]


def assert_nothing_stored(bridge, tenant, product):
    assert bridge.secret_names(tenant) == []
    assert bridge.items(tenant) == []
    r = bridge.connection(tenant, product)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_connected")


# --------------------------------------------------------------------------- the happy path
@pytest.mark.parametrize("variant", reg.VARIANTS)
@pytest.mark.parametrize("product", PRODUCTS)
def test_register_status_and_verify(bridge, product, variant):
    tenant = bridge.tenant()
    request_body = reg.body(bridge, product, variant)
    r = reg.put(bridge, tenant, product, request_body)
    assert r.status_code == 200, r.text
    view = r.json()
    deployment = "cloud" if variant == "api_token" else "datacenter"
    assert view["product"] == product and view["deployment"] == deployment
    assert view["auth_type"] == AUTH_TYPE[variant]
    assert view["status"] == "connected"
    assert view["acting_as"] == reg.expected_acting_as(variant)
    assert view["base_url"] == request_body["base_url"]          # context path (/jira, /confluence) kept
    assert view["last_verified_at"]
    # A Cloud site names its cloudId (from its /_edge/tenant_info); Server/DC has no site.
    assert (view["site"] or {}).get("cloud_id") == (reg.CLOUD_ID if variant == "api_token" else None)
    assert reg.no_credential_in(r.text, *credentials_of(request_body))

    status = bridge.connection(tenant, product)
    assert status.status_code == 200, status.text
    assert {k: status.json()[k] for k in ("status", "acting_as", "base_url", "auth_type", "deployment")} == \
        {k: view[k] for k in ("status", "acting_as", "base_url", "auth_type", "deployment")}
    assert reg.no_credential_in(status.text, *credentials_of(request_body))

    bridge.sim("DELETE", "/_sim/calls")
    verified = reg.verify(bridge, tenant, product)
    assert verified.status_code == 200, verified.text
    answer = verified.json()
    assert answer["acting_as"] == reg.expected_acting_as(variant)
    assert answer["connection"]["status"] == "connected"
    assert instant(answer["connection"]["last_verified_at"]) >= instant(view["last_verified_at"])
    assert reg.no_credential_in(verified.text, *credentials_of(request_body))
    # Verification went to the product at the registered base URL (context path included).
    whoami = reg.calls(bridge, whoami_route(product, variant))
    assert [c["status"] for c in whoami] == [200], reg.calls(bridge)


@pytest.mark.parametrize("variant", reg.VARIANTS)
def test_the_secret_is_in_secrets_manager_under_the_tenant_with_the_kms_key(bridge, variant):
    tenant = bridge.tenant()
    request_body = reg.body(bridge, "jira", variant)
    assert reg.put(bridge, tenant, "jira", request_body).status_code == 200
    [name] = bridge.secret_names(tenant)
    assert name.startswith(f"atlassian-bridge/tenants/{tenant}/")
    sm = bridge.stack.aws("secretsmanager")
    assert sm.describe_secret(SecretId=name)["KmsKeyId"] == bridge.stack.kms_key_id
    stored = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    for credential in credentials_of(request_body):
        assert credential in stored.values()
    # DynamoDB holds the connection but no credential (nor any OIDC access token).
    items = json.dumps(bridge.items(tenant))
    assert tenant in items
    issued = bridge.sim("GET", "/_sim/oauth/issued").json()
    for credential in credentials_of(request_body) + issued["oidc_access_tokens"]:
        assert credential not in items


def test_base_url_trailing_slash_is_dropped_and_context_path_kept(bridge):
    tenant = bridge.tenant()
    request_body = reg.body(bridge, "jira", "basic")
    request_body["base_url"] += "/"
    r = reg.put(bridge, tenant, "jira", request_body)
    assert r.status_code == 200, r.text
    assert r.json()["base_url"] == reg.dc_url(bridge, "jira")
    assert reg.verify(bridge, tenant, "jira").status_code == 200


def test_disconnect_removes_a_token_connection_and_its_secret(bridge):
    tenant = bridge.tenant()
    reg.register(bridge, tenant, "confluence", "pat")
    assert bridge.call("DELETE", f"/v1/tenants/{tenant}/connections/confluence", tenant).status_code == 204
    assert_nothing_stored(bridge, tenant, "confluence")


# --------------------------------------------------------------------------- refusals
def bad_body(bridge, product, variant) -> dict:
    body = reg.body(bridge, product, variant)
    auth = body["auth"]
    if variant == "api_token":
        auth["token"] = "ATATT3xFfGF0-not-the-right-token"
    elif variant == "basic":
        auth["password"] = "not-the-password"
    elif variant == "pat":
        auth["token"] = "NjE2NzM4-not-a-real-personal-access-token"
    else:
        auth["client_secret"] = "not-the-client-secret"
    bridge.secrets_seen += credentials_of(body)
    return body


@pytest.mark.parametrize("variant", reg.VARIANTS)
@pytest.mark.parametrize("product", PRODUCTS)
def test_bad_credentials_are_refused_and_nothing_is_stored(bridge, product, variant):
    tenant = bridge.tenant()
    request_body = bad_body(bridge, product, variant)
    r = reg.put(bridge, tenant, product, request_body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "credentials_rejected" and r.json()["error"]["message"]
    assert reg.no_credential_in(r.text, *credentials_of(request_body))
    assert_nothing_stored(bridge, tenant, product)


@pytest.mark.parametrize("variant", reg.VARIANTS)
@pytest.mark.parametrize("product", PRODUCTS)
def test_a_failed_replacement_keeps_the_working_connection(bridge, product, variant):
    tenant = bridge.tenant()
    before_view = reg.register(bridge, tenant, product, variant)
    before = reg.secret_values(bridge, tenant)
    assert len(before) == 1

    r = reg.put(bridge, tenant, product, bad_body(bridge, product, variant))
    assert (r.status_code, r.json()["error"]["code"]) == (422, "credentials_rejected"), r.text

    assert reg.secret_values(bridge, tenant) == before          # same secret, same value
    view = bridge.connection(tenant, product).json()
    assert view["status"] == "connected" and view["auth_type"] == before_view["auth_type"]
    verified = reg.verify(bridge, tenant, product)
    assert verified.status_code == 200, verified.text


@pytest.mark.parametrize("product", PRODUCTS)
def test_a_successful_replacement_switches_to_a_new_secret_and_removes_the_old(bridge, product):
    tenant = bridge.tenant()
    reg.register(bridge, tenant, product, "basic")
    [old] = bridge.secret_names(tenant)
    view = reg.register(bridge, tenant, product, "pat")
    assert view["auth_type"] == "pat"
    [new] = bridge.secret_names(tenant)
    assert new != old
    assert json.loads(reg.secret_values(bridge, tenant)[new])["type"] == "pat"
    assert reg.verify(bridge, tenant, product).status_code == 200


# --------------------------------------------------------------------------- credentials that stop working
def break_credentials(bridge, product, variant):
    if variant == "basic":
        bridge.secrets_seen.append("a-brand-new-password")
        bridge.sim("PUT", "/_sim/dc/users", [{"username": DC_USER, "password": "a-brand-new-password",
                                               "display_name": DC_DISPLAY, "email": "bridge-bot@corp.test"}])
    elif variant == "pat":
        bridge.sim("DELETE", "/_sim/dc/pats")
    elif variant == "api_token":
        bridge.secrets_seen.append("ATATT3xFfGF0-a-rotated-token")
        bridge.sim("PUT", "/_sim/cloud/api-tokens", [{"email": reg.API_EMAIL, "token": "ATATT3xFfGF0-a-rotated-token",
                                                      "site": reg.CLOUD_ID, "display_name": reg.API_DISPLAY}])
    else:
        # The provider's client secret rotated and every token it issued so far expired.
        method = "client_secret_basic" if variant == "oidc_basic" else "client_secret_post"
        reg.oidc_client(bridge, method, secret="a-rotated-client-secret")
        bridge.sim("POST", "/_sim/oidc/expire")


@pytest.mark.parametrize("variant", reg.VARIANTS)
@pytest.mark.parametrize("product", PRODUCTS)
def test_verify_after_the_credentials_stop_working_is_409_invalid_credentials(bridge, product, variant):
    tenant = bridge.tenant()
    reg.register(bridge, tenant, product, variant)
    assert reg.verify(bridge, tenant, product).status_code == 200
    break_credentials(bridge, product, variant)

    r = reg.verify(bridge, tenant, product)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_credentials"), r.text
    assert r.json()["error"]["message"]
    assert bridge.connection(tenant, product).json()["status"] == "invalid_credentials"


@pytest.mark.parametrize("product", PRODUCTS)
def test_password_change_then_new_credentials_heal_the_connection(bridge, product):
    tenant = bridge.tenant()
    reg.register(bridge, tenant, product, "basic")
    break_credentials(bridge, product, "basic")
    assert reg.verify(bridge, tenant, product).status_code == 409
    assert bridge.connection(tenant, product).json()["status"] == "invalid_credentials"

    healed = reg.body(bridge, product, "basic")
    healed["auth"]["password"] = "a-brand-new-password"
    r = reg.put(bridge, tenant, product, healed)
    assert r.status_code == 200 and r.json()["status"] == "connected", r.text
    assert reg.verify(bridge, tenant, product).status_code == 200
    assert len(bridge.secret_names(tenant)) == 1


# --------------------------------------------------------------------------- OIDC tokens
@pytest.mark.parametrize("variant", ["oidc_basic", "oidc_post"])
@pytest.mark.parametrize("product", PRODUCTS)
def test_oidc_token_is_cached_and_renewed_once_after_a_401(bridge, product, variant):
    tenant = bridge.tenant()
    bridge.stack.recycle("connections")        # one instance: every call meets the same cache
    reg.register(bridge, tenant, product, variant)
    # The provider saw exactly the registration's token request, authenticated as configured.
    assert [c["status"] for c in reg.calls(bridge, OIDC_TOKEN_ROUTE)] == [200]

    assert reg.verify(bridge, tenant, product).status_code == 200
    bridge.sim("DELETE", "/_sim/calls")
    # Cached across calls: a second verification fetches no token.
    second = reg.verify(bridge, tenant, product)
    assert second.status_code == 200, second.text
    assert reg.calls(bridge, OIDC_TOKEN_ROUTE) == []

    # The provider expires its tokens early: the product answers 401, one new token is fetched,
    # and the request is repeated with it.
    bridge.sim("POST", "/_sim/oidc/expire")
    bridge.sim("DELETE", "/_sim/calls")
    third = reg.verify(bridge, tenant, product)
    assert third.status_code == 200, third.text
    assert third.json()["acting_as"] == DC_DISPLAY
    assert [c["status"] for c in reg.calls(bridge, OIDC_TOKEN_ROUTE)] == [200]
    assert [c["status"] for c in reg.calls(bridge, whoami_route(product, variant))] == [401, 200]

    # And the renewed token is cached again.
    bridge.sim("DELETE", "/_sim/calls")
    assert reg.verify(bridge, tenant, product).status_code == 200
    assert reg.calls(bridge, OIDC_TOKEN_ROUTE) == []


def test_oidc_client_auth_method_must_match_the_providers(bridge):
    """The provider registered for client_secret_post refuses Basic client authentication: the
    bridge sends what the connection says, and the refusal is a credentials_rejected 422."""
    tenant = bridge.tenant()
    request_body = reg.body(bridge, "jira", "oidc_post")
    request_body["auth"]["client_auth"] = "client_secret_basic"
    r = reg.put(bridge, tenant, "jira", request_body)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "credentials_rejected"), r.text
    assert_nothing_stored(bridge, tenant, "jira")


# --------------------------------------------------------------------------- validation
def dc_basic(bridge) -> dict:
    return reg.body(bridge, "jira", "basic")


def edit(path: str, value):
    """A body edit: `path` is dotted; value DELETE removes the key."""
    def apply(body: dict) -> dict:
        body = copy.deepcopy(body)
        *parents, last = path.split(".")
        target = body
        for p in parents:
            target = target[p]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
        return body
    return apply


DELETE = object()
INVALID = [
    # unknown fields
    ("unknown top-level field", edit("colour", "red"), "invalid_request"),
    ("unknown auth field", edit("auth.domain", "CORP"), "invalid_request"),
    ("unknown auth type", edit("auth.type", "kerberos"), "invalid_request"),
    ("unknown deployment", edit("deployment", "onprem"), "invalid_request"),
    # missing and wrong types
    ("missing auth", edit("auth", DELETE), "invalid_request"),
    ("missing base_url", edit("base_url", DELETE), "invalid_request"),
    ("missing deployment", edit("deployment", DELETE), "invalid_request"),
    ("missing password", edit("auth.password", DELETE), "invalid_request"),
    ("deployment is a number", edit("deployment", 5), "invalid_request"),
    ("base_url is a number", edit("base_url", 42), "invalid_request"),
    ("auth is a string", edit("auth", "basic"), "invalid_request"),
    ("username is a number", edit("auth.username", 7), "invalid_request"),
    ("password is a list", edit("auth.password", ["x"]), "invalid_request"),
    ("body is a list", lambda b: [b], "invalid_request"),
    # empty values
    ("empty username", edit("auth.username", ""), "invalid_request"),
    ("blank username", edit("auth.username", "   "), "invalid_request"),
    ("empty password", edit("auth.password", ""), "invalid_request"),
    ("empty base_url", edit("base_url", ""), "invalid_request"),
    # bad URLs
    ("not a URL", edit("base_url", "not a url"), "invalid_request"),
    ("scheme only", edit("base_url", "https://"), "invalid_request"),
    ("relative URL", edit("base_url", "/dc/jira-dc/jira"), "invalid_request"),
    # credentials that do not fit the deployment
    ("api_token with datacenter", lambda b: {**b, "auth": {"type": "api_token", "email": "a@b.test",
                                                            "token": "tok-123456789"}},
     "auth_does_not_fit_deployment"),
    ("api_token with server", lambda b: {**b, "deployment": "server",
                                         "auth": {"type": "api_token", "email": "a@b.test", "token": "tok-123456789"}},
     "auth_does_not_fit_deployment"),
    ("basic with cloud", edit("deployment", "cloud"), "auth_does_not_fit_deployment"),
    ("pat with cloud", lambda b: {**b, "deployment": "cloud", "auth": {"type": "pat", "token": "pat-123456789"}},
     "auth_does_not_fit_deployment"),
    ("oidc with cloud", lambda b: {**b, "deployment": "cloud", "auth": {
        "type": "oidc_client_credentials", "token_url": "https://idp.example.com/token", "client_id": "c",
        "client_secret": "cs-123456789"}}, "auth_does_not_fit_deployment"),
]


@pytest.mark.parametrize("name,change,code", INVALID, ids=[i[0] for i in INVALID])
def test_invalid_bodies_are_400_with_a_message_and_nothing_is_stored(bridge, name, change, code):
    tenant = bridge.tenant()
    request_body = change(dc_basic(bridge))
    r = reg.put(bridge, tenant, "jira", request_body)
    assert r.status_code == 400, (name, r.status_code, r.text)
    error = r.json()["error"]
    assert error["code"] == code and error["message"], (name, error)
    assert DC_PASSWORD not in r.text
    assert_nothing_stored(bridge, tenant, "jira")
    assert reg.calls(bridge) == []          # refused before any request left


@pytest.mark.parametrize("suffix", ["?os_authType=basic", "?", "#top"])
def test_base_url_with_a_query_or_fragment_is_refused(bridge, suffix):
    tenant = bridge.tenant()
    request_body = dc_basic(bridge)
    request_body["base_url"] += suffix
    r = reg.put(bridge, tenant, "jira", request_body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request"), r.text
    assert "base_url" in r.json()["error"]["message"]
    assert_nothing_stored(bridge, tenant, "jira")
    assert reg.calls(bridge) == []


@pytest.mark.parametrize("field", ["auth.token", "auth.email"])
def test_empty_api_token_fields_are_refused(bridge, field):
    tenant = bridge.tenant()
    request_body = edit(field, "")(reg.body(bridge, "jira", "api_token"))
    r = reg.put(bridge, tenant, "jira", request_body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request"), r.text
    assert field in r.json()["error"]["message"]
    assert_nothing_stored(bridge, tenant, "jira")


@pytest.mark.parametrize("field", ["auth.token_url", "auth.client_id", "auth.client_secret"])
def test_empty_oidc_fields_are_refused(bridge, field):
    tenant = bridge.tenant()
    request_body = edit(field, "")(reg.body(bridge, "jira", "oidc_basic"))
    r = reg.put(bridge, tenant, "jira", request_body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request"), r.text
    assert field in r.json()["error"]["message"]
    assert_nothing_stored(bridge, tenant, "jira")


def test_empty_pat_is_refused(bridge):
    tenant = bridge.tenant()
    r = reg.put(bridge, tenant, "confluence", {"deployment": "datacenter", "base_url": reg.dc_url(bridge, "confluence"),
                                               "auth": {"type": "pat", "token": " "}})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request"), r.text
    assert_nothing_stored(bridge, tenant, "confluence")


@pytest.mark.parametrize("raw", [b"", b"{", b"null", b"\"x\""])
def test_a_body_that_is_not_a_json_object_is_refused(bridge, raw):
    tenant = bridge.tenant()
    r = bridge.call("PUT", f"/v1/tenants/{tenant}/connections/jira", tenant, data=raw,
                    headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request"), r.text
    assert_nothing_stored(bridge, tenant, "jira")


def test_an_unknown_product_is_refused(bridge):
    tenant = bridge.tenant()
    r = reg.put(bridge, tenant, "bitbucket", dc_basic(bridge))
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_product"), r.text
    assert bridge.secret_names(tenant) == [] and bridge.items(tenant) == []


# --------------------------------------------------------------------------- the product answers, but not as hoped
@pytest.mark.parametrize("variant", ["basic", "pat", "oidc_basic"])
@pytest.mark.parametrize("product", PRODUCTS)
def test_a_forbidden_user_is_422_insufficient_permissions(bridge, product, variant):
    tenant = bridge.tenant()
    request_body = reg.body(bridge, product, variant)
    bridge.sim("PUT", "/_sim/dc/users", [{"username": DC_USER, "password": DC_PASSWORD, "display_name": DC_DISPLAY,
                                           "forbidden": True}])
    r = reg.put(bridge, tenant, product, request_body)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "insufficient_permissions"), r.text
    assert r.json()["error"]["message"]
    assert_nothing_stored(bridge, tenant, product)


def not_the_product_urls(sim: str, product: str) -> list[tuple[str, str]]:
    other = "confluence" if product == "jira" else "jira"
    return [
        ("datacenter", f"{sim}/dc/{reg.DC_INSTANCE[product]}"),           # context path missing
        ("datacenter", f"{sim}/dc/{reg.DC_INSTANCE[product]}/wrong"),     # wrong context path
        ("datacenter", f"{sim}/nothing-here"),                             # no product at all
        ("datacenter", sim + reg.DC_BASE[other]),                          # the other product
    ]


@pytest.mark.parametrize("product", PRODUCTS)
def test_a_base_url_without_the_product_is_422_not_the_product(bridge, product):
    for deployment, url in not_the_product_urls(bridge.stack.sim_url, product):
        tenant = bridge.tenant()
        request_body = dc_basic(bridge)
        request_body["base_url"] = url
        r = reg.put(bridge, tenant, product, request_body)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["code"] == "not_the_product", (url, r.text)
        assert r.json()["error"]["message"]
        assert_nothing_stored(bridge, tenant, product)


@pytest.mark.parametrize("product", PRODUCTS)
def test_a_cloud_site_that_does_not_exist_is_422_not_the_product(bridge, product):
    tenant = bridge.tenant()
    request_body = reg.body(bridge, product, "api_token")
    request_body["base_url"] = bridge.stack.sim_url + "/site/no-such-site"
    r = reg.put(bridge, tenant, product, request_body)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "not_the_product"), r.text
    assert_nothing_stored(bridge, tenant, product)
