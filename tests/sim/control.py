"""Control API under /_sim/ (JSON, no auth) for tests. Calls to it are not recorded."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re

from aiohttp import web

from . import data, faults, permissions
from .state import Fault, State, default_config, default_oidc_config, default_quirks
from .util import json_response, sim_error

UUIDISH = re.compile(r"^[A-Za-z0-9-]{1,64}$")
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PRODUCTS = {"jira", "confluence"}


def _state(request: web.Request) -> State:
    return request.app["state"]


async def _json(request: web.Request, default=None):
    raw = await request.read()
    if not raw.strip():
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"invalid JSON: {e}"}),
                                 content_type="application/json") from None


async def health(request):
    return json_response({"ok": True})


async def reset(request):
    _state(request).reset()
    return json_response({"ok": True})


# ---- oauth client / config -----------------------------------------------------------
def _client_json(c) -> dict:
    return {"client_id": c.client_id, "client_secret": c.client_secret,
            "redirect_uris": list(c.redirect_uris), "scopes": c.scopes}


async def get_client(request):
    st = _state(request)
    return json_response(_client_json(next(iter(st.clients.values()))))


async def put_client(request):
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    current = next(iter(st.clients.values()))
    cid = body.get("client_id", current.client_id)
    secret = body.get("client_secret", current.client_secret)
    uris = body.get("redirect_uris", current.redirect_uris)
    scopes = body.get("scopes", current.scopes)
    if not isinstance(cid, str) or not cid or not isinstance(secret, str) or not secret:
        return sim_error("client_id and client_secret must be non-empty strings")
    if not isinstance(uris, list) or not all(isinstance(u, str) and re.match(r"^https?://", u) for u in uris):
        return sim_error("redirect_uris must be a list of http(s) URLs")
    if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
        return sim_error("scopes must be null or a list of strings")
    c = st.set_client(cid, secret, uris, scopes)
    return json_response(_client_json(c))


CONFIG_TYPES = {
    "deny": bool,
    "reuse_leeway_seconds": (int, float),
    "access_token_ttl_seconds": int,
    "refresh_inactivity_seconds": (int, float),
    "refresh_absolute_seconds": (int, float),
}


async def get_config(request):
    return json_response(_state(request).config)


async def put_config(request):
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    defaults = default_config()
    for k, v in body.items():
        if k not in defaults:
            return sim_error(f"unknown config key {k!r}")
        if k == "consent_sites":
            if v is not None and (not isinstance(v, list) or not all(isinstance(s, str) for s in v)):
                return sim_error("consent_sites must be null or a list of cloud ids")
            continue
        t = CONFIG_TYPES[k]
        if isinstance(v, bool) and t is not bool:
            return sim_error(f"{k} must be a number")
        if not isinstance(v, t) or (t is not bool and v < 0):
            return sim_error(f"{k} has the wrong type or is negative")
    st.config.update(body)
    return json_response(st.config)


# ---- sites ----------------------------------------------------------------------------
async def get_sites(request):
    return json_response([s.to_json() for s in _state(request).sites.values()])


async def put_sites(request):
    st = _state(request)
    body = await _json(request, [])
    if not isinstance(body, list):
        return sim_error("body must be a list of sites")
    seen = set()
    for s in body:
        if not isinstance(s, dict) or not isinstance(s.get("id"), str) or not UUIDISH.match(s["id"]):
            return sim_error("each site needs an 'id' (cloud id)")
        if not isinstance(s.get("name"), str) or not SITE_NAME.match(s["name"]):
            return sim_error("each site needs a 'name' (lower-case host label)")
        prods = s.get("products", ["jira", "confluence"])
        if not isinstance(prods, list) or not set(prods) <= PRODUCTS:
            return sim_error("products must be a list drawn from jira, confluence")
        if s["id"] in seen:
            return sim_error("duplicate site id")
        seen.add(s["id"])
    st.set_sites(body)
    return json_response([s.to_json() for s in st.sites.values()])


SIZE_LIMITS = {"projects": 5000, "spaces": 10000, "users": 20000}


async def seed(request):
    """Resize generated data. `{"flavour"?: "cloud"|"dc", "site"?: cloudId, "projects"?,
    "spaces"?, "users"?}`: with `site`, that Cloud site only; with `flavour`, every Cloud site or
    the DC dataset; with neither, both. The dataset is rebuilt (deterministically)."""
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    unknown = set(body) - {"flavour", "site", *SIZE_LIMITS}
    if unknown:
        return sim_error(f"unknown seed keys {sorted(unknown)}")
    sizes = {}
    for k, hi in SIZE_LIMITS.items():
        if k in body:
            n = body[k]
            if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= hi:
                return sim_error(f"{k} must be an integer 0..{hi}")
            sizes[k] = n
    flavour = body.get("flavour")
    if flavour not in (None, "cloud", "dc"):
        return sim_error("flavour must be cloud or dc")
    site_id = body.get("site")
    if site_id is not None and flavour == "dc":
        return sim_error("site applies to the cloud flavour only")
    if site_id is not None and site_id not in st.sites:
        return sim_error(f"unknown site {site_id!r}", 404)
    out: dict = {}
    cloud_targets = [site_id] if site_id else ([] if flavour == "dc" else list(st.sites))
    for t in cloud_targets:
        st.resize("cloud", t, sizes)
        out[t] = dict(st.cloud_sizes[t])
    if flavour == "dc" or (flavour is None and site_id is None):
        st.resize("dc", None, sizes)
        out["dc"] = dict(st.dc_sizes)
    return json_response(out)


# ---- the complete data set (truth for pagination tests) -------------------------------
DATA_KINDS = ("users", "projects", "components", "issuetypes", "fields", "priorities", "spaces",
              "pages", "assignable")


async def get_data(request):
    """`GET /_sim/data/{kind}?flavour=cloud|dc[&site=cloudId][&project=KEY][&issuetype=ID]
    [&space=KEY][&include_archived=true]` -> `{"flavour","kind","total","items":[...]}`."""
    st = _state(request)
    kind = request.match_info["kind"]
    q = request.query
    if kind not in DATA_KINDS:
        return sim_error(f"kind must be one of {list(DATA_KINDS)}", 404)
    flavour = q.get("flavour", "cloud")
    if flavour not in ("cloud", "dc"):
        return sim_error("flavour must be cloud or dc")
    if flavour == "cloud":
        site_id = q.get("site") or next(iter(st.sites), None)
        if site_id not in st.sites:
            return sim_error(f"unknown site {site_id!r}", 404)
        ds = st.cloud_data(site_id)
        directory = st.cloud_directory(site_id)
    else:
        ds = st.dc_data()
        directory = st.dc_directory()
    project = None
    if kind in ("components", "issuetypes", "fields", "assignable"):
        project = ds.project(q.get("project", ""))
        if project is None:
            return sim_error("project=<key or id> of an existing project is required", 404)
    if kind == "users":
        items = [data.public(u) for u in sorted(directory, key=data.user_sort_key)]
    elif kind == "assignable":
        dep = "dc" if flavour == "dc" else site_id
        items = [data.public(u) for u in sorted(directory, key=data.user_sort_key)
                 if u["active"] and {"browse", "assign"} <= permissions.granted(
                     st, dep, permissions.user_key(flavour, u), "project", project["key"])]
    elif kind == "projects":
        archived = q.get("include_archived", "false").lower() == "true"
        items = [data.public(p) for p in ds.projects if archived or not p["archived"]]
    elif kind == "components":
        items = [dict(c) for c in ds.components[project["key"]]]
    elif kind == "issuetypes":
        items = [dict(t) for t in project["issue_types"]]
    elif kind == "fields":
        it = data.issue_type(project, q.get("issuetype", ""))
        if it is None:
            return sim_error("issuetype=<id> of the project's issue types is required", 404)
        items = []
        for f in data.create_fields(project, it, ds.components[project["key"]]):
            f = dict(f)
            allowed = f.pop("allowed", None)
            f.pop("autocomplete", None)
            default = f.pop("default", None)
            if allowed:
                what, values = allowed
                f["allowedValues"] = [
                    {"id": v["id"], "key": v["key"], "name": v["name"]} if what == "project" else
                    {"id": v["id"], "value": v["value"]} if what == "options" else
                    {"id": v["id"], "name": v["name"]} for v in values]
            if default:
                f["defaultValue"] = {"id": default[1]}
            items.append(f)
    elif kind == "priorities":
        items = [{k: p[k] for k in ("id", "name", "description", "statusColor")}
                 for p in data.PRIORITIES]
    elif kind == "spaces":
        items = [data.public(s) for s in ds.spaces]
    else:  # pages
        space_key = q.get("space")
        if space_key is not None:
            space = ds.space_by_key.get(space_key)
            if space is None:
                return sim_error("unknown space", 404)
            items = [dict(p) for p in ds.pages_by_space.get(space["id"], [])]
        else:
            items = [dict(p) for p in ds.pages]
    return json_response({"flavour": flavour, "kind": kind, "total": len(items), "items": items})


# ---- what clients wrote: pages, attachments, issues -------------------------------------
def _deployment(st: State, q) -> tuple[str, str | None]:
    """`flavour=cloud|dc` (default cloud) and, for Cloud, `site=` (default the first site)."""
    flavour = q.get("flavour", "cloud")
    if flavour not in ("cloud", "dc"):
        raise web.HTTPBadRequest(text=json.dumps({"error": "flavour must be cloud or dc"}),
                                 content_type="application/json")
    if flavour == "dc":
        return flavour, None
    site_id = q.get("site") or next(iter(st.sites), None)
    if site_id not in st.sites:
        raise web.HTTPNotFound(text=json.dumps({"error": f"unknown site {site_id!r}"}),
                               content_type="application/json")
    return flavour, site_id


def _page_record(store, p: dict) -> dict:
    ancestors = []
    parent = p["parentId"]
    while parent:
        ancestors.insert(0, parent)
        pp = store.page(parent)
        parent = pp["parentId"] if pp else None
    return {"id": p["id"], "title": p["title"], "spaceId": p["spaceId"], "spaceKey": p["spaceKey"],
            "parentId": p["parentId"], "ancestors": ancestors, "status": p["status"],
            "version": p["version"], "body": store.body_of(p), "createdAt": p["createdAt"],
            "updatedAt": p.get("updatedAt", p["createdAt"]), "authorId": p.get("authorId"),
            "generated": p.get("generated", True), "written": "versions" in p,
            "versions": [{k: v[k] for k in ("number", "title", "parentId", "message", "minorEdit",
                                            "createdAt", "authorId")}
                         for v in p.get("versions", [])],
            "attachments": [a["id"] for a in store.attachments_of(p["id"])],
            "restricted_to": p.get("restricted_to")}


async def confluence_pages(request):
    """`GET /_sim/confluence/pages?space=KEY[&flavour=cloud|dc][&site=][&written=true]`: every
    page of the space (or of every space) as stored; `written=true`: only pages created or
    updated through the API."""
    st = _state(request)
    q = request.query
    flavour, site_id = _deployment(st, q)
    store = st.confluence_store(flavour, site_id)
    key = q.get("space")
    if key is not None:
        space = store.ds.space_by_key.get(key)
        if space is None:
            return sim_error(f"unknown space {key!r}", 404)
        pages = store.ds.pages_by_space.get(space["id"], [])
    else:
        pages = store.ds.pages
    if q.get("written", "false").lower() == "true":
        pages = [p for p in pages if "versions" in p]
    items = [_page_record(store, p) for p in pages]
    return json_response({"flavour": flavour, "space": key, "total": len(items), "pages": items})


async def confluence_attachments(request):
    """`GET /_sim/confluence/attachments?page_id=ID[&flavour=][&site=]`: the page's attachments
    with every version and the current version's bytes (`content_base64`). Without `flavour`,
    the deployment that has the page (with attachments, when a generated id exists in several)."""
    st = _state(request)
    q = request.query
    page_id = q.get("page_id")
    if "flavour" in q:
        flavour, site_id = _deployment(st, q)
        candidates = [(flavour, st.confluence_store(flavour, site_id))]
    else:   # the deployment that has the page (written page ids are unique across deployments)
        candidates = [("cloud", st.confluence_store("cloud", sid)) for sid in st.sites]
        candidates.append(("dc", st.confluence_store("dc")))
    found = [(f, s) for f, s in candidates if s.page(page_id) is not None]
    if not found:
        return sim_error("page_id=<id> of an existing page is required", 404)
    flavour, store = next(((f, s) for f, s in found if s.attachments_of(page_id)), found[0])
    page = store.page(page_id)
    out = []
    for a in store.attachments_of(page["id"]):
        cur = a["versions"][-1]
        out.append({"id": a["id"], "title": a["title"], "pageId": page["id"], "fileId": a["fileId"],
                    "mediaType": cur["mediaType"], "fileSize": cur["fileSize"],
                    "comment": cur["comment"], "minorEdit": cur["minorEdit"],
                    "version": cur["number"], "createdAt": a["createdAt"],
                    "versions": [{"number": v["number"], "fileSize": v["fileSize"],
                                  "mediaType": v["mediaType"], "comment": v["comment"],
                                  "minorEdit": v["minorEdit"], "createdAt": v["createdAt"],
                                  "authorId": v["authorId"],
                                  "sha256": hashlib.sha256(v["data"]).hexdigest()}
                                 for v in a["versions"]],
                    "content_base64": base64.b64encode(cur["data"]).decode()})
    return json_response({"flavour": flavour, "page_id": page["id"], "attachments": out})


async def jira_issues(request):
    """`GET /_sim/jira/issues?flavour=cloud|dc[&project=KEY][&site=]`: every issue, oldest first,
    with `fields` exactly as the client sent them and `values` as the sim resolved them."""
    st = _state(request)
    q = request.query
    flavour, site_id = _deployment(st, q)
    store = st.jira_store(flavour, site_id)
    project = q.get("project")
    items = [dict(i, subtasks=list(i["subtasks"])) for i in store.issues.values()
             if project is None or i["projectKey"] == project]
    return json_response({"flavour": flavour, "total": len(items), "issues": items})


# ---- "a person in Jira": workflow transitions, edits, deletions, planted issues ----------
def _issue_of(request):
    st = _state(request)
    flavour, site_id = _deployment(st, request.query)
    store = st.jira_store(flavour, site_id)
    issue = store.find(request.match_info["key"])
    if issue is None:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no issue {request.match_info['key']!r}"}),
                               content_type="application/json")
    return store, issue


async def transition_issue(request):
    """`POST /_sim/jira/issues/{key}/transition?flavour=&site=` `{"status": "Done"}` (a status
    name or id): moves the issue as a person would; `updated` moves, listeners hear of it."""
    from .products import jira_issues
    store, issue = _issue_of(request)
    body = await _json(request, {})
    status = jira_issues.find_status(body.get("status", "")) if isinstance(body, dict) else None
    if status is None:
        names = ", ".join(s["name"] for s in jira_issues.STATUSES)
        return sim_error(f"'status' must be one of: {names}")
    issue["values"]["status"] = status["id"]
    store.changed(issue, ["status", "resolution"])
    return json_response({"key": issue["key"], "status": status["name"], "updated": issue["updated"]})


EDITABLE = {"summary", "duedate", "assignee", "description", "labels"}


async def edit_issue(request):
    """`PATCH /_sim/jira/issues/{key}?flavour=&site=` `{"fields": {"summary": ...}}`: an edit in
    Jira's UI (summary, duedate, assignee as an accountId / user name or null, description,
    labels); `updated` moves."""
    store, issue = _issue_of(request)
    body = await _json(request, {})
    fields = body.get("fields") if isinstance(body, dict) else None
    if not isinstance(fields, dict) or not fields:
        return sim_error("'fields' must be a non-empty object")
    unknown = sorted(set(fields) - EDITABLE)
    if unknown:
        return sim_error(f"cannot edit {unknown}; editable: {sorted(EDITABLE)}")
    issue["values"].update(fields)
    store.changed(issue, sorted(fields))
    return json_response({"key": issue["key"], "updated": issue["updated"]})


async def remove_issue(request):
    """`DELETE /_sim/jira/issues/{key}?flavour=&site=`: someone deleted it in Jira (subtasks
    too)."""
    store, issue = _issue_of(request)
    return json_response({"deleted": store.delete(issue)})


async def plant_issues(request):
    """`POST /_sim/jira/issues?flavour=&site=` `{"project": "ENG", "count": 5000,
    "labels": [...], "summary": "..."}`: issues that exist in Jira already (as if created by a
    client earlier), To Do, in the project's first issue type. Answers their keys and ids."""
    st = _state(request)
    flavour, site_id = _deployment(st, request.query)
    store = st.jira_store(flavour, site_id)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    project = store.ds.project(str(body.get("project", "")))
    count = body.get("count", 1)
    labels = body.get("labels", [])
    if project is None:
        return sim_error("'project' must be an existing project key", 404)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 20000:
        return sim_error("'count' must be an integer from 1 to 20000")
    if not isinstance(labels, list) or not all(isinstance(x, str) and x and " " not in x for x in labels):
        return sim_error("'labels' must be a list of labels without spaces")
    issuetype = project["issue_types"][0]
    creator = st.current_account_id if flavour == "cloud" else "admin"
    planted = []
    for n in range(count):
        summary = f"{body.get('summary', 'Planted issue')} {n + 1}"
        fields = {"project": {"key": project["key"]}, "issuetype": {"id": issuetype["id"]},
                  "summary": summary, "labels": list(labels)}
        values = {"summary": summary, "labels": list(labels)}
        issue = store.create(project, issuetype, fields, values, None, creator)
        planted.append({"key": issue["key"], "id": issue["id"]})
    return json_response({"issues": planted}, status=201)


