"""Writing Confluence pages: Cloud REST v2 (`GET|POST /pages`, `GET|PUT /pages/{id}`, the page's
attachments for read-back) and Data Center REST (`POST /rest/api/content`,
`PUT /rest/api/content/{contentId}`).

State rules (both deployments, see `state.ConfluenceStore`): titles are unique per space
(ignoring case; current, draft, archived and restricted pages hold them), an update must carry the current version + 1 (else 409),
storage bodies must be well-formed XHTML and are kept verbatim, every page remembers its
versions. Request bodies are held to the spec's schemas: unknown members and missing required
ones are a 400 in the API's error shape.
"""

from __future__ import annotations

from .. import permissions as perms
from ..cloud import Ctx, handler
from ..dc import require_user, rest_error
from ..state import ContentError
from ..util import json_response
from . import confluence_cloud as cc
from . import confluence_dc as cdc
from .payload import BodyError, is_id, read_json, storage_error, unrecognized

V2 = "confluence-cloud-v2"
DC = "confluence-dc"
SINGLE_BODY_FORMATS = {"storage", "atlas_doc_format", "view", "export_view",
                       "anonymous_export_view", "styled_view", "editor"}
CREATE_MEMBERS = {"spaceId", "status", "title", "parentId", "body", "subtype"}
UPDATE_MEMBERS = {"id", "status", "title", "spaceId", "parentId", "ownerId", "body", "version"}
BODY_WRITE_MEMBERS = {"representation", "value"}
REPRESENTATIONS = {"storage", "atlas_doc_format", "wiki"}


def not_implemented(what: str):
    return json_response({"message": f"not implemented in simulator: {what}"}, status=501)


class Refusal(Exception):
    """A 400 (or other) the handler answers in its API's shape."""

    def __init__(self, message: str, status: int = 400, code: str = "INVALID_REQUEST_PARAMETER"):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class NotImplementedInSim(Exception):
    pass


def caller_sees(ctx: Ctx):
    """The caller's view of pages, for the friendly title check (quirk `strict_page_titles` off)."""
    return lambda p: perms.page_visible(ctx, p)


def body_too_large(ctx: Ctx) -> bool:
    """Cloud v2 creates answer 413 over 5 MB (the v2 spec's 413 for POST /pages)."""
    limit = ctx.quirks.get("confluence_max_body_bytes", 0)
    size = ctx.request.content_length
    return bool(limit) and size is not None and size > limit


def v2_parent(ctx: Ctx, store, parent_id: str | None) -> None:
    """A parent the caller cannot see is as unknown as a missing one."""
    if parent_id is not None and store.page(parent_id) is not None \
            and not perms.page_visible(ctx, store.page(parent_id)):
        raise ContentError("not_found", f"No content found with id: ContentId{{id={parent_id}}}")


# =========================================================================== Cloud v2
def v2_refusal(e: Refusal):
    return cc.v2_error(e.status, e.code, e.message)


def v2_content_error(e: ContentError):
    code = {"title_taken": "BAD_REQUEST", "version_conflict": "CONFLICT", "not_found": "NOT_FOUND",
            "bad_request": "BAD_REQUEST"}.get(e.kind, "BAD_REQUEST")
    return cc.v2_error(e.status, code, e.message)


