"""Jira issues: create (single and bulk), read, delete, search — Cloud REST v3 and DC REST v2.

Fields are validated per project and issue type against the seeded create metadata
(`data.create_fields`, the same records `createmeta` serves): a field not on the create screen,
a required field missing (unless it has a default, which is then applied), a value of the wrong
shape or not among the allowed values — each is an entry in `errors` keyed by field id, as Jira
reports them. Cloud v3 rich text (`description`) must be an ADF document (see adf.py); DC v2
takes a string. Users: Cloud `{"accountId"}` (or `{"id"}`), DC `{"name"}`; an assignee must be
assignable (active, with Browse and Assignable User in the project: permissions.py).

Bulk (`issue/bulk`, at most 50): every element is validated and created on its own, in order;
201 `{"issues":[...],"errors":[...]}` when at least one was created, 400 with the same body when
none was. Issues keep the fields exactly as sent (`GET /_sim/jira/issues`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import re

from aiohttp import web

from .. import permissions as perms
from ..cloud import Ctx, handler
from ..data import PRIORITIES, create_fields, issue_type
from ..dc import require_user
from ..util import json_response
from . import jql
from .adf import adf_error
from .jira_common import (_allowed, api, issuetype_json, jira_error, list_param, priority_json,
                          single, user_json)
from .payload import BodyError, read_json, unrecognized

CLOUD = "jira-cloud-v3"
DC = "jira-dc"
BULK_MAX = 50
ISSUE_MEMBERS = {"fields", "update", "historyMetadata", "properties", "transition"}
ISSUE_BEAN = "com.atlassian.jira.rest.v2.issue.IssueUpdateBean"
BULK_BEAN = "com.atlassian.jira.rest.v2.issue.IssuesUpdateBean"
NOT_ON_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."
ADF_REQUIRED = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
NOT_FOUND = "Issue does not exist or you do not have permission to see it."
# mozilla/jira-bugzilla-integration#105 (the 403 body of DELETE issue without Delete Issues)
NO_DELETE = "You do not have permission to delete issues in this project."
# reconstructed: the spec says "400 ... is by a user who does not have the necessary permission"
NO_CREATE = "You do not have permission to create issues in this project."
SUMMARY_MAX = 255
LABEL_MAX = 255
SEARCH_MAX_CLOUD_FIELDS = 100
SEARCH_MAX_CLOUD_IDS = 5000
SEARCH_MAX_DC = 1000
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
STATUS_TODO = {"id": "10000", "name": "To Do"}
# The default workflow's statuses (`status.id` -> name, category key); an issue starts in To Do.
# A status in the `done` category carries resolution Done, the others none (Jira's simplified
# workflow sets and clears the resolution on its transitions).
STATUSES = [
    {"id": "10000", "name": "To Do", "category": "new"},
    {"id": "3", "name": "In Progress", "category": "indeterminate"},
    {"id": "10001", "name": "Done", "category": "done"},
]
CATEGORIES = {"new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
              "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
              "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"}}
RESOLUTION_DONE = {"id": "10000", "name": "Done", "description": "Work has been completed on this issue."}


def status_of(issue: dict | None) -> dict:
    sid = (issue or {}).get("values", {}).get("status") or STATUS_TODO["id"]
    return next((s for s in STATUSES if s["id"] == sid), STATUSES[0])


def find_status(name_or_id: str) -> dict | None:
    v = (name_or_id or "").lower()
    return next((s for s in STATUSES if s["name"].lower() == v or s["id"] == name_or_id), None)


class Invalid(Exception):
    def __init__(self, errors: dict | None = None, messages: list | None = None):
        super().__init__(str(errors or messages))
        self.errors = errors or {}
        self.messages = messages or []


def store_of(ctx: Ctx):
    return ctx.state.jira_store(ctx.flavour, ctx.site.id if ctx.flavour == "cloud" else None)


def caller_ref(ctx: Ctx) -> str:
    return ctx.account_id if ctx.flavour == "cloud" else ctx.user["name"]


# =========================================================================== request bodies
def merge_update(fields: dict, update) -> dict:
    """`update: {field: [{"set": v} | {"add": v}]}` merged into `fields` (the operations Jira's
    create honours); a field in both is an error."""
    if not isinstance(update, dict):
        raise Invalid(messages=["'update' must be an object."])
    merged = dict(fields)
    errors = {}
    for name, ops in update.items():
        if name in fields:
            errors[name] = f"Field '{name}' cannot be set in both 'fields' and 'update'."
            continue
        if not isinstance(ops, list):
            errors[name] = "data was not an array"
            continue
        for op in ops:
            if not isinstance(op, dict) or len(op) != 1 or next(iter(op)) not in ("set", "add"):
                errors[name] = f"Field '{name}': only 'set' and 'add' operations can be used on create."
                break
            verb, value = next(iter(op.items()))
            if verb == "set":
                merged[name] = value
            else:
                cur = merged.get(name)
                merged[name] = (cur if isinstance(cur, list) else []) + [value]
    if errors:
        raise Invalid(errors=errors)
    return merged


def issue_fields(body) -> dict:
    """The fields of one `IssueUpdateBean` (fields + update), or Invalid."""
    if not isinstance(body, dict):
        raise Invalid(messages=["Each issue must be a JSON object."])
    extra = [k for k in body if k not in ISSUE_MEMBERS]
    if extra:
        raise Invalid(messages=[unrecognized(extra[0], ISSUE_BEAN)])
    fields = body.get("fields", {})
    if not isinstance(fields, dict):
        raise Invalid(messages=["'fields' must be an object."])
    if "update" in body and body["update"] is not None:
        fields = merge_update(fields, body["update"])
    return fields


# =========================================================================== field validation
def _ref_id(value, *names) -> tuple[str | None, object]:
    """(which member, its value) of an object like `{"id": ...}` / `{"key": ...}`."""
    if not isinstance(value, dict):
        return None, None
    for n in names:
        if n in value and value[n] is not None:
            return n, value[n]
    return None, None


def _resolve_project(ctx: Ctx, value):
    kind, ref = _ref_id(value, "id", "key")
    if kind == "id" and not isinstance(ref, bool) and isinstance(ref, (str, int)):
        p = ctx.data.project_by_id.get(str(ref))
    elif kind == "key" and isinstance(ref, str):
        p = ctx.data.project_by_key.get(ref)
    else:
        return None
    return None if p is None or p["archived"] or not perms.can_browse(ctx, p) else p


def _resolve_issuetype(p: dict, value):
    kind, ref = _ref_id(value, "id", "name")
    if kind == "id":
        return issue_type(p, str(ref))
    if kind == "name" and isinstance(ref, str):
        return next((t for t in p["issue_types"] if t["name"].lower() == ref.lower()), None)
    return None


def _user(ctx: Ctx, fid: str, value, project: dict | None, errors: dict) -> str | None:
    """A user field's reference; `project` for the assignee (who must be assignable there)."""
    if ctx.flavour == "cloud":
        kind, ref = _ref_id(value, "accountId", "id")
        if kind is None or not isinstance(ref, str):
            errors[fid] = f"Specify a valid value for {fid}: an object with 'accountId'."
            return None
        user = ctx.find_user(ref)
        if user is None:
            errors[fid] = f"Specify a valid value for {fid}: user '{ref}' does not exist."
            return None
    else:
        kind, ref = _ref_id(value, "name")
        if kind is None or not isinstance(ref, str):
            errors[fid] = f"Specify a valid value for {fid}: an object with 'name'."
            return None
        user = ctx.find_user(ref)
        if user is None:
            errors[fid] = f"User '{ref}' does not exist."
            return None
        ref = user["name"]
    if project is not None and not perms.assignable(ctx, project, user):
        errors[fid] = f"User '{ref}' cannot be assigned issues."
        return None
    return ref


