"""Simulator tests: Jira issues — create (single, bulk with per-element errors), field validation
against the create metadata (REQ's required Team field, ADF on Cloud v3, users, labels, dates),
read-back, sub-tasks and the delete rule, JQL search for a marker label; Cloud v3 (gateway and
site URL) and DC v2. Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import pytest
import requests

from .test_sim import SITE, tokens

ADMIN = ("admin@acme.test", "ATATT3xFfGF0-sim-acme-admin-token")
BOT = ("bridge-bot", "s3cret-pass")
SCOPES = "read:jira-work write:jira-work read:jira-user offline_access"
GW = f"/ex/jira/{SITE}/rest/api/3"
TASK, SUBTASK, STORY = "10002", "10003", "10001"          # Cloud issue type ids
DC_TASK, DC_SUBTASK = "3", "5"


def adf(*paragraphs):
    return {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": t}]} for t in paragraphs]}


class Cloud:
    def __init__(self, sim):
        self.sim = sim
        self.at = tokens(sim, SCOPES)["access_token"]

    def __call__(self, method, path, headers=None, **kw):
        headers = {"Authorization": f"Bearer {self.at}", **(headers or {})}
        return requests.request(method, self.sim.url + GW + path, timeout=5, headers=headers, **kw)


def dc(sim, method, path, auth=BOT, **kw):
    return requests.request(method, sim.dc_base("jira-dc") + "/rest/api/2" + path, auth=auth, timeout=5, **kw)


def task(summary="Follow up", project="BRF", itype=TASK, **fields):
    return {"project": {"key": project}, "issuetype": {"id": itype}, "summary": summary, **fields}


@pytest.fixture
def cloud(sim):
    return Cloud(sim)


def issues(sim, flavour="cloud", project=None):
    q = f"?flavour={flavour}" + (f"&project={project}" if project else "")
    return sim.control("GET", "/jira/issues" + q, expect=200)["issues"]


# ----------------------------------------------------------------------------- create + read
def test_cloud_create_and_read_back(sim, cloud):
    assignee = sim.data("assignable", project="BRF")[3]["accountId"]
    comp = sim.data("components", project="BRF")[1]
    fields = task("Fix the flaky deploy", description=adf("Seen twice this sprint.", "Owner: platform"),
                  labels=["retro-action", "bridge-marker-1"], priority={"name": "High"},
                  components=[{"id": comp["id"]}], assignee={"accountId": assignee}, duedate="2026-12-31")
    r = cloud("POST", "/issue", json={"fields": fields})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["key"] == "BRF-1" and created["self"] == f"{sim.url}{GW}/issue/{created['id']}"
    assert set(created) == {"id", "key", "self"}
    got = cloud("GET", f"/issue/{created['key']}").json()
    f = got["fields"]
    assert (got["id"], got["key"]) == (created["id"], "BRF-1")
    assert f["summary"] == "Fix the flaky deploy" and f["description"] == fields["description"]
    assert f["labels"] == ["retro-action", "bridge-marker-1"] and f["duedate"] == "2026-12-31"
    assert (f["priority"]["id"], f["priority"]["name"]) == ("2", "High")
    assert [c["id"] for c in f["components"]] == [comp["id"]]
    assert f["assignee"]["accountId"] == assignee and f["issuetype"]["id"] == TASK
    assert f["project"]["key"] == "BRF" and f["status"]["name"] == "To Do" and f["subtasks"] == []
    assert f["reporter"]["accountId"] == f["creator"]["accountId"]
    assert set(cloud("GET", f"/issue/{created['id']}?fields=summary,labels").json()["fields"]) == {"summary", "labels"}
    assert "description" not in cloud("GET", "/issue/BRF-1?fields=-description").json()["fields"]
    assert cloud("GET", "/issue/brf-1").status_code == 200
    r = cloud("GET", "/issue/BRF-99")
    assert r.status_code == 404 and r.json()["errorMessages"] == ["Issue does not exist or you do not have permission to see it."]
    [stored] = issues(sim)
    assert stored["fields"] == fields                       # exactly as sent
    assert stored["values"]["priority"] == "2" and stored["values"]["reporter"] == f["reporter"]["accountId"]
    # default priority applied when none is sent
    r = cloud("POST", "/issue", json={"fields": task("No priority")})
    assert r.status_code == 201 and cloud("GET", f"/issue/{r.json()['key']}").json()["fields"]["priority"]["name"] == "Medium"
    # site URL with an API token; DC is a separate deployment
    r = requests.post(sim.site_base() + "/rest/api/3/issue", auth=ADMIN, json={"fields": task("Via site")}, timeout=5)
    assert r.status_code == 201 and r.json()["key"] == "BRF-3"
    assert r.json()["self"].startswith(sim.site_base() + "/rest/api/3/issue/")
    assert issues(sim, "dc") == []


def test_req_requires_team_field(sim, cloud):
    r = cloud("POST", "/issue", json={"fields": task("Needs a team", project="REQ")})
    assert r.status_code == 400
    assert r.json() == {"errorMessages": [], "errors": {"customfield_10050": "Team is required."}}
    r = cloud("POST", "/issue", json={"fields": task("Bad team", project="REQ", customfield_10050={"value": "Sales"})})
    assert r.status_code == 400 and r.json()["errors"] == {"customfield_10050": "Option value 'Sales' is not valid"}
    r = cloud("POST", "/issue", json={"fields": task("Bad team", project="REQ", customfield_10050={"id": "1"})})
    assert r.json()["errors"] == {"customfield_10050": "Option id '1' is not valid"}
    r = cloud("POST", "/issue", json={"fields": task("Team given", project="REQ", customfield_10050={"value": "Payments"})})
    assert r.status_code == 201 and r.json()["key"] == "REQ-1"
    got = cloud("GET", "/issue/REQ-1").json()["fields"]
    assert got["customfield_10050"]["value"] == "Payments" and got["customfield_10050"]["id"] == "10101"
    assert got["priority"]["name"] == "Medium"              # required, but has a default
    # the Team field is only on REQ's Task screen
    r = cloud("POST", "/issue", json={"fields": task("Elsewhere", customfield_10050={"value": "Data"})})
    assert r.json()["errors"] == {"customfield_10050": "Field 'customfield_10050' cannot be set. It is not on "
                                                        "the appropriate screen, or unknown."}
    # DC has the same rule
    r = dc(sim, "POST", "/issue", json={"fields": task("DC team", project="REQ", itype=DC_TASK)})
    assert r.status_code == 400 and r.json()["errors"] == {"customfield_10050": "Team is required."}


BAD_CLOUD_FIELDS = [
    ({"summary": "x" * 256}, "summary", "Summary must be less than 255 characters."),
    ({"summary": "two\nlines"}, "summary", "The summary is invalid because it contains newline characters."),
    ({"summary": ""}, "summary", "You must specify a summary of the issue."),
    ({"labels": ["two words"]}, "labels", "The label 'two words' contains spaces which is invalid."),
    ({"labels": "retro"}, "labels", "data was not an array"),
    ({"duedate": "31/12/2026"}, "duedate", "Error parsing date string: 31/12/2026"),
    ({"duedate": "2026-02-30"}, "duedate", "Error parsing date string: 2026-02-30"),
    ({"priority": {"id": "9"}}, "priority", "The priority selected is invalid."),
    ({"components": [{"id": "1"}]}, "components", "Component with id '1' does not exist."),
    ({"components": [{"name": "Nope"}]}, "components", "Component name 'Nope' is not valid"),
    ({"environment": "prod"}, "environment", "Field 'environment' cannot be set. It is not on the appropriate screen, or unknown."),
    ({"description": "plain text"}, "description", "Operation value must be an Atlassian Document (see the Atlassian Document Format)"),
    ({"description": adf("line one\nline two")}, "description", None),
    ({"description": {"type": "doc", "version": 2, "content": []}}, "description", None),
    ({"description": {"type": "doc", "version": 1, "content": [{"type": "text", "text": "bare"}]}}, "description", None),
    ({"description": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]}}, "description", None),
    ({"description": {"type": "doc", "version": 1, "content": [{"type": "blink"}]}}, "description", None),
    ({"description": {"type": "doc", "version": 1, "content": [{"type": "heading", "content": []}]}}, "description", None),
    ({"assignee": {"name": "bridge-bot"}}, "assignee", None),
    ({"assignee": {"accountId": "no-such-account"}}, "assignee", None),
    ({"customfield_10016": "five"}, "customfield_10016", None),               # Story points on a Task
]


@pytest.mark.parametrize("extra,field,message", BAD_CLOUD_FIELDS)
def test_cloud_field_validation(sim, cloud, extra, field, message):
    r = cloud("POST", "/issue", json={"fields": {**task(), **extra}})
    assert r.status_code == 400, r.text
    errors = r.json()["errors"]
    assert list(errors) == [field]
    if message:
        assert errors[field] == message
    assert issues(sim) == []


def test_cloud_request_shape_and_users(sim, cloud):
    inactive = next(u for u in sim.data("users") if not u["active"])["accountId"]
    r = cloud("POST", "/issue", json={"fields": task(assignee={"accountId": inactive})})
    assert r.status_code == 400 and "cannot be assigned issues" in r.json()["errors"]["assignee"]
    assert cloud("POST", "/issue", json={"fields": task(assignee={"id": sim.data("assignable", project="BRF")[0]["accountId"]})}).status_code == 201
    assert cloud("POST", "/issue", json={"fields": task(assignee=None)}).status_code == 201
    r = cloud("POST", "/issue", json={"fields": task(), "colour": "red"})
    assert r.status_code == 400 and r.json()["errorMessages"][0].startswith('Unrecognized field "colour"')
    r = cloud("POST", "/issue", json={"fields": {"summary": "no project"}})
    assert r.json()["errors"] == {"project": "Specify a valid project ID or key", "issuetype": "Specify an issue type"}
    r = cloud("POST", "/issue", json={"fields": task(project="NOPE")})
    assert r.json()["errors"] == {"project": "Specify a valid project ID or key"}
    r = cloud("POST", "/issue", json={"fields": task(itype="1")})
    assert r.json()["errors"] == {"issuetype": "The issue type selected is invalid."}
    assert cloud("POST", "/issue", json={"fields": {**task(), "issuetype": {"name": "Story"},
                                                    "customfield_10016": 3}}).status_code == 201
    assert cloud("POST", "/issue", data="{", headers={"Content-Type": "application/json"}).status_code == 400
    assert cloud("POST", "/issue", data="x", headers={"Content-Type": "text/plain"}).status_code == 415
    # `update` operations count as fields
    r = cloud("POST", "/issue", json={"fields": task("With update"), "update": {"labels": [{"add": "one"}, {"add": "two"}]}})
    assert r.status_code == 201
    assert cloud("GET", f"/issue/{r.json()['key']}?fields=labels").json()["fields"]["labels"] == ["one", "two"]
    r = cloud("POST", "/issue", json={"fields": task(labels=["a"]), "update": {"labels": [{"add": "b"}]}})
    assert r.status_code == 400 and "labels" in r.json()["errors"]
    # a newline inside a codeBlock is fine, and the quirk can let paragraph newlines through
    code = {"type": "doc", "version": 1, "content": [{"type": "codeBlock", "content": [{"type": "text", "text": "a\nb"}]}]}
    assert cloud("POST", "/issue", json={"fields": task(description=code)}).status_code == 201
    sim.quirks(adf_reject_newlines=False)
    assert cloud("POST", "/issue", json={"fields": task(description=adf("a\nb"))}).status_code == 201
    # scopes
    ro = tokens(sim, "read:jira-work")["access_token"]
    r = requests.post(sim.url + GW + "/issue", json={"fields": task()}, headers={"Authorization": f"Bearer {ro}"}, timeout=5)
    assert r.status_code == 401 and r.json()["message"] == "Unauthorized; scope does not match"


def test_dc_create_fields_and_users(sim):
    fields = task("DC action", itype=DC_TASK, description="h3. Wiki *markup*", assignee={"name": "bridge-bot"},
                  labels=["retro"], priority={"id": "1"})
    r = dc(sim, "POST", "/issue", json={"fields": fields})
    assert r.status_code == 201, r.text
    assert r.json()["key"] == "BRF-1" and r.json()["self"].startswith(sim.dc_base("jira-dc") + "/rest/api/2/issue/")
    got = dc(sim, "GET", "/issue/BRF-1").json()["fields"]
    assert got["description"] == "h3. Wiki *markup*" and got["assignee"]["name"] == "bridge-bot"
    assert got["reporter"]["name"] == "bridge-bot" and got["priority"]["name"] == "Highest"
    assert issues(sim, "dc")[0]["fields"] == fields
    for extra, field, msg in (({"description": adf("x")}, "description", "Operation value must be a string"),
                              ({"assignee": {"accountId": "abc"}}, "assignee", None),
                              ({"assignee": {"name": "no.such.user"}}, "assignee", "User 'no.such.user' does not exist.")):
        r = dc(sim, "POST", "/issue", json={"fields": {**task(itype=DC_TASK), **extra}})
        assert r.status_code == 400 and list(r.json()["errors"]) == [field]
        if msg:
            assert r.json()["errors"][field] == msg
    assert dc(sim, "POST", "/issue", auth=None, json={"fields": task(itype=DC_TASK)}).status_code == 401
    assert dc(sim, "GET", "/issue/BRF-1", auth=None).status_code == 401


# ----------------------------------------------------------------------------- bulk
def test_bulk_partial_and_all_failed(sim, cloud):
    good = {"fields": task("one", labels=["m1"])}
    bad = {"fields": task("bad", labels=["has space"])}
    r = cloud("POST", "/issue/bulk", json={"issueUpdates": [good, bad, {"fields": task("three", labels=["m1"])}]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert [i["key"] for i in body["issues"]] == ["BRF-1", "BRF-2"]
    assert all(set(i) == {"id", "key", "self"} for i in body["issues"])
    assert body["errors"] == [{"status": 400, "failedElementNumber": 1, "elementErrors": {
        "errorMessages": [], "errors": {"labels": "The label 'has space' contains spaces which is invalid."}}}]
    # every element failing: 400 with the same body shape
    r = cloud("POST", "/issue/bulk", json={"issueUpdates": [bad, {"fields": task(project="REQ")}, "junk"]})
    assert r.status_code == 400
    body = r.json()
    assert body["issues"] == [] and [e["failedElementNumber"] for e in body["errors"]] == [0, 1, 2]
    assert body["errors"][1]["elementErrors"]["errors"] == {"customfield_10050": "Team is required."}
    assert body["errors"][2]["elementErrors"]["errorMessages"]
    assert len(issues(sim)) == 2
    # limits and shape
    r = cloud("POST", "/issue/bulk", json={"issueUpdates": [good] * 51})
    assert r.status_code == 400 and r.json()["errorMessages"] and len(issues(sim)) == 2
    assert cloud("POST", "/issue/bulk", json={"issueUpdates": [good] * 50}).status_code == 201
    assert len(issues(sim)) == 52
    assert cloud("POST", "/issue/bulk", json={"issueUpdates": []}).status_code == 400
    assert cloud("POST", "/issue/bulk", json={"issues": [good]}).status_code == 400
    # DC bulk
    r = dc(sim, "POST", "/issue/bulk", json={"issueUpdates": [{"fields": task("dc", itype=DC_TASK)},
                                                              {"fields": task("dc bad", itype=TASK)}]})
    assert r.status_code == 201
    assert [i["key"] for i in r.json()["issues"]] == ["BRF-1"]
    assert r.json()["errors"][0]["elementErrors"]["errors"] == {"issuetype": "The issue type selected is invalid."}
    r = dc(sim, "POST", "/issue/bulk", json={"issueUpdates": [{"fields": task("dc bad", itype=TASK)}]})
    assert r.status_code == 400 and r.json()["issues"] == []


# ----------------------------------------------------------------------------- sub-tasks, delete
@pytest.mark.parametrize("flavour", ["cloud", "dc"])
def test_subtasks_and_delete_rule(sim, flavour):
    if flavour == "cloud":
        call = Cloud(sim)
        parent_type, sub_type = TASK, SUBTASK
    else:
        def call(method, path, **kw):
            return dc(sim, method, path, **kw)
        parent_type, sub_type = DC_TASK, DC_SUBTASK
    parent = call("POST", "/issue", json={"fields": task("Parent", itype=parent_type)}).json()
    r = call("POST", "/issue", json={"fields": task("Sub without parent", itype=sub_type)})
    assert r.status_code == 400
    assert r.json()["errorMessages"] == ["Issue type is a sub-task but parent issue key or id not specified."]
    r = call("POST", "/issue", json={"fields": task("Sub", itype=sub_type, parent={"key": "BRF-404"})})
    assert r.json()["errors"] == {"parent": "Could not find issue by id or key."}
    r = call("POST", "/issue", json={"fields": task("Parent on a task", itype=parent_type, parent={"key": parent["key"]})})
    assert r.status_code == 400 and "parent" in r.json()["errors"]
    sub = call("POST", "/issue", json={"fields": task("Sub", itype=sub_type, parent={"key": parent["key"]})})
    assert sub.status_code == 201, sub.text
    sub = sub.json()
    sub2 = call("POST", "/issue", json={"fields": task("Sub 2", itype=sub_type, parent={"id": parent["id"]})}).json()
    got = call("GET", f"/issue/{parent['key']}").json()["fields"]
    assert [s["key"] for s in got["subtasks"]] == [sub["key"], sub2["key"]]
    assert call("GET", f"/issue/{sub['key']}").json()["fields"]["parent"]["key"] == parent["key"]
    for q in ("", "?deleteSubtasks=false"):
        r = call("DELETE", f"/issue/{parent['key']}{q}")
        assert r.status_code == 400
        assert r.json()["errorMessages"] == [f"The issue '{parent['key']}' has subtasks.  You must specify the "
                                             "'deleteSubtasks' parameter to delete this issue with all its subtasks."]
    assert call("DELETE", f"/issue/{sub2['key']}").status_code == 204      # a sub-task alone
    assert [s["key"] for s in call("GET", f"/issue/{parent['key']}").json()["fields"]["subtasks"]] == [sub["key"]]
    r = call("DELETE", f"/issue/{parent['key']}?deleteSubtasks=true")
    assert r.status_code == 204 and r.content == b""
    for key in (parent["key"], sub["key"]):
        assert call("GET", f"/issue/{key}").status_code == 404
    assert call("DELETE", f"/issue/{parent['key']}").status_code == 404
    assert issues(sim, flavour) == []


# ----------------------------------------------------------------------------- search
def test_cloud_search_by_marker_label(sim, cloud):
    for summary, labels, project in (("a", ["marker-1", "x"], "BRF"), ("b", ["marker-1"], "COF"),
                                     ("c", ["marker-2"], "BRF"), ("d", [], "BRF")):
        assert cloud("POST", "/issue", json={"fields": task(summary, project=project, labels=labels)}).status_code == 201
    sim.control("POST", "/clock/advance", {"seconds": 3}, expect=200)     # past the index delay

    def search(jql, **params):
        return cloud("GET", "/search/jql", params={"jql": jql, **params})

    r = search('labels = "marker-1"', fields="key,summary,labels", maxResults=50)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["isLast"] is True and "nextPageToken" not in body
    assert sorted(i["key"] for i in body["issues"]) == ["BRF-1", "COF-1"]
    assert set(body["issues"][0]["fields"]) == {"summary", "labels"}
    assert {i["key"] for i in search("labels = marker-1 AND project = BRF", fields="key").json()["issues"]} == {"BRF-1"}
    assert {i["key"] for i in search("project = brf and labels = marker-1", fields="key").json()["issues"]} == {"BRF-1"}
    assert {i["key"] for i in search("labels in (marker-1, marker-2) ORDER BY key ASC", fields="key").json()["issues"]} == \
        {"BRF-1", "COF-1", "BRF-2"}
    assert {i["key"] for i in search("project = BRF AND labels is EMPTY", fields="key").json()["issues"]} == {"BRF-3"}
    # default fields: ids only
    assert search("labels = marker-2").json()["issues"] == [{"id": issues(sim)[2]["id"]}]
    # pages through nextPageToken
    first = search("project = BRF ORDER BY key ASC", fields="key", maxResults=2).json()
    assert [i["key"] for i in first["issues"]] == ["BRF-1", "BRF-2"] and first["isLast"] is False
    rest = search("project = BRF ORDER BY key ASC", fields="key", maxResults=2, nextPageToken=first["nextPageToken"]).json()
    assert [i["key"] for i in rest["issues"]] == ["BRF-3"] and rest["isLast"] is True
    assert search("labels = nobody-uses-this", fields="key").json() == {"issues": [], "isLast": True}
    # refusals: 400 with Jira's messages; 501 for JQL the sim does not evaluate
    for jql, text in (("", "Unbounded JQL queries are not allowed here"),
                      ("ORDER BY key", "Unbounded JQL queries are not allowed here"),
                      ("labels = ", "Error in the JQL Query"),
                      ("labels marker-1", "Expecting operator"),
                      ('labels = "open', "has not been completed"),
                      ("labels = AND", "surround 'AND' in quotation marks"),
                      ("colour = red", "Field 'colour' does not exist or you do not have permission to view it."),
                      ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'.")):
        r = search(jql, fields="key")
        assert r.status_code == 400, jql
        assert text in r.json()["errorMessages"][0], (jql, r.json())
    assert search("assignee = jdoe", fields="key").status_code == 501
    assert search("assignee = currentUser()", fields="key").status_code == 501
    assert cloud("GET", "/search/jql", params={"jql": "project = BRF", "nextPageToken": "garbage"}).status_code == 400


def test_dc_search(sim):
    for n in range(3):
        r = dc(sim, "POST", "/issue", json={"fields": task(f"dc {n}", itype=DC_TASK, labels=["bridge-m"])})
        assert r.status_code == 201
    dc(sim, "POST", "/issue", json={"fields": task("other", itype=DC_TASK)})
    sim.control("POST", "/clock/advance", {"seconds": 1}, expect=200)    # past the index delay
    r = dc(sim, "GET", "/search", params={"jql": 'labels = "bridge-m"', "fields": "summary", "maxResults": 2})
    assert r.status_code == 200
    body = r.json()
    assert (body["startAt"], body["maxResults"], body["total"]) == (0, 2, 3)
    assert [set(i["fields"]) for i in body["issues"]] == [{"summary"}, {"summary"}]
    assert all(i["self"].startswith(sim.dc_base("jira-dc")) for i in body["issues"])
    body = dc(sim, "GET", "/search", params={"jql": "labels = bridge-m ORDER BY key", "startAt": 2}).json()
    assert [i["key"] for i in body["issues"]] == ["BRF-3"] and "labels" in body["issues"][0]["fields"]
    assert dc(sim, "GET", "/search", params={"jql": "project = BRF"}).json()["total"] == 4
    r = dc(sim, "GET", "/search", params={"jql": "labels = ("})
    assert r.status_code == 400 and r.json()["errorMessages"][0].startswith("Error in the JQL Query")
    assert dc(sim, "GET", "/search", params={"jql": "project = BRF"}, auth=None).status_code == 401


def test_element_faults_fail_the_listed_elements_of_the_next_bulk_create():
    from tests.sim.harness import SimProcess
    with SimProcess() as sim:
        sim.control("PUT", "/jira/element-faults", {"elements": [1], "errors": {"summary": "refused"}})
        base = sim.url + "/dc/jira-dc/jira/rest/api/2/issue/bulk"
        projects = sim.http.get(sim.url + "/_sim/data/projects?flavour=dc").json()["items"]
        key = next(p["key"] for p in projects if p["key"] != "REQ")
        element = {"fields": {"project": {"key": key}, "issuetype": {"id": "3"}, "summary": "x"}}
        auth = ("bridge-bot", "s3cret-pass")
        first = sim.http.post(base, json={"issueUpdates": [element, element]}, auth=auth)
        assert first.status_code == 201
        assert [e["failedElementNumber"] for e in first.json()["errors"]] == [1]
        assert len(first.json()["issues"]) == 1
        second = sim.http.post(base, json={"issueUpdates": [element, element]}, auth=auth)
        assert len(second.json()["issues"]) == 2 and second.json()["errors"] == []
