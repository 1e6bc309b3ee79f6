"""Simulator tests: faults between the product's commit and its response (`commit_then_drop`,
`commit_then_status`) on the write routes — Confluence pages and attachments, Jira bulk create,
Cloud (gateway and site URL) and DC — and the older fault kinds on those routes.
Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import pytest
import requests

from .test_sim import SITE, tokens

ADMIN = ("admin@acme.test", "ATATT3xFfGF0-sim-acme-admin-token")
BOT = ("bridge-bot", "s3cret-pass")
NO_CHECK = {"X-Atlassian-Token": "no-check"}
WIKI = ("read:page:confluence write:page:confluence read:space:confluence write:confluence-file "
        "read:attachment:confluence")
PAGES_ROUTE = "POST /ex/confluence/{cloudId}/wiki/api/v2/pages"
SITE_ATTACH_ROUTE = "PUT /site/{siteName}/wiki/rest/api/content/{id}/child/attachment"
GW_ATTACH_ROUTE = "PUT /ex/confluence/{cloudId}/wiki/rest/api/content/{id}/child/attachment"
DC_ATTACH_ROUTE = "POST /dc/conf-dc/confluence/rest/api/content/{id}/child/attachment"
DC_PAGES_ROUTE = "POST /dc/conf-dc/confluence/rest/api/content"
GW_BULK_ROUTE = "POST /ex/jira/{cloudId}/rest/api/3/issue/bulk"
SITE_BULK_ROUTE = "POST /site/{siteName}/rest/api/3/issue/bulk"
DC_BULK_ROUTE = "POST /dc/jira-dc/jira/rest/api/2/issue/bulk"


def calls(sim, route):
    return sim.control("GET", f"/calls?route={requests.utils.quote(route)}", expect=200)["calls"]


def spa_id(sim):
    return next(s for s in sim.data("spaces") if s["key"] == "SPA")["id"]


def page_body(sim, title):
    return {"spaceId": spa_id(sim), "title": title, "body": {"representation": "storage", "value": "<p>x</p>"}}


def pdf_form(data=b"%PDF-1.4 one"):
    return [("file", ("summary.pdf", data, "application/pdf")), ("minorEdit", (None, "true"))]


def bulk(*summaries, project="BRF", itype="10002"):
    return {"issueUpdates": [{"fields": {"project": {"key": project}, "issuetype": {"id": itype},
                                         "summary": s, "labels": ["bridge-marker"]}} for s in summaries]}


def test_commit_then_drop_on_create_page(sim):
    at = tokens(sim, WIKI)["access_token"]
    h = {"Authorization": f"Bearer {at}"}
    url = f"{sim.url}/ex/confluence/{SITE}/wiki/api/v2/pages"
    sim.fault(route=PAGES_ROUTE, kind="commit_then_drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url, json=page_body(sim, "Crash after commit"), headers=h, timeout=5)
    # the page exists although the client never heard of it
    [page] = sim.control("GET", "/confluence/pages?space=SPA&written=true", expect=200)["pages"]
    assert page["title"] == "Crash after commit" and page["version"] == 1
    [call] = calls(sim, PAGES_ROUTE)
    assert call["fault"] == "commit_then_drop" and call["dropped"] is True
    assert call["committed_status"] == 200 and call["status"] is None
    # the fault was used up: a blind retry now meets the product's own answer
    r = requests.post(url, json=page_body(sim, "Crash after commit"), headers=h, timeout=5)
    assert r.status_code == 400 and r.json()["errors"][0]["title"].startswith("A page with this title already exists")
    # the page can be found by title, as a client recovering from the crash would
    r = requests.get(url, params={"space-id": spa_id(sim), "title": "Crash after commit"}, headers=h, timeout=5)
    assert [p["id"] for p in r.json()["results"]] == [page["id"]]


def test_commit_then_status_on_put_attachment(sim):
    at = tokens(sim, WIKI)["access_token"]
    h = {"Authorization": f"Bearer {at}"}
    pid = requests.post(f"{sim.url}/ex/confluence/{SITE}/wiki/api/v2/pages", json=page_body(sim, "With PDF"),
                        headers=h, timeout=5).json()["id"]
    path = f"/wiki/rest/api/content/{pid}/child/attachment"
    fid = sim.fault(route=SITE_ATTACH_ROUTE, kind="commit_then_status", status=502,
                    body={"message": "bad gateway"}, retry_after=2)
    r = requests.put(sim.site_base() + path, auth=ADMIN, headers=NO_CHECK, files=pdf_form(), timeout=5)
    assert r.status_code == 502 and r.json() == {"message": "bad gateway"} and r.headers["Retry-After"] == "2"
    [att] = sim.control("GET", f"/confluence/attachments?page_id={pid}", expect=200)["attachments"]
    assert att["version"] == 1
    [call] = calls(sim, SITE_ATTACH_ROUTE)
    assert (call["fault"], call["status"], call["committed_status"]) == ("commit_then_status", 502, 200)
    assert sim.control("GET", "/faults", expect=200)["faults"][0]["id"] == fid
    # retrying the PUT is safe: a second version of the same attachment, not a second file
    r = requests.put(sim.site_base() + path, auth=ADMIN, headers=NO_CHECK, files=pdf_form(b"%PDF-1.4 two"), timeout=5)
    assert r.status_code == 200 and r.json()["results"][0]["id"] == att["id"]
    [att] = sim.control("GET", f"/confluence/attachments?page_id={pid}", expect=200)["attachments"]
    assert att["version"] == 2
    # on the gateway too, with the default status 502 and a refused request still refused
    sim.fault(route=GW_ATTACH_ROUTE, kind="commit_then_status", times=2)
    r = requests.put(f"{sim.url}/ex/confluence/{SITE}{path}", headers={**h, **NO_CHECK}, files=pdf_form(), timeout=5)
    assert r.status_code == 502
    r = requests.put(f"{sim.url}/ex/confluence/{SITE}{path}", headers=h, files=pdf_form(), timeout=5)
    assert r.status_code == 502                      # the XSRF refusal happened, its answer was lost
    gw_calls = calls(sim, GW_ATTACH_ROUTE)
    assert [c["committed_status"] for c in gw_calls] == [200, 403]
    assert sim.control("GET", f"/confluence/attachments?page_id={pid}", expect=200)["attachments"][0]["version"] == 3


def test_commit_faults_on_dc_confluence(sim):
    base = sim.dc_base("conf-dc")
    sim.fault(route=DC_PAGES_ROUTE, kind="commit_then_status", status=504)
    r = requests.post(base + "/rest/api/content", auth=BOT, timeout=5,
                      json={"type": "page", "title": "DC crash", "space": {"key": "SPA"}})
    assert r.status_code == 504
    [page] = sim.control("GET", "/confluence/pages?space=SPA&flavour=dc&written=true", expect=200)["pages"]
    sim.fault(route=DC_ATTACH_ROUTE, kind="commit_then_drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"{base}/rest/api/content/{page['id']}/child/attachment", auth=BOT, headers=NO_CHECK,
                      files=pdf_form(), timeout=5)
    [att] = sim.control("GET", f"/confluence/attachments?page_id={page['id']}&flavour=dc", expect=200)["attachments"]
    assert att["title"] == "summary.pdf"


@pytest.mark.parametrize("route,kind", [(GW_BULK_ROUTE, "commit_then_drop"), (SITE_BULK_ROUTE, "commit_then_status"),
                                        (DC_BULK_ROUTE, "commit_then_drop"), (DC_BULK_ROUTE, "commit_then_status")])
def test_commit_faults_on_bulk_create(sim, route, kind):
    sim.fault(route=route, kind=kind)
    if route == GW_BULK_ROUTE:
        at = tokens(sim, "read:jira-work write:jira-work")["access_token"]
        send = lambda body: requests.post(f"{sim.url}/ex/jira/{SITE}/rest/api/3/issue/bulk", json=body,  # noqa: E731
                                          headers={"Authorization": f"Bearer {at}"}, timeout=5)
        flavour, itype = "cloud", "10002"
    elif route == SITE_BULK_ROUTE:
        send = lambda body: requests.post(sim.site_base() + "/rest/api/3/issue/bulk", json=body,  # noqa: E731
                                          auth=ADMIN, timeout=5)
        flavour, itype = "cloud", "10002"
    else:
        send = lambda body: requests.post(sim.dc_base("jira-dc") + "/rest/api/2/issue/bulk", json=body,  # noqa: E731
                                          auth=BOT, timeout=5)
        flavour, itype = "dc", "3"
    body = bulk("one", "two", itype=itype)
    if kind == "commit_then_drop":
        with pytest.raises(requests.exceptions.ConnectionError):
            send(body)
    else:
        r = send(body)
        assert r.status_code == 502 and r.json() == {"code": 502, "message": "Bad Gateway"}
    stored = sim.control("GET", f"/jira/issues?flavour={flavour}", expect=200)["issues"]
    assert [i["key"] for i in stored] == ["BRF-1", "BRF-2"]
    [call] = calls(sim, route)
    assert call["committed_status"] == 201 and call["fault"] == kind
    # a blind retry makes duplicates: the client must search for its marker first
    assert send(body).status_code == 201
    assert len(sim.control("GET", f"/jira/issues?flavour={flavour}", expect=200)["issues"]) == 4


def test_older_fault_kinds_on_write_routes(sim):
    at = tokens(sim, WIKI)["access_token"]
    h = {"Authorization": f"Bearer {at}"}
    url = f"{sim.url}/ex/confluence/{SITE}/wiki/api/v2/pages"
    sim.fault(route=PAGES_ROUTE, kind="rate_limit", retry_after=3)
    r = requests.post(url, json=page_body(sim, "Limited"), headers=h, timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.headers["RateLimit-Reason"] == "confluence-burst-based"
    sim.fault(route=DC_BULK_ROUTE, kind="status", status=503)
    r = requests.post(sim.dc_base("jira-dc") + "/rest/api/2/issue/bulk", json=bulk("x", itype="3"), auth=BOT, timeout=5)
    assert r.status_code == 503
    sim.fault(route="POST /dc/", kind="drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(sim.dc_base("jira-dc") + "/rest/api/2/issue/bulk", json=bulk("x", itype="3"), auth=BOT, timeout=5)
    # none of them reached the product
    assert sim.control("GET", "/confluence/pages?written=true", expect=200)["pages"] == []
    assert sim.control("GET", "/jira/issues?flavour=dc", expect=200)["issues"] == []
    # fault validation
    for bad in ({"route": "*", "kind": "commit_then_status", "status": 99},
                {"route": "*", "kind": "commit_then_crash"}):
        assert requests.post(f"{sim.url}/_sim/faults", json=bad, timeout=5).status_code == 400
    f = sim.control("POST", "/faults", {"route": PAGES_ROUTE, "kind": "commit_then_status"}, expect=201)
    assert f["fault"]["status"] == 502