def _option(f: dict, value, errors: dict):
    options = f["allowed"][1]
    kind, ref = _ref_id(value, "id", "value")
    if kind is None:
        errors[f["fieldId"]] = f"Specify a valid 'id' or 'value' for {f['name']}"
        return None
    hit = next((o for o in options if o[kind] == str(ref)), None)
    if hit is None:
        errors[f["fieldId"]] = (f"Option id '{ref}' is not valid" if kind == "id"
                                else f"Option value '{ref}' is not valid")
        return None
    return hit["id"]


def _priority(value, errors: dict):
    kind, ref = _ref_id(value, "id", "name")
    if kind is None:
        errors["priority"] = "Could not find valid 'id' or 'name' in priority object."
        return None
    hit = next((pr for pr in PRIORITIES if (pr["id"] if kind == "id" else pr["name"]) == str(ref)), None)
    if hit is None:
        errors["priority"] = "The priority selected is invalid."
        return None
    return hit["id"]


def _components(f: dict, value, errors: dict):
    if not isinstance(value, list):
        errors["components"] = "data was not an array"
        return None
    comps = f["allowed"][1]
    out = []
    for v in value:
        kind, ref = _ref_id(v, "id", "name")
        if kind is None:
            errors["components"] = "Could not find valid 'id' or 'name' in component object."
            return None
        hit = next((c for c in comps if c[kind] == str(ref)), None)
        if hit is None:
            errors["components"] = (f"Component with id '{ref}' does not exist." if kind == "id"
                                    else f"Component name '{ref}' is not valid")
            return None
        out.append(hit["id"])
    return out


