"""Request bodies of the write endpoints: JSON and multipart/form-data, and the checks every
product makes before it looks at the content (media type, well-formed JSON, known members).

Nothing here answers: callers render the product's own error shape from `BodyError`.
"""

from __future__ import annotations

import html.entities
import json
import re
import xml.parsers.expat
from dataclasses import dataclass

from aiohttp import web


class BodyError(Exception):
    """The request body cannot be used: `status` 400 (malformed) or 415 (wrong media type)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


async def read_json(request: web.Request) -> object:
    """The JSON body (any JSON value). 415 unless the media type is JSON; 400 when it does not
    parse (an empty body included)."""
    ctype = request.content_type or ""
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise BodyError(f"Unsupported media type '{ctype or 'none'}': send application/json.", 415)
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BodyError("The request body is not valid UTF-8.") from None
    except json.JSONDecodeError as e:
        if not raw.strip():
            raise BodyError("No content to map due to end-of-input") from None
        raise BodyError(f"Unexpected character in JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def unknown_members(obj: dict, allowed) -> list[str]:
    return [k for k in obj if k not in allowed]


def unrecognized(name: str, bean: str) -> str:
    """Jackson's message for a member the bean does not have (as Atlassian's REST layer shows it)."""
    return f'Unrecognized field "{name}" (Class {bean}), not marked as ignorable'


def is_id(value) -> bool:
    """An id as the products take it: a string of digits, or a JSON number (Jackson coerces)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and value.isdigit()


# --------------------------------------------------------------------------- multipart
@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


async def read_multipart(request: web.Request) -> list[Part]:
    """Every part of a multipart/form-data body. 415 for another media type, 400 when it does
    not parse."""
    if request.content_type != "multipart/form-data":
        raise BodyError(f"Unsupported media type '{request.content_type or 'none'}': "
                        "send multipart/form-data.", 415)
    parts: list[Part] = []
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not hasattr(part, "read"):        # a nested multipart: not what a form sends
                raise BodyError("Nested multipart bodies are not supported.")
            data = bytes(await part.read(decode=False))
            parts.append(Part(part.name or "", part.filename,
                              part.headers.get("Content-Type"), data))
    except BodyError:
        raise
    except (AssertionError, ValueError, RuntimeError) as e:
        raise BodyError(f"Malformed multipart/form-data body: {e}") from None
    return parts


# --------------------------------------------------------------------------- storage format
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}


def storage_error(value: str) -> str | None:
    """Confluence parses a storage-format body as XHTML (HTML named entities allowed, `ac:`/`ri:`
    elements); a body that is not well-formed is refused with "Error parsing xhtml: ..."."""
    def entity(m: re.Match) -> str:
        name = m.group(1)
        if name in _XML_ENTITIES:
            return m.group(0)
        cp = html.entities.name2codepoint.get(name)
        return f"&#{cp};" if cp is not None else m.group(0)
    doc = "<sim-storage-root>" + _ENTITY.sub(entity, value) + "</sim-storage-root>"
    parser = xml.parsers.expat.ParserCreate()
    try:
        parser.Parse(doc, True)
    except xml.parsers.expat.ExpatError as e:
        col = e.offset - len("<sim-storage-root>") if e.lineno == 1 else e.offset
        return (f"Error parsing xhtml: {xml.parsers.expat.ErrorString(e.code)} "
                f"[row,col]:[{e.lineno},{max(col, 0) + 1}]")
    return None
