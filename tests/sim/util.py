"""Small response helpers shared by the modules."""

from __future__ import annotations

import html
import json
from typing import Any

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
