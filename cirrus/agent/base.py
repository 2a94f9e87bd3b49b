"""What every part of the agent shares: its settings, bus, host, driver and dataplane.

The agent (cirrus.agent.service.Agent) is one object assembled from a part per concern:
instances.py (the VMs' messages), network.py (NICs, VXLAN peers, security groups), dhcp.py
and l3.py (what the host serves), reporting.py (heartbeats and the periodic work). Each part
declares the state it uses; `Agent.__init__` sets it all up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cirrus.agent.nics import NicStore
from cirrus.bus import Bus
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.config import Settings
from cirrus.network.dataplane import Dataplane
from cirrus.virt.driver import VirtDriver

# Every part logs as the agent did before it was split into modules, so that log filters
# and per-logger levels keep matching its lines.
log = logging.getLogger("cirrus.agent.service")
Received = Mapping[str, Any]  # a payload as a direct caller may pass it: its wire form


class AgentBase:
    settings: Settings
    bus: Bus
    conductor: ConductorAPI
    host: str
    driver: VirtDriver
    dataplane: Dataplane
    nics: NicStore  # what each VM has plugged, kept on disk (cirrus.agent.nics)