def _labels(value, errors: dict):
    if not isinstance(value, list):
        errors["labels"] = "data was not an array"
        return None
    for lab in value:
        if not isinstance(lab, str):
            errors["labels"] = "Operation value must be a string"
            return None
        if lab == "":
            errors["labels"] = "Labels cannot be empty."
            return None
        if any(ch.isspace() for ch in lab):
            errors["labels"] = f"The label '{lab}' contains spaces which is invalid."
            return None
        if len(lab) > LABEL_MAX:
            errors["labels"] = (f"The label '{lab}' exceeds the maximum length for a single label of "
                                f"{LABEL_MAX} characters.")
            return None
    return list(dict.fromkeys(value))


def _required_message(f: dict) -> str:
    if f["fieldId"] == "summary":
        return "You must specify a summary of the issue."
    return f"{f['name']} is required."


def validate(ctx: Ctx, store, fields: dict):
    """-> (project, issue type, values, parent issue) or Invalid."""
    errors: dict = {}
    p = _resolve_project(ctx, fields.get("project"))
    if p is None:
        errors["project"] = "Specify a valid project ID or key"
    elif not perms.allowed(ctx, "project", p["key"], "create"):
        raise Invalid(errors={"project": NO_CREATE})
    it = None
    if fields.get("issuetype") is None:
        errors["issuetype"] = "Specify an issue type"
    elif p is not None:
        it = _resolve_issuetype(p, fields["issuetype"])
        if it is None:
            errors["issuetype"] = "The issue type selected is invalid."
    if errors:
        raise Invalid(errors=errors)
    meta = {f["fieldId"]: f for f in create_fields(p, it, ctx.data.components[p["key"]])}
    for name in fields:
        if name not in meta:
            errors[name] = NOT_ON_SCREEN.format(name)
    values: dict = {}
    messages: list = []
    parent = None
    for fid, f in meta.items():
        if fid in ("project", "issuetype"):
            continue
        v = fields.get(fid)
        empty = v is None or (isinstance(v, str) and not v.strip() and fid == "summary") or \
            (isinstance(v, list) and not v and f["required"])
        if empty:
            if fid == "parent" and it["subtask"]:
                messages.append("Issue type is a sub-task but parent issue key or id not specified.")
            elif f["required"] and not f["hasDefaultValue"]:
                errors[fid] = _required_message(f)
            elif fid == "priority":
                values["priority"] = f["default"][1]
            elif fid == "reporter":
                values["reporter"] = caller_ref(ctx)
            continue
        if fid == "summary":
            if not isinstance(v, str):
                errors[fid] = "Operation value must be a string"
            elif "\n" in v or "\r" in v:
                errors[fid] = "The summary is invalid because it contains newline characters."
            elif len(v) > SUMMARY_MAX:
                errors[fid] = f"Summary must be less than {SUMMARY_MAX} characters."
            else:
                values[fid] = v
        elif fid == "description":
            if ctx.flavour == "cloud":
                why = adf_error(v, ctx.quirks.get("adf_reject_newlines", True))
                if why:
                    errors[fid] = ADF_REQUIRED
                else:
                    values[fid] = v
            elif not isinstance(v, str):
                errors[fid] = "Operation value must be a string"
            else:
                values[fid] = v
        elif fid == "priority":
            values[fid] = _priority(v, errors)
        elif fid == "labels":
            values[fid] = _labels(v, errors)
        elif fid == "components":
            values[fid] = _components(f, v, errors)
        elif fid in ("assignee", "reporter"):
            values[fid] = _user(ctx, fid, v, p if fid == "assignee" else None, errors)
        elif fid == "duedate":
            ok = isinstance(v, str) and DATE.match(v)
            if ok:
                try:
                    _dt.date.fromisoformat(v)
                except ValueError:
                    ok = False
            if ok:
                values[fid] = v
            else:
                errors[fid] = f"Error parsing date string: {v}"
        elif fid == "parent":
            kind, ref = _ref_id(v, "key", "id")
            parent = store.find(str(ref)) if kind else None
            if parent is None:
                errors[fid] = "Could not find issue by id or key."
            elif parent["parent"] is not None:
                errors[fid] = "The parent issue is a sub-task: a sub-task cannot have sub-tasks."
                parent = None
            elif parent["projectKey"] != p["key"]:
                errors["project"] = "Sub-tasks must be created in the same project as the parent."
                parent = None
            else:
                values[fid] = parent["key"]
        elif f["schema"]["type"] == "option":
            values[fid] = _option(f, v, errors)
        elif f["schema"]["type"] == "number":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                errors[fid] = "Operation value must be a number"
            else:
                values[fid] = v
        else:                                   # pragma: no cover - every seeded field is handled
            values[fid] = v
    if errors or messages:
        raise Invalid(errors=errors, messages=messages)
    values.setdefault("reporter", caller_ref(ctx))
    return p, it, values, parent


