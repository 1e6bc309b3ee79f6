"""Jira Cloud dynamic webhooks (REST v3 `/rest/api/3/webhook`, OAuth 2.0 and Connect apps only)
and their signed deliveries.

Registration (`registerDynamicWebhooks`): `{url, webhooks: [{events, jqlFilter, fieldIdsFilter?}]}`
-> `{webhookRegistrationResult: [{createdWebhookId} | {errors}]}` in request order. A webhook's JQL
may use only the fields `issueKey`, `project`, `issuetype`, `status`, `assignee`, `reporter`,
`issue.property[...]`, `cf[id]` and the operators `=`, `!=`, `IN`, `NOT IN` (spec,
`WebhookDetails.jqlFilter`); anything else is refused per webhook like Jira's example
("The clause watchCount is unsupported"). One URL per app (per site): another URL is refused.
Webhooks expire 30 days after their registration or last refresh, on the sim clock; an expired
one is neither listed nor delivered. `PUT /webhook/refresh` ignores unknown ids and answers the
new `expirationDate` (int64 ms, as the schema says); `DELETE /webhook` answers 202.

Deliveries: every change of an issue (JiraStore listeners: the REST API and the control API's
"person in Jira") that a live webhook's events, JQL and `fieldIdsFilter` match is POSTed to the
app's URL, once per URL with every matched id in `matchedWebhookIds`, with
`Authorization: Bearer <JWT>` (HS256, signed with the OAuth app's client secret: Atlassian's
"Webhooks authentication for OAuth 2.0 apps"), `X-Atlassian-Webhook-Identifier` (the same on a
retry) and `X-Atlassian-Webhook-Retry`. The issue in the body links to the site URL, as Jira's
webhook bodies do. Controls (tests/sim/control.py): list registrations and deliveries, flush
(await the deliveries in flight), drop the next N deliveries (never sent: deliveries are best
effort), and redeliver one (a Jira retry: same body and identifier, a fresh token).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time

import aiohttp
from aiohttp import web

from ..cloud import Ctx, Match, handler
from ..state import DAY
from ..util import json_response
from .jira_common import jira_error

SPEC = "jira-cloud-v3"
LIFETIME = 30 * DAY
EVENTS = {"jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created",
          "comment_updated", "comment_deleted", "issue_property_set", "issue_property_deleted",
          "sprint_created", "sprint_updated", "sprint_closed", "sprint_deleted", "sprint_started",
          "jira:version_released", "jira:version_unreleased", "jira:version_created",
          "jira:version_moved", "jira:version_updated", "jira:version_merged", "jira:version_deleted"}
JQL_FIELDS = {"issuekey", "key", "project", "issuetype", "status", "assignee", "reporter"}
TOKEN_SECONDS = 180


# --------------------------------------------------------------------------- state
def hooks(state) -> dict:
    """`state.webhooks`: site id -> {"seq": n, "by_id": {id: webhook}}; created on first use."""
    if not hasattr(state, "webhooks") or state.webhooks is None:
        state.webhooks = {}
    return state.webhooks


def site_hooks(state, site_id: str) -> dict:
    return hooks(state).setdefault(site_id, {"seq": 10000, "by_id": {}})


def deliveries(state) -> list:
    if not hasattr(state, "webhook_deliveries") or state.webhook_deliveries is None:
        state.webhook_deliveries = []
        state.webhook_drop = 0
        state.webhook_tasks = set()
    return state.webhook_deliveries


def live(state, wh: dict) -> bool:
    return wh["expires_at"] > state.now()


# --------------------------------------------------------------------------- JQL filter
CLAUSE = re.compile(r'\s*([A-Za-z_.\[\]0-9]+)\s*(NOT\s+IN|IN|!=|=|~|>=|<=|>|<|IS\s+NOT|IS|WAS)\s*'
                    r'(\([^)]*\)|"[^"]*"|\'[^\']*\'|[^\s()]+)\s*', re.I)


def _values(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("("):
        raw = raw[1:-1]
        return [v.strip().strip('"\'') for v in raw.split(",") if v.strip()]
    return [raw.strip('"\'')]


def parse_filter(text: str) -> tuple[list[list[tuple[str, str, list[str]]]] | None, list[str]]:
    """`a AND b OR c` -> [[a, b], [c]] (OR of ANDs), or the errors Jira would answer."""
    if not isinstance(text, str) or not text.strip():
        return [], []          # "If you leave the JQL query empty, it'll match all issues"
    groups, errors = [], []
    for part in re.split(r"\s+OR\s+", text.strip(), flags=re.I):
        group = []
        for clause in re.split(r"\s+AND\s+", part, flags=re.I):
            m = CLAUSE.fullmatch(clause)
            if m is None:
                errors.append(f"The JQL query '{text}' is invalid.")
                continue
            field, op, value = m.group(1), re.sub(r"\s+", " ", m.group(2).upper()), m.group(3)
            name = field.lower()
            supported = (name in JQL_FIELDS or name.startswith("issue.property")
                         or re.fullmatch(r"cf\[\d+\]", name) is not None)
            if not supported:
                errors.append(f"The clause {field} is unsupported")
                continue
            if op not in ("=", "!=", "IN", "NOT IN"):
                errors.append(f"The operator '{op}' is unsupported")
                continue
            group.append((name, op, [v.upper() for v in _values(value)]))
        groups.append(group)
    return (None, errors) if errors else (groups, [])


def _facts(store, issue: dict, name: str) -> set[str]:
    from .jira_issues import STATUSES
    v = issue["values"]
    if name in ("issuekey", "key"):
        return {issue["key"].upper(), issue["id"]}
    if name == "project":
        return {issue["projectKey"].upper(), str(issue["projectId"])}
    if name == "issuetype":
        return {str(issue["issueTypeId"])}
    if name == "status":
        sid = v.get("status")
        st = next((s for s in STATUSES if s["id"] == sid), None)
        return {sid or "", (st or {}).get("name", "").upper()}
    if name in ("assignee", "reporter"):
        return {(v.get(name) or "").upper()}
    return set()


def matches(store, issue: dict, groups) -> bool:
    if not groups:
        return True
    for group in groups:
        ok = True
        for name, op, values in group:
            facts = _facts(store, issue, name)
            hit = bool(facts & set(values))
            if (op in ("=", "IN") and not hit) or (op in ("!=", "NOT IN") and hit):
                ok = False
                break
        if ok:
            return True
    return False


# --------------------------------------------------------------------------- REST handlers
def _app(ctx: Ctx) -> str:
    return ctx.grant.client_id


def _webhook_json(wh: dict) -> dict:
    out = {"id": wh["id"], "jqlFilter": wh["jqlFilter"], "events": list(wh["events"]),
           "expirationDate": int(wh["expires_at"] * 1000), "url": wh["url"]}
    if wh.get("fieldIdsFilter") is not None:
        out["fieldIdsFilter"] = list(wh["fieldIdsFilter"])
    return out


async def _body(ctx: Ctx):
    try:
        return await ctx.request.json(), None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, jira_error(400, "Invalid request payload. Refer to the REST API documentation and try again.")


def _url_allowed(state, url) -> bool:
    if not isinstance(url, str):
        return False
    if url.startswith("https://"):
        return True
    # Test stacks receive on plain http at loopback; real Jira sends to HTTPS URLs only.
    return bool(state.quirks.get("webhooks_allow_http_loopback")) and re.match(
        r"http://(127\.0\.0\.1|localhost)(:\d+)?/", url) is not None


@handler(SPEC, "POST", "/rest/api/3/webhook")
async def register(ctx: Ctx):
    if ctx.grant is None:
        return jira_error(403, "Only Connect and OAuth 2.0 apps can use this operation.")
    body, err = await _body(ctx)
    if err:
        return err
    if not isinstance(body, dict) or not isinstance(body.get("url"), str) or not isinstance(body.get("webhooks"), list):
        return jira_error(400, "'url' and 'webhooks' are required.")
    url = body["url"]
    if not _url_allowed(ctx.state, url):
        return jira_error(400, "The webhook URL must use HTTPS.")
    site = site_hooks(ctx.state, ctx.site.id)
    ours = [w for w in site["by_id"].values() if w["client_id"] == _app(ctx) and live(ctx.state, w)]
    if any(w["url"] != url for w in ours):
        return jira_error(400, "Only a single URL per app is allowed to be registered.")
    results = []
    for details in body["webhooks"]:
        if not isinstance(details, dict) or not isinstance(details.get("events"), list) \
                or not isinstance(details.get("jqlFilter"), str):
            return jira_error(400, "Every webhook needs 'events' and 'jqlFilter'.")
        unknown = [e for e in details["events"] if e not in EVENTS]
        if unknown or not details["events"]:
            return jira_error(400, f"Invalid webhook event(s): {unknown or '[]'}")
        groups, errors = parse_filter(details["jqlFilter"])
        if errors:
            results.append({"errors": errors})
            continue
        fields = details.get("fieldIdsFilter")
        if fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
            return jira_error(400, "'fieldIdsFilter' must be a list of field ids.")
        site["seq"] += 1
        wh = {"id": site["seq"], "client_id": _app(ctx), "url": url, "events": list(details["events"]),
              "jqlFilter": details["jqlFilter"], "groups": groups, "fieldIdsFilter": fields,
              "expires_at": ctx.state.now() + LIFETIME, "site_id": ctx.site.id, "site_url": ctx.site.url}
        site["by_id"][wh["id"]] = wh
        attach(ctx.state, ctx.site)
        results.append({"createdWebhookId": wh["id"]})
    return json_response({"webhookRegistrationResult": results})


@handler(SPEC, "GET", "/rest/api/3/webhook")
async def list_webhooks(ctx: Ctx):
    if ctx.grant is None:
        return jira_error(403, "Only Connect and OAuth 2.0 apps can use this operation.")
    q = ctx.request.query
    try:
        start = int(q.get("startAt", "0"))
        size = min(max(int(q.get("maxResults", "50")), 1), 100)
    except ValueError:
        return jira_error(400, "startAt and maxResults must be numbers.")
    site = site_hooks(ctx.state, ctx.site.id)
    ours = [w for w in site["by_id"].values() if w["client_id"] == _app(ctx) and live(ctx.state, w)]
    page = ours[start:start + size]
    return json_response({"startAt": start, "maxResults": size, "total": len(ours),
                          "isLast": start + size >= len(ours), "values": [_webhook_json(w) for w in page]})


def _ids(body) -> list[int] | None:
    if not isinstance(body, dict) or not isinstance(body.get("webhookIds"), list):
        return None
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in body["webhookIds"]):
        return None
    return body["webhookIds"]


@handler(SPEC, "PUT", "/rest/api/3/webhook/refresh")
async def refresh(ctx: Ctx):
    if ctx.grant is None:
        return jira_error(403, "Only Connect and OAuth 2.0 apps can use this operation.")
    body, err = await _body(ctx)
    if err:
        return err
    ids = _ids(body)
    if ids is None:
        return jira_error(400, "The list of webhook IDs is missing.")
    expires = ctx.state.now() + LIFETIME
    site = site_hooks(ctx.state, ctx.site.id)
    for i in ids:       # unknown, expired or other apps' ids are ignored (spec)
        wh = site["by_id"].get(i)
        if wh is not None and wh["client_id"] == _app(ctx) and live(ctx.state, wh):
            wh["expires_at"] = expires
    return json_response({"expirationDate": int(expires * 1000)})


@handler(SPEC, "DELETE", "/rest/api/3/webhook")
async def delete(ctx: Ctx):
    if ctx.grant is None:
        return jira_error(403, "Only Connect and OAuth 2.0 apps can use this operation.")
    body, err = await _body(ctx)
    if err:
        return err
    ids = _ids(body)
    if ids is None:
        return jira_error(400, "The list of webhook IDs is missing.")
    site = site_hooks(ctx.state, ctx.site.id)
    for i in ids:
        wh = site["by_id"].get(i)
        if wh is not None and wh["client_id"] == _app(ctx):
            del site["by_id"][i]
    return web.Response(status=202)


# --------------------------------------------------------------------------- deliveries
def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_jwt(claims: dict, secret: str) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def token(state, client_id: str) -> str:
    client = state.clients.get(client_id)
    now = int(state.now())
    return sign_jwt({"iss": client_id, "iat": now, "exp": now + TOKEN_SECONDS},
                    client.client_secret if client else "")


def attach(state, site) -> None:
    store = state.jira_store("cloud", site.id)
    if not getattr(store, "_webhooks_attached", False):
        store.listeners.append(lambda s, kind, issue, changed: _on_change(state, site, s, kind, issue, changed))
        store._webhooks_attached = True


def _issue_body(state, site, store, issue: dict) -> dict:
    from .jira_issues import issue_json
    ctx = Ctx(request=None, state=state, match=Match(product="jira", tail="", prefix=""), flavour="cloud",
              base=site.url, site=site, via_gateway=False, auth="oauth")
    try:
        return issue_json(ctx, store, issue, None, set())
    except Exception:   # noqa: BLE001 - a deleted issue may no longer render in full
        return {"id": issue["id"], "key": issue["key"], "self": f"{site.url}/rest/api/2/issue/{issue['id']}",
                "fields": {}}


def _on_change(state, site, store, kind: str, issue: dict, changed: list[str]) -> None:
    event = {"created": "jira:issue_created", "updated": "jira:issue_updated",
             "deleted": "jira:issue_deleted"}[kind]
    by_url: dict[tuple[str, str], list[int]] = {}
    for wh in site_hooks(state, site.id)["by_id"].values():
        if not live(state, wh) or event not in wh["events"] or not matches(store, issue, wh["groups"]):
            continue
        if kind == "updated" and wh.get("fieldIdsFilter") is not None \
                and not set(wh["fieldIdsFilter"]) & set(changed):
            continue
        by_url.setdefault((wh["client_id"], wh["url"]), []).append(wh["id"])
    if not by_url:
        return
    body_issue = _issue_body(state, site, store, issue)
    for (client_id, url), ids in by_url.items():
        d = {"id": len(deliveries(state)) + 1, "identifier": str(int(time.time() * 1000) * 1000 + len(deliveries(state))),
             "url": url, "client_id": client_id, "site": site.id, "event": event, "key": issue["key"],
             "body": {"timestamp": int(state.now() * 1000), "webhookEvent": event,
                      "issue_event_type_name": "issue_generic", "matchedWebhookIds": ids,
                      "issue": body_issue, "changelog": {"items": [{"field": f} for f in changed]}},
             "attempts": [], "dropped": False}
        deliveries(state).append(d)
        if state.webhook_drop > 0:
            state.webhook_drop -= 1
            d["dropped"] = True
            continue
        send(state, d)


def send(state, d: dict) -> None:
    task = asyncio.get_running_loop().create_task(_post(state, d))
    state.webhook_tasks.add(task)
    task.add_done_callback(state.webhook_tasks.discard)


async def _post(state, d: dict) -> None:
    headers = {"Authorization": f"Bearer {token(state, d['client_id'])}",
               "Content-Type": "application/json",
               "X-Atlassian-Webhook-Identifier": d["identifier"],
               "X-Atlassian-Webhook-Retry": str(len(d["attempts"])),
               "X-Atlassian-Webhook-Flow": "Primary"}
    attempt = {"retry": len(d["attempts"]), "status": None}
    d["attempts"].append(attempt)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.post(d["url"], data=json.dumps(d["body"]), headers=headers) as resp:
                attempt["status"] = resp.status
                attempt["answer"] = (await resp.text())[:2000]
    except Exception as e:   # noqa: BLE001 - a delivery that failed is recorded, as Jira does
        attempt["error"] = type(e).__name__


async def flush(state) -> None:
    deliveries(state)
    while state.webhook_tasks:
        await asyncio.gather(*list(state.webhook_tasks), return_exceptions=True)
