"""Confluence Cloud handlers: REST v2 (confluence-cloud-v2, mounted at /wiki/api/v2) and the
REST v1 endpoints that remain on Cloud (confluence-cloud-v1, paths under /wiki/rest/api)."""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from urllib.parse import quote, urlencode

from .. import permissions as perms
from ..cloud import Ctx, handler
from ..util import json_response

V2 = "confluence-cloud-v2"
V1 = "confluence-cloud-v1"


def wiki_base(ctx: Ctx) -> str:
    return f"{ctx.site_url}/wiki"


# --------------------------------------------------------------------------- errors
def v2_error(status: int, code: str, title: str):
    """Confluence v2 error envelope."""
    return json_response({"errors": [{"status": status, "code": code, "title": title,
                                      "detail": None}]}, status=status)


def v1_error(ctx: Ctx, status: int, message: str):
    return json_response({"statusCode": status, "data": {"authorized": True, "valid": False,
                                                         "errors": [], "successful": False},
                          "message": message}, status=status)


class BadParam(Exception):
    pass


# --------------------------------------------------------------------------- v1 user
@handler(V1, "GET", "/wiki/rest/api/user/current")
async def get_current_user(ctx: Ctx):
    user = ctx.state.users[ctx.account_id]
    acc = user["accountId"]
    base = wiki_base(ctx)
    body = {
        "type": "known",
        "accountId": acc,
        "accountType": user["accountType"],
        "email": user["emailAddress"],
        "publicName": user["publicName"],
        "profilePicture": {"path": f"/wiki/aa-avatar/{acc}", "width": 48, "height": 48,
                           "isDefault": False},
        "displayName": user["displayName"],
        "timeZone": user["timeZone"],
        "isExternalCollaborator": False,
        "externalCollaborator": False,
        "isGuest": False,
        "_expandable": {"operations": "", "personalSpace": ""},
        "_links": {"self": f"{base}/rest/api/user?accountId={quote(acc, safe='')}",
                   "base": base, "context": "/wiki"},
    }
    return json_response(body)


# --------------------------------------------------------------------------- v2 spaces
SPACE_TYPES = {"global", "collaboration", "knowledge_base", "personal", "system", "onboarding",
               "xflow_sample_space"}
SPACE_STATUSES = {"current", "archived"}
SPACE_SORTS = {"id", "-id", "key", "-key", "name", "-name"}
DESCRIPTION_FORMATS = {"plain", "view"}


def _list_param(query, name: str) -> list[str]:
    out: list[str] = []
    for v in query.getall(name, []):
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _single(query, name: str) -> str | None:
    vals = query.getall(name, [])
    if len(vals) > 1:
        raise BadParam(f"Parameter '{name}' may only be given once.")
    return vals[0] if vals else None


