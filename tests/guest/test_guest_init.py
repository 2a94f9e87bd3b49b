"""cirrus-guest-init without a VM: the script runs in a network namespace of the test's own.

Each test creates a "guest" namespace whose NICs are veth ends with the MACs of the server's
ports (their peers sit up in a second namespace, standing in for the host's taps), and runs
the script there under busybox sh (with busybox's applets first on PATH, as in the test
guest), dash and bash --posix, inside new UTS and PID namespaces (so `hostname` and the
background arping never touch the host). The drive is a directory (CIRRUS_GUEST_DRIVE_DIR),
every file goes under a temporary root (CIRRUS_GUEST_ROOT) and the console is a file
(CIRRUS_GUEST_CONSOLE). The result is read back with iproute2's JSON output, independently of
the script. Needs root; skips without it (fails under CIRRUS_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import cirrus
from cirrus.network.render import debian_interfaces
from tests.guest import skip_or_fail
from tests.guest.drive import (
    HOSTNAME,
    PUBLIC_KEYS,
    drive_files,
    hot_plugged_nic,
    sample_nics,
    write_tree,
)

SCRIPT = Path(cirrus.__file__).parent / "guest" / "cirrus-guest-init"
READY = re.compile(r"^cirrus-guest: network ready in \d+ ms$")
ETH0_MAC, ETH1_MAC = (nic.mac for nic in sample_nics())


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@dataclass
class Guest:
    """A guest namespace, a temporary root, a drive directory and a console file."""

    ns: str
    peer_ns: str
    shell: list[str]
    path: str
    root: Path
    drive: Path
    console: Path

    def add_nic(self, name: str, mac: str) -> None:
        """A NIC as the kernel would name it before the script runs; its peer is up."""
        peer = f"p{uuid.uuid4().hex[:8]}"
        added = ip("-n", self.ns, "link", "add", name, "address", mac, "type", "veth",
                   "peer", "name", peer, "netns", self.peer_ns)
        assert added.returncode == 0, added.stderr
        assert ip("-n", self.peer_ns, "link", "set", peer, "up").returncode == 0

    def run(self, *args: str, stdin: str = "", wait: int = 1) -> Run:
        """Runs the script; returns its exit status, stdout and the hostname it left."""
        hostname_file = self.root.parent / "hostname.out"
        wrapper = '"$@"; status=$?; hostname >"$HOSTNAME_OUT"; exit $status'
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "HOSTNAME_OUT": str(hostname_file),
               "CIRRUS_GUEST_DRIVE_DIR": str(self.drive), "CIRRUS_GUEST_ROOT": str(self.root),
               "CIRRUS_GUEST_CONSOLE": str(self.console), "CIRRUS_GUEST_WAIT": str(wait)}
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, "unshare", "--uts", "--pid", "--fork",
             "--mount-proc", "env", f"PATH={self.path}", *self.shell, "-c", wrapper, "wrapper", *self.shell, str(SCRIPT),
             *args],
            input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)
        return Run(done.returncode, done.stdout, done.stderr,
                   hostname_file.read_text().strip() if hostname_file.exists() else "")

    def links(self) -> dict[str, dict]:
        """Every NIC but lo, by name: {"mac", "mtu"}."""
        out = ip("-j", "-n", self.ns, "link", "show")
        assert out.returncode == 0, out.stderr
        return {link["ifname"]: {"mac": link["address"], "mtu": link["mtu"]}
                for link in json.loads(out.stdout) if link["ifname"] != "lo"}

    def addresses(self) -> dict[str, set[str]]:
        """Global addresses by NIC, as "address/prefix"."""
        out = ip("-j", "-n", self.ns, "addr", "show")
        assert out.returncode == 0, out.stderr
        return {link["ifname"]: {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]
                                 if a.get("scope") == "global"}
                for link in json.loads(out.stdout) if link["ifname"] != "lo"}

    def routes(self, family: str = "-4") -> set[tuple[str, str, str]]:
        """Routes through a gateway: (destination, gateway, device)."""
        out = ip("-j", "-n", self.ns, family, "route", "show")
        assert out.returncode == 0, out.stderr
        return {(r["dst"], r["gateway"], r["dev"]) for r in json.loads(out.stdout)
                if "gateway" in r}


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str
    hostname: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def busybox_path(directory: Path) -> str:
    """A directory of busybox applet links, first on PATH: the tools of the test guest."""
    busybox = shutil.which("busybox")
    if busybox is None:
        skip_or_fail("busybox is not installed (apt-get install busybox-static)")
    directory.mkdir()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        (directory / applet).symlink_to(busybox)
    return f"{directory}:{os.environ.get('PATH', '/usr/bin:/bin')}"


@pytest.fixture(params=["busybox", "dash", "bash"])
def guest(request, tmp_path: Path) -> Iterator[Guest]:
    """An empty guest namespace and its peer namespace, deleted afterwards."""
    if os.geteuid() != 0:
        skip_or_fail("cirrus-guest-init tests need root to create network namespaces")
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            skip_or_fail(f"`{tool}` is not installed")
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if request.param == "busybox":
        path = busybox_path(tmp_path / "busybox")
        shell = [str(tmp_path / "busybox" / "sh")]
    elif shutil.which(request.param) is None:
        skip_or_fail(f"{request.param} is not installed")
    else:
        shell = ["dash"] if request.param == "dash" else ["bash", "--posix"]
    names = [f"cirrus-g-{uuid.uuid4().hex[:8]}", f"cirrus-p-{uuid.uuid4().hex[:8]}"]
    for name in names:
        added = ip("netns", "add", name)
        if added.returncode != 0:
            skip_or_fail(f"`ip netns add` is unavailable: {added.stderr.strip()}")
    console = tmp_path / "console"
    console.touch()
    (tmp_path / "root/etc").mkdir(parents=True)  # every image has one
    try:
        yield Guest(names[0], names[1], shell, path, tmp_path / "root", tmp_path / "drive",
                    console)
    finally:
        for name in names:
            ip("netns", "del", name)


def boot_guest(guest: Guest, **drive_options) -> Run:
    """PCI order named the NICs against the port order: eth0 holds eth1's MAC and back."""
    write_tree(guest.drive, drive_files(sample_nics(), **drive_options))
    guest.add_nic("eth0", ETH1_MAC)
    guest.add_nic("eth1", ETH0_MAC)
    return guest.run()