def create_one(ctx: Ctx, store, body) -> dict:
    fields = issue_fields(body)
    p, it, values, parent = validate(ctx, store, fields)
    return store.create(p, it, fields, values, parent, caller_ref(ctx))


def created_json(ctx: Ctx, issue: dict) -> dict:
    return {"id": issue["id"], "key": issue["key"], "self": f"{api(ctx)}/issue/{issue['id']}"}


# =========================================================================== rendering
def status_json(ctx: Ctx, issue: dict | None = None) -> dict:
    icon_base = ctx.site_url if ctx.flavour == "cloud" else ctx.base
    s = status_of(issue)
    cat = CATEGORIES[s["category"]]
    return {"self": f"{api(ctx)}/status/{s['id']}", "description": "",
            "iconUrl": f"{icon_base}/images/icons/statuses/open.png", "name": s["name"],
            "id": s["id"],
            "statusCategory": {"self": f"{api(ctx)}/statuscategory/{cat['id']}", **cat}}


def _user_or_none(ctx: Ctx, ref):
    u = ctx.find_user(ref) if ref else None
    return user_json(ctx, u, summary=True) if u else None


def _brief(ctx: Ctx, issue: dict) -> dict:
    """The short form of an issue inside another (`parent`, `subtasks`)."""
    p = ctx.data.project(issue["projectKey"])
    it = issue_type(p, issue["issueTypeId"])
    pr = next(x for x in PRIORITIES if x["id"] == issue["values"].get("priority", "3"))
    return {"id": issue["id"], "key": issue["key"], "self": f"{api(ctx)}/issue/{issue['id']}",
            "fields": {"summary": issue["values"].get("summary"), "status": status_json(ctx, issue),
                       "priority": priority_json(ctx, pr), "issuetype": issuetype_json(ctx, p, it)}}


