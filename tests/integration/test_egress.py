"""The egress guard through the API: hostile base URLs and token URLs are refused with a clear
400 before any request leaves, nothing is stored, and redirects are never followed.

The test stack sets BRIDGE_EGRESS_ALLOW_LOOPBACK_FOR_TESTS (the simulator listens on 127.0.0.1),
so loopback targets (`https://127.0.0.1/`, `https://[::1]/`, `localhost`, `0x7f000001`, ...) are
reachable here by design; that they are refused by default is proven by the unit tests in
shared/src/atlassian/egress.rs (`hostile_urls_are_refused_before_any_lookup`,
`the_default_refuses_loopback_and_the_test_setting_allows_only_loopback`,
`names_resolving_to_private_addresses_are_refused`). Loopback forms appear below only where the
scheme or userinfo alone makes them refused. A DNS name that resolves to a private address
cannot be made without touching /etc/hosts or a DNS server (and `localhost` is loopback, allowed
here), so that case is left to the same unit test of the guarded resolver.
"""

import pytest

from . import registration as reg

HOSTILE = [
    # private, link-local, CGNAT, unspecified, multicast, broadcast (IPv4)
    "https://10.0.0.1/",
    "https://10.255.255.255/jira",
    "https://172.16.0.1/",
    "https://172.31.255.254/confluence",
    "https://192.168.1.1/",
    "https://169.254.169.254/",
    "https://169.254.169.254/latest/meta-data/",
    "https://169.254.170.2/v2/credentials",          # ECS task credentials
    "https://100.64.0.1/",
    "https://0.0.0.0/",
    "https://0.0.0.0:8443/jira",
    "https://224.0.0.1/",
    "https://239.255.255.250/",
    "https://255.255.255.255/",
    "https://240.0.0.1/",
    "https://192.0.2.10/",                            # TEST-NET-1
    "https://198.18.0.1/",                            # benchmarking
    # the same addresses spelled differently (the WHATWG parser normalizes them)
    "https://167772161/",                             # 10.0.0.1, decimal
    "https://012.0.0.1/",                             # 10.0.0.1, octal first octet
    "https://0xa.0.0.1/",                             # 10.0.0.1, hex first octet
    "https://0x0a000001/",                            # 10.0.0.1, hex
    "https://2852039166/",                            # 169.254.169.254, decimal
    "https://0xa9fea9fe/",                            # 169.254.169.254, hex
    "https://0251.0376.0251.0376/",                   # 169.254.169.254, octal
    "https://10.1/",                                  # 10.0.0.1, short form
    # IPv6
    "https://[::]/",
    "https://[fd00::1]/",
    "https://[fd00:ec2::254]/",                       # AWS metadata over IPv6
    "https://[fe80::1]/",
    "https://[fec0::1]/",
    "https://[ff02::1]/",
    "https://[::ffff:10.0.0.1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:a9fe:a9fe]/",
    "https://[64:ff9b::a9fe:a9fe]/",                  # NAT64 of 169.254.169.254
    "https://[2002:a9fe:a9fe::]/",                    # 6to4 of 169.254.169.254
    "https://[2001:db8::1]/",                         # documentation
    # credentials in the URL
    "https://x.atlassian.net@10.0.0.1/",
    "https://x.atlassian.net@127.0.0.1/",
    "https://user:pass@jira.example.com/",
    "https://user@jira.example.com/",
    "https://:pass@jira.example.com/",
    # schemes
    "http://jira.example.com/",                       # http needs the operator's setting
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "ftp://x/",
    "ftp://jira.example.com/",
    "gopher://x/",
    "gopher://127.0.0.1:6379/_INFO",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "ldap://10.0.0.1/",
    "dict://127.0.0.1:11211/stat",
    "ws://jira.example.com/",
]

UNPARSEABLE = [
    "not a url",
    "https://",
    "https://[::1/",
    "https://256.256.256.256/",
    "https://exa mple.com/",
    "//jira.example.com/",
]


def refused(bridge, tenant, base_url, product="jira"):
    request_body = reg.body(bridge, product, "basic")
    request_body["base_url"] = base_url
    return reg.put(bridge, tenant, product, request_body)


def assert_refused_cleanly(bridge, tenant, r, codes, product="jira"):
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] in codes, error
    assert len(error["message"]) > 10 and ("base_url" in error["message"] or "token_url" in error["message"]), error
    assert reg.DC_PASSWORD not in r.text
    assert bridge.secret_names(tenant) == [] and bridge.items(tenant) == []
    assert bridge.connection(tenant, product).status_code == 404


def test_there_are_at_least_thirty_hostile_urls():
    assert len(set(HOSTILE)) >= 30


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_base_urls_are_refused_before_any_request(bridge, url):
    tenant = bridge.tenant()
    r = refused(bridge, tenant, url)
    assert_refused_cleanly(bridge, tenant, r, {"egress_refused"})
    assert reg.calls(bridge) == []


@pytest.mark.parametrize("url", UNPARSEABLE)
def test_unparseable_base_urls_are_invalid_requests(bridge, url):
    tenant = bridge.tenant()
    r = refused(bridge, tenant, url)
    assert_refused_cleanly(bridge, tenant, r, {"invalid_request"})
    assert reg.calls(bridge) == []