async def put_edit_screen(request):
    """`PUT /_sim/jira/edit-screen?flavour=&site=` `{"project": "ENG", "fields": ["summary", ...]}`:
    the project's edit screen holds only those fields (`"fields": null`: the create screen's
    again, Jira's default)."""
    st = _state(request)
    flavour, site_id = _deployment(st, request.query)
    body = await _json(request, {})
    if not isinstance(body, dict) or set(body) - {"project", "fields"}:
        return sim_error("body must be {\"project\": KEY, \"fields\": [field ids] | null}")
    project = st.jira_store(flavour, site_id).ds.project(str(body.get("project", "")))
    if project is None:
        return sim_error("'project' must be an existing project key", 404)
    fields = body.get("fields")
    at = (site_id or "dc", project["key"])
    if fields is None:
        st.edit_screens.pop(at, None)
    elif isinstance(fields, list) and all(isinstance(f, str) for f in fields):
        st.edit_screens[at] = list(fields)
    else:
        return sim_error("'fields' must be a list of field ids or null")
    return json_response({"project": project["key"], "fields": st.edit_screens.get(at)})


async def jira_searches(request):
    """`GET /_sim/jira/searches[?label=L]`: the JQL searches served so far (`DELETE` forgets
    them), those naming label `L` only when given."""
    st = _state(request)
    label = request.query.get("label")
    found = [s for s in st.jira_searches if label is None or label in s["labels"]]
    return json_response({"count": len(found), "searches": found})


