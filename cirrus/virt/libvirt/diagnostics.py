"""The libvirt driver's server diagnostics (Nova's standard format, 2.48): read from the
running domain (info, vCPUs, interface and block statistics) and its XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt.connection import LibvirtBase

_STATES = {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
           libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown", libvirt.VIR_DOMAIN_SHUTOFF: "shutdown",
           libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended"}


def _nic(dom: libvirt.virDomain, iface: ET.Element) -> dict[str, Any]:
    mac = iface.find("mac")
    target = iface.find("target")
    view: dict[str, Any] = {"mac_address": mac.get("address") if mac is not None else None,
                            "rx_rate": None, "tx_rate": None}
    names = ("rx_octets", "rx_packets", "rx_errors", "rx_drop",
             "tx_octets", "tx_packets", "tx_errors", "tx_drop")
    stats: tuple = (None,) * 8
    if target is not None and target.get("dev"):
        try:
            stats = tuple(dom.interfaceStats(target.get("dev")))
        except libvirt.libvirtError:
            pass
    view.update(zip(names, stats, strict=True))
    return view


def _disk(dom: libvirt.virDomain, disk: ET.Element) -> dict[str, Any]:
    target = disk.find("target")
    names = ("read_requests", "read_bytes", "write_requests", "write_bytes", "errors_count")
    stats: tuple = (None,) * 5
    if target is not None and target.get("dev"):
        try:
            stats = tuple(dom.blockStats(target.get("dev")))
        except libvirt.libvirtError:
            pass
    return dict(zip(names, stats, strict=True))


class Diagnostics(LibvirtBase):
    """`diagnostics(uuid)` of a running domain."""

    virt_type: str

    def diagnostics(self, uuid: str) -> dict:
        dom = self._require(uuid)

        def read(_conn: libvirt.virConnect) -> dict:
            state, max_kib, used_kib, ncpus, _cpu_ns = dom.info()
            if state != libvirt.VIR_DOMAIN_RUNNING:
                raise SpawnError(f"instance {uuid} is {_STATES.get(state, 'pending')}, "
                                 "not running")
            root = ET.fromstring(dom.XMLDesc(0))
            try:
                cpus = [{"id": int(n), "time": int(t), "utilisation": None}
                        for n, _st, t, _cpu in dom.vcpus()[0]]
            except libvirt.libvirtError:
                cpus = []
            disks = [d for d in root.findall("./devices/disk") if d.get("device") != "cdrom"]
            nics = [_nic(dom, i) for i in root.findall("./devices/interface")]
            # The config drive is the one read-only disk Cirrus gives a domain (build.py)
            # without a serial (a read-only volume has its id as serial).
            config_drive = any(d.find("readonly") is not None and not d.findtext("serial")
                               for d in disks)
            return {"state": "running", "driver": "libvirt", "hypervisor": self.virt_type,
                    "hypervisor_os": "linux", "uptime": None, "config_drive": config_drive,
                    "num_cpus": int(ncpus), "num_nics": len(nics), "num_disks": len(disks),
                    "memory_details": {"maximum": int(max_kib) // 1024,
                                       "used": int(used_kib) // 1024},
                    "cpu_details": cpus, "nic_details": nics,
                    "disk_details": [_disk(dom, d) for d in disks]}

        return self._call(f"reading diagnostics of {uuid}", read)
