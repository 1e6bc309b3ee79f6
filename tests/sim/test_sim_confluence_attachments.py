"""Simulator tests: Confluence attachments — Cloud v1 upload (POST / PUT), Cloud v2 read-back,
Data Center upload, list and new data; the XSRF header, duplicate names, versions, and the
bytes kept for download (`GET /_sim/confluence/attachments`).
Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import base64

import requests

from .test_sim import SITE, tokens

ADMIN = ("admin@acme.test", "ATATT3xFfGF0-sim-acme-admin-token")
BOT = ("bridge-bot", "s3cret-pass")
SCOPES = ("read:page:confluence write:page:confluence read:space:confluence write:confluence-file "
          "read:attachment:confluence")
GW = f"/ex/confluence/{SITE}/wiki"
NO_CHECK = {"X-Atlassian-Token": "no-check"}
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def form(name="summary.pdf", data=PDF, minor="true", comment=None, ctype="application/pdf"):
    files = [("file", (name, data, ctype))]
    if minor is not None:
        files.append(("minorEdit", (None, minor)))
    if comment is not None:
        files.append(("comment", (None, comment, "text/plain; charset=utf-8")))
    return files


def gw(sim, at, method, path, headers=None, **kw):
    h = {"Authorization": f"Bearer {at}", **(headers or {})}
    return requests.request(method, sim.url + GW + path, headers=h, timeout=5, **kw)


def dc(sim, method, path, auth=BOT, **kw):
    return requests.request(method, sim.dc_base("conf-dc") + path, auth=auth, timeout=5, **kw)


def cloud_page(sim, at, title="Report with PDF", key="SPA"):
    sid = next(s for s in sim.data("spaces") if s["key"] == key)["id"]
    r = gw(sim, at, "POST", "/api/v2/pages", json={"spaceId": sid, "title": title,
                                                   "body": {"representation": "storage", "value": "<p>r</p>"}})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def stored(sim, page_id, flavour="cloud"):
    return sim.control("GET", f"/confluence/attachments?page_id={page_id}&flavour={flavour}", expect=200)["attachments"]


def test_cloud_upload_needs_no_check_and_refuses_duplicate_post(sim):
    at = tokens(sim, SCOPES)["access_token"]
    pid = cloud_page(sim, at)
    path = f"/rest/api/content/{pid}/child/attachment"
    for headers in ({}, {"X-Atlassian-Token": "nocheck"}, {"X-Atlassian-Token": "yes"}):
        r = gw(sim, at, "POST", path, headers=headers, files=form())
        assert r.status_code == 403 and r.text == "XSRF check failed", headers
    assert stored(sim, pid) == []
    r = gw(sim, at, "POST", path, headers=NO_CHECK, files=form(comment="PDF summary"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["size"] == 1 and body["_links"]["base"] == "https://acme.atlassian.net/wiki"
    att = body["results"][0]
    assert att["id"].startswith("att") and att["type"] == "attachment" and att["title"] == "summary.pdf"
    assert att["version"]["number"] == 1 and att["version"]["minorEdit"] is True
    assert att["extensions"] == {"mediaType": "application/pdf", "fileSize": len(PDF),
                                 "comment": "PDF summary", "fileId": att["extensions"]["fileId"]}
    assert att["container"]["id"] == pid and att["_links"]["download"].startswith(f"/download/attachments/{pid}/summary.pdf?version=1")
    # POST with a file name the page already has: 400, nothing changes
    r = gw(sim, at, "POST", path, headers=NO_CHECK, files=form(data=b"other"))
    assert r.status_code == 400
    assert r.json()["statusCode"] == 400
    assert "Cannot add a new attachment with same file name as an existing attachment: summary.pdf" in r.json()["message"]
    [only] = stored(sim, pid)
    assert base64.b64decode(only["content_base64"]) == PDF and only["version"] == 1
    assert only["comment"] == "PDF summary" and only["mediaType"] == "application/pdf"


def test_cloud_put_adds_versions_and_reads_back(sim):
    at = tokens(sim, SCOPES)["access_token"]
    pid = cloud_page(sim, at)
    path = f"/rest/api/content/{pid}/child/attachment"
    ids = []
    for n in range(1, 4):
        r = gw(sim, at, "PUT", path, headers=NO_CHECK, files=form(data=PDF + bytes([n]), comment=f"v{n}"))
        assert r.status_code == 200, r.text
        att = r.json()["results"][0]
        assert att["version"]["number"] == n and att["extensions"]["fileSize"] == len(PDF) + 1
        ids.append(att["id"])
    assert len(set(ids)) == 1                      # one attachment, versions 1..3
    # PUT of a new name creates a second attachment; POST of a new name too
    r = gw(sim, at, "PUT", path, headers=NO_CHECK, files=form(name="notes.txt", data=b"hello", ctype="text/plain"))
    assert r.status_code == 200 and r.json()["results"][0]["version"]["number"] == 1
    r = gw(sim, at, "POST", path, headers=NO_CHECK,
           files=form(name="chart.png", data=b"\x89PNG", ctype="application/octet-stream"))
    assert r.status_code == 200 and r.json()["results"][0]["extensions"]["mediaType"] == "image/png"
    atts = {a["title"]: a for a in stored(sim, pid)}
    assert sorted(atts) == ["chart.png", "notes.txt", "summary.pdf"]
    pdf = atts["summary.pdf"]
    assert pdf["id"] == ids[0] and pdf["version"] == 3 and [v["number"] for v in pdf["versions"]] == [1, 2, 3]
    assert base64.b64decode(pdf["content_base64"]) == PDF + b"\x03" and pdf["comment"] == "v3"
    assert base64.b64decode(atts["notes.txt"]["content_base64"]) == b"hello"
    # Cloud v2 read-back (Cloud v1 has no GET on the collection)
    r = gw(sim, at, "GET", f"/api/v2/pages/{pid}/attachments")
    assert r.status_code == 200
    listed = {a["title"]: a for a in r.json()["results"]}
    assert listed["summary.pdf"]["version"]["number"] == 3 and listed["summary.pdf"]["pageId"] == pid
    assert listed["summary.pdf"]["fileSize"] == len(PDF) + 1 and listed["summary.pdf"]["mediaType"] == "application/pdf"
    r = gw(sim, at, "GET", f"/api/v2/pages/{pid}/attachments?filename=notes.txt")
    assert [a["title"] for a in r.json()["results"]] == ["notes.txt"]
    r = gw(sim, at, "GET", f"/api/v2/pages/{pid}/attachments?limit=2")
    assert len(r.json()["results"]) == 2 and "next" in r.json()["_links"]
    nxt = gw(sim, at, "GET", r.json()["_links"]["next"].removeprefix("/wiki")).json()
    assert len(nxt["results"]) == 1 and "next" not in nxt["_links"]
    assert gw(sim, at, "GET", path).status_code == 405
    # reading needs read:attachment:confluence
    ro = tokens(sim, "read:page:confluence")["access_token"]
    assert gw(sim, ro, "GET", f"/api/v2/pages/{pid}/attachments").status_code == 401


def test_cloud_upload_form_rules_and_scopes(sim):
    at = tokens(sim, SCOPES)["access_token"]
    pid = cloud_page(sim, at)
    path = f"/rest/api/content/{pid}/child/attachment"
    cases = [
        (form(minor=None), 400),                                   # minorEdit is required (spec)
        (form(minor="maybe"), 400),
        ([("minorEdit", (None, "true"))], 400),                    # no file
        (form() + [("colour", (None, "red"))], 400),               # unknown field
        ([("file", (None, b"x")), ("minorEdit", (None, "true"))], 400),   # file part without a name
        (form() + [("comment", (None, "a")), ("comment", (None, "b"))], 400),
    ]
    for files, status in cases:
        r = gw(sim, at, "PUT", path, headers=NO_CHECK, files=files)
        assert r.status_code == status, (files, r.text)
    r = gw(sim, at, "PUT", path, headers={**NO_CHECK, "Content-Type": "application/json"}, data=b"{}")
    assert r.status_code == 415
    assert gw(sim, at, "PUT", "/rest/api/content/31337/child/attachment", headers=NO_CHECK, files=form()).status_code == 404
    assert stored(sim, pid) == []
    # two files in one request, with comments in order
    files = [("file", ("a.txt", b"A", "text/plain")), ("file", ("b.txt", b"B", "text/plain")),
             ("comment", (None, "first")), ("comment", (None, "second")), ("minorEdit", (None, "false"))]
    r = gw(sim, at, "POST", path, headers=NO_CHECK, files=files)
    assert r.status_code == 200 and r.json()["size"] == 2
    assert [(a["title"], a["extensions"]["comment"]) for a in r.json()["results"]] == [("a.txt", "first"), ("b.txt", "second")]
    # all or nothing: one duplicate refuses the whole POST
    files = [("file", ("c.txt", b"C", "text/plain")), ("file", ("a.txt", b"A2", "text/plain")),
             ("minorEdit", (None, "true"))]
    assert gw(sim, at, "POST", path, headers=NO_CHECK, files=files).status_code == 400
    assert sorted(a["title"] for a in stored(sim, pid)) == ["a.txt", "b.txt"]
    # scopes: write:confluence-file (or the granular pair)
    no_file = tokens(sim, "read:page:confluence write:page:confluence")["access_token"]
    r = gw(sim, no_file, "PUT", path, headers=NO_CHECK, files=form())
    assert r.status_code == 401 and r.json()["message"] == "Unauthorized; scope does not match"
    granular = tokens(sim, "read:content-details:confluence write:attachment:confluence")["access_token"]
    assert gw(sim, granular, "PUT", path, headers=NO_CHECK, files=form()).status_code == 200
    # the site URL with an API token
    r = requests.put(f"{sim.site_base()}/wiki{path}", auth=ADMIN, headers=NO_CHECK, files=form(), timeout=5)
    assert r.status_code == 200 and r.json()["results"][0]["version"]["number"] == 2
    assert r.json()["_links"]["base"] == sim.site_base() + "/wiki"
    assert requests.put(f"{sim.site_base()}/wiki{path}", auth=ADMIN, files=form(), timeout=5).status_code == 403


def test_dc_attachments(sim):
    home = dc(sim, "GET", "/rest/api/space/SPB?expand=homepage").json()["homepage"]["id"]
    r = dc(sim, "POST", "/rest/api/content", json={"type": "page", "title": "DC report", "space": {"key": "SPB"},
                                                   "ancestors": [{"id": home}]})
    pid = r.json()["id"]
    path = f"/rest/api/content/{pid}/child/attachment"
    assert dc(sim, "POST", path, files=form(minor=None)).status_code == 403
    assert dc(sim, "POST", path, headers={"X-Atlassian-Token": "nocheck"}, files=form()).text == "XSRF check failed"
    r = dc(sim, "POST", path, headers=NO_CHECK, files=form(minor=None))     # minorEdit optional on DC
    assert r.status_code == 200, r.text
    body = r.json()
    att = body["results"][0]
    assert body["size"] == 1 and body["_links"]["base"] == sim.dc_base("conf-dc")
    assert body["_links"]["context"] == "/confluence"
    assert att["version"]["number"] == 1 and att["version"]["by"]["username"] == "bridge-bot"
    r = dc(sim, "POST", path, headers=NO_CHECK, files=form(data=b"two"))
    assert r.status_code == 400 and r.json()["statusCode"] == 400
    assert r.json()["message"] == "Cannot add a new attachment with same file name as an existing attachment: summary.pdf"
    r = dc(sim, "POST", path + "?allowDuplicated=true", headers=NO_CHECK, files=form(data=b"two"))
    assert r.status_code == 200 and r.json()["results"][0]["version"]["number"] == 2
    assert r.json()["results"][0]["id"] == att["id"]
    r = dc(sim, "POST", f"{path}/{att['id']}/data", headers=NO_CHECK, files=form(data=b"three", comment="third"))
    assert r.status_code == 200 and r.json()["version"]["number"] == 3 and r.json()["id"] == att["id"]
    assert dc(sim, "POST", f"{path}/att999/data", headers=NO_CHECK, files=form()).status_code == 404
    assert dc(sim, "POST", path, headers=NO_CHECK, files=form() + [("hidden", (None, "true"))]).status_code == 400  # dup
    assert dc(sim, "POST", path, headers=NO_CHECK, files=form(name="x.bin") + [("colour", (None, "1"))]).status_code == 400
    # the DC spec has no PUT on the collection
    assert dc(sim, "PUT", path, headers=NO_CHECK, files=form()).status_code == 405
    listed = dc(sim, "GET", path)
    assert listed.status_code == 200
    assert [(a["title"], a["version"]["number"]) for a in listed.json()["results"]] == [("summary.pdf", 3)]
    assert listed.json()["start"] == 0 and listed.json()["size"] == 1
    assert dc(sim, "GET", path + "?filename=none.pdf").json()["results"] == []
    [kept] = stored(sim, pid, "dc")
    assert base64.b64decode(kept["content_base64"]) == b"three" and kept["comment"] == "third"
    # without `flavour`, the deployment that has the page (written ids are unique across deployments)
    found = sim.control("GET", f"/confluence/attachments?page_id={pid}", expect=200)
    assert found["flavour"] == "dc" and found["attachments"][0]["id"] == att["id"]
    assert [v["number"] for v in found["attachments"][0]["versions"]] == [1, 2, 3]
    assert dc(sim, "POST", path, auth=None, headers=NO_CHECK, files=form(name="anon.pdf")).status_code == 401
    assert dc(sim, "POST", "/rest/api/content/31337/child/attachment", headers=NO_CHECK, files=form()).status_code == 404
    assert requests.get(f"{sim.url}/_sim/confluence/attachments?page_id=31337").status_code == 404