async def clear_jira_searches(request):
    _state(request).jira_searches.clear()
    return json_response({"ok": True})


# ---- per-element bulk failures ---------------------------------------------------------
async def put_element_faults(request):
    """`{"elements": [i, ...], "status": 400, "errors": {field: message}, "messages": [...],
    "times": 1}`: the listed elements of the next `times` bulk creates fail without being created."""
    body = await request.json()
    if not isinstance(body.get("elements"), list) or not all(isinstance(i, int) for i in body["elements"]):
        return json_response({"message": "'elements' must be a list of element indexes"}, status=400)
    _state(request).element_faults = {"times": 1, **body}
    return json_response(_state(request).element_faults)


# ---- quirks ---------------------------------------------------------------------------
async def get_quirks(request):
    return json_response(_state(request).quirks)


async def put_quirks(request):
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    defaults = default_quirks()
    for k, v in body.items():
        if k not in defaults:
            return sim_error(f"unknown quirk {k!r}")
        if isinstance(defaults[k], bool):
            if not isinstance(v, bool):
                return sim_error(f"{k} must be true or false")
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            return sim_error(f"{k} must be a non-negative number")
    st.quirks.update(body)
    return json_response(st.quirks)


# ---- permissions and page restrictions ---------------------------------------------------
def _cloud_user_id(st: State, site_id: str, ref: str) -> str | None:
    """An accountId, or the account of an email (consenting, API-token or generated user)."""
    if "@" not in ref:
        return ref if st.cloud_user(site_id, ref) is not None else None
    return next((u["accountId"] for u in st.cloud_directory(site_id)
                 if u["emailAddress"].lower() == ref.lower()), None)


