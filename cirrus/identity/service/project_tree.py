"""Projects as a tree (parent_id; subtree and parents) and project tags."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import Project
from cirrus.errors import BadRequest, Forbidden, NotFound
from cirrus.identity.service.projects import get_project

MAX_TAGS = 80
# Keystone's [resource] max_project_tree_depth: levels below the domain.
MAX_DEPTH = 5


def check_new_child(s: Session, parent: Project) -> None:
    """A project may go under `parent` (Keystone's rules: enabled, not too deep)."""
    if not parent.enabled:
        raise Forbidden(f"Cannot create project, since it specifies its parent ({parent.id}) "
                        f"as a disabled project.")
    if len(parents(s, parent)) + 2 > MAX_DEPTH:
        raise Forbidden(f"Max hierarchy depth reached for {parent.id} branch.")


def check_enable(s: Session, project: Project) -> None:
    """A project is enabled only under enabled parents."""
    if any(not p.enabled for p in parents(s, project)):
        raise Forbidden(f"Cannot enable project {project.id} since it has disabled parents.")


def parents(s: Session, project: Project) -> list[Project]:
    """The project's ancestors, nearest first (the domain is not one of them)."""
    result: list[Project] = []
    seen = {project.id}
    parent_id = project.parent_id
    while parent_id and parent_id not in seen:
        parent = s.get(Project, parent_id)
        if parent is None:
            break
        result.append(parent)
        seen.add(parent.id)
        parent_id = parent.parent_id
    return result


def subtree(s: Session, project: Project) -> list[Project]:
    """Every descendant of the project, level by level."""
    result: list[Project] = []
    frontier = [project.id]
    seen = {project.id}
    while frontier:
        children = [c for c in s.scalars(select(Project).where(Project.parent_id.in_(frontier))
                                         .order_by(Project.name, Project.id))
                    if c.id not in seen]
        result.extend(children)
        seen.update(c.id for c in children)
        frontier = [c.id for c in children]
    return result


def parents_as_ids(chain: list[Project]) -> dict | None:
    """{parent: {grandparent: None}}, Keystone's nested form; None for a top-level project."""
    nested: dict | None = None
    for project in reversed(chain):
        nested = {project.id: nested}
    return nested


def subtree_as_ids(root: Project, descendants: list[Project]) -> dict | None:
    """{child: {grandchild: None}}; None for a leaf."""
    children: dict[str, list[str]] = {}
    for p in descendants:
        children.setdefault(p.parent_id or "", []).append(p.id)

    def below(project_id: str) -> dict | None:
        kids = children.get(project_id)
        return {kid: below(kid) for kid in kids} if kids else None

    return below(root.id)


# ---------------------------------------------------------------- tags


def check_tag(tag: str, where: str = "tags") -> str:
    if not tag or len(tag) > 255 or "/" in tag or "," in tag:
        raise BadRequest(f"Invalid input for field/attribute {where}. Value: {tag}. A tag must "
                         f"be 1 to 255 characters long and contain neither '/' nor ','.")
    return tag


def tags_of(project: Project) -> list[str]:
    return list((project.extra or {}).get("tags", []))


def set_tags(s: Session, project_id: str, tags: list[str]) -> list[str]:
    project = get_project(s, project_id)
    project.extra = {**(project.extra or {}), "tags": list(dict.fromkeys(tags))}
    s.flush()
    return tags_of(project)


def add_tag(s: Session, project_id: str, tag: str) -> list[str]:
    project = get_project(s, project_id)
    tags = tags_of(project)
    if tag not in tags:
        if len(tags) >= MAX_TAGS:
            raise BadRequest(f"Invalid input for field/attribute tags. A project may have at "
                             f"most {MAX_TAGS} tags.")
        project.extra = {**(project.extra or {}), "tags": [*tags, tag]}
        s.flush()
    return tags_of(project)


def remove_tag(s: Session, project_id: str, tag: str) -> None:
    project = get_project(s, project_id)
    tags = tags_of(project)
    if tag not in tags:
        raise NotFound(f"Tag {tag} not found for project {project_id}.")
    project.extra = {**(project.extra or {}), "tags": [t for t in tags if t != tag]}
    s.flush()


def _tag_list(value: str | None, name: str) -> list[str] | None:
    if value is None:
        return None
    return [check_tag(t, name) for t in value.split(",")]


def filter_by_tags(projects: Iterable[Project], query: dict) -> list[Project]:
    """Keystone's tags (all of), tags-any, not-tags (not all of), not-tags-any (none of)."""
    every = _tag_list(query.get("tags"), "tags")
    any_of = _tag_list(query.get("tags-any"), "tags-any")
    not_every = _tag_list(query.get("not-tags"), "not-tags")
    none_of = _tag_list(query.get("not-tags-any"), "not-tags-any")
    result = []
    for project in projects:
        tags = set(tags_of(project))
        if every is not None and not set(every) <= tags:
            continue
        if any_of is not None and not set(any_of) & tags:
            continue
        if not_every is not None and set(not_every) <= tags:
            continue
        if none_of is not None and set(none_of) & tags:
            continue
        result.append(project)
    return result
