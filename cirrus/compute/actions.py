"""Instance actions, their events, and faults: the record of what was done and what failed."""

from __future__ import annotations

from sqlalchemy import String, Text, literal, select, update
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


def record_event(s: Session, uuid: str, request_id: str, event: str, host: str | None,
                 result: str, traceback: str | None = None) -> None:
    """Record a finished event of the action started by `request_id` and finish the action.

    Two statements whatever the history: an INSERT ... SELECT finds the action, an UPDATE
    finishes it. Nothing happens if the request started no action.
    """
    now = utcnow()
    action_id = (select(InstanceAction.id)
                 .where(InstanceAction.instance_uuid == uuid, InstanceAction.request_id == request_id)
                 .order_by(InstanceAction.id.desc()).limit(1).scalar_subquery())
    events = InstanceActionEvent.__table__
    s.execute(events.insert().from_select(
        ["action_id", "event", "start_time", "finish_time", "result", "traceback", "host"],
        select(InstanceAction.id, literal(event), InstanceAction.start_time, literal(now),
               literal(result), literal(traceback, type_=Text), literal(host, type_=String))
        .where(InstanceAction.id == action_id)))
    values: dict = {"finish_time": now, "updated_at": now}
    if result == ERROR:
        values["message"] = ERROR
    # By (instance, request), not by id: MariaDB cannot UPDATE a table it sub-selects from.
    s.execute(update(InstanceAction)
              .where(InstanceAction.instance_uuid == uuid, InstanceAction.request_id == request_id)
              .values(**values).execution_options(synchronize_session=False))


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