def _principal(st: State, flavour: str, site_id: str | None, ref) -> str:
    if not isinstance(ref, str) or not ref:
        raise ValueError("'user' must be an accountId or email (Cloud) or a user name (DC)")
    if flavour == "dc":
        if st.dc_user(ref) is None:
            raise LookupError(f"unknown DC user {ref!r}")
        return ref.lower()
    found = _cloud_user_id(st, site_id, ref)
    if found is None:
        raise LookupError(f"unknown Cloud user {ref!r}")
    return found


def _permission_entry(st: State, e) -> tuple[tuple[str, str, str, str], frozenset[str]]:
    if not isinstance(e, dict):
        raise ValueError("each entry must be an object")
    unknown = set(e) - {"flavour", "site", "user", "project", "space", "permissions"}
    if unknown:
        raise ValueError(f"unknown permission keys {sorted(unknown)}")
    flavour, site_id = _deployment(st, {k: e[k] for k in ("flavour", "site") if e.get(k)})
    kinds = [k for k in ("project", "space") if k in e]
    if len(kinds) != 1 or not isinstance(e[kinds[0]], str):
        raise ValueError("give exactly one of 'project' or 'space' (a key)")
    kind = kinds[0]
    perms = e.get("permissions")
    if not isinstance(perms, list) or not set(perms) <= set(permissions.ALL[kind]):
        raise ValueError(f"{kind} permissions must be a list drawn from {list(permissions.ALL[kind])}")
    who = _principal(st, flavour, site_id, e.get("user"))
    return ((site_id or "dc"), who, kind, e[kind]), frozenset(perms)


def _permissions_json(st: State) -> list[dict]:
    return [{"deployment": d, "user": u, kind: key, "permissions": sorted(perms)}
            for (d, u, kind, key), perms in st.permissions.items()]


async def get_permissions(request):
    return json_response(_permissions_json(_state(request)))


async def put_permissions(request):
    """`{"flavour"?,"site"?,"user","project"|"space","permissions":[...]}` or a list of them: each
    sets that user's permissions in that project/space (others keep theirs)."""
    st = _state(request)
    body = await _json(request, [])
    entries = body if isinstance(body, list) else [body]
    try:
        parsed = [_permission_entry(st, e) for e in entries]
    except ValueError as e:
        return sim_error(str(e))
    except LookupError as e:
        return sim_error(str(e), 404)
    st.permissions.update(dict(parsed))
    return json_response(_permissions_json(st))


async def clear_permissions(request):
    _state(request).permissions = {}
    return json_response({"ok": True})


def _restricted_to(st: State, flavour: str, site_id: str | None, value) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("restricted_to must be null or a list of users")
    return [_principal(st, flavour, site_id, u) for u in value]


PLANTED_STATUSES = ("current", "draft", "archived", "trashed")


