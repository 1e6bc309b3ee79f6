"""Seed data: the consenting user, Cloud API-token and DC accounts, and each deployment's
generated product content (users, Jira projects with issue types, fields and components,
Confluence spaces with pages).

Everything is deterministic (no randomness): the same sizes always give the same data, so tests
can assert on it and compare a client's paginated results with `GET /_sim/data/{kind}`.
A dataset is built on first use (`State.cloud_data(site)`, `State.dc_data()`), never at reset.

Default sizes (`DEFAULT_SIZES` in state.py): 260 live projects (+ 1 archived per 50), 600
spaces, 1,200 users. Notable members:
  - project `REQ` ("Requirements"): its Task has the required custom field `customfield_10050`
    "Team" (select, no default) and a required `priority` (which has a default);
  - components: every 5th project has none; projects #3, #11 and #42 have 55, 73 and 120;
  - Cloud: every 10th project (index 4, 14, ...) is team-managed with project-scoped issue types;
  - users: display names repeat after 1,147 users (same name, different account/email);
    Cloud: every 5th user (index 3, 8, ...) hides its email; every 43rd (index 5, 48, ...) is
    inactive (never assignable);
  - spaces: every 100th (index 99, 199, ...) is a personal space with a `~` key; pages per space:
    "<space name> Home" (the homepage), "Meeting notes", "Retrospectives" (every 3rd space),
    "Health Checks" (every 4th), "Q&A / Notes + Ideas" (every 10th).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import string
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .state import State

DEFAULT_ACCOUNT_ID = "712020:5f3c1e2a-9b7d-4c8e-a1f0-3d2b6c4e8a90"
_EPOCH = _dt.datetime(2024, 1, 15, 9, 30, 0, tzinfo=_dt.timezone.utc)
_NS = uuid.UUID("6f0e6d8c-3b1a-4c5e-9f7d-2a4b6c8d0e1f")

FIRST = ["Aiden", "Amara", "Ben", "Carla", "Chen", "Dana", "Diego", "Elena", "Emil", "Farah",
         "Felix", "Grace", "Hana", "Ivan", "Jonas", "Julia", "Kai", "Lara", "Leo", "Mai", "Marek",
         "Nadia", "Noah", "Olga", "Omar", "Paula", "Priya", "Quinn", "Rafael", "Rosa", "Sami",
         "Sofia", "Tariq", "Uma", "Viktor", "Wen", "Yara"]
LAST = ["Abbott", "Baker", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
        "Ivanova", "Jensen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov",
        "Quinteros", "Rossi", "Schmidt", "Tanaka", "Umarov", "Varga", "Weber", "Xu", "Yilmaz",
        "Zhang", "Novak", "Silva", "Horvat", "Costa", "Lindqvist"]
TIME_ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "UTC",
              "America/Los_Angeles", "Europe/London"]
LOCALES = ["en_US", "de_DE", "en_GB", "ja_JP", "fr_FR"]

ADJ = ["Agile", "Bright", "Cobalt", "Daring", "Eager", "Frosty", "Golden", "Hidden", "Iron",
       "Jade", "Keen", "Lunar", "Mighty", "Noble", "Onyx", "Polar", "Quiet", "Rapid", "Silver",
       "Tidal", "Ultra", "Vivid", "Wild", "Young", "Zesty"]
NOUN = ["Falcon", "Harbor", "Comet", "Summit", "Beacon", "Canyon", "Delta", "Ember", "Forge",
        "Galaxy", "Horizon", "Island", "Jungle", "Kernel", "Lantern", "Meadow", "Nebula",
        "Orbit", "Pioneer", "Quarry", "River", "Sparrow", "Tundra", "Voyage", "Willow"]
COMPONENT_WORDS = ["API", "Backend", "Billing", "Docs", "Frontend", "Infra", "Mobile", "Search",
                   "Security", "UX", "Data", "Auth", "Reports", "Notifications", "Admin"]
SPACE_KINDS = ("Team", "Engineering", "Retrospectives", "Docs")

REQ_KEY = "REQ"
REQ_INDEX = 17
TEAM_FIELD_ID = "customfield_10050"
TEAM_OPTIONS = [{"id": "10100", "value": "Platform"}, {"id": "10101", "value": "Payments"},
                {"id": "10102", "value": "Mobile"}, {"id": "10103", "value": "Data"}]
STORY_POINTS_FIELD_ID = "customfield_10016"
BIG_COMPONENT_PROJECTS = {3: 55, 11: 73, 42: 120}

PRIORITIES = [
    {"id": "1", "name": "Highest", "statusColor": "#d04437", "icon": "highest",
     "description": "This problem will block progress."},
    {"id": "2", "name": "High", "statusColor": "#f15C75", "icon": "high",
     "description": "Serious problem that could block progress."},
    {"id": "3", "name": "Medium", "statusColor": "#f79232", "icon": "medium",
     "description": "Has the potential to affect progress."},
    {"id": "4", "name": "Low", "statusColor": "#707070", "icon": "low",
     "description": "Minor problem or easily worked around."},
    {"id": "5", "name": "Lowest", "statusColor": "#999999", "icon": "lowest",
     "description": "Trivial problem with little or no impact on progress."},
]
DEFAULT_PRIORITY_ID = "3"

# name, description, subtask, Cloud global id, DC id, avatarId
ISSUE_TYPES = {
    "Story": ("Functionality or a feature expressed as a user goal.", False, "10001", "10001", 10315),
    "Task": ("A small, distinct piece of work.", False, "10002", "3", 10318),
    "Sub-task": ("A small piece of work that's part of a larger task.", True, "10003", "5", 10316),
    "Bug": ("A problem or error.", False, "10004", "1", 10303),
}


# --------------------------------------------------------------------------- helpers
def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _ts(dt: _dt.datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def letters(n: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'AA', ...: bijective base-26."""
    out = ""
    while True:
        out = string.ascii_uppercase[n % 26] + out
        n = n // 26 - 1
        if n < 0:
            return out


