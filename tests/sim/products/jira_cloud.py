"""Jira Cloud platform REST v3 handlers (spec: jira-cloud-platform-v3.swagger-v3.v3.json)."""

from __future__ import annotations

from urllib.parse import quote

from ..cloud import Ctx, handler
from ..util import json_response

SPEC = "jira-cloud-v3"


def avatar_urls(account_id: str) -> dict[str, str]:
    base = "https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/initials/MK-5.png"
    return {f"{n}x{n}": f"{base}?size={n}&s={n}" for n in (16, 24, 32, 48)}


def user_json(ctx: Ctx, user: dict) -> dict:
    return {
        "self": f"{ctx.gateway_base}/rest/api/3/user?accountId={quote(user['accountId'], safe='')}",
        "accountId": user["accountId"],
        "accountType": user["accountType"],
        "emailAddress": user["emailAddress"],
        "avatarUrls": avatar_urls(user["accountId"]),
        "displayName": user["displayName"],
        "active": user["active"],
        "timeZone": user["timeZone"],
        "locale": user["locale"],
    }


@handler(SPEC, "GET", "/rest/api/3/myself")
async def get_current_user(ctx: Ctx):
    user = ctx.state.users[ctx.grant.account_id]
    body = user_json(ctx, user)
    expand = {e.strip() for e in ctx.request.query.get("expand", "").split(",") if e.strip()}
    body["groups"] = {"size": 1, "items": []}
    body["applicationRoles"] = {"size": 1, "items": []}
    if "groups" in expand:
        body["groups"]["items"] = [{"name": "jira-software-users", "groupId": "7d3c2a1b-0000-4000-8000-000000000001",
                                    "self": f"{ctx.gateway_base}/rest/api/3/group?groupId=7d3c2a1b-0000-4000-8000-000000000001"}]
    if "applicationRoles" in expand:
        body["applicationRoles"]["items"] = [{"key": "jira-software", "name": "Jira Software"}]
    body["expand"] = "groups,applicationRoles"
    return json_response(body)
