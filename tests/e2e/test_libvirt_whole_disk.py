"""Whole-disk images on real QEMU guests (TCG) through libvirt, driven by the `openstack` CLI.

The test guest of `scripts/build-test-guest --whole-disk` is a raw MBR disk whose active FAT
partition holds SYSLINUX, the kernel and the initramfs: no `kernel_id`/`ramdisk_id`, so the
domain has no `<kernel>` and SeaBIOS boots the root disk (the overlay on the cached image).
It is uploaded as `raw`, and as `qcow2` after `qemu-img convert`, both with
`support_inject_ip=true`; each boots one server on the DHCP-off subnet of test_libvirt_cli.
The serial console must show SYSLINUX's banner before the guest's one `cirrus-guest:` line
and a report with the port's exact address; delete must leave no domain or instance dir.
Reuses the module cloud and networks of test_libvirt_cli.py (this module gets its own
instances of those module-scoped fixtures); needs what they need, plus syslinux,
syslinux-common and fdisk for the first image build.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import test_libvirt_cli as base
from tests.e2e.conftest import unique
from tests.e2e.test_libvirt_cli import (
    GUEST_LINE,
    READY,
    LibvirtCloud,
    Networks,
    create_server,
    last_report,
    server_ports,
    virsh,
    wait_for_boots,
)
from tests.guest import skip_or_fail
from tests.guest.qemu import build_whole_disk_image

# The module-scoped fixtures of test_libvirt_cli, found by name (this module gets its own).
cloud_root, cloud, networks = base.cloud_root, base.cloud, base.networks

pytestmark = pytest.mark.e2e

# Printed by SYSLINUX on the serial port (its `SERIAL 0` line), never by a direct kernel boot.
SYSLINUX_BANNER = re.compile(r"^SYSLINUX \d+\.\d+ .*H\. Peter Anvin", re.M)


@dataclass
class WholeDiskImages:
    by_format: dict[str, str]  # disk format -> image id
    flavor: str


@pytest.fixture(scope="module")
def whole_disk(cloud: LibvirtCloud, cloud_root: Path) -> WholeDiskImages:
    for tool in ("syslinux", "sfdisk", "mkfs.vfat", "mcopy"):
        if shutil.which(tool) is None:
            skip_or_fail(f"`{tool}` is not installed (apt-get install syslinux "
                         "syslinux-common fdisk dosfstools mtools)")
    raw = build_whole_disk_image()
    qcow2 = cloud_root / "whole-disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
                   check=True)
    cli = cloud.cli
    by_format = {
        disk_format: cli.json("image", "create", "--disk-format", disk_format,
                              "--container-format", "bare", "--file", str(path),
                              "--property", "support_inject_ip=true",
                              unique(f"whole-disk-{disk_format}"))["id"]
        for disk_format, path in (("raw", raw), ("qcow2", qcow2))
    }
    flavor = cli.json("flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1",
                      unique("whole-disk.tiny"))["name"]
    return WholeDiskImages(by_format, flavor)


@pytest.mark.parametrize("disk_format", ["raw", "qcow2"])
def test_whole_disk_image_boots_from_its_root_disk_through_syslinux(
        cloud: LibvirtCloud, whole_disk: WholeDiskImages, networks: Networks,
        disk_format: str) -> None:
    cli = cloud.cli
    image_id = whole_disk.by_format[disk_format]
    server = create_server(cli, image_id, whole_disk.flavor, networks.static)
    uuid = server["id"]
    domain = f"cirrus-{uuid}"
    instance_dir = cloud.instances_dir / uuid

    os_el = ET.fromstring(virsh("dumpxml", domain)).find("os")
    assert os_el is not None
    assert [child.tag for child in os_el if child.tag in ("kernel", "initrd", "cmdline")] == []
    assert [boot.get("dev") for boot in os_el.findall("boot")] == ["hd"]
    # The root disk is an overlay on the cached image itself, in the format it was uploaded in.
    overlay = json.loads(subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(instance_dir / "disk.qcow2")],
        capture_output=True, text=True, check=True).stdout)
    assert overlay["backing-filename-format"] == disk_format
    assert Path(overlay["backing-filename"]).name == image_id

    text = wait_for_boots(cli, uuid, 1)
    (port,) = server_ports(cli, uuid).values()
    report = last_report(text)
    lines = GUEST_LINE.findall(text)

    assert server["status"] == "ACTIVE"
    assert len(SYSLINUX_BANNER.findall(text)) == 1, text
    assert SYSLINUX_BANNER.search(text).start() < text.index("cirrus-guest: "), text
    assert len(lines) == 1 and READY.match(lines[0]), text
    assert report.links == {"eth0": {"mac": port.mac, "mtu": port.mtu}}
    assert report.addresses == {"eth0": {port.address}}
    assert report.hostname == server["name"]

    cli.run("server", "delete", "--wait", uuid)

    assert domain not in virsh("list", "--all", "--name").split()
    assert not instance_dir.exists()
