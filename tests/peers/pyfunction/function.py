"""The Python equivalent of our functions' cold start and first request, for the bench's
cold-start and memory rows (issue 12). One module for all five functions, run by bootstrap.py
behind the functions' own routes (the gateway's `PUT /_gateway/functions/{name}/code`).

At import, what our `App::from_env` does (shared/src/app.rs) in the way a Python function would:
the required configuration from the environment (the same variables), boto3 clients for the
services our functions build clients for — DynamoDB, Secrets Manager, EventBridge when a bus is
configured (no KMS client: our functions name the key to Secrets Manager, they call no KMS API) —
the same secret read (the OAuth client secret: JSON, a base64 state-signing key of ≥ 32 bytes),
an HTTP session for Atlassian and the Atlassian client library imported, as a Python
implementation of these functions would have at the top of its module. It loads no PDF or
rendering library (publish-page's Rust binary has its renderer linked in): that favours Python.

Requests: the bench's first request for each function is answered as ours answers it (same status,
same JSON), with the same reads:

| function | first request | work |
|---|---|---|
| connections | `GET /v1/tenants/{t}/connections/{product}` | caller check, GetItem of the connection, its status |
| discovery | `GET /v1/tenants/{t}/jira/projects` | + the connection's secret, `GET rest/api/2/project` (DC) |
| publish-page | `GET /v1/tenants/{t}/publications/{id}` | GetItem of the publication (404 when none) |
| create-issue | `DELETE /v1/tenants/{t}/issues/{key}` | GetItem of the issue's reverse record (404 when not ours) |
| oauth-callback | `POST /v1/tenants/{t}/connections/{product}/oauth/start` | return URL check, signed state, PutItem, authorize URL |

Every other route answers 501: this is a measuring device, not a second implementation."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from urllib.parse import urlencode, urlsplit

import boto3
import requests
from atlassian import Confluence, Jira  # noqa: F401 - imported at init, as the functions would

ENV = os.environ
REQUIRED = ["BRIDGE_TABLE_NAME", "BRIDGE_SECRET_PREFIX", "BRIDGE_KMS_KEY_ID", "BRIDGE_OAUTH_CLIENT_ID",
            "BRIDGE_OAUTH_CLIENT_SECRET_NAME", "BRIDGE_OAUTH_REDIRECT_URI", "BRIDGE_ALLOWED_RETURN_URLS"]
missing = [name for name in REQUIRED if not ENV.get(name)]
if missing:
    raise RuntimeError(f"missing configuration: {', '.join(missing)}")
TABLE = ENV["BRIDGE_TABLE_NAME"]
TENANT_CLAIM = ENV.get("BRIDGE_TENANT_CLAIM", "tenant_id")
AUTH_URL = ENV.get("BRIDGE_ATLASSIAN_AUTH_URL", "https://auth.atlassian.com")
RETURN_URLS = [u.strip() for u in ENV["BRIDGE_ALLOWED_RETURN_URLS"].split(",") if u.strip()]
STATE_TTL = int(ENV.get("BRIDGE_OAUTH_STATE_TTL_SECONDS", "600"))
SCOPES = {"jira": "read:jira-work write:jira-work read:jira-user offline_access",
          "confluence": "read:space:confluence read:page:confluence write:page:confluence "
                        "write:confluence-file offline_access"}

# AWS_ENDPOINT_URL (moto locally) is honoured by boto3 itself, as by the Rust SDK.
session = boto3.session.Session()
ddb = session.client("dynamodb")
secretsmanager = session.client("secretsmanager")
events = session.client("events") if ENV.get("BRIDGE_EVENT_BUS_NAME") else None
http = requests.Session()
http.headers["User-Agent"] = "atlassian-bridge-python-peer"

_app_secret = json.loads(secretsmanager.get_secret_value(
    SecretId=ENV["BRIDGE_OAUTH_CLIENT_SECRET_NAME"], VersionStage="AWSCURRENT")["SecretString"])
CLIENT_SECRET = _app_secret["client_secret"]
STATE_KEY = base64.b64decode(_app_secret["state_signing_key"])
if len(STATE_KEY) < 32:
    raise RuntimeError("state_signing_key must hold at least 32 bytes")
del _app_secret


# ------------------------------------------------------------------ HTTP plumbing
def respond(status: int, body) -> dict:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps(body, separators=(",", ":"))}


def error(status: int, code: str, message: str) -> dict:
    return respond(status, {"error": {"code": code, "message": message}})


def caller(event: dict, tenant: str, scopes: set[str]) -> dict | None:
    """None when the verified claims are for this tenant with one of the scopes, else the error."""
    jwt = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}
    claims = jwt.get("claims") or {}
    if claims.get(TENANT_CLAIM) != tenant:
        return error(403, "forbidden", "the caller's tenant is not this tenant")
    granted = set(jwt.get("scopes") or str(claims.get("scope", "")).split())
    if not granted & scopes:
        return error(403, "forbidden", "the caller lacks the scope for this operation")
    return None


def get_item(tenant: str, sk: str) -> dict | None:
    return ddb.get_item(TableName=TABLE, Key={"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": sk}},
                        ConsistentRead=True).get("Item")


def plain(value: dict):
    """A DynamoDB attribute value as JSON."""
    (kind, v), = value.items()
    if kind == "NULL":
        return None
    if kind == "L":
        return [plain(x) for x in v]
    if kind == "M":
        return {k: plain(x) for k, x in v.items()}
    if kind == "N":
        return float(v) if "." in v else int(v)
    return v


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ the first requests
def lookup(event, tenant: str, scopes: set[str], sk: str, missing: tuple[str, str]):
    """The caller check, then one of the tenant's items: (item, None), or (None, the answer)."""
    denied = caller(event, tenant, scopes)
    if denied:
        return None, denied
    item = get_item(tenant, sk)
    return (item, None) if item is not None else (None, error(404, *missing))