@pytest.mark.parametrize("url,words", [
    ("https://10.0.0.1/", ["10.0.0.1", "public"]),
    ("https://0xa9fea9fe/", ["169.254.169.254"]),
    ("https://[::ffff:169.254.169.254]/", ["169.254.169.254"]),
    ("http://jira.example.com/", ["https"]),
    ("file:///etc/passwd", ["https", "file"]),
    ("https://user:pass@jira.example.com/", ["user name or password"]),
])
def test_refusals_say_what_is_wrong(bridge, url, words):
    tenant = bridge.tenant()
    r = refused(bridge, tenant, url)
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    for word in words:
        assert word in message, message
    assert "pass@" not in message


@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_the_confluence_and_jira_routes_share_the_guard(bridge, product):
    tenant = bridge.tenant()
    r = refused(bridge, tenant, "https://169.254.169.254/latest/meta-data/", product)
    assert_refused_cleanly(bridge, tenant, r, {"egress_refused"}, product)


def test_a_cloud_site_url_on_a_private_address_is_refused(bridge):
    tenant = bridge.tenant()
    request_body = reg.body(bridge, "jira", "api_token")
    request_body["base_url"] = "https://10.0.0.1/"
    r = reg.put(bridge, tenant, "jira", request_body)
    assert_refused_cleanly(bridge, tenant, r, {"egress_refused"})
    assert reg.calls(bridge) == []


@pytest.mark.parametrize("url", [
    "https://10.0.0.1/token",
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "https://[fd00::1]/oauth2/token",
    "https://0xa9fea9fe/token",
    "http://idp.example.com/token",
    "https://user:pw@idp.example.com/token",
    "file:///etc/shadow",
])
def test_an_oidc_token_url_on_a_private_address_is_refused(bridge, url):
    tenant = bridge.tenant()
    request_body = reg.body(bridge, "jira", "oidc_basic")
    request_body["auth"]["token_url"] = url
    r = reg.put(bridge, tenant, "jira", request_body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "egress_refused" and "token_url" in error["message"], error
    assert reg.OIDC_SECRET not in r.text
    assert bridge.secret_names(tenant) == [] and bridge.items(tenant) == []
    assert reg.calls(bridge) == []          # neither the provider nor the product was asked


REDIRECT = "http://169.254.169.254/latest/meta-data/"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_verify_does_not_follow_a_redirect_to_a_private_address(bridge, status):
    tenant = bridge.tenant()
    reg.register(bridge, tenant, "jira", "basic")
    bridge.sim("DELETE", "/_sim/calls")
    route = "GET /dc/jira-dc/jira/rest/api/2/myself"
    bridge.sim("POST", "/_sim/faults", {"route": route, "kind": "status", "status": status,
                                        "headers": {"Location": REDIRECT + "?token=abc"}})

    r = reg.verify(bridge, tenant, "jira")
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["code"] == "upstream_invalid_response" and "redirects are not followed" in error["message"], error
    assert "169.254.169.254" in error["message"] and "token=abc" not in error["message"]
    # Exactly one request, the redirected one: nothing followed it, here or anywhere else.
    calls = reg.calls(bridge)
    assert [(c["route"], c["status"]) for c in calls] == [(route, status)], calls
    # A redirect is not a credential problem: the connection keeps its status.
    assert bridge.connection(tenant, "jira").json()["status"] == "connected"
    assert reg.verify(bridge, tenant, "jira").status_code == 200


def test_registration_does_not_follow_a_redirect(bridge):
    tenant = bridge.tenant()
    route = "GET /dc/conf-dc/confluence/rest/api/user/current"
    bridge.sim("POST", "/_sim/faults", {"route": route, "kind": "status", "status": 302,
                                        "headers": {"Location": REDIRECT}})
    r = reg.put(bridge, tenant, "confluence", reg.body(bridge, "confluence", "basic"))
    assert (r.status_code, r.json()["error"]["code"]) == (422, "redirected"), r.text
    assert "169.254.169.254" in r.json()["error"]["message"]
    assert [(c["route"], c["status"]) for c in reg.calls(bridge)] == [(route, 302)]
    assert bridge.secret_names(tenant) == [] and bridge.items(tenant) == []


def test_the_oidc_token_endpoint_redirect_is_not_followed(bridge):
    tenant = bridge.tenant()
    request_body = reg.body(bridge, "jira", "oidc_basic")
    bridge.sim("POST", "/_sim/faults", {"route": reg.OIDC_TOKEN_ROUTE, "kind": "status", "status": 307,
                                        "headers": {"Location": "http://10.0.0.1/token"}})
    r = reg.put(bridge, tenant, "jira", request_body)
    assert r.status_code == 422, r.text
    # The message must name what failed — the identity provider's token endpoint redirected —
    # not send the admin to check the product's base_url.
    message = r.json()["error"]["message"]
    assert "identity provider" in message or "token_url" in message, r.text
    assert [(c["route"], c["status"]) for c in reg.calls(bridge)] == [(reg.OIDC_TOKEN_ROUTE, 307)]
    assert bridge.secret_names(tenant) == [] and bridge.items(tenant) == []