def v2_body(value) -> tuple[str, str]:
    """`body` of a v2 write: `PageBodyWrite` `{representation, value}` or `PageNestedBodyWrite`
    `{storage: {representation, value}}`; returns (representation, value)."""
    if not isinstance(value, dict):
        raise Refusal("'body' must be an object.")
    if "representation" in value or "value" in value:
        write = value
        nested_key = None
    else:
        keys = [k for k in value if k in REPRESENTATIONS]
        extra = [k for k in value if k not in REPRESENTATIONS]
        if extra:
            raise Refusal(unrecognized(extra[0], "PageNestedBodyWrite"))
        if len(keys) != 1:
            raise Refusal("'body' must hold exactly one representation, e.g. 'storage'.")
        nested_key = keys[0]
        write = value[nested_key]
        if not isinstance(write, dict):
            raise Refusal(f"'body.{nested_key}' must be an object.")
    extra = [k for k in write if k not in BODY_WRITE_MEMBERS]
    if extra:
        raise Refusal(unrecognized(extra[0], "PageBodyWrite"))
    rep, val = write.get("representation"), write.get("value")
    if rep not in REPRESENTATIONS:
        raise Refusal("'representation' must be one of storage, atlas_doc_format, wiki.")
    if nested_key is not None and rep != nested_key:
        raise Refusal(f"'body.{nested_key}.representation' must be '{nested_key}'.")
    if not isinstance(val, str):
        raise Refusal("'value' must be a string.")
    if rep != "storage":
        raise NotImplementedInSim(f"{rep} bodies (the simulator keeps storage only)")
    err = storage_error(val)
    if err:
        raise Refusal(err)
    return rep, val


def _v2_id(value, name: str) -> str:
    if not is_id(value):
        raise Refusal(f"'{name}' must be a string holding a numeric id.")
    return str(int(value))