async def plant_page(request):
    """`POST /_sim/confluence/pages` `{"flavour"?,"site"?,"space": KEY,"title","status"?:
    current|draft|archived|trashed,"parent_id"?,"restricted_to"?: [users],"id"?}`: a page as
    someone else left it (no title check; `restricted_to: []` = nobody the API knows sees it).
    `id` gives it a chosen id, free in that deployment: each real site and instance numbers its
    own content, so one site's page id can name an unrelated page on another."""
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    unknown = set(body) - {"flavour", "site", "space", "title", "status", "parent_id", "restricted_to", "id"}
    if unknown:
        return sim_error(f"unknown page keys {sorted(unknown)}")
    flavour, site_id = _deployment(st, {k: body[k] for k in ("flavour", "site") if body.get(k)})
    store = st.confluence_store(flavour, site_id)
    space = store.ds.space_by_key.get(body.get("space"))
    if space is None:
        return sim_error(f"unknown space {body.get('space')!r}", 404)
    status = body.get("status", "current")
    title = body.get("title")
    if status not in PLANTED_STATUSES or not isinstance(title, str) or not title:
        return sim_error(f"a non-empty 'title' and a status in {list(PLANTED_STATUSES)} are required")
    parent = body.get("parent_id", space["homepageId"])
    if parent is not None and store.page(str(parent)) is None:
        return sim_error(f"unknown parent page {parent!r}", 404)
    try:
        restricted = _restricted_to(st, flavour, site_id, body.get("restricted_to"))
    except ValueError as e:
        return sim_error(str(e))
    except LookupError as e:
        return sim_error(str(e), 404)
    page_id = body.get("id")
    if page_id is not None:
        if not (isinstance(page_id, str) and page_id.isdigit()):
            return sim_error("'id' must be a string of digits")
        if store.page(page_id) is not None:
            return sim_error(f"page {page_id} already exists in that deployment", 409)
        # ids the sim hands out later must not meet this one
        st.content_seq = max(st.content_seq, int(page_id))
    page = store.create_page(space, title, str(parent) if parent is not None else None, "",
                             status, st.current_account_id if flavour == "cloud" else "admin",
                             check_title=False, restricted_to=restricted, page_id=page_id)
    return json_response(_page_record(store, page), status=201)


async def put_restrictions(request):
    """`PUT /_sim/confluence/restrictions` `{"flavour"?,"site"?,"page_id","restricted_to": [users]
    | null}`: who may see an existing page (null lifts the restriction)."""
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict) or "restricted_to" not in body:
        return sim_error("body must be an object with 'page_id' and 'restricted_to'")
    flavour, site_id = _deployment(st, {k: body[k] for k in ("flavour", "site") if body.get(k)})
    store = st.confluence_store(flavour, site_id)
    page = store.page(str(body.get("page_id")))
    if page is None:
        return sim_error(f"unknown page {body.get('page_id')!r}", 404)
    try:
        page["restricted_to"] = _restricted_to(st, flavour, site_id, body["restricted_to"])
    except ValueError as e:
        return sim_error(str(e))
    except LookupError as e:
        return sim_error(str(e), 404)
    return json_response(_page_record(store, page))


# ---- Data Center ----------------------------------------------------------------------
INSTANCE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CONTEXT_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)*$")
USERNAME = re.compile(r"^[^\s:/?#]{1,255}$")
EMAIL_VISIBILITY = ("show", "mask", "hide")       # Jira's jira.option.emailvisible


async def get_dc_instances(request):
    return json_response([i.to_json() for i in _state(request).dc_instances.values()])


async def put_dc_instances(request):
    st = _state(request)
    body = await _json(request, [])
    if not isinstance(body, list):
        return sim_error("body must be a list of instances")
    seen = set()
    for i in body:
        if not isinstance(i, dict) or not isinstance(i.get("id"), str) or not INSTANCE_ID.match(i["id"]):
            return sim_error("each instance needs an 'id' (lower-case letters, digits, '-')")
        if i.get("product") not in PRODUCTS:
            return sim_error("product must be jira or confluence")
        cp = i.get("context_path", "")
        if not isinstance(cp, str) or not CONTEXT_PATH.match(cp):
            return sim_error("context_path must be '' or like '/jira' (no trailing slash)")
        cap = i.get("captcha_after_failures")
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            return sim_error("captcha_after_failures must be null or a positive integer")
        if i.get("email_visibility", "show") not in EMAIL_VISIBILITY:
            return sim_error(f"email_visibility must be one of {list(EMAIL_VISIBILITY)}")
        if i["id"] in seen:
            return sim_error("duplicate instance id")
        seen.add(i["id"])
    st.set_dc_instances(body)
    return json_response([i.to_json() for i in st.dc_instances.values()])


def _dc_user_json(u: dict) -> dict:
    out = {k: u.get(k) for k in ("name", "key", "userKey", "displayName", "emailAddress",
                                 "active", "forbidden")}
    out["has_password"] = bool(u.get("password"))
    return out


async def get_dc_users(request):
    st = _state(request)
    return json_response([_dc_user_json(st.dc_user(k)) for k in st.dc_accounts])


async def put_dc_users(request):
    """`[{"username","password"?,"display_name"?,"email"?,"forbidden"?,"active"?,"key"?}]`:
    replaces the configured accounts (default: bridge-bot); a username of a generated user
    overlays it (e.g. to give it a password)."""
    st = _state(request)
    body = await _json(request, [])
    if not isinstance(body, list):
        return sim_error("body must be a list of users")
    seen = set()
    for u in body:
        if not isinstance(u, dict) or not isinstance(u.get("username"), str) or not USERNAME.match(u["username"]):
            return sim_error("each user needs a 'username' (no spaces, ':', '/', '?', '#')")
        for k in ("password", "display_name", "email", "key"):
            if k in u and u[k] is not None and (not isinstance(u[k], str) or not u[k]):
                return sim_error(f"{k} must be a non-empty string")
        for k in ("forbidden", "active"):
            if k in u and not isinstance(u[k], bool):
                return sim_error(f"{k} must be true or false")
        unknown = set(u) - {"username", "password", "display_name", "email", "forbidden", "active", "key"}
        if unknown:
            return sim_error(f"unknown user keys {sorted(unknown)}")
        if u["username"].lower() in seen:
            return sim_error("duplicate username")
        seen.add(u["username"].lower())
    st.set_dc_users(body)
    return json_response([_dc_user_json(st.dc_user(k)) for k in st.dc_accounts])


