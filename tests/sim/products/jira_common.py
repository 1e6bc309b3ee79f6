"""Jira representations shared by the Cloud (REST v3) and Data Center (REST v2) handlers.

Each `*_json` renders a simulator record the way the deployment (`ctx.flavour`) does: Cloud
users are `accountId`s (email only when visible), DC users are `name`/`key` (email shown); links
point at the base URL the client used (`ctx.base`).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from aiohttp import web

from ..cloud import Ctx
from ..data import PRIORITIES, create_fields
from ..util import json_response


class BadParam(Exception):
    pass


def api(ctx: Ctx) -> str:
    return f"{ctx.base}/rest/api/{'3' if ctx.flavour == 'cloud' else '2'}"


def jira_error(status: int, *messages: str, errors: dict | None = None) -> web.Response:
    return json_response({"errorMessages": list(messages), "errors": errors or {}}, status=status)


# --------------------------------------------------------------------------- parameters
def single(q, name: str) -> str | None:
    vals = q.getall(name, [])
    return vals[-1] if vals else None


def int_param(q, name: str, default: int, lo: int = 0) -> int:
    raw = single(q, name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BadParam(f"The '{name}' parameter must be an integer, but was '{raw}'.") from None
    if v < lo:
        raise BadParam(f"The '{name}' parameter must not be less than {lo}.")
    return v


def bool_param(q, name: str, default: bool = False) -> bool:
    raw = single(q, name)
    if raw is None:
        return default
    return raw.lower() == "true"


def list_param(q, name: str) -> list[str]:
    out: list[str] = []
    for v in q.getall(name, []):
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def expand_param(q) -> set[str]:
    return set(list_param(q, "expand"))


def url_with(ctx: Ctx, path: str, **overrides) -> str:
    """`{api}{path}` with the request's query, `overrides` replacing (or appending) params."""
    pairs = [(k, v) for k, v in ctx.request.query.items() if k not in overrides]
    pairs += [(k, str(v)) for k, v in overrides.items()]
    return f"{api(ctx)}{path}" + (f"?{urlencode(pairs)}" if pairs else "")


def page_bean(ctx: Ctx, path: str, items: list, start_at: int, max_results: int) -> dict:
    """Jira's offset `PageBean` (Cloud `PageBean...`, DC `values` pages)."""
    page = items[start_at:start_at + max_results] if max_results > 0 else []
    is_last = start_at + max(max_results, 0) >= len(items)
    out: dict = {}
    if not (ctx.flavour == "cloud" and ctx.quirks.get("omit_is_last")):
        out["isLast"] = is_last
    out["maxResults"] = max_results
    if not is_last and max_results > 0:
        out["nextPage"] = url_with(ctx, path, startAt=start_at + max_results, maxResults=max_results)
    out["self"] = url_with(ctx, path, startAt=start_at, maxResults=max_results)
    out["startAt"] = start_at
    out["total"] = len(items)
    out["values"] = page
    return out


# --------------------------------------------------------------------------- users
def avatar_urls(ctx: Ctx, user: dict) -> dict[str, str]:
    if ctx.flavour == "cloud":
        initials = "".join(w[0] for w in user["displayName"].split()[:2]).upper() or "U"
        base = ("https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/initials/"
                f"{initials}-5.png")
        return {f"{n}x{n}": f"{base}?size={n}&s={n}" for n in (48, 24, 16, 32)}
    sizes = {"48x48": "", "24x24": "size=small&", "16x16": "size=xsmall&", "32x32": "size=medium&"}
    return {k: f"{ctx.base}/secure/useravatar?{v}ownerId={quote(user['key'], safe='')}&avatarId=10122"
            for k, v in sizes.items()}


def user_self(ctx: Ctx, user: dict) -> str:
    if ctx.flavour == "cloud":
        return f"{api(ctx)}/user?accountId={quote(user['accountId'], safe='')}"
    return f"{api(ctx)}/user?username={quote(user['name'], safe='')}"