def all_fields(ctx: Ctx, store, issue: dict) -> dict:
    p = ctx.data.project(issue["projectKey"])
    it = issue_type(p, issue["issueTypeId"])
    v = issue["values"]
    meta = {f["fieldId"]: f for f in create_fields(p, it, ctx.data.components[p["key"]])}
    out: dict = {
        "summary": v.get("summary"),
        "issuetype": issuetype_json(ctx, p, it),
        "project": _allowed(ctx, p, "project", [p])[0],
        "status": status_json(ctx, issue),
        "resolution": (dict(RESOLUTION_DONE, self=f"{api(ctx)}/resolution/{RESOLUTION_DONE['id']}")
                       if status_of(issue)["category"] == "done" else None),
        "created": issue["created"],
        "updated": issue["updated"],
        "creator": _user_or_none(ctx, issue["creator"]),
        "reporter": _user_or_none(ctx, v.get("reporter")),
        "assignee": _user_or_none(ctx, v.get("assignee")),
        "description": v.get("description"),
        "labels": v.get("labels") or [],
        "duedate": v.get("duedate"),
        "subtasks": [_brief(ctx, s) for s in (store.find(k) for k in issue["subtasks"]) if s],
    }
    if "priority" in meta:
        pr = next((x for x in PRIORITIES if x["id"] == v.get("priority")), None)
        out["priority"] = priority_json(ctx, pr) if pr else None
    comps = ctx.data.components[p["key"]]
    out["components"] = _allowed(ctx, p, "components",
                                 [c for c in comps if c["id"] in (v.get("components") or [])])
    if issue["parent"]:
        parent = store.find(issue["parent"])
        if parent:
            out["parent"] = _brief(ctx, parent)
    for fid, f in meta.items():
        if fid.startswith("customfield_"):
            val = v.get(fid)
            if f["schema"]["type"] == "option" and val is not None:
                opt = next(o for o in f["allowed"][1] if o["id"] == val)
                val = _allowed(ctx, p, "options", [opt])[0]
            out[fid] = val
    return out


def wanted_fields(tokens: list[str], default_all: bool) -> tuple[set[str] | None, set[str]]:
    """`fields` parameter -> (names to include or None for all, names to exclude)."""
    if not tokens:
        return (None if default_all else set()), set()
    include: set[str] | None = set()
    exclude = set()
    star = False
    for t in tokens:
        if t in ("*all", "*navigable"):
            star = True
        elif t.startswith("-"):
            exclude.add(t[1:])
        else:
            include.add(t)
    if star or (not include and exclude):
        include = None
    return include, exclude


def issue_json(ctx: Ctx, store, issue: dict, include: set[str] | None, exclude: set[str]) -> dict:
    fields = all_fields(ctx, store, issue)
    if include is not None:
        fields = {k: v for k, v in fields.items() if k in include}
    fields = {k: v for k, v in fields.items() if k not in exclude}
    return {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue["id"], "self": f"{api(ctx)}/issue/{issue['id']}", "key": issue["key"],
            "fields": fields}


# =========================================================================== handlers (shared)
async def _json_or_error(ctx: Ctx):
    try:
        return await read_json(ctx.request), None
    except BodyError as e:
        return None, jira_error(e.status, e.message)