def _pat_json(p) -> dict:
    return {"id": p.id, "instance": p.instance, "user": p.username, "revoked": p.revoked}


async def create_pat(request):
    """`{"instance","user"}` -> 201 `{"token","id","instance","user"}`."""
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    inst = body.get("instance")
    if inst not in st.dc_instances:
        return sim_error(f"unknown instance {inst!r}", 404)
    user = body.get("user")
    if not isinstance(user, str) or st.dc_user(user) is None:
        return sim_error(f"unknown user {user!r}", 404)
    pat = st.issue_pat(inst, user)
    return json_response({"token": pat.token, **_pat_json(pat)}, status=201)


async def list_pats(request):
    return json_response({"pats": [_pat_json(p) for p in _state(request).pats.values()]})


async def revoke_pats(request):
    """`DELETE /_sim/dc/pats` revokes every PAT; `?id=` one."""
    st = _state(request)
    pid = request.query.get("id")
    n = 0
    for p in st.pats.values():
        if pid is None or p.id == pid:
            p.revoked = True
            n += 1
    if pid is not None and n == 0:
        return sim_error("no such PAT", 404)
    return json_response({"revoked": n})


# ---- OIDC provider ---------------------------------------------------------------------
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


async def get_oidc_clients(request):
    return json_response([c.to_json() for c in _state(request).oidc_clients.values()])


async def put_oidc_clients(request):
    """`[{"provider","client_id","client_secret","auth_method","acts_as","instances",
    "scopes"?,"audience"?,"expires_in"?}]` replaces every client."""
    st = _state(request)
    body = await _json(request, [])
    if not isinstance(body, list):
        return sim_error("body must be a list of clients")
    seen = set()
    for c in body:
        if not isinstance(c, dict):
            return sim_error("each client must be an object")
        for k in ("provider", "client_id", "client_secret", "acts_as"):
            if not isinstance(c.get(k), str) or not c[k]:
                return sim_error(f"each client needs a non-empty '{k}'")
        if not INSTANCE_ID.match(c["provider"]):
            return sim_error("provider must be lower-case letters, digits, '-'")
        if c.get("auth_method") not in AUTH_METHODS:
            return sim_error(f"auth_method must be one of {list(AUTH_METHODS)}")
        insts = c.get("instances", [])
        if not isinstance(insts, list) or not all(isinstance(i, str) for i in insts):
            return sim_error("instances must be a list of DC instance ids")
        scopes = c.get("scopes")
        if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
            return sim_error("scopes must be null or a list of strings")
        if c.get("audience") is not None and not isinstance(c["audience"], str):
            return sim_error("audience must be null or a string")
        exp = c.get("expires_in")
        if exp is not None and (not isinstance(exp, int) or isinstance(exp, bool) or exp < 1):
            return sim_error("expires_in must be null or a positive integer")
        unknown = set(c) - {"provider", "client_id", "client_secret", "auth_method", "acts_as",
                            "instances", "scopes", "audience", "expires_in"}
        if unknown:
            return sim_error(f"unknown client keys {sorted(unknown)}")
        if (c["provider"], c["client_id"]) in seen:
            return sim_error("duplicate client")
        seen.add((c["provider"], c["client_id"]))
    st.set_oidc_clients(body)
    return json_response([c.to_json() for c in st.oidc_clients.values()])


async def get_oidc_config(request):
    return json_response(_state(request).oidc_config)


async def put_oidc_config(request):
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    for k, v in body.items():
        if k not in default_oidc_config():
            return sim_error(f"unknown oidc config key {k!r}")
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            return sim_error(f"{k} must be a positive integer")
    st.oidc_config.update(body)
    return json_response(st.oidc_config)


async def expire_oidc(request):
    st = _state(request)
    now = st.now()
    for t in st.oidc_tokens.values():
        t.expires_at = min(t.expires_at, now)
    return json_response({"expired": len(st.oidc_tokens)})


# ---- Cloud API tokens ------------------------------------------------------------------
async def get_api_tokens(request):
    return json_response([t.to_json() for t in _state(request).api_tokens])


async def put_api_tokens(request):
    """`[{"email","token","site","display_name"?,"scopes"?}]` replaces every API token; `scopes`
    makes a scoped token (gateway only)."""
    st = _state(request)
    body = await _json(request, [])
    if not isinstance(body, list):
        return sim_error("body must be a list of API tokens")
    for t in body:
        if not isinstance(t, dict):
            return sim_error("each API token must be an object")
        if not isinstance(t.get("email"), str) or "@" not in t["email"]:
            return sim_error("each API token needs an 'email'")
        if not isinstance(t.get("token"), str) or not t["token"]:
            return sim_error("each API token needs a non-empty 'token'")
        if t.get("site") not in st.sites:
            return sim_error(f"unknown site {t.get('site')!r}", 404)
        if t.get("display_name") is not None and not isinstance(t["display_name"], str):
            return sim_error("display_name must be a string")
        scopes = t.get("scopes")
        if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
            return sim_error("scopes must be null or a list of strings")
        unknown = set(t) - {"email", "token", "site", "display_name", "scopes"}
        if unknown:
            return sim_error(f"unknown API token keys {sorted(unknown)}")
    st.set_api_tokens(body)
    return json_response([t.to_json() for t in st.api_tokens])


SERVICE_ACCOUNT_DOMAIN = "serviceaccount.atlassian.com"


