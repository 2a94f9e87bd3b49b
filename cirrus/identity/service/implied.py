"""Role inference rules (implied roles): whoever holds the prior role holds the implied one.

Rules chain (admin implies manager implies member implies reader: an admin is a reader too); tokens and
effective role assignments carry the whole closure, less the domain-specific roles (which
only stand for what they imply). Keystone refuses a rule that would make a cycle, and a
global role implying a domain-specific one.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import ImpliedRole, Role
from cirrus.errors import BadRequest, Forbidden, NotFound
from cirrus.identity.service.roles import get_role


def _rules(s: Session) -> dict[str, list[str]]:
    """prior role id -> implied role ids (bootstrap stores admin->manager->member->reader)."""
    rules: dict[str, list[str]] = {}
    for row in s.scalars(select(ImpliedRole).order_by(ImpliedRole.implied_role_id)):
        rules.setdefault(row.prior_role_id, []).append(row.implied_role_id)
    return rules


def implied_closure(s: Session, role_ids: Iterable[str]) -> list[tuple[str, str | None]]:
    """(role id, the role it was first reached from or None) for the roles and all they imply,
    in order: the given roles first, then breadth-first what they imply."""
    rules = _rules(s)
    result: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    queue: list[tuple[str, str | None]] = [(r, None) for r in role_ids]
    while queue:
        role_id, prior = queue.pop(0)
        if role_id in seen:
            continue
        seen.add(role_id)
        result.append((role_id, prior))
        queue.extend((implied, role_id) for implied in rules.get(role_id, []))
    return result


def expand_roles(s: Session, roles: list[Role]) -> list[Role]:
    """The roles and every role they imply, each once, without domain-specific roles: those
    only stand for the roles they imply (Keystone leaves them out of tokens)."""
    closure = [rid for rid, _ in implied_closure(s, [r.id for r in roles])]
    by_id = {r.id: r for r in roles}
    missing = [rid for rid in closure if rid not in by_id]
    if missing:
        by_id.update({r.id: r for r in s.scalars(select(Role).where(Role.id.in_(missing)))})
    return [by_id[rid] for rid in closure if rid in by_id and not by_id[rid].domain_id]


def get_inference(s: Session, prior_id: str, implied_id: str) -> tuple[Role, Role]:
    prior, implied = get_role(s, prior_id), get_role(s, implied_id)
    if implied_id not in _rules(s).get(prior_id, []):
        raise NotFound(f"{prior_id} does not imply {implied_id}.")
    return prior, implied


def create_inference(s: Session, prior_id: str, implied_id: str) -> tuple[Role, Role]:
    prior, implied = get_role(s, prior_id), get_role(s, implied_id)
    if implied.domain_id and not prior.domain_id:
        raise Forbidden(f"You are not authorized to perform the requested action: "
                        f"global role {prior_id} cannot imply the domain-specific role "
                        f"{implied_id}.")
    if prior_id == implied_id or prior_id in (r for r, _ in implied_closure(s, [implied_id])):
        raise BadRequest(f"Creating the rule {prior_id} implies {implied_id} would make a "
                         f"cycle of implied roles.")
    if s.get(ImpliedRole, (prior_id, implied_id)) is None:
        s.add(ImpliedRole(prior_role_id=prior_id, implied_role_id=implied_id))
        s.flush()
    return prior, implied


def delete_inference(s: Session, prior_id: str, implied_id: str) -> None:
    get_role(s, prior_id)
    get_role(s, implied_id)
    rule = s.get(ImpliedRole, (prior_id, implied_id))
    if rule is None:
        raise NotFound(f"{prior_id} does not imply {implied_id}.")
    s.delete(rule)


def implied_by(s: Session, prior_id: str) -> tuple[Role, list[Role]]:
    """A role and the roles it directly implies."""
    prior = get_role(s, prior_id)
    ids = _rules(s).get(prior_id, [])
    roles = list(s.scalars(select(Role).where(Role.id.in_(ids)).order_by(Role.name))) if ids \
        else []
    return prior, roles


def all_inferences(s: Session) -> list[tuple[Role, list[Role]]]:
    rules = _rules(s)
    ids = set(rules) | {i for v in rules.values() for i in v}
    roles = {r.id: r for r in s.scalars(select(Role).where(Role.id.in_(sorted(ids))))}
    return [(roles[p], [roles[i] for i in implied if i in roles])
            for p, implied in sorted(rules.items(), key=lambda kv: roles[kv[0]].name
                                     if kv[0] in roles else "") if p in roles]