def space_key(i: int) -> str:
    """0 -> 'SPA', 1 -> 'SPB', ... then 'SPAA'...: unique upper-case keys."""
    return "SP" + letters(i)


# --------------------------------------------------------------------------- accounts
def seed_defaults(state: "State") -> None:
    user = {
        "accountId": DEFAULT_ACCOUNT_ID,
        "accountType": "atlassian",
        "emailAddress": "mia.krystof@example.com",
        "email_visible": True,
        "displayName": "Mia Krystof",
        "publicName": "Mia",
        "active": True,
        "timeZone": "Europe/Berlin",
        "locale": "en_US",
    }
    state.users = {user["accountId"]: user}
    state.current_account_id = user["accountId"]


def cloud_account_for_email(email: str, display_name: str | None) -> dict:
    local = email.split("@", 1)[0]
    name = display_name or " ".join(w.capitalize() for w in local.replace("_", ".").split(".") if w)
    return {
        "accountId": "712020:" + str(uuid.uuid5(_NS, "account:" + email.lower())),
        "accountType": "atlassian",
        "emailAddress": email,
        "email_visible": True,
        "displayName": name or email,
        "publicName": (name or email).split(" ")[0],
        "active": True,
        "timeZone": "UTC",
        "locale": "en_US",
    }


def dc_account_entry(u: dict, idx: int) -> dict:
    """A configured DC account (from `PUT /_sim/dc/users`), as given (validated by control)."""
    return {"name": u["username"], "password": u.get("password"), "displayName": u.get("display_name"),
            "emailAddress": u.get("email"), "forbidden": bool(u.get("forbidden", False)),
            "active": u.get("active", True), "key": u.get("key"), "_idx": idx}