def _int_param(query, name: str, default: int, lo: int, hi: int) -> int:
    raw = _single(query, name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BadParam(f"'{name}' must be an integer.") from None
    if v < lo or v > hi:
        raise BadParam(f"'{name}' must be between {lo} and {hi}.")
    return v


def _bool_param(query, name: str, default: bool) -> bool:
    raw = _single(query, name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise BadParam(f"'{name}' must be true or false.")
    return raw.lower() == "true"


def encode_cursor(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> dict:
    try:
        pad = "=" * (-len(raw) % 4)
        data = json.loads(base64.urlsafe_b64decode(raw + pad).decode())
        if not isinstance(data, dict):
            raise ValueError
        return data
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadParam("Invalid cursor.") from None


def _sort_key(field: str):
    if field == "id":
        return lambda s: (int(s["id"]),)
    if field == "created-date":
        return lambda s: (s["createdAt"], int(s["id"]))
    if field == "modified-date":
        return lambda s: (s.get("updatedAt", s["createdAt"]), int(s["id"]))
    return lambda s: (s[field].lower(), int(s["id"]))


def page_after(items: list[dict], sort: str, cursor: dict | None, limit: int):
    """Sort, skip past the cursor position, take `limit`; return (page, next cursor|None)."""
    desc = sort.startswith("-")
    field = sort.lstrip("-")
    keyf = _sort_key(field)
    ordered = sorted(items, key=keyf, reverse=desc)
    if cursor is not None:
        if cursor.get("sort") != sort or not isinstance(cursor.get("after"), list):
            raise BadParam("Invalid cursor.")
        after = tuple(cursor["after"])
        ordered = [s for s in ordered if (keyf(s) < after if desc else keyf(s) > after)]
    page = ordered[:limit]
    nxt = None
    if len(ordered) > limit:
        nxt = {"sort": sort, "after": list(keyf(page[-1]))}
    return page, nxt


def _next_link(ctx: Ctx, path: str, cursor_value: str) -> str:
    pairs = [(k, v) for k, v in ctx.request.query.items() if k != "cursor"]
    pairs.append(("cursor", cursor_value))
    return f"{path}?{urlencode(pairs)}"


def paged_response(ctx: Ctx, path: str, results: list[dict], nxt: dict | None):
    base = wiki_base(ctx)
    links: dict[str, str] = {}
    link_header = []
    if nxt is not None:
        links["next"] = _next_link(ctx, path, encode_cursor(nxt))
        link_header.append(f'<{links["next"]}>; rel="next"')
    links["base"] = base
    link_header.append(f'<{base}>; rel="base"')
    return json_response({"results": results, "_links": links},
                         headers={"Link": ", ".join(link_header)})


def space_json(space: dict, description_format: str | None, include_icon: bool) -> dict:
    out = {k: space[k] for k in ("id", "key", "name", "type", "status", "authorId",
                                 "createdAt", "homepageId", "spaceOwnerId", "currentActiveAlias")}
    if description_format:
        out["description"] = {description_format: space["description"][description_format]}
    if include_icon:
        out["icon"] = space["icon"]
    out["_links"] = dict(space["_links"])
    return out


@handler(V2, "GET", "/spaces")
async def get_spaces(ctx: Ctx):
    q = ctx.request.query
    try:
        limit = _int_param(q, "limit", 25, 1, 250)
        ids = _list_param(q, "ids")
        keys = _list_param(q, "keys")
        if len(ids) > 250 or len(keys) > 250:
            raise BadParam("At most 250 ids or keys may be given.")
        for i in ids:
            if not i.isdigit():
                raise BadParam("'ids' must be integers.")
        stype = _single(q, "type")
        if stype is not None and stype not in SPACE_TYPES:
            raise BadParam("Invalid space type.")
        status = _single(q, "status")
        if status is not None and status not in SPACE_STATUSES:
            raise BadParam("Invalid space status.")
        labels = _list_param(q, "labels")
        sort = _single(q, "sort") or "id"
        if sort not in SPACE_SORTS:
            raise BadParam("Invalid sort.")
        dfmt = _single(q, "description-format")
        if dfmt is not None and dfmt not in DESCRIPTION_FORMATS:
            raise BadParam("Invalid description-format.")
        include_icon = _bool_param(q, "include-icon", False)
        raw_cursor = _single(q, "cursor")
        cursor = decode_cursor(raw_cursor) if raw_cursor is not None else None
        spaces = [s for s in ctx.data.spaces if perms.can_view_space(ctx, s)]
        if ids:
            idset = {str(int(i)) for i in ids}
            spaces = [s for s in spaces if s["id"] in idset]
        if keys:
            keyset = set(keys)
            spaces = [s for s in spaces if s["key"] in keyset]
        if stype:
            spaces = [s for s in spaces if s["type"] == stype]
        if status:
            spaces = [s for s in spaces if s["status"] == status]
        if labels:
            spaces = [s for s in spaces if set(labels) & set(s.get("labels", []))]
        page, nxt = page_after(spaces, sort, cursor, limit)
    except BadParam as e:
        return v2_error(400, "INVALID_REQUEST_PARAMETER", str(e))
    results = [space_json(s, dfmt, include_icon) for s in page]
    return paged_response(ctx, "/wiki/api/v2/spaces", results, nxt)


@handler(V2, "GET", "/spaces/{id}")
async def get_space(ctx: Ctx):
    q = ctx.request.query
    raw_id = ctx.params["id"]
    try:
        if not raw_id.isdigit():
            raise BadParam("'id' must be an integer.")
        dfmt = _single(q, "description-format")
        if dfmt is not None and dfmt not in DESCRIPTION_FORMATS:
            raise BadParam("Invalid description-format.")
        include_icon = _bool_param(q, "include-icon", False)
        for flag in ("include-operations", "include-properties", "include-permissions",
                     "include-role-assignments", "include-labels"):
            _bool_param(q, flag, False)
    except BadParam as e:
        return v2_error(400, "INVALID_REQUEST_PARAMETER", str(e))
    space = ctx.data.space_by_id.get(str(int(raw_id)))
    if not perms.can_view_space(ctx, space):
        return v2_error(404, "NOT_FOUND", "Not Found")
    body = space_json(space, dfmt, include_icon)
    body["_links"]["base"] = wiki_base(ctx)
    return json_response(body)


# --------------------------------------------------------------------------- v2 pages
PAGE_SORTS = {"id", "-id", "created-date", "-created-date", "modified-date", "-modified-date",
              "title", "-title"}
PAGE_STATUSES = {"current", "archived", "deleted", "trashed"}
BODY_FORMATS = {"storage", "atlas_doc_format"}


def storage_to_text(value: str) -> str:
    """The text of a storage body (tags dropped), for the representations the sim derives."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", value)).split())


def body_json(fmt: str, storage: str) -> dict:
    """`body` of a page in the asked format. The sim keeps storage only: `view`-like formats show
    the storage XHTML as is; `atlas_doc_format` is one paragraph with the body's text."""
    if fmt == "atlas_doc_format":
        text = storage_to_text(storage)
        doc = {"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": text}] if text else []}]}
        return {fmt: {"representation": fmt, "value": json.dumps(doc)}}
    return {fmt: {"representation": fmt, "value": storage}}