def cloud_email_hidden(ctx: Ctx, user: dict) -> bool:
    """A Cloud user's profile visibility hides its email (quirk `cloud_hidden_emails` off: no one's)."""
    return ctx.quirks.get("cloud_hidden_emails", True) and not user.get("email_visible", True)


def dc_email_visibility(ctx: Ctx) -> str:
    """The Jira DC instance's `jira.option.emailvisible`: show | mask | hide."""
    return ctx.instance.email_visibility if ctx.instance is not None else "show"


def email_searchable(ctx: Ctx) -> bool:
    """Jira DC matches emails in user searches only when it may show them (hidden: never)."""
    return dc_email_visibility(ctx) != "hide"


def masked(email: str) -> str:
    """Jira's masked form: `ben dot abbott at corp dot test`."""
    return email.replace("@", " at ").replace(".", " dot ")


def shown_email(ctx: Ctx, user: dict) -> str | None:
    """The email address as this deployment shows it to the caller (None: absent)."""
    email = user.get("emailAddress")
    if ctx.flavour == "cloud":
        return None if cloud_email_hidden(ctx, user) else email
    vis = dc_email_visibility(ctx)
    if vis == "hide" or not email:
        return None           # the member is left out (pycontribs/jira#170, #190)
    return masked(email) if vis == "mask" else email


def user_json(ctx: Ctx, user: dict, summary: bool = False) -> dict:
    """Cloud `User` / DC `UserBean`; `summary` = the short form used inside other objects."""
    out: dict = {"self": user_self(ctx, user)}
    if ctx.flavour == "cloud":
        out["accountId"] = user["accountId"]
        out["accountType"] = user.get("accountType", "atlassian")
    else:
        out["key"] = user["key"]
        out["name"] = user["name"]
    email = shown_email(ctx, user)
    if email is not None and not summary:
        out["emailAddress"] = email
    out["avatarUrls"] = avatar_urls(ctx, user)
    out["displayName"] = user["displayName"]
    out["active"] = bool(user["active"])
    if not summary:
        if ctx.flavour == "dc":
            out["deleted"] = False
        out["timeZone"] = user["timeZone"]
        out["locale"] = user["locale"]
    return out


def ref_user_json(ctx: Ctx, ref: str | None, summary: bool = True) -> dict | None:
    u = ctx.find_user(ref)
    return user_json(ctx, u, summary=summary) if u else None


def visible_email(ctx: Ctx, user: dict) -> str | None:
    return shown_email(ctx, user)


def picker_html(ctx: Ctx, user: dict, q: str) -> str:
    def hl(text: str) -> str:
        if not q:
            return text
        out = []
        for w in text.split(" "):
            if w.lower().startswith(q):
                out.append(f"<strong>{w[:len(q)]}</strong>{w[len(q):]}")
            else:
                out.append(w)
        return " ".join(out)
    parts = [hl(user["displayName"])]
    email = visible_email(ctx, user)
    if email:
        parts.append(" - " + hl(email))
    if ctx.flavour == "dc":
        parts.append(f" ({hl(user['name'])})")
    return "".join(parts)


# --------------------------------------------------------------------------- projects
def project_avatar_urls(ctx: Ctx, p: dict) -> dict[str, str]:
    sizes = {"48x48": "large", "24x24": "small", "16x16": "xsmall", "32x32": "medium"}
    if ctx.flavour == "cloud":
        return {k: f"{ctx.site_url}/rest/api/3/universal_avatar/view/type/project/avatar/10424?size={v}"
                for k, v in sizes.items()}
    return {k: f"{ctx.base}/secure/projectavatar?size={v}&pid={p['id']}&avatarId=10324"
            for k, v in sizes.items()}


