"""NIC hot-plug and unplug on a libvirt domain, and telling a running guest about a new NIC.

The agent plugs every NIC (bridge + persistent tap) before `attach_interface` and unplugs after
`detach_interface`; this only points QEMU at the taps.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import libvirt

from cirrus.network.model import Nic
from cirrus.network.render import debian_interfaces
from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt import domain
from cirrus.virt.libvirt.connection import wait_until
from cirrus.virt.libvirt.drive import ConfigDrives

log = logging.getLogger(__name__)

DETACH_TIMEOUT = 10.0  # seconds a guest gets to release a hot-unplugged NIC
GUEST_INIT = "/usr/sbin/cirrus-guest-init"  # where cirrus/guest/README.md installs it
AGENT_TIMEOUT = 10  # seconds one guest agent command may take
CONFIGURE_NIC_TIMEOUT = 30.0  # seconds the guest gets to configure a hot-plugged NIC


class Interfaces(ConfigDrives):
    """NIC hot-plug and unplug."""

    def attach_interface(self, uuid: str, nic: dict,
                         server_nics: list[dict] | None = None) -> None:
        dom = self._require(uuid)
        if nic["mac"].lower() not in self._macs(dom, uuid, live=False):
            self._call(f"attaching port {nic['port_id']} to {uuid}",
                       lambda c: dom.attachDeviceFlags(domain.interface_xml(nic),
                                                       self._device_flags(dom, uuid)))
        server_nics = server_nics or [nic]
        self._note_nics(uuid, lambda _old: list(server_nics))
        if self._is_active(dom, uuid):
            self._configure_in_guest(dom, uuid, nic, server_nics)

    def _configure_in_guest(self, dom: libvirt.virDomain, uuid: str, nic: dict,
                            server_nics: list[dict]) -> None:
        """Tell the running guest about a hot-plugged NIC: `cirrus-guest-init configure-nic
        MAC NAME` through the QEMU guest agent, with the server's interfaces file on stdin
        (the script applies NAME's stanza: rename, address, routes, MTU, DNS). Best effort:
        a guest without the agent or the script keeps the NIC as the kernel made it, and
        the attach still stands; what happened is logged."""
        import libvirt_qemu

        nics = [Nic.from_dict(n) for n in server_nics]
        request = {"execute": "guest-exec", "arguments": {
            "path": GUEST_INIT, "arg": ["configure-nic", nic["mac"], nic["name"]],
            "input-data": base64.b64encode(debian_interfaces(nics).encode()).decode(),
            "capture-output": True}}
        try:
            answer = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), AGENT_TIMEOUT, 0)
            pid = json.loads(answer)["return"]["pid"]
            deadline = time.monotonic() + CONFIGURE_NIC_TIMEOUT
            while time.monotonic() < deadline:
                status = json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(
                    {"execute": "guest-exec-status", "arguments": {"pid": pid}}),
                    AGENT_TIMEOUT, 0))["return"]
                if status.get("exited"):
                    out = base64.b64decode(status.get("out-data") or "").decode(errors="replace")
                    log.info("guest of %s: configure-nic %s exited %s: %s", uuid, nic["name"],
                             status.get("exitcode"), out.strip())
                    return
                time.sleep(0.1)
            log.warning("guest of %s: configure-nic %s still running after %.0f s", uuid,
                        nic["name"], CONFIGURE_NIC_TIMEOUT)
        except (libvirt.libvirtError, ValueError, KeyError) as exc:
            log.warning("guest of %s: port %s attached but not configured in the guest "
                        "(no guest agent answer: %s)", uuid, nic["port_id"], exc)

    def detach_interface(self, uuid: str, nic: dict) -> None:
        dom = self._require(uuid)
        mac = nic["mac"].lower()
        live = self._is_active(dom, uuid)
        self._note_nics(uuid, lambda nics: [n for n in nics if n["port_id"] != nic["port_id"]])
        if mac not in self._macs(dom, uuid, live=False) and (
                not live or mac not in self._macs(dom, uuid, live=True)):
            return
        self._call(f"detaching port {nic['port_id']} from {uuid}",
                   lambda c: dom.detachDeviceFlags(domain.interface_xml(nic),
                                                   self._device_flags(dom, uuid)))
        # A live detach is a request to the guest (ACPI hot-unplug); the tap is freed only
        # once the guest lets go of the device.
        if live and not wait_until(lambda: mac not in self._macs(dom, uuid, live=True),
                              DETACH_TIMEOUT):
            raise SpawnError(f"the guest of {uuid} did not release port {nic['port_id']} "
                             f"within {DETACH_TIMEOUT:.0f} s")

    def _device_flags(self, dom: libvirt.virDomain, uuid: str) -> int:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if self._is_active(dom, uuid):
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        return flags

    def _macs(self, dom: libvirt.virDomain, uuid: str, live: bool) -> list[str]:
        flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
        return domain.interface_macs(self._call(f"reading {uuid}", lambda c: dom.XMLDesc(flags)))