async def create_service_account(request):
    """`{"name","site","scopes":[...],"token"?}` -> 201 `{"email","token","site","account_id",
    "display_name","scopes"}`: an Atlassian service account (accountType `app`) with an API token.
    Service-account tokens are always scoped, so they work on the gateway only."""
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict):
        return sim_error("body must be an object")
    unknown = set(body) - {"name", "site", "scopes", "token"}
    if unknown:
        return sim_error(f"unknown service account keys {sorted(unknown)}")
    name = body.get("name")
    if not isinstance(name, str) or not SITE_NAME.match(name):
        return sim_error("name must be a lower-case label (letters, digits, '-')")
    if body.get("site") not in st.sites:
        return sim_error(f"unknown site {body.get('site')!r}", 404)
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(x, str) for x in scopes):
        return sim_error("a service account's token is always scoped: give a non-empty 'scopes' list")
    token = body.get("token") or "ATSTT3x-" + st.new_secret("api_tokens", 24)
    tok = st.add_api_token({"email": f"{name}@{SERVICE_ACCOUNT_DOMAIN}", "token": token,
                            "site": body["site"], "scopes": scopes}, account_type="app")
    return json_response(tok.to_json(), status=201)


# ---- oauth state ------------------------------------------------------------------------
async def revoke(request):
    """Revoke every grant (so every refresh token known now); {"access_tokens": true} also
    expires their access tokens."""
    st = _state(request)
    body = await _json(request, {}) or {}
    n = 0
    for g in st.grants.values():
        if not g.revoked:
            g.revoked = True
            n += 1
    if isinstance(body, dict) and body.get("access_tokens"):
        now = st.now()
        for at in st.access_tokens.values():
            at.expires_at = min(at.expires_at, now)
    return json_response({"revoked_grants": n})


async def expire_access_tokens(request):
    st = _state(request)
    now = st.now()
    for at in st.access_tokens.values():
        at.expires_at = min(at.expires_at, now)
    return json_response({"expired": len(st.access_tokens)})


async def issued(request):
    st = _state(request)
    return json_response({k: list(v) for k, v in st.issued.items()})


async def grants(request):
    st = _state(request)
    out = []
    cfg = st.config
    for g in st.grants.values():
        # The refresh token still unused (the newest), and when it dies: 90 days after it was
        # issued (its last use) or 365 days after the consent, whichever comes first.
        unused = [r for r in st.refresh_tokens.values() if r.grant_id == g.id and r.first_used_at is None]
        newest = max(unused, key=lambda r: r.created_at, default=None)
        absolute = g.created_at + cfg["refresh_absolute_seconds"]
        out.append({"id": g.id, "client_id": g.client_id, "scopes": g.scopes, "sites": g.sites,
                    "account_id": g.account_id, "revoked": g.revoked, "created_at": g.created_at,
                    "absolute_expires_at": absolute,
                    "refresh_expires_at": (min(newest.created_at + cfg["refresh_inactivity_seconds"], absolute)
                                           if newest else None),
                    "refresh_tokens": sum(1 for r in st.refresh_tokens.values() if r.grant_id == g.id),
                    "access_tokens": sum(1 for a in st.access_tokens.values() if a.grant_id == g.id)})
    return json_response({"grants": out})


# ---- clock ------------------------------------------------------------------------------
async def get_clock(request):
    st = _state(request)
    return json_response({"now": st.now(), "offset_seconds": st.clock_offset})


