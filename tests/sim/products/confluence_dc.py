"""Confluence Data Center REST handlers (spec: confluence-dc-10.0.3-openapi.json, paths under
`/rest/api` below the instance's base URL, i.e. its context path).

Offset pagination: `start`/`limit` in, `results`/`start`/`limit`/`size`/`_links` out, with
`_links.next` (and `prev`) relative to `_links.base` while more results exist. `limit` is
capped by "fixed system limits" (spaces 500, content 200); the response's `limit` says which
limit was applied.

Anonymous callers get what Confluence gives anonymous users: `user/current` answers the
anonymous user (200), space and content lists are empty, a space by key is 404.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from .. import permissions as perms
from ..cloud import Ctx, handler
from ..dc import rest_error
from ..util import json_response

SPEC = "confluence-dc"
SPACE_LIMIT_MAX = 500
CONTENT_LIMIT_MAX = 200


class BadParam(Exception):
    pass


def _context(ctx: Ctx) -> str:
    return ctx.instance.context_path


def _links(ctx: Ctx, self_path: str) -> dict:
    return {"base": ctx.base, "context": _context(ctx), "self": ctx.base + self_path}


def _single(q, name: str) -> str | None:
    vals = q.getall(name, [])
    return vals[-1] if vals else None


def _int(q, name: str, default: int, lo: int = 0) -> int:
    raw = _single(q, name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BadParam(f"{name} must be an integer") from None
    if v < lo:
        raise BadParam(f"{name} must be >= {lo}")
    return v


def _expand(q) -> set[str]:
    out = set()
    for v in q.getall("expand", []):
        out |= {x.strip() for x in v.split(",") if x.strip()}
    return out


def _paged(ctx: Ctx, path: str, items: list, start: int, limit: int, render) -> dict:
    page = items[start:start + limit]
    links = _links(ctx, path)
    others = [(k, v) for k, v in ctx.request.query.items() if k not in ("start", "limit", "next", "prev")]
    if start + limit < len(items):
        links["next"] = f"{path}?" + urlencode(others + [("next", "true"), ("limit", limit),
                                                         ("start", start + limit)])
    if start > 0:
        links["prev"] = f"{path}?" + urlencode(others + [("prev", "true"), ("limit", limit),
                                                         ("start", max(0, start - limit))])
    return {"results": [render(x) for x in page], "start": start, "limit": limit,
            "size": len(page), "_links": links}


def _bad_request(message: str):
    return rest_error(400, message, "Bad Request")


# --------------------------------------------------------------------------- users
def _profile_picture(ctx: Ctx, anonymous: bool = False) -> dict:
    name = "anonymous" if anonymous else "default"
    return {"path": f"{_context(ctx)}/images/icons/profilepics/{name}.svg", "width": 48,
            "height": 48, "isDefault": True}


def person_json(ctx: Ctx, user: dict) -> dict:
    return {"type": "known", "username": user["name"], "userKey": user["userKey"],
            "profilePicture": _profile_picture(ctx), "displayName": user["displayName"],
            "_links": {"self": f"{ctx.base}/rest/api/user?key={user['userKey']}"},
            "_expandable": {"status": ""}}


@handler(SPEC, "GET", "/rest/api/user/current")
async def get_current_user(ctx: Ctx):
    if ctx.user is None:
        return json_response({"type": "anonymous", "profilePicture": _profile_picture(ctx, True),
                              "displayName": "Anonymous",
                              "_links": {"base": ctx.base, "context": _context(ctx)}})
    body = person_json(ctx, ctx.user)
    body["_links"] = {**_links(ctx, f"/rest/api/user?key={ctx.user['userKey']}")}
    body["_expandable"] = {"status": "", "details.personal": "", "details.business": ""}
    if "details.personal" in _expand(ctx.request.query):
        body["details"] = {"personal": {"email": ctx.user["emailAddress"]}}
    return json_response(body)


# --------------------------------------------------------------------------- spaces
def _homepage(ctx: Ctx, space: dict) -> dict | None:
    return ctx.data.page_by_id.get(space["homepageId"])


def space_json(ctx: Ctx, space: dict, expand: set[str]) -> dict:
    out: dict = {"id": int(space["id"]), "key": space["key"], "name": space["name"]}
    expandable = {"metadata": "", "icon": "", "description": "", "retentionPolicy": ""}
    if "icon" in expand:
        out["icon"] = {"path": f"{_context(ctx)}/images/logo/default-space-logo-256.png",
                       "width": 48, "height": 48, "isDefault": True}
        expandable.pop("icon")
    if "description" in expand or "description.plain" in expand:
        out["description"] = {"plain": {"value": space["description"]["plain"]["value"],
                                        "representation": "plain", "embeddedContent": []}}
        expandable.pop("description")
    home = _homepage(ctx, space)
    if "homepage" in expand and home is not None:
        out["homepage"] = content_json(ctx, home, set())
    elif home is not None:
        expandable["homepage"] = f"/rest/api/content/{home['id']}"
    out["type"] = space["type"]
    out["status"] = space["status"]
    out["_links"] = {"webui": f"/display/{quote(space['key'], safe='~')}",
                     "self": f"{ctx.base}/rest/api/space/{quote(space['key'], safe='~')}"}
    out["_expandable"] = expandable
    return out


@handler(SPEC, "GET", "/rest/api/space")
async def get_spaces(ctx: Ctx):
    q = ctx.request.query
    try:
        start = _int(q, "start", 0)
        limit = min(_int(q, "limit", 25, lo=1), SPACE_LIMIT_MAX)
    except BadParam as e:
        return _bad_request(str(e))
    stype = _single(q, "type")
    if stype is not None and stype not in ("global", "personal"):
        return _bad_request(f"Unknown space type: {stype}")
    status = _single(q, "status")
    if status is not None and status not in ("current", "archived"):
        return _bad_request(f"Unknown space status: {status}")
    keys = [k for v in q.getall("spaceKey", []) for k in v.split(",") if k]
    ids = [k for name in ("spaceId", "spaceIds") for v in q.getall(name, []) for k in v.split(",") if k]
    spaces = [] if ctx.user is None else [s for s in ctx.data.spaces if perms.can_view_space(ctx, s)]
    if keys:
        keyset = set(keys)
        spaces = [s for s in spaces if s["key"] in keyset]
    if ids:
        idset = set(ids)
        spaces = [s for s in spaces if s["id"] in idset]
    if stype:
        spaces = [s for s in spaces if s["type"] == stype]
    if status:
        spaces = [s for s in spaces if s["status"] == status]
    if q.getall("label", []):
        spaces = []          # no space carries a label
    spaces = sorted(spaces, key=lambda s: s["key"].lower())
    expand = _expand(q)
    return json_response(_paged(ctx, "/rest/api/space", spaces, start, limit,
                                lambda s: space_json(ctx, s, expand)))


@handler(SPEC, "GET", "/rest/api/space/{spaceKey}")
async def get_space(ctx: Ctx):
    key = ctx.params["spaceKey"]
    space = ctx.data.space_by_key.get(key) if ctx.user is not None else None
    if not perms.can_view_space(ctx, space):
        return rest_error(404, f"No space with key : {key}", "Not Found")
    return json_response(space_json(ctx, space, _expand(ctx.request.query)))


# --------------------------------------------------------------------------- content
def _person_ref(ctx: Ctx, username: str | None = None) -> dict:
    """The page's author (or the default `bridge-bot` for generated pages)."""
    who = (ctx.state.dc_user(username) if username else None) or ctx.state.dc_user("bridge-bot") or ctx.user
    if who is None:
        return {"type": "anonymous", "displayName": "Anonymous"}
    return person_json(ctx, who)