def connection_status(event, tenant, product):
    item, answer = lookup(event, tenant, {"bridge:read", "bridge:admin"}, f"CONNECTION#{product}",
                          ("not_connected", f"no {product} connection for this tenant"))
    if answer:
        return answer
    fields = ("product", "deployment", "auth_type", "status", "site", "base_url", "acting_as", "scopes",
              "created_at", "updated_at", "last_verified_at")
    return respond(200, {f: plain(item[f]) if f in item else None for f in fields})


def jira_projects(event, tenant):
    item, answer = lookup(event, tenant, {"bridge:read"}, "CONNECTION#jira",
                          ("not_connected", "no jira connection for this tenant"))
    if answer:
        return answer
    auth = json.loads(secretsmanager.get_secret_value(SecretId=plain(item["secret_name"]))["SecretString"])
    base = plain(item["base_url"]).rstrip("/")
    jira = Jira(url=base, username=auth.get("username"), password=auth.get("password"), cloud=False,
                session=http)
    projects = jira.projects(included_archived=None) or []
    return respond(200, {"items": [{"id": p["id"], "key": p["key"], "name": p["name"],
                                    "url": f"{base}/browse/{p['key']}"}
                                   for p in sorted(projects, key=lambda p: p["name"])]})


def publication(event, tenant, publication_id):
    item, answer = lookup(event, tenant, {"bridge:read", "bridge:publish"}, f"PUBLICATION#{publication_id}",
                          ("not_found", f"no publication {publication_id} for this tenant"))
    return answer or respond(200, {k: plain(v) for k, v in item.items() if k not in ("pk", "sk")})


def delete_issue(event, tenant, key):
    _, answer = lookup(event, tenant, {"bridge:publish"}, f"ISSUE#{key}",
                       ("not_ours", f"{key} was not created by this integration for this tenant"))
    return answer or error(501, "not_implemented", "the Python equivalent deletes nothing")


def oauth_start(event, tenant, product):
    denied = caller(event, tenant, {"bridge:admin"})
    if denied:
        return denied
    try:
        return_url = json.loads(event.get("body") or "{}")["return_url"]
    except (ValueError, KeyError, TypeError):
        return error(400, "invalid_request", "return_url is required")
    target = urlsplit(return_url)
    if not any(target.scheme == a.scheme and target.netloc == a.netloc and target.path.startswith(a.path)
               for a in map(urlsplit, RETURN_URLS)):
        return error(400, "invalid_return_url", "return_url is not under an allowed URL")
    state_id = secrets.token_urlsafe(16)
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=STATE_TTL)
    payload = base64.urlsafe_b64encode(json.dumps(
        {"sid": state_id, "tenant": tenant, "target": product, "exp": int(expires.timestamp())}).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(STATE_KEY, payload, hashlib.sha256).digest()).rstrip(b"=")
    ddb.put_item(TableName=TABLE, Item={
        "pk": {"S": f"OAUTH_STATE#{state_id}"}, "sk": {"S": "STATE"}, "tenant_id": {"S": tenant},
        "product": {"S": product}, "return_url": {"S": return_url},
        "ttl": {"N": str(int(expires.timestamp()))}}, ConditionExpression="attribute_not_exists(pk)")
    query = urlencode({"response_type": "code", "client_id": ENV["BRIDGE_OAUTH_CLIENT_ID"],
                       "state": f"{payload.decode()}.{signature.decode()}",
                       "redirect_uri": ENV["BRIDGE_OAUTH_REDIRECT_URI"], "scope": SCOPES[product],
                       "audience": "api.atlassian.com", "prompt": "consent"})
    return respond(200, {"authorize_url": f"{AUTH_URL}/authorize?{query}", "expires_at": iso(expires)})


ROUTES = {
    "GET /v1/tenants/{tenant}/connections/{product}": lambda e, p: connection_status(e, p["tenant"], p["product"]),
    "GET /v1/tenants/{tenant}/jira/projects": lambda e, p: jira_projects(e, p["tenant"]),
    "GET /v1/tenants/{tenant}/publications/{id}": lambda e, p: publication(e, p["tenant"], p["id"]),
    "DELETE /v1/tenants/{tenant}/issues/{key}": lambda e, p: delete_issue(e, p["tenant"], p["key"]),
    "POST /v1/tenants/{tenant}/connections/{product}/oauth/start":
        lambda e, p: oauth_start(e, p["tenant"], p["product"]),
}


def handler(event, context):
    route = ROUTES.get(event.get("routeKey", ""))
    if route is None:
        return error(501, "not_implemented", "the Python equivalent answers only the bench's first requests")
    return route(event, event.get("pathParameters") or {})
