"""Libvirt domain XML for one Cirrus instance, as pure functions of plain data.

What a domain gets (docs/libvirt.md):
- type `kvm` or `qemu` (TCG), machine `pc` (i440fx: PCI hot-plug on the root bus, so NICs
  can be hot-plugged without spare PCIe root ports), ACPI and APIC;
- the flavor's vCPUs and memory: `<memory>` and `<currentMemory>` are the flavor's RAM,
  `<maxMemory>` is MAX_MEMORY_FACTOR times that with MEMORY_SLOTS DIMM slots (QEMU needs
  one NUMA cell for it), so a later resize can hot-plug memory and the virtio balloon can
  give it back; nothing is reserved on the host until a DIMM is plugged;
- virtio disks (root qcow2 overlay `vda`, config drive `vdb` read-only), virtio NICs on
  the persistent taps the agent's dataplane made (`type='ethernet'`, `managed='no'`), with
  the network's MTU, in NIC index order;
- the serial console appended to a file (console output reads it), a virtio-serial channel
  for the QEMU guest agent, a virtio RNG and a virtio balloon;
- direct kernel boot (`<kernel>`, `<initrd>`, `<cmdline>`) when the image names a kernel,
  else boot from the root disk;
- Cirrus metadata (instance directory, storage pool) so the driver finds an instance's
  files from its domain alone;
- volumes (VolumeDevice): a qcow2/raw file or a Ceph RBD image (a network disk with the
  libvirt secret holding the Ceph key), the volume id as serial, `<iotune>` from its QoS,
  read-only if asked, and for boot from volume `<boot order='1'/>` on it instead of
  `<boot dev='hd'/>`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from cirrus.network.model import tap_name
from cirrus.virt.spec import VolumeDevice

DOMAIN_PREFIX = "cirrus-"
METADATA_NS = "urn:cirrus:libvirt:instance:1"
MAX_MEMORY_FACTOR = 4  # headroom for memory hot-plug on resize
MEMORY_SLOTS = 8
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
DEFAULT_CMDLINE = "console=ttyS0"

ET.register_namespace("cirrus", METADATA_NS)


@dataclass(frozen=True)
class Disk:
    path: str
    fmt: str  # the file's format: "qcow2" or "raw"
    target: str  # "vda", "vdb", ...
    readonly: bool = False


@dataclass(frozen=True)
class VolumeDisk:
    """A volume as one disk of the domain: its target ("vdc", "sdb") resolved, and for an
    RBD volume the UUID of the libvirt secret with the Ceph key (never the key itself)."""

    volume: VolumeDevice
    target: str
    secret_uuid: str = ""


@dataclass(frozen=True)
class KernelBoot:
    kernel: str
    initrd: str | None = None
    cmdline: str = DEFAULT_CMDLINE


@dataclass(frozen=True)
class DomainConfig:
    """Everything the domain XML says, already resolved to host paths."""

    uuid: str
    virt_type: str  # "kvm" or "qemu"
    vcpus: int
    memory_mb: int
    console_log: str
    disks: tuple[Disk, ...] = ()
    volumes: tuple[VolumeDisk, ...] = ()
    nics: tuple[dict, ...] = ()  # cirrus.network.model.Nic.to_dict(), any order
    kernel_boot: KernelBoot | None = None
    display_name: str = ""
    instance_dir: str = ""
    storage_pool: str = ""
    max_memory_mb: int = 0  # 0: MAX_MEMORY_FACTOR * memory_mb
    extra_metadata: dict = field(default_factory=dict)


def domain_name(uuid: str) -> str:
    return f"{DOMAIN_PREFIX}{uuid}"


def is_cirrus_domain(name: str) -> bool:
    return name.startswith(DOMAIN_PREFIX)


def domain_xml(cfg: DomainConfig) -> str:
    """The `<domain>` document libvirt defines for `cfg`."""
    if cfg.virt_type not in ("kvm", "qemu"):
        raise ValueError(f"domain type must be kvm or qemu, not {cfg.virt_type!r}")
    dom = ET.Element("domain", type=cfg.virt_type)
    _text(dom, "name", domain_name(cfg.uuid))
    _text(dom, "uuid", cfg.uuid)
    if cfg.display_name:
        _text(dom, "title", cfg.display_name)
    dom.append(_metadata(cfg))
    _memory(dom, cfg)
    _text(dom, "vcpu", str(cfg.vcpus), placement="static")
    boots_from_volume = any(v.volume.boot_index == 0 for v in cfg.volumes)
    dom.append(_os(cfg.kernel_boot, boot_dev=not boots_from_volume))
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    dom.append(_cpu(cfg))
    ET.SubElement(dom, "clock", offset="utc")
    _text(dom, "on_poweroff", "destroy")
    _text(dom, "on_reboot", "restart")
    _text(dom, "on_crash", "destroy")
    dom.append(_devices(cfg))
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def interface_xml(nic: dict) -> str:
    """The `<interface>` of one NIC: the same XML at define time and for hot-plug."""
    return ET.tostring(_interface(nic), encoding="unicode")


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    el.text = text
    return el


def _metadata(cfg: DomainConfig) -> ET.Element:
    meta = ET.Element("metadata")
    inst = ET.SubElement(meta, f"{{{METADATA_NS}}}instance")
    values = {"display-name": cfg.display_name, "instance-dir": cfg.instance_dir,
              "storage-pool": cfg.storage_pool, **cfg.extra_metadata}
    for key, value in values.items():
        if value:
            _text(inst, f"{{{METADATA_NS}}}{key}", str(value))
    return meta


def _memory(dom: ET.Element, cfg: DomainConfig) -> None:
    max_mb = cfg.max_memory_mb or cfg.memory_mb * MAX_MEMORY_FACTOR
    if max_mb > cfg.memory_mb:
        _text(dom, "maxMemory", str(max_mb), slots=str(MEMORY_SLOTS), unit="MiB")
    _text(dom, "memory", str(cfg.memory_mb), unit="MiB")
    _text(dom, "currentMemory", str(cfg.memory_mb), unit="MiB")


def _os(boot: KernelBoot | None, boot_dev: bool = True) -> ET.Element:
    """`boot_dev` False: a device carries `<boot order>` (libvirt allows one or the other)."""
    os_el = ET.Element("os")
    _text(os_el, "type", "hvm", arch="x86_64", machine="pc")
    if boot is None:
        if boot_dev:
            ET.SubElement(os_el, "boot", dev="hd")
        return os_el
    _text(os_el, "kernel", boot.kernel)
    if boot.initrd:
        _text(os_el, "initrd", boot.initrd)
    _text(os_el, "cmdline", boot.cmdline)
    return os_el


def _cpu(cfg: DomainConfig) -> ET.Element:
    """host-model under KVM (migratable between like hosts); QEMU's default model under TCG.
    One NUMA cell with all vCPUs and memory: what `<maxMemory>` needs."""
    attrs = {"mode": "host-model"} if cfg.virt_type == "kvm" else {}
    cpu = ET.Element("cpu", attrs)
    numa = ET.SubElement(cpu, "numa")
    ET.SubElement(numa, "cell", id="0", cpus=f"0-{cfg.vcpus - 1}", memory=str(cfg.memory_mb),
                  unit="MiB")
    return cpu


def _devices(cfg: DomainConfig) -> ET.Element:
    devices = ET.Element("devices")
    # The boot volume first: the guest names virtio disks in PCI slot order, which libvirt
    # gives in device order, so it is the guest's first disk as a local root disk would be.
    boot = [v for v in cfg.volumes if v.volume.boot_index == 0]
    for vol in boot:
        devices.append(_volume_disk(vol))
    for disk in cfg.disks:
        devices.append(_disk(disk))
    for vol in cfg.volumes:
        if vol not in boot:
            devices.append(_volume_disk(vol))
    if any(v.volume.bus == "scsi" for v in cfg.volumes):
        devices.append(scsi_controller())
    for nic in sorted(cfg.nics, key=lambda n: n["index"]):
        devices.append(_interface(nic))
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=cfg.console_log, append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="file")
    ET.SubElement(console, "source", path=cfg.console_log, append="on")
    ET.SubElement(console, "target", type="serial", port="0")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name=GUEST_AGENT_CHANNEL)
    # No USB controller (libvirt adds one by default): nothing here uses USB, and it costs
    # 0.2-0.4 s of every boot under TCG (docs/benchmarks.md, "Real VM boot").
    ET.SubElement(devices, "controller", type="usb", model="none")
    rng = ET.SubElement(devices, "rng", model="virtio")
    _text(rng, "backend", "/dev/urandom", model="random")
    balloon = ET.SubElement(devices, "memballoon", model="virtio")
    ET.SubElement(balloon, "stats", period="10")
    return devices


def _disk(disk: Disk) -> ET.Element:
    el = ET.Element("disk", type="file", device="disk")
    driver = {"name": "qemu", "type": disk.fmt}
    if not disk.readonly:
        driver["discard"] = "unmap"  # space a guest frees goes back to the host
    ET.SubElement(el, "driver", driver)
    ET.SubElement(el, "source", file=disk.path)
    ET.SubElement(el, "target", dev=disk.target, bus="virtio")
    if disk.readonly:
        ET.SubElement(el, "readonly")
    return el


def volume_xml(vol: VolumeDisk) -> str:
    """The `<disk>` of one volume: the same XML at define time, for hot attach and detach."""
    return ET.tostring(_volume_disk(vol), encoding="unicode")


def scsi_controller() -> ET.Element:
    """The virtio-scsi controller `bus='scsi'` volumes hang on (index 0)."""
    return ET.Element("controller", type="scsi", index="0", model="virtio-scsi")


def scsi_controller_xml() -> str:
    return ET.tostring(scsi_controller(), encoding="unicode")


def _volume_disk(vol: VolumeDisk) -> ET.Element:
    dev = vol.volume
    if dev.driver_volume_type == "file":
        el = ET.Element("disk", type="file", device="disk")
        driver = {"name": "qemu", "type": str(dev.data.get("format") or "qcow2")}
        if not dev.read_only:
            driver["discard"] = "unmap"
        ET.SubElement(el, "driver", driver)
        ET.SubElement(el, "source", file=str(dev.data["path"]))
    elif dev.driver_volume_type == "rbd":
        el = ET.Element("disk", type="network", device="disk")
        driver = {"name": "qemu", "type": "raw"}
        if not dev.read_only:
            driver["discard"] = "unmap"
        ET.SubElement(el, "driver", driver)
        if _auth_enabled(dev.data):
            if not vol.secret_uuid:
                raise ValueError(f"volume {dev.volume_id}: an rbd disk with cephx needs the "
                                 "libvirt secret's uuid")
            auth = ET.SubElement(el, "auth", username=str(dev.data.get("auth_username")
                                                          or "cirrus"))
            ET.SubElement(auth, "secret", type="ceph", uuid=vol.secret_uuid)
        source = ET.SubElement(el, "source", protocol="rbd", name=str(dev.data["name"]))
        hosts = list(dev.data.get("hosts") or [])
        ports = [str(p) for p in dev.data.get("ports") or []]
        for i, host in enumerate(hosts):
            attrs = {"name": str(host)}
            if i < len(ports) and ports[i]:
                attrs["port"] = ports[i]
            ET.SubElement(source, "host", attrs)
    else:
        raise ValueError(f"volume {dev.volume_id}: no disk for driver_volume_type "
                         f"{dev.driver_volume_type!r}")
    ET.SubElement(el, "target", dev=vol.target, bus=dev.bus)
    limits = dev.qos.limits()
    if limits:
        iotune = ET.SubElement(el, "iotune")
        for key, value in limits.items():
            _text(iotune, key, str(value))
    _text(el, "serial", dev.serial)
    if dev.read_only:
        ET.SubElement(el, "readonly")
    if dev.boot_index == 0:
        ET.SubElement(el, "boot", order="1")
    return el


def _auth_enabled(data: dict) -> bool:
    value = data.get("auth_enabled", True)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def disk_targets(xml: str) -> dict[str, str]:
    """Target -> serial ("" when none) of every disk of a domain's XML."""
    found = {}
    for disk in ET.fromstring(xml).findall("devices/disk"):
        target = disk.find("target")
        if target is not None and target.get("dev"):
            found[target.get("dev", "")] = (disk.findtext("serial") or "").strip()
    return found