async def create_issue(ctx: Ctx):
    if ctx.flavour == "dc":
        denied = require_user(ctx)
        if denied:
            return denied
    body, err = await _json_or_error(ctx)
    if err:
        return err
    try:
        issue = create_one(ctx, store_of(ctx), body)
    except Invalid as e:
        return jira_error(400, *e.messages, errors=e.errors)
    return json_response(created_json(ctx, issue), status=201)


async def create_issues(ctx: Ctx):
    if ctx.flavour == "dc":
        denied = require_user(ctx)
        if denied:
            return denied
    body, err = await _json_or_error(ctx)
    if err:
        return err
    if not isinstance(body, dict):
        return jira_error(400, "The request body must be a JSON object.")
    extra = [k for k in body if k != "issueUpdates"]
    if extra:
        return jira_error(400, unrecognized(extra[0], BULK_BEAN))
    updates = body.get("issueUpdates")
    if not isinstance(updates, list) or not updates:
        return jira_error(400, "'issueUpdates' must be a non-empty array of issues.")
    if len(updates) > BULK_MAX:
        return jira_error(400, f"The number of issues to create ({len(updates)}) exceeds the bulk "
                               f"limit of {BULK_MAX}.")
    store = store_of(ctx)
    issues, errors = [], []
    fault = ctx.state.element_faults
    failing: set[int] = set()
    if fault and fault.get("times", 1) > 0:
        failing = set(fault["elements"])
        fault["times"] = fault.get("times", 1) - 1
    for i, element in enumerate(updates):
        if i in failing:
            errors.append({"status": fault.get("status", 400),
                           "elementErrors": {"errorMessages": fault.get("messages", []),
                                             "errors": fault.get("errors", {})},
                           "failedElementNumber": i})
            continue
        try:
            issues.append(created_json(ctx, create_one(ctx, store, element)))
        except Invalid as e:
            errors.append({"status": 400,
                           "elementErrors": {"errorMessages": e.messages, "errors": e.errors},
                           "failedElementNumber": i})
    return json_response({"issues": issues, "errors": errors}, status=201 if issues else 400)


def visible_issue(ctx: Ctx, store) -> dict | None:
    """The issue of the path, None when it does not exist or its project may not be browsed."""
    issue = store.find(ctx.params["issueIdOrKey"])
    if issue is None or not perms.can_browse(ctx, ctx.data.project(issue["projectKey"])):
        return None
    return issue


async def get_issue(ctx: Ctx):
    if ctx.flavour == "dc":
        denied = require_user(ctx)
        if denied:
            return denied
    store = store_of(ctx)
    issue = visible_issue(ctx, store)
    if issue is None:
        return jira_error(404, NOT_FOUND)
    include, exclude = wanted_fields(list_param(ctx.request.query, "fields"), default_all=True)
    return json_response(issue_json(ctx, store, issue, include, exclude))


async def delete_issue(ctx: Ctx):
    if ctx.flavour == "dc":
        denied = require_user(ctx)
        if denied:
            return denied
    store = store_of(ctx)
    issue = visible_issue(ctx, store)
    if issue is None:
        return jira_error(404, NOT_FOUND)
    if not perms.allowed(ctx, "project", issue["projectKey"], "delete"):
        return jira_error(403, NO_DELETE)
    with_subtasks = (single(ctx.request.query, "deleteSubtasks") or "false").lower() == "true"
    if issue["subtasks"] and not with_subtasks:
        return jira_error(400, f"The issue '{issue['key']}' has subtasks.  You must specify the "
                               "'deleteSubtasks' parameter to delete this issue with all its subtasks.")
    store.delete(issue)
    return web.Response(status=204)


