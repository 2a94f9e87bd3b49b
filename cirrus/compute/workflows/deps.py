"""What a workflow needs, named: the database, the bus and the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

from cirrus.agent.rpcapi import AgentAPI
from cirrus.bus import Bus
from cirrus.config import Settings
from cirrus.db.engine import Database
from cirrus.scheduler.rpcapi import SchedulerAPI

# One logger for the conductor role's workflows, so an operator follows a request through
# the conductor under one name whichever workflow ran it.
log = logging.getLogger("cirrus.compute.conductor")


@dataclass(frozen=True)
class WorkflowDeps:
    db: Database
    bus: Bus
    settings: Settings

    @cached_property
    def agents(self) -> AgentAPI:
        """The typed client of the agents' messages (cirrus.agent.rpcapi)."""
        return AgentAPI(self.bus)

    @cached_property
    def scheduler(self) -> SchedulerAPI:
        """The typed client of the scheduler's messages (cirrus.scheduler.rpcapi)."""
        return SchedulerAPI(self.bus)
