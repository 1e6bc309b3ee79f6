"""Confluence attachments.

Cloud: upload is REST v1 only — `POST` (add; an existing file name is refused with 400) and
`PUT` (add, or a new version of the file of that name) on `/wiki/rest/api/content/{id}/child/
attachment`; reading back is REST v2 `GET /pages/{id}/attachments` (Cloud v1 has no GET there).

Data Center: `POST /rest/api/content/{id}/child/attachment` (add; with `allowDuplicated=true`
an existing file name gets a new version), `GET` of the same path, and
`POST .../child/attachment/{attachmentId}/data` (a new version). The DC spec has no `PUT` on the
collection, so the spec routing answers it 405.

Every upload is multipart/form-data with the file in part `file` (its file name from the part),
optional `comment` (one per file when given) and `minorEdit` (required on Cloud, per the spec's
schema; optional on DC, which also knows `hidden`), and needs the header
`X-Atlassian-Token: no-check` (the operation texts say `nocheck`; the XSRF filter wants
`no-check`): without it 403 `XSRF check failed`, before the body is read.
"""

from __future__ import annotations

import datetime as _dt
import mimetypes
from urllib.parse import quote

from aiohttp import web

from .. import permissions as perms
from ..cloud import Ctx, handler
from ..dc import require_user, rest_error
from ..state import ContentError
from ..util import json_response
from . import confluence_cloud as cc
from . import confluence_dc as cdc
from .payload import BodyError, Part, read_multipart

V1 = "confluence-cloud-v1"
V2 = "confluence-cloud-v2"
DC = "confluence-dc"
CLOUD_PARTS = {"file", "comment", "minorEdit"}
DC_PARTS = {"file", "comment", "minorEdit", "hidden"}
XSRF_FAILED = "XSRF check failed"
V1_EXCEPTION_PREFIX = "com.atlassian.confluence.api.service.exceptions.BadRequestException: "


class UploadError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# reconstructed from the specs' 403 ("does not have permission to add attachments to the content")
NO_ATTACH = "You do not have permission to add attachments to this content."


def xsrf_ok(request: web.Request) -> bool:
    return request.headers.get("X-Atlassian-Token", "").strip().lower() == "no-check"


def xsrf_failed() -> web.Response:
    return web.Response(status=403, text=XSRF_FAILED, headers={"Content-Type": "text/plain;charset=UTF-8"})


def _bool_part(p: Part) -> bool:
    v = p.text().strip().lower()
    if v not in ("true", "false"):
        raise UploadError(400, f"'{p.name}' must be true or false.")
    return v == "true"


def media_type(p: Part) -> str:
    ctype = (p.content_type or "").split(";", 1)[0].strip().lower()
    if ctype and ctype != "application/octet-stream":
        return ctype
    return mimetypes.guess_type(p.filename or "")[0] or "application/octet-stream"


async def parse_upload(request: web.Request, allowed: set[str], minor_required: bool):
    """-> (files, comments, minor_edit): the checks both deployments make on the form."""
    try:
        parts = await read_multipart(request)
    except BodyError as e:
        raise UploadError(e.status, e.message) from None
    unknown = sorted({p.name for p in parts if p.name not in allowed})
    if unknown:
        raise UploadError(400, f"Unknown form field '{unknown[0]}': the upload takes "
                               f"{', '.join(sorted(allowed))}.")
    files = [p for p in parts if p.name == "file"]
    if not files:
        raise UploadError(400, "At least one file must be sent in the form field 'file'.")
    for f in files:
        if not f.filename:
            raise UploadError(400, "Each 'file' part needs a file name (Content-Disposition filename).")
    names = [f.filename for f in files]
    if len(set(names)) != len(names):
        raise UploadError(400, "The same file name was sent twice in one request.")
    comments = [p.text() for p in parts if p.name == "comment"]
    if comments and len(comments) != len(files):
        raise UploadError(400, "If comments are given there must be one per file, in the same order.")
    minors = [p for p in parts if p.name == "minorEdit"]
    if len(minors) > 1:
        raise UploadError(400, "'minorEdit' may be given once.")
    if minor_required and not minors:
        raise UploadError(400, "'minorEdit' is required.")
    minor = _bool_part(minors[0]) if minors else False
    for h in (p for p in parts if p.name == "hidden"):
        _bool_part(h)
    return files, comments, minor


