"""Agent reports: an agent's heartbeat, its resources and the VMs it runs.

Every report refreshes the agent's service row (its liveness); a full report also writes
the host's compute node (what the scheduler places against); a report that lists the VMs
is reconciled against the database (cirrus.hosts.reconcile).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.agent.rpcapi import agent_topic
from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.engine import Database

from .heartbeat import record_heartbeat
from .liveness import AGENT_BINARY, DHCP_BINARY, L3_BINARY
from .reconcile import Reconciler
from .records import record_node


def record_report(db: Database, settings: Settings, host: str, stats: dict[str, Any] | None,
                  overlay_ip: str | None = None, dhcp: bool = False,
                  l3: bool = False) -> None:
    """The agent's heartbeat, and its compute node (with its VTEP) when the report carries
    `stats`; with `dhcp`, also the heartbeat of its DHCP service
    (cirrus.network.dhcp.control); with `l3`, of its L3 service (cirrus.network.l3)."""

    def record(s: Session) -> None:
        record_heartbeat(s, host, AGENT_BINARY, agent_topic(host),
                         settings.default_availability_zone)
        if dhcp:
            record_heartbeat(s, host, DHCP_BINARY, agent_topic(host),
                             settings.default_availability_zone)
        if l3:
            record_heartbeat(s, host, L3_BINARY, agent_topic(host),
                             settings.default_availability_zone)
        if stats:
            record_node(s, settings, host, stats).overlay_ip = overlay_ip or None

    try:
        db.run(record)
    except IntegrityError:
        # A new host's first reports (a heartbeat and the full one, queued while no
        # conductor ran) handled at once: the other worker inserted its rows first, so
        # this one now finds and updates them.
        db.run(record)


def handle_report(ctx: RequestContext, report: dict[str, Any], *, db: Database, settings: Settings,
                  reconciler: Reconciler) -> None:
    """Record an agent's report, then reconcile the VMs it lists (if it lists them)."""
    host = report["host"]
    record_report(db, settings, host, report.get("stats"), report.get("overlay_ip"),
                  dhcp=bool(report.get("dhcp")), l3=bool(report.get("l3")))
    if report.get("instances") is not None:
        reconciler.reconcile(ctx, host, {k: int(v) for k, v in report["instances"].items()},
                             startup=bool(report.get("startup")),
                             taken_at=report.get("taken_at"))