def materialize_dc_account(acc: dict, generated: dict | None) -> dict:
    """A configured account as a full DC user; it overlays the generated user of that name."""
    base = dict(generated) if generated else {
        "name": acc["name"],
        "key": f"JIRAUSER{10000 + acc['_idx']}",
        "userKey": _hex("dc-user:" + acc["name"].lower(), 32),
        "displayName": acc["name"],
        "emailAddress": f"{acc['name'].lower()}@corp.test",
        "active": True,
        "timeZone": "Europe/Berlin",
        "locale": "en_US",
    }
    base["name"] = acc["name"]
    for k in ("displayName", "emailAddress", "key"):
        if acc.get(k):
            base[k] = acc[k]
    base["active"] = bool(acc["active"])
    base["password"] = acc.get("password")
    base["forbidden"] = acc["forbidden"]
    return base


# --------------------------------------------------------------------------- dataset
@dataclass
class Dataset:
    flavour: str                                   # cloud | dc
    users: list[dict]
    projects: list[dict]                           # live and archived, by index
    components: dict[str, list[dict]]              # project key -> components
    spaces: list[dict]
    pages: list[dict]
    user_by_id: dict[str, dict] = field(default_factory=dict)     # Cloud accountId
    user_by_name: dict[str, dict] = field(default_factory=dict)   # DC lower-case username
    project_by_key: dict[str, dict] = field(default_factory=dict)
    project_by_id: dict[str, dict] = field(default_factory=dict)
    space_by_key: dict[str, dict] = field(default_factory=dict)
    space_by_id: dict[str, dict] = field(default_factory=dict)
    page_by_id: dict[str, dict] = field(default_factory=dict)
    pages_by_space: dict[str, list[dict]] = field(default_factory=dict)
    # what clients wrote (pages, attachments, issues): `state.ConfluenceStore` / `state.JiraStore`,
    # built on first use; they live and die with the dataset (reset, `POST /_sim/seed`)
    stores: dict[str, Any] = field(default_factory=dict)

    def index(self) -> "Dataset":
        for u in self.users:
            if "accountId" in u:
                self.user_by_id[u["accountId"]] = u
            if "name" in u:
                self.user_by_name[u["name"].lower()] = u
        for p in self.projects:
            self.project_by_key[p["key"]] = p
            self.project_by_id[p["id"]] = p
        for s in self.spaces:
            self.space_by_key[s["key"]] = s
            self.space_by_id[s["id"]] = s
        for pg in self.pages:
            self.page_by_id[pg["id"]] = pg
            self.pages_by_space.setdefault(pg["spaceId"], []).append(pg)
        return self

    def project(self, id_or_key: str) -> dict | None:
        return self.project_by_key.get(id_or_key) or self.project_by_id.get(id_or_key)


def build_dataset(flavour: str, sizes: dict[str, int], author_account_id: str) -> Dataset:
    users = make_users(flavour, sizes["users"])
    projects = make_projects(flavour, sizes["projects"], users)
    components = {p["key"]: make_components(flavour, p, users) for p in projects}
    spaces = [make_space(flavour, i, author_account_id, users) for i in range(sizes["spaces"])]
    pages = [pg for s in spaces for pg in make_pages(flavour, s)]
    return Dataset(flavour, users, projects, components, spaces, pages).index()


