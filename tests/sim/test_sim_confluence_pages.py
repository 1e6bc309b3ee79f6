"""Simulator tests: writing Confluence pages — Cloud REST v2 (gateway and site URL) and Data
Center REST — versions, conflicts, title uniqueness, schemas, and the control read-back.
Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import requests

from .test_sim import SITE, tokens

ADMIN = ("admin@acme.test", "ATATT3xFfGF0-sim-acme-admin-token")
BOT = ("bridge-bot", "s3cret-pass")
WIKI_SCOPES = "read:page:confluence write:page:confluence read:space:confluence offline_access"
GW = f"/ex/confluence/{SITE}/wiki/api/v2"
BODY = ('<h1>Sprint 12 &ndash; Retro</h1><p>What went well &amp; what did not</p>'
        '<ac:structured-macro ac:name="anchor"><ac:parameter ac:name="">bridge-report-1</ac:parameter>'
        '</ac:structured-macro><ul><li>one</li></ul>')


def space(sim, key, flavour="cloud"):
    return next(s for s in sim.data("spaces", flavour=flavour) if s["key"] == key)


def v2(sim, at, method, path, headers=None, **kw):
    headers = {"Authorization": f"Bearer {at}", **(headers or {})}
    return requests.request(method, sim.url + GW + path, headers=headers, timeout=5, **kw)


def site(sim, method, path, **kw):
    return requests.request(method, sim.site_base() + "/wiki/api/v2" + path, auth=ADMIN, timeout=5, **kw)


def dc(sim, method, path, auth=BOT, **kw):
    return requests.request(method, sim.dc_base("conf-dc") + path, auth=auth, timeout=5, **kw)


def new_page(space_id, title, body=BODY, **extra):
    return {"spaceId": space_id, "status": "current", "title": title,
            "body": {"representation": "storage", "value": body}, **extra}


def update(page_id, title, version, body=BODY, **extra):
    return {"id": page_id, "status": "current", "title": title,
            "body": {"representation": "storage", "value": body}, "version": {"number": version}, **extra}


def v2_error(r, status, code=None):
    assert r.status_code == status, r.text
    err = r.json()["errors"][0]
    assert err["status"] == status
    if code:
        assert err["code"] == code
    return err["title"]


# ----------------------------------------------------------------------------- Cloud v2
def test_v2_create_read_update_with_versions(sim):
    at = tokens(sim, WIKI_SCOPES)["access_token"]
    spa = space(sim, "SPA")
    home = v2(sim, at, "GET", f"/spaces/{spa['id']}").json()["homepageId"]
    r = v2(sim, at, "POST", "/pages", json=new_page(spa["id"], "Sprint 12 Retro", parentId=home))
    assert r.status_code == 200, r.text            # the spec says 200, not 201
    page = r.json()
    assert (page["title"], page["spaceId"], page["parentId"], page["status"]) == \
        ("Sprint 12 Retro", spa["id"], home, "current")
    assert page["version"]["number"] == 1 and page["body"]["storage"]["value"] == BODY
    assert page["_links"]["webui"] == f"/spaces/SPA/pages/{page['id']}"
    assert page["_links"]["base"] == "https://acme.atlassian.net/wiki"
    pid = page["id"]

    got = v2(sim, at, "GET", f"/pages/{pid}?body-format=storage").json()
    assert got["body"]["storage"] == {"representation": "storage", "value": BODY}
    assert got["version"]["number"] == 1 and got["parentId"] == home
    assert v2(sim, at, "GET", f"/pages/{pid}").json()["body"] == {}
    found = v2(sim, at, "GET", "/pages", params={"space-id": spa["id"], "title": "Sprint 12 Retro",
                                                 "body-format": "storage", "limit": 5}).json()
    assert [p["id"] for p in found["results"]] == [pid]
    assert found["results"][0]["body"]["storage"]["value"] == BODY

    # update: version must be current + 1
    r = v2(sim, at, "PUT", f"/pages/{pid}", json=update(pid, "Sprint 12 Retro", 2, "<p>v2</p>"))
    assert r.status_code == 200, r.text
    assert r.json()["version"]["number"] == 2 and r.json()["body"]["storage"]["value"] == "<p>v2</p>"
    for stale in (2, 1, 4):
        title = v2_error(v2(sim, at, "PUT", f"/pages/{pid}", json=update(pid, "Sprint 12 Retro", stale)),
                         409, "CONFLICT")
        assert title == "Version must be incremented on update. Current version is: 2"
    old = v2(sim, at, "GET", f"/pages/{pid}?body-format=storage&version=1").json()
    assert old["version"]["number"] == 1 and old["body"]["storage"]["value"] == BODY
    assert v2(sim, at, "GET", f"/pages/{pid}?version=7").status_code == 404
    # rename and move below another page of the space
    notes = next(p for p in sim.data("pages", space="SPA") if p["title"] == "Meeting notes")
    r = v2(sim, at, "PUT", f"/pages/{pid}",
           json=update(pid, "Sprint 12 Retrospective", 3, parentId=notes["id"]))
    assert r.status_code == 200 and r.json()["parentId"] == notes["id"]

    truth = sim.control("GET", "/confluence/pages?space=SPA&written=true", expect=200)["pages"]
    assert [(p["id"], p["title"], p["version"], p["body"], p["ancestors"]) for p in truth] == \
        [(pid, "Sprint 12 Retrospective", 3, BODY, [home, notes["id"]])]
    assert [v["number"] for v in truth[0]["versions"]] == [1, 2, 3]
    assert truth[0]["authorId"] and truth[0]["generated"] is False
    # a generated page can be updated too (it starts at version 1)
    r = v2(sim, at, "PUT", f"/pages/{notes['id']}", json=update(notes["id"], "Meeting notes", 2))
    assert r.status_code == 200 and r.json()["version"]["number"] == 2


def test_v2_defaults_schema_and_scopes(sim):
    at = tokens(sim, WIKI_SCOPES)["access_token"]
    spb = space(sim, "SPB")
    # no parentId: below the space's homepage; root-level=true: no parent
    r = v2(sim, at, "POST", "/pages", json=new_page(spb["id"], "Under home"))
    assert r.status_code == 200 and r.json()["parentId"] == spb["homepageId"]
    r = v2(sim, at, "POST", "/pages?root-level=true", json=new_page(spb["id"], "At the root"))
    assert r.status_code == 200 and r.json()["parentId"] is None
    assert "already exists" not in r.text
    # nested body form of the spec is accepted too
    r = v2(sim, at, "POST", "/pages", json={"spaceId": spb["id"], "title": "Nested",
                                            "body": {"storage": {"representation": "storage", "value": "<p/>"}}})
    assert r.status_code == 200 and r.json()["body"]["storage"]["value"] == "<p/>"
    bad = [
        ({"title": "x"}, 400, "'spaceId' is required"),
        (new_page(spb["id"], "x", color="red"), 400, 'Unrecognized field "color"'),
        ({**new_page(spb["id"], "x"), "body": {"representation": "storage", "value": "<p>", "x": 1}},
         400, 'Unrecognized field "x"'),
        (new_page(spb["id"], ""), 400, "non-empty 'title'"),
        ({"spaceId": spb["id"], "status": "current"}, 400, "non-empty 'title'"),
        (new_page(spb["id"], "x", status="published"), 400, "current or draft"),
        (new_page(spb["id"], "Bad xhtml", body="<p>Q&A</b>"), 400, "Error parsing xhtml"),
        (new_page(spb["id"], "Bad xhtml", body="<p>unclosed"), 400, "Error parsing xhtml"),
        (new_page("999999999", "x"), 404, None),
        (new_page("abc", "x"), 400, None),
        (new_page(spb["id"], "x", parentId="424242"), 404, None),
    ]
    for body, status, text in bad:
        title = v2_error(v2(sim, at, "POST", "/pages", json=body), status)
        assert text is None or text in title, (body, title)
    # a parent in another space
    spa_home = space(sim, "SPA")["homepageId"]
    v2_error(v2(sim, at, "POST", "/pages", json=new_page(spb["id"], "x", parentId=spa_home)), 400)
    v2_error(v2(sim, at, "POST", "/pages?root-level=true", json=new_page(spb["id"], "x", parentId=spa_home)), 400)
    # HTML entities are fine in storage; other representations are not simulated
    assert v2(sim, at, "POST", "/pages", json=new_page(spb["id"], "Entities", body="<p>a&nbsp;b &copy;</p>")).status_code == 200
    r = v2(sim, at, "POST", "/pages", json={**new_page(spb["id"], "ADF"),
                                            "body": {"representation": "atlas_doc_format", "value": "{}"}})
    assert r.status_code == 501
    # not JSON
    r = v2(sim, at, "POST", "/pages", data="spaceId=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    r = v2(sim, at, "POST", "/pages", data="{nope", headers={"Content-Type": "application/json"})
    v2_error(r, 400)
    # update: every required member
    pid = v2(sim, at, "POST", "/pages", json=new_page(spb["id"], "To update")).json()["id"]
    full = update(pid, "To update", 2)
    for missing in ("id", "status", "title", "body", "version"):
        body = {k: v for k, v in full.items() if k != missing}
        assert missing in v2_error(v2(sim, at, "PUT", f"/pages/{pid}", json=body), 400)
    v2_error(v2(sim, at, "PUT", f"/pages/{pid}", json={**full, "version": {}}), 400)
    v2_error(v2(sim, at, "PUT", f"/pages/{pid}", json={**full, "id": "1"}), 400)
    v2_error(v2(sim, at, "PUT", f"/pages/{pid}", json={**full, "spaceId": space(sim, "SPA")["id"]}), 400)
    v2_error(v2(sim, at, "PUT", f"/pages/{pid}", json={**full, "extra": True}), 400)
    v2_error(v2(sim, at, "PUT", "/pages/987654321", json=update("987654321", "x", 2)), 404)
    # failed updates changed nothing
    assert v2(sim, at, "GET", f"/pages/{pid}").json()["version"]["number"] == 1
    # scopes: reading is not writing
    ro = tokens(sim, "read:page:confluence read:space:confluence")["access_token"]
    r = v2(sim, ro, "POST", "/pages", json=new_page(spb["id"], "No scope"))
    assert r.status_code == 401 and r.json()["message"] == "Unauthorized; scope does not match"
    assert v2(sim, ro, "PUT", f"/pages/{pid}", json=update(pid, "x", 2)).status_code == 401
    assert v2(sim, ro, "GET", f"/pages/{pid}").status_code == 200
    # the site URL with an API token
    r = site(sim, "POST", "/pages", json=new_page(spb["id"], "Via the site"))
    assert r.status_code == 200 and r.json()["_links"]["base"] == sim.site_base() + "/wiki"
    assert site(sim, "GET", f"/pages/{r.json()['id']}?body-format=storage").json()["body"]["storage"]["value"] == BODY


def test_v2_titles_unique_per_space(sim):
    at = tokens(sim, WIKI_SCOPES)["access_token"]
    spa, spb = space(sim, "SPA"), space(sim, "SPB")
    first = v2(sim, at, "POST", "/pages", json=new_page(spa["id"], "Health Check 3")).json()
    for title in ("Health Check 3", "health check 3"):
        r = v2(sim, at, "POST", "/pages", json=new_page(spa["id"], title))
        assert r.status_code == 400
        err = r.json()["errors"][0]
        assert err["code"] == "BAD_REQUEST" and err["status"] == 400
        assert err["title"].startswith("A page with this title already exists")
    # generated pages count, other spaces do not; a draft may share a title (it is not published),
    # but then takes it (test_sim_strict.py)
    assert v2(sim, at, "POST", "/pages", json=new_page(spa["id"], "Meeting notes")).status_code == 400
    assert v2(sim, at, "POST", "/pages", json=new_page(spb["id"], "Health Check 3")).status_code == 200
    r = v2(sim, at, "POST", "/pages", json=new_page(spa["id"], "Health Check 3", status="draft"))
    assert r.status_code == 200 and r.json()["status"] == "draft"
    # renaming onto a taken title
    other = v2(sim, at, "POST", "/pages", json=new_page(spa["id"], "Health Check 4")).json()
    r = v2(sim, at, "PUT", f"/pages/{other['id']}", json=update(other["id"], "HEALTH CHECK 3", 2))
    assert r.status_code == 400 and r.json()["errors"][0]["title"].startswith("A page with this title already exists")
    # keeping its own title is fine
    assert v2(sim, at, "PUT", f"/pages/{first['id']}", json=update(first["id"], "Health Check 3", 2)).status_code == 200
    titles = [p["title"] for p in sim.control("GET", "/confluence/pages?space=SPA", expect=200)["pages"]]
    assert titles.count("Health Check 3") == 2 and "Health Check 4" in titles   # one page + one draft


# ----------------------------------------------------------------------------- Data Center
def test_dc_content_create_update_and_lookup(sim):
    home = dc(sim, "GET", "/rest/api/space/SPA?expand=homepage").json()["homepage"]
    create = {"type": "page", "title": "DC Retro 1", "space": {"key": "SPA"},
              "ancestors": [{"id": home["id"]}],
              "body": {"storage": {"value": BODY, "representation": "storage"}}}
    r = dc(sim, "POST", "/rest/api/content", json=create)
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["type"], page["title"], page["version"]["number"]) == ("page", "DC Retro 1", 1)
    assert [a["id"] for a in page["ancestors"]] == [home["id"]]
    assert page["body"]["storage"]["value"] == BODY and page["space"]["key"] == "SPA"
    assert page["version"]["by"]["username"] == "bridge-bot"
    assert page["_links"]["webui"] == f"/pages/viewpage.action?pageId={page['id']}"
    pid = page["id"]
    found = dc(sim, "GET", "/rest/api/content", params={"spaceKey": "SPA", "title": "DC Retro 1", "type": "page",
                                                         "expand": "version,body.storage,ancestors"}).json()
    assert found["size"] == 1 and found["results"][0]["id"] == pid
    assert found["results"][0]["body"]["storage"]["value"] == BODY
    assert found["results"][0]["version"]["number"] == 1
    # update
    upd = {"id": pid, "type": "page", "title": "DC Retro 1", "version": {"number": 2},
           "body": {"storage": {"value": "<p>v2</p>", "representation": "storage"}}}
    r = dc(sim, "PUT", f"/rest/api/content/{pid}", json=upd)
    assert r.status_code == 200 and r.json()["version"]["number"] == 2
    r = dc(sim, "PUT", f"/rest/api/content/{pid}", json=upd)
    assert r.status_code == 409
    assert r.json()["statusCode"] == 409
    assert r.json()["message"] == "Version must be incremented on update. Current version is: 2"
    got = dc(sim, "GET", f"/rest/api/content/{pid}?expand=body.storage,version").json()
    assert got["body"]["storage"]["value"] == "<p>v2</p>" and got["version"]["number"] == 2
    # no ancestors: at the space root (DC does not default to the homepage)
    r = dc(sim, "POST", "/rest/api/content", json={"type": "page", "title": "Root page", "space": {"key": "SPA"}})
    assert r.status_code == 200 and r.json()["ancestors"] == []
    # titles unique per space
    r = dc(sim, "POST", "/rest/api/content", json={**create, "title": "dc retro 1"})
    assert r.status_code == 400 and r.json()["message"].startswith("A page with this title already exists")
    assert r.json()["statusCode"] == 400 and "data" in r.json()
    r = dc(sim, "PUT", f"/rest/api/content/{pid}", json={**upd, "title": "Meeting notes", "version": {"number": 3}})
    assert r.status_code == 400 and r.json()["message"].startswith("A page with this title already exists")
    # schema and request errors
    for body, status in (({**create, "title": "x", "colour": 1}, 400), ({"title": "x", "space": {"key": "SPA"}}, 400),
                         ({"type": "page", "space": {"key": "SPA"}}, 400), ({"type": "page", "title": "x"}, 400),
                         ({"type": "page", "title": "x", "space": {"key": "NOPE"}}, 404),
                         ({**create, "title": "y", "ancestors": [{"id": "31337"}]}, 404),
                         ({**create, "title": "z", "body": {"storage": {"value": "<p>", "representation": "storage"}}}, 400),
                         ({**create, "title": "w", "body": {"storage": {"value": "<p/>", "representation": "wiki"}}}, 400),
                         ({"type": "blogpost", "title": "x", "space": {"key": "SPA"}}, 501)):
        r = dc(sim, "POST", "/rest/api/content", json=body)
        assert r.status_code == status, (body, r.text)
        if status in (400, 404):
            assert set(r.json()) >= {"statusCode", "message"}
    for body in ({**upd, "version": None}, {k: v for k, v in upd.items() if k != "type"},
                 {k: v for k, v in upd.items() if k != "title"}, {**upd, "id": "1"}):
        assert dc(sim, "PUT", f"/rest/api/content/{pid}", json=body).status_code == 400
    assert dc(sim, "PUT", "/rest/api/content/31337", json=upd).status_code == 404
    # anonymous callers cannot write
    assert dc(sim, "POST", "/rest/api/content", auth=None, json={**create, "title": "anon"}).status_code == 401
    truth = sim.control("GET", "/confluence/pages?space=SPA&flavour=dc&written=true", expect=200)
    assert truth["flavour"] == "dc"
    assert {p["title"]: p["version"] for p in truth["pages"]} == {"DC Retro 1": 2, "Root page": 1}
    # Cloud and DC are separate deployments
    assert sim.control("GET", "/confluence/pages?space=SPA&written=true", expect=200)["pages"] == []


def test_control_pages_and_errors(sim):
    assert requests.get(f"{sim.url}/_sim/confluence/pages?space=NOPE").status_code == 404
    assert requests.get(f"{sim.url}/_sim/confluence/pages?space=SPA&flavour=x").status_code == 400
    assert requests.get(f"{sim.url}/_sim/confluence/pages?space=SPA&site=nope").status_code == 404
    body = sim.control("GET", "/confluence/pages?space=SPA", expect=200)
    home = body["pages"][0]
    assert home["title"].endswith(" Home") and home["parentId"] is None and home["generated"] is True
    assert home["body"] == f"<p>{home['title']}</p>" and home["version"] == 1
    # after reset, written pages are gone
    at = tokens(sim, WIKI_SCOPES)["access_token"]
    v2(sim, at, "POST", "/pages", json=new_page(space(sim, "SPA")["id"], "Temp"))
    assert len(sim.control("GET", "/confluence/pages?written=true", expect=200)["pages"]) == 1
    sim.reset()
    assert sim.control("GET", "/confluence/pages?written=true", expect=200)["pages"] == []