def _v2_title(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Refusal("A published page must have a non-empty 'title'.")
    return value


@handler(V2, "GET", "/pages/{id}")
async def v2_get_page(ctx: Ctx):
    q = ctx.request.query
    raw_id = ctx.params["id"]
    try:
        if not raw_id.isdigit():
            raise cc.BadParam("'id' must be an integer.")
        fmt = cc._single(q, "body-format")
        if fmt is not None and fmt not in SINGLE_BODY_FORMATS:
            raise cc.BadParam("Invalid body-format.")
        raw_version = cc._single(q, "version")
        if raw_version is not None and not raw_version.isdigit():
            raise cc.BadParam("'version' must be an integer.")
        include_version = cc._bool_param(q, "include-version", True)
        for flag in ("get-draft", "include-labels", "include-properties", "include-operations",
                     "include-likes", "include-versions", "include-favorited-by-current-user-status",
                     "include-webresources", "include-collaborators", "include-direct-children"):
            cc._bool_param(q, flag, False)
    except cc.BadParam as e:
        return cc.v2_error(400, "INVALID_REQUEST_PARAMETER", str(e))
    store = ctx.state.confluence_store("cloud", ctx.site.id)
    page = store.page(str(int(raw_id)))
    if not perms.page_visible(ctx, page):            # restricted pages are 404, not 403
        return cc.v2_error(404, "NOT_FOUND", "Not Found")
    version = None
    if raw_version is not None and int(raw_version) != page["version"]:
        version = store.version_of(page, int(raw_version))
        if version is None:
            return cc.v2_error(404, "NOT_FOUND", "Not Found")
    body = cc.page_json(ctx, page, fmt, version=version, include_version=include_version)
    body["_links"]["base"] = cc.wiki_base(ctx)
    return json_response(body)


@handler(V2, "POST", "/pages")
async def v2_create_page(ctx: Ctx):
    q = ctx.request.query
    try:
        for flag in ("embedded", "private"):
            cc._bool_param(q, flag, False)
        root_level = cc._bool_param(q, "root-level", False)
    except cc.BadParam as e:
        return cc.v2_error(400, "INVALID_REQUEST_PARAMETER", str(e))
    if body_too_large(ctx):
        return cc.v2_error(413, "REQUEST_ENTITY_TOO_LARGE", "Request Entity Too Large")
    try:
        req = await read_json(ctx.request)
    except BodyError as e:
        return cc.v2_error(e.status, "INVALID_REQUEST_PARAMETER", e.message)
    store = ctx.state.confluence_store("cloud", ctx.site.id)
    try:
        if not isinstance(req, dict):
            raise Refusal("The request body must be a JSON object.")
        extra = [k for k in req if k not in CREATE_MEMBERS]
        if extra:
            raise Refusal(unrecognized(extra[0], "PageCreateRequest"))
        if "spaceId" not in req:
            raise Refusal("'spaceId' is required.")
        space_id = _v2_id(req["spaceId"], "spaceId")
        status = req.get("status", "current")
        if status not in ("current", "draft"):
            raise Refusal("'status' must be current or draft.")
        if req.get("subtype") is not None:
            if req["subtype"] != "live":
                raise Refusal("'subtype' must be live.")
            raise NotImplementedInSim("live docs")
        title = req.get("title")
        if status == "current":
            title = _v2_title(title)
        elif title is not None and not isinstance(title, str):
            raise Refusal("'title' must be a string.")
        parent_id = None
        if req.get("parentId") is not None:
            if root_level:
                raise Refusal("'parentId' may not be given when 'root-level' is true.")
            parent_id = _v2_id(req["parentId"], "parentId")
        body = ""
        if req.get("body") is not None:
            _, body = v2_body(req["body"])
        space = ctx.data.space_by_id.get(space_id)
        # the v2 spec: 404 when the space is missing, not viewable, or you may not add pages
        if not perms.can_view_space(ctx, space) or \
                not perms.allowed(ctx, "space", space["key"], "add_page"):
            raise Refusal("Space not found, or you do not have permission to create a page in it.",
                          404, "NOT_FOUND")
        if parent_id is None and not root_level:
            parent_id = space["homepageId"]
        v2_parent(ctx, store, parent_id)
        page = store.create_page(space, title or "", parent_id, body, status, ctx.account_id,
                                 visible=caller_sees(ctx))
    except Refusal as e:
        return v2_refusal(e)
    except ContentError as e:
        return v2_content_error(e)
    except NotImplementedInSim as e:
        return not_implemented(str(e))
    out = cc.page_json(ctx, page, "storage")
    out["_links"]["base"] = cc.wiki_base(ctx)
    return json_response(out)       # the spec: 200, not 201


@handler(V2, "PUT", "/pages/{id}")
async def v2_update_page(ctx: Ctx):
    raw_id = ctx.params["id"]
    if not raw_id.isdigit():
        return cc.v2_error(400, "INVALID_REQUEST_PARAMETER", "'id' must be an integer.")
    try:
        req = await read_json(ctx.request)
    except BodyError as e:
        return cc.v2_error(e.status, "INVALID_REQUEST_PARAMETER", e.message)
    store = ctx.state.confluence_store("cloud", ctx.site.id)
    try:
        if not isinstance(req, dict):
            raise Refusal("The request body must be a JSON object.")
        extra = [k for k in req if k not in UPDATE_MEMBERS]
        if extra:
            raise Refusal(unrecognized(extra[0], "PageUpdateRequest"))
        missing = [k for k in ("id", "status", "title", "body", "version") if k not in req]
        if missing:
            raise Refusal(f"'{missing[0]}' is required.")
        if _v2_id(req["id"], "id") != str(int(raw_id)):
            raise Refusal("The 'id' in the body does not match the page id in the path.")
        if req["status"] not in ("current", "draft"):
            raise Refusal("'status' must be current or draft.")
        if req["status"] == "draft":
            raise NotImplementedInSim("updating a page to draft")
        title = _v2_title(req["title"])
        version = req["version"]
        if not isinstance(version, dict):
            raise Refusal("'version' must be an object.")
        extra = [k for k in version if k not in ("number", "message")]
        if extra:
            raise Refusal(unrecognized(extra[0], "PageUpdateRequest.version"))
        number = version.get("number")
        if isinstance(number, bool) or not isinstance(number, int):
            raise Refusal("'version.number' is required and must be an integer.")
        message = version.get("message", "")
        if not isinstance(message, str):
            raise Refusal("'version.message' must be a string.")
        _, body = v2_body(req["body"])
        page = store.page(str(int(raw_id)))
        # the v2 spec: 404 also when you cannot see the page or may not edit in its space
        if page is None or page["status"] not in ("current", "draft") \
                or not perms.page_visible(ctx, page) \
                or not perms.allowed(ctx, "space", page["spaceKey"], "add_page"):
            raise Refusal("Not Found", 404, "NOT_FOUND")
        if req.get("spaceId") is not None and _v2_id(req["spaceId"], "spaceId") != page["spaceId"]:
            raise Refusal("Moving a page to a different space is not supported.")
        if req.get("ownerId") is not None and not isinstance(req["ownerId"], str):
            raise Refusal("'ownerId' must be a string.")
        parent: str | None | bool = False
        if req.get("parentId") is not None:
            parent = _v2_id(req["parentId"], "parentId")
            v2_parent(ctx, store, parent)
        page = store.update_page(page, number, title, body, parent, ctx.account_id, message,
                                 visible=caller_sees(ctx))
    except Refusal as e:
        return v2_refusal(e)
    except ContentError as e:
        return v2_content_error(e)
    except NotImplementedInSim as e:
        return not_implemented(str(e))
    out = cc.page_json(ctx, page, "storage")
    out["_links"]["base"] = cc.wiki_base(ctx)
    return json_response(out)


# =========================================================================== Data Center
def _content_members(ctx: Ctx) -> set[str]:
    """The members of the DC spec's `Content` schema (what a content write may carry)."""
    spec = ctx.state.catalog.by_name[DC]
    return set(spec.doc["components"]["schemas"]["Content"]["properties"])


def dc_content_error(e: ContentError):
    reason = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}[e.status]
    return rest_error(e.status, e.message, reason)