# --------------------------------------------------------------------------- users
def make_users(flavour: str, n: int) -> list[dict]:
    out = []
    seen: dict[str, int] = {}
    for i in range(n):
        first = FIRST[i % len(FIRST)]
        last = LAST[(i // len(FIRST)) % len(LAST)]
        local = f"{first}.{last}".lower()
        seen[local] = seen.get(local, 0) + 1
        if seen[local] > 1:
            local += str(seen[local])
        active = i % 43 != 5
        common = {"displayName": f"{first} {last}", "active": active,
                  "timeZone": TIME_ZONES[i % len(TIME_ZONES)], "locale": LOCALES[i % len(LOCALES)],
                  "index": i}
        if flavour == "cloud":
            if i % 3 == 0:
                account_id = _hex(f"legacy:{i}", 24)
            else:
                account_id = "712020:" + str(uuid.uuid5(_NS, f"cloud-user:{i}"))
            out.append({"accountId": account_id, "accountType": "atlassian",
                        "emailAddress": f"{local}@acme.test", "email_visible": i % 5 != 3,
                        "publicName": first, **common})
        else:
            out.append({"name": local, "key": f"JIRAUSER{10100 + i}",
                        "userKey": _hex("dc-user:" + local, 32),
                        "emailAddress": f"{local}@corp.test", "password": None,
                        "forbidden": False, **common})
    return out


def user_ref(flavour: str, user: dict) -> str:
    return user["accountId"] if flavour == "cloud" else user["name"]


# --------------------------------------------------------------------------- projects
def _project_name(i: int) -> str:
    a = ADJ[i % len(ADJ)]
    b = NOUN[(i // len(ADJ)) % len(NOUN)]
    rnd = i // (len(ADJ) * len(NOUN))
    return f"{a} {b}" + (f" {rnd + 1}" if rnd else "")


def make_projects(flavour: str, n_live: int, users: list[dict]) -> list[dict]:
    n_archived = n_live // 50
    total = n_live + n_archived
    used = {REQ_KEY}
    out = []
    active_users = [u for u in users if u["active"]] or users
    for i in range(total):
        archived = i >= n_live
        if i == REQ_INDEX and not archived:
            key, name = REQ_KEY, "Requirements"
        else:
            name = _project_name(i)
            words = name.split(" ")
            base = (words[0][:2] + words[1][:1]).upper()
            key = base
            k = 0
            while key in used:
                k += 1
                key = base + letters(k - 1)
        used.add(key)
        ptype = "software"
        if key != REQ_KEY and i % 7 == 6:
            ptype = "business"
        elif key != REQ_KEY and i % 13 == 12:
            ptype = "service_desk"
        team_managed = flavour == "cloud" and i % 10 == 4 and key != REQ_KEY
        lead = active_users[(i * 7 + 3) % len(active_users)] if active_users else None
        pid = str(10000 + i * 3)
        names = ["Task", "Sub-task"] if ptype != "software" else ["Story", "Task", "Bug", "Sub-task"]
        its = []
        for k, it_name in enumerate(names):
            desc, subtask, cloud_id, dc_id, avatar = ISSUE_TYPES[it_name]
            rec = {"name": it_name, "description": desc, "subtask": subtask, "avatarId": avatar,
                   "hierarchyLevel": -1 if subtask else 0}
            if team_managed:
                rec["id"] = str(10100 + i * 4 + k)
                rec["entityId"] = str(uuid.uuid5(_NS, f"it:{i}:{k}"))
                rec["scope_project_id"] = pid
            else:
                rec["id"] = cloud_id if flavour == "cloud" else dc_id
            its.append(rec)
        category = None
        if i % 4 == 1:
            category = {"id": str(10000 + i % 3), "name": ("Product", "Internal", "Customer")[i % 3],
                        "description": ("Product work", "Internal tools", "Customer projects")[i % 3]}
        out.append({
            "index": i, "id": pid, "key": key, "name": name,
            "description": f"{name}: generated project for simulator tests.",
            "projectTypeKey": ptype, "team_managed": team_managed, "archived": archived,
            "lead": user_ref(flavour, lead) if lead else None,
            "category": category, "issue_types": its,
            "uuid": str(uuid.uuid5(_NS, f"project:{i}")),
            "issueCount": (i * 37) % 500,
            "lastIssueUpdateTime": _ts(_EPOCH + _dt.timedelta(hours=i * 5)),
        })
    return out


def component_count(p: dict) -> int:
    i = p["index"]
    if i in BIG_COMPONENT_PROJECTS:
        return BIG_COMPONENT_PROJECTS[i]
    if p["key"] == REQ_KEY:
        return 3
    if i % 5 == 0:
        return 0
    return i % 7 + 1


def make_components(flavour: str, p: dict, users: list[dict]) -> list[dict]:
    n = component_count(p)
    out = []
    for c in range(n):
        word = COMPONENT_WORDS[c % len(COMPONENT_WORDS)]
        rnd = c // len(COMPONENT_WORDS)
        lead = users[(p["index"] * 11 + c * 5) % len(users)] if c % 3 != 2 and users else None
        out.append({
            "id": str(20000 + p["index"] * 200 + c),
            "name": word + (f" {rnd + 1}" if rnd else ""),
            "description": f"{word} work in {p['key']}" if c % 4 else "",
            "lead": user_ref(flavour, lead) if lead else None,
            "assigneeType": "COMPONENT_LEAD" if lead and c % 2 == 0 else "PROJECT_DEFAULT",
            "project": p["key"], "projectId": int(p["id"]),
            "issueCount": (c * 3 + p["index"]) % 40,
        })
    return out


def issue_type(p: dict, issue_type_id: str) -> dict | None:
    return next((t for t in p["issue_types"] if t["id"] == issue_type_id), None)


def create_fields(p: dict, it: dict, components: list[dict]) -> list[dict]:
    """Field metadata for creating an issue of type `it` in project `p`, as flavour-neutral
    records; `allowed` says what the allowedValues are (rendered by the product handlers)."""
    req = p["key"] == REQ_KEY and it["name"] == "Task"
    fields = [
        {"fieldId": "summary", "name": "Summary", "required": True, "hasDefaultValue": False,
         "schema": {"type": "string", "system": "summary"}, "operations": ["set"]},
        {"fieldId": "issuetype", "name": "Issue Type", "required": True, "hasDefaultValue": False,
         "schema": {"type": "issuetype", "system": "issuetype"}, "operations": [],
         "allowed": ("issuetype", [it])},
    ]
    if it["subtask"]:
        fields.append({"fieldId": "parent", "name": "Parent", "required": True,
                       "hasDefaultValue": False, "schema": {"type": "issuelink", "system": "parent"},
                       "operations": ["set"]})
    fields += [
        {"fieldId": "project", "name": "Project", "required": True, "hasDefaultValue": False,
         "schema": {"type": "project", "system": "project"}, "operations": ["set"],
         "allowed": ("project", [p])},
        {"fieldId": "reporter", "name": "Reporter", "required": True, "hasDefaultValue": True,
         "schema": {"type": "user", "system": "reporter"}, "operations": ["set"],
         "autocomplete": "user"},
        {"fieldId": "description", "name": "Description", "required": False,
         "hasDefaultValue": False, "schema": {"type": "string", "system": "description"},
         "operations": ["set"]},
        {"fieldId": "priority", "name": "Priority", "required": req, "hasDefaultValue": True,
         "schema": {"type": "priority", "system": "priority"}, "operations": ["set"],
         "allowed": ("priority", PRIORITIES), "default": ("priority", DEFAULT_PRIORITY_ID)},
        {"fieldId": "labels", "name": "Labels", "required": False, "hasDefaultValue": False,
         "schema": {"type": "array", "items": "string", "system": "labels"},
         "operations": ["add", "set", "remove"], "autocomplete": "labels"},
    ]
    if components:
        fields.append({"fieldId": "components", "name": "Components", "required": False,
                       "hasDefaultValue": False,
                       "schema": {"type": "array", "items": "component", "system": "components"},
                       "operations": ["add", "set", "remove"], "allowed": ("components", components)})
    fields += [
        {"fieldId": "assignee", "name": "Assignee", "required": False, "hasDefaultValue": False,
         "schema": {"type": "user", "system": "assignee"}, "operations": ["set"],
         "autocomplete": "assignee"},
        {"fieldId": "duedate", "name": "Due date", "required": False, "hasDefaultValue": False,
         "schema": {"type": "date", "system": "duedate"}, "operations": ["set"]},
    ]
    if it["name"] == "Story":
        fields.append({"fieldId": STORY_POINTS_FIELD_ID, "name": "Story point estimate",
                       "required": False, "hasDefaultValue": False,
                       "schema": {"type": "number",
                                  "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float",
                                  "customId": 10016},
                       "operations": ["set"]})
    if req:
        fields.append({"fieldId": TEAM_FIELD_ID, "name": "Team", "required": True,
                       "hasDefaultValue": False,
                       "schema": {"type": "option",
                                  "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select",
                                  "customId": 10050},
                       "operations": ["set"], "allowed": ("options", TEAM_OPTIONS)})
    return fields


# --------------------------------------------------------------------------- spaces and pages
def make_space(flavour: str, i: int, account_id: str, users: list[dict] | None = None) -> dict:
    sid = 98300 + i * 7   # numeric ids, ascending with i, not contiguous
    created = _EPOCH + _dt.timedelta(hours=i)
    personal = i % 100 == 99 and bool(users)
    if personal:
        owner = users[(i * 13) % len(users)]
        key = "~" + (owner["accountId"].replace(":", "") if flavour == "cloud" else owner["name"])
        name = owner["displayName"]
        stype = "personal"
    else:
        key = space_key(i)
        name = f"Space {key[2:]} {SPACE_KINDS[i % 4]}"
        stype = "global"
    return {
        "id": str(sid),
        "key": key,
        "name": name,
        "type": stype,
        "status": "current",
        "authorId": account_id,
        "spaceOwnerId": account_id,
        "currentActiveAlias": key,
        "createdAt": _ts(created),
        "homepageId": str(sid * 10 + 1),
        "description": {"plain": {"representation": "plain", "value": f"Space {key} for tests"},
                        "view": {"representation": "view", "value": f"<p>Space {key} for tests</p>"}},
        "icon": {"path": f"/wiki/download/attachments/{sid}/{key}?version=1&api=v2",
                 "apiDownloadLink": f"/wiki/rest/api/space/{key}/icon"},
        "labels": [],
        "_links": {"webui": f"/spaces/{key}"},
        "index": i,
    }


def default_page_body(page: dict) -> str:
    """The storage body of a generated page nobody has written yet."""
    return f"<p>{html.escape(page['title'], quote=False)}</p>"


def make_pages(flavour: str, space: dict) -> list[dict]:
    i = space["index"]
    sid = int(space["id"])
    home = str(sid * 10 + 1)
    titles = [(1, f"{space['name']} Home", None), (2, "Meeting notes", home)]
    if i % 3 == 0:
        titles.append((3, "Retrospectives", home))
    if i % 4 == 0:
        titles.append((4, "Health Checks", home))
    if i % 10 == 0:
        titles.append((5, "Q&A / Notes + Ideas", home))
    out = []
    for pos, (k, title, parent) in enumerate(titles):
        created = _EPOCH + _dt.timedelta(hours=i, minutes=k)
        out.append({"id": str(sid * 10 + k), "title": title, "spaceId": space["id"],
                    "spaceKey": space["key"], "parentId": parent,
                    "position": None if parent is None else pos - 1,
                    "createdAt": _ts(created), "version": 1, "status": "current"})
    return out


# --------------------------------------------------------------------------- user matching
def words_match(display_name: str, q: str) -> bool:
    name = display_name.lower()
    return name.startswith(q) or any(w.startswith(q) for w in name.split())


def cloud_user_matches(u: dict, q: str, hidden_exact: bool, hiding: bool = True) -> bool:
    """Cloud `query`: prefix of the display name (or one of its words) or of a visible email;
    an exact email also finds a user whose email is hidden when `hidden_exact`. `hiding` False:
    every email counts as visible (quirk `cloud_hidden_emails` off)."""
    if not q:
        return True
    email = (u.get("emailAddress") or "").lower()
    if words_match(u["displayName"], q):
        return True
    if u.get("email_visible", True) or not hiding:
        return email.startswith(q)
    return hidden_exact and email == q


def dc_user_matches(u: dict, q: str, by_email: bool = True) -> bool:
    """DC `username`/`query`: prefix of the username, the display name (or a word of it), or —
    unless the instance hides emails (`by_email` False) — the email."""
    if not q:
        return True
    return (u["name"].lower().startswith(q) or words_match(u["displayName"], q)
            or (by_email and (u.get("emailAddress") or "").lower().startswith(q)))


def user_sort_key(u: dict) -> tuple:
    return (u["displayName"].lower(), u.get("accountId") or u.get("name", "").lower())


def public(record: dict) -> dict[str, Any]:
    """A record without the simulator's private fields (for `GET /_sim/data`)."""
    return {k: v for k, v in record.items() if k not in ("password", "_idx")}
