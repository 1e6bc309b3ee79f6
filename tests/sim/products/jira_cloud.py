"""Jira Cloud platform REST v3 handlers (spec: jira-cloud-platform-v3.swagger-v3.v3.json), served
behind the gateway (OAuth, scoped API token) and on the site URL (API-token Basic)."""

from __future__ import annotations

from .. import permissions as perms
from ..cloud import Ctx, handler
from ..data import cloud_user_matches, issue_type, user_sort_key
from ..util import json_response
from .jira_common import (BadParam, api, bool_param, component_json, expand_param, fields_for,
                          int_param, issuetype_json, jira_error, list_param, page_bean,
                          picker_html, project_json, single, user_json)

SPEC = "jira-cloud-v3"
PROJECT_SEARCH_MAX = 100
CREATEMETA_MAX = 200
USER_SEARCH_WINDOW = 1000

PROJECT_ORDER = {"category", "key", "name", "owner", "issueCount", "lastIssueUpdatedDate",
                 "archivedDate", "deletedDate"}


def _project_or_404(ctx: Ctx, id_or_key: str):
    p = perms.visible_project(ctx, id_or_key)        # a project you cannot browse does not exist
    if p is None:
        what = "id" if id_or_key.isdigit() else "key"
        return None, jira_error(404, f"No project could be found with {what} '{id_or_key}'.")
    return p, None


# --------------------------------------------------------------------------- myself
@handler(SPEC, "GET", "/rest/api/3/myself")
async def get_current_user(ctx: Ctx):
    user = ctx.state.users[ctx.account_id]
    body = user_json(ctx, user)
    body["emailAddress"] = user["emailAddress"]       # your own email is always visible to you
    expand = expand_param(ctx.request.query)
    body["groups"] = {"size": 1, "items": []}
    body["applicationRoles"] = {"size": 1, "items": []}
    if "groups" in expand:
        gid = "7d3c2a1b-0000-4000-8000-000000000001"
        body["groups"]["items"] = [{"name": "jira-software-users", "groupId": gid,
                                    "self": f"{api(ctx)}/group?groupId={gid}"}]
    if "applicationRoles" in expand:
        body["applicationRoles"]["items"] = [{"key": "jira-software", "name": "Jira Software"}]
    body["expand"] = "groups,applicationRoles"
    return json_response(body)


# --------------------------------------------------------------------------- projects
def _project_sort(order: str):
    desc = order.startswith("-")
    field = order.lstrip("+-")
    keys = {
        "key": lambda p: p["key"],
        "name": lambda p: (p["name"].lower(), p["key"]),
        "category": lambda p: ((p["category"] or {}).get("name", ""), p["key"]),
        "owner": lambda p: (p["lead"] or "", p["key"]),
        "issueCount": lambda p: (p["issueCount"], p["key"]),
        "lastIssueUpdatedDate": lambda p: (p["lastIssueUpdateTime"], p["key"]),
    }
    return keys.get(field, keys["key"]), desc


@handler(SPEC, "GET", "/rest/api/3/project/search")
async def search_projects(ctx: Ctx):
    q = ctx.request.query
    try:
        start_at = int_param(q, "startAt", 0)
        max_results = min(int_param(q, "maxResults", 50), PROJECT_SEARCH_MAX)
        order = single(q, "orderBy") or "key"
        if order.lstrip("+-") not in PROJECT_ORDER:
            raise BadParam(f"Invalid orderBy value '{order}'.")
        ids = list_param(q, "id")
        keys = list_param(q, "keys")
        if len(ids) > 50 or len(keys) > 50:
            raise BadParam("Up to 50 project IDs or keys can be provided.")
        type_keys = set(list_param(q, "typeKey"))
        statuses = set(list_param(q, "status")) or {"live"}
        category = single(q, "categoryId")
        query = (single(q, "query") or "").lower()
    except BadParam as e:
        return jira_error(400, str(e))
    projects = []
    for p in perms.browsable(ctx, ctx.data.projects):
        status = "archived" if p["archived"] else "live"
        if status not in statuses:
            continue
        if ids and p["id"] not in ids:
            continue
        if keys and p["key"] not in keys:
            continue
        if type_keys and p["projectTypeKey"] not in type_keys:
            continue
        if category and (p["category"] or {}).get("id") != category:
            continue
        if query and query not in p["key"].lower() and query not in p["name"].lower():
            continue
        projects.append(p)
    keyf, desc = _project_sort(order)
    projects.sort(key=keyf, reverse=desc)
    expand = expand_param(q)
    page = page_bean(ctx, "/project/search", projects, start_at, max_results)
    page["values"] = [project_json(ctx, p, expand) for p in page["values"]]
    return json_response(page)


