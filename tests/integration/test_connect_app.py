"""The Connect (and Connect on Forge) app end to end through the local gateway, against the
simulator's Connect host (tests/sim/connect.py): signed install → app-link code → the configure
page and its link request → discovery, a published page, created issues, all signed per request
with the installation's shared secret → uninstall. And what must be refused with nothing stored:
install JWTs from an unknown key, for another app (aud), expired, or replayed for another
clientKey; incoming HS256 tokens with a wrong qsh, a wrong secret, alg none, or expired."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.devstack import CONNECT_APP_KEY

from . import jobs

SPACE = "SPA"
TASK = "10002"


def descriptor_url(bridge) -> str:
    return bridge.gw + "/connect/atlassian-connect.json"


def install(bridge, product: str, **extra) -> dict:
    body = {"site": "acme", "product": product, "descriptor_url": descriptor_url(bridge), **extra}
    r = bridge.stack.sim("POST", "/_sim/connect/install", body)
    assert r.status_code == 200, r.text
    out = r.json()
    if out.get("shared_secret"):
        bridge.secrets_seen.append(out["shared_secret"])
    return out


def signed(bridge, client_key: str, method: str, path: str, body=None, **extra) -> dict:
    r = bridge.stack.sim("POST", "/_sim/connect/request",
                         {"client_key": client_key, "method": method, "path": path, "body": body, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def installation_item(bridge, client_key: str) -> dict | None:
    ddb = bridge.stack.aws("dynamodb")
    out = ddb.get_item(TableName=bridge.stack.table_name, ConsistentRead=True,
                       Key={"pk": {"S": f"APP#connect#{client_key}"}, "sk": {"S": "INSTALLATION"}})
    return out.get("Item")


def connect_secrets(bridge) -> dict[str, str]:
    sm = bridge.stack.aws("secretsmanager")
    out = {}
    for page in sm.get_paginator("list_secrets").paginate():
        for s in page["SecretList"]:
            if "/apps/connect/" in s["Name"]:
                out[s["Name"]] = sm.get_secret_value(SecretId=s["Name"])["SecretString"]
    return out


def link_code(bridge, tenant: str, product: str) -> str:
    r = bridge.call("POST", f"/v1/tenants/{tenant}/connections/{product}/app-link", tenant)
    assert r.status_code == 200, r.text
    code = r.json()["code"]
    bridge.secrets_seen.append(code)
    return code


def linked_tenant(bridge, product: str) -> tuple[str, dict]:
    """A tenant whose `product` connection is a fresh Connect installation."""
    tenant = bridge.tenant()
    installed = install(bridge, product)
    assert installed["status"] == 204, installed
    page = signed(bridge, installed["client_key"], "GET", "/connect/configure?lic=none&xdm_e=x", token_in="query")
    assert page["status"] == 200, page
    assert "text/html" in page["content_type"] and "/connect/link" in page["body"]
    code = link_code(bridge, tenant, product)
    linked = signed(bridge, installed["client_key"], "POST", "/connect/link", {"code": code}, variant="context")
    assert linked["status"] == 200, linked
    assert json.loads(linked["body"]) == {"status": "linked", "product": product}
    return tenant, installed


def test_the_descriptor_is_built_from_config(bridge):
    r = bridge.http.get(descriptor_url(bridge), timeout=30)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["key"] == CONNECT_APP_KEY and d["baseUrl"] == bridge.gw
    assert d["authentication"] == {"type": "jwt"}
    assert d["lifecycle"] == {"installed": "/connect/installed", "uninstalled": "/connect/uninstalled"}
    assert d["apiMigrations"]["signed-install"] is True
    assert d["scopes"] == ["READ", "WRITE", "DELETE"]
    assert d["modules"]["configurePage"]["url"] == "/connect/configure"


def test_confluence_install_link_discover_publish_uninstall(bridge):
    tenant, installed = linked_tenant(bridge, "confluence")
    client_key = installed["client_key"]
    assert installed["base_url"].endswith("/site/acme/wiki")
    view = bridge.connection(tenant, "confluence").json()
    assert view["auth_type"] == "connect" and view["status"] == "connected", view
    assert view["site"]["cloud_id"] == "11111111-1111-4111-8111-111111111111"
    # The secret holds the installation's shared secret, under the deployment's prefix.
    [(name, value)] = [(n, v) for n, v in connect_secrets(bridge).items() if installed["shared_secret"] in v]
    assert name.startswith("atlassian-bridge/apps/connect/")

    r = bridge.call("GET", f"/v1/tenants/{tenant}/confluence/spaces", tenant)
    assert r.status_code == 200, r.text
    assert any(s["key"] == SPACE for s in r.json()["items"])
    # Every request the bridge made to the site was JWT-signed (the sim verified each qsh).
    site_calls = [c for c in bridge.stack.sim("GET", "/_sim/calls").json()["calls"]
                  if c["path"].startswith("/site/acme/wiki/")]
    assert site_calls and all(c["status"] == 200 for c in site_calls), site_calls

    jobs.settings(bridge, tenant, "confluence", {"space_key": SPACE})
    r = jobs.publish(bridge, tenant, jobs.retrospective(title="Connect retro " + uuid.uuid4().hex[:6]))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "published" and r.json()["attachment_id"]

    r = bridge.call("POST", f"/v1/tenants/{tenant}/connections/confluence/verify", tenant)
    assert r.status_code == 200, r.text

    gone = install(bridge, "confluence", event="uninstalled")
    assert gone["status"] == 204, gone
    assert bridge.connection(tenant, "confluence").status_code == 404
    assert name not in connect_secrets(bridge)
    item = installation_item(bridge, client_key)
    assert item is not None and item["status"]["S"] == "uninstalled"
    r = bridge.call("GET", f"/v1/tenants/{tenant}/confluence/spaces", tenant)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_connected", r.text


def test_jira_install_link_discover_create_issues_reinstall_uninstall(bridge):
    tenant, installed = linked_tenant(bridge, "jira")
    client_key = installed["client_key"]
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 200, r.text
    project = next(p["key"] for p in r.json()["items"]
                   if p["key"] != "REQ" and not p.get("team_managed") and not p.get("archived"))
    r = bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/verify", tenant)
    assert r.status_code == 200, r.text
    # The app acts as its own user.
    assert r.json().get("acting_as") == "Atlassian Bridge", r.json()

    jobs.settings(bridge, tenant, "jira", {"project_key": project, "issue_type_id": TASK, "labels": ["retro"]})
    body = {"action_items": [{"id": f"c-{i}", "title": f"Connect item {i}"} for i in range(3)]}
    r = bridge.call("POST", f"/v1/tenants/{tenant}/issues", tenant, json_body=body,
                    headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["created"] * 3, r.json()

    # A reinstall brings a new shared secret: the next requests are signed with it.
    before = int(installation_item(bridge, client_key)["generation"]["N"])
    again = install(bridge, "jira")
    assert again["status"] == 204 and again["client_key"] == client_key
    assert int(installation_item(bridge, client_key)["generation"]["N"]) == before + 1
    assert any(again["shared_secret"] in v for v in connect_secrets(bridge).values())
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 200, r.text

    gone = install(bridge, "jira", event="uninstalled")
    assert gone["status"] == 204
    assert bridge.connection(tenant, "jira").status_code == 404
    assert not any(again["shared_secret"] in v for v in connect_secrets(bridge).values())
    assert installation_item(bridge, client_key)["status"]["S"] == "uninstalled"


@pytest.mark.parametrize("variant", ["unknown_key", "wrong_aud", "expired", "other_client_key"])
def test_a_bad_install_is_refused_and_nothing_is_stored(bridge, variant):
    extra = {"variant": variant, "client_key": "ck-" + uuid.uuid4().hex}
    if variant == "other_client_key":
        # A genuine install token of an installed site, replayed with another clientKey's payload.
        extra["replay_of"] = install(bridge, "jira")["client_key"]
    secrets_before = connect_secrets(bridge)
    out = install(bridge, "jira", **extra)
    assert out["status"] == 401, out
    assert json.loads(out["body"])["error"]["code"] == "invalid_app_token"
    assert installation_item(bridge, extra["client_key"]) is None
    assert connect_secrets(bridge).keys() == secrets_before.keys()
    assert out["shared_secret"] not in json.dumps(connect_secrets(bridge))


def test_install_keys_are_fetched_once_per_kid(bridge):
    bridge.stack.recycle("app-lifecycle")
    for _ in range(3):
        assert install(bridge, "confluence")["status"] == 204
    fetched = [c for c in bridge.stack.sim("GET", "/_sim/calls").json()["calls"]
               if c["path"].startswith("/connect-install-keys/")]
    assert len(fetched) == 1, fetched


@pytest.mark.parametrize("variant", ["wrong_qsh", "wrong_secret", "alg_none", "expired"])
def test_bad_incoming_tokens_are_refused_and_nothing_is_linked(bridge, variant):
    tenant = bridge.tenant()
    installed = install(bridge, "jira")
    code = link_code(bridge, tenant, "jira")
    page = signed(bridge, installed["client_key"], "GET", "/connect/configure", variant=variant, token_in="query")
    assert page["status"] == 401, page
    out = signed(bridge, installed["client_key"], "POST", "/connect/link", {"code": code}, variant=variant)
    assert out["status"] == 401, out
    assert json.loads(out["body"])["error"]["code"] == "invalid_app_token"
    assert bridge.connection(tenant, "jira").status_code == 404
    item = installation_item(bridge, installed["client_key"])
    assert "tenant" not in item
    # The code is still good for a genuine request.
    ok = signed(bridge, installed["client_key"], "POST", "/connect/link", {"code": code})
    assert ok["status"] == 200, ok


def test_the_configure_page_refuses_a_context_token(bridge):
    installed = install(bridge, "jira")
    page = signed(bridge, installed["client_key"], "GET", "/connect/configure", variant="context", token_in="query")
    assert page["status"] == 401, page


def test_a_site_answers_401_to_expired_or_wrong_qsh_app_tokens(bridge):
    """The sim's site side, as the app's requests meet it."""
    import time

    import jwt as pyjwt
    import requests

    installed = install(bridge, "jira")
    secret = installed["shared_secret"]
    url = bridge.stack.sim_url + "/site/acme/rest/api/3/myself"
    now = int(time.time())
    from tests.sim.connect import qsh
    good = {"iss": CONNECT_APP_KEY, "iat": now, "exp": now + 180, "qsh": qsh("GET", "/site/acme/rest/api/3/myself", "", "/site/acme")}
    for claims, status in [(good, 200), ({**good, "exp": now - 10}, 401),
                           ({**good, "qsh": qsh("GET", "/site/acme/rest/api/3/other", "", "/site/acme")}, 401)]:
        token = pyjwt.encode(claims, secret, algorithm="HS256")
        r = requests.get(url, headers={"Authorization": f"JWT {token}"}, timeout=10)
        assert r.status_code == status, (claims, r.text)


def test_unconfigured_connect_routes_answer_app_not_configured(bridge):
    bridge.stack.set_function_env("app-lifecycle", {"BRIDGE_CONNECT_APP_KEY": None})
    try:
        r = bridge.http.get(descriptor_url(bridge), timeout=30)
        assert r.status_code == 404 and r.json()["error"]["code"] == "app_not_configured", r.text
        r = bridge.http.post(bridge.gw + "/connect/installed", json={}, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["code"] == "app_not_configured", r.text
    finally:
        bridge.stack.set_function_env("app-lifecycle", {"BRIDGE_CONNECT_APP_KEY": CONNECT_APP_KEY})


def test_one_installation_serves_one_tenant_until_it_is_unlinked(bridge):
    first, installed = linked_tenant(bridge, "jira")
    client_key = installed["client_key"]
    second = bridge.tenant()
    code = link_code(bridge, second, "jira")
    taken = signed(bridge, client_key, "POST", "/connect/link", {"code": code}, variant="context")
    assert taken["status"] == 409 and json.loads(taken["body"])["error"]["code"] == "installation_linked", taken
    # A code for another product does not link a Jira installation.
    wrong = signed(bridge, client_key, "POST", "/connect/link", {"code": link_code(bridge, second, "confluence")})
    assert wrong["status"] == 400 and json.loads(wrong["body"])["error"]["code"] == "invalid_link_code", wrong

    # Unlinking keeps the installation and its secret for a later link.
    r = bridge.call("DELETE", f"/v1/tenants/{first}/connections/jira", first)
    assert r.status_code in (200, 204), r.text
    assert any(installed["shared_secret"] in v for v in connect_secrets(bridge).values())
    assert installation_item(bridge, client_key)["status"]["S"] == "installed"
    again = signed(bridge, client_key, "POST", "/connect/link", {"code": link_code(bridge, second, "jira")})
    assert again["status"] == 200, again
    r = bridge.call("GET", f"/v1/tenants/{second}/jira/projects", second)
    assert r.status_code == 200, r.text