def _store_files(store, page: dict, files: list[Part], comments: list[str], minor: bool,
                 author: str, replace: bool) -> list[dict]:
    if not replace:               # all or nothing: refuse before anything is written
        for f in files:
            if any(a["title"] == f.filename for a in store.attachments_of(page["id"])):
                raise ContentError("duplicate_attachment",
                                   "Cannot add a new attachment with same file name as an existing "
                                   f"attachment: {f.filename}")
    out = []
    for i, f in enumerate(files):
        out.append(store.put_attachment(page, f.filename, f.data, media_type(f),
                                        comments[i] if comments else None, minor, author, replace))
    return out


# --------------------------------------------------------------------------- representations
def _num(att_id: str) -> str:
    return att_id[3:] if att_id.startswith("att") else att_id


def _modified_ms(v: dict) -> int:
    d = _dt.datetime.strptime(v["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.timezone.utc)
    return int(d.timestamp() * 1000)


def v1_attachment_json(ctx: Ctx, page: dict, att: dict, dc: bool) -> dict:
    """REST v1 attachment `Content` (Cloud v1 and DC share the shape)."""
    v = att["versions"][-1]
    pid, aid, n = page["id"], att["id"], v["number"]
    base = ctx.base if dc else cc.wiki_base(ctx)
    fname = quote(att["title"], safe="")
    if dc:
        by = cdc._person_ref(ctx, v["authorId"])
    else:
        user = ctx.find_user(v["authorId"]) or {}
        by = {"type": "known", "accountId": v["authorId"], "accountType": "atlassian",
              "displayName": user.get("displayName", ""), "publicName": user.get("publicName", "")}
    download = (f"/download/attachments/{pid}/{fname}?version={n}"
                f"&modificationDate={_modified_ms(v)}&api=v2")
    return {
        "id": aid, "type": "attachment", "status": "current", "title": att["title"],
        "version": {"by": by, "when": v["createdAt"], "message": v["comment"], "number": n,
                    "minorEdit": v["minorEdit"], "hidden": False,
                    "_links": {"self": f"{base}/rest/api/content/{aid}/version/{n}"}},
        "container": {"id": pid, "type": "page", "status": page["status"], "title": page["title"],
                      "_links": {"self": f"{base}/rest/api/content/{pid}"}},
        "metadata": {"comment": v["comment"], "mediaType": v["mediaType"],
                     "labels": {"results": [], "start": 0, "limit": 200, "size": 0}},
        "extensions": {"mediaType": v["mediaType"], "fileSize": v["fileSize"],
                       "comment": v["comment"], "fileId": att["fileId"]},
        "_links": {"webui": f"/pages/viewpageattachments.action?pageId={pid}"
                            f"&preview=%2F{pid}%2F{_num(aid)}%2F{fname}",
                   "download": download,
                   "self": f"{base}/rest/api/content/{aid}"},
        "_expandable": {"children": f"/rest/api/content/{aid}/child",
                        "descendants": f"/rest/api/content/{aid}/descendant",
                        "space": f"/rest/api/space/{page['spaceKey']}", "ancestors": "",
                        "history": f"/rest/api/content/{aid}/history", "body": "",
                        "restrictions": f"/rest/api/content/{aid}/restriction/byOperation",
                        "operations": ""},
    }


def _v1_collection(ctx: Ctx, page: dict, atts: list[dict], dc: bool) -> dict:
    if dc:
        links = {"base": ctx.base, "context": ctx.instance.context_path}
    else:
        links = {"base": cc.wiki_base(ctx), "context": "/wiki"}
    return {"results": [v1_attachment_json(ctx, page, a, dc) for a in atts], "size": len(atts),
            "_links": links}


def v2_attachment_json(ctx: Ctx, page: dict, att: dict) -> dict:
    v = att["versions"][-1]
    fname = quote(att["title"], safe="")
    download = (f"/download/attachments/{page['id']}/{fname}?version={v['number']}"
                f"&modificationDate={_modified_ms(v)}&api=v2")
    webui = f"/pages/viewpageattachments.action?pageId={page['id']}&preview=%2F{page['id']}%2F{_num(att['id'])}%2F{fname}"
    return {"id": att["id"], "status": "current", "title": att["title"], "createdAt": att["createdAt"],
            "pageId": page["id"], "mediaType": v["mediaType"], "mediaTypeDescription": v["mediaType"],
            "comment": v["comment"], "fileId": att["fileId"], "fileSize": v["fileSize"],
            "webuiLink": webui, "downloadLink": download,
            "version": {"createdAt": v["createdAt"], "message": v["comment"], "number": v["number"],
                        "minorEdit": v["minorEdit"], "authorId": v["authorId"]},
            "_links": {"webui": webui, "download": download}}


# --------------------------------------------------------------------------- Cloud v1 upload
def v1_error(status: int, message: str) -> web.Response:
    return json_response({"statusCode": status,
                          "data": {"authorized": True, "valid": status != 400, "errors": [],
                                   "successful": False},
                          "message": message}, status=status)


async def _cloud_upload(ctx: Ctx, replace: bool):
    if not xsrf_ok(ctx.request):
        return xsrf_failed()
    status = ctx.request.query.get("status", "current")
    if status not in ("current", "draft"):
        return v1_error(400, f"{V1_EXCEPTION_PREFIX}Invalid status: {status}")
    store = ctx.state.confluence_store("cloud", ctx.site.id)
    page = store.page(ctx.params["id"])
    if page is None or page["status"] != status or not perms.page_visible(ctx, page):
        return v1_error(404, f"No content found with id: ContentId{{id={ctx.params['id']}}}")
    if not perms.allowed(ctx, "space", page["spaceKey"], "attach"):
        return v1_error(403, NO_ATTACH)             # the v1 spec's 403 for this operation
    try:
        files, comments, minor = await parse_upload(ctx.request, CLOUD_PARTS, minor_required=True)
        atts = _store_files(store, page, files, comments, minor, ctx.account_id, replace)
    except UploadError as e:
        return v1_error(e.status, e.message if e.status != 400 else V1_EXCEPTION_PREFIX + e.message)
    except ContentError as e:
        return v1_error(e.status, V1_EXCEPTION_PREFIX + e.message)
    return json_response(_v1_collection(ctx, page, atts, dc=False))


@handler(V1, "POST", "/wiki/rest/api/content/{id}/child/attachment")
async def cloud_create_attachment(ctx: Ctx):
    return await _cloud_upload(ctx, replace=False)


@handler(V1, "PUT", "/wiki/rest/api/content/{id}/child/attachment")
async def cloud_create_or_update_attachment(ctx: Ctx):
    return await _cloud_upload(ctx, replace=True)


# --------------------------------------------------------------------------- Cloud v2 read
@handler(V2, "GET", "/pages/{id}/attachments")
async def v2_page_attachments(ctx: Ctx):
    q = ctx.request.query
    raw_id = ctx.params["id"]
    try:
        if not raw_id.isdigit():
            raise cc.BadParam("'id' must be an integer.")
        limit = cc._int_param(q, "limit", 50, 1, 250)
        sort = cc._single(q, "sort")
        if sort is not None and sort not in ("created-date", "-created-date", "modified-date",
                                             "-modified-date"):
            raise cc.BadParam("Invalid sort.")
        statuses = cc._list_param(q, "status") or ["current", "archived"]
        if not set(statuses) <= {"current", "archived", "trashed"}:
            raise cc.BadParam("Invalid status.")
        filename = cc._single(q, "filename")
        mtype = cc._single(q, "mediaType")
        raw_cursor = cc._single(q, "cursor")
        cursor = cc.decode_cursor(raw_cursor) if raw_cursor is not None else None
        start = 0
        if cursor is not None:
            if not isinstance(cursor.get("offset"), int) or cursor.get("sort") != sort:
                raise cc.BadParam("Invalid cursor.")
            start = cursor["offset"]
    except cc.BadParam as e:
        return cc.v2_error(400, "INVALID_REQUEST_PARAMETER", str(e))
    store = ctx.state.confluence_store("cloud", ctx.site.id)
    page = store.page(str(int(raw_id)))
    if not perms.page_visible(ctx, page):
        return cc.v2_error(404, "NOT_FOUND", "Not Found")
    atts = [a for a in store.attachments_of(page["id"])
            if "current" in statuses
            and (filename is None or a["title"] == filename)
            and (mtype is None or a["versions"][-1]["mediaType"] == mtype)]
    if sort:
        if "created" in sort:
            def keyf(a):
                return a["createdAt"], a["id"]
        else:
            def keyf(a):
                return a["versions"][-1]["createdAt"], a["id"]
        atts = sorted(atts, key=keyf, reverse=sort.startswith("-"))
    page_items = atts[start:start + limit]
    nxt = {"sort": sort, "offset": start + limit} if start + limit < len(atts) else None
    results = [v2_attachment_json(ctx, page, a) for a in page_items]
    return cc.paged_response(ctx, f"/wiki/api/v2/pages/{page['id']}/attachments", results, nxt)


# --------------------------------------------------------------------------- Data Center
def _dc_upload_error(e) -> web.Response:
    reason = {400: "Bad Request", 404: "Not Found", 415: "Unsupported Media Type"}.get(e.status, "Bad Request")
    return rest_error(e.status, e.message, reason)


def _dc_page(ctx: Ctx, store, need: str | None = None):
    """The page of the path as the caller may use it; `need` = "attach" for uploads (403)."""
    page = store.page(ctx.params["id"])
    if page is None or page["status"] != "current" or not perms.page_visible(ctx, page):
        return None, rest_error(404, f"No content found with id: ContentId{{id={ctx.params['id']}}}",
                                "Not Found")
    if need and not perms.allowed(ctx, "space", page["spaceKey"], need):
        return None, rest_error(403, NO_ATTACH, "Forbidden")    # the DC spec's 403
    return page, None


@handler(DC, "POST", "/rest/api/content/{id}/child/attachment")
async def dc_create_attachments(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    if not xsrf_ok(ctx.request):
        return xsrf_failed()
    q = ctx.request.query
    allow_dup = (q.get("allowDuplicated") or "false").lower()
    if allow_dup not in ("true", "false"):
        return rest_error(400, "allowDuplicated must be true or false", "Bad Request")
    store = ctx.state.confluence_store("dc")
    page, err = _dc_page(ctx, store, "attach")
    if err:
        return err
    try:
        files, comments, minor = await parse_upload(ctx.request, DC_PARTS, minor_required=False)
        atts = _store_files(store, page, files, comments, minor, ctx.user["name"], allow_dup == "true")
    except (UploadError, ContentError) as e:
        return _dc_upload_error(e)
    return json_response(_v1_collection(ctx, page, atts, dc=True))


@handler(DC, "POST", "/rest/api/content/{id}/child/attachment/{attachmentId}/data")
async def dc_update_attachment_data(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    if not xsrf_ok(ctx.request):
        return xsrf_failed()
    store = ctx.state.confluence_store("dc")
    page, err = _dc_page(ctx, store, "attach")
    if err:
        return err
    att = store.attachment(page["id"], ctx.params["attachmentId"])
    if att is None:
        return rest_error(404, f"No attachment with id {ctx.params['attachmentId']} on content "
                               f"{page['id']}", "Not Found")
    try:
        files, comments, minor = await parse_upload(ctx.request, DC_PARTS, minor_required=False)
        if len(files) != 1:
            raise UploadError(400, "Exactly one file must be sent to update an attachment's data.")
    except UploadError as e:
        return _dc_upload_error(e)
    f = files[0]
    store.add_attachment_version(att, f.filename, f.data, media_type(f),
                                 comments[0] if comments else None, minor, ctx.user["name"])
    return json_response(v1_attachment_json(ctx, page, att, dc=True))


@handler(DC, "GET", "/rest/api/content/{id}/child/attachment")
async def dc_list_attachments(ctx: Ctx):
    denied = require_user(ctx)
    if denied:
        return denied
    q = ctx.request.query
    try:
        start = cdc._int(q, "start", 0)
        limit = min(cdc._int(q, "limit", 50, lo=1), cdc.CONTENT_LIMIT_MAX)
    except cdc.BadParam as e:
        return cdc._bad_request(str(e))
    store = ctx.state.confluence_store("dc")
    page, err = _dc_page(ctx, store)
    if err:
        return err
    filename = cdc._single(q, "filename")
    mtype = cdc._single(q, "mediaType")
    atts = [a for a in store.attachments_of(page["id"])
            if (filename is None or a["title"] == filename)
            and (mtype is None or a["versions"][-1]["mediaType"] == mtype)]
    path = f"/rest/api/content/{page['id']}/child/attachment"
    # the DC spec lists 201 for this read; the products answer 200
    return json_response(cdc._paged(ctx, path, atts, start, limit,
                                    lambda a: v1_attachment_json(ctx, page, a, dc=True)))
