"""Volumes in the domain XML (pure): file and RBD disks, serial, iotune, read-only, scsi, boot
from volume; checked element by element and against a golden document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cirrus.virt.libvirt import domain
from cirrus.virt.libvirt.domain import Disk, DomainConfig, VolumeDisk
from cirrus.virt.spec import VolumeDevice, VolumeQos
from cirrus.virt.targets import assign_targets, free_target

GOLDEN = Path(__file__).parent / "golden"
UUID = "5f0c3a8e-1d2b-4c6a-9e7f-0a1b2c3d4e5f"
ROOT_VOL = "0b7e8f1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
DATA_VOL = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
SCSI_VOL = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
SECRET = "5b4d5a6e-0000-4000-8000-00000000cafe"
RBD_DATA = {"name": "volumes/volume-" + ROOT_VOL, "hosts": ["10.0.0.1", "10.0.0.2"],
            "ports": ["6789", "6789"], "auth_enabled": True, "auth_username": "cirrus",
            "secret_uuid": SECRET, "secret_type": "ceph", "conf": "/etc/ceph/ceph.conf",
            "keyring": "/etc/ceph/ceph.client.cirrus.keyring"}


def rbd_root() -> VolumeDevice:
    return VolumeDevice(volume_id=ROOT_VOL, driver_volume_type="rbd", data=dict(RBD_DATA),
                        boot_index=0)


def file_data(**kw) -> VolumeDevice:
    values = {"volume_id": DATA_VOL, "driver_volume_type": "file",
              "data": {"path": f"/srv/volumes/volume-{DATA_VOL}.qcow2", "format": "qcow2"},
              "qos": VolumeQos(total_iops_sec=500, read_bytes_sec=10485760,
                               write_bytes_sec=5242880)}
    values.update(kw)
    return VolumeDevice(**values)


def boot_from_volume() -> DomainConfig:
    scsi = VolumeDevice(volume_id=SCSI_VOL, driver_volume_type="file", bus="scsi",
                        read_only=True, data={"path": "/srv/volumes/ro.raw", "format": "raw"})
    return DomainConfig(
        uuid=UUID, virt_type="qemu", vcpus=1, memory_mb=256,
        console_log="/srv/pool/inst/console.log",
        disks=(Disk("/srv/pool/inst/disk.config", "raw", "vdb", readonly=True),),
        volumes=(VolumeDisk(rbd_root(), "vda", SECRET), VolumeDisk(file_data(), "vdc"),
                 VolumeDisk(scsi, "sda")),
        display_name="bfv", instance_dir="/srv/pool/inst", storage_pool="default")


def disks(cfg: DomainConfig) -> dict[str, ET.Element]:
    root = ET.fromstring(domain.domain_xml(cfg))
    return {d.find("target").get("dev"): d for d in root.findall("devices/disk")}


def test_boot_from_volume_matches_the_golden_file() -> None:
    assert domain.domain_xml(boot_from_volume()) + "\n" == (
        GOLDEN / "domain_boot_from_volume.xml").read_text()


def test_an_rbd_volume_is_a_network_disk_with_the_secret_never_the_key() -> None:
    xml = domain.domain_xml(boot_from_volume())
    vda = disks(boot_from_volume())["vda"]
    assert (vda.get("type"), vda.get("device")) == ("network", "disk")
    source = vda.find("source")
    assert (source.get("protocol"), source.get("name")) == ("rbd", f"volumes/volume-{ROOT_VOL}")
    assert [(h.get("name"), h.get("port")) for h in source.findall("host")] == [
        ("10.0.0.1", "6789"), ("10.0.0.2", "6789")]
    assert vda.find("auth").get("username") == "cirrus"
    assert vda.find("auth/secret").attrib == {"type": "ceph", "uuid": SECRET}
    assert vda.find("driver").attrib == {"name": "qemu", "type": "raw", "discard": "unmap"}
    assert vda.findtext("serial") == ROOT_VOL
    assert "keyring" not in xml and "ceph.conf" not in xml  # nothing of the key's file


def test_boot_from_volume_boots_the_volume_by_order_not_by_dev() -> None:
    root = ET.fromstring(domain.domain_xml(boot_from_volume()))
    assert root.find("os/boot") is None  # libvirt refuses <boot dev> with <boot order>
    orders = [(d.find("target").get("dev"), d.find("boot").get("order"))
              for d in root.findall("devices/disk") if d.find("boot") is not None]
    assert orders == [("vda", "1")]


def test_a_file_volume_is_a_qcow2_file_disk_with_its_iotune_and_serial() -> None:
    vdc = disks(boot_from_volume())["vdc"]
    assert (vdc.get("type"), vdc.get("device")) == ("file", "disk")
    assert vdc.find("driver").attrib == {"name": "qemu", "type": "qcow2", "discard": "unmap"}
    assert vdc.find("source").get("file") == f"/srv/volumes/volume-{DATA_VOL}.qcow2"
    assert vdc.find("target").attrib == {"dev": "vdc", "bus": "virtio"}
    assert vdc.findtext("serial") == DATA_VOL
    iotune = {el.tag: el.text for el in vdc.find("iotune")}
    assert iotune == {"total_iops_sec": "500", "read_bytes_sec": "10485760",
                      "write_bytes_sec": "5242880"}
    assert vdc.find("readonly") is None and vdc.find("boot") is None


def test_a_read_only_scsi_volume_gets_a_virtio_scsi_controller() -> None:
    root = ET.fromstring(domain.domain_xml(boot_from_volume()))
    sda = disks(boot_from_volume())["sda"]
    assert sda.find("target").attrib == {"dev": "sda", "bus": "scsi"}
    assert sda.find("readonly") is not None
    assert "discard" not in sda.find("driver").attrib
    assert sda.find("driver").get("type") == "raw"
    assert [c.get("model") for c in root.findall("devices/controller[@type='scsi']")] == [
        "virtio-scsi"]
    assert domain.has_scsi_controller(domain.domain_xml(boot_from_volume()))


def test_no_volumes_no_scsi_controller_and_boot_dev_stays() -> None:
    cfg = DomainConfig(uuid=UUID, virt_type="qemu", vcpus=1, memory_mb=128,
                       console_log="/c", disks=(Disk("/d", "qcow2", "vda"),))
    root = ET.fromstring(domain.domain_xml(cfg))
    assert root.find("os/boot").get("dev") == "hd"
    assert root.find("devices/controller[@type='scsi']") is None


def test_rbd_without_cephx_has_no_auth_and_with_cephx_needs_a_secret() -> None:
    data = {**RBD_DATA, "auth_enabled": False}
    plain = VolumeDevice(volume_id=ROOT_VOL, driver_volume_type="rbd", data=data)
    el = ET.fromstring(domain.volume_xml(VolumeDisk(plain, "vdd")))
    assert el.find("auth") is None
    with pytest.raises(ValueError, match="secret"):
        domain.volume_xml(VolumeDisk(rbd_root(), "vdd"))


def test_volume_targets_are_found_by_serial() -> None:
    xml = domain.domain_xml(boot_from_volume())
    assert domain.disk_targets(xml) == {"vda": ROOT_VOL, "vdb": "", "vdc": DATA_VOL,
                                        "sda": SCSI_VOL}
    assert domain.volume_target(xml, DATA_VOL) == "vdc"
    assert domain.volume_target(xml, "nope") is None


def test_targets_are_the_first_free_names_and_the_boot_volume_goes_first() -> None:
    assert free_target("virtio", {"vda", "vdb"}) == "vdc"
    assert free_target("scsi", set()) == "sda"
    assert free_target("virtio", {f"vd{c}" for c in "abcdefghijklmnopqrstuvwxyz"}) == "vdaa"
    named = file_data(device_name="/dev/vdf")
    assert named.device_name == "vdf"
    other = VolumeDevice(volume_id="v2", driver_volume_type="file", data={"path": "/x"})
    clash = VolumeDevice(volume_id="v3", driver_volume_type="file", data={"path": "/y"},
                         device_name="vdb")
    got = assign_targets([other, named, rbd_root(), clash], {"vdb"})
    assert [(v.volume_id, t) for v, t in got] == [(ROOT_VOL, "vda"), ("v2", "vdc"),
                                                  (DATA_VOL, "vdf"), ("v3", "vdd")]
