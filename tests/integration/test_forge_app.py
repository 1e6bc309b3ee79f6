"""Forge Remote (issue 14 §2): the simulator plays Forge (tests/sim/forge.py) and invokes the
bridge's remote through the local gateway as a Forge app's lifecycle trigger, scheduled trigger
and admin page would, each request with a Forge Invocation Token and an app system token.

install -> app-link code -> link on the admin page -> discover -> publish -> create issues ->
uninstall, for Confluence and Jira; a publish without a valid app system token fails retryably
and works once the scheduled trigger brought a fresh one; FITs with a wrong aud, an unknown kid,
an expired exp, alg none or HS256 are refused with nothing stored.
"""

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from tests.sim.forge import DEFAULT_APP_ID

from . import jobs
from . import registration as reg

TASK = "10002"
HOUR = 3600
# The functions whose clock the expiry test moves with the simulator's.
SHIFTED = ("app-lifecycle", "publish-page", "connections")
PREFIX = "atlassian-bridge/"
# The FIT's context.siteUrl for the simulator's default site.
SITE_URL = "https://acme.atlassian.net"


def secret_name(installation_id: str) -> str:
    return f"{PREFIX}apps/forge/{hashlib.sha256(installation_id.encode()).hexdigest()[:32]}"


class Forge:
    def __init__(self, bridge):
        self.bridge = bridge

    def install(self, product: str) -> str:
        return self.bridge.sim("POST", "/_sim/forge/installations", {"product": product}).json()["installation_id"]

    def invoke(self, kind: str, installation_id: str, **kw) -> dict:
        path = {"link": "/forge/link", "scheduled": "/forge/scheduled"}.get(kind, "/forge/lifecycle")
        doc = {"remote": self.bridge.gw + path, "installation_id": installation_id, **kw}
        return self.bridge.sim("POST", f"/_sim/forge/invoke/{kind}", doc).json()

    def code(self, tenant: str, product: str) -> str:
        r = self.bridge.call("POST", f"/v1/tenants/{tenant}/connections/{product}/app-link", tenant)
        assert r.status_code == 200, r.text
        self.bridge.secrets_seen.append(r.json()["code"])
        return r.json()["code"]

    def installation_item(self, installation_id: str):
        ddb = self.bridge.stack.aws("dynamodb")
        out = ddb.get_item(TableName=self.bridge.stack.table_name, ConsistentRead=True,
                           Key={"pk": {"S": f"APP#forge#{installation_id}"}, "sk": {"S": "INSTALLATION"}})
        return out.get("Item")

    def secret(self, installation_id: str):
        sm = self.bridge.stack.aws("secretsmanager")
        try:
            return sm.get_secret_value(SecretId=secret_name(installation_id))["SecretString"]
        except sm.exceptions.ResourceNotFoundException:
            return None

    def linked(self, tenant: str, product: str) -> str:
        """A Forge installation on the default site, linked to the tenant's `product`."""
        installation = self.install(product)
        r = self.invoke("installed", installation)
        assert (r["status"], r["body"]) == (200, {"outcome": "installed"}), r
        r = self.invoke("link", installation, body={"code": self.code(tenant, product)})
        assert (r["status"], r["body"]) == (200, {"outcome": "linked"}), r
        return installation


@pytest.fixture
def forge(bridge):
    return Forge(bridge)


def routes(bridge):
    return [(c["route"], c["status"]) for c in reg.calls(bridge)]


