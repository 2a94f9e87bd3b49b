"""Who may do what: roles admin > member > reader, and project ownership.

Keystone's default roles imply each other (admin implies manager implies member implies
reader; `service` implies nothing); tokens carry
the implied roles too, so a check here is one set lookup. Resources of another project answer
404, as if they did not exist, unless the caller is an admin.
"""

from __future__ import annotations

from cirrus.context import RequestContext
from cirrus.errors import Forbidden, NotFound

IMPLIED_ROLES = {"admin": ["manager", "member", "reader"], "manager": ["member", "reader"],
                 "member": ["reader"]}

READ, WRITE, ADMIN = "reader", "member", "admin"


def expand_roles(names: list[str]) -> list[str]:
    result: list[str] = []
    for name in names:
        for role in [name, *IMPLIED_ROLES.get(name, [])]:
            if role not in result:
                result.append(role)
    return result


def authorize(ctx: RequestContext, level: str, action: str = "this action") -> None:
    """Raise Forbidden unless the caller holds the role `level` (reader, member or admin)."""
    # Expand here too: a context need not come from a token that already carries implied roles.
    if level not in expand_roles(ctx.roles) and "admin" not in ctx.roles:
        raise Forbidden(f"Policy does not allow {action} to be performed.")


def owns(ctx: RequestContext, project_id: str | None) -> bool:
    return ctx.is_admin or (project_id is not None and project_id == ctx.project_id)


def ensure_visible(ctx: RequestContext, project_id: str | None, what: str) -> None:
    """Other projects' resources do not exist for a non-admin caller."""
    if not owns(ctx, project_id):
        raise NotFound(f"{what} could not be found.")
