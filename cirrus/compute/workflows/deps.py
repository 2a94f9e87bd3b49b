"""What a workflow needs, named: the database, the bus and the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cirrus.bus import Bus
from cirrus.config import Settings
from cirrus.db.engine import Database

# One logger for the conductor role's workflows, so an operator follows a request through
# the conductor under one name whichever workflow ran it.
log = logging.getLogger("cirrus.compute.conductor")


@dataclass(frozen=True)
class WorkflowDeps:
    db: Database
    bus: Bus
    settings: Settings
