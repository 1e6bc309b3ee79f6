"""Tenant settings (where pages and issues go): local validation, and checks against the product
when it is connected — Server/DC with Basic auth and Cloud with OAuth."""

import pytest

from . import registration as reg

JIRA_OK = {"project_key": "ZZZ", "issue_type_id": "1"}
CONFLUENCE_OK = {"space_key": "NOPE"}
TASK = {"dc": "3", "cloud": "10002"}
TEAM = "customfield_10050"


def settings_path(tenant, product):
    return f"/v1/tenants/{tenant}/settings/{product}"


def put(bridge, tenant, product, body):
    return bridge.call("PUT", settings_path(tenant, product), tenant, json_body=body)


def get(bridge, tenant, product):
    return bridge.call("GET", settings_path(tenant, product), tenant)


def connect(bridge, tenant, product, flavour):
    if flavour == "cloud":
        assert bridge.connect(tenant, product)["status"] == "connected"
    else:
        reg.register(bridge, tenant, product, "basic")
    bridge.sim("DELETE", "/_sim/calls")


def assert_refused(r, status, code, *words):
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    assert error["message"], error
    for word in words:
        assert word in error["message"], error


# --------------------------------------------------------------------------- validation
CONFLUENCE_INVALID = [
    ({"space_key": "a b"}, "invalid_settings"),
    ({"space_key": ""}, "invalid_settings"),
    ({"space_key": "SPA/../x"}, "invalid_settings"),
    ({"space_key": "S" * 256}, "invalid_settings"),
    ({"space_key": "SPA", "parent_titles": {"retrospective": "Same", "health_check": "Same"}}, "invalid_settings"),
    ({"space_key": "SPA", "parent_titles": {"retrospective": " ", "health_check": "Health"}}, "invalid_settings"),
    ({"space_key": "SPA", "parent_titles": {"retrospective": "R" * 256, "health_check": "H"}}, "invalid_settings"),
    ({"space_key": "SPA", "parent_titles": {"retrospective": "R"}}, "invalid_request"),
    ({"space_key": "SPA", "parent_titles": {"retrospective": "R", "health_check": "H", "other": "O"}},
     "invalid_request"),
    ({"space_key": "SPA", "colour": "red"}, "invalid_request"),
    ({"space_key": 5}, "invalid_request"),
    ({"space_key": None}, "invalid_request"),
    ({}, "invalid_request"),
    ([], "invalid_request"),
    ({"space_key": "SPA", "parent_titles": "Retrospectives"}, "invalid_request"),
]

JIRA_INVALID = [
    ({"project_key": "eng", "issue_type_id": "1"}, "invalid_settings"),
    ({"project_key": "E", "issue_type_id": "1"}, "invalid_settings"),
    ({"project_key": "1ENG", "issue_type_id": "1"}, "invalid_settings"),
    ({"project_key": "EN-G", "issue_type_id": "1"}, "invalid_settings"),
    ({"project_key": "EN G", "issue_type_id": "1"}, "invalid_settings"),
    ({"project_key": "", "issue_type_id": "1"}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "task"}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": ""}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "-1"}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "1", "labels": ["two words"]}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "1", "labels": ["tab\tbed"]}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "1", "labels": [""]}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "1", "labels": ["x" * 256]}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "1", "labels": [f"l{i}" for i in range(51)]}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "1", "field_defaults": {"summary": "x"}}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "1", "field_defaults": {"project": {"key": "X"}}}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "1", "field_defaults": {"issuetype": {"id": "1"}}}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": "1", "field_defaults": {"": 1}}, "invalid_settings"),
    ({"project_key": "ENG", "issue_type_id": 1}, "invalid_request"),
    ({"project_key": "ENG", "issue_type_id": "1", "labels": "retro"}, "invalid_request"),
    ({"project_key": "ENG", "issue_type_id": "1", "labels": [1]}, "invalid_request"),
    ({"project_key": "ENG", "issue_type_id": "1", "field_defaults": []}, "invalid_request"),
    ({"project_key": "ENG", "issue_type_id": "1", "assignee_matching": "name"}, "invalid_request"),
    ({"project_key": "ENG", "issue_type_id": "1", "colour": "red"}, "invalid_request"),
    ({"project_key": "ENG"}, "invalid_request"),
    ({"issue_type_id": "1"}, "invalid_request"),
    ({}, "invalid_request"),
    ("ENG", "invalid_request"),
]


@pytest.mark.parametrize("product,body,code",
                         [("confluence", b, c) for b, c in CONFLUENCE_INVALID] + [("jira", b, c) for b, c in JIRA_INVALID])
def test_invalid_settings_are_400_and_not_saved(bridge, product, body, code):
    tenant = bridge.tenant()
    r = put(bridge, tenant, product, body)
    assert_refused(r, 400, code)
    assert_refused(get(bridge, tenant, product), 404, "no_settings")
    assert reg.calls(bridge) == []


