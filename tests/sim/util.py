"""Small response helpers shared by the modules."""

from __future__ import annotations

import base64
import binascii
import html
import json
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

JSON_CT = "application/json;charset=UTF-8"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode("utf-8"),
                        headers={"Content-Type": JSON_CT, **(headers or {})})


def html_response(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body.encode("utf-8"),
                        headers={"Content-Type": "text/html;charset=UTF-8", **(headers or {})})


def html_page(title: str, inner: str) -> str:
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>"
            + html.escape(title) + "</title><style>body{font-family:sans-serif;max-width:40em;"
            "margin:3em auto}li{margin:.2em 0}button{margin-right:1em;padding:.4em 1.2em}</style>"
            "</head><body>" + inner + "</body></html>")


def public_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def sim_error(message: str, status: int = 400) -> web.Response:
    """Error from the control API (not an Atlassian shape)."""
    return json_response({"error": message}, status=status)


def basic_credentials(request: web.Request, *, client_auth: bool = False) -> tuple[str, str] | None | bool:
    """(user, secret) from `Authorization: Basic`: None when there is no such header, False when it
    is malformed (not base64, not UTF-8, no colon). The one Basic parser of the simulator.

    Product APIs (``client_auth=False``: Cloud API tokens, DC passwords) take the two parts as they
    are, and a header with another scheme is None (Bearer is checked elsewhere). Token endpoints
    (``client_auth=True``: the OAuth 2.0 authorization server, the OIDC provider) authenticate a
    client: its id and secret were form-urlencoded before they were joined (RFC 6749 2.3.1), and
    any other scheme there is a failed client authentication (False)."""
    auth = request.headers.get("Authorization")
    if not auth:
        return None
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic":
        return False if client_auth else None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    if ":" not in decoded:
        return False
    user, _, secret = decoded.partition(":")
    if client_auth:
        return unquote_plus(user), unquote_plus(secret)
    return user, secret
