"""Simulator tests: Cloud API-token auth on the site URL (and scoped tokens on the gateway), the
discovery endpoints of Jira Cloud v3 and Confluence Cloud v2, generated data and its truth
endpoint. Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import requests

from .test_sim import SITE, api, tokens

ADMIN = ("admin@acme.test", "ATATT3xFfGF0-sim-acme-admin-token")
JIRA_READ = "read:jira-work read:jira-user"
GW_JIRA = f"/ex/jira/{SITE}"
GW_WIKI = f"/ex/confluence/{SITE}"


def site(sim, path, auth=ADMIN, **kw):
    return requests.get(sim.site_base() + path, auth=auth, timeout=5, **kw)


def collect_jira_pages(fetch, first_url):
    """Follow `nextPage` (or startAt/total when `isLast` is missing); return (values, pages)."""
    values, url, pages = [], first_url, 0
    while url:
        body = fetch(url)
        pages += 1
        values += body["values"]
        if "isLast" in body:
            url = None if body["isLast"] else body["nextPage"]
        else:
            nxt = body["startAt"] + len(body["values"])
            url = None if nxt >= body["total"] or not body["values"] else \
                body["self"].replace(f"startAt={body['startAt']}", f"startAt={nxt}")
    return values, pages


# ----------------------------------------------------------------------------- API tokens
def test_api_token_basic_on_site_routes(sim):
    r = site(sim, "/rest/api/3/myself")
    assert r.status_code == 200
    me = r.json()
    assert (me["emailAddress"], me["displayName"], me["accountType"]) == \
        ("admin@acme.test", "Acme Admin", "atlassian")
    assert me["self"].startswith(sim.site_base() + "/rest/api/3/user?accountId=")
    r = site(sim, "/wiki/rest/api/user/current")
    assert r.status_code == 200
    assert (r.json()["type"], r.json()["accountId"]) == ("known", me["accountId"])
    assert r.json()["_links"]["base"] == sim.site_base() + "/wiki"

    r = site(sim, "/rest/api/3/myself", auth=("admin@acme.test", "wrong-token-123"))
    assert r.status_code == 401 and r.text == "Client must be authenticated to access this resource."
    assert site(sim, "/rest/api/3/myself", auth=None).status_code == 401
    assert site(sim, "/wiki/api/v2/spaces", auth=("someone@acme.test", ADMIN[1])).status_code == 401
    # an OAuth access token is for the gateway, not the site URL
    at = tokens(sim, scope=JIRA_READ)["access_token"]
    r = requests.get(sim.site_base() + "/rest/api/3/myself", headers={"Authorization": f"Bearer {at}"}, timeout=5)
    assert r.status_code == 401
    # a classic API token does not work on the gateway
    assert requests.get(sim.url + GW_JIRA + "/rest/api/3/myself", auth=ADMIN, timeout=5).status_code == 401
    # unknown site, non-spec path, wrong method, removed Cloud v1 space listing
    assert requests.get(sim.url + "/site/nope/rest/api/3/myself", auth=ADMIN, timeout=5).status_code == 404
    assert site(sim, "/rest/api/3/nothing-here").status_code == 404
    assert requests.delete(sim.site_base() + "/rest/api/3/myself", auth=ADMIN, timeout=5).status_code == 405
    assert site(sim, "/wiki/rest/api/space").status_code == 405
    routes = {c["route"] for c in sim.calls()["calls"]}
    assert "GET /site/{siteName}/rest/api/3/myself" in routes
    assert "GET /site/{siteName}/wiki/rest/api/user/current" in routes


def test_api_tokens_per_site_and_scoped_tokens(sim):
    other = "22222222-2222-4222-8222-222222222222"
    sim.sites([{"id": SITE, "name": "acme"}, {"id": other, "name": "globex", "products": ["jira"]}])
    sim.control("PUT", "/cloud/api-tokens", [
        {"email": "ops@globex.test", "token": "ATATT-globex-token-123", "site": other, "display_name": "Globex Ops"},
        {"email": "bot@acme.test", "token": "ATATT-scoped-token-456", "site": SITE,
         "scopes": ["read:jira-user", "read:jira-work"]},
    ], expect=200)
    g = ("ops@globex.test", "ATATT-globex-token-123")
    assert requests.get(sim.url + "/site/globex/rest/api/3/myself", auth=g, timeout=5).json()["displayName"] == "Globex Ops"
    assert site(sim, "/rest/api/3/myself", auth=g).status_code == 401          # other site
    assert requests.get(sim.url + "/site/globex/wiki/api/v2/spaces", auth=g, timeout=5).status_code == 404
    assert site(sim, "/rest/api/3/myself").status_code == 401                   # replaced
    # scoped token: gateway only, with the token's scopes
    s = ("bot@acme.test", "ATATT-scoped-token-456")
    r = requests.get(sim.url + GW_JIRA + "/rest/api/3/myself", auth=s, timeout=5)
    assert r.status_code == 200 and r.json()["emailAddress"] == "bot@acme.test"
    r = requests.get(sim.url + GW_WIKI + "/wiki/api/v2/spaces", auth=s, timeout=5)
    assert r.status_code == 401 and r.json()["message"] == "Unauthorized; scope does not match"
    assert requests.get(sim.url + f"/ex/jira/{other}/rest/api/3/myself", auth=s, timeout=5).status_code == 401
    assert site(sim, "/rest/api/3/myself", auth=s).status_code == 401
    tokens_ = sim.control("GET", "/cloud/api-tokens")
    assert [t["scopes"] for t in tokens_] == [None, ["read:jira-user", "read:jira-work"]]
    for bad in ([{"email": "x", "token": "t", "site": SITE}], [{"email": "a@b", "token": "", "site": SITE}],
                [{"email": "a@b", "token": "t", "site": "unknown"}]):
        assert requests.put(f"{sim.url}/_sim/cloud/api-tokens", json=bad).status_code in (400, 404)


# ----------------------------------------------------------------------------- projects
def test_project_search_pagination_end_to_end(sim):
    truth = sim.data("projects", flavour="cloud")
    assert len(truth) >= 260
    first = site(sim, "/rest/api/3/project/search?maxResults=1000").json()
    assert first["maxResults"] == 100 and len(first["values"]) == 100 and first["isLast"] is False
    values, pages = collect_jira_pages(lambda u: requests.get(u, auth=ADMIN, timeout=5).json(),
                                       sim.site_base() + "/rest/api/3/project/search?maxResults=100")
    keys = [p["key"] for p in values]
    assert pages == 3 and len(keys) == len(set(keys)) == len(truth)
    assert keys == sorted(p["key"] for p in truth)
    # via the OAuth gateway too, with nextPage pointing back at the gateway
    at = tokens(sim, scope=JIRA_READ)["access_token"]
    body = api(sim, GW_JIRA + "/rest/api/3/project/search?maxResults=50&orderBy=-name", at).json()
    assert body["nextPage"].startswith(sim.url + GW_JIRA + "/rest/api/3/project/search?")
    assert "orderBy=-name" in body["nextPage"] and "startAt=50" in body["nextPage"]
    names = [p["name"].lower() for p in body["values"]]
    assert names == sorted(names, reverse=True)
    # query matches key or name, case-insensitive
    body = site(sim, "/rest/api/3/project/search?query=req").json()
    assert "REQ" in [p["key"] for p in body["values"]]
    assert all("req" in p["key"].lower() or "req" in p["name"].lower() for p in body["values"])
    body = site(sim, "/rest/api/3/project/search?keys=REQ&expand=lead,issueTypes,description").json()
    assert body["total"] == 1 and body["isLast"] is True and "nextPage" not in body
    req = body["values"][0]
    assert req["lead"]["accountId"] and [t["name"] for t in req["issueTypes"]] == ["Story", "Task", "Bug", "Sub-task"]
    assert site(sim, "/rest/api/3/project/search?orderBy=colour").status_code == 400
    assert site(sim, "/rest/api/3/project/search?startAt=x").status_code == 400


def test_omitted_is_last(sim):
    sim.quirks(omit_is_last=True)
    body = site(sim, "/rest/api/3/project/search?maxResults=100").json()
    assert "isLast" not in body and body["total"] >= 260
    values, pages = collect_jira_pages(lambda u: requests.get(u, auth=ADMIN, timeout=5).json(),
                                       sim.site_base() + "/rest/api/3/project/search?maxResults=100")
    assert pages == 3 and len({p["id"] for p in values}) == body["total"]
    comp = site(sim, "/rest/api/3/project/REQ/component").json()
    assert "isLast" not in comp
    assert sim.control("GET", "/quirks")["omit_is_last"] is True
    assert requests.put(f"{sim.url}/_sim/quirks", json={"nope": True}).status_code == 400
    sim.reset()
    assert "isLast" in site(sim, "/rest/api/3/project/search").json()


def test_get_project_and_team_managed_issue_types(sim):
    r = site(sim, "/rest/api/3/project/REQ")
    assert r.status_code == 200
    p = r.json()
    for k in ("id", "key", "name", "lead", "issueTypes", "components", "assigneeType", "projectTypeKey", "style"):
        assert k in p
    assert p["style"] == "classic" and len(p["components"]) == 3
    assert [t["id"] for t in p["issueTypes"]] == ["10001", "10002", "10004", "10003"]
    assert next(t for t in p["issueTypes"] if t["name"] == "Sub-task")["subtask"] is True
    assert site(sim, f"/rest/api/3/project/{p['id']}").json()["key"] == "REQ"
    r = site(sim, "/rest/api/3/project/req")                                  # keys are case-sensitive
    assert r.status_code == 404 and r.json()["errorMessages"] == ["No project could be found with key 'req'."]
    tm = next(x for x in sim.data("projects") if x["team_managed"])
    body = site(sim, f"/rest/api/3/project/{tm['key']}").json()
    assert body["simplified"] is True and body["style"] == "next-gen"
    assert all(t["scope"] == {"type": "PROJECT", "project": {"id": tm["id"]}} for t in body["issueTypes"])
    assert not {t["id"] for t in body["issueTypes"]} & {"10001", "10002", "10003", "10004"}


def test_createmeta_cloud_shapes_and_required_field(sim):
    its = site(sim, "/rest/api/3/issue/createmeta/REQ/issuetypes?maxResults=2").json()
    assert set(its) == {"issueTypes", "maxResults", "startAt", "total"} and its["total"] == 4
    assert len(its["issueTypes"]) == 2 and "values" not in its
    rest = site(sim, "/rest/api/3/issue/createmeta/REQ/issuetypes?startAt=2&maxResults=2").json()
    assert [t["id"] for t in its["issueTypes"] + rest["issueTypes"]] == \
        [t["id"] for t in sim.data("issuetypes", project="REQ")]
    task = next(t for t in its["issueTypes"] + rest["issueTypes"] if t["name"] == "Task")

    truth = sim.data("fields", project="REQ", issuetype=task["id"])
    got, start = [], 0
    while True:
        body = site(sim, f"/rest/api/3/issue/createmeta/REQ/issuetypes/{task['id']}?startAt={start}&maxResults=5").json()
        assert set(body) == {"fields", "maxResults", "startAt", "total"}
        got += body["fields"]
        start += 5
        if start >= body["total"]:
            break
    assert [f["fieldId"] for f in got] == [f["fieldId"] for f in truth]
    for f in got:
        assert set(f) >= {"fieldId", "key", "name", "operations", "required", "schema", "hasDefaultValue"}
    team = next(f for f in got if f["fieldId"] == "customfield_10050")
    assert (team["name"], team["required"], team["hasDefaultValue"]) == ("Team", True, False)
    assert [o["value"] for o in team["allowedValues"]] == ["Platform", "Payments", "Mobile", "Data"]
    prio = next(f for f in got if f["fieldId"] == "priority")
    assert [v["name"] for v in prio["allowedValues"]] == ["Highest", "High", "Medium", "Low", "Lowest"]
    assert prio["defaultValue"]["id"] == "3"
    r = site(sim, "/rest/api/3/issue/createmeta/REQ/issuetypes?maxResults=201")
    assert r.status_code == 400 and r.json()["errorMessages"] == ["Parameter 'maxResults' must not exceed the limit '200'"]
    assert site(sim, "/rest/api/3/issue/createmeta/NOPE/issuetypes").status_code == 400
    assert site(sim, "/rest/api/3/issue/createmeta/REQ/issuetypes/5").status_code == 400


def test_components_plain_and_paged(sim):
    projects = sim.data("projects")
    big = next(p["key"] for p in projects if p["index"] == 42)
    none = next(p["key"] for p in projects if p["index"] == 0)
    truth = sim.data("components", project=big)
    assert len(truth) == 120
    assert len(site(sim, f"/rest/api/3/project/{big}/components").json()) == 120
    assert site(sim, f"/rest/api/3/project/{none}/components").json() == []
    values, pages = collect_jira_pages(lambda u: requests.get(u, auth=ADMIN, timeout=5).json(),
                                       sim.site_base() + f"/rest/api/3/project/{big}/component")
    assert pages == 3 and [c["id"] for c in values] == [c["id"] for c in truth]
    assert all("issueCount" in c for c in values)
    body = site(sim, f"/rest/api/3/project/{big}/component?query=api&orderBy=-name").json()
    assert body["total"] == 8 and all("api" in c["name"].lower() for c in body["values"])


# ----------------------------------------------------------------------------- users
def test_hidden_emails_and_user_search(sim):
    users = sim.data("users")
    assert len(users) >= 1200
    hidden = [u for u in users if not u["email_visible"]]
    assert len(hidden) >= 200
    h = next(u for u in hidden if u["active"])
    r = site(sim, "/rest/api/3/user/assignable/search", params={"project": "REQ", "query": h["displayName"]})
    found = [u for u in r.json() if u["accountId"] == h["accountId"]]
    assert len(found) == 1 and "emailAddress" not in found[0]
    by_id = {u["accountId"]: u for u in users}
    page = site(sim, "/rest/api/3/user/assignable/search", params={"project": "REQ", "query": "a"}).json()
    assert len(page) > 10
    for u in page:
        assert ("emailAddress" in u) == by_id[u["accountId"]]["email_visible"]
    # an email prefix finds visible emails only; the exact address finds a hidden one
    prefix = h["emailAddress"].split("@")[0]
    r = site(sim, "/rest/api/3/user/picker", params={"query": prefix})
    assert h["accountId"] not in [u["accountId"] for u in r.json()["users"]]
    r = site(sim, "/rest/api/3/user/picker", params={"query": h["emailAddress"]})
    assert [u["accountId"] for u in r.json()["users"]] == [h["accountId"]]
    assert h["emailAddress"] not in r.json()["users"][0]["html"]
    sim.quirks(hidden_email_exact_match=False)
    assert site(sim, "/rest/api/3/user/picker", params={"query": h["emailAddress"]}).json()["users"] == []

    body = site(sim, "/rest/api/3/user/picker", params={"query": "ben", "maxResults": 5}).json()
    assert body["total"] > 5 and len(body["users"]) == 5
    assert body["header"] == f"Showing 5 of {body['total']} matching users"
    assert set(body["users"][0]) == {"accountId", "accountType", "html", "displayName"}
    assert site(sim, "/rest/api/3/user/picker").status_code == 400


def test_assignable_search_windows_and_short_pages(sim):
    truth = {u["accountId"] for u in sim.data("assignable", project="REQ")}
    everyone = sim.data("users")
    seen, start, short_page_before_end = [], 0, False
    while True:
        page = site(sim, "/rest/api/3/user/assignable/search",
                    params={"project": "REQ", "query": "", "startAt": start, "maxResults": 100}).json()
        if start >= 1000:
            assert page == []          # nothing past the thousandth user
            break
        if len(page) < 100:
            short_page_before_end = True
        seen += [u["accountId"] for u in page]
        start += 100
    assert short_page_before_end and len(seen) == len(set(seen))
    assert set(seen) <= truth and len(truth) > len(seen) > 900
    # the first 1000 candidates (by display name) minus inactive users
    ordered = sorted(everyone, key=lambda u: (u["displayName"].lower(), u["accountId"]))[:1000]
    assert seen == [u["accountId"] for u in ordered if u["active"]]
    r = site(sim, "/rest/api/3/user/assignable/search", params={"project": "REQ", "accountId": seen[0]})
    assert [u["accountId"] for u in r.json()] == [seen[0]]
    for params, status in (({"project": "REQ"}, 400), ({"query": "a"}, 400),
                           ({"project": "REQ", "query": "a", "accountId": "x"}, 400),
                           ({"project": "NOPE", "query": "a"}, 404)):
        assert site(sim, "/rest/api/3/user/assignable/search", params=params).status_code == status


def test_discovery_scopes_over_oauth(sim):
    at = tokens(sim, scope="read:jira-user")["access_token"]
    r = api(sim, GW_JIRA + "/rest/api/3/project/search", at)
    assert r.status_code == 401 and r.json()["message"] == "Unauthorized; scope does not match"
    assert api(sim, GW_JIRA + "/rest/api/3/user/picker?query=ben", at).status_code == 200
    at = tokens(sim, scope="read:space:confluence")["access_token"]
    assert api(sim, GW_WIKI + "/wiki/api/v2/pages", at).status_code == 401
    at = tokens(sim, scope="read:page:confluence read:space:confluence")["access_token"]
    assert api(sim, GW_WIKI + "/wiki/api/v2/pages?limit=1", at).status_code == 200


# ----------------------------------------------------------------------------- Confluence v2
def test_confluence_v2_space_and_pages(sim):
    spaces = sim.data("spaces")
    assert len(spaces) >= 600
    s = spaces[3]
    r = site(sim, f"/wiki/api/v2/spaces/{s['id']}?description-format=plain")
    assert r.status_code == 200
    body = r.json()
    assert (body["key"], body["homepageId"]) == (s["key"], s["homepageId"])
    assert body["description"]["plain"]["value"] and body["_links"]["base"] == sim.site_base() + "/wiki"
    r = site(sim, "/wiki/api/v2/spaces/1")
    assert r.status_code == 404 and r.json()["errors"][0]["status"] == 404
    assert site(sim, "/wiki/api/v2/spaces/abc").status_code == 400

    r = site(sim, "/wiki/api/v2/pages", params={"space-id": s["id"], "title": "Meeting notes"})
    results = r.json()["results"]
    assert len(results) == 1 and results[0]["spaceId"] == s["id"]
    assert results[0]["parentId"] == s["homepageId"] and results[0]["version"]["number"] == 1
    r = site(sim, "/wiki/api/v2/pages", params={"space-id": spaces[0]["id"], "title": "Q&A / Notes + Ideas"})
    assert len(r.json()["results"]) == 1

    # every page of three spaces, through the cursor
    ids = ",".join(x["id"] for x in spaces[:3])
    truth = [p["id"] for x in spaces[:3] for p in sim.data("pages", space=x["key"])]
    url, got = f"{sim.site_base()}/wiki/api/v2/pages?space-id={ids}&limit=2", []
    while url:
        b = requests.get(url, auth=ADMIN, timeout=5).json()
        got += [p["id"] for p in b["results"]]
        url = sim.site_base() + b["_links"]["next"] if "next" in b["_links"] else None
    assert sorted(got, key=int) == sorted(truth, key=int) and len(got) == len(set(got))
    for bad in ("limit=0", "sort=size", "space-id=x", "body-format=html"):
        assert site(sim, f"/wiki/api/v2/pages?{bad}").status_code == 400


def test_spaces_over_the_site_route_paginate(sim):
    url, keys = f"{sim.site_base()}/wiki/api/v2/spaces?limit=250", []
    while url:
        b = requests.get(url, auth=ADMIN, timeout=5).json()
        keys += [x["key"] for x in b["results"]]
        url = sim.site_base() + b["_links"]["next"] if "next" in b["_links"] else None
    assert sorted(keys) == sorted(s["key"] for s in sim.data("spaces")) and len(keys) == len(set(keys))


# ----------------------------------------------------------------------------- seed and truth
def test_seed_sizes_and_data_endpoint(sim):
    for flavour in ("cloud", "dc"):
        assert len(sim.data("users", flavour=flavour)) >= 1200
        assert len(sim.data("projects", flavour=flavour)) == 260
        assert len(sim.data("spaces", flavour=flavour)) == 600
    out = sim.control("POST", "/seed", {"flavour": "dc", "projects": 30, "users": 50}, expect=200)
    assert out == {"dc": {"projects": 30, "spaces": 600, "users": 50}}
    assert len(sim.data("projects", flavour="dc")) == 30
    assert len(sim.data("users", flavour="dc")) == 51            # + bridge-bot
    assert len(sim.data("projects", flavour="cloud")) == 260
    body = requests.get(f"{sim.url}/dc/jira-dc/jira/rest/api/2/project", auth=("bridge-bot", "s3cret-pass"),
                        timeout=5).json()
    assert len(body) == 30
    sim.control("POST", "/seed", {"site": SITE, "spaces": 3}, expect=200)
    assert len(sim.data("spaces")) == 3 and len(sim.data("spaces", flavour="dc")) == 600
    assert sim.data("priorities")[2]["name"] == "Medium"
    for path, status in (("/data/nope", 404), ("/data/fields?project=REQ", 404),
                         ("/data/components", 404), ("/data/users?flavour=x", 400)):
        assert requests.get(f"{sim.url}/_sim{path}").status_code == status
    for bad in ({"projects": -1}, {"flavour": "server"}, {"flavour": "dc", "site": SITE}, {"colour": 1}):
        assert requests.post(f"{sim.url}/_sim/seed", json=bad).status_code == 400
    sim.reset()
    assert len(sim.data("projects", flavour="dc")) == 260


def test_generated_data_is_deterministic(sim):
    a = sim.data("users")[:50], sim.data("projects", flavour="dc")[:20]
    sim.reset()
    assert (sim.data("users")[:50], sim.data("projects", flavour="dc")[:20]) == a
    names = [u["displayName"] for u in sim.data("users")]
    assert len(names) > len(set(names))          # display names repeat, as in real directories