def test_injected_network_is_applied_with_names_by_mac(guest: Guest):
    result = boot_guest(guest)

    assert result.status == 0, result.stderr
    assert len(result.lines) == 1 and READY.match(result.lines[0]), result.stdout
    assert guest.console.read_text().splitlines() == result.lines
    assert guest.links() == {"eth0": {"mac": ETH0_MAC, "mtu": 1450},
                             "eth1": {"mac": ETH1_MAC, "mtu": 1500}}
    assert guest.addresses() == {"eth0": {"10.180.81.249/23", "2001:db8:0:1::5/64"},
                                 "eth1": {"192.168.7.20/26"}}
    assert guest.routes("-4") == {("default", "10.180.80.1", "eth0"),
                                  ("10.180.8.0/22", "10.180.80.1", "eth0"),
                                  ("169.254.169.254", "10.180.80.10", "eth0")}
    assert guest.routes("-6") == {("default", "2001:db8:0:1::1", "eth0"),
                                  ("2001:db8:ff::/48", "2001:db8:0:1::fe", "eth0")}
    assert (guest.root / "etc/resolv.conf").read_text() == (
        "nameserver 10.180.0.2\nnameserver 10.180.0.3\nnameserver 2001:db8::53\n")
    assert result.hostname == HOSTNAME
    assert (guest.root / "etc/hostname").read_text() == f"{HOSTNAME}\n"
    keys = guest.root / "root/.ssh/authorized_keys"
    assert keys.read_text().splitlines() == list(PUBLIC_KEYS)
    assert keys.stat().st_mode & 0o777 == 0o600


