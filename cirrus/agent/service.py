"""The host agent: drives the virt driver for one host. Talks to the rest only through the bus.

On start it reports its capacity and every VM the driver has, so the conductor can reconcile
what the database says with what really runs; then it heartbeats and re-reports periodically.
`Agent` is assembled from a part per concern (cirrus.agent.base says which); this module
sets up their state and starts and stops the agent.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from cirrus.agent import rpcapi
from cirrus.agent.dhcp import DhcpHandlers
from cirrus.agent.instances import InstanceHandlers
from cirrus.agent.l3 import RouterHandlers
from cirrus.agent.nics import NicStore
from cirrus.agent.reporting import Reporting
from cirrus.agent.rpcapi import agent_topic
from cirrus.agent.volumes import VolumeHandlers
from cirrus.bus import Bus
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.network.dataplane import Dataplane, load_dataplane
from cirrus.network.dhcp.server import DhcpServer, load_dhcp
from cirrus.network.l3.agent import RouterHost, load_routers
from cirrus.virt.driver import VirtDriver


class Agent(VolumeHandlers, InstanceHandlers, DhcpHandlers, RouterHandlers, Reporting):
    def __init__(self, settings: Settings, bus: Bus, host: str, driver: VirtDriver,
                 dataplane: Dataplane | None = None, dhcp: DhcpServer | None = None,
                 routers: RouterHost | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.conductor = ConductorAPI(bus)
        self.host = host
        self.driver = driver
        self.dataplane = dataplane or load_dataplane(
            settings.network_dataplane, firewall=settings.firewall_driver,
            physical_interface_mappings=settings.physical_interface_mappings,
            overlay_local_ip=settings.overlay_local_ip)
        self.nics = NicStore(Path(settings.data_dir) / "agents" / host / "nics.json")
        # network.py: the VXLAN peers and the security groups, kept for a restart.
        self.peers = NicStore(Path(settings.data_dir) / "agents" / host / "peers.json")
        self._peers_lock = threading.Lock()
        self._peers_taken_at = {}
        self.filter_state = Path(settings.data_dir) / "agents" / host / "firewall.json"
        # dhcp: the networks this host serves DHCP for (None: it serves none).
        if dhcp is None and settings.dhcp_agent:
            dhcp = load_dhcp(self.dataplane, Path(settings.data_dir) / "agents" / host / "dhcp",
                             netns=getattr(self.dataplane, "netns", None))
        self.dhcp = dhcp
        self._dhcp_stamps = {}
        self._dhcp_lock = threading.Lock()
        # l3: the routers this host runs (None: it runs none).
        if routers is None and settings.l3_agent:
            routers = load_routers(self.dataplane,
                                   Path(settings.data_dir) / "agents" / host / "l3",
                                   netns=getattr(self.dataplane, "netns", None))
        self.routers = routers
        self._l3_stamps = {}
        self._l3_lock = threading.Lock()
        # instances.py: a lock per instance, the instances destroyed here.
        self._locks = {}
        self._locks_guard = threading.Lock()
        self._destroyed = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> None:
        self._replug()
        if self.dhcp is not None:  # from its own state: before any work, without the bus
            self.dhcp.restore()
        if self.routers is not None:  # l3: likewise, from its own state
            self.routers.restore()
        self.bus.subscribe(agent_topic(self.host), rpcapi.endpoints(self), workers=4)
        self.report(RequestContext.admin(), full=True, startup=True)
        self._thread = threading.Thread(target=self._periodic, name=f"agent-{self.host}-loop",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.bus.unsubscribe(agent_topic(self.host))
        if self._thread:
            self._thread.join(timeout=5)
