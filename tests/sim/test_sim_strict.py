"""Simulator tests: the products' strict behaviour is the default, and each switch restores the
friendly one — permissions and restricted pages, title uniqueness, search lag, email privacy,
scoped tokens and service accounts, Confluence v2 413, app scopes, DC assignable truncation.
Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import requests

from .test_sim import SITE, authorize, tokens

ADMIN = ("admin@acme.test", "ATATT3xFfGF0-sim-acme-admin-token")
BOT = ("bridge-bot", "s3cret-pass")
NO_CHECK = {"X-Atlassian-Token": "no-check"}
TASK, DC_TASK = "10002", "3"
TITLE_TAKEN = "A page with this title already exists: A page already exists with the same TITLE in this space"


def jira(sim, method, path, auth=ADMIN, **kw):
    return requests.request(method, sim.site_base() + "/rest/api/3" + path, auth=auth, timeout=10, **kw)


def wiki(sim, method, path, auth=ADMIN, **kw):
    return requests.request(method, sim.site_base() + "/wiki" + path, auth=auth, timeout=30, **kw)


def jira_dc(sim, method, path, **kw):
    return requests.request(method, sim.dc_base("jira-dc") + "/rest/api/2" + path, auth=BOT, timeout=10, **kw)


def wiki_dc(sim, method, path, **kw):
    return requests.request(method, sim.dc_base("conf-dc") + "/rest/api" + path, auth=BOT, timeout=10, **kw)


def task(project="BRF", itype=TASK, **fields):
    return {"fields": {"project": {"key": project}, "issuetype": {"id": itype}, "summary": "Do it", **fields}}


def grant(sim, user, perms, flavour="cloud", **where):
    return sim.control("PUT", "/permissions", {"flavour": flavour, "user": user, "permissions": perms,
                                               **where}, expect=200)


def space(sim, key, flavour="cloud"):
    return next(s for s in sim.data("spaces", flavour=flavour) if s["key"] == key)


def v2_page(space_id, title, body="<p>x</p>"):
    return {"spaceId": space_id, "status": "current", "title": title,
            "body": {"representation": "storage", "value": body}}


def dc_page(title, key="SPA"):
    return {"type": "page", "title": title, "space": {"key": key},
            "body": {"storage": {"value": "<p>x</p>", "representation": "storage"}}}


def plant(sim, **page):
    return sim.control("POST", "/confluence/pages", page, expect=201)


def pdf():
    return [("file", ("a.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")), ("minorEdit", (None, "true"))]


# ----------------------------------------------------------------------------- 1. permissions
def test_jira_permissions_on_the_site_url(sim):
    issue = jira(sim, "POST", "/issue", json=task()).json()
    grant(sim, "admin@acme.test", ["browse", "create"], project="BRF")
    r = jira(sim, "DELETE", f"/issue/{issue['key']}")
    assert (r.status_code, r.json()) == (403, {"errorMessages": [
        "You do not have permission to delete issues in this project."], "errors": {}})
    # a project you cannot browse does not exist for you
    grant(sim, "admin@acme.test", [], project="COF")
    assert jira(sim, "GET", "/project/COF").status_code == 404
    assert "COF" not in [p["key"] for p in jira(sim, "GET", "/project/search?maxResults=100&query=co").json()["values"]]
    r = jira(sim, "POST", "/issue", json=task("COF"))
    assert r.status_code == 400 and r.json()["errors"] == {"project": "Specify a valid project ID or key"}
    # browse without create: refused (400, as the spec says)
    grant(sim, "admin@acme.test", ["browse"], project="BRF")
    assert jira(sim, "POST", "/issue", json=task()).status_code == 400
    # friendly: no enforcement
    sim.quirks(enforce_permissions=False)
    assert jira(sim, "GET", "/project/COF").status_code == 200
    assert jira(sim, "DELETE", f"/issue/{issue['key']}").status_code == 204


def test_jira_assignee_must_be_assignable(sim):
    user = sim.data("assignable", project="BRF")[2]
    grant(sim, user["accountId"], ["browse"], project="BRF")      # no Assignable User
    assert user["accountId"] not in [u["accountId"] for u in sim.data("assignable", project="BRF")]
    r = jira(sim, "POST", "/issue", json=task(assignee={"accountId": user["accountId"]}))
    assert (r.status_code, r.json()) == (400, {"errorMessages": [], "errors": {
        "assignee": f"User '{user['accountId']}' cannot be assigned issues."}})
    found = jira(sim, "GET", "/user/assignable/search", params={"project": "BRF", "accountId": user["accountId"]})
    assert found.json() == []
    sim.quirks(enforce_permissions=False)
    assert jira(sim, "POST", "/issue", json=task(assignee={"accountId": user["accountId"]})).status_code == 201


def test_permissions_follow_the_oauth_account_and_the_dc_user(sim):
    at = tokens(sim, "read:jira-work write:jira-work read:jira-user offline_access")["access_token"]
    grant(sim, "mia.krystof@example.com", [], project="BRF")
    r = requests.get(f"{sim.url}/ex/jira/{SITE}/rest/api/3/project/BRF", timeout=5,
                     headers={"Authorization": f"Bearer {at}"})
    assert r.status_code == 404
    assert jira(sim, "GET", "/project/BRF").status_code == 200          # the API-token user may
    grant(sim, "bridge-bot", ["browse", "create"], flavour="dc", project="BRF")
    key = jira_dc(sim, "POST", "/issue", json=task(itype=DC_TASK)).json()["key"]
    r = jira_dc(sim, "DELETE", f"/issue/{key}")
    assert r.status_code == 403 and r.json()["errorMessages"] == [
        "You do not have permission to delete issues in this project."]
    grant(sim, "bridge-bot", [], flavour="dc", project="BRF")
    assert jira_dc(sim, "GET", f"/issue/{key}").status_code == 404
    assert "BRF" not in [p["key"] for p in jira_dc(sim, "GET", "/project").json()]
    assert sim.control("GET", "/permissions", expect=200)
    sim.control("DELETE", "/permissions", expect=200)
    assert jira_dc(sim, "DELETE", f"/issue/{key}").status_code == 204


def test_confluence_space_permissions(sim):
    spb = space(sim, "SPB")
    grant(sim, "admin@acme.test", ["view", "attach"], space="SPB")
    r = wiki(sim, "POST", "/api/v2/pages", json=v2_page(spb["id"], "Not allowed"))
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NOT_FOUND"   # v2 spec: 404
    grant(sim, "admin@acme.test", ["view", "add_page"], space="SPB")
    page = wiki(sim, "POST", "/api/v2/pages", json=v2_page(spb["id"], "Allowed")).json()
    r = wiki(sim, "PUT", f"/rest/api/content/{page['id']}/child/attachment", headers=NO_CHECK, files=pdf())
    assert r.status_code == 403 and r.json()["statusCode"] == 403
    grant(sim, "admin@acme.test", [], space="SPB")
    assert wiki(sim, "GET", f"/api/v2/spaces/{spb['id']}").status_code == 404
    assert wiki(sim, "GET", f"/api/v2/pages/{page['id']}").status_code == 404
    assert wiki(sim, "GET", "/api/v2/spaces?keys=SPB").json()["results"] == []
    # DC: 403 for a create without Add Page and for an upload without Add Attachments
    grant(sim, "bridge-bot", ["view"], flavour="dc", space="SPA")
    r = wiki_dc(sim, "POST", "/content", json=dc_page("DC not allowed"))
    assert r.status_code == 403 and r.json()["message"] == "Could not create content with type page"
    home = space(sim, "SPA", "dc")["homepageId"]
    assert wiki_dc(sim, "POST", f"/content/{home}/child/attachment", headers=NO_CHECK,
                   files=pdf()).status_code == 403
    sim.quirks(enforce_permissions=False)
    assert wiki_dc(sim, "POST", "/content", json=dc_page("DC allowed")).status_code == 200
    assert wiki(sim, "GET", f"/api/v2/spaces/{spb['id']}").status_code == 200


def test_restricted_pages_are_404_but_hold_their_title(sim):
    spa = space(sim, "SPA")
    secret = plant(sim, space="SPA", title="Secret Plans", restricted_to=[])
    assert wiki(sim, "GET", f"/api/v2/pages/{secret['id']}").status_code == 404
    listed = wiki(sim, "GET", f"/api/v2/pages?space-id={spa['id']}&limit=250").json()["results"]
    assert secret["id"] not in [p["id"] for p in listed]
    r = wiki(sim, "POST", "/api/v2/pages", json=v2_page(spa["id"], "secret plans"))
    assert r.status_code == 400 and r.json()["errors"][0]["title"] == TITLE_TAKEN
    # restricted to one user: that user sees it, the OAuth account does not
    mine = plant(sim, space="SPA", title="Admin only", restricted_to=["admin@acme.test"])
    assert wiki(sim, "GET", f"/api/v2/pages/{mine['id']}").status_code == 200
    at = tokens(sim, "read:page:confluence offline_access")["access_token"]
    r = requests.get(f"{sim.url}/ex/confluence/{SITE}/wiki/api/v2/pages/{mine['id']}", timeout=5,
                     headers={"Authorization": f"Bearer {at}"})
    assert r.status_code == 404
    dc_secret = plant(sim, flavour="dc", space="SPA", title="DC secret", restricted_to=[])
    assert wiki_dc(sim, "GET", f"/content/{dc_secret['id']}").status_code == 404
    # friendly: restricted pages you cannot see leave their title free; or no enforcement at all
    sim.quirks(strict_page_titles=False)
    assert wiki(sim, "POST", "/api/v2/pages", json=v2_page(spa["id"], "secret plans")).status_code == 200
    sim.quirks(enforce_permissions=False)
    assert wiki(sim, "GET", f"/api/v2/pages/{secret['id']}").status_code == 200


def test_page_ids_belong_to_one_site_so_a_planted_page_may_reuse_another_sites_id(sim):
    """Each Confluence site numbers its own content: the id of a page on one site can name an
    unrelated page on another site or a Data Center instance."""
    beta = {"id": "bbbbbbbb-0000-4000-8000-000000000002", "name": "beta", "products": ["jira", "confluence"]}
    sim.control("PUT", "/sites", [{"id": SITE, "name": "acme", "products": ["jira", "confluence"]}, beta],
                expect=200)
    spa = space(sim, "SPA")
    ours = wiki(sim, "POST", "/api/v2/pages", json=v2_page(spa["id"], "Ours on acme")).json()
    other = plant(sim, site=beta["id"], space="SPA", title="Unrelated on beta", id=ours["id"])
    dc = plant(sim, flavour="dc", space="SPA", title="Unrelated on DC", id=ours["id"])
    assert other["id"] == dc["id"] == ours["id"]
    assert wiki(sim, "GET", f"/api/v2/pages/{ours['id']}").json()["title"] == "Ours on acme"
    assert wiki_dc(sim, "GET", f"/content/{ours['id']}").json()["title"] == "Unrelated on DC"
    # taken in that deployment, or not an id
    for bad, status in ((ours["id"], 409), ("p1", 400)):
        r = requests.post(f"{sim.url}/_sim/confluence/pages", json={"space": "SPA", "title": "x", "id": bad}, timeout=5)
        assert r.status_code == status, r.text
    # ids the sim hands out later stay clear of a planted one
    high = plant(sim, space="SPA", title="Planted high", id=str(int(ours["id"]) + 50))
    later = wiki(sim, "POST", "/api/v2/pages", json=v2_page(spa["id"], "Later")).json()
    assert int(later["id"]) > int(high["id"])


# ----------------------------------------------------------------------------- 2. titles
def test_draft_and_archived_pages_hold_their_titles(sim):
    spa = space(sim, "SPA")
    plant(sim, space="SPA", title="Old Retro", status="archived")
    plant(sim, space="SPA", title="Draft Retro", status="draft")
    for title in ("Old Retro", "DRAFT retro"):
        r = wiki(sim, "POST", "/api/v2/pages", json=v2_page(spa["id"], title))
        assert (r.status_code, r.json()) == (400, {"errors": [{"status": 400, "code": "BAD_REQUEST",
                                                               "title": TITLE_TAKEN, "detail": None}]})
    plant(sim, flavour="dc", space="SPA", title="Old Retro", status="archived")
    r = wiki_dc(sim, "POST", "/content", json=dc_page("old retro"))
    assert r.status_code == 400 and r.json()["message"] == (
        "A page with this title already exists: A page already exists with the title old retro "
        "in the space with key SPA")
    assert wiki(sim, "POST", "/api/v2/pages", json=v2_page(spa["id"], "x" * 256)).status_code == 400
    sim.quirks(strict_page_titles=False)       # friendly: only current pages take titles
    assert wiki(sim, "POST", "/api/v2/pages", json=v2_page(spa["id"], "Old Retro")).status_code == 200
    assert wiki_dc(sim, "POST", "/content", json=dc_page("old retro")).status_code == 200


# ----------------------------------------------------------------------------- 3. search lag
def test_jql_sees_new_issues_after_the_index_delay(sim):
    assert sim.control("GET", "/quirks", expect=200)["cloud_search_index_delay_seconds"] == 3
    key = jira(sim, "POST", "/issue", json=task(labels=["lag-1"])).json()["key"]
    search = {"jql": "labels = lag-1", "fields": "key"}
    assert jira(sim, "GET", "/search/jql", params=search).json()["issues"] == []
    sim.control("POST", "/clock/advance", {"seconds": 3}, expect=200)
    assert [i["key"] for i in jira(sim, "GET", "/search/jql", params=search).json()["issues"]] == [key]
    dc_key = jira_dc(sim, "POST", "/issue", json=task(itype=DC_TASK, labels=["lag-2"])).json()["key"]
    assert jira_dc(sim, "GET", "/search", params={"jql": "labels = lag-2"}).json()["total"] == 0
    sim.control("POST", "/clock/advance", {"seconds": 1}, expect=200)
    assert [i["key"] for i in jira_dc(sim, "GET", "/search", params={"jql": "labels = lag-2"}).json()["issues"]] == [dc_key]
    sim.quirks(cloud_search_index_delay_seconds=0, dc_search_index_delay_seconds=0)   # friendly
    key = jira(sim, "POST", "/issue", json=task(labels=["lag-3"])).json()["key"]
    assert [i["key"] for i in jira(sim, "GET", "/search/jql", params={"jql": "labels = lag-3", "fields": "key"}
                                   ).json()["issues"]] == [key]
    assert requests.put(f"{sim.url}/_sim/quirks", json={"dc_search_index_delay_seconds": True}).status_code == 400


# ----------------------------------------------------------------------------- 4. emails
def test_hidden_cloud_emails_are_found_but_never_shown(sim):
    hidden = next(u for u in sim.data("users") if not u["email_visible"] and u["active"])
    for path, params in (("/user/assignable/search", {"project": "REQ", "query": hidden["emailAddress"]}),
                         ("/user/picker", {"query": hidden["emailAddress"]})):
        body = jira(sim, "GET", path, params=params).json()
        users = body if isinstance(body, list) else body["users"]
        assert [u["accountId"] for u in users] == [hidden["accountId"]]
        assert hidden["emailAddress"] not in str(body) and "emailAddress" not in users[0]
    sim.quirks(cloud_hidden_emails=False)      # friendly: every email visible
    [u] = jira(sim, "GET", "/user/assignable/search", params={"project": "REQ", "query": hidden["emailAddress"]}).json()
    assert u["emailAddress"] == hidden["emailAddress"]


def test_dc_email_visibility_per_instance(sim):
    user = sim.data("assignable", flavour="dc", project="REQ")[4]

    def lookup(q):
        return jira_dc(sim, "GET", "/user/assignable/search", params={"project": "REQ", "username": q}).json()

    assert lookup(user["emailAddress"])[0]["emailAddress"] == user["emailAddress"]        # default: show
    instances = sim.control("GET", "/dc/instances", expect=200)
    for vis, check in (("mask", lambda found: found[0]["emailAddress"] == user["emailAddress"].replace(
                            "@", " at ").replace(".", " dot ")),
                       ("hide", lambda found: found == [])):
        sim.control("PUT", "/dc/instances", [dict(i, email_visibility=vis) if i["id"] == "jira-dc" else i
                                             for i in instances], expect=200)
        assert check(lookup(user["emailAddress"]))
    assert "emailAddress" not in lookup(user["name"])[0]
    assert "emailAddress" not in jira_dc(sim, "GET", "/myself").json()


# ----------------------------------------------------------------------------- 5. scoped tokens
def test_service_accounts_have_scoped_tokens_for_the_gateway_only(sim):
    sa = sim.control("POST", "/cloud/service-accounts",
                     {"name": "bridge-svc", "site": SITE, "scopes": ["read:jira-user", "read:jira-work"]}, expect=201)
    creds = (sa["email"], sa["token"])
    assert sa["email"] == "bridge-svc@serviceaccount.atlassian.com"
    r = requests.get(f"{sim.url}/ex/jira/{SITE}/rest/api/3/myself", auth=creds, timeout=5)
    assert r.status_code == 200 and r.json()["accountType"] == "app"
    assert jira(sim, "GET", "/myself", auth=creds).status_code == 401        # never on the site URL
    assert requests.post(f"{sim.url}/_sim/cloud/service-accounts",
                         json={"name": "x", "site": SITE}).status_code == 400  # always scoped
    # the site's cloudId, unauthenticated
    r = requests.get(sim.site_base() + "/_edge/tenant_info", timeout=5)
    assert (r.status_code, r.json()) == (200, {"cloudId": SITE})
    assert requests.get(sim.url + "/site/nope/_edge/tenant_info", timeout=5).status_code == 404


# ----------------------------------------------------------------------------- 6. v2 413
def test_v2_page_bodies_over_5_mb_are_413(sim):
    spa = space(sim, "SPA")
    big = v2_page(spa["id"], "Huge", body="<p>" + "x" * (5 * 1024 * 1024) + "</p>")
    r = wiki(sim, "POST", "/api/v2/pages", json=big)
    assert r.status_code == 413 and r.json()["errors"][0]["status"] == 413
    sim.quirks(confluence_max_body_bytes=0)    # friendly: no limit
    assert wiki(sim, "POST", "/api/v2/pages", json=big).status_code == 200


# ----------------------------------------------------------------------------- 7. app scopes
def test_authorize_refuses_scopes_the_app_is_not_configured_with(sim):
    client = sim.control("GET", "/oauth/client", expect=200)
    assert "manage:jira-webhook" in client["scopes"] and "read:jira-work" in client["scopes"]
    r = authorize(sim, scope="read:jira-work read:attachment:confluence")
    assert r.status_code == 400 and "Location" not in r.headers
    assert "add the following scopes to the app: read:attachment:confluence." in r.text
    sim.control("PUT", "/oauth/client", {"scopes": None}, expect=200)      # friendly: any known scope
    assert authorize(sim, scope="read:jira-work read:attachment:confluence").status_code == 302


# ----------------------------------------------------------------------------- 8. DC assignable
def test_dc_assignable_search_stops_at_100_and_ignores_start_at(sim):
    first = jira_dc(sim, "GET", "/user/assignable/search", params={"project": "REQ", "maxResults": 1000}).json()
    assert len(first) == 100 and len(sim.data("assignable", flavour="dc", project="REQ")) > 100
    again = jira_dc(sim, "GET", "/user/assignable/search",
                    params={"project": "REQ", "maxResults": 1000, "startAt": 100}).json()
    assert [u["name"] for u in again] == [u["name"] for u in first]
