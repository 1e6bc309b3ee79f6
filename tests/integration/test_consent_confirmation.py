"""A consent is bound to the tenant whose user confirms it (README: "Why a consent is confirmed").

The OAuth state only proves which tenant *started* a consent. Without the confirmation, tenant A
could send its authorize_url to an admin of company V, and V's site would land in A's
connection. Here the callback only holds the grant; the SaaS backend confirms it with the
one-time code from the redirect, under the token of the tenant whose user is on that browser.
"""

import json
import time

from . import jobs

VICTIM_SITE = {"id": "77777777-0000-4000-8000-000000000007", "name": "victim-corp", "products": ["jira", "confluence"]}


def confirm_path(tenant, product):
    return f"/v1/tenants/{tenant}/connections/{product}/oauth/confirm"


def pending_items(bridge, tenant):
    ddb = bridge.stack.aws("dynamodb")
    out = ddb.query(TableName=bridge.stack.table_name, KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
                    ExpressionAttributeValues={":pk": {"S": "CONSENT_PENDING"}, ":t": {"S": f"TENANT#{tenant}#"}},
                    ConsistentRead=True)
    return out["Items"]


def victims_admin_consents(bridge):
    """From now on the consent is given by an admin whose account reaches only V's site (the
    simulator's site list gains V's site; the consent covers just it)."""
    sites = bridge.sim("GET", "/_sim/sites").json()
    bridge.sim("PUT", "/_sim/sites", sites + [VICTIM_SITE])
    bridge.sim("PUT", "/_sim/oauth/config", {"consent_sites": [VICTIM_SITE["id"]]})


def error(r):
    return r.status_code, r.json()["error"]["code"]


def test_a_forwarded_consent_ends_with_no_usable_connection(bridge):
    attacker, victim = bridge.tenant(), bridge.tenant()
    # Tenant A starts a consent and forwards the link; V's admin (whose account reaches V's
    # site) consents in their own browser, which lands on the SaaS's return URL.
    victims_admin_consents(bridge)
    landing = bridge.land(attacker, "atlassian")
    assert landing["status"] == "pending_confirmation" and len(landing["confirmation"]) >= 43
    code = landing["confirmation"]
    [held] = bridge.secret_names(attacker)

    # V's SaaS session holds the code, but under V's token there is no such consent.
    r = bridge.confirm(victim, "atlassian", code)
    assert error(r) == (400, "invalid_confirmation"), r.text
    assert "start the connection again" in r.json()["error"]["message"]
    assert code not in r.text
    for product in ("jira", "confluence"):
        assert bridge.connection(victim, product).status_code == 404
    assert bridge.secret_names(victim) == []

    # Tenant A, without the code, can see that a consent waits, but not whose site it reached,
    # and cannot use it for anything.
    view = bridge.connection(attacker, "jira").json()
    assert view["status"] == "pending_confirmation" and view["site"] is None and "candidate_sites" not in view
    assert "victim" not in json.dumps(view)
    verify = bridge.call("POST", f"/v1/tenants/{attacker}/connections/jira/verify", attacker)
    assert error(verify) == (409, "confirmation_required"), verify.text
    discover = bridge.call("GET", f"/v1/tenants/{attacker}/jira/projects", attacker)
    assert error(discover) == (409, "confirmation_required"), discover.text
    spaces = bridge.call("GET", f"/v1/tenants/{attacker}/confluence/spaces", attacker)
    assert error(spaces) == (409, "confirmation_required"), spaces.text
    # Publishing needs the space settings first, and those are checked against the connection.
    settings = bridge.call("PUT", f"/v1/tenants/{attacker}/settings/confluence", attacker,
                           json_body={"space_key": "SPA"})
    assert error(settings) == (409, "confirmation_required"), settings.text
    publish = jobs.publish(bridge, attacker, jobs.retrospective())
    assert publish.status_code in (404, 409), publish.text
    site = bridge.call("PUT", f"/v1/tenants/{attacker}/connections/atlassian/site", attacker,
                       json_body={"cloud_id": VICTIM_SITE["id"]})
    assert error(site) == (409, "confirmation_required"), site.text
    # Nothing reached V's site with the grant.
    calls = bridge.sim("GET", "/_sim/calls").json()["calls"]
    assert [c["path"] for c in calls if c["path"].startswith("/ex/")] == []

    # A guess ends the consent: the grant's secret is deleted, and the real code no longer works.
    guess = bridge.confirm(attacker, "atlassian", "A" * 43)
    assert error(guess) == (400, "invalid_confirmation")
    assert bridge.secret_names(attacker) == [] and pending_items(bridge, attacker) == []
    assert error(bridge.confirm(attacker, "atlassian", code)) == (400, "invalid_confirmation")
    for product in ("jira", "confluence"):
        assert bridge.connection(attacker, product).status_code == 404
    assert held not in bridge.secret_names(attacker)


