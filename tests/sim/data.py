"""Seed data: the consenting user and each site's product content.

Deterministic (no randomness) so tests can assert on it. `seed_spaces(state, site_id, n)`
scales a site to any number of spaces (later work uses 600).
"""

from __future__ import annotations

import datetime as _dt
import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .state import Site, State

DEFAULT_ACCOUNT_ID = "712020:5f3c1e2a-9b7d-4c8e-a1f0-3d2b6c4e8a90"
DEFAULT_SPACE_COUNT = 5
_EPOCH = _dt.datetime(2024, 1, 15, 9, 30, 0, tzinfo=_dt.timezone.utc)


def seed_defaults(state: "State") -> None:
    user = {
        "accountId": DEFAULT_ACCOUNT_ID,
        "accountType": "atlassian",
        "emailAddress": "mia.krystof@example.com",
        "displayName": "Mia Krystof",
        "publicName": "Mia",
        "active": True,
        "timeZone": "Europe/Berlin",
        "locale": "en_US",
    }
    state.users = {user["accountId"]: user}
    state.current_account_id = user["accountId"]


def seed_site(state: "State", site: "Site") -> None:
    """Give a new site its default content (existing content is kept)."""
    if "confluence" in site.products and site.id not in state.spaces:
        seed_spaces(state, site.id, DEFAULT_SPACE_COUNT)


def space_key(i: int) -> str:
    """0 -> 'SPA', 1 -> 'SPB', ... then 'SPAA'...: unique upper-case keys."""
    letters = string.ascii_uppercase
    suffix = ""
    n = i
    while True:
        suffix = letters[n % 26] + suffix
        n = n // 26 - 1
        if n < 0:
            break
    return "SP" + suffix


def make_space(site_id: str, i: int, account_id: str) -> dict:
    key = space_key(i)
    sid = 98300 + i * 7   # numeric ids, ascending with i, not contiguous
    created = _EPOCH + _dt.timedelta(hours=i)
    return {
        "id": str(sid),
        "key": key,
        "name": f"Space {key[2:]} {('Team', 'Engineering', 'Retrospectives', 'Docs')[i % 4]}",
        "type": "global",
        "status": "current",
        "authorId": account_id,
        "spaceOwnerId": account_id,
        "currentActiveAlias": key,
        "createdAt": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "homepageId": str(sid * 10 + 1),
        "description": {"plain": {"representation": "plain", "value": f"Space {key} for tests"},
                        "view": {"representation": "view", "value": f"<p>Space {key} for tests</p>"}},
        "icon": {"path": f"/wiki/download/attachments/{sid}/{key}?version=1&api=v2",
                 "apiDownloadLink": f"/wiki/rest/api/space/{key}/icon"},
        "labels": [],
        "_links": {"webui": f"/spaces/{key}"},
    }


def seed_spaces(state: "State", site_id: str, n: int) -> list[dict]:
    spaces = [make_space(site_id, i, state.current_account_id) for i in range(n)]
    state.spaces[site_id] = spaces
    return spaces
