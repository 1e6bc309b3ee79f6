"""Event building and response mapping, as AWS does it:

- the API Gateway HTTP API (payload format 2.0) request event,
- the mapping of a function's payload-2.0 response to an HTTP response,
- the EventBridge event a rule target receives.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qsl

ACCOUNT_ID = "123456789012"
API_ID = "local"

# Content types API Gateway passes as text; every other body (including none declared) is base64.
_TEXT_TYPES = {"application/json", "application/javascript", "application/xml",
               "application/yaml", "application/x-yaml", "application/graphql"}


def is_text_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return (media.startswith("text/") or media in _TEXT_TYPES
            or media.endswith("+json") or media.endswith("+xml"))


def _clf_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")


def build_http_event(*, method: str, raw_path: str, raw_query: str,
                     headers: list[tuple[str, str]], body: bytes, route_key: str,
                     path_params: dict[str, str], authorizer: dict | None,
                     source_ip: str, request_id: str | None = None,
                     now: float | None = None) -> dict:
    """The payload-2.0 event for one request. ``headers`` are the raw (name, value) pairs."""
    now = time.time() if now is None else now
    request_id = request_id or str(uuid.uuid4())

    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value

    host = merged.get("host", "")
    merged.setdefault("x-forwarded-for", source_ip)
    merged.setdefault("x-forwarded-proto", "http")
    if ":" in host:
        merged.setdefault("x-forwarded-port", host.rsplit(":", 1)[1])
    merged.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}")
    domain_name = host.rsplit(":", 1)[0] if host else "localhost"

    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value

    context = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": _clf_time(now),
        "timeEpoch": int(now * 1000),
    }
    if authorizer is not None:
        context["authorizer"] = authorizer

    event: dict = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    # Like API Gateway: optional members are left out when empty.
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = dict(path_params)
    event["requestContext"] = context
    event["stageVariables"] = None
    if body:
        if is_text_content_type(merged.get("content-type")):
            try:
                event["body"] = body.decode("utf-8")
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


class MalformedResponse(ValueError):
    """The function answered, but not in a shape API Gateway can turn into an HTTP response."""


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def _header_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedResponse(f"header value must be a string, got {type(value).__name__}")


def map_function_response(payload: bytes) -> HttpResponse:
    """Payload format 2.0 response mapping. A JSON object with ``statusCode`` is a structured
    response; any other valid JSON becomes a 200 application/json response with the payload as
    body (API Gateway's rule for responses without statusCode)."""
    try:
        doc = json.loads(payload) if payload.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"response is not JSON: {exc}") from None
    if not (isinstance(doc, dict) and "statusCode" in doc):
        return HttpResponse(200, [("content-type", "application/json")], payload)

    status = doc["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponse(f"invalid statusCode {status!r}")

    headers: list[tuple[str, str]] = []
    single = doc.get("headers") or {}
    multi = doc.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedResponse("headers and multiValueHeaders must be objects")
    for name, value in single.items():
        headers.append((str(name), _header_value(value)))
    seen = {name.lower() for name in single}
    for name, values in multi.items():
        if name.lower() in seen:
            continue  # lambda_http sends both; `headers` already carries it
        if not isinstance(values, list):
            raise MalformedResponse("multiValueHeaders values must be lists")
        headers.extend((str(name), _header_value(v)) for v in values)
    cookies = doc.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponse("cookies must be a list")
    headers.extend(("set-cookie", str(c)) for c in cookies)

    body = doc.get("body")
    if body is None:
        raw = b""
    elif not isinstance(body, str):
        raise MalformedResponse("body must be a string")
    elif doc.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise MalformedResponse(f"body is not valid base64: {exc}") from None
    else:
        raw = body.encode("utf-8")
    return HttpResponse(status, headers, raw)


class BadEventEntry(ValueError):
    """A PutEvents entry EventBridge would reject."""


def build_eventbridge_event(entry: dict, *, region: str, now: float | None = None) -> dict:
    """The event a rule target receives for one PutEvents entry."""
    now = time.time() if now is None else now
    for key in ("Source", "DetailType", "Detail"):
        if key not in entry:
            raise BadEventEntry(f"entry lacks {key}")
    detail = entry["Detail"]
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except json.JSONDecodeError:
            raise BadEventEntry("Detail is malformed: not valid JSON") from None
    if not isinstance(detail, dict):
        raise BadEventEntry("Detail is malformed: must be a JSON object")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": str(entry["DetailType"]),
        "source": str(entry["Source"]),
        "account": ACCOUNT_ID,
        "time": datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(entry.get("Resources") or []),
        "detail": detail,
    }