def content_json(ctx: Ctx, page: dict, expand: set[str]) -> dict:
    ds = ctx.data
    space = ds.space_by_id[page["spaceId"]]
    pid = page["id"]
    out: dict = {"id": pid, "type": "page", "status": page["status"], "title": page["title"]}
    expandable = {"container": f"/rest/api/space/{space['key']}", "metadata": "",
                  "operations": "", "children": f"/rest/api/content/{pid}/child",
                  "restrictions": f"/rest/api/content/{pid}/restriction/byOperation",
                  "history": f"/rest/api/content/{pid}/history", "ancestors": "", "body": "",
                  "version": "", "descendants": f"/rest/api/content/{pid}/descendant",
                  "space": f"/rest/api/space/{space['key']}"}
    if "space" in expand:
        out["space"] = space_json(ctx, space, set())
        expandable.pop("space")
    if "container" in expand:
        out["container"] = space_json(ctx, space, set())
        expandable.pop("container")
    store = ctx.state.confluence_store("dc")
    history = page.get("versions") or []
    author = page.get("authorId")
    if "history" in expand:
        out["history"] = {"latest": True, "createdBy": _person_ref(ctx, author),
                          "createdDate": page["createdAt"],
                          "_links": {"self": f"{ctx.base}/rest/api/content/{pid}/history"}}
        expandable.pop("history")
    if "version" in expand:
        last = history[-1] if history else {"authorId": author, "message": "", "minorEdit": False}
        out["version"] = {"by": _person_ref(ctx, last["authorId"]),
                          "when": page.get("updatedAt", page["createdAt"]), "message": last["message"],
                          "number": page["version"], "minorEdit": last["minorEdit"], "hidden": False,
                          "_links": {"self": f"{ctx.base}/rest/experimental/content/{pid}/version/"
                                             f"{page['version']}"},
                          "_expandable": {"content": f"/rest/api/content/{pid}"}}
        expandable.pop("version")
    if "ancestors" in expand:
        chain = []
        parent = page["parentId"]
        while parent:
            pp = ds.page_by_id[parent]
            chain.insert(0, content_json(ctx, pp, set()))
            parent = pp["parentId"]
        out["ancestors"] = chain
        expandable.pop("ancestors")
    if "body.storage" in expand:
        out["body"] = {"storage": {"value": store.body_of(page), "representation": "storage",
                                   "_expandable": {"content": f"/rest/api/content/{pid}"}}}
        expandable.pop("body")
    out["extensions"] = {"position": page["position"] if page["position"] is not None else "none"}
    out["_links"] = {"webui": f"/pages/viewpage.action?pageId={pid}",
                     "edit": f"/pages/resumedraft.action?draftId={pid}",
                     "tinyui": f"/x/{pid}",
                     "self": f"{ctx.base}/rest/api/content/{pid}"}
    out["_expandable"] = expandable
    return out


