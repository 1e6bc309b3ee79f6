"""Connection status and disconnect."""


def test_status_of_an_unknown_connection_is_404_not_connected(bridge):
    tenant = bridge.tenant()
    r = bridge.connection(tenant, "jira")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_connected")


def test_status_accepts_only_real_products(bridge):
    tenant = bridge.tenant()
    r = bridge.call("GET", f"/v1/tenants/{tenant}/connections/atlassian", tenant)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_product")


def test_disconnect_removes_the_record_and_the_secret(bridge):
    tenant = bridge.tenant()
    bridge.connect(tenant, "jira")
    r = bridge.call("DELETE", f"/v1/tenants/{tenant}/connections/jira", tenant)
    assert r.status_code == 204
    assert bridge.connection(tenant, "jira").status_code == 404
    assert bridge.secret_names(tenant) == [] and bridge.items(tenant) == []
    # Idempotent: deleting again is fine.
    assert bridge.call("DELETE", f"/v1/tenants/{tenant}/connections/jira", tenant).status_code == 204


def test_a_shared_grant_is_kept_until_its_last_connection_goes(bridge):
    tenant = bridge.tenant()
    bridge.connect(tenant, "atlassian")
    assert bridge.call("DELETE", f"/v1/tenants/{tenant}/connections/jira", tenant).status_code == 204
    assert bridge.secret_names(tenant) == [bridge.grant_secret(tenant, "atlassian")]
    verify = bridge.call("POST", f"/v1/tenants/{tenant}/connections/confluence/verify", tenant)
    assert verify.status_code == 200, verify.text
    assert bridge.call("DELETE", f"/v1/tenants/{tenant}/connections/confluence", tenant).status_code == 204
    assert bridge.secret_names(tenant) == []


def test_the_status_never_shows_a_credential(bridge):
    tenant = bridge.tenant()
    bridge.connect(tenant, "jira")
    body = bridge.connection(tenant, "jira").text
    for word in ("token", "secret", "password"):
        assert word not in body.lower()