def test_the_tenant_that_started_it_confirms_once_and_is_connected(bridge):
    tenant = bridge.tenant()
    landing = bridge.land(tenant, "jira")
    assert set(landing) == {"product", "status", "confirmation"}
    assert bridge.connection(tenant, "jira").json()["status"] == "pending_confirmation"
    # Only a digest of the code is stored.
    assert landing["confirmation"] not in json.dumps(pending_items(bridge, tenant))

    r = bridge.confirm(tenant, "jira", landing["confirmation"])
    assert r.status_code == 200, r.text
    [made] = r.json()["connections"]
    assert made["status"] == "connected" and made["site"]["name"] == "acme"
    assert bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/verify", tenant).status_code == 200
    assert pending_items(bridge, tenant) == []

    # Single use: the second try is refused and changes nothing.
    again = bridge.confirm(tenant, "jira", landing["confirmation"])
    assert error(again) == (400, "invalid_confirmation")
    assert bridge.connection(tenant, "jira").json()["status"] == "connected"
    assert bridge.secret_names(tenant) == [bridge.grant_secret(tenant, "jira")]


def test_a_pending_consent_leaves_the_working_connection_alone_until_confirmed(bridge):
    tenant = bridge.tenant()
    assert bridge.connect(tenant, "jira")["status"] == "connected"
    old = bridge.grant_secret(tenant, "jira")
    # The tenant's admin consents again, now to another site.
    victims_admin_consents(bridge)
    landing = bridge.land(tenant, "jira")

    # Until the confirm, the old grant works and is what the status shows.
    view = bridge.connection(tenant, "jira").json()
    assert view["status"] == "connected" and view["site"]["name"] == "acme"
    assert bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/verify", tenant).status_code == 200
    assert len(bridge.secret_names(tenant)) == 2

    r = bridge.confirm(tenant, "jira", landing["confirmation"])
    assert r.status_code == 200, r.text
    assert bridge.connection(tenant, "jira").json()["site"]["name"] == "victim-corp"
    # The replaced grant's secret is retired.
    [new] = bridge.secret_names(tenant)
    assert new != old


def test_a_late_confirmation_deletes_the_pending_grant_and_its_secret(bridge):
    tenant = bridge.tenant()
    stack = bridge.stack
    stack.set_function_env("oauth-callback", {"BRIDGE_OAUTH_CONFIRM_TTL_SECONDS": "1"})
    try:
        landing = bridge.land(tenant, "jira")
        [name] = bridge.secret_names(tenant)
        [item] = pending_items(bridge, tenant)
        expires_ms = int(item["expires_at_ms"]["N"])
        # The window is one second: let it pass, to the stored expiry (waiting for time, not
        # for another process).
        time.sleep(max(0.0, expires_ms / 1000 - time.time()) + 0.05)
        r = bridge.confirm(tenant, "jira", landing["confirmation"])
        assert error(r) == (410, "confirmation_expired"), r.text
        assert "start the connection again" in r.json()["error"]["message"]
    finally:
        stack.set_function_env("oauth-callback", {"BRIDGE_OAUTH_CONFIRM_TTL_SECONDS": None})
    sm = stack.aws("secretsmanager")
    assert bridge.secret_names(tenant) == []
    assert name not in [s["Name"] for s in sm.list_secrets()["SecretList"]]
    assert pending_items(bridge, tenant) == []
    assert bridge.connection(tenant, "jira").status_code == 404


def test_disconnect_discards_a_pending_consent_and_its_secret(bridge):
    tenant = bridge.tenant()
    landing = bridge.land(tenant, "confluence")
    assert len(bridge.secret_names(tenant)) == 1
    assert bridge.call("DELETE", f"/v1/tenants/{tenant}/connections/confluence", tenant).status_code == 204
    assert bridge.secret_names(tenant) == [] and pending_items(bridge, tenant) == []
    assert error(bridge.confirm(tenant, "confluence", landing["confirmation"])) == (400, "invalid_confirmation")


def test_a_malformed_confirmation_is_refused_without_echoing_it(bridge):
    tenant = bridge.tenant()
    for body in ({"confirmation": ""}, {"confirmation": "x" * 500}, {}, {"confirmation": "a", "extra": 1}):
        r = bridge.call("POST", confirm_path(tenant, "jira"), tenant, json_body=body)
        assert error(r) == (400, "invalid_request"), (body, r.text)
        assert "x" * 50 not in r.text
    r = bridge.call("POST", confirm_path(tenant, "bitbucket"), tenant, json_body={"confirmation": "abc"})
    assert error(r) == (400, "invalid_product")
    # The route is an admin's, like starting a consent.
    r = bridge.call("POST", confirm_path(tenant, "jira"), tenant, json_body={"confirmation": "abc"},
                    scopes="bridge:read bridge:publish")
    assert r.status_code == 403