@handler(SPEC, "GET", "/rest/api/content")
async def get_content(ctx: Ctx):
    q = ctx.request.query
    try:
        start = _int(q, "start", 0)
        limit = min(_int(q, "limit", 25, lo=1), CONTENT_LIMIT_MAX)
    except BadParam as e:
        return _bad_request(str(e))
    ctype = _single(q, "type") or "page"
    if ctype not in ("page", "blogpost"):
        return _bad_request(f"Unsupported content type: {ctype}")
    if ctype == "blogpost" and _single(q, "title") and not _single(q, "postingDay"):
        return _bad_request("postingDay is required for blogpost lookup by title")
    statuses = {s for v in q.getall("status", []) for s in v.split(",") if s} or {"current"}
    if "any" in statuses:
        statuses |= {"current", "trashed"}
    ds = ctx.data
    space_key = _single(q, "spaceKey")
    title = _single(q, "title")
    ids = [i for v in q.getall("ids", []) for i in v.split(",") if i]
    if ctx.user is None or ctype == "blogpost":
        pages = []
    elif space_key is not None:
        space = ds.space_by_key.get(space_key)
        pages = ds.pages_by_space.get(space["id"], []) if space else []
    else:
        pages = ds.pages
    if title is not None:
        pages = [p for p in pages if p["title"] == title]
    if ids:
        idset = set(ids)
        pages = [p for p in pages if p["id"] in idset]
    pages = [p for p in perms.visible_pages(ctx, pages) if p["status"] in statuses]
    expand = _expand(q)
    return json_response(_paged(ctx, "/rest/api/content", pages, start, limit,
                                lambda p: content_json(ctx, p, expand)))


@handler(SPEC, "GET", "/rest/api/content/{id}")
async def get_content_by_id(ctx: Ctx):
    page = ctx.data.page_by_id.get(ctx.params["id"]) if ctx.user is not None else None
    if not perms.page_visible(ctx, page):
        return rest_error(404, f"No content found with id: ContentId{{id={ctx.params['id']}}}",
                          "Not Found")
    expand = _expand(ctx.request.query)
    return json_response(content_json(ctx, page, expand))
