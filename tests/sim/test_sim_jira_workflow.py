"""Simulator tests: Jira issues changed "by a person in Jira" through the control API (workflow
transitions, edits, deletions, planted issues), `updated` on every change, and the JQL the
issue sync asks (`updated >=` / `>` / `<=` in Jira's date forms and relative periods, `status`,
`statusCategory`, `ORDER BY updated`), with Jira's 400 for what it refuses; searches counted.
Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

from .test_sim_jira_issues import Cloud, dc

LABEL = "bridge-t-0123456789abcdef0123"


def plant(sim, count, flavour="cloud", project="BRF", labels=(LABEL,)):
    return sim.control("POST", f"/jira/issues?flavour={flavour}", {"project": project, "count": count,
                                                                    "labels": list(labels)}, expect=201)["issues"]


def search(sim, jql, flavour="cloud", fields="status,resolution,updated,summary"):
    if flavour == "cloud":
        r = Cloud(sim)("GET", "/search/jql", params={"jql": jql, "fields": fields, "maxResults": 100})
    else:
        r = dc(sim, "GET", "/search", params={"jql": jql, "fields": fields, "maxResults": 100})
    return r


def keys(r):
    assert r.status_code == 200, r.text
    return [i["key"] for i in r.json()["issues"]]


def advance(sim, seconds):
    sim.control("POST", "/clock/advance", {"seconds": seconds}, expect=200)


def test_a_transition_moves_status_resolution_and_updated(sim):
    [a, b] = plant(sim, 2)
    advance(sim, 120)
    before = Cloud(sim)("GET", f"/issue/{a['key']}").json()["fields"]
    assert (before["status"]["name"], before["status"]["statusCategory"]["key"], before["resolution"]) == \
        ("To Do", "new", None)
    moved = sim.control("POST", f"/jira/issues/{a['key']}/transition", {"status": "Done"}, expect=200)
    after = Cloud(sim)("GET", f"/issue/{a['key']}").json()["fields"]
    assert after["status"]["name"] == "Done" and after["status"]["statusCategory"]["key"] == "done"
    assert after["resolution"]["name"] == "Done"
    assert after["updated"] == moved["updated"] and after["updated"] > before["updated"]
    # JQL sees it by status, category and recency; the untouched one by none of them
    assert keys(search(sim, f"labels = {LABEL} AND status = Done")) == [a["key"]]
    assert keys(search(sim, f"labels = {LABEL} AND statusCategory = done")) == [a["key"]]
    assert keys(search(sim, f'labels = {LABEL} AND updated >= "-1m"')) == [a["key"]]
    assert keys(search(sim, f"labels = {LABEL} AND statusCategory = new")) == [b["key"]]
    # back to In Progress: the resolution is cleared
    sim.control("POST", f"/jira/issues/{a['key']}/transition", {"status": "In Progress"}, expect=200)
    f = Cloud(sim)("GET", f"/issue/{a['key']}").json()["fields"]
    assert (f["status"]["statusCategory"]["key"], f["resolution"]) == ("indeterminate", None)
    r = sim.control("POST", f"/jira/issues/{a['key']}/transition", {"status": "Shipped"})
    assert "status" in r["error"]


def test_updated_orders_and_bounds_searches_at_the_minute(sim):
    planted = plant(sim, 3)
    advance(sim, 600)
    for n, p in enumerate(reversed(planted)):    # changed in reverse order, two minutes apart
        if n:
            advance(sim, 120)
        sim.control("POST", f"/jira/issues/{p['key']}/transition", {"status": "In Progress"}, expect=200)
    order = keys(search(sim, f"labels = {LABEL} ORDER BY updated ASC"))
    assert order == [p["key"] for p in reversed(planted)]
    assert keys(search(sim, f"labels = {LABEL} ORDER BY updated DESC")) == [p["key"] for p in planted]
    # relative periods count back from now (sim clock): the last two changes
    assert len(keys(search(sim, f'labels = {LABEL} AND updated >= "-3m"'))) == 2
    assert len(keys(search(sim, f'labels = {LABEL} AND updated > "-3m"'))) == 1
    assert len(keys(search(sim, f'labels = {LABEL} AND updated <= "-3m"'))) == 2
    # absolute dates in Jira's forms (UTC, the sim user's zone), at the start of their minute
    clock = sim.control("GET", "/clock", expect=200)
    import datetime as dt
    now = dt.datetime.fromtimestamp(clock["now"], dt.timezone.utc)
    stamp = (now - dt.timedelta(minutes=3)).strftime("%Y/%m/%d %H:%M")
    assert len(keys(search(sim, f'labels = {LABEL} AND updated >= "{stamp}"'))) == 2
    assert len(keys(search(sim, f'labels = {LABEL} AND updated >= "{stamp.replace("/", "-")}"'))) == 2
    assert len(keys(search(sim, f'labels = {LABEL} AND updated >= "{now + dt.timedelta(days=1):%Y-%m-%d}"'))) == 0


def test_jira_refuses_what_it_would(sim):
    plant(sim, 1)
    advance(sim, 10)
    r = search(sim, f'labels = {LABEL} AND updated >= "yesterday"')
    assert r.status_code == 400 and "Date value 'yesterday'" in r.json()["errorMessages"][0]
    r = search(sim, f"labels = {LABEL} AND flavor = x")
    assert r.status_code == 400 and "does not exist" in r.json()["errorMessages"][0]
    r = search(sim, f"labels = {LABEL} AND status = Shipped")
    assert r.status_code == 400
    r = search(sim, f"labels = {LABEL} AND status > Done")
    assert r.status_code == 400


def test_edits_and_deletions_by_a_person_in_jira(sim):
    [a, b] = plant(sim, 2)
    advance(sim, 10)                             # past the search index's delay
    heard = sim.control("PATCH", f"/jira/issues/{a['key']}", {"fields": {"summary": "Renamed", "duedate": "2026-12-24"}},
                        expect=200)
    f = Cloud(sim)("GET", f"/issue/{a['key']}").json()["fields"]
    assert (f["summary"], f["duedate"], f["updated"]) == ("Renamed", "2026-12-24", heard["updated"])
    r = sim.control("PATCH", f"/jira/issues/{a['key']}", {"fields": {"priority": "1"}})
    assert "cannot edit" in r["error"]
    sim.control("DELETE", f"/jira/issues/{b['key']}", expect=200)
    assert Cloud(sim)("GET", f"/issue/{b['key']}").status_code == 404
    # the deletion check: ids that are gone are left out, not refused
    assert keys(search(sim, f"id in ({a['id']}, {b['id']})", fields="key")) == [a["key"]]
    r = sim.control("POST", f"/jira/issues/{b['key']}/transition", {"status": "Done"})
    assert "no issue" in r["error"]


def test_dc_speaks_the_same_workflow(sim):
    [a] = plant(sim, 1, flavour="dc", project="BRF")
    advance(sim, 120)
    sim.control("POST", f"/jira/issues/{a['key']}/transition?flavour=dc", {"status": "Done"}, expect=200)
    r = dc(sim, "GET", f"/issue/{a['key']}")
    assert r.json()["fields"]["status"]["statusCategory"]["key"] == "done"
    assert keys(search(sim, f'labels = {LABEL} AND updated >= "-1m" ORDER BY updated ASC', flavour="dc")) == [a["key"]]


def test_searches_are_counted_per_label(sim):
    plant(sim, 1)
    advance(sim, 10)
    sim.control("DELETE", "/jira/searches", expect=200)
    keys(search(sim, f"labels = {LABEL}"))
    keys(search(sim, "labels = other-label"))
    keys(search(sim, "project = BRF"))
    assert sim.control("GET", "/jira/searches", expect=200)["count"] == 3
    counted = sim.control("GET", f"/jira/searches?label={LABEL}", expect=200)
    assert counted["count"] == 1 and counted["searches"][0]["jql"] == f"labels = {LABEL}"


def test_planting_checks_its_input(sim):
    assert "project" in sim.control("POST", "/jira/issues", {"project": "NOPE", "count": 1})["error"]
    assert "count" in sim.control("POST", "/jira/issues", {"project": "BRF", "count": 0})["error"]