# Confluence DC's PermissionException text for a create without Add Page
# (atlassian-python-api#1010; 403 on create, #701); the update text is reconstructed.
DC_NO_CREATE = "Could not create content with type page"
DC_NO_UPDATE = "Could not update content with type page"


def dc_refusal(e: Refusal):
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found",
              415: "Unsupported Media Type"}.get(e.status, "Bad Request")
    return rest_error(e.status, e.message, reason)


def dc_body(value) -> str | None:
    """`body: {storage: {value, representation: "storage"}}` -> the storage value."""
    if not isinstance(value, dict):
        raise Refusal("'body' must be an object.")
    if "storage" not in value:
        if value:
            raise NotImplementedInSim(f"{sorted(value)[0]} bodies (the simulator keeps storage only)")
        return None
    storage = value["storage"]
    extra = [k for k in value if k != "storage"]
    if extra:
        raise Refusal("Only one body representation may be given: 'storage'.")
    if not isinstance(storage, dict):
        raise Refusal("'body.storage' must be an object.")
    extra = [k for k in storage if k not in ("value", "representation", "embeddedContent", "webresource",
                                             "content", "_expandable")]
    if extra:
        raise Refusal(unrecognized(extra[0], "com.atlassian.confluence.api.model.content.ContentBody"))
    if storage.get("representation") != "storage":
        raise Refusal("'body.storage.representation' must be 'storage'.")
    val = storage.get("value")
    if not isinstance(val, str):
        raise Refusal("'body.storage.value' must be a string.")
    err = storage_error(val)
    if err:
        raise Refusal(err)
    return val


def dc_parent(value) -> str | None:
    """`ancestors: [{id}]`: the page goes below the last one listed (the nearest)."""
    if not isinstance(value, list):
        raise Refusal("'ancestors' must be an array.")
    if not value:
        return None
    last = value[-1]
    if not isinstance(last, dict) or not is_id(last.get("id")):
        raise Refusal("Each ancestor needs a numeric 'id'.")
    return str(int(last["id"]))


DC_WRITE_EXPAND = {"body.storage", "history", "space", "version", "ancestors", "container"}


async def _dc_read(ctx: Ctx) -> dict:
    try:
        req = await read_json(ctx.request)
    except BodyError as e:
        raise Refusal(e.message, e.status) from None
    if not isinstance(req, dict):
        raise Refusal("The request body must be a JSON object.")
    allowed = _content_members(ctx)
    extra = [k for k in req if k not in allowed]
    if extra:
        raise Refusal(unrecognized(extra[0], "com.atlassian.confluence.api.model.content.Content"))
    return req


def _dc_title(req: dict) -> str:
    title = req.get("title")
    if not isinstance(title, str) or not title.strip():
        raise Refusal("Content title is required and must not be blank.")
    return title