def test_network_files_are_installed_where_the_image_has_their_tools(guest: Guest):
    for directory in ("etc/network", "etc/udev/rules.d", "etc/netplan", "lib/systemd/system"):
        (guest.root / directory).mkdir(parents=True)
    (guest.root / "etc/network/interfaces").write_text("auto eth0\niface eth0 inet dhcp\n")
    (guest.root / "lib/systemd/system/networking.service").touch()
    (guest.root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n")

    result = boot_guest(guest)

    assert result.status == 0, result.stderr
    drive = guest.drive / "cirrus"
    assert (guest.root / "etc/network/interfaces").read_text() == (
        drive / "interfaces").read_text()
    assert (guest.root / "etc/network/interfaces.cirrus-orig").read_text() == (
        "auto eth0\niface eth0 inet dhcp\n")
    assert (guest.root / "etc/udev/rules.d/70-persistent-net.rules").read_text() == (
        drive / "70-persistent-net.rules").read_text()
    netplan = guest.root / "etc/netplan/50-cirrus.yaml"
    assert netplan.read_text() == (drive / "netplan.yaml").read_text()
    assert netplan.stat().st_mode & 0o777 == 0o600
    # ifupdown must not add the same addresses again at `ifup -a`.
    assert (guest.root / "run/network/ifstate").read_text().splitlines() == [
        "eth0=eth0", "eth1=eth1"]
    assert (guest.root / "etc/hosts").read_text().splitlines()[-1] == f"127.0.1.1\t{HOSTNAME}"


def test_files_are_not_installed_where_the_image_lacks_their_directories(guest: Guest):
    assert boot_guest(guest).status == 0
    assert not (guest.root / "etc/network").exists()
    assert not (guest.root / "etc/netplan").exists()
    assert not (guest.root / "run/network").exists()


def test_second_boot_leaves_the_installed_network_to_the_image(guest: Guest):
    assert boot_guest(guest).status == 0
    removed = ip("-n", guest.ns, "addr", "del", "192.168.7.20/26", "dev", "eth1")
    assert removed.returncode == 0, removed.stderr

    again = guest.run()

    assert again.status == 0, again.stderr
    assert again.lines == [
        "cirrus-guest: injected network installed on an earlier boot, left to the image"]
    assert guest.addresses()["eth1"] == set()
    assert again.hostname == HOSTNAME
    keys = (guest.root / "root/.ssh/authorized_keys").read_text().splitlines()
    assert keys == list(PUBLIC_KEYS)  # not added twice


def test_without_the_marker_the_network_is_left_to_dhcp(guest: Guest):
    result = boot_guest(guest, inject_ip=False)

    assert result.status == 0, result.stderr
    assert result.lines == ["cirrus-guest: no injected network, leaving DHCP"]
    assert guest.links() == {"eth0": {"mac": ETH1_MAC, "mtu": 1500},
                             "eth1": {"mac": ETH0_MAC, "mtu": 1500}}
    assert guest.addresses() == {"eth0": set(), "eth1": set()}
    assert not (guest.root / "etc/resolv.conf").exists()
    assert result.hostname == HOSTNAME
    assert (guest.root / "root/.ssh/authorized_keys").read_text().splitlines() == list(
        PUBLIC_KEYS)


def test_a_missing_nic_fails_the_ready_line_and_the_others_still_come_up(guest: Guest):
    write_tree(guest.drive, drive_files(sample_nics()))
    guest.add_nic("eth7", ETH0_MAC)  # the port of eth1 never appears

    result = guest.run(wait=0)

    assert result.status == 1
    assert len(result.lines) == 1
    assert re.match(rf"^cirrus-guest: network failed in \d+ ms: no NIC has the MAC {ETH1_MAC}"
                    r" of eth1$", result.lines[0]), result.stdout
    assert guest.addresses() == {"eth0": {"10.180.81.249/23", "2001:db8:0:1::5/64"}}


def test_configure_nic_names_and_configures_a_hot_plugged_port(guest: Guest):
    (guest.root / "etc/network").mkdir(parents=True)
    (guest.root / "etc/udev/rules.d").mkdir(parents=True)
    assert boot_guest(guest).status == 0
    nic = hot_plugged_nic()
    guest.add_nic("ens9", nic.mac.upper())
    # The whole server's file on stdin: the script takes eth2's stanzas from it.
    stanza = debian_interfaces([*sample_nics(), nic], static=True)

    result = guest.run("configure-nic", nic.mac.upper(), "eth2", stdin=stanza)

    assert result.status == 0, result.stderr
    assert re.match(r"^cirrus-guest: nic eth2 ready in \d+ ms$", result.stdout), result.stdout
    assert guest.links()["eth2"] == {"mac": nic.mac, "mtu": 1400}
    assert guest.addresses()["eth2"] == {"10.9.0.5/24"}
    assert ("10.10.0.0/16", "10.9.0.1", "eth2") in guest.routes("-4")
    assert ("default", "10.180.80.1", "eth0") in guest.routes("-4")  # boot's routes stay
    assert (guest.root / "etc/resolv.conf").read_text().splitlines()[-1] == (
        "nameserver 10.9.0.53")
    installed = (guest.root / "etc/network/interfaces").read_text()
    assert installed.count("iface eth2 inet static") == 1
    assert "iface eth0 inet static" in installed and "address 10.9.0.5" in installed
    rules = (guest.root / "etc/udev/rules.d/70-persistent-net.rules").read_text()
    assert f'ATTR{{address}}=="{nic.mac}", NAME="eth2"' in rules


def test_configure_nic_fails_when_no_nic_has_the_mac(guest: Guest):
    nic = hot_plugged_nic()

    result = guest.run("configure-nic", nic.mac, "eth2",
                       stdin=debian_interfaces([nic], static=True), wait=0)

    assert result.status == 1
    assert re.match(rf"^cirrus-guest: nic eth2 failed in \d+ ms: no NIC has the MAC "
                    rf"{nic.mac}$", result.stdout), result.stdout
