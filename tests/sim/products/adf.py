"""Atlassian Document Format checks (Jira Cloud REST v3 `description` and other rich-text fields).

The checks are the ADF JSON schema's cheap ones: a `doc` of version 1 at the top; every node a
known type with only the members that type has; children of the types the parent allows (block
nodes in the doc, inline nodes in paragraphs/headings, list items in lists, ...); required attrs
(`heading.level` 1..6, `mention.id`, `link.href`, ...); text nodes with a non-empty `text`, marks
of known types, none twice, `code` combined with `link` only. With the quirk
`adf_reject_newlines` (default on) a newline inside a text node outside `codeBlock` is refused
too (paragraph breaks are separate nodes, line breaks are `hardBreak`).

`adf_error(doc, reject_newlines)` returns None or why the document is refused.
"""

from __future__ import annotations

BLOCK = {"paragraph", "heading", "bulletList", "orderedList", "codeBlock", "blockquote", "rule",
         "table", "panel", "mediaSingle", "mediaGroup", "expand", "taskList", "decisionList",
         "blockCard", "embedCard", "layoutSection", "extension", "bodiedExtension"}
INLINE = {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "placeholder",
          "mediaInline", "inlineExtension"}
LIST_ITEM_CONTENT = {"paragraph", "bulletList", "orderedList", "codeBlock", "mediaSingle", "taskList"}
CELL_CONTENT = BLOCK - {"table", "layoutSection", "bodiedExtension"} | {"nestedExpand"}

CHILDREN: dict[str, set[str]] = {
    "doc": BLOCK,
    "paragraph": INLINE,
    "heading": INLINE,
    "bulletList": {"listItem"},
    "orderedList": {"listItem"},
    "listItem": LIST_ITEM_CONTENT,
    "codeBlock": {"text"},
    "blockquote": {"paragraph", "bulletList", "orderedList", "codeBlock", "mediaGroup", "mediaSingle"},
    "panel": {"paragraph", "heading", "bulletList", "orderedList", "codeBlock", "mediaGroup",
              "mediaSingle", "rule", "blockCard", "decisionList", "taskList"},
    "table": {"tableRow"},
    "tableRow": {"tableHeader", "tableCell"},
    "tableHeader": CELL_CONTENT,
    "tableCell": CELL_CONTENT,
    "mediaSingle": {"media"},
    "mediaGroup": {"media"},
    "expand": BLOCK - {"expand", "layoutSection"} | {"nestedExpand"},
    "nestedExpand": BLOCK - {"expand", "layoutSection", "table", "bodiedExtension"},
    "taskList": {"taskItem", "taskList"},
    "taskItem": INLINE,
    "decisionList": {"decisionItem"},
    "decisionItem": INLINE,
    "layoutSection": {"layoutColumn"},
    "layoutColumn": BLOCK - {"layoutSection"},
    "bodiedExtension": BLOCK - {"bodiedExtension", "layoutSection"},
}
LEAVES = {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "placeholder",
          "mediaInline", "inlineExtension", "rule", "media", "blockCard", "embedCard", "extension"}
KNOWN = set(CHILDREN) | LEAVES
NON_EMPTY = {"bulletList", "orderedList", "listItem", "table", "tableRow", "mediaSingle",
             "mediaGroup", "taskList", "decisionList", "layoutSection", "blockquote", "panel",
             "tableHeader", "tableCell", "layoutColumn", "expand", "nestedExpand"}
REQUIRED_ATTRS = {"heading": ("level",), "mention": ("id",), "emoji": ("shortName",),
                  "panel": ("panelType",), "date": ("timestamp",), "status": ("text", "color"),
                  "media": ("type",), "taskItem": ("localId", "state"), "taskList": ("localId",),
                  "decisionItem": ("localId", "state"), "decisionList": ("localId",),
                  "layoutColumn": ("width",), "placeholder": ("text",),
                  "extension": ("extensionKey", "extensionType"),
                  "bodiedExtension": ("extensionKey", "extensionType"),
                  "inlineExtension": ("extensionKey", "extensionType")}
PANEL_TYPES = {"info", "note", "tip", "warning", "error", "success", "custom"}
MARKS = {"strong", "em", "code", "strike", "underline", "link", "textColor", "subsup",
         "backgroundColor", "annotation", "border"}
NODE_MARKS = {"alignment", "indentation", "breakout", "dataConsumer", "fragment"}
MAX_DEPTH = 50


class AdfError(Exception):
    pass


def adf_error(doc, reject_newlines: bool = True) -> str | None:
    try:
        if not isinstance(doc, dict):
            raise AdfError("the value is not an object")
        if doc.get("type") != "doc":
            raise AdfError("the top node must be of type 'doc'")
        if doc.get("version") != 1 or isinstance(doc.get("version"), bool):
            raise AdfError("'doc' needs 'version': 1")
        extra = set(doc) - {"type", "version", "content"}
        if extra:
            raise AdfError(f"'doc' has unknown member '{sorted(extra)[0]}'")
        if not isinstance(doc.get("content"), list):
            raise AdfError("'doc' needs a 'content' array")
        for child in doc["content"]:
            _node(child, "doc", 1, reject_newlines, in_code=False)
    except AdfError as e:
        return str(e)
    return None


