"""The domain XML of the libvirt driver: pure, checked element by element and against a
golden document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cirrus.virt.libvirt import domain
from cirrus.virt.libvirt.domain import Disk, DomainConfig, KernelBoot

GOLDEN = Path(__file__).parent / "golden"
UUID = "5f0c3a8e-1d2b-4c6a-9e7f-0a1b2c3d4e5f"


def nic(index: int, port: str, mac: str, mtu: int = 1450) -> dict:
    return {"index": index, "name": f"eth{index}", "port_id": port, "mac": mac,
            "network_id": "net-0123456789", "mtu": mtu, "fixed_ips": []}


def config(**overrides) -> DomainConfig:
    values = {
        "uuid": UUID, "virt_type": "qemu", "vcpus": 2, "memory_mb": 512,
        "console_log": "/srv/pool/inst/console.log",
        "disks": (Disk("/srv/pool/inst/disk.qcow2", "qcow2", "vda"),
                  Disk("/srv/pool/inst/disk.config", "raw", "vdb", readonly=True)),
        "nics": (nic(1, "bbbbbbbbbbbbbbbb", "fa:16:3e:00:00:02"),
                 nic(0, "aaaaaaaaaaaaaaaa", "fa:16:3e:00:00:01", mtu=9000)),
        "kernel_boot": KernelBoot("/srv/_base/kernel", "/srv/_base/ramdisk",
                                  "console=ttyS0 quiet"),
        "display_name": "web <1>", "instance_dir": "/srv/pool/inst", "storage_pool": "ssd",
    }
    values.update(overrides)
    return DomainConfig(**values)


def parse(cfg: DomainConfig) -> ET.Element:
    return ET.fromstring(domain.domain_xml(cfg))


def test_the_whole_document_matches_the_golden_file() -> None:
    assert domain.domain_xml(config()) + "\n" == (GOLDEN / "domain_kernel_boot.xml").read_text()


@pytest.mark.parametrize("virt_type", ["qemu", "kvm"])
def test_domain_type_name_and_uuid(virt_type: str) -> None:
    root = parse(config(virt_type=virt_type))
    assert root.get("type") == virt_type
    assert root.findtext("name") == f"cirrus-{UUID}"
    assert root.findtext("uuid") == UUID
    assert root.findtext("title") == "web <1>"


def test_only_kvm_asks_for_the_host_cpu_model() -> None:
    assert parse(config(virt_type="kvm")).find("cpu").get("mode") == "host-model"
    assert parse(config(virt_type="qemu")).find("cpu").get("mode") is None


def test_an_unknown_domain_type_is_refused() -> None:
    with pytest.raises(ValueError, match="kvm or qemu"):
        domain.domain_xml(config(virt_type="auto"))


def test_vcpus_and_memory_split_leave_room_to_grow() -> None:
    root = parse(config(vcpus=3, memory_mb=768))
    assert root.findtext("vcpu") == "3"
    assert (root.findtext("memory"), root.find("memory").get("unit")) == ("768", "MiB")
    assert root.findtext("currentMemory") == "768"
    max_memory = root.find("maxMemory")
    assert int(max_memory.text) == 768 * domain.MAX_MEMORY_FACTOR > 768
    assert max_memory.get("slots") == str(domain.MEMORY_SLOTS)
    cell = root.find("cpu/numa/cell")  # QEMU needs a NUMA cell for maxMemory
    assert (cell.get("cpus"), cell.get("memory"), cell.get("unit")) == ("0-2", "768", "MiB")
    assert root.find("devices/memballoon").get("model") == "virtio"


def test_no_max_memory_when_it_would_not_exceed_memory() -> None:
    assert parse(config(max_memory_mb=512)).find("maxMemory") is None


def test_root_disk_and_read_only_config_drive_are_virtio() -> None:
    disks = parse(config()).findall("devices/disk")
    assert [(d.find("target").get("dev"), d.find("target").get("bus")) for d in disks] == [
        ("vda", "virtio"), ("vdb", "virtio")]
    root, drive = disks
    assert root.find("driver").get("type") == "qcow2"
    assert root.find("source").get("file") == "/srv/pool/inst/disk.qcow2"
    assert root.find("readonly") is None
    assert drive.find("driver").get("type") == "raw"
    assert drive.find("readonly") is not None


def test_nics_follow_their_index_on_the_agents_taps() -> None:
    interfaces = parse(config()).findall("devices/interface")
    assert [i.find("mac").get("address") for i in interfaces] == [
        "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"]
    first = interfaces[0]
    assert first.get("type") == "ethernet"
    assert first.find("target").attrib == {"dev": "tapaaaaaaaaaaa", "managed": "no"}
    assert first.find("model").get("type") == "virtio"
    assert first.find("mtu").get("size") == "9000"


def test_hot_plug_xml_is_the_interface_of_the_domain() -> None:
    cfg = config()
    in_domain = ET.tostring(parse(cfg).findall("devices/interface")[1], encoding="unicode")
    assert ET.canonicalize(domain.interface_xml(cfg.nics[0]), strip_text=True) == \
        ET.canonicalize(in_domain, strip_text=True)


def test_serial_console_goes_to_the_log_file_and_the_agent_has_its_channel() -> None:
    devices = parse(config()).find("devices")
    for tag in ("serial", "console"):
        element = devices.find(tag)
        assert element.get("type") == "file"
        assert element.find("source").attrib == {"path": "/srv/pool/inst/console.log",
                                                 "append": "on"}
    assert devices.find("console/target").get("type") == "serial"
    channel = devices.find("channel")
    assert channel.get("type") == "unix"
    assert channel.find("target").attrib == {"type": "virtio",
                                             "name": "org.qemu.guest_agent.0"}


def test_direct_kernel_boot() -> None:
    os_el = parse(config()).find("os")
    assert os_el.findtext("kernel") == "/srv/_base/kernel"
    assert os_el.findtext("initrd") == "/srv/_base/ramdisk"
    assert os_el.findtext("cmdline") == "console=ttyS0 quiet"
    assert os_el.find("boot") is None


def test_kernel_without_ramdisk() -> None:
    os_el = parse(config(kernel_boot=KernelBoot("/k"))).find("os")
    assert os_el.find("initrd") is None
    assert os_el.findtext("cmdline") == domain.DEFAULT_CMDLINE


def test_whole_disk_images_boot_from_the_root_disk() -> None:
    os_el = parse(config(kernel_boot=None)).find("os")
    assert os_el.find("kernel") is None
    assert os_el.find("boot").get("dev") == "hd"
    assert os_el.find("type").get("machine") == "pc"


def test_metadata_and_macs_read_back_from_the_xml() -> None:
    xml = domain.domain_xml(config())
    assert domain.instance_metadata(xml) == {
        "display-name": "web <1>", "instance-dir": "/srv/pool/inst", "storage-pool": "ssd"}
    assert domain.interface_macs(xml) == ["fa:16:3e:00:00:01", "fa:16:3e:00:00:02"]
    assert domain.instance_metadata("<domain/>") == {}


def test_cirrus_domains_are_told_apart_by_name() -> None:
    assert domain.is_cirrus_domain(domain.domain_name(UUID))
    assert not domain.is_cirrus_domain("other-vm")


def test_no_usb_controller_is_added() -> None:
    controllers = parse(config()).findall("devices/controller")
    assert [(c.get("type"), c.get("model")) for c in controllers] == [("usb", "none")]