# --------------------------------------------------------------------------- search
def run_jql(ctx: Ctx, store, text: str) -> list[dict]:
    """The store's issues matching the JQL, ordered; raises jql.JqlError/JqlUnsupported. Every
    search is counted (`GET /_sim/jira/searches`), refused ones too."""
    ctx.state.jira_searches.append({"flavour": ctx.flavour, "jql": text, "labels": _labels_in(text)})
    expr, order = jql.parse(text)
    ds = ctx.data

    def resolve(field, value, label):
        if field == "project":
            v = value.lower()
            p = next((p for p in perms.browsable(ctx, ds.projects) if p["key"].lower() == v
                      or p["id"] == value or p["name"].lower() == v), None)
            if p is None:
                raise jql.JqlError(f"The value '{value}' does not exist for the field '{label}'.")
            return p["key"]
        if field in ("key", "parent"):
            issue = store.find(value)
            if issue is None:
                if field == "key" and not value.isdigit():
                    raise jql.JqlError(f"An issue with key '{value}' does not exist for field '{label}'.")
                return None
            return issue["key"]
        if field == "status":
            s = find_status(value)
            if s is None:
                raise jql.JqlError(f"The value '{value}' does not exist for the field '{label}'.")
            return s["id"]
        if field == "statuscategory":
            v = value.lower()
            c = next((k for k, c in CATEGORIES.items() if v in (k, c["name"].lower(), str(c["id"]))), None)
            if c is None:
                raise jql.JqlError(f"The value '{value}' does not exist for the field '{label}'.")
            return c
        if field in jql.DATE_FIELDS:
            return jql.parse_date(value, label, ctx.state.now())
        if field == "issuetype":
            names = {t["name"].lower(): t["name"] for p in ds.projects for t in p["issue_types"]}
            ids = {t["id"]: t["name"] for p in ds.projects for t in p["issue_types"]}
            hit = names.get(value.lower()) or ids.get(value)
            if hit is None:
                raise jql.JqlError(f"The value '{value}' does not exist for the field '{label}'.")
            return hit.lower()
        return value                              # labels: any value

    bound = jql.bind(expr, resolve)

    def facts_of(issue):
        p = ds.project(issue["projectKey"])

        def facts(field):
            if field == "project":
                return {issue["projectKey"]}
            if field == "labels":
                return set(issue["values"].get("labels") or [])
            if field == "key":
                return {issue["key"]}
            if field == "parent":
                return {issue["parent"]} if issue["parent"] else set()
            if field == "issuetype":
                return {issue_type(p, issue["issueTypeId"])["name"].lower()}
            if field == "status":
                return {status_of(issue)["id"]}
            if field == "statuscategory":
                return {status_of(issue)["category"]}
            if field in jql.DATE_FIELDS:
                return {issue[f"{field}_at"]}
            raise AssertionError(field)
        return facts

    browsable = {p["key"] for p in perms.browsable(ctx, ds.projects)}
    hits = [i for i in store.issues.values()
            if i["projectKey"] in browsable and store.indexed(i) and jql.matches(bound, facts_of(i))]
    if not order:
        order = [("created", True)]
    for field, desc in reversed(order):
        if field == "key":
            keyf = lambda i: (i["projectKey"], int(i["key"].rsplit("-", 1)[1]))  # noqa: E731
        elif field in ("created", "updated"):
            keyf = lambda i, f=field: (i[f], int(i["id"]))  # noqa: E731
        else:
            keyf = lambda i: (i["values"].get("summary") or "").lower()  # noqa: E731
        hits.sort(key=keyf, reverse=desc)
    return hits


def _labels_in(text: str) -> list[str]:
    try:
        return jql.labels_of(jql.parse(text)[0])
    except (jql.JqlError, jql.JqlUnsupported):
        return []