def test_confluence_and_jira_through_forge_install_link_discover_publish_create_uninstall(bridge, forge):
    tenant = bridge.tenant()
    installs = {p: forge.linked(tenant, p) for p in ("confluence", "jira")}
    for product, installation in installs.items():
        view = bridge.connection(tenant, product).json()
        assert view["auth_type"] == "forge" and view["status"] == "connected", view
        assert view["site"]["cloud_id"] == reg.CLOUD_ID, view
        item = forge.installation_item(installation)
        assert item["status"]["S"] == "installed" and item["tenant"]["S"] == tenant, item
        assert forge.secret(installation) is not None

    # Discovery and both jobs go through the gateway with the app system token.
    bridge.sim("DELETE", "/_sim/calls")
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 200 and r.json()["items"], r.text
    assert routes(bridge) == [("GET /ex/jira/{cloudId}/rest/api/3/project/search", 200)]
    spaces = bridge.call("GET", f"/v1/tenants/{tenant}/confluence/spaces", tenant)
    assert spaces.status_code == 200 and spaces.json()["items"], spaces.text

    jobs.settings(bridge, tenant, "confluence", {"space_key": "SPA"})
    page = bridge.call("POST", f"/v1/tenants/{tenant}/pages", tenant, json_body=jobs.retrospective(),
                       headers={"Idempotency-Key": uuid.uuid4().hex})
    assert page.status_code == 200 and page.json()["state"] == "published", page.text
    # Links people open go to the site, not to the API gateway.
    assert page.json()["page_url"].startswith(SITE_URL + "/wiki/"), page.json()

    project = next(p["key"] for p in r.json()["items"] if p["key"] != "REQ")
    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK})
    created = bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant,
                          json_body={"action_items": [{"id": "f-1", "title": "Forge"}, {"id": "f-2", "title": "Two"}]},
                          headers={"Idempotency-Key": uuid.uuid4().hex})
    assert created.status_code == 200, created.text
    assert [x["status"] for x in created.json()["results"]] == ["created", "created"], created.text
    assert created.json()["results"][0]["url"].startswith(SITE_URL + "/browse/")
    assert not [c for c in routes(bridge) if c[0].startswith(("GET /site/", "POST /site/"))]

    # Uninstalled: the connection goes, the token is deleted, the record stays (for audit).
    for product, installation in installs.items():
        r = forge.invoke("uninstalled", installation)
        assert (r["status"], r["body"]) == (200, {"outcome": "uninstalled"}), r
        assert bridge.connection(tenant, product).status_code == 404
        assert forge.secret(installation) is None
        assert forge.installation_item(installation)["status"]["S"] == "uninstalled"
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_connected"), r.text


def test_a_publish_with_an_expired_app_system_token_is_retryable_until_the_scheduled_trigger_brings_one(bridge, forge):
    tenant = bridge.tenant()
    installation = forge.linked(tenant, "confluence")  # with a token valid for an hour
    jobs.settings(bridge, tenant, "confluence", {"space_key": "SPA"})
    # Two hours pass without an invocation (the simulator's and the functions' clocks together).
    bridge.sim("POST", "/_sim/clock/advance", {"seconds": 2 * HOUR})
    for function in SHIFTED:
        bridge.stack.set_function_env(function, {"BRIDGE_TEST_CLOCK_OFFSET_SECONDS": str(2 * HOUR)})
    try:
        bridge.sim("DELETE", "/_sim/calls")
        page = bridge.call("POST", f"/v1/tenants/{tenant}/pages", tenant, json_body=jobs.retrospective(),
                           headers={"Idempotency-Key": uuid.uuid4().hex})
        assert page.status_code == 503, page.text
        error = page.json()["error"]
        assert error["code"] == "upstream_unavailable", error
        assert "has not invoked us recently" in error["message"] and "scheduled trigger" in error["message"], error
        assert int(page.headers["Retry-After"]) > 0
        assert routes(bridge) == [], "nothing was sent to Atlassian with an expired token"
        # Still connected: an expired token is no refused credential.
        assert bridge.connection(tenant, "confluence").json()["status"] == "connected"

        r = forge.invoke("scheduled", installation, token_ttl=HOUR)
        assert (r["status"], r["body"]) == (200, {"outcome": "token_stored"}), r
        # A token that ends sooner than the one held does not replace it.
        r = forge.invoke("scheduled", installation, token_ttl=HOUR / 2)
        assert (r["status"], r["body"]) == (200, {"outcome": "token_kept"}), r
        page = bridge.call("POST", f"/v1/tenants/{tenant}/pages", tenant, json_body=jobs.retrospective(),
                           headers={"Idempotency-Key": uuid.uuid4().hex})
        assert page.status_code == 200 and page.json()["state"] == "published", page.text
    finally:
        for function in SHIFTED:
            bridge.stack.set_function_env(function, {"BRIDGE_TEST_CLOCK_OFFSET_SECONDS": None})


