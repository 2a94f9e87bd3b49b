"""Roles admin > member > reader and project ownership (cirrus.identity.policy)."""

from __future__ import annotations

import pytest

from cirrus.context import RequestContext
from cirrus.errors import Forbidden, NotFound
from cirrus.identity.policy import ADMIN, READ, WRITE, authorize, ensure_visible, expand_roles, owns


def ctx(*roles: str, project_id: str | None = "p1") -> RequestContext:
    return RequestContext(user_id="u1", project_id=project_id, roles=list(roles))


def test_admin_implies_manager_member_and_reader() -> None:
    assert expand_roles(["admin"]) == ["admin", "manager", "member", "reader"]
    assert expand_roles(["member"]) == ["member", "reader"]
    assert expand_roles(["reader"]) == ["reader"]


def test_expanding_keeps_other_roles_and_lists_each_once() -> None:
    assert expand_roles(["custom", "member", "reader", "admin"]) == [
        "custom", "member", "reader", "admin", "manager"]


@pytest.mark.parametrize(("roles", "allowed"), [
    (["reader"], {READ}),
    (["member", "reader"], {READ, WRITE}),
    (["admin", "member", "reader"], {READ, WRITE, ADMIN}),
    ([], set()),
    (["custom"], set()),
])
def test_each_role_reaches_exactly_its_levels(roles: list[str], allowed: set[str]) -> None:
    for level in (READ, WRITE, ADMIN):
        if level in allowed:
            authorize(ctx(*roles), level)
        else:
            with pytest.raises(Forbidden):
                authorize(ctx(*roles), level)


def test_a_context_with_unexpanded_roles_still_gets_the_implied_ones() -> None:
    # Regression: a context carrying only "member" (e.g. rebuilt from a bus message) was
    # refused READ although member implies reader.
    authorize(ctx("member"), READ)
    with pytest.raises(Forbidden):
        authorize(ctx("member"), ADMIN)


def test_admin_passes_any_level_even_an_unknown_one() -> None:
    authorize(ctx("admin"), "service")
    with pytest.raises(Forbidden):
        authorize(ctx("member"), "service")


def test_forbidden_names_the_action() -> None:
    with pytest.raises(Forbidden, match="identity:create_project"):
        authorize(ctx("reader"), ADMIN, "identity:create_project")


def test_a_member_owns_only_their_project() -> None:
    assert owns(ctx("member"), "p1")
    assert not owns(ctx("member"), "p2")
    assert not owns(ctx("member"), None)
    assert not owns(ctx("member", project_id=None), None)


def test_an_admin_owns_every_project() -> None:
    assert owns(ctx("admin"), "p2")
    ensure_visible(ctx("admin"), "p2", "Server")


def test_other_projects_resources_do_not_exist_for_a_member() -> None:
    ensure_visible(ctx("member"), "p1", "Server")
    with pytest.raises(NotFound, match="Server could not be found"):
        ensure_visible(ctx("member"), "p2", "Server")
    with pytest.raises(NotFound):
        ensure_visible(ctx("reader"), None, "Server")