@pytest.mark.parametrize("raw", [b"", b"{", b"null"])
@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_a_body_that_is_not_json_is_refused(bridge, product, raw):
    tenant = bridge.tenant()
    r = bridge.call("PUT", settings_path(tenant, product), tenant, data=raw,
                    headers={"content-type": "application/json"})
    assert_refused(r, 400, "invalid_request")


def test_settings_accept_only_real_products(bridge):
    tenant = bridge.tenant()
    assert_refused(put(bridge, tenant, "atlassian", CONFLUENCE_OK), 400, "invalid_product")
    assert_refused(get(bridge, tenant, "bitbucket"), 400, "invalid_product")


def test_settings_need_the_admin_scope_to_write_and_read_scope_to_read(bridge):
    tenant = bridge.tenant()
    r = bridge.call("PUT", settings_path(tenant, "jira"), tenant, scopes="bridge:read bridge:publish",
                    json_body=JIRA_OK)
    assert r.status_code == 403 and "bridge:admin" in r.json()["error"]["message"]
    assert put(bridge, tenant, "jira", JIRA_OK).status_code == 200
    r = bridge.call("GET", settings_path(tenant, "jira"), tenant, scopes="bridge:admin bridge:publish")
    assert r.status_code == 403 and "bridge:read" in r.json()["error"]["message"]
    other = bridge.tenant()
    r = bridge.call("GET", settings_path(tenant, "jira"), token=bridge.token(other))
    assert r.status_code == 403


# --------------------------------------------------------------------------- without a connection
def test_settings_without_a_connection_are_validated_locally_only(bridge):
    tenant = bridge.tenant()
    jira = {"project_key": "ZZZ", "issue_type_id": "424242", "labels": ["retro", "from-bridge"],
            "assignee_matching": "email", "field_defaults": {TEAM: {"value": "Platform"}}}
    r = put(bridge, tenant, "jira", jira)
    assert r.status_code == 200, r.text
    assert r.json() == jira
    assert get(bridge, tenant, "jira").json() == jira

    r = put(bridge, tenant, "confluence", CONFLUENCE_OK)
    assert r.status_code == 200, r.text
    expected = {"space_key": "NOPE", "parent_titles": {"retrospective": "Retrospectives",
                                                       "health_check": "Health Checks"}}
    assert r.json() == expected and get(bridge, tenant, "confluence").json() == expected
    # Nothing was asked of Atlassian: neither product is connected.
    assert reg.calls(bridge) == []


def test_defaults_are_filled_in_and_a_new_put_replaces_the_old(bridge):
    tenant = bridge.tenant()
    assert put(bridge, tenant, "jira", JIRA_OK).json() == {
        "project_key": "ZZZ", "issue_type_id": "1", "field_defaults": {}, "assignee_matching": "none", "labels": []}
    assert put(bridge, tenant, "jira", {"project_key": "ABC", "issue_type_id": "2", "labels": ["x"]}).status_code == 200
    assert get(bridge, tenant, "jira").json()["project_key"] == "ABC"
    assert get(bridge, tenant, "jira").json()["labels"] == ["x"]


def test_settings_of_one_tenant_are_not_another_tenants(bridge):
    one, two = bridge.tenant(), bridge.tenant()
    assert put(bridge, one, "confluence", CONFLUENCE_OK).status_code == 200
    assert_refused(get(bridge, two, "confluence"), 404, "no_settings")