def issuetype_json(ctx: Ctx, p: dict, it: dict) -> dict:
    if ctx.flavour == "cloud":
        out = {"self": f"{api(ctx)}/issuetype/{it['id']}", "id": it["id"],
               "description": it["description"],
               "iconUrl": f"{ctx.site_url}/rest/api/2/universal_avatar/view/type/issuetype/avatar/"
                          f"{it['avatarId']}?size=medium",
               "name": it["name"], "subtask": it["subtask"], "avatarId": it["avatarId"],
               "hierarchyLevel": it["hierarchyLevel"]}
        if it.get("scope_project_id"):
            out["entityId"] = it["entityId"]
            out["scope"] = {"type": "PROJECT", "project": {"id": it["scope_project_id"]}}
        return out
    return {"self": f"{api(ctx)}/issuetype/{it['id']}", "id": it["id"],
            "description": it["description"],
            "iconUrl": f"{ctx.base}/secure/viewavatar?size=xsmall&avatarId={it['avatarId']}"
                       f"&avatarType=issuetype",
            "name": it["name"], "subtask": it["subtask"], "avatarId": it["avatarId"]}


def category_json(ctx: Ctx, c: dict) -> dict:
    return {"self": f"{api(ctx)}/projectCategory/{c['id']}", "id": c["id"], "name": c["name"],
            "description": c["description"]}


def project_json(ctx: Ctx, p: dict, expand: set[str] = frozenset(), full: bool = False) -> dict:
    """Cloud `Project` / DC `ProjectBean`: the list form, or `full` (`GET project/{key}`)."""
    cloud = ctx.flavour == "cloud"
    out: dict = {
        "expand": ("description,lead,issueTypes,url,projectKeys,permissions,insight" if cloud
                   else "description,lead,url,projectKeys"),
        "self": f"{api(ctx)}/project/{p['id']}",
        "id": p["id"],
        "key": p["key"],
    }
    if full or "description" in expand:
        out["description"] = p["description"]
    if full or "lead" in expand:
        lead = ref_user_json(ctx, p["lead"])
        if lead:
            out["lead"] = lead
    if full:
        out["components"] = [component_json(ctx, p, c) for c in ctx.data.components[p["key"]]]
    if full or "issueTypes" in expand:
        out["issueTypes"] = [issuetype_json(ctx, p, it) for it in p["issue_types"]]
    if full:
        out["assigneeType"] = "PROJECT_LEAD"
        out["versions"] = []
    out["name"] = p["name"]
    if full:
        out["roles"] = {r: f"{api(ctx)}/project/{p['id']}/role/{10002 + n}"
                        for n, r in enumerate(("Administrators", "Member", "Viewer"))}
    out["avatarUrls"] = project_avatar_urls(ctx, p)
    if full or "projectKeys" in expand:
        out["projectKeys"] = [p["key"]]
    if p["category"]:
        out["projectCategory"] = category_json(ctx, p["category"])
    out["projectTypeKey"] = p["projectTypeKey"]
    if cloud:
        out["simplified"] = p["team_managed"]
        out["style"] = "next-gen" if p["team_managed"] else "classic"
        out["isPrivate"] = False
        out["properties"] = {}
        if p["team_managed"]:
            out["entityId"] = p["uuid"]
            out["uuid"] = p["uuid"]
        if "insight" in expand:
            out["insight"] = {"totalIssueCount": p["issueCount"],
                              "lastIssueUpdateTime": p["lastIssueUpdateTime"].replace("Z", "+0000")}
        if p["archived"]:
            out["archived"] = True
    else:
        out["archived"] = p["archived"]
    return out


# --------------------------------------------------------------------------- components
def component_json(ctx: Ctx, p: dict, c: dict, with_count: bool = False) -> dict:
    out: dict = {"self": f"{api(ctx)}/component/{c['id']}", "id": c["id"], "name": c["name"]}
    if c["description"]:
        out["description"] = c["description"]
    lead = ref_user_json(ctx, c["lead"])
    if lead:
        out["lead"] = lead
        if ctx.flavour == "cloud":
            out["leadAccountId"] = lead["accountId"]
        else:
            out["leadUserName"] = lead["name"]
    out["assigneeType"] = c["assigneeType"]
    if c["assigneeType"] == "COMPONENT_LEAD" and lead:
        out["assignee"] = lead
        out["realAssigneeType"] = "COMPONENT_LEAD"
        out["realAssignee"] = lead
        out["isAssigneeTypeValid"] = True
    else:
        project_lead = ref_user_json(ctx, p["lead"])
        out["realAssigneeType"] = "PROJECT_LEAD"
        if project_lead:
            out["realAssignee"] = project_lead
        out["isAssigneeTypeValid"] = False
    out["project"] = p["key"]
    out["projectId"] = int(p["id"])
    if ctx.flavour == "dc":
        out["archived"] = False
        out["deleted"] = False
    if with_count:
        out["issueCount"] = c["issueCount"]
    return out