def test_a_token_refused_before_its_expiry_marks_the_connection_until_a_new_one_comes(bridge, forge):
    tenant = bridge.tenant()
    installation = forge.linked(tenant, "jira")
    assert bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant).status_code == 200
    # Atlassian stops accepting the token early (revoked); the persisting 401 is recorded.
    bridge.sim("POST", "/_sim/forge/tokens/expire", {"installation_id": installation})
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_credentials"), r.text
    assert bridge.connection(tenant, "jira").json()["status"] == "invalid_credentials"
    # The next scheduled trigger brings a token that lasts longer: connected again.
    r = forge.invoke("scheduled", installation, token_ttl=2 * HOUR)
    assert (r["status"], r["body"]) == (200, {"outcome": "token_stored"}), r
    assert bridge.connection(tenant, "jira").json()["status"] == "connected"
    assert bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant).status_code == 200


BAD_FITS = {
    "wrong_aud": ({"aud": "ari:cloud:ecosystem::app/someone-else"}, "wrong_audience"),
    "unknown_kid": ({"kid": "forge-sim-rogue"}, "unknown_key"),
    "expired": ({"exp_in": -120}, "expired"),
    "alg_none": ({"alg": "none"}, "wrong_algorithm"),
    "hs256": ({"alg": "HS256"}, "wrong_algorithm"),
    "wrong_iss": ({"iss": "forge/someone"}, "wrong_issuer"),
}


def refusals(bridge) -> list[dict]:
    """The app-lifecycle log's refusal lines."""
    path = Path(bridge.stack.logs_dir) / "app-lifecycle.log"
    lines = [json.loads(l) for l in path.read_text().splitlines() if l.startswith("{")]
    return [l for l in lines if l.get("message") == "Forge invocation refused"]


@pytest.mark.parametrize("case", sorted(BAD_FITS))
def test_a_bad_fit_is_refused_with_nothing_stored(bridge, forge, case):
    tenant = bridge.tenant()
    installation = forge.install("jira")
    code = forge.code(tenant, "jira")
    fit, reason = BAD_FITS[case]
    before = len(refusals(bridge))
    for kind, body in (("installed", None), ("scheduled", None), ("link", {"code": code})):
        r = forge.invoke(kind, installation, fit=fit, **({"body": body} if body else {}))
        assert r["status"] == 401, (kind, r)
        assert r["body"]["error"]["code"] == "invalid_app_token", (kind, r)
        assert r["content_type"].startswith("application/json")
    # One line per refusal, with the reason code only.
    logged = refusals(bridge)[before:]
    assert [l["reason"] for l in logged] == [reason] * 3, logged
    assert all(set(l) <= {"level", "message", "reason", "spans", "timestamp", "target"} for l in logged), logged
    assert forge.installation_item(installation) is None
    assert forge.secret(installation) is None
    assert bridge.connection(tenant, "jira").status_code == 404
    # The code was not used up by the refused link: a genuine one still links.
    r = forge.invoke("link", installation, body={"code": code})
    assert (r["status"], r["body"]) == (200, {"outcome": "linked"}), r


def test_a_rotated_key_verifies_and_a_withdrawn_one_does_not(bridge, forge):
    installation = forge.install("jira")
    assert forge.invoke("installed", installation)["status"] == 200
    bridge.sim("POST", "/_sim/forge/keys/rotate", {"keep_old": False})
    # A new instance of the function (cold start) fetches the JWKS with the new key.
    bridge.stack.recycle("app-lifecycle")
    assert forge.invoke("scheduled", installation)["status"] == 200


def test_without_a_forge_app_id_the_routes_are_not_configured(bridge, forge):
    installation = forge.install("jira")
    bridge.sim("PUT", "/_sim/forge/app", {"app_id": DEFAULT_APP_ID})
    stack = bridge.stack
    stack.set_function_env("app-lifecycle", {"BRIDGE_FORGE_APP_ID": None})
    try:
        r = forge.invoke("installed", installation)
        assert (r["status"], r["body"]["error"]["code"]) == (404, "app_not_configured"), r
    finally:
        stack.set_function_env("app-lifecycle", {"BRIDGE_FORGE_APP_ID": DEFAULT_APP_ID})
    assert forge.installation_item(installation) is None
