"""Cold resize on libvirt (comp-b): the domain off, its root disk grown with `qemu-img
resize`, its vCPUs and memory redefined, started again if it was running."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt.build import ROOT_DISK
from cirrus.virt.libvirt.domain import MAX_MEMORY_FACTOR
from cirrus.virt.libvirt.operations import Operations
from cirrus.virt.libvirt.qemuimg import qemu_img, virtual_size
from cirrus.virt.spec import InstanceSpec

log = logging.getLogger(__name__)
GIB = 1024 ** 3


def resized_xml(xml: str, vcpus: int, memory_mb: int) -> str:
    """The domain's XML with `vcpus` and `memory_mb` (KiB in libvirt's <memory>), its
    <maxMemory> MAX_MEMORY_FACTOR times that, as domain.domain_xml makes them."""
    root = ET.fromstring(xml)
    for tag in ("memory", "currentMemory"):
        node = root.find(tag)
        if node is not None:
            node.text, node.attrib = str(memory_mb * 1024), {"unit": "KiB"}
    vcpu = root.find("vcpu")
    if vcpu is not None:
        vcpu.text = str(vcpus)
    cell = root.find("cpu/numa/cell")
    if cell is not None:  # the one NUMA cell holds every vCPU and all the memory
        cell.attrib.update({"cpus": f"0-{vcpus - 1}", "memory": str(memory_mb * 1024),
                            "unit": "KiB"})
    most = root.find("maxMemory")
    if most is not None:
        most.set("unit", "KiB")
        most.text = str(memory_mb * 1024 * MAX_MEMORY_FACTOR)
    return ET.tostring(root, encoding="unicode")


class Resizing(Operations):
    def resize(self, uuid: str, spec: InstanceSpec, power_on: bool) -> None:
        dom = self._require(uuid)
        inst_dir = self.pools.find_instance_dir(uuid)
        if inst_dir is None:
            raise SpawnError(f"no files for instance {uuid} on {self.host}")
        if self._is_active(dom, uuid):
            self.power_off(uuid)
        disk = inst_dir / ROOT_DISK
        wanted = spec.root_gb * GIB
        # A disk never shrinks; a VM booted from a volume has no local root disk.
        if disk.exists() and wanted > virtual_size(disk, "qcow2"):
            qemu_img("resize", "-f", "qcow2", str(disk), str(wanted))
        xml = self._call(f"reading the domain of {uuid}",
                         lambda c: dom.XMLDesc(0))
        new_xml = resized_xml(xml, spec.vcpus, spec.memory_mb)
        self._call(f"redefining {uuid}", lambda c: c.defineXML(new_xml))
        log.info("resized %s to %d vCPU, %d MB, %d GB", uuid, spec.vcpus, spec.memory_mb,
                 spec.root_gb)
        if power_on:
            self._start(self._require(uuid), uuid)