def page_json(ctx: Ctx, page: dict, body_format: str | None, version: dict | None = None,
              include_version: bool = True) -> dict:
    """v2 `PageBulk` / `PageSingle`; `version`: a historical version of the page (from its
    history) to show instead of the current one."""
    store = ctx.state.confluence_store("cloud", ctx.site.id)
    author = page.get("authorId") or ctx.state.current_account_id
    if version is None:
        title, parent, number = page["title"], page["parentId"], page["version"]
        body, vtime = store.body_of(page), page.get("updatedAt", page["createdAt"])
        vauthor, message, minor = author, "", False
        hist = page.get("versions")
        if hist:
            vauthor, message, minor = hist[-1]["authorId"] or author, hist[-1]["message"], hist[-1]["minorEdit"]
    else:
        title, parent, number = version["title"], version["parentId"], version["number"]
        body, vtime = version["body"], version["createdAt"]
        vauthor, message, minor = version["authorId"] or author, version["message"], version["minorEdit"]
    out = {
        "id": page["id"], "status": page["status"], "title": title,
        "spaceId": page["spaceId"], "parentId": parent,
        "parentType": "page" if parent else None,
        "position": page["position"], "authorId": author, "ownerId": author,
        "lastOwnerId": None, "subtype": None, "createdAt": page["createdAt"],
    }
    if include_version:
        out["version"] = {"createdAt": vtime, "message": message, "number": number,
                          "minorEdit": minor, "authorId": vauthor}
    out["body"] = body_json(body_format, body) if body_format else {}
    out["_links"] = {"webui": f"/spaces/{page['spaceKey']}/pages/{page['id']}",
                     "editui": f"/pages/resumedraft.action?draftId={page['id']}",
                     "tinyui": f"/x/{page['id']}"}
    return out


@handler(V2, "GET", "/pages")
async def get_pages(ctx: Ctx):
    q = ctx.request.query
    try:
        limit = _int_param(q, "limit", 25, 1, 250)
        ids = _list_param(q, "id")
        space_ids = _list_param(q, "space-id")
        if len(ids) > 250:
            raise BadParam("At most 250 ids may be given.")
        if len(space_ids) > 100:
            raise BadParam("At most 100 space ids may be given.")
        for i in ids + space_ids:
            if not i.isdigit():
                raise BadParam("'id' and 'space-id' must be integers.")
        sort = _single(q, "sort") or "id"
        if sort not in PAGE_SORTS:
            raise BadParam("Invalid sort.")
        statuses = _list_param(q, "status") or ["current", "archived"]
        if not set(statuses) <= PAGE_STATUSES:
            raise BadParam("Invalid status.")
        title = _single(q, "title")
        body_format = _single(q, "body-format")
        if body_format is not None and body_format not in BODY_FORMATS:
            raise BadParam("Invalid body-format.")
        subtype = _single(q, "subtype")
        if subtype is not None and subtype not in ("live", "page"):
            raise BadParam("Invalid subtype.")
        raw_cursor = _single(q, "cursor")
        cursor = decode_cursor(raw_cursor) if raw_cursor is not None else None
        ds = ctx.data
        if space_ids:
            pages = [pg for sid in dict.fromkeys(str(int(x)) for x in space_ids)
                     for pg in ds.pages_by_space.get(sid, [])]
        else:
            pages = list(ds.pages)
        if ids:
            idset = {str(int(i)) for i in ids}
            pages = [pg for pg in pages if pg["id"] in idset]
        if title is not None:
            pages = [pg for pg in pages if pg["title"] == title]
        pages = [pg for pg in perms.visible_pages(ctx, pages) if pg["status"] in statuses]
        if subtype == "live":
            pages = []
        page, nxt = page_after(pages, sort, cursor, limit)
    except BadParam as e:
        return v2_error(400, "INVALID_REQUEST_PARAMETER", str(e))
    return paged_response(ctx, "/wiki/api/v2/pages", [page_json(ctx, pg, body_format) for pg in page], nxt)