# --------------------------------------------------------------------------- against the connected product
FLAVOURS = ["dc", "cloud"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_confluence_space_must_exist(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "confluence", flavour)
    assert_refused(put(bridge, tenant, "confluence", {"space_key": "NOSUCHSPACE"}), 400, "unknown_space", "NOSUCHSPACE")
    assert_refused(get(bridge, tenant, "confluence"), 404, "no_settings")
    assert reg.calls(bridge), "the space was not looked up"

    body = {"space_key": "SPB", "parent_titles": {"retrospective": "Retros", "health_check": "Health"}}
    r = put(bridge, tenant, "confluence", body)
    assert r.status_code == 200, r.text
    assert get(bridge, tenant, "confluence").json() == body


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_personal_space_key_is_accepted(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "confluence", flavour)
    spaces = bridge.sim("GET", f"/_sim/data/spaces?flavour={flavour}").json()["items"]
    # Personal space keys are `~` + the user name (DC: `~ben.fischer`) or account id (Cloud:
    # `~712020...-e4e2-...`), so they may hold '.', '-' and more.
    personal = [s["key"] for s in spaces if s["key"].startswith("~")]
    assert personal
    refused = {}
    for key in personal:
        r = put(bridge, tenant, "confluence", {"space_key": key})
        if r.status_code != 200:
            refused[key] = r.text
        else:
            assert get(bridge, tenant, "confluence").json()["space_key"] == key
    assert refused == {}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_jira_project_must_exist(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", flavour)
    r = put(bridge, tenant, "jira", {"project_key": "NOPE", "issue_type_id": TASK[flavour]})
    assert_refused(r, 400, "unknown_project", "NOPE")
    assert_refused(get(bridge, tenant, "jira"), 404, "no_settings")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_jira_issue_type_must_be_creatable_in_the_project(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", flavour)
    assert_refused(put(bridge, tenant, "jira", {"project_key": "REQ", "issue_type_id": "99999"}),
                   400, "unknown_issue_type", "99999")
    # An issue type that exists elsewhere but not in this project: Bug in a business project.
    projects = bridge.sim("GET", f"/_sim/data/projects?flavour={flavour}").json()["items"]
    business = next(p for p in projects if p["projectTypeKey"] == "business" and not p.get("team_managed"))
    bug = next(t["id"] for t in bridge.sim("GET", f"/_sim/data/issuetypes?flavour={flavour}&project=REQ").json()["items"]
               if t["name"] == "Bug")
    assert_refused(put(bridge, tenant, "jira", {"project_key": business["key"], "issue_type_id": bug}),
                   400, "unknown_issue_type")
    assert_refused(get(bridge, tenant, "jira"), 404, "no_settings")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_required_fields_without_a_default_need_field_defaults(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", flavour)
    task = {"project_key": "REQ", "issue_type_id": TASK[flavour], "labels": ["retro"]}
    r = put(bridge, tenant, "jira", task)
    assert_refused(r, 400, "missing_field_defaults", TEAM)
    message = r.json()["error"]["message"]
    # Only the field that needs it: priority is required but has a default; summary, project,
    # issue type and reporter are set by the bridge or Jira.
    for covered in ("priority", "summary", "reporter", "issuetype"):
        assert covered not in message, message
    assert_refused(get(bridge, tenant, "jira"), 404, "no_settings")

    # Defaults for other fields do not help.
    r = put(bridge, tenant, "jira", {**task, "field_defaults": {"duedate": "2026-12-31"}})
    assert_refused(r, 400, "missing_field_defaults", TEAM)

    covered = {**task, "field_defaults": {TEAM: {"value": "Platform"}}}
    r = put(bridge, tenant, "jira", covered)
    assert r.status_code == 200, r.text
    saved = get(bridge, tenant, "jira")
    assert saved.status_code == 200
    assert saved.json() == {**covered, "assignee_matching": "none"}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_an_issue_type_without_required_extras_is_accepted_as_is(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", flavour)
    story = next(t["id"] for t in bridge.sim("GET", f"/_sim/data/issuetypes?flavour={flavour}&project=REQ").json()["items"]
                 if t["name"] == "Story")
    fields = bridge.sim("GET", f"/_sim/data/fields?flavour={flavour}&project=REQ&issuetype={story}").json()["items"]
    needs = [f["fieldId"] for f in fields if f["required"] and not f["hasDefaultValue"]
             and f["fieldId"] not in ("summary", "project", "issuetype", "reporter")]
    r = put(bridge, tenant, "jira", {"project_key": "REQ", "issue_type_id": story,
                                     "field_defaults": {f: "x" for f in needs}})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_refused_put_keeps_the_saved_settings(bridge, flavour):
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", flavour)
    good = {"project_key": "REQ", "issue_type_id": TASK[flavour], "field_defaults": {TEAM: {"value": "Data"}}}
    assert put(bridge, tenant, "jira", good).status_code == 200
    assert put(bridge, tenant, "jira", {"project_key": "NOPE", "issue_type_id": "1"}).status_code == 400
    assert put(bridge, tenant, "jira", {"project_key": "REQ", "issue_type_id": TASK[flavour]}).status_code == 400
    assert get(bridge, tenant, "jira").json()["field_defaults"] == {TEAM: {"value": "Data"}}


def test_settings_with_a_connection_whose_credentials_failed_are_409(bridge):
    tenant = bridge.tenant()
    reg.register(bridge, tenant, "jira", "basic")
    bridge.secrets_seen.append("changed-password-1")
    bridge.sim("PUT", "/_sim/dc/users", [{"username": reg.DC_USER, "password": "changed-password-1"}])
    assert reg.verify(bridge, tenant, "jira").status_code == 409
    r = put(bridge, tenant, "jira", {"project_key": "REQ", "issue_type_id": "3"})
    assert_refused(r, 409, "invalid_credentials")
    assert_refused(get(bridge, tenant, "jira"), 404, "no_settings")


def test_confluence_settings_are_checked_only_against_confluence(bridge):
    """A Jira connection does not make Confluence settings checked (and vice versa)."""
    tenant = bridge.tenant()
    connect(bridge, tenant, "jira", "dc")
    assert put(bridge, tenant, "confluence", {"space_key": "NOSUCHSPACE"}).status_code == 200
    assert reg.calls(bridge) == []
