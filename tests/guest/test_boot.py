"""The test guest boots on bare QEMU (TCG, no libvirt) and applies what its config drive says.

scripts/build-test-guest builds the kernel and initramfs once (then reuses its cache); each
test makes a vfat config-2 drive from rendered NICs (tests/guest/drive.py), boots it with
user-mode virtio NICs (restrict=on: no packet leaves QEMU) and reads the serial console:
the one cirrus-guest line and the "cirrus-report:" lines of the guest's /init. The drive is
vfat (Nova's default), and iso9660 in the hot-plug test. Needs root
(the build), qemu-system-x86_64, mkfs.vfat and mcopy; skips without them (fails under
CIRRUS_REQUIRE_SERVICES=1). Each boot takes some 5 to 15 s under TCG.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from cirrus.network.render import debian_interfaces
from tests.guest import skip_or_fail
from tests.guest.drive import (
    HOSTNAME,
    drive_files,
    hot_plugged_nic,
    make_iso_image,
    make_vfat_image,
    sample_nics,
)
from tests.guest.qemu import BOOT_TIMEOUT, boot, build_test_guest, parse_report

pytestmark = pytest.mark.e2e

READY = r"^cirrus-guest: network ready in (\d+) ms$"


@pytest.fixture(scope="module")
def test_guest() -> tuple[Path, Path]:
    if os.geteuid() != 0:
        skip_or_fail("building the test guest needs root")
    for tool in ("qemu-system-x86_64", "mkfs.vfat", "mcopy", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            skip_or_fail(f"`{tool}` is not installed (qemu-system-x86, dosfstools, mtools)")
    return build_test_guest()


def test_guest_applies_the_injected_network_and_names_nics_by_mac(
        test_guest, tmp_path: Path, capsys):
    nics = sample_nics()
    drive = make_vfat_image(drive_files(nics), tmp_path / "config-2.img", tmp_path / "drive")
    # The first virtio NIC in PCI order carries eth1's MAC: the guest must rename both.
    with boot(*test_guest, drive, tmp_path, [nics[1].mac, nics[0].mac]) as guest:
        ready = guest.wait_for(READY)
        with capsys.disabled():  # a measurement to read with -s, never asserted
            print(f"\nboot to ready line: {time.monotonic() - guest.started:.2f} s wall, "
                  f"cirrus-guest-init {ready[1]} ms")
        guest.wait_for(r"^cirrus-report: end$")
        assert guest.process.poll() is None, "the guest must stay up after its report"
    console = guest.console_text()
    report = parse_report(console)

    assert len(re.findall(r"^cirrus-guest: ", console, re.M)) == 1, console
    assert report.links == {"eth0": {"mac": nics[0].mac, "mtu": 1450},
                            "eth1": {"mac": nics[1].mac, "mtu": 1500}}
    assert report.addresses == {"eth0": {"10.180.81.249/23", "2001:db8:0:1::5/64"},
                                "eth1": {"192.168.7.20/26"}}
    assert report.routes == {("default", "10.180.80.1", "eth0"),
                             ("10.180.8.0/22", "10.180.80.1", "eth0"),
                             ("169.254.169.254", "10.180.80.10", "eth0")}
    assert report.routes6 == {("default", "2001:db8:0:1::1", "eth0"),
                              ("2001:db8:ff::/48", "2001:db8:0:1::fe", "eth0")}
    assert report.hostname == HOSTNAME
    assert report.resolv == ["nameserver 10.180.0.2", "nameserver 10.180.0.3",
                             "nameserver 2001:db8::53"]


def test_guest_without_the_marker_takes_the_dhcp_path_and_halts_on_request(
        test_guest, tmp_path: Path):
    nic = sample_nics()[0]
    drive = make_vfat_image(drive_files([nic], inject_ip=False), tmp_path / "config-2.img",
                            tmp_path / "drive")
    with boot(*test_guest, drive, tmp_path, [nic.mac], cmdline="cirrus.halt=1") as guest:
        guest.wait_for(r"^cirrus-report: end$")
        status = guest.wait_exit(BOOT_TIMEOUT)
    console = guest.console_text()
    report = parse_report(console)

    assert status == 0, "cirrus.halt=1 powers the guest off after its report"
    assert re.findall(r"^cirrus-guest: .*$", console, re.M) == [
        "cirrus-guest: no injected network, leaving DHCP"]
    # QEMU's user-mode DHCP server leases its fixed address (restricted: no router, no DNS).
    assert report.addresses == {"eth0": {"10.0.2.15/24"}}
    assert report.hostname == HOSTNAME


def test_hot_plugged_port_is_configured_through_the_guest_agent(
        test_guest, tmp_path: Path):
    nic, plugged = sample_nics()[0], hot_plugged_nic()
    # This guest's drive is iso9660, the config drive's other format.
    drive = make_iso_image(drive_files([nic]), tmp_path / "config-2.iso")
    with boot(*test_guest, drive, tmp_path, [nic.mac]) as guest:
        guest.wait_for(READY)
        guest.wait_for(r"^cirrus-init: guest agent on ")
        assert guest.qmp("netdev_add", type="user", id="hot0", restrict=True,
                         ipv6=False) == {"return": {}}
        assert guest.qmp("device_add", driver="virtio-net-pci", netdev="hot0",
                         mac=plugged.mac, id="hot0-nic") == {"return": {}}
        configured = guest.guest_exec(
            "cirrus-guest-init", "configure-nic", plugged.mac, plugged.name,
            stdin=debian_interfaces([nic, plugged], static=True))
        _, after, _ = guest.guest_exec("cirrus-report")
        # The power button (what libvirt's shutdown presses) stops the guest cleanly.
        assert guest.qmp("system_powerdown") == {"return": {}}
        status = guest.wait_exit(60)
    report = parse_report(after)

    assert configured[0] == 0, configured
    assert re.match(r"^cirrus-guest: nic eth2 ready in \d+ ms$", configured[1]), configured
    assert report.links["eth2"] == {"mac": plugged.mac, "mtu": 1400}
    assert report.addresses["eth2"] == {"10.9.0.5/24"}
    assert ("10.10.0.0/16", "10.9.0.1", "eth2") in report.routes
    assert ("default", "10.180.80.1", "eth0") in report.routes
    assert report.resolv[-1] == "nameserver 10.9.0.53"
    assert status == 0, "the ACPI power button powers the guest off"
