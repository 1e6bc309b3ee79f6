"""A small JQL: enough to find the issues a client wrote, with Jira's answers for what it refuses.

Supported: clauses `field OP value` joined with AND / OR / NOT and parentheses, then an optional
`ORDER BY field [ASC|DESC], ...`. Fields and keywords are case-insensitive; values are words or
quoted strings ("..." or '...', backslash escapes).

| field | operators | values |
|---|---|---|
| `project` | `=`, `!=`, `in`, `not in` | key (any case), id or name; an unknown one is a 400 |
| `labels` | `=`, `!=`, `in`, `not in`, `is [not] EMPTY` | any label (exact match) |
| `key` / `issuekey` / `id` | `=`, `!=`, `in`, `not in` | an issue key or id |
| `issuetype` / `type` | `=`, `!=`, `in`, `not in` | name (any case) or id |
| `parent` | `=`, `in` | an issue key or id |
| `status` | `=`, `!=`, `in`, `not in` | a status name (any case) or id |
| `statusCategory` / `category` | `=`, `!=`, `in`, `not in` | a category key, name or id |
| `updated` / `created` (and `…Date`) | `=`, `!=`, `<`, `>`, `<=`, `>=` | `"yyyy/MM/dd HH:mm"`, `"yyyy-MM-dd HH:mm"`, `"yyyy/MM/dd"`, `"yyyy-MM-dd"` (in the user's time zone: UTC here), or relative `"-5m"`, `"-2h"`, `"-1d"`, `"-1w"` (from now, on the sim clock) |

Dates compare at the minute, as Jira's do: an absolute value is the start of its minute.

ORDER BY: `key`, `id`, `created`, `updated`, `summary`. Other fields Jira knows (assignee,
text, ...) and JQL functions raise `JqlUnsupported` (the handlers answer 501); unknown
fields and syntax errors raise `JqlError` with Jira's kind of message (400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
SUPPORTED = {"project": "project", "labels": "labels", "key": "key", "issuekey": "key",
             "id": "key", "issuetype": "issuetype", "type": "issuetype", "parent": "parent",
             "status": "status", "statuscategory": "statuscategory", "category": "statuscategory",
             "updated": "updated", "updateddate": "updated", "created": "created",
             "createddate": "created"}
DATE_FIELDS = {"updated", "created"}
KNOWN_UNSUPPORTED = {"assignee", "reporter", "creator", "summary", "description", "text",
                     "priority", "component", "resolution", "fixversion",
                     "affectedversion", "duedate", "due", "sprint", "epic link",
                     "watcher", "comment", "environment", "resolved", "labels_old", "filter",
                     "level", "votes", "lastviewed"}
ORDERABLE = {"key": "key", "issuekey": "key", "id": "key", "created": "created",
             "createddate": "created", "updated": "updated", "updateddate": "updated",
             "summary": "summary"}
OPERATORS = ("!=", "!~", "<=", ">=", "=", "~", "<", ">")
VALID_OPERATORS = ("The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', "
                   "'NOT IN', 'IS' and 'IS NOT'.")


class JqlError(Exception):
    """400: `errorMessages: [message]`."""


class JqlUnsupported(Exception):
    """Valid JQL the simulator does not evaluate (answered 501)."""


@dataclass
class Tok:
    kind: str        # word | str | op | lp | rp | comma | eof
    value: str
    pos: int         # 0-based character offset

    def is_kw(self, kw: str) -> bool:
        return self.kind == "word" and self.value.lower() == kw


def _where(pos: int) -> str:
    return f"(line 1, character {pos + 1})"


def tokenize(s: str) -> list[Tok]:
    out: list[Tok] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c.isspace():
            i += 1
            continue
        if c in "\"'":
            j = i + 1
            buf = []
            while j < len(s) and s[j] != c:
                if s[j] == "\\" and j + 1 < len(s):
                    j += 1
                    buf.append({"n": "\n", "t": "\t", "r": "\r"}.get(s[j], s[j]))
                else:
                    buf.append(s[j])
                j += 1
            if j >= len(s):
                raise JqlError(f"Error in the JQL Query: The quoted string '{s[i + 1:]}' has not been "
                               f"completed. {_where(i)}")
            out.append(Tok("str", "".join(buf), i))
            i = j + 1
            continue
        if c == "(":
            out.append(Tok("lp", c, i))
            i += 1
            continue
        if c == ")":
            out.append(Tok("rp", c, i))
            i += 1
            continue
        if c == ",":
            out.append(Tok("comma", c, i))
            i += 1
            continue
        op = next((o for o in OPERATORS if s.startswith(o, i)), None)
        if op:
            out.append(Tok("op", op, i))
            i += len(op)
            continue
        if c == "!":
            raise JqlError(f"Error in the JQL Query: The character '!' is a reserved JQL character. "
                           f"You must enclose it in a string or use the escape '\\u0021' instead. {_where(i)}")
        m = re.compile(r"[^\s=!<>~(),\"']+").match(s, i)
        out.append(Tok("word", m.group(0), i))
        i = m.end()
    out.append(Tok("eof", "", len(s)))
    return out


class Parser:
    def __init__(self, text: str):
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def parse(self):
        expr = None
        t = self.peek()
        if t.kind != "eof" and not t.is_kw("order"):
            expr = self.or_expr()
        order = []
        if self.peek().is_kw("order"):
            self.take()
            if not self.peek().is_kw("by"):
                t = self.peek()
                raise JqlError(f"Error in the JQL Query: Expecting 'by' but got '{t.value}'. {_where(t.pos)}")
            self.take()
            order = self.order_list()
        t = self.peek()
        if t.kind != "eof":
            raise JqlError(f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got '{t.value}'. "
                           f"{_where(t.pos)}")
        return expr, order

    def or_expr(self):
        parts = [self.and_expr()]
        while self.peek().is_kw("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def and_expr(self):
        parts = [self.not_expr()]
        while self.peek().is_kw("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def not_expr(self):
        t = self.peek()
        if t.is_kw("not"):
            self.take()
            return ("not", self.not_expr())
        if t.kind == "lp":
            self.take()
            e = self.or_expr()
            if self.peek().kind != "rp":
                u = self.peek()
                raise JqlError(f"Error in the JQL Query: Expecting ')' but got '{u.value or 'EOF'}'. {_where(u.pos)}")
            self.take()
            return e
        return self.clause()

    def clause(self):
        t = self.take()
        if t.kind not in ("word", "str") or (t.kind == "word" and t.value.lower() in KEYWORDS):
            raise JqlError(f"Error in the JQL Query: Expecting a field name but got '{t.value or 'EOF'}'. "
                           f"{_where(t.pos)}")
        name = t.value.lower()
        if self.peek().kind == "lp":
            raise JqlUnsupported(f"JQL function {t.value}()")
        if name not in SUPPORTED:
            if name in KNOWN_UNSUPPORTED or name.startswith("cf[") or name.startswith("customfield_"):
                raise JqlUnsupported(f"JQL field '{t.value}'")
            raise JqlError(f"Field '{t.value}' does not exist or you do not have permission to view it.")
        field = SUPPORTED[name]
        op_tok = self.take()
        if op_tok.kind == "op":
            op = op_tok.value
            if field in DATE_FIELDS and op in ("=", "!=", "<", ">", "<=", ">="):
                return ("cmp", field, op, [self.value()], t.value)
            if op in ("<", ">", "<=", ">=") and field not in DATE_FIELDS:
                raise JqlError(f"The operator '{op}' is not supported by the '{t.value}' field.")
            if op not in ("=", "!="):
                raise JqlUnsupported(f"operator '{op}' on '{t.value}'")
            return ("cmp", field, op, [self.value()], t.value)
        if op_tok.is_kw("in"):
            return ("cmp", field, "in", self.value_list(), t.value)
        if op_tok.is_kw("not"):
            nxt = self.take()
            if not nxt.is_kw("in"):
                raise JqlError(f"Error in the JQL Query: Expecting 'IN' but got '{nxt.value}'. {_where(nxt.pos)}")
            return ("cmp", field, "not in", self.value_list(), t.value)
        if op_tok.is_kw("is"):
            negate = False
            if self.peek().is_kw("not"):
                self.take()
                negate = True
            e = self.take()
            if not (e.is_kw("empty") or e.is_kw("null")):
                raise JqlError(f"Error in the JQL Query: Expecting 'EMPTY' or 'NULL' but got '{e.value}'. "
                               f"{_where(e.pos)}")
            if field != "labels":
                raise JqlUnsupported(f"IS EMPTY on '{t.value}'")
            return ("cmp", field, "is not empty" if negate else "is empty", [], t.value)
        raise JqlError(f"Error in the JQL Query: Expecting operator but got '{op_tok.value or 'EOF'}'. "
                       f"{VALID_OPERATORS} {_where(op_tok.pos)}")

    def value(self) -> str:
        t = self.take()
        if t.kind == "str":
            return t.value
        if t.kind == "word":
            if t.value.lower() in KEYWORDS:
                raise JqlError(f"Error in the JQL Query: Expecting either a value, list or function but got "
                               f"'{t.value}'. You must surround '{t.value}' in quotation marks to use it as "
                               f"a value. {_where(t.pos)}")
            if self.peek().kind == "lp":
                raise JqlUnsupported(f"JQL function {t.value}()")
            return t.value
        raise JqlError(f"Error in the JQL Query: Expecting either a value, list or function but got "
                       f"'{t.value or 'EOF'}'. {_where(t.pos)}")

    def value_list(self) -> list[str]:
        t = self.take()
        if t.kind != "lp":
            raise JqlError(f"Error in the JQL Query: Expecting '(' but got '{t.value or 'EOF'}'. {_where(t.pos)}")
        vals = [self.value()]
        while self.peek().kind == "comma":
            self.take()
            vals.append(self.value())
        t = self.take()
        if t.kind != "rp":
            raise JqlError(f"Error in the JQL Query: Expecting ')' but got '{t.value or 'EOF'}'. {_where(t.pos)}")
        return vals

    def order_list(self) -> list[tuple[str, bool]]:
        out = []
        while True:
            t = self.take()
            if t.kind not in ("word", "str"):
                raise JqlError(f"Error in the JQL Query: Expecting a field name but got '{t.value or 'EOF'}'. "
                               f"{_where(t.pos)}")
            name = t.value.lower()
            if name not in ORDERABLE:
                if name in SUPPORTED or name in KNOWN_UNSUPPORTED:
                    raise JqlUnsupported(f"ORDER BY {t.value}")
                raise JqlError(f"Field '{t.value}' does not exist or you do not have permission to view it.")
            desc = False
            if self.peek().is_kw("asc") or self.peek().is_kw("desc"):
                desc = self.take().value.lower() == "desc"
            out.append((ORDERABLE[name], desc))
            if self.peek().kind != "comma":
                return out
            self.take()


def parse(text: str):
    """-> (expression or None when unrestricted, [(order field, descending)])."""
    return Parser(text or "").parse()


# --------------------------------------------------------------------------- evaluation
def bind(expr, resolve):
    """Check every value of the expression with `resolve(field, value, label)` (which raises
    JqlError for values that do not exist, and returns the value to compare with)."""
    if expr is None:
        return None
    kind = expr[0]
    if kind in ("and", "or"):
        return (kind, [bind(e, resolve) for e in expr[1]])
    if kind == "not":
        return ("not", bind(expr[1], resolve))
    _, field, op, values, label = expr
    return ("cmp", field, op, [resolve(field, v, label) for v in values], label)


def matches(expr, facts) -> bool:
    """`facts(field)` -> the issue's set of comparable values for that field."""
    if expr is None:
        return True
    kind = expr[0]
    if kind == "and":
        return all(matches(e, facts) for e in expr[1])
    if kind == "or":
        return any(matches(e, facts) for e in expr[1])
    if kind == "not":
        return not matches(expr[1], facts)
    _, field, op, values, _ = expr
    have = facts(field)
    if field in DATE_FIELDS:
        # one timestamp; the bound value is the minute it names
        (at,) = have
        bound = values[0]
        return {"=": at // 60 == bound // 60, "!=": at // 60 != bound // 60, "<": at < bound,
                ">": at >= bound + 60, "<=": at < bound + 60, ">=": at >= bound}[op]
    wanted = set(values)
    if op in ("=", "in"):
        return bool(have & wanted)
    if op in ("!=", "not in"):
        # as Jira: a clause with a negative operator never matches an empty field
        return bool(have) and not (have & wanted)
    if op == "is empty":
        return not have
    if op == "is not empty":
        return bool(have)
    raise AssertionError(op)


