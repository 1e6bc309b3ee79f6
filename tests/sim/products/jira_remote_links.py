"""Jira remote issue links: `POST`/`GET issue/{key}/remotelink` — Cloud REST v3 and DC REST v2.

POST creates a link, or — when the body's `globalId` names a link the issue already has — updates
that one in place (same id), exactly as Jira documents it: "If a `globalId` is provided and a
remote issue link with that global ID is found it is updated. Any fields without values in the
request are set to null. Otherwise, the remote issue link is created."
(developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-remote-links, and the DC
spec's createOrUpdateRemoteIssueLink). Cloud answers 201 for a new link and 200 for an update;
DC's spec lists only 200. `object.url` and `object.title` are required (400 with `errors`, the
Cloud spec's example). Permissions as Jira: Browse Projects, else 404 (Jira hides the issue), and
Link Issues (`link` in permissions.py), else 403. GET lists the issue's links in creation order,
or with `?globalId=` the one link (404 when there is none). The links live on the issue
(`issue["remotelinks"]`), so the control API's `GET /_sim/jira/issues` shows them too.
"""

from __future__ import annotations

from aiohttp import web

from .. import permissions as perms
from ..cloud import Ctx, handler
from ..dc import require_user
from ..util import json_response
from .jira_common import api, jira_error
from .jira_issues import CLOUD, DC, NOT_FOUND, _json_or_error, store_of, visible_issue

# reconstructed: Jira's RemoteIssueLinkService refuses a user without Link Issues
NO_LINK = "You do not have permission to link issues in this project."
GLOBAL_ID_MAX = 255
_FIELDS = ("globalId", "application", "relationship", "object")


def _links(issue: dict) -> list[dict]:
    return issue.setdefault("remotelinks", [])


def _link_json(ctx: Ctx, issue: dict, link: dict) -> dict:
    out = {"id": link["id"], "self": f"{api(ctx)}/issue/{issue['key']}/remotelink/{link['id']}"}
    out.update({k: link[k] for k in _FIELDS if link.get(k) is not None})
    return out


def _invalid(body) -> dict:
    if not isinstance(body, dict):
        return {"object": "'object' is required."}
    obj = body.get("object")
    errors: dict = {}
    if not isinstance(obj, dict):
        return {"object": "'object' is required."}
    for name in ("url", "title"):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            errors[name] = f"'{name}' is required."
    gid = body.get("globalId")
    if gid is not None and (not isinstance(gid, str) or len(gid) > GLOBAL_ID_MAX):
        errors["globalId"] = f"The global id must be at most {GLOBAL_ID_MAX} characters."
    return errors


def _issue_or_error(ctx: Ctx, perm: str | None):
    if ctx.flavour == "dc":
        denied = require_user(ctx)
        if denied:
            return None, denied
    issue = visible_issue(ctx, store_of(ctx))
    if issue is None:
        return None, jira_error(404, NOT_FOUND)
    if perm and not perms.allowed(ctx, "project", issue["projectKey"], perm):
        return None, jira_error(403, NO_LINK)
    return issue, None


async def create_or_update(ctx: Ctx):
    body, err = await _json_or_error(ctx)
    if err:
        return err
    issue, err = _issue_or_error(ctx, "link")
    if err:
        return err
    errors = _invalid(body)
    if errors:
        return jira_error(400, errors=errors)
    values = {k: body.get(k) for k in _FIELDS}
    links = _links(issue)
    gid = values["globalId"]
    existing = next((link for link in links if gid and link.get("globalId") == gid), None)
    store = store_of(ctx)
    if existing is not None:
        existing.update(values)                 # fields left out become null, as in Jira
        existing["updates"] = existing.get("updates", 0) + 1
        link, status = existing, 200
    else:
        store.remote_link_seq = getattr(store, "remote_link_seq", 10000) + 1
        link = {"id": store.remote_link_seq, **values, "updates": 0}
        links.append(link)
        status = 201 if ctx.flavour == "cloud" else 200
    return json_response({"id": link["id"], "self": _link_json(ctx, issue, link)["self"]}, status=status)


async def list_links(ctx: Ctx):
    issue, err = _issue_or_error(ctx, None)
    if err:
        return err
    gid = ctx.request.query.get("globalId")
    links = _links(issue)
    if gid is not None:
        link = next((link for link in links if link.get("globalId") == gid), None)
        if link is None:
            return jira_error(404, f"No remote link with global id {gid!r} on this issue.")
        return json_response(_link_json(ctx, issue, link))
    return json_response([_link_json(ctx, issue, link) for link in links])


@handler(CLOUD, "POST", "/rest/api/3/issue/{issueIdOrKey}/remotelink")
async def cloud_create_or_update(ctx: Ctx) -> web.Response:
    return await create_or_update(ctx)


@handler(CLOUD, "GET", "/rest/api/3/issue/{issueIdOrKey}/remotelink")
async def cloud_list(ctx: Ctx) -> web.Response:
    return await list_links(ctx)


@handler(DC, "POST", "/api/2/issue/{issueIdOrKey}/remotelink")
async def dc_create_or_update(ctx: Ctx) -> web.Response:
    return await create_or_update(ctx)


@handler(DC, "GET", "/api/2/issue/{issueIdOrKey}/remotelink")
async def dc_list(ctx: Ctx) -> web.Response:
    return await list_links(ctx)