@handler(SPEC, "GET", "/rest/api/3/project/{projectIdOrKey}")
async def get_project(ctx: Ctx):
    p, err = _project_or_404(ctx, ctx.params["projectIdOrKey"])
    if err:
        return err
    return json_response(project_json(ctx, p, expand_param(ctx.request.query), full=True))


@handler(SPEC, "GET", "/rest/api/3/project/{projectIdOrKey}/components")
async def get_project_components(ctx: Ctx):
    p, err = _project_or_404(ctx, ctx.params["projectIdOrKey"])
    if err:
        return err
    source = single(ctx.request.query, "componentSource") or "jira"
    if source not in ("jira", "compass", "auto"):
        return jira_error(400, f"Invalid componentSource '{source}'.")
    comps = [] if source == "compass" else ctx.data.components[p["key"]]
    return json_response([component_json(ctx, p, c) for c in comps])


COMPONENT_ORDER = {"description", "issueCount", "lead", "name"}


@handler(SPEC, "GET", "/rest/api/3/project/{projectIdOrKey}/component")
async def get_project_components_paginated(ctx: Ctx):
    p, err = _project_or_404(ctx, ctx.params["projectIdOrKey"])
    if err:
        return err
    q = ctx.request.query
    try:
        start_at = int_param(q, "startAt", 0)
        max_results = int_param(q, "maxResults", 50)
        order = single(q, "orderBy")
        if order is not None and order.lstrip("+-") not in COMPONENT_ORDER:
            raise BadParam(f"Invalid orderBy value '{order}'.")
    except BadParam as e:
        return jira_error(400, str(e))
    query = (single(q, "query") or "").lower()
    comps = [c for c in ctx.data.components[p["key"]]
             if not query or query in c["name"].lower() or query in c["description"].lower()]
    if order:
        field = order.lstrip("+-")
        keyf = {"name": lambda c: (c["name"].lower(), c["id"]),
                "description": lambda c: (c["description"].lower(), c["id"]),
                "issueCount": lambda c: (c["issueCount"], c["id"]),
                "lead": lambda c: (c["lead"] or "", c["id"])}[field]
        comps = sorted(comps, key=keyf, reverse=order.startswith("-"))
    page = page_bean(ctx, f"/project/{ctx.params['projectIdOrKey']}/component", comps, start_at,
                     max_results)
    page["values"] = [component_json(ctx, p, c, with_count=True) for c in page["values"]]
    return json_response(page)


# --------------------------------------------------------------------------- createmeta
def _createmeta_paging(ctx: Ctx):
    q = ctx.request.query
    start_at = int_param(q, "startAt", 0)
    max_results = int_param(q, "maxResults", 50)
    if max_results > CREATEMETA_MAX:
        raise BadParam(f"Parameter 'maxResults' must not exceed the limit '{CREATEMETA_MAX}'")
    return start_at, max_results


def _meta_error(message: str):
    # the shape of the spec's own 400 example
    return json_response({"errorMessages": [message], "errors": {},
                          "httpStatusCode": {"empty": False, "present": True}}, status=400)


def _meta_project(ctx: Ctx):
    """Create metadata covers the projects the caller may create issues in."""
    p = perms.visible_project(ctx, ctx.params["projectIdOrKey"])
    return p if p is not None and perms.allowed(ctx, "project", p["key"], "create") else None


@handler(SPEC, "GET", "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes")
async def createmeta_issuetypes(ctx: Ctx):
    try:
        start_at, max_results = _createmeta_paging(ctx)
    except BadParam as e:
        return _meta_error(str(e))
    p = _meta_project(ctx)
    if p is None:
        return _meta_error(f"Project with key or id '{ctx.params['projectIdOrKey']}' does not exist "
                           "or you do not have permission to create issues in it.")
    types = p["issue_types"]
    page = types[start_at:start_at + max_results]
    return json_response({"issueTypes": [issuetype_json(ctx, p, it) for it in page],
                          "maxResults": max_results, "startAt": start_at, "total": len(types)})


