"""Instance actions, their events, and faults: the record of what was done and what failed."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import InstanceAction, InstanceActionEvent, InstanceFault, utcnow

SUCCESS, ERROR = "Success", "Error"


def start_action(s: Session, ctx: RequestContext, uuid: str, action: str) -> InstanceAction:
    row = InstanceAction(instance_uuid=uuid, request_id=ctx.request_id, action=action,
                         project_id=ctx.project_id, user_id=ctx.user_id, start_time=utcnow())
    s.add(row)
    s.flush()
    return row


def _action_for(s: Session, uuid: str, request_id: str) -> InstanceAction | None:
    return s.scalar(select(InstanceAction).where(InstanceAction.instance_uuid == uuid,
                                                 InstanceAction.request_id == request_id)
                    .order_by(InstanceAction.id.desc()).limit(1))


def record_event(s: Session, uuid: str, request_id: str, event: str, host: str | None,
                 result: str, traceback: str | None = None,
                 started: object | None = None) -> None:
    """Record a finished event of the action started by `request_id` and finish the action."""
    action = _action_for(s, uuid, request_id)
    if action is None:
        return
    now = utcnow()
    s.add(InstanceActionEvent(action_id=action.id, event=event, start_time=started or action.start_time,
                              finish_time=now, result=result, traceback=traceback, host=host))
    values: dict = {"finish_time": now, "updated_at": now}
    if result == ERROR:
        values["message"] = ERROR
    s.execute(update(InstanceAction).where(InstanceAction.id == action.id).values(**values))


def add_fault(s: Session, uuid: str, code: int, message: str, details: str = "",
              host: str | None = None) -> None:
    s.add(InstanceFault(instance_uuid=uuid, code=code, message=message[:255],
                        details=details or "", host=host))


def latest_faults(s: Session, uuids: list[str]) -> dict[str, InstanceFault]:
    if not uuids:
        return {}
    faults: dict[str, InstanceFault] = {}
    for fault in s.scalars(select(InstanceFault).where(InstanceFault.instance_uuid.in_(uuids))
                           .order_by(InstanceFault.id)):
        faults[fault.instance_uuid] = fault
    return faults
