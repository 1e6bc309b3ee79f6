"""Jira Data Center REST v2 handlers (spec: jira-software-dc-10.3-openapi.json, paths under
`/api/2` below the server `{baseurl}/rest`).

Where the DC file's response schemas are plainly wrong they are not followed: `project`,
`project/{key}/components`, `priority` and `user/assignable/search` answer JSON arrays (the file
shows one object), createmeta pages list under `values` with `startAt`/`maxResults`/`total`/
`isLast` (the file shows a single issue type / field), as the products do.
"""

from __future__ import annotations

from .. import permissions as perms
from ..cloud import Ctx, handler
from ..data import PRIORITIES, dc_user_matches, issue_type, user_sort_key
from ..dc import require_user
from ..util import json_response
from .jira_common import (BadParam, api, bool_param, component_json, email_searchable,
                          expand_param, fields_for,
                          int_param, issuetype_json, jira_error, list_param, picker_html,
                          priority_json, project_json, single, user_json)

SPEC = "jira-dc"
ASSIGNABLE_MAX = 100
PICKER_MAX = 1000


def _project_or_404(ctx: Ctx, id_or_key: str):
    p = perms.visible_project(ctx, id_or_key)        # a project you cannot browse does not exist
    if p is None:
        what = "id" if id_or_key.isdigit() else "key"
        return None, jira_error(404, f"No project could be found with {what} '{id_or_key}'.")
    return p, None


@handler(SPEC, "GET", "/api/2/myself")
async def get_current_user(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    body = user_json(ctx, ctx.user)
    expand = expand_param(ctx.request.query)
    body["groups"] = {"size": 2, "items": []}
    body["applicationRoles"] = {"size": 1, "items": []}
    if "groups" in expand:
        body["groups"]["items"] = [{"name": g, "self": f"{api(ctx)}/group?groupname={g}"}
                                   for g in ("jira-software-users", "integration-users")]
    if "applicationRoles" in expand:
        body["applicationRoles"]["items"] = [{"key": "jira-software", "name": "Jira Software"}]
    body["expand"] = "groups,applicationRoles"
    return json_response(body)


@handler(SPEC, "GET", "/api/2/project")
async def get_all_projects(ctx: Ctx):
    if ctx.user is None:
        return json_response([])      # anonymous callers see the projects anonymous may browse: none
    q = ctx.request.query
    include_archived = bool_param(q, "includeArchived")
    expand = expand_param(q)
    projects = [p for p in perms.browsable(ctx, ctx.data.projects)
                if include_archived or not p["archived"]]
    recent = single(q, "recent")
    if recent is not None:
        try:
            n = max(0, min(int(recent), 20))
        except ValueError:
            return jira_error(400, f"The 'recent' parameter must be an integer, but was '{recent}'.")
        projects = projects[:n]
    projects = sorted(projects, key=lambda p: (p["name"].lower(), p["key"]))
    return json_response([project_json(ctx, p, expand) for p in projects])


@handler(SPEC, "GET", "/api/2/project/{projectIdOrKey}")
async def get_project(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    p, err = _project_or_404(ctx, ctx.params["projectIdOrKey"])
    if err:
        return err
    return json_response(project_json(ctx, p, expand_param(ctx.request.query), full=True))


@handler(SPEC, "GET", "/api/2/project/{projectIdOrKey}/components")
async def get_project_components(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    p, err = _project_or_404(ctx, ctx.params["projectIdOrKey"])
    if err:
        return err
    return json_response([component_json(ctx, p, c) for c in ctx.data.components[p["key"]]])


# --------------------------------------------------------------------------- createmeta
def _values_page(ctx: Ctx, items: list, render) -> dict:
    q = ctx.request.query
    start_at = int_param(q, "startAt", 0)
    max_results = int_param(q, "maxResults", 50, lo=1)
    page = items[start_at:start_at + max_results]
    return {"maxResults": max_results, "startAt": start_at, "total": len(items),
            "isLast": start_at + max_results >= len(items),
            "values": [render(x) for x in page]}


def _meta_project(ctx: Ctx):
    p = perms.visible_project(ctx, ctx.params["projectIdOrKey"])
    if p is None or not perms.allowed(ctx, "project", p["key"], "create"):
        return None, jira_error(400, f"Project with key or id '{ctx.params['projectIdOrKey']}' "
                                     "does not exist or you do not have permission to view it.")
    return p, None


@handler(SPEC, "GET", "/api/2/issue/createmeta/{projectIdOrKey}/issuetypes")
async def createmeta_issuetypes(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    p, err = _meta_project(ctx)
    if err:
        return err
    try:
        body = _values_page(ctx, p["issue_types"], lambda it: issuetype_json(ctx, p, it))
    except BadParam as e:
        return jira_error(400, str(e))
    return json_response(body)


@handler(SPEC, "GET", "/api/2/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}")
async def createmeta_fields(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    p, err = _meta_project(ctx)
    if err:
        return err
    it = issue_type(p, ctx.params["issueTypeId"])
    if it is None:
        return jira_error(400, f"Issue type with id '{ctx.params['issueTypeId']}' does not exist "
                               f"in project '{p['key']}'.")
    try:
        body = _values_page(ctx, fields_for(ctx, p, it), lambda f: f)
    except BadParam as e:
        return jira_error(400, str(e))
    return json_response(body)


# --------------------------------------------------------------------------- users
@handler(SPEC, "GET", "/api/2/user/picker")
async def user_picker(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    q = ctx.request.query
    try:
        max_results = min(int_param(q, "maxResults", 50), PICKER_MAX)
    except BadParam as e:
        return jira_error(400, str(e))
    needle = (single(q, "query") or "").strip().lower()
    excluded = {x.lower() for x in list_param(q, "exclude")}
    show_avatar = bool_param(q, "showAvatar")
    matches = [u for u in sorted(ctx.directory(), key=user_sort_key)
               if u["active"] and u["name"].lower() not in excluded
               and dc_user_matches(u, needle, email_searchable(ctx))]
    shown = matches[:max_results]
    users = []
    for u in shown:
        j = {"name": u["name"], "key": u["key"], "html": picker_html(ctx, u, needle),
             "displayName": u["displayName"]}
        if show_avatar:
            j["avatarUrl"] = user_json(ctx, u)["avatarUrls"]["16x16"]
        users.append(j)
    return json_response({"users": users, "total": len(matches),
                          "header": f"Showing {len(shown)} of {len(matches)} matching users"})


@handler(SPEC, "GET", "/api/2/user/assignable/search")
async def assignable_users(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    q = ctx.request.query
    project_ref = single(q, "project")
    issue_key = single(q, "issueKey")
    if not project_ref and not issue_key:
        return jira_error(400, "The issue key or the project key/id must be specified.")
    try:
        max_results = min(int_param(q, "maxResults", 50), ASSIGNABLE_MAX)
    except BadParam as e:
        return jira_error(400, str(e))
    if issue_key and not project_ref:
        return jira_error(404, "Issue Does Not Exist")
    p = perms.visible_project(ctx, project_ref)
    if p is None or p["archived"]:
        return jira_error(404, f"No project could be found with key or id '{project_ref}'.")
    needle = (single(q, "username") or "").strip().lower()
    matches = [u for u in sorted(ctx.directory(), key=user_sort_key)
               if perms.assignable(ctx, p, u) and dc_user_matches(u, needle, email_searchable(ctx))]
    return json_response([user_json(ctx, u) for u in matches[:max_results]])


@handler(SPEC, "GET", "/api/2/priority")
async def get_priorities(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    return json_response([priority_json(ctx, pr, full=True) for pr in PRIORITIES])