def volume_target(xml: str, volume_id: str) -> str | None:
    """The target of the disk whose serial is `volume_id` in a domain's XML."""
    return next((t for t, serial in disk_targets(xml).items() if serial == volume_id), None)


def has_scsi_controller(xml: str) -> bool:
    return any(c.get("model") == "virtio-scsi"
               for c in ET.fromstring(xml).findall("devices/controller[@type='scsi']"))


def _interface(nic: dict) -> ET.Element:
    el = ET.Element("interface", type="ethernet")
    ET.SubElement(el, "mac", address=nic["mac"])
    ET.SubElement(el, "target", dev=tap_name(nic["port_id"]), managed="no")
    ET.SubElement(el, "model", type="virtio")
    ET.SubElement(el, "mtu", size=str(nic["mtu"]))
    return el


def instance_metadata(xml: str) -> dict[str, str]:
    """The Cirrus metadata of a domain's XML (`instance-dir`, `storage-pool`, ...)."""
    inst = ET.fromstring(xml).find(f"metadata/{{{METADATA_NS}}}instance")
    if inst is None:
        return {}
    return {child.tag.split("}", 1)[1]: child.text or "" for child in inst}


def interface_macs(xml: str) -> list[str]:
    """MAC addresses of the domain's interfaces, in device order (lower case)."""
    return [mac.get("address", "").lower()
            for mac in ET.fromstring(xml).findall("devices/interface/mac")]