# --------------------------------------------------------------------------- fields
def priority_json(ctx: Ctx, pr: dict, full: bool = False) -> dict:
    out = {"self": f"{api(ctx)}/priority/{pr['id']}"}
    if full:
        out["statusColor"] = pr["statusColor"]
        out["description"] = pr["description"]
    icon_base = ctx.site_url if ctx.flavour == "cloud" else ctx.base
    out["iconUrl"] = f"{icon_base}/images/icons/priorities/{pr['icon']}.svg"
    out["name"] = pr["name"]
    out["id"] = pr["id"]
    return out


def _allowed(ctx: Ctx, p: dict, what: str, values: list) -> list:
    if what == "issuetype":
        return [issuetype_json(ctx, p, it) for it in values]
    if what == "project":
        out = []
        for proj in values:
            j = {"self": f"{api(ctx)}/project/{proj['id']}", "id": proj["id"], "key": proj["key"],
                 "name": proj["name"], "projectTypeKey": proj["projectTypeKey"]}
            if ctx.flavour == "cloud":
                j["simplified"] = proj["team_managed"]
            j["avatarUrls"] = project_avatar_urls(ctx, proj)
            out.append(j)
        return out
    if what == "priority":
        return [priority_json(ctx, pr) for pr in values]
    if what == "components":
        out = []
        for c in values:
            j = {"self": f"{api(ctx)}/component/{c['id']}", "id": c["id"], "name": c["name"]}
            if c["description"]:
                j["description"] = c["description"]
            out.append(j)
        return out
    if what == "options":
        return [{"self": f"{api(ctx)}/customFieldOption/{o['id']}", "value": o["value"], "id": o["id"]}
                for o in values]
    raise AssertionError(what)


def _autocomplete(ctx: Ctx, p: dict, kind: str) -> str:
    if kind == "labels":
        return f"{ctx.base}/rest/api/1.0/labels/suggest?query="
    if ctx.flavour == "cloud":
        if kind == "assignee":
            return f"{api(ctx)}/user/assignable/search?project={p['key']}&query="
        return f"{api(ctx)}/user/search?query="
    if kind == "assignee":
        return f"{api(ctx)}/user/assignable/search?project={p['key']}&username="
    return f"{api(ctx)}/user/search?username="


def field_json(ctx: Ctx, p: dict, f: dict) -> dict:
    """Cloud `FieldCreateMetadata` / DC `FieldMetaBean` (which has no `key`)."""
    out: dict = {"required": f["required"], "schema": dict(f["schema"]), "name": f["name"]}
    if ctx.flavour == "cloud":
        out["key"] = f["fieldId"]
    out["fieldId"] = f["fieldId"]
    if "autocomplete" in f:
        out["autoCompleteUrl"] = _autocomplete(ctx, p, f["autocomplete"])
    out["hasDefaultValue"] = f["hasDefaultValue"]
    out["operations"] = list(f["operations"])
    if "allowed" in f:
        out["allowedValues"] = _allowed(ctx, p, *f["allowed"])
    if "default" in f:
        what, value_id = f["default"]
        pr = next(x for x in PRIORITIES if x["id"] == value_id)
        out["defaultValue"] = priority_json(ctx, pr)
    return out


def fields_for(ctx: Ctx, p: dict, it: dict) -> list[dict]:
    return [field_json(ctx, p, f) for f in create_fields(p, it, ctx.data.components[p["key"]])]
