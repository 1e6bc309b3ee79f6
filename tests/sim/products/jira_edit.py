"""Jira issue edits: `PUT issue/{key}` and `GET issue/{key}/editmeta` — Cloud REST v3 and DC v2.

The edit screen of a project is its create screen without project, issue type and parent (Jira's
default screen scheme uses one screen for create and edit) unless the control API set another
(`PUT /_sim/jira/edit-screen`). `editmeta` lists the screen's fields for a user with Edit Issues
("Fields not in the screen will not be in the editmeta"), none for one without. `PUT` needs
Browse (else 404, as Jira hides what the user cannot see) and Edit Issues: without it Jira's
issue service refuses the update as forbidden, which its REST layer answers 403 with the
message below (reconstructed). A field not on the screen is refused like on create: 400 with
`errors[field]` = "Field 'x' cannot be set. It is not on the appropriate screen, or unknown."
Values are validated as on create (ADF description on Cloud v3, dates, assignable users, labels,
priorities); `null` clears an optional field. Every edit that changes a value moves `updated`
and tells the store's listeners (`JiraStore.changed`); an edit that changes nothing does not.
"""

from __future__ import annotations

import datetime as _dt

from aiohttp import web

from .. import permissions as perms
from ..cloud import Ctx, handler
from ..data import create_fields, issue_type
from ..dc import require_user
from ..util import json_response
from .adf import adf_error
from .jira_common import jira_error
from .jira_issues import (ADF_REQUIRED, CLOUD, DATE, DC, NOT_FOUND, NOT_ON_SCREEN, SUMMARY_MAX, Invalid,
                          _json_or_error, _labels, _priority, _user, issue_fields, store_of, visible_issue)

# reconstructed: Jira's DefaultIssueService refuses an update without Edit Issues as FORBIDDEN
NO_EDIT = "You do not have permission to edit issues in this project."
NOT_ON_EDIT_SCREEN = {"project", "issuetype", "parent"}


def deployment(ctx: Ctx) -> str:
    return ctx.site.id if ctx.flavour == "cloud" else "dc"


def edit_screen(ctx: Ctx, issue: dict) -> dict[str, dict]:
    """The issue's edit screen: field id -> the field's metadata record (as `create_fields`)."""
    p = ctx.data.project(issue["projectKey"])
    it = issue_type(p, issue["issueTypeId"])
    meta = {f["fieldId"]: f for f in create_fields(p, it, ctx.data.components[p["key"]])
            if f["fieldId"] not in NOT_ON_EDIT_SCREEN}
    chosen = ctx.state.edit_screens.get((deployment(ctx), p["key"]))
    if chosen is not None:
        meta = {fid: f for fid, f in meta.items() if fid in chosen}
    return meta


def _value(ctx: Ctx, issue: dict, f: dict, fid: str, v, errors: dict):
    """One field's new value (None clears it), or an entry in `errors`."""
    if v is None:
        if fid == "summary":
            errors[fid] = "You must specify a summary of the issue."
        elif f["required"]:
            errors[fid] = f"{f['name']} is required."
        return None
    if fid == "summary":
        if not isinstance(v, str) or not v.strip():
            errors[fid] = "You must specify a summary of the issue." if isinstance(v, str) else \
                "Operation value must be a string"
        elif "\n" in v or "\r" in v:
            errors[fid] = "The summary is invalid because it contains newline characters."
        elif len(v) > SUMMARY_MAX:
            errors[fid] = f"Summary must be less than {SUMMARY_MAX} characters."
        else:
            return v
        return None
    if fid == "description":
        if ctx.flavour == "cloud":
            if adf_error(v, ctx.quirks.get("adf_reject_newlines", True)):
                errors[fid] = ADF_REQUIRED
                return None
            return v
        if not isinstance(v, str):
            errors[fid] = "Operation value must be a string"
            return None
        return v
    if fid == "duedate":
        ok = isinstance(v, str) and DATE.match(v)
        if ok:
            try:
                _dt.date.fromisoformat(v)
            except ValueError:
                ok = False
        if not ok:
            errors[fid] = f"Error parsing date string: {v}"
            return None
        return v
    if fid in ("assignee", "reporter"):
        project = ctx.data.project(issue["projectKey"]) if fid == "assignee" else None
        return _user(ctx, fid, v, project, errors)
    if fid == "labels":
        return _labels(v, errors)
    if fid == "priority":
        return _priority(v, errors)
    errors[fid] = f"Field '{fid}' cannot be edited in the simulator."
    return None


async def edit_issue(ctx: Ctx):
    if ctx.flavour == "dc":
        denied = require_user(ctx)
        if denied:
            return denied
    body, err = await _json_or_error(ctx)
    if err:
        return err
    store = store_of(ctx)
    issue = visible_issue(ctx, store)
    if issue is None:
        return jira_error(404, NOT_FOUND)
    if not perms.allowed(ctx, "project", issue["projectKey"], "edit"):
        return jira_error(403, NO_EDIT)
    try:
        fields = issue_fields(body)
    except Invalid as e:
        return jira_error(400, *e.messages, errors=e.errors)
    screen = edit_screen(ctx, issue)
    errors: dict = {fid: NOT_ON_SCREEN.format(fid) for fid in fields if fid not in screen}
    values = {fid: _value(ctx, issue, screen[fid], fid, v, errors) for fid, v in fields.items() if fid in screen}
    if errors:
        return jira_error(400, errors=errors)
    changed = sorted(fid for fid, v in values.items() if issue["values"].get(fid) != v)
    for fid in changed:
        issue["values"][fid] = values[fid]
        issue["fields"][fid] = fields[fid]
    if changed:
        store.changed(issue, changed)
    return web.Response(status=204)


async def edit_meta(ctx: Ctx):
    if ctx.flavour == "dc":
        denied = require_user(ctx)
        if denied:
            return denied
    issue = visible_issue(ctx, store_of(ctx))
    if issue is None:
        return jira_error(404, NOT_FOUND)
    if not perms.allowed(ctx, "project", issue["projectKey"], "edit"):
        return json_response({"fields": {}})
    out = {fid: {"required": f["required"], "schema": f["schema"], "name": f["name"], "key": fid,
                 "operations": f["operations"]}
           for fid, f in edit_screen(ctx, issue).items()}
    return json_response({"fields": out})


@handler(CLOUD, "PUT", "/rest/api/3/issue/{issueIdOrKey}")
async def cloud_edit_issue(ctx: Ctx):
    return await edit_issue(ctx)


@handler(CLOUD, "GET", "/rest/api/3/issue/{issueIdOrKey}/editmeta")
async def cloud_edit_meta(ctx: Ctx):
    return await edit_meta(ctx)


@handler(DC, "PUT", "/api/2/issue/{issueIdOrKey}")
async def dc_edit_issue(ctx: Ctx):
    return await edit_issue(ctx)


@handler(DC, "GET", "/api/2/issue/{issueIdOrKey}/editmeta")
async def dc_edit_meta(ctx: Ctx):
    return await edit_meta(ctx)