@handler(DC, "POST", "/rest/api/content")
async def dc_create_content(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    store = ctx.state.confluence_store("dc")
    try:
        req = await _dc_read(ctx)
        ctype = req.get("type")
        if ctype is None:
            raise Refusal("Content type is required.")
        if ctype != "page":
            if ctype in ("blogpost", "comment", "attachment"):
                raise NotImplementedInSim(f"creating {ctype} content")
            raise Refusal(f"Unsupported content type: {ctype}")
        status = req.get("status", "current")
        if status != "current":
            if status == "draft":
                raise NotImplementedInSim("creating drafts")
            raise Refusal(f"Invalid content status: {status}")
        title = _dc_title(req)
        space_ref = req.get("space")
        if not isinstance(space_ref, dict) or not isinstance(space_ref.get("key"), str):
            raise Refusal("Content must be created in a space: give 'space': {'key': ...}.")
        parent_id = dc_parent(req["ancestors"]) if req.get("ancestors") is not None else None
        body = dc_body(req["body"]) if req.get("body") is not None else None
        space = ctx.data.space_by_key.get(space_ref["key"])
        if not perms.can_view_space(ctx, space):
            raise Refusal(f"No space with key : {space_ref['key']}", 404)
        if not perms.allowed(ctx, "space", space["key"], "add_page"):
            raise Refusal(DC_NO_CREATE, 403)
        v2_parent(ctx, store, parent_id)
        page = store.create_page(space, title, parent_id, body or "", "current", ctx.user["name"],
                                 visible=caller_sees(ctx))
    except Refusal as e:
        return dc_refusal(e)
    except ContentError as e:
        return dc_content_error(e)
    except NotImplementedInSim as e:
        return not_implemented(str(e))
    expand = cdc._expand(ctx.request.query) | DC_WRITE_EXPAND
    return json_response(cdc.content_json(ctx, page, expand))


@handler(DC, "PUT", "/rest/api/content/{contentId}")
async def dc_update_content(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    store = ctx.state.confluence_store("dc")
    cid = ctx.params["contentId"]
    page = store.page(cid)
    if page is None or page["status"] != "current" or not perms.page_visible(ctx, page):
        return rest_error(404, f"No content found with id: ContentId{{id={cid}}}", "Not Found")
    if not perms.allowed(ctx, "space", page["spaceKey"], "add_page"):
        return rest_error(403, DC_NO_UPDATE, "Forbidden")
    try:
        req = await _dc_read(ctx)
        if req.get("id") is not None and str(req["id"]) != page["id"]:
            raise Refusal("The 'id' in the body does not match the content id in the path.")
        if req.get("type") != "page":
            raise Refusal("Content type must be given and match the content being updated: page.")
        if req.get("status", "current") != "current":
            raise NotImplementedInSim("status changes on update")
        version = req.get("version")
        if not isinstance(version, dict) or isinstance(version.get("number"), bool) \
                or not isinstance(version.get("number"), int):
            raise Refusal("Version is required on update: give 'version': {'number': n}.")
        message = version.get("message", "") or ""
        minor = bool(version.get("minorEdit", False))
        title = _dc_title(req)
        parent: str | None | bool = False
        if req.get("ancestors") is not None:
            parent = dc_parent(req["ancestors"])
        if req.get("space") is not None:
            sref = req["space"]
            if not isinstance(sref, dict) or sref.get("key") != page["spaceKey"]:
                raise Refusal("Moving content to another space is not supported on update.")
        body = dc_body(req["body"]) if req.get("body") is not None else None
        if parent:
            v2_parent(ctx, store, parent)
        page = store.update_page(page, version["number"], title, body, parent, ctx.user["name"],
                                 str(message), minor, visible=caller_sees(ctx))
    except Refusal as e:
        return dc_refusal(e)
    except ContentError as e:
        return dc_content_error(e)
    except NotImplementedInSim as e:
        return not_implemented(str(e))
    expand = cdc._expand(ctx.request.query) | DC_WRITE_EXPAND
    return json_response(cdc.content_json(ctx, page, expand))