def _marks(node: dict, where: str) -> None:
    marks = node["marks"]
    if not isinstance(marks, list):
        raise AdfError(f"{where}: 'marks' must be an array")
    seen = set()
    for m in marks:
        if not isinstance(m, dict) or not isinstance(m.get("type"), str):
            raise AdfError(f"{where}: every mark needs a 'type'")
        t = m["type"]
        allowed = MARKS if node["type"] == "text" else NODE_MARKS
        if t not in allowed:
            raise AdfError(f"{where}: unknown mark '{t}'")
        if set(m) - {"type", "attrs"}:
            raise AdfError(f"{where}: mark '{t}' has unknown members")
        if t in seen:
            raise AdfError(f"{where}: mark '{t}' appears twice")
        seen.add(t)
        attrs = m.get("attrs", {})
        if not isinstance(attrs, dict):
            raise AdfError(f"{where}: mark '{t}' attrs must be an object")
        if t == "link" and not isinstance(attrs.get("href"), str):
            raise AdfError(f"{where}: a 'link' mark needs attrs.href")
        if t in ("textColor", "backgroundColor") and not isinstance(attrs.get("color"), str):
            raise AdfError(f"{where}: a '{t}' mark needs attrs.color")
        if t == "subsup" and attrs.get("type") not in ("sub", "sup"):
            raise AdfError(f"{where}: a 'subsup' mark needs attrs.type sub or sup")
    if "code" in seen and seen - {"code", "link"}:
        raise AdfError(f"{where}: the 'code' mark can only be combined with 'link'")


def _node(node, parent: str, depth: int, reject_newlines: bool, in_code: bool) -> None:
    if depth > MAX_DEPTH:
        raise AdfError("the document is nested too deeply")
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise AdfError(f"every node in '{parent}' needs a 'type'")
    t = node["type"]
    where = f"node '{t}'"
    if t not in KNOWN:
        raise AdfError(f"unknown node type '{t}'")
    if t not in CHILDREN[parent]:
        raise AdfError(f"'{t}' is not allowed inside '{parent}'")
    if t == "text":
        extra = set(node) - {"type", "text", "marks"}
        if extra:
            raise AdfError(f"{where} has unknown member '{sorted(extra)[0]}'")
        text = node.get("text")
        if not isinstance(text, str) or text == "":
            raise AdfError("a text node needs a non-empty 'text'")
        if reject_newlines and not in_code and ("\n" in text or "\r" in text):
            raise AdfError("a text node contains a newline (use a new paragraph or 'hardBreak')")
        if "marks" in node:
            if in_code and node["marks"]:
                raise AdfError("text in a 'codeBlock' cannot have marks")
            _marks(node, where)
        return
    extra = set(node) - {"type", "content", "attrs", "marks"}
    if extra:
        raise AdfError(f"{where} has unknown member '{sorted(extra)[0]}'")
    if "marks" in node:
        _marks(node, where)
    attrs = node.get("attrs", {})
    if not isinstance(attrs, dict):
        raise AdfError(f"{where}: 'attrs' must be an object")
    for a in REQUIRED_ATTRS.get(t, ()):
        if attrs.get(a) in (None, ""):
            raise AdfError(f"{where} needs attrs.{a}")
    if t == "heading":
        lvl = attrs["level"]
        if isinstance(lvl, bool) or not isinstance(lvl, int) or not 1 <= lvl <= 6:
            raise AdfError("heading attrs.level must be 1..6")
    if t == "panel" and attrs["panelType"] not in PANEL_TYPES:
        raise AdfError(f"unknown panelType '{attrs['panelType']}'")
    if t == "orderedList" and "order" in attrs:
        o = attrs["order"]
        if isinstance(o, bool) or not isinstance(o, int) or o < 0:
            raise AdfError("orderedList attrs.order must be a non-negative integer")
    if t in ("taskItem", "decisionItem") and attrs["state"] not in (("TODO", "DONE") if t == "taskItem" else ("DECIDED", "UNDECIDED")):
        raise AdfError(f"{where}: invalid attrs.state")
    if t in LEAVES:
        if "content" in node:
            raise AdfError(f"{where} cannot have 'content'")
        return
    content = node.get("content", [])
    if not isinstance(content, list):
        raise AdfError(f"{where}: 'content' must be an array")
    if t in NON_EMPTY and not content:
        raise AdfError(f"{where} needs at least one child")
    if t == "listItem" and isinstance(content[0], dict) \
            and content[0].get("type") not in ("paragraph", "mediaSingle", "codeBlock"):
        raise AdfError("a listItem must start with a paragraph, mediaSingle or codeBlock")
    for child in content:
        _node(child, t, depth + 1, reject_newlines, in_code or t == "codeBlock")
