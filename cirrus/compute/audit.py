"""The instance usage audit log (Nova's os-instance_usage_audit_log), derived.

Nova's compute hosts run a periodic `instance_usage_audit` task once per audit period (a
month) and record a task log per host: how many instances were active on the host during
the period, and how many of them failed to be audited. Cirrus runs no such task: the
usage is in the instances table already (`launched_at`, `terminated_at`, `host`), so the
task log of a period is computed when asked:

- the period is the last completed calendar month before the given time (Nova's default
  `instance_usage_audit_period`);
- the hosts are the agent services (disabled ones too: they may still hold instances);
- a host whose agent service existed before the period ended is DONE for that period, with
  `instances` = the instances on it launched before the period's end and not terminated
  before its beginning, and no errors (the count cannot fail); a host that joined later
  has not run for that period (`hosts_not_run`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cirrus.db.models import Instance
from cirrus.hosts import records


def last_completed_period(before: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The last calendar month that ended at or before `before` (naive UTC)."""
    end = dt.datetime(before.year, before.month, 1)
    begin = (dt.datetime(end.year - 1, 12, 1) if end.month == 1
             else dt.datetime(end.year, end.month - 1, 1))
    return begin, end


def _instances_on(s: Session, host: str, begin: dt.datetime, end: dt.datetime) -> int:
    query = (select(func.count()).select_from(Instance)
             .where(Instance.host == host, Instance.launched_at.is_not(None),
                    Instance.launched_at < end,
                    or_(Instance.terminated_at.is_(None), Instance.terminated_at >= begin)))
    return int(s.scalar(query) or 0)


def audit_log(s: Session, before: dt.datetime) -> dict[str, Any]:
    """Nova's audit log body for the last completed period before `before`."""
    begin, end = last_completed_period(before)
    hosts = records.agent_services(s)
    log: dict[str, dict[str, Any]] = {}
    not_run: list[str] = []
    for host, svc in sorted(hosts.items()):
        if svc.created_at is not None and svc.created_at >= end:
            not_run.append(host)
            continue
        count = _instances_on(s, host, begin, end)
        log[host] = {"state": "DONE", "instances": count, "errors": 0,
                     "message": f"Instance usage audit ran for host {host}, "
                                f"{count} instances in 0 seconds."}
    done = len(log)
    total_errors = 0
    status = "ALL" if done == len(hosts) else f"{done} of {len(hosts)}"
    return {"period_beginning": str(begin), "period_ending": str(end),
            "num_hosts": len(hosts), "num_hosts_done": done, "num_hosts_running": 0,
            "num_hosts_not_run": len(not_run), "hosts_not_run": not_run,
            "total_instances": sum(entry["instances"] for entry in log.values()),
            "total_errors": total_errors,
            "overall_status": f"{status} hosts done. {total_errors} errors.",
            "log": log}
