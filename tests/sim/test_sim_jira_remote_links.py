"""Simulator tests: Jira remote issue links — POST creates a link or, with a globalId the issue
already has, updates that link in place (fields left out become null); GET lists them or finds
one by globalId; object.url and object.title are required; without Link Issues 403, without
Browse or for an unknown issue 404. Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import pytest

from .test_sim_jira_edit import caller, new_issue
from .test_sim_strict import grant

LINK = {"globalId": "bridge:confluence-page:site-1:123",
        "application": {"type": "com.atlassian.confluence", "name": "Confluence"},
        "relationship": "Wiki Page",
        "object": {"url": "https://wiki.example.test/pages/123", "title": "Sprint 42 retro"}}


@pytest.mark.parametrize("flavour", ["cloud", "dc"])
def test_a_global_id_updates_its_link_instead_of_adding_another(sim, flavour):
    call = caller(sim, flavour)
    key = new_issue(call, flavour)
    first = call("POST", f"/issue/{key}/remotelink", json=LINK)
    assert first.status_code == (201 if flavour == "cloud" else 200), first.text
    assert set(first.json()) == {"id", "self"} and first.json()["self"].endswith(f"/issue/{key}/remotelink/{first.json()['id']}")
    renamed = dict(LINK, object={"url": LINK["object"]["url"], "title": "Renamed"})
    del renamed["relationship"]
    again = call("POST", f"/issue/{key}/remotelink", json=renamed)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    links = call("GET", f"/issue/{key}/remotelink").json()
    assert len(links) == 1
    assert links[0]["object"]["title"] == "Renamed" and "relationship" not in links[0]   # set to null
    one = call("GET", f"/issue/{key}/remotelink", params={"globalId": LINK["globalId"]})
    assert one.status_code == 200 and one.json()["id"] == first.json()["id"]
    assert call("GET", f"/issue/{key}/remotelink", params={"globalId": "other"}).status_code == 404
    # without a globalId, or with another one, each POST adds a link
    assert call("POST", f"/issue/{key}/remotelink", json={"object": LINK["object"]}).status_code in (200, 201)
    assert call("POST", f"/issue/{key}/remotelink", json=dict(LINK, globalId="g2")).status_code in (200, 201)
    assert len(call("GET", f"/issue/{key}/remotelink").json()) == 3


@pytest.mark.parametrize("flavour", ["cloud", "dc"])
def test_a_link_needs_url_title_a_known_issue_and_link_issues(sim, flavour):
    call = caller(sim, flavour)
    key = new_issue(call, flavour)
    bad = call("POST", f"/issue/{key}/remotelink", json={"object": {"url": "https://x.test"}})
    assert bad.status_code == 400 and bad.json()["errors"] == {"title": "'title' is required."}
    assert call("POST", "/issue/BRF-9999/remotelink", json=LINK).status_code == 404
    assert call("GET", "/issue/BRF-9999/remotelink").status_code == 404
    user = "admin@acme.test" if flavour == "cloud" else "bridge-bot"
    grant(sim, user, ["browse", "create", "edit"], flavour=flavour, project="BRF")
    denied = call("POST", f"/issue/{key}/remotelink", json=LINK)
    assert denied.status_code == 403 and denied.json()["errorMessages"]
    assert call("GET", f"/issue/{key}/remotelink").json() == []      # browsing still works
    grant(sim, user, ["create"], flavour=flavour, project="BRF")
    assert call("POST", f"/issue/{key}/remotelink", json=LINK).status_code == 404
