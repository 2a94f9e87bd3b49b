"""OS-EP-FILTER: endpoint groups (endpoints chosen by their attributes) and the projects they,
or single endpoints, are associated with. A project with any association gets only those
endpoints in its tokens' catalog (`catalog_admin.project_endpoint_map`)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.db.models import (
    CatalogEndpoint,
    EndpointGroup,
    Project,
    ProjectEndpoint,
    ProjectEndpointGroup,
)
from cirrus.errors import BadRequest, NotFound
from cirrus.identity.service.catalog_admin import (
    FILTER_KEYS,
    endpoints_matching,
    get_endpoint,
    group_endpoint_ids,
)
from cirrus.identity.service.common import _conflict, _flush, new_id
from cirrus.identity.service.projects import get_project


def _check_filters(filters: dict) -> dict:
    """Keystone's rule: at least one filter, each on interface, service_id or region_id."""
    if not filters:
        raise BadRequest("Invalid input for field/attribute endpoint_group/filters. filters "
                         "field is required and cannot be empty.")
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise BadRequest(f"Invalid input for field/attribute endpoint_group/filters. "
                             f"Expecting to find {' or '.join(FILTER_KEYS)} in endpoint_group, "
                             f"not {key}.")
        if not isinstance(value, str):
            raise BadRequest(f"Invalid input for field/attribute endpoint_group/filters/{key}. "
                             f"{value!r} is not of type 'string'.")
    return dict(filters)


# ---------------------------------------------------------------- endpoint groups


def get_group(s: Session, group_id: str) -> EndpointGroup:
    group = s.get(EndpointGroup, group_id)
    if group is None:
        raise NotFound(f"Could not find endpoint group: {group_id}.")
    return group


def list_groups(s: Session, *, name: str | None = None) -> list[EndpointGroup]:
    query = select(EndpointGroup).order_by(EndpointGroup.name, EndpointGroup.id)
    if name is not None:
        query = query.where(EndpointGroup.name == name)
    return list(s.scalars(query))


def create_group(s: Session, fields: dict) -> EndpointGroup:
    group = EndpointGroup(id=new_id(), name=fields["name"],
                          description=fields.get("description"),
                          filters=_check_filters(fields["filters"]))
    s.add(group)
    _flush(s, "endpoint_group", group.id)
    return group


def update_group(s: Session, group_id: str, fields: dict) -> EndpointGroup:
    group = get_group(s, group_id)
    if "filters" in fields:
        group.filters = _check_filters(fields["filters"])
    if "name" in fields:
        group.name = fields["name"]
    if "description" in fields:
        group.description = fields["description"]
    s.flush()
    return group


def delete_group(s: Session, group_id: str) -> None:
    """The group and its project associations."""
    group = get_group(s, group_id)
    s.execute(delete(ProjectEndpointGroup).where(
        ProjectEndpointGroup.endpoint_group_id == group.id))
    s.delete(group)


def endpoints_of_group(s: Session, group_id: str) -> list[CatalogEndpoint]:
    return endpoints_matching(s, get_group(s, group_id).filters)


# ---------------------------------------------------------------- groups and projects


def add_group_to_project(s: Session, group_id: str, project_id: str) -> None:
    get_project(s, project_id)
    get_group(s, group_id)
    if s.get(ProjectEndpointGroup, (group_id, project_id)) is not None:
        raise _conflict("project_endpoint_group", "Duplicate entry")
    s.add(ProjectEndpointGroup(endpoint_group_id=group_id, project_id=project_id))
    _flush(s, "project_endpoint_group", "Duplicate entry")


def get_group_in_project(s: Session, group_id: str, project_id: str) -> ProjectEndpointGroup:
    get_project(s, project_id)
    get_group(s, group_id)
    row = s.get(ProjectEndpointGroup, (group_id, project_id))
    if row is None:
        raise NotFound(f"Could not find endpoint group {group_id} associated with project "
                       f"{project_id}.")
    return row


def remove_group_from_project(s: Session, group_id: str, project_id: str) -> None:
    s.delete(get_group_in_project(s, group_id, project_id))


def projects_of_group(s: Session, group_id: str) -> list[Project]:
    get_group(s, group_id)
    return list(s.scalars(select(Project).join(
        ProjectEndpointGroup, ProjectEndpointGroup.project_id == Project.id).where(
        ProjectEndpointGroup.endpoint_group_id == group_id).order_by(Project.name, Project.id)))


def groups_of_project(s: Session, project_id: str) -> list[EndpointGroup]:
    get_project(s, project_id)
    return list(s.scalars(select(EndpointGroup).join(
        ProjectEndpointGroup, ProjectEndpointGroup.endpoint_group_id == EndpointGroup.id).where(
        ProjectEndpointGroup.project_id == project_id).order_by(EndpointGroup.name,
                                                                EndpointGroup.id)))


# ---------------------------------------------------------------- single endpoints


def add_endpoint_to_project(s: Session, project_id: str, endpoint_id: str) -> None:
    get_endpoint(s, endpoint_id)
    get_project(s, project_id)
    if s.get(ProjectEndpoint, (endpoint_id, project_id)) is not None:
        raise _conflict("project_endpoint", "Duplicate entry")
    s.add(ProjectEndpoint(endpoint_id=endpoint_id, project_id=project_id))
    _flush(s, "project_endpoint", "Duplicate entry")


def check_endpoint_in_project(s: Session, project_id: str, endpoint_id: str) -> ProjectEndpoint:
    get_endpoint(s, endpoint_id)
    get_project(s, project_id)
    row = s.get(ProjectEndpoint, (endpoint_id, project_id))
    if row is None:
        raise NotFound(f"Endpoint {endpoint_id} not found in project {project_id}.")
    return row


def remove_endpoint_from_project(s: Session, project_id: str, endpoint_id: str) -> None:
    s.delete(check_endpoint_in_project(s, project_id, endpoint_id))


def endpoints_of_project(s: Session, project_id: str) -> list[CatalogEndpoint]:
    """The endpoints associated with the project, directly or through its endpoint groups."""
    get_project(s, project_id)
    ids = set(s.scalars(select(ProjectEndpoint.endpoint_id).where(
        ProjectEndpoint.project_id == project_id)))
    groups = s.scalars(select(EndpointGroup).join(
        ProjectEndpointGroup, ProjectEndpointGroup.endpoint_group_id == EndpointGroup.id).where(
        ProjectEndpointGroup.project_id == project_id))
    endpoints = list(s.scalars(select(CatalogEndpoint)))
    for group in groups:
        ids |= group_endpoint_ids(group.filters, endpoints)
    return [ep for ep in sorted(endpoints, key=lambda e: (e.service_id, e.interface, e.id))
            if ep.id in ids]


def projects_of_endpoint(s: Session, endpoint_id: str) -> list[Project]:
    get_endpoint(s, endpoint_id)
    return list(s.scalars(select(Project).join(
        ProjectEndpoint, ProjectEndpoint.project_id == Project.id).where(
        ProjectEndpoint.endpoint_id == endpoint_id).order_by(Project.name, Project.id)))