_RELATIVE = re.compile(r"^([+-]?)(\d+)([mhdw])$")
_ABSOLUTE = (("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d"))


def parse_date(value: str, label: str, now: float) -> float:
    """A JQL date value -> epoch seconds at the start of its minute (UTC, the sim user's zone);
    relative values count from `now`. Anything else is Jira's 400."""
    import datetime as _dt
    m = _RELATIVE.match(value.strip())
    if m:
        unit = {"m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(3)]
        delta = int(m.group(2)) * unit
        return now - delta if m.group(1) != "+" else now + delta
    for form in _ABSOLUTE:
        try:
            d = _dt.datetime.strptime(value.strip(), form).replace(tzinfo=_dt.timezone.utc)
            return d.timestamp()
        except ValueError:
            continue
    raise JqlError(f"Date value '{value}' for field '{label}' is invalid. Valid formats include: "
                   "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
                   "format e.g. '-5d', '4w 2d'.")


def labels_of(expr) -> list[str]:
    """The labels a parsed expression names (for the search counter)."""
    if expr is None:
        return []
    if expr[0] in ("and", "or"):
        return [v for e in expr[1] for v in labels_of(e)]
    if expr[0] == "not":
        return labels_of(expr[1])
    return list(expr[3]) if expr[1] == "labels" else []
