"""Who may do what, as the products decide it for the *connected user* (the OAuth grant's account,
the API token's user, the DC user).

Per user, a permission set per Jira project (`browse`, `create`, `assign` = may be assigned
issues, Jira's "Assignable User", `delete`, `edit` = Edit Issues, `link` = Link Issues) and per Confluence space (`view`, `add_page`,
`attach`), and per page a restriction (`restricted_to`: the users who may see it; None =
unrestricted). No entry = every permission, so the default users can do everything; what is on by
default is the *enforcement* (quirk `enforce_permissions`): a project the user cannot browse, a
space it cannot view or a restricted page are invisible to it (404, left out of lists), as in the
products.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .cloud import Ctx
    from .state import State

JIRA = ("browse", "create", "assign", "delete", "edit", "link")
CONFLUENCE = ("view", "add_page", "attach")
ALL = {"project": JIRA, "space": CONFLUENCE}


def deployment_of(ctx: "Ctx") -> str:
    return ctx.site.id if ctx.flavour == "cloud" else "dc"


def principal_of(ctx: "Ctx") -> str | None:
    """Cloud: the accountId; DC: the lower-case user name (None: anonymous)."""
    if ctx.flavour == "cloud":
        return ctx.account_id
    return ctx.user["name"].lower() if ctx.user else None


def user_key(flavour: str, user: dict) -> str:
    return user["accountId"] if flavour == "cloud" else user["name"].lower()


def granted(state: "State", deployment: str, user: str, kind: str, key: str) -> set[str]:
    entry = state.permissions.get((deployment, user, kind, key))
    return set(ALL[kind]) if entry is None else set(entry)


def enforced(ctx: "Ctx") -> bool:
    return bool(ctx.quirks.get("enforce_permissions", True))


def allowed(ctx: "Ctx", kind: str, key: str, perm: str, user: str | None = None) -> bool:
    if not enforced(ctx):
        return True
    user = user or principal_of(ctx)
    if user is None:                  # anonymous DC callers are answered by the handlers
        return True
    return perm in granted(ctx.state, deployment_of(ctx), user, kind, key)


# --------------------------------------------------------------------------- Jira
def can_browse(ctx: "Ctx", project: dict | None) -> bool:
    return project is not None and allowed(ctx, "project", project["key"], "browse")


def browsable(ctx: "Ctx", projects) -> list[dict]:
    return [p for p in projects if can_browse(ctx, p)]


def visible_project(ctx: "Ctx", id_or_key: str) -> dict | None:
    """The project as the caller sees it: None when it does not exist or may not be browsed."""
    p = ctx.data.project(id_or_key)
    return p if can_browse(ctx, p) else None


def assignable(ctx: "Ctx", project: dict, user: dict) -> bool:
    """Jira's assignable users: active, with Browse and Assignable User in the project."""
    if not user.get("active", True):
        return False
    who = user_key(ctx.flavour, user)
    return (allowed(ctx, "project", project["key"], "browse", who)
            and allowed(ctx, "project", project["key"], "assign", who))


# --------------------------------------------------------------------------- Confluence
def can_view_space(ctx: "Ctx", space: dict | None) -> bool:
    return space is not None and allowed(ctx, "space", space["key"], "view")


def page_visible(ctx: "Ctx", page: dict | None) -> bool:
    """A page exists for the caller when it may view the space and the page is not restricted
    away from it (restricted pages still take their title, see ConfluenceStore)."""
    if page is None:
        return False
    if not can_view_space(ctx, ctx.data.space_by_id.get(page["spaceId"])):
        return False
    limit = page.get("restricted_to")
    if limit is None or not enforced(ctx):
        return True
    return principal_of(ctx) in limit


def visible_pages(ctx: "Ctx", pages) -> list[dict]:
    return [p for p in pages if page_visible(ctx, p)]
