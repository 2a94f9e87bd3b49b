"""Instance actions, their events, and faults: the record of what was done and what failed."""

from __future__ import annotations

from sqlalchemy import String, Text, bindparam, select, update
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import (
    InstanceAction,
    InstanceActionEvent,
    InstanceFault,
    Timestamp,
    utcnow,
)

SUCCESS, ERROR = "Success", "Error"


def start_action(s: Session, ctx: RequestContext, uuid: str, action: str) -> InstanceAction:
    row = InstanceAction(instance_uuid=uuid, request_id=ctx.request_id, action=action,
                         project_id=ctx.project_id, user_id=ctx.user_id, start_time=utcnow())
    s.add(row)
    s.flush()
    return row


def _event_statements():
    actions, events = InstanceAction.__table__, InstanceActionEvent.__table__
    mine = (actions.c.instance_uuid == bindparam("b_uuid"),
            actions.c.request_id == bindparam("b_request_id"))
    latest = (select(actions.c.id).where(*mine).order_by(actions.c.id.desc()).limit(1)
              .scalar_subquery())
    insert_event = events.insert().from_select(
        ["action_id", "event", "start_time", "finish_time", "result", "traceback", "host"],
        select(actions.c.id, bindparam("b_event", type_=String),
               actions.c.start_time, bindparam("b_now", type_=Timestamp),
               bindparam("b_result", type_=String), bindparam("b_traceback", type_=Text),
               bindparam("b_host", type_=String))
        .where(actions.c.id == latest))
    # By (instance, request), not by id: MariaDB cannot UPDATE a table it sub-selects from.
    finish = (update(actions).where(*mine)
              .values(finish_time=bindparam("b_now"), updated_at=bindparam("b_now"),
                      message=bindparam("b_message")))
    return insert_event, finish


# Built once: every workflow step records an event.
_INSERT_EVENT, _FINISH_ACTION = _event_statements()


def record_event(s: Session, uuid: str, request_id: str, event: str, host: str | None,
                 result: str, traceback: str | None = None) -> None:
    """Record a finished event of the action started by `request_id` and finish the action.

    Two statements whatever the history: an INSERT ... SELECT finds the action, an UPDATE
    finishes it. Nothing happens if the request started no action.
    """
    params = {"b_uuid": uuid, "b_request_id": request_id, "b_event": event, "b_now": utcnow(),
              "b_result": result, "b_traceback": traceback, "b_host": host,
              "b_message": ERROR if result == ERROR else None}
    s.execute(_INSERT_EVENT, params)
    s.execute(_FINISH_ACTION, params)


def add_fault(s: Session, uuid: str, code: int, message: str, details: str = "",
              host: str | None = None) -> None:
    if len(message) > 255:  # the column's size, as Nova's
        message = message[:252] + "..."
    s.add(InstanceFault(instance_uuid=uuid, code=code, message=message,
                        details=details or "", host=host))


def latest_faults(s: Session, uuids: list[str]) -> dict[str, InstanceFault]:
    if not uuids:
        return {}
    faults: dict[str, InstanceFault] = {}
    for fault in s.scalars(select(InstanceFault).where(InstanceFault.instance_uuid.in_(uuids))
                           .order_by(InstanceFault.id)):
        faults[fault.instance_uuid] = fault
    return faults
