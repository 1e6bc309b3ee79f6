"""The Cloud OAuth 2.0 (3LO) connect flow end to end: start → authorize → callback → status."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import RETURN_URL, query

JIRA_SCOPES = {"read:jira-work", "write:jira-work", "read:jira-user"}
CONFLUENCE_SCOPES = {"read:space:confluence", "read:page:confluence", "write:page:confluence", "write:confluence-file"}


def test_start_builds_atlassians_consent_url(bridge):
    tenant = bridge.tenant()
    url = bridge.start(tenant, "atlassian")
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert url.startswith(bridge.stack.sim_url + "/authorize?")
    assert params["audience"] == "api.atlassian.com"
    assert params["client_id"] == "bridge-local-client"
    assert params["response_type"] == "code"
    assert params["prompt"] == "consent"
    assert params["redirect_uri"] == bridge.gw + "/v1/oauth/callback"
    assert set(params["scope"].split()) == JIRA_SCOPES | CONFLUENCE_SCOPES | {"offline_access"}
    assert params["state"]


@pytest.mark.parametrize("product,scopes", [("jira", JIRA_SCOPES), ("confluence", CONFLUENCE_SCOPES)])
def test_connect_one_product(bridge, product, scopes):
    tenant = bridge.tenant()
    landing = bridge.connect(tenant, product)
    assert landing == {"product": product, "status": "connected"}

    r = bridge.connection(tenant, product)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["status"] == "connected"
    assert view["deployment"] == "cloud" and view["auth_type"] == "oauth2"
    assert view["site"] == {"cloud_id": "11111111-1111-4111-8111-111111111111",
                            "url": "https://acme.atlassian.net", "name": "acme"}
    assert scopes <= set(view["scopes"])
    assert "candidate_sites" not in view
    other = "confluence" if product == "jira" else "jira"
    assert bridge.connection(tenant, other).status_code == 404

    # The token pair is in Secrets Manager under the deployment's KMS key; DynamoDB holds only
    # the secret's name.
    names = bridge.secret_names(tenant)
    assert names == [bridge.grant_secret(tenant, product)]
    sm = bridge.stack.aws("secretsmanager")
    assert sm.describe_secret(SecretId=names[0])["KmsKeyId"] == bridge.stack.kms_key_id
    stored = json.loads(sm.get_secret_value(SecretId=names[0])["SecretString"])
    items = json.dumps(bridge.items(tenant))
    assert stored["access_token"] not in items and stored["refresh_token"] not in items
    assert stored["access_token"] not in r.text and names[0] not in r.text


def test_connect_both_products_in_one_consent(bridge):
    tenant = bridge.tenant()
    assert bridge.connect(tenant, "atlassian") == {"product": "atlassian", "status": "connected"}
    jira, confluence = bridge.connection(tenant, "jira").json(), bridge.connection(tenant, "confluence").json()
    assert jira["status"] == confluence["status"] == "connected"
    assert jira["site"] == confluence["site"]
    # One consent, one grant, one secret.
    assert bridge.secret_names(tenant) == [bridge.grant_secret(tenant, "atlassian")]
    assert bridge.token_calls("authorization_code") == 1
    # Both connections work with the one grant.
    for product in ("jira", "confluence"):
        r = bridge.call("POST", f"/v1/tenants/{tenant}/connections/{product}/verify", tenant)
        assert r.status_code == 200, r.text


def test_several_sites_need_a_selection(bridge):
    tenant = bridge.tenant()
    sites = [{"id": "aaaaaaaa-0000-4000-8000-000000000001", "name": "alpha", "products": ["jira", "confluence"]},
             {"id": "bbbbbbbb-0000-4000-8000-000000000002", "name": "beta", "products": ["jira", "confluence"]}]
    bridge.sim("PUT", "/_sim/sites", sites)
    assert bridge.connect(tenant, "jira")["status"] == "site_selection_required"

    view = bridge.connection(tenant, "jira").json()
    assert view["status"] == "site_selection_required" and view["site"] is None
    assert {s["cloud_id"] for s in view["candidate_sites"]} == {s["id"] for s in sites}

    verify = bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/verify", tenant)
    assert (verify.status_code, verify.json()["error"]["code"]) == (409, "site_selection_required")

    path = f"/v1/tenants/{tenant}/connections/jira/site"
    bad = bridge.call("PUT", path, tenant, json_body={"cloud_id": "not-a-candidate"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "unknown_site")
    r = bridge.call("PUT", path, tenant, json_body={"cloud_id": sites[1]["id"]})
    assert r.status_code == 200, r.text
    [chosen] = r.json()["connections"]
    assert chosen["status"] == "connected" and chosen["site"]["name"] == "beta"

    verify = bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/verify", tenant)
    assert verify.status_code == 200, verify.text
    calls = bridge.sim("GET", "/_sim/calls").json()["calls"]
    assert any(c["path"] == f"/ex/jira/{sites[1]['id']}/rest/api/3/myself" for c in calls)


def test_combined_consent_selects_one_site_for_both(bridge):
    tenant = bridge.tenant()
    sites = [{"id": "cccccccc-0000-4000-8000-000000000003", "name": "gamma", "products": ["jira", "confluence"]},
             {"id": "dddddddd-0000-4000-8000-000000000004", "name": "delta", "products": ["jira", "confluence"]}]
    bridge.sim("PUT", "/_sim/sites", sites)
    assert bridge.connect(tenant, "atlassian")["status"] == "site_selection_required"
    r = bridge.call("PUT", f"/v1/tenants/{tenant}/connections/atlassian/site", tenant,
                    json_body={"cloud_id": sites[0]["id"]})
    assert r.status_code == 200, r.text
    assert [c["product"] for c in r.json()["connections"]] == ["jira", "confluence"]
    for product in ("jira", "confluence"):
        assert bridge.connection(tenant, product).json()["site"]["name"] == "gamma"


def test_denied_consent_stores_nothing(bridge):
    tenant = bridge.tenant()
    bridge.sim("PUT", "/_sim/oauth/config", {"deny": True})
    landing = bridge.connect(tenant, "jira")
    assert landing == {"product": "jira", "status": "error", "reason": "access_denied"}
    assert bridge.connection(tenant, "jira").status_code == 404
    assert bridge.secret_names(tenant) == []
    assert bridge.items(tenant) == []
    assert bridge.token_calls() == 0


def test_no_site_with_the_needed_scopes_stores_nothing(bridge):
    tenant = bridge.tenant()
    bridge.sim("PUT", "/_sim/sites", [{"id": "eeeeeeee-0000-4000-8000-000000000005", "name": "wiki-only",
                                         "products": ["confluence"]}])
    landing = bridge.connect(tenant, "jira")
    assert (landing["status"], landing["reason"]) == ("error", "no_accessible_site")
    assert bridge.secret_names(tenant) == [] and bridge.items(tenant) == []


def test_reconnecting_moves_a_product_to_its_new_grant_and_retires_the_unused_secret(bridge):
    tenant = bridge.tenant()
    bridge.connect(tenant, "jira")
    bridge.connect(tenant, "atlassian")
    assert bridge.secret_names(tenant) == [bridge.grant_secret(tenant, "atlassian")]


def test_return_url_must_be_allow_listed(bridge):
    tenant = bridge.tenant()
    for bad in ["https://evil.example/steal", "https://app.example.test.evil/x", "javascript:alert(1)",
                "https://user:pw@app.example.test/integrations"]:
        r = bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/oauth/start", tenant,
                        json_body={"return_url": bad})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "return_url_not_allowed"), bad


@pytest.mark.parametrize("body,code", [
    (None, "invalid_request"),
    ({"return_url": RETURN_URL, "extra": 1}, "invalid_request"),
    ({"return_url": 5}, "invalid_request"),
])
def test_start_refuses_bad_bodies_with_a_message(bridge, body, code):
    tenant = bridge.tenant()
    r = bridge.call("POST", f"/v1/tenants/{tenant}/connections/jira/oauth/start", tenant, json_body=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_start_refuses_an_unknown_product(bridge):
    tenant = bridge.tenant()
    r = bridge.call("POST", f"/v1/tenants/{tenant}/connections/bitbucket/oauth/start", tenant,
                    json_body={"return_url": RETURN_URL})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_product")