async def advance_clock(request):
    """{"seconds": n} or {"days": n} (or both, added): moves the clock forward."""
    st = _state(request)
    body = await _json(request, {})
    if not isinstance(body, dict) or not body or set(body) - {"seconds", "days"}:
        return sim_error("give seconds and/or days (non-negative numbers)")
    secs = 0.0
    for key, unit in (("seconds", 1), ("days", 86400)):
        value = body.get(key, 0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            return sim_error(f"{key} must be a non-negative number")
        secs += value * unit
    st.clock_offset += secs
    return json_response({"now": st.now(), "offset_seconds": st.clock_offset})


# ---- calls ------------------------------------------------------------------------------
async def get_calls(request):
    st = _state(request)
    calls = st.calls
    route = request.query.get("route")
    if route:
        calls = [c for c in calls if c.get("route") == route]
    return json_response({"calls": calls, "counts": dict(st.counts)})


async def clear_calls(request):
    st = _state(request)
    st.calls = []
    st.counts = {}
    return json_response({"ok": True})


# ---- faults -----------------------------------------------------------------------------
async def add_fault(request):
    st = _state(request)
    body = await _json(request, {})
    try:
        f = faults.parse_fault(body)
    except ValueError as e:
        return sim_error(str(e))
    st.faults.append(f)
    return json_response({"id": f.id, "fault": f.to_json()}, status=201)


async def list_faults(request):
    return json_response({"faults": [f.to_json() for f in _state(request).faults]})


async def put_chaos(request):
    st = _state(request)
    body = await _json(request, {})
    if body.get("seed") is None and body.get("off"):
        st.chaos = None
        return json_response({"chaos": None})
    try:
        st.chaos = faults.parse_chaos(body)
    except ValueError as e:
        return sim_error(str(e))
    return json_response({"chaos": st.chaos.to_json()})


async def get_chaos(request):
    st = _state(request)
    return json_response({"chaos": st.chaos.to_json() if st.chaos else None})


async def delete_chaos(request):
    st = _state(request)
    was, st.chaos = st.chaos, None
    return json_response({"chaos": was.to_json() if was else None})


async def clear_faults(request):
    _state(request).faults = []
    return json_response({"ok": True})


async def delete_fault(request):
    st = _state(request)
    fid = request.match_info["id"]
    before = len(st.faults)
    st.faults = [f for f in st.faults if f.id != fid]
    if len(st.faults) == before:
        return sim_error("no such fault", 404)
    return json_response({"ok": True})


def _fault(request) -> Fault | None:
    fid = request.match_info["id"]
    return next((f for f in _state(request).faults if f.id == fid), None)


async def wait_held(request):
    """Answers once a `hold` fault holds a request (or 408 after `timeout_ms`, default 10 000)."""
    f = _fault(request)
    if f is None:
        return sim_error("no such fault", 404)
    try:
        timeout = float(request.query.get("timeout_ms", "10000")) / 1000
    except ValueError:
        return sim_error("'timeout_ms' must be a number")
    try:
        await asyncio.wait_for(f.arrived.wait(), timeout)
    except asyncio.TimeoutError:
        return sim_error("no request was held in time", 408)
    return json_response({"held": True, "fault": f.to_json()})


async def release_fault(request):
    f = _fault(request)
    if f is None:
        return sim_error("no such fault", 404)
    f.released.set()
    return json_response({"released": True})


# ---- dynamic webhooks (products/jira_webhooks.py) -------------------------------------------
def _delivery_json(d: dict) -> dict:
    return {k: d[k] for k in ("id", "identifier", "url", "site", "event", "key", "attempts", "dropped")} | {
        "matchedWebhookIds": d["body"]["matchedWebhookIds"]}


async def get_webhooks(request):
    """`GET /_sim/webhooks`: every site's registrations (with `expired`) and the deliveries made."""
    from .products import jira_webhooks as jw
    st = _state(request)
    regs = [{k: v for k, v in wh.items() if k != "groups"} | {"expired": not jw.live(st, wh)}
            for site in jw.hooks(st).values() for wh in site["by_id"].values()]
    return json_response({"webhooks": regs, "deliveries": [_delivery_json(d) for d in jw.deliveries(st)]})


async def flush_webhooks(request):
    """`POST /_sim/webhooks/flush`: waits for every delivery in flight; answers them all."""
    from .products import jira_webhooks as jw
    st = _state(request)
    await jw.flush(st)
    return json_response({"deliveries": [_delivery_json(d) for d in jw.deliveries(st)]})


async def drop_webhooks(request):
    """`POST /_sim/webhooks/drop` `{"count": n}`: the next n deliveries are never sent (lost)."""
    from .products import jira_webhooks as jw
    st = _state(request)
    body = await _json(request, {})
    count = body.get("count") if isinstance(body, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return sim_error("'count' must be a whole number")
    jw.deliveries(st)
    st.webhook_drop = count
    return json_response({"drop": count})


async def redeliver_webhook(request):
    """`POST /_sim/webhooks/deliveries/{id}/redeliver`: Jira's retry of a delivery: the same body
    and X-Atlassian-Webhook-Identifier, a fresh token; waits for the answer."""
    from .products import jira_webhooks as jw
    st = _state(request)
    d = next((d for d in jw.deliveries(st) if str(d["id"]) == request.match_info["id"]), None)
    if d is None:
        return sim_error("no such delivery", status=404)
    jw.send(st, d)
    await jw.flush(st)
    return json_response(_delivery_json(d))


def routes() -> list[web.RouteDef]:
    p = "/_sim"
    return [
        web.get(p + "/health", health),
        web.post(p + "/reset", reset),
        web.get(p + "/oauth/client", get_client),
        web.put(p + "/oauth/client", put_client),
        web.get(p + "/oauth/config", get_config),
        web.put(p + "/oauth/config", put_config),
        web.post(p + "/oauth/revoke", revoke),
        web.post(p + "/oauth/expire-access-tokens", expire_access_tokens),
        web.get(p + "/oauth/issued", issued),
        web.get(p + "/oauth/grants", grants),
        web.get(p + "/sites", get_sites),
        web.put(p + "/sites", put_sites),
        web.post(p + "/seed", seed),
        web.get(p + "/data/{kind}", get_data),
        web.get(p + "/confluence/pages", confluence_pages),
        web.get(p + "/confluence/attachments", confluence_attachments),
        web.get(p + "/jira/issues", jira_issues),
        web.post(p + "/jira/issues", plant_issues),
        web.post(p + "/jira/issues/{key}/transition", transition_issue),
        web.patch(p + "/jira/issues/{key}", edit_issue),
        web.delete(p + "/jira/issues/{key}", remove_issue),
        web.get(p + "/jira/searches", jira_searches),
        web.put(p + "/jira/edit-screen", put_edit_screen),
        web.get(p + "/webhooks", get_webhooks),
        web.post(p + "/webhooks/flush", flush_webhooks),
        web.post(p + "/webhooks/drop", drop_webhooks),
        web.post(p + "/webhooks/deliveries/{id}/redeliver", redeliver_webhook),
        web.delete(p + "/jira/searches", clear_jira_searches),
        web.get(p + "/quirks", get_quirks),
        web.put(p + "/quirks", put_quirks),
        web.put(p + "/jira/element-faults", put_element_faults),
        web.get(p + "/permissions", get_permissions),
        web.put(p + "/permissions", put_permissions),
        web.delete(p + "/permissions", clear_permissions),
        web.post(p + "/confluence/pages", plant_page),
        web.put(p + "/confluence/restrictions", put_restrictions),
        web.post(p + "/cloud/service-accounts", create_service_account),
        web.get(p + "/dc/instances", get_dc_instances),
        web.put(p + "/dc/instances", put_dc_instances),
        web.get(p + "/dc/users", get_dc_users),
        web.put(p + "/dc/users", put_dc_users),
        web.post(p + "/dc/pats", create_pat),
        web.get(p + "/dc/pats", list_pats),
        web.delete(p + "/dc/pats", revoke_pats),
        web.get(p + "/oidc/clients", get_oidc_clients),
        web.put(p + "/oidc/clients", put_oidc_clients),
        web.get(p + "/oidc/config", get_oidc_config),
        web.put(p + "/oidc/config", put_oidc_config),
        web.post(p + "/oidc/expire", expire_oidc),
        web.get(p + "/cloud/api-tokens", get_api_tokens),
        web.put(p + "/cloud/api-tokens", put_api_tokens),
        web.get(p + "/clock", get_clock),
        web.post(p + "/clock/advance", advance_clock),
        web.get(p + "/calls", get_calls),
        web.delete(p + "/calls", clear_calls),
        web.post(p + "/faults", add_fault),
        web.get(p + "/faults", list_faults),
        web.delete(p + "/faults", clear_faults),
        web.put(p + "/chaos", put_chaos),
        web.get(p + "/chaos", get_chaos),
        web.delete(p + "/chaos", delete_chaos),
        web.delete(p + "/faults/{id}", delete_fault),
        web.get(p + "/faults/{id}/held", wait_held),
        web.post(p + "/faults/{id}/release", release_fault),
    ]
