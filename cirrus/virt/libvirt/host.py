"""The host side of the libvirt driver: what the host has, which domains are this host's
instances and their power states, and the expiry of the image cache."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

from cirrus.virt.driver import HostStats
from cirrus.virt.libvirt import domain
from cirrus.virt.libvirt.connection import LibvirtBase
from cirrus.virt.libvirt.image_use import ImagesInUse, boot_files
from cirrus.virt.power import CRASHED, NOSTATE, PAUSED, RUNNING, SHUTDOWN, SUSPENDED

POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: SUSPENDED,
}


def _power_state(dom: libvirt.virDomain) -> int:
    """A domain that is off with a managed save image is suspended (comp-a)."""
    state = POWER_STATES.get(dom.state()[0], NOSTATE)
    if state == SHUTDOWN and dom.hasManagedSaveImage(0):
        return SUSPENDED
    return state


class HostSide(LibvirtBase):
    """What the agent reports of the host and its domains."""

    def host_stats(self) -> HostStats:
        model, memory_mb, cpus, _mhz, _nodes, sockets, cores, threads = self._call(
            "reading host info", lambda c: c.getInfo())
        caps = ET.fromstring(self._call("reading capabilities", lambda c: c.getCapabilities()))
        return HostStats(
            hypervisor_type="QEMU",
            hypervisor_version=self._call("reading the version", lambda c: c.getVersion()),
            vcpus=cpus,
            memory_mb=memory_mb, local_gb=self.pools.local_gb(),
            storage_pools=self.pools.capacity(),
            capabilities=self.capabilities.to_dict(),
            cpu_info={"arch": model, "model": caps.findtext("host/cpu/model") or "",
                      "vendor": caps.findtext("host/cpu/vendor") or "",
                      "topology": {"sockets": sockets, "cores": cores, "threads": threads},
                      "features": [f.get("name") for f in caps.findall("host/cpu/feature")]})

    def list_instances(self) -> dict[str, int]:
        """This host's instances: Cirrus domains whose files are in one of its pools. Other
        Cirrus domains on the same libvirtd (another cloud, a test) are not ours to report,
        or the conductor would destroy them as unknown."""
        domains = self._call("listing domains", lambda c: c.listAllDomains(0))
        result = {}
        for dom in domains:
            with contextlib.suppress(libvirt.libvirtError):  # gone while we looked
                if domain.is_cirrus_domain(dom.name()) and self._owns(dom):
                    result[dom.UUIDString()] = _power_state(dom)
        return result

    def _owns(self, dom: libvirt.virDomain) -> bool:
        meta = domain.instance_metadata(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        inst_dir = meta.get("instance-dir")
        if not inst_dir:
            return False
        return Path(inst_dir).parent.resolve() in self._pool_dirs

    @property
    def _pool_dirs(self) -> set[Path]:
        return {path.resolve() for path in self.pools.pools.values()}

    def power_state(self, uuid: str) -> int:
        dom = self._domain(uuid)
        if dom is None:
            return NOSTATE
        return self._call("reading state", lambda c: _power_state(dom))

    def expire_image_cache(self) -> None:
        """Remove cached images no instance in this host's pools has used for
        `image_cache_max_age` seconds (image_use.py says how use is known)."""
        def domain_boot_files(uuid: str) -> list[str]:
            dom = self._domain(uuid)
            if dom is None:
                return []
            return boot_files(self._call(f"reading {uuid}", lambda c: dom.XMLDesc(
                libvirt.VIR_DOMAIN_XML_INACTIVE)))
        self.images.expire(self.settings.image_cache_max_age, ImagesInUse(
            self.pools.pools.values(), self.images.cache_dir, domain_boot_files))