def _jql_refusal(e: Exception):
    if isinstance(e, jql.JqlUnsupported):
        return json_response({"message": f"not implemented in simulator: {e}"}, status=501)
    return jira_error(400, str(e))


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(token: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        off = data["o"]
        if isinstance(off, bool) or not isinstance(off, int) or off < 0:
            raise ValueError
        return off
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise jql.JqlError("The provided next page token is invalid or expired.") from None


def _int(q, name: str, default: int) -> int:
    raw = single(q, name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise jql.JqlError(f"The '{name}' parameter must be an integer, but was '{raw}'.") from None
    if v < 0:
        raise jql.JqlError(f"The '{name}' parameter must not be negative.")
    return v


# =========================================================================== Cloud v3
@handler(CLOUD, "POST", "/rest/api/3/issue")
async def cloud_create_issue(ctx: Ctx):
    return await create_issue(ctx)


@handler(CLOUD, "POST", "/rest/api/3/issue/bulk")
async def cloud_create_issues(ctx: Ctx):
    return await create_issues(ctx)


@handler(CLOUD, "GET", "/rest/api/3/issue/{issueIdOrKey}")
async def cloud_get_issue(ctx: Ctx):
    return await get_issue(ctx)


@handler(CLOUD, "DELETE", "/rest/api/3/issue/{issueIdOrKey}")
async def cloud_delete_issue(ctx: Ctx):
    return await delete_issue(ctx)


@handler(CLOUD, "GET", "/rest/api/3/search/jql")
async def cloud_search_jql(ctx: Ctx):
    q = ctx.request.query
    store = store_of(ctx)
    tokens = list_param(q, "fields")
    ids_only = not tokens or set(tokens) <= {"id"}
    try:
        text = single(q, "jql") or ""
        expr, _ = jql.parse(text)
        if expr is None:
            raise jql.JqlError("Unbounded JQL queries are not allowed here. Please add a search "
                               "restriction to your query.")
        cap = SEARCH_MAX_CLOUD_IDS if set(tokens) <= {"id", "key"} else SEARCH_MAX_CLOUD_FIELDS
        max_results = min(_int(q, "maxResults", 50), cap)
        raw_token = single(q, "nextPageToken")
        start = _offset(raw_token) if raw_token else 0
        hits = run_jql(ctx, store, text)
    except (jql.JqlError, jql.JqlUnsupported) as e:
        return _jql_refusal(e)
    page = hits[start:start + max_results]
    include, exclude = wanted_fields([t for t in tokens if t not in ("id", "key")], default_all=False)
    if ids_only:
        issues = [{"id": i["id"]} for i in page]
    else:
        issues = [issue_json(ctx, store, i, include, exclude) for i in page]
    out: dict = {"issues": issues}
    if start + max_results < len(hits):
        out["nextPageToken"] = _token(start + max_results)
        out["isLast"] = False
    else:
        out["isLast"] = True
    return json_response(out)


# =========================================================================== DC v2
@handler(DC, "POST", "/api/2/issue")
async def dc_create_issue(ctx: Ctx):
    return await create_issue(ctx)


@handler(DC, "POST", "/api/2/issue/bulk")
async def dc_create_issues(ctx: Ctx):
    return await create_issues(ctx)


@handler(DC, "GET", "/api/2/issue/{issueIdOrKey}")
async def dc_get_issue(ctx: Ctx):
    return await get_issue(ctx)


@handler(DC, "DELETE", "/api/2/issue/{issueIdOrKey}")
async def dc_delete_issue(ctx: Ctx):
    return await delete_issue(ctx)


@handler(DC, "GET", "/api/2/search")
async def dc_search(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    q = ctx.request.query
    store = store_of(ctx)
    try:
        start = _int(q, "startAt", 0)
        max_results = min(_int(q, "maxResults", 50), SEARCH_MAX_DC)
        hits = run_jql(ctx, store, single(q, "jql") or "")
    except (jql.JqlError, jql.JqlUnsupported) as e:
        return _jql_refusal(e)
    include, exclude = wanted_fields(list_param(q, "fields"), default_all=True)
    page = hits[start:start + max_results]
    return json_response({"expand": "schema,names", "startAt": start, "maxResults": max_results,
                          "total": len(hits),
                          "issues": [issue_json(ctx, store, i, include, exclude) for i in page]})

