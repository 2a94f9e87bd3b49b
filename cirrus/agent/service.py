"""The host agent: drives the virt driver for one host. Talks to the rest only through the bus.

On start it reports its capacity and every VM the driver has, so the conductor can reconcile
what the database says with what really runs; then it heartbeats and re-reports periodically.
Work on one instance is serialised by a per-instance lock, and a destroyed instance is
remembered so that a spawn arriving after its destroy is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from cirrus.agent import rpcapi
from cirrus.agent.nics import NicStore
from cirrus.agent.rpcapi import agent_topic
from cirrus.bus import Bus
from cirrus.compute.rpcapi import (
    AgentReport,
    ConductorAPI,
    ResizeResult,
    ShelveResult,
    SnapshotResult,
    SpawnResult,
    TaskResult,
)
from cirrus.compute.states import NOSTATE, SHUTDOWN
from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.network.dataplane import Dataplane, load_dataplane
from cirrus.network.dhcp.model import DhcpNetwork
from cirrus.network.dhcp.server import DhcpServer, load_dhcp
from cirrus.network.l3.agent import RouterHost, load_routers
from cirrus.network.l3.model import RouterConfig
from cirrus.network.model import NetworkPeer, Nic
from cirrus.network.port_filter import HostFilterState
from cirrus.storage.filestore import snapshot_staging_path
from cirrus.virt.driver import InstanceSpec, VirtDriver

log = logging.getLogger(__name__)
Received = Mapping[str, Any]  # a payload as a direct caller may pass it: its wire form


class Agent:
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
        # The VXLAN peers last sent (network id -> [NetworkPeer dicts]), kept for a restart.
        self.peers = NicStore(Path(settings.data_dir) / "agents" / host / "peers.json")
        self._peers_lock = threading.Lock()
        self._peers_taken_at: dict[str, float] = {}  # network id -> its view applied last
        self.filter_state = Path(settings.data_dir) / "agents" / host / "firewall.json"
        # dhcp: the networks this host serves DHCP for (None: it serves none).
        if dhcp is None and settings.dhcp_agent:
            dhcp = load_dhcp(self.dataplane, Path(settings.data_dir) / "agents" / host / "dhcp",
                             netns=getattr(self.dataplane, "netns", None))
        self.dhcp = dhcp
        self._dhcp_stamps: dict[str, float] = {}
        self._dhcp_lock = threading.Lock()
        # l3: the routers this host runs (None: it runs none).
        if routers is None and settings.l3_agent:
            routers = load_routers(self.dataplane,
                                   Path(settings.data_dir) / "agents" / host / "l3",
                                   netns=getattr(self.dataplane, "netns", None))
        self.routers = routers
        self._l3_stamps: dict[str, float] = {}
        self._l3_lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._destroyed: OrderedDict[str, None] = OrderedDict()
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

    def _periodic(self) -> None:
        since_sync = since_cache = 0.0
        interval = self.settings.heartbeat_interval
        while not self._stop.wait(interval):
            since_sync += interval
            full = since_sync >= self.settings.sync_interval
            if full:
                since_sync = 0.0
            try:
                self.report(RequestContext.admin(), full=full)
            except Exception:
                log.exception("agent %s: report failed", self.host)
            if self.dhcp is not None:
                try:
                    self.dhcp.check()
                except Exception:
                    log.exception("agent %s: DHCP check failed", self.host)
            # The first pass comes one interval after start, as Nova's periodic task does; it
            # never waits for an image's lock, so the heartbeat is not held up by a download.
            since_cache += interval
            if 0 < self.settings.image_cache_interval <= since_cache:
                since_cache = 0.0
                try:
                    self.driver.expire_image_cache()
                except Exception:
                    log.exception("agent %s: image cache expiry failed", self.host)

    def report(self, ctx: RequestContext, full: bool, startup: bool = False) -> None:
        """Heartbeat; with `full`, also capacity and every VM, for the conductor to reconcile.

        `taken_at` says when the VM list was read, so the conductor can leave alone what
        changed after; `startup` says no work from before this agent started is in flight.
        """
        overlay_ip = self.settings.overlay_local_ip or None
        dhcp = self.dhcp is not None
        l3 = self.routers is not None
        report = AgentReport(host=self.host, overlay_ip=overlay_ip, dhcp=dhcp, l3=l3)
        if full:
            report = AgentReport(host=self.host,
                                 stats=dataclasses.asdict(self.driver.host_stats()),
                                 taken_at=time.time(), instances=self.driver.list_instances(),
                                 startup=startup, overlay_ip=overlay_ip, dhcp=dhcp, l3=l3)
        self.conductor.agent_report(ctx, report)

    # ---- work
    def _lock(self, uuid: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(uuid)
            if lock is None:
                lock = self._locks[uuid] = threading.Lock()
            return lock

    # ---- networking
    def _replug(self) -> None:
        """Make the bridges and taps of every VM this host has, and its firewall from
        scratch, before anything else: after a host restart they are gone, and a VM must
        never start without them."""
        # The firewall is applied once, at the end; if it cannot be (no nft, no
        # br_netfilter) the agent does not start: its VMs must not run unfiltered.
        with self.dataplane.batch():
            self._replug_nics()
            if self.filter_state.exists():
                try:
                    saved = HostFilterState.from_dict(json.loads(self.filter_state.read_text()))
                except (OSError, ValueError, KeyError, TypeError):
                    log.exception("the saved security groups of %s are unreadable; waiting "
                                  "for the conductor's", self.host)
                else:
                    self.dataplane.update_security_groups(saved)

    def _replug_nics(self) -> None:
        running = self.driver.list_instances()
        for network_id, peers in self.peers.all().items():  # before the VXLAN devices
            try:
                self.dataplane.set_peers(network_id, _peers(peers))
            except Exception:
                log.exception("restoring the peers of network %s on %s failed", network_id,
                              self.host)
        for uuid, nics in self.nics.all().items():
            if uuid not in running:
                self._unplug(uuid, self.nics.pop(uuid))
                continue
            for nic in nics:
                try:
                    self.dataplane.plug(Nic.from_dict(nic))
                except Exception:
                    log.exception("re-plugging port %s of %s on %s failed", nic["port_id"],
                                  uuid, self.host)

    def _plug(self, uuid: str, nics: list[dict]) -> None:
        for nic in nics:
            self.dataplane.plug(Nic.from_dict(nic))
        self.nics.set(uuid, nics)

    def _unplug(self, uuid: str, nics: list[dict]) -> None:
        for nic in nics:
            try:
                self.dataplane.unplug(nic["port_id"], nic["network_id"])
            except Exception:
                log.exception("unplugging port %s of %s on %s failed", nic["port_id"], uuid,
                              self.host)

    def update_network_peers(self, ctx: RequestContext,
                             payload: rpcapi.NetworkPeers | Received) -> None:
        """The other hosts of this host's VXLAN networks (l2, issue 14): each listed
        network's forwarding database becomes its list; with `full`, unlisted ones are
        emptied. Kept on disk first, so a restart rebuilds the same."""
        request = rpcapi.NetworkPeers.coerce(payload)
        networks = {k: list(v) for k, v in request.networks.items()}
        taken_at = request.taken_at
        with self._peers_lock:
            if request.full:
                networks = {**{k: [] for k in self.peers.all()}, **networks}
            if taken_at is not None:  # an older view than one applied: out of order, dropped
                networks = {k: v for k, v in networks.items()
                            if self._peers_taken_at.get(k, 0.0) <= taken_at}
            for network_id, peers in networks.items():
                if taken_at is not None:
                    self._peers_taken_at[network_id] = taken_at
                self.peers.set(network_id, peers)
                try:
                    self.dataplane.set_peers(network_id, _peers(peers))
                except Exception:
                    log.exception("updating the peers of network %s on %s failed", network_id,
                                  self.host)
        log.info("network peers on %s: %d networks updated%s", self.host, len(networks),
                 " (full)" if request.full else "")

    def update_security_groups(self, ctx: RequestContext,
                               payload: rpcapi.UpdateSecurityGroups | Received) -> None:
        """Apply the host's filter state (issue 14, sg), kept on disk for the next start."""
        state = rpcapi.UpdateSecurityGroups.coerce(payload).state
        self.dataplane.update_security_groups(HostFilterState.from_dict(state))
        self.filter_state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.filter_state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.chmod(0o600)
        tmp.replace(self.filter_state)

    def attach_interface(self, ctx: RequestContext,
                         payload: rpcapi.AttachInterface | Received) -> dict:
        request = rpcapi.AttachInterface.coerce(payload)
        uuid, nic = request.uuid, request.nic
        with self._lock(uuid):
            self.dataplane.plug(Nic.from_dict(nic))
            try:
                others = [n for n in self.nics.get(uuid) if n["port_id"] != nic["port_id"]]
                self.driver.attach_interface(uuid, nic, server_nics=[*others, nic])
            except Exception:
                self._unplug(uuid, [nic])
                raise
            self.nics.add(uuid, nic)
        log.info("attached port %s to %s on %s as %s", nic["port_id"], uuid, self.host,
                 nic["name"])
        return {"attached": nic["port_id"]}

    def detach_interface(self, ctx: RequestContext,
                         payload: rpcapi.DetachInterface | Received) -> dict:
        request = rpcapi.DetachInterface.coerce(payload)
        uuid, nic = request.uuid, request.nic
        with self._lock(uuid):
            self.driver.detach_interface(uuid, nic)
            self._unplug(uuid, [nic])
            self.nics.remove(uuid, nic["port_id"])
        log.info("detached port %s from %s on %s", nic["port_id"], uuid, self.host)
        return {"detached": nic["port_id"]}

    # ---- volumes (issue 15)
    def attach_volume(self, ctx: RequestContext,
                      payload: rpcapi.AttachVolume | Received) -> dict:
        request = rpcapi.AttachVolume.coerce(payload)
        with self._lock(request.uuid):
            device = self.driver.attach_volume(request.uuid, request.volume)
        log.info("attached volume %s to %s on %s as %s", request.volume.get("volume_id"),
                 request.uuid, self.host, device)
        return {"device": device}

    def detach_volume(self, ctx: RequestContext,
                      payload: rpcapi.DetachVolume | Received) -> dict:
        request = rpcapi.DetachVolume.coerce(payload)
        with self._lock(request.uuid):
            self.driver.detach_volume(request.uuid, request.volume_id, timeout=request.timeout)
        log.info("detached volume %s from %s on %s", request.volume_id, request.uuid,
                 self.host)
        return {"detached": request.volume_id}

    def extend_volume(self, ctx: RequestContext,
                      payload: rpcapi.ExtendAttachedVolume | Received) -> dict:
        request = rpcapi.ExtendAttachedVolume.coerce(payload)
        with self._lock(request.uuid):
            self.driver.extend_volume(request.uuid, request.volume_id, request.new_size)
        log.info("volume %s of %s on %s extended to %d GiB", request.volume_id, request.uuid,
                 self.host, request.new_size)
        return {"extended": request.volume_id}

    def _forget_lock(self, uuid: str) -> None:
        with self._locks_guard:
            self._locks.pop(uuid, None)

    def spawn(self, ctx: RequestContext, payload: rpcapi.SpawnInstance | Received) -> None:
        request = rpcapi.SpawnInstance.coerce(payload)
        spec = InstanceSpec.from_dict(request.spec)
        result = SpawnResult(uuid=spec.uuid, host=self.host, ok=False, task=request.task)
        with self._lock(spec.uuid):
            if spec.uuid in self._destroyed:
                log.info("spawn of %s on %s refused: deleted before it was built", spec.uuid,
                         self.host)
                result = replace(result, error="The instance was deleted before it was built.")
            elif self.driver.power_state(spec.uuid) != NOSTATE:
                # A spawn delivered twice (bus redelivery, reconcile re-drive): already built.
                log.info("spawn of %s on %s: already built", spec.uuid, self.host)
                result = replace(result, ok=True,
                                 power_state=self.driver.power_state(spec.uuid))
            else:
                try:
                    # Bridges and taps first: the VM must find them when it starts.
                    self._plug(spec.uuid, [nic.to_dict() for nic in spec.nics])
                    self.driver.spawn(spec)
                    log.info("spawned %s on %s", spec.uuid, self.host)
                    result = replace(result, ok=True,
                                     power_state=self.driver.power_state(spec.uuid))
                except Exception as exc:
                    log.warning("spawn of %s on %s failed: %s", spec.uuid, self.host, exc)
                    result = replace(result, error=str(exc) or type(exc).__name__,
                                     details=traceback.format_exc())
                    self._safe_destroy(spec.uuid)
        self.conductor.spawn_result(ctx, result)

    def _safe_destroy(self, uuid: str) -> None:
        try:
            self.driver.destroy(uuid)
        except Exception:
            log.exception("clean-up of %s on %s failed", uuid, self.host)
        self._unplug(uuid, self.nics.pop(uuid))

    def destroy(self, ctx: RequestContext, payload: rpcapi.DestroyInstance | Received) -> dict:
        uuid = rpcapi.DestroyInstance.coerce(payload).uuid
        with self._lock(uuid):
            self._destroyed[uuid] = None
            while len(self._destroyed) > 10000:
                self._destroyed.popitem(last=False)
            self.driver.destroy(uuid)
            self._unplug(uuid, self.nics.pop(uuid))
        self._forget_lock(uuid)
        log.info("destroyed %s on %s", uuid, self.host)
        return {"uuid": uuid, "destroyed": True}

    def power(self, ctx: RequestContext, payload: rpcapi.PowerInstance | Received) -> None:
        request = rpcapi.PowerInstance.coerce(payload)
        uuid, action = request.uuid, request.action
        result = TaskResult(uuid=uuid, host=self.host, task=request.task, ok=False)
        with self._lock(uuid):
            try:
                if action == "stop":
                    self.driver.power_off(uuid)
                elif action == "start":
                    self.driver.power_on(uuid)
                elif action in ("reboot", "reboot_hard"):
                    self.driver.reboot(uuid, hard=action == "reboot_hard")
                elif action in ("pause", "unpause", "suspend", "resume"):  # comp-a
                    getattr(self.driver, action)(uuid)
                else:
                    raise ValueError(f"unknown power action {action!r}")
                result = replace(result, ok=True)
                log.info("%s of %s on %s done", action, uuid, self.host)
            except Exception as exc:
                log.warning("%s of %s on %s failed: %s", action, uuid, self.host, exc)
                result = replace(result, error=str(exc) or type(exc).__name__,
                                 details=traceback.format_exc())
            result = replace(result, power_state=self.driver.power_state(uuid))
        self.conductor.task_result(ctx, result)

    def rebuild(self, ctx: RequestContext, payload: rpcapi.RebuildInstance | Received) -> None:
        """A new root disk and config drive from the spec, the NICs left plugged (comp-a)."""
        request = rpcapi.RebuildInstance.coerce(payload)
        spec = InstanceSpec.from_dict(request.spec)
        result = TaskResult(uuid=spec.uuid, host=self.host, task=request.task, ok=False)
        with self._lock(spec.uuid):
            try:
                self._plug(spec.uuid, [nic.to_dict() for nic in spec.nics])
                self.driver.rebuild(spec)
                if request.stopped:
                    self.driver.power_off(spec.uuid)
                result = replace(result, ok=True)
                log.info("rebuilt %s on %s", spec.uuid, self.host)
            except Exception as exc:
                log.warning("rebuild of %s on %s failed: %s", spec.uuid, self.host, exc)
                result = replace(result, error=str(exc) or type(exc).__name__,
                                 details=traceback.format_exc())
            result = replace(result, power_state=self.driver.power_state(spec.uuid))
        self.conductor.task_result(ctx, result)

    def snapshot(self, ctx: RequestContext, payload: rpcapi.SnapshotInstance | Received) -> None:
        """Write the root disk's flat copy to the staging file the conductor named, in the
        shared image directory, and report; the conductor imports it into the image store."""
        request = rpcapi.SnapshotInstance.coerce(payload)
        uuid = request.uuid
        result = SnapshotResult(uuid=uuid, image_id=request.image_id, file=request.file,
                                host=self.host, ok=False)
        target = snapshot_staging_path(self.settings.effective_image_dir, request.file)
        with self._lock(uuid):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                self.driver.snapshot(uuid, target)
                result = replace(result, ok=True)
                log.info("snapshot of %s on %s written to %s", uuid, self.host, target)
            except Exception as exc:
                log.warning("snapshot of %s on %s failed: %s", uuid, self.host, exc)
                result = replace(result, error=str(exc) or type(exc).__name__,
                                 details=traceback.format_exc())
                target.unlink(missing_ok=True)
        self.conductor.snapshot_result(ctx, result)

    # ---- shelve (comp-b)
    def shelve(self, ctx: RequestContext, payload: rpcapi.ShelveInstance | Received) -> None:
        """Power the VM off, then write its root disk's flat copy to the staging file (as
        `snapshot`), and report; the conductor imports it into the shelved image."""
        request = rpcapi.ShelveInstance.coerce(payload)
        uuid = request.uuid
        result = ShelveResult(uuid=uuid, image_id=request.image_id, file=request.file,
                              host=self.host, ok=False)
        target = snapshot_staging_path(self.settings.effective_image_dir, request.file)
        with self._lock(uuid):
            try:
                if self.driver.power_state(uuid) == NOSTATE:
                    raise RuntimeError(f"no VM {uuid} on {self.host}")
                if self.driver.power_state(uuid) != SHUTDOWN:
                    self.driver.power_off(uuid)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.driver.snapshot(uuid, target)
                result = replace(result, ok=True)
                log.info("shelve of %s on %s: disk written to %s", uuid, self.host, target)
            except Exception as exc:
                log.warning("shelve of %s on %s failed: %s", uuid, self.host, exc)
                result = replace(result, error=str(exc) or type(exc).__name__,
                                 details=traceback.format_exc())
                target.unlink(missing_ok=True)
            result = replace(result, power_state=self.driver.power_state(uuid))
        self.conductor.shelve_result(ctx, result)

    def offload(self, ctx: RequestContext, payload: rpcapi.OffloadInstance | Received) -> dict:
        """Remove the VM, its disks and NICs from this host; not remembered as destroyed, so
        the server's unshelve may bring it back here."""
        uuid = rpcapi.OffloadInstance.coerce(payload).uuid
        with self._lock(uuid):
            self.driver.destroy(uuid)
            self._unplug(uuid, self.nics.pop(uuid))
        self._forget_lock(uuid)
        log.info("offloaded %s from %s", uuid, self.host)
        return {"uuid": uuid, "offloaded": True}

    # ---- resize and cold migrate (comp-b)
    def prepare_resize(self, ctx: RequestContext,
                       payload: rpcapi.PrepareResize | Received) -> dict:
        """Power the VM off before it moves away (it stays here until the resize is
        confirmed, for a revert)."""
        uuid = rpcapi.PrepareResize.coerce(payload).uuid
        with self._lock(uuid):
            if self.driver.power_state(uuid) not in (NOSTATE, SHUTDOWN):
                self.driver.power_off(uuid)
        return {"uuid": uuid, "power_state": self.driver.power_state(uuid)}

    def resize(self, ctx: RequestContext, payload: rpcapi.ResizeInstance | Received) -> None:
        """Resize the VM in place if this host has it; else build it here (moved from
        another host) with the new flavor; and report."""
        request = rpcapi.ResizeInstance.coerce(payload)
        spec = InstanceSpec.from_dict(request.spec)
        uuid = spec.uuid
        result = ResizeResult(uuid=uuid, host=self.host, task=request.task, ok=False)
        with self._lock(uuid):
            here = self.driver.power_state(uuid) != NOSTATE
            try:
                if here:
                    self.driver.resize(uuid, spec, request.power_on)
                else:
                    self._destroyed.pop(uuid, None)
                    self._plug(uuid, [nic.to_dict() for nic in spec.nics])
                    self.driver.spawn(spec)
                    if not request.power_on:
                        self.driver.power_off(uuid)
                result = replace(result, ok=True)
                log.info("resize of %s on %s done", uuid, self.host)
            except Exception as exc:
                log.warning("resize of %s on %s failed: %s", uuid, self.host, exc)
                result = replace(result, error=str(exc) or type(exc).__name__,
                                 details=traceback.format_exc())
                if not here:  # half built here: nothing of it stays
                    self._safe_destroy(uuid)
            result = replace(result, power_state=self.driver.power_state(uuid))
        self.conductor.resize_result(ctx, result)

    # ---- DHCP (issue 14, dhcp)
    def _dhcp_fresh(self, network_id: str, stamp: float) -> bool:
        """Whether a message read at `stamp` is not older than the last one applied."""
        if stamp < self._dhcp_stamps.get(network_id, 0.0):
            log.info("dhcp: an older message for network %s ignored", network_id)
            return False
        self._dhcp_stamps[network_id] = stamp
        return True

    def sync_dhcp(self, ctx: RequestContext, payload: rpcapi.SyncDhcp | Received) -> None:
        request = rpcapi.SyncDhcp.coerce(payload)
        if self.dhcp is None:
            log.warning("dhcp: %s serves no DHCP (dhcp_agent off): network %s ignored",
                        self.host, request.network_id)
            return
        with self._dhcp_lock:
            if not self._dhcp_fresh(request.network_id, request.stamp):
                return
            if request.network is None:
                self.dhcp.remove(request.network_id)
            else:
                self.dhcp.sync(DhcpNetwork.from_dict(request.network))

    def sync_dhcp_all(self, ctx: RequestContext,
                      payload: rpcapi.SyncDhcpAll | Received) -> None:
        request = rpcapi.SyncDhcpAll.coerce(payload)
        if self.dhcp is None:
            return
        with self._dhcp_lock:
            stamps = self._dhcp_stamps
            wanted: dict[str, DhcpNetwork] = {}
            for net in (DhcpNetwork.from_dict(n) for n in request.networks):
                if stamps.get(net.network_id, 0.0) <= request.stamp:
                    wanted[net.network_id] = net
                    stamps[net.network_id] = request.stamp
            # What a newer single-network message set up stays as it is.
            for network_id, net in self.dhcp.served().items():
                if stamps.get(network_id, 0.0) > request.stamp:
                    wanted.setdefault(network_id, net)
            self.dhcp.sync_all(list(wanted.values()))

    # ---- routers (issue 14, l3)
    def _l3_fresh(self, router_id: str, stamp: float) -> bool:
        """Whether a message read at `stamp` is not older than the last one applied."""
        if stamp < self._l3_stamps.get(router_id, 0.0):
            log.info("l3: an older message for router %s ignored", router_id)
            return False
        self._l3_stamps[router_id] = stamp
        return True

    def sync_router(self, ctx: RequestContext, payload: rpcapi.SyncRouter | Received) -> None:
        request = rpcapi.SyncRouter.coerce(payload)
        if self.routers is None:
            log.warning("l3: %s runs no routers (l3_agent off): router %s ignored",
                        self.host, request.router_id)
            return
        with self._l3_lock:
            if not self._l3_fresh(request.router_id, request.stamp):
                return
            if request.router is None:
                self.routers.remove(request.router_id)
            else:
                self.routers.sync(RouterConfig.from_dict(request.router))

    def sync_routers_all(self, ctx: RequestContext,
                         payload: rpcapi.SyncRoutersAll | Received) -> None:
        request = rpcapi.SyncRoutersAll.coerce(payload)
        if self.routers is None:
            return
        with self._l3_lock:
            stamps = self._l3_stamps
            wanted: dict[str, RouterConfig] = {}
            for router in (RouterConfig.from_dict(r) for r in request.routers):
                if stamps.get(router.router_id, 0.0) <= request.stamp:
                    wanted[router.router_id] = router
                    stamps[router.router_id] = request.stamp
            # What a newer single-router message set up stays as it is.
            for router_id, router in self.routers.served().items():
                if stamps.get(router_id, 0.0) > request.stamp:
                    wanted.setdefault(router_id, router)
            self.routers.sync_all(list(wanted.values()))

    def list_instances(self, ctx: RequestContext,
                       payload: rpcapi.ListInstances | Received) -> dict[str, int]:
        return self.driver.list_instances()

    def console_output(self, ctx: RequestContext,
                       payload: rpcapi.ConsoleOutput | Received) -> dict[str, str]:
        request = rpcapi.ConsoleOutput.coerce(payload)
        return {"output": self.driver.console_output(request.uuid, request.length)}

    def diagnostics(self, ctx: RequestContext,
                    payload: rpcapi.InstanceDiagnostics | Received) -> dict:
        request = rpcapi.InstanceDiagnostics.coerce(payload)
        return self.driver.diagnostics(request.uuid)


def _peers(peers: list[dict]) -> tuple[NetworkPeer, ...]:
    return tuple(NetworkPeer.from_dict(peer) for peer in peers)
