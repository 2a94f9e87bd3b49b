"""Projects acting as domains (Keystone's `is_domain`): Cirrus keeps domains in their own
table, so such a project is the domain itself, seen through /v3/projects (same id, no
`domain_id`, no `parent_id`). Created, changed and deleted by the domain rules."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cirrus.db.models import Domain, Project
from cirrus.errors import BadRequest
from cirrus.identity.service.common import Revocation
from cirrus.identity.service.domains import create_domain, get_domain, update_domain

# What a domain keeps of a project's attributes; the rest must be absent or empty.
_KEPT = ("name", "description", "enabled")
_EMPTY_OK: dict[str, object] = {"tags": [], "options": {}, "domain_id": None, "parent_id": None}


def _domain_fields(fields: dict) -> dict:
    for key, value in fields.items():
        if key in _KEPT or key == "is_domain":
            continue
        if key in _EMPTY_OK and value == _EMPTY_OK[key]:
            continue
        if key in ("domain_id", "parent_id"):
            raise BadRequest(f"Invalid input for field/attribute project/{key}. A project "
                             f"acting as a domain has no {key}: it must be null.")
        raise BadRequest(f"Invalid input for field/attribute project/{key}. A project acting "
                         f"as a domain keeps only name, description and enabled.")
    return {key: fields[key] for key in _KEPT if key in fields}


def is_domain(s: Session, project_id: str) -> bool:
    """Whether the id is a domain's (and not a regular project's)."""
    return s.get(Project, project_id) is None and s.get(Domain, project_id) is not None


def create_domain_project(s: Session, fields: dict) -> Domain:
    return create_domain(s, _domain_fields(fields))


def update_domain_project(s: Session, domain_id: str, fields: dict,
                          ) -> tuple[Domain, list[Revocation]]:
    get_domain(s, domain_id)
    if fields.get("is_domain", True) is not True:
        raise BadRequest("Update of `is_domain` is not allowed.")
    changes = _domain_fields(fields)
    if not changes:
        return get_domain(s, domain_id), []
    return update_domain(s, domain_id, changes)
