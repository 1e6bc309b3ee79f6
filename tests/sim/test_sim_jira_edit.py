"""Simulator tests: Jira issue edits — `PUT issue/{key}` (Cloud v3 ADF, DC v2 strings) changes
exactly the fields sent, moves `updated` and tells the listeners only when a value changed;
fields off the edit screen get Jira's 400 shape; a user without Edit Issues gets 403 and an
empty editmeta; editmeta follows the control API's edit screen. Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import pytest
import requests

from .test_sim_jira_issues import adf
from .test_sim_strict import ADMIN, BOT, DC_TASK, TASK, grant

NOT_ON_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."


def caller(sim, flavour):
    if flavour == "cloud":
        base, auth = sim.site_base() + "/rest/api/3", ADMIN
    else:
        base, auth = sim.dc_base("jira-dc") + "/rest/api/2", BOT

    def call(method, path, **kw):
        return requests.request(method, base + path, auth=auth, timeout=10, **kw)
    return call


def new_issue(call, flavour, summary="Follow up", **fields):
    itype = TASK if flavour == "cloud" else DC_TASK
    r = call("POST", "/issue", json={"fields": {"project": {"key": "BRF"}, "issuetype": {"id": itype},
                                                "summary": summary, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def advance(sim, seconds=60):
    sim.control("POST", "/clock/advance", {"seconds": seconds}, expect=200)


@pytest.mark.parametrize("flavour", ["cloud", "dc"])
def test_an_edit_changes_exactly_the_fields_sent_and_moves_updated(sim, flavour):
    call = caller(sim, flavour)
    key = new_issue(call, flavour, duedate="2026-12-01", labels=["retro"])
    before = call("GET", f"/issue/{key}").json()["fields"]
    advance(sim)
    description = adf("New text") if flavour == "cloud" else "New text"
    r = call("PUT", f"/issue/{key}", json={"fields": {"summary": "Renamed", "description": description}})
    assert (r.status_code, r.content) == (204, b"")
    after = call("GET", f"/issue/{key}").json()["fields"]
    assert (after["summary"], after["description"]) == ("Renamed", description)
    assert (after["duedate"], after["labels"]) == ("2026-12-01", ["retro"])     # untouched
    assert after["updated"] > before["updated"]
    # the same values again change nothing, so `updated` stays
    advance(sim)
    assert call("PUT", f"/issue/{key}", json={"fields": {"summary": "Renamed"}}).status_code == 204
    assert call("GET", f"/issue/{key}").json()["fields"]["updated"] == after["updated"]
    # null clears an optional field
    assert call("PUT", f"/issue/{key}", json={"fields": {"duedate": None}}).status_code == 204
    assert call("GET", f"/issue/{key}").json()["fields"]["duedate"] is None


def test_edits_are_validated_like_creates(sim):
    call = caller(sim, "cloud")
    key = new_issue(call, "cloud")
    for fields, field, message in [
        ({"summary": "x" * 256}, "summary", "Summary must be less than 255 characters."),
        ({"summary": None}, "summary", "You must specify a summary of the issue."),
        ({"description": "plain text"}, "description",
         "Operation value must be an Atlassian Document (see the Atlassian Document Format)"),
        ({"duedate": "31/12/2026"}, "duedate", "Error parsing date string: 31/12/2026"),
        ({"assignee": {"accountId": "nobody"}}, "assignee", "Specify a valid value for assignee: user 'nobody' does not exist."),
        ({"project": {"key": "COF"}}, "project", NOT_ON_SCREEN.format("project")),
        ({"customfield_99999": 1}, "customfield_99999", NOT_ON_SCREEN.format("customfield_99999")),
    ]:
        r = call("PUT", f"/issue/{key}", json={"fields": fields})
        assert (r.status_code, r.json()) == (400, {"errorMessages": [], "errors": {field: message}}), fields
    r = call("PUT", f"/issue/{key}", json={"fields": {}, "transitions": []})
    assert r.status_code == 400 and "transitions" in r.json()["errorMessages"][0]
    assert call("PUT", "/issue/BRF-9999", json={"fields": {"summary": "x"}}).status_code == 404


@pytest.mark.parametrize("flavour", ["cloud", "dc"])
def test_the_edit_screen_decides_what_editmeta_lists_and_put_takes(sim, flavour):
    call = caller(sim, flavour)
    key = new_issue(call, flavour)
    fields = call("GET", f"/issue/{key}/editmeta").json()["fields"]
    assert {"summary", "description", "duedate", "assignee", "labels"} <= set(fields)
    assert not {"project", "issuetype"} & set(fields)
    assert fields["summary"]["required"] is True and fields["summary"]["operations"] == ["set"]
    sim.control("PUT", f"/jira/edit-screen?flavour={flavour}", {"project": "BRF", "fields": ["summary"]}, expect=200)
    assert set(call("GET", f"/issue/{key}/editmeta").json()["fields"]) == {"summary"}
    r = call("PUT", f"/issue/{key}", json={"fields": {"summary": "ok", "duedate": "2026-12-31"}})
    assert (r.status_code, r.json()) == (400, {"errorMessages": [], "errors": {"duedate": NOT_ON_SCREEN.format("duedate")}})
    assert call("GET", f"/issue/{key}").json()["fields"]["summary"] == "Follow up"   # nothing written
    sim.control("PUT", f"/jira/edit-screen?flavour={flavour}", {"project": "BRF", "fields": None}, expect=200)
    assert "duedate" in call("GET", f"/issue/{key}/editmeta").json()["fields"]
    assert call("GET", "/issue/BRF-9999/editmeta").status_code == 404
    r = sim.control("PUT", "/jira/edit-screen", {"project": "NOPE", "fields": []})
    assert "project" in r["error"]


def test_without_edit_issues_the_editmeta_is_empty_and_an_edit_is_forbidden(sim):
    call = caller(sim, "cloud")
    key = new_issue(call, "cloud")
    grant(sim, "admin@acme.test", ["browse", "create", "assign"], project="BRF")
    assert call("GET", f"/issue/{key}/editmeta").json() == {"fields": {}}
    r = call("PUT", f"/issue/{key}", json={"fields": {"summary": "Renamed"}})
    assert (r.status_code, r.json()) == (403, {"errorMessages": [
        "You do not have permission to edit issues in this project."], "errors": {}})
    grant(sim, "admin@acme.test", [], project="BRF")          # cannot even browse: it does not exist
    assert call("PUT", f"/issue/{key}", json={"fields": {"summary": "Renamed"}}).status_code == 404
    sim.quirks(enforce_permissions=False)
    assert call("PUT", f"/issue/{key}", json={"fields": {"summary": "Renamed"}}).status_code == 204


def test_an_assignee_edit_needs_an_assignable_user_and_null_unassigns(sim):
    call = caller(sim, "cloud")
    key = new_issue(call, "cloud")
    [one, other] = sim.data("assignable", project="BRF")[:2]
    assert call("PUT", f"/issue/{key}", json={"fields": {"assignee": {"accountId": one["accountId"]}}}).status_code == 204
    assert call("GET", f"/issue/{key}").json()["fields"]["assignee"]["accountId"] == one["accountId"]
    grant(sim, other["accountId"], ["browse"], project="BRF")               # not Assignable User
    r = call("PUT", f"/issue/{key}", json={"fields": {"assignee": {"accountId": other["accountId"]}}})
    assert r.json()["errors"] == {"assignee": f"User '{other['accountId']}' cannot be assigned issues."}
    assert call("PUT", f"/issue/{key}", json={"fields": {"assignee": None}}).status_code == 204
    assert call("GET", f"/issue/{key}").json()["fields"]["assignee"] is None