@handler(SPEC, "GET", "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}")
async def createmeta_fields(ctx: Ctx):
    try:
        start_at, max_results = _createmeta_paging(ctx)
    except BadParam as e:
        return _meta_error(str(e))
    p = _meta_project(ctx)
    if p is None:
        return _meta_error(f"Project with key or id '{ctx.params['projectIdOrKey']}' does not exist "
                           "or you do not have permission to create issues in it.")
    it = issue_type(p, ctx.params["issueTypeId"])
    if it is None:
        return _meta_error(f"Issue type with id '{ctx.params['issueTypeId']}' is not valid for "
                           f"project '{p['key']}'.")
    fields = fields_for(ctx, p, it)
    page = fields[start_at:start_at + max_results]
    return json_response({"fields": page, "maxResults": max_results, "startAt": start_at,
                          "total": len(fields)})


# --------------------------------------------------------------------------- users
@handler(SPEC, "GET", "/rest/api/3/user/picker")
async def user_picker(ctx: Ctx):
    q = ctx.request.query
    query = single(q, "query")
    if query is None:
        return jira_error(400, "The 'query' parameter is required.")
    if q.getall("exclude", []) and q.getall("excludeAccountIds", []):
        return jira_error(400, "The 'exclude' and 'excludeAccountIds' parameters cannot be used together.")
    try:
        max_results = int_param(q, "maxResults", 50)
    except BadParam as e:
        return jira_error(400, str(e))
    excluded = set(list_param(q, "excludeAccountIds"))
    show_avatar = bool_param(q, "showAvatar")
    needle = query.strip().lower()
    hidden_exact = ctx.quirks.get("hidden_email_exact_match", True)
    hiding = ctx.quirks.get("cloud_hidden_emails", True)
    matches = [u for u in sorted(ctx.directory(), key=user_sort_key)
               if u["active"] and u["accountId"] not in excluded
               and cloud_user_matches(u, needle, hidden_exact, hiding)]
    shown = matches[:max_results]
    users = []
    for u in shown:
        j = {"accountId": u["accountId"], "accountType": u.get("accountType", "atlassian"),
             "html": picker_html(ctx, u, needle), "displayName": u["displayName"]}
        if show_avatar:
            j["avatarUrl"] = user_json(ctx, u)["avatarUrls"]["16x16"]
        users.append(j)
    return json_response({"users": users, "total": len(matches),
                          "header": f"Showing {len(shown)} of {len(matches)} matching users"})


@handler(SPEC, "GET", "/rest/api/3/user/assignable/search")
async def assignable_users(ctx: Ctx):
    q = ctx.request.query
    query = single(q, "query")
    account_id = single(q, "accountId")
    if query is not None and account_id is not None:
        return jira_error(400, "The 'query' and 'accountId' parameters cannot be used together.")
    if query is None and account_id is None:
        return jira_error(400, "Either the 'query' or the 'accountId' parameter must be provided.")
    project_ref = single(q, "project")
    issue_ref = single(q, "issueKey") or single(q, "issueId")
    if not project_ref and not issue_ref:
        return jira_error(400, "One of 'issueKey', 'issueId' or 'project' must be provided.")
    try:
        start_at = int_param(q, "startAt", 0)
        max_results = int_param(q, "maxResults", 50)
    except BadParam as e:
        return jira_error(400, str(e))
    if issue_ref and not project_ref:
        return jira_error(404, "Issue does not exist or you do not have permission to see it.")
    p = perms.visible_project(ctx, project_ref)
    if p is None or p["archived"]:
        return jira_error(404, f"No project could be found with key or id '{project_ref}'.")
    hidden_exact = ctx.quirks.get("hidden_email_exact_match", True)
    hiding = ctx.quirks.get("cloud_hidden_emails", True)
    if account_id is not None:
        candidates = [u for u in ctx.directory() if u["accountId"] == account_id]
    else:
        needle = query.strip().lower()
        candidates = [u for u in sorted(ctx.directory(), key=user_sort_key)
                      if cloud_user_matches(u, needle, hidden_exact, hiding)]
    # "takes the users in the range defined by startAt and maxResults, up to the thousandth
    # user, and then returns only the users from that range that can be assigned"
    window = candidates[:USER_SEARCH_WINDOW][start_at:start_at + max_results]
    return json_response([user_json(ctx, u) for u in window if perms.assignable(ctx, p, u)])
