"""Reading a server's instance actions and their events (os-instance-actions)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import InstanceAction, InstanceActionEvent
from cirrus.errors import BadRequest


def list_actions(s: Session, uuid: str, *, limit: int | None = None,
                 changes_since: dt.datetime | None = None,
                 changes_before: dt.datetime | None = None,
                 marker: str | None = None) -> list[InstanceAction]:
    """Newest first; `limit`, `changes_since` and `marker` (a request id) page the list."""
    q = (select(InstanceAction).where(InstanceAction.instance_uuid == uuid)
         .order_by(InstanceAction.start_time.desc(), InstanceAction.id.desc()))
    if changes_since is not None:
        q = q.where(InstanceAction.updated_at >= changes_since)
    if changes_before is not None:
        q = q.where(InstanceAction.updated_at <= changes_before)
    if marker:
        row = get_action(s, uuid, marker)
        if row is None:
            raise BadRequest(f"Marker {marker} could not be found.")
        q = q.where(InstanceAction.id < row.id)
    if limit is not None:
        q = q.limit(limit)
    return list(s.scalars(q))


def get_action(s: Session, uuid: str, request_id: str) -> InstanceAction | None:
    return s.scalar(select(InstanceAction).where(InstanceAction.instance_uuid == uuid,
                                                 InstanceAction.request_id == request_id))


def events_of(s: Session, action: InstanceAction) -> list[InstanceActionEvent]:
    return list(s.scalars(select(InstanceActionEvent)
                          .where(InstanceActionEvent.action_id == action.id)
                          .order_by(InstanceActionEvent.id)))
