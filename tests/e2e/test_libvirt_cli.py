"""End to end on real QEMU guests (TCG) through libvirt, driven by the `openstack` CLI.

One `cirrus all-in-one --virt-driver libvirt` runs for this module (its own data dir under
/var/tmp, which QEMU's user libvirt-qemu can traverse; a free port; domain type `qemu`),
apart from the session's fake-driver all-in-one. The test guest of scripts/build-test-guest
is uploaded as a kernel (aki) and a ramdisk (ari), and a blank qcow2 root disk points at
them (`kernel_id`, `ramdisk_id`, `os_command_line`) twice: with `support_inject_ip=true`
and without. Every guest's /init prints one `cirrus-guest:` line and a report of its
network (tests/guest/qemu.parse_report) on the serial console, which `openstack console log
show` returns; the expected values are read back from the API (port, subnet, network).

Three servers cover the rule "static addresses when the subnet has DHCP off OR the image
has support_inject_ip" and are shared between tests to keep boots few (each ~6 s):

| server | image | NICs | static because |
|---|---|---|---|
| `single` | without the property | DHCP-off subnet (gateway, host route, DNS, MTU 1450) | DHCP off |
| `pair` | with the property | that subnet, then a DHCP-on one | DHCP off / the property |
| `dhcp` | without the property | the DHCP-on subnet | nothing: DHCP path (its lease) |

These three are only read. A test that changes a server (stop, start, soft and hard
reboot, a hot-plugged port, delete) gets one like `single` of its own (`own`), so every test
stands alone and in any order (`-k`, reordering): none depends on what another did. A
hot-plugged NIC is attached to the domain and configured in the running guest
(`cirrus-guest-init configure-nic` through the guest agent). Needs root, libvirtd at qemu:///system (CIRRUS_TEST_LIBVIRT_URI), qemu-img and
the Debian mirror for the first guest build; skips without them, fails instead under
CIRRUS_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    AllInOne,
    Cli,
    start_all_in_one,
    stop_all_in_one,
    unique,
    wait_for_status,
)
from tests.guest import skip_or_fail
from tests.guest.qemu import Report, build_test_guest, parse_report
from tests.virt.conftest import LIBVIRT_URI
from tests.virt.domains import destroy_leftover_domains

pytestmark = pytest.mark.e2e

BOOT_TIMEOUT = 90.0  # seconds from a start to the guest's report, under TCG on a busy host
READY = re.compile(r"^cirrus-guest: network ready in \d+ ms$", re.M)
GUEST_LINE = re.compile(r"^cirrus-guest: .*$", re.M)
DHCP_LINE = "cirrus-guest: no injected network, leaving DHCP"
# /init prints this after its report, once per boot: the guest is up and its agent answers.
AGENT_UP = re.compile(r"^cirrus-init: guest agent on ", re.M)
CMDLINE = "console=ttyS0 quiet panic=-1"


@dataclass
class LibvirtCloud:
    aio: AllInOne
    cli: Cli

    @property
    def instances_dir(self) -> Path:
        return self.aio.data_dir / "instances"

    @property
    def image_cache_dir(self) -> Path:
        return self.instances_dir / "_base"


@dataclass
class Networks:
    """Network names: `static` (DHCP off, gateway, host route, DNS, MTU 1450), `dhcp` (DHCP
    on, no gateway, MTU 1400), `plug` (DHCP off, MTU 1420, for hot-plug)."""

    static: str
    dhcp: str
    plug: str


@dataclass
class Images:
    inject: str  # support_inject_ip=true
    plain: str
    flavor: str
    ids: set[str]  # of the four images: kernel, ramdisk, inject, plain


# ---------------------------------------------------------------- fixtures


def require_host() -> None:
    """Root, QEMU tools and a libvirtd that answers: what the libvirt driver needs."""
    if os.geteuid() != 0:
        skip_or_fail("real guests need root (taps, bridges, the test guest build)")
    for tool in ("qemu-img", "qemu-system-x86_64", "virsh"):
        if shutil.which(tool) is None:
            skip_or_fail(f"`{tool}` is not installed (qemu-utils, qemu-system-x86, "
                         "libvirt-clients)")
    try:
        import libvirt
    except ImportError:
        skip_or_fail("libvirt-python is not installed (pip install 'cirrus[libvirt]')")
    try:
        libvirt.open(LIBVIRT_URI).close()
    except libvirt.libvirtError as exc:
        skip_or_fail(f"libvirtd is not reachable at {LIBVIRT_URI}: "
                     f"{exc.get_error_message()} (start it: `libvirtd -d; virtlogd -d`)")


@pytest.fixture(scope="module")
def cloud_root() -> Iterator[Path]:
    """A directory for the cloud's data and the root disk image, which QEMU (running as
    libvirt-qemu) can traverse: pytest's tmp_path is under a 0700 directory."""
    require_host()
    root = Path(tempfile.mkdtemp(prefix="cirrus-e2e-libvirt-", dir="/var/tmp"))
    root.chmod(0o755)
    yield root
    destroy_leftover_domains(LIBVIRT_URI, root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cloud(cloud_root: Path) -> Iterator[LibvirtCloud]:
    aio = start_all_in_one(cloud_root / "data", args=["--virt-driver", "libvirt"],
                           env={"CIRRUS_VIRT_TYPE": "qemu", "CIRRUS_LIBVIRT_URI": LIBVIRT_URI})
    cli = Cli(aio.clouds_yaml)
    try:
        yield LibvirtCloud(aio, cli)
        servers = [s["ID"] for s in cli.json("server", "list")]
        if servers:  # the ones tests left: the agent removes domains, disks and taps
            cli.run("server", "delete", "--wait", *servers)
        # The networks too: their DHCP namespaces and dnsmasq (dhcp_agent is on) go with them.
        for p in cli.json("port", "list", "--long"):
            if p.get("Device Owner") != "network:dhcp":
                cli.run("port", "delete", p["ID"], check=False)
        for net in cli.json("network", "list"):
            cli.run("network", "delete", net["ID"], check=False)
    finally:
        code = stop_all_in_one(aio)
    assert code == 0, f"all-in-one exit code {code}:\n{aio.log_tail()}"


@pytest.fixture(scope="module")
def images(cloud: LibvirtCloud, cloud_root: Path) -> Images:
    kernel, initrd = build_test_guest()
    cli = cloud.cli
    root_disk = cloud_root / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root_disk), "64M"],
                   check=True)
    kernel_id = cli.json("image", "create", "--disk-format", "aki", "--container-format",
                         "aki", "--file", str(kernel), unique("guest-kernel"))["id"]
    ramdisk_id = cli.json("image", "create", "--disk-format", "ari", "--container-format",
                          "ari", "--file", str(initrd), unique("guest-ramdisk"))["id"]
    common = ["image", "create", "--disk-format", "qcow2", "--container-format", "bare",
              "--file", str(root_disk), "--property", f"kernel_id={kernel_id}",
              "--property", f"ramdisk_id={ramdisk_id}", "--property", f"os_command_line={CMDLINE}"]
    inject = cli.json(*common, "--property", "support_inject_ip=true", unique("guest-inject"))
    plain = cli.json(*common, unique("guest-plain"))
    flavor = cli.json("flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1",
                      unique("guest.tiny"))
    return Images(inject["name"], plain["name"], flavor["name"],
                  {kernel_id, ramdisk_id, inject["id"], plain["id"]})


@pytest.fixture(scope="module")
def networks(cloud: LibvirtCloud) -> Networks:
    cli = cloud.cli
    names = Networks(unique("static"), unique("dhcp"), unique("plug"))
    cli.run("network", "create", "--mtu", "1450", names.static)
    cli.run("subnet", "create", "--network", names.static, "--subnet-range", "10.20.0.0/24",
            "--no-dhcp", "--gateway", "10.20.0.1",
            "--allocation-pool", "start=10.20.0.10,end=10.20.0.99",
            "--host-route", "destination=10.30.0.0/16,gateway=10.20.0.254",
            "--dns-nameserver", "10.20.0.53", unique("static-v4"))
    cli.run("network", "create", "--mtu", "1400", names.dhcp)
    cli.run("subnet", "create", "--network", names.dhcp, "--subnet-range", "10.21.0.0/24",
            "--dhcp", "--gateway", "none", unique("dhcp-v4"))
    cli.run("network", "create", "--mtu", "1420", names.plug)
    cli.run("subnet", "create", "--network", names.plug, "--subnet-range", "10.22.0.0/24",
            "--no-dhcp", "--gateway", "none", unique("plug-v4"))
    return names


def create_server(cli: Cli, image: str, flavor: str, *networks: str) -> dict:
    """`server create --wait` with a config drive and one `--nic net-id=` per network."""
    nics = [arg for net in networks for arg in ("--nic", f"net-id={net}")]
    return cli.json("server", "create", "--wait", "--config-drive", "True", "--flavor", flavor,
                    "--image", image, *nics, unique("vm"))


@pytest.fixture(scope="module")
def single(cloud: LibvirtCloud, images: Images, networks: Networks) -> dict:
    """One NIC on the static network, booted once and left as it is: for tests that read."""
    return create_server(cloud.cli, images.plain, images.flavor, networks.static)


@pytest.fixture
def own(cloud: LibvirtCloud, images: Images, networks: Networks) -> Iterator[dict]:
    """A server like `single` of the test's own, for a test that changes it (power, ports,
    delete): each test stands alone, whatever ran before it."""
    server = create_server(cloud.cli, images.plain, images.flavor, networks.static)
    yield server
    cloud.cli.run("server", "delete", "--wait", server["id"], check=False)


@pytest.fixture(scope="module")
def pair(cloud: LibvirtCloud, images: Images, networks: Networks) -> dict:
    return create_server(cloud.cli, images.inject, images.flavor, networks.static,
                         networks.dhcp)


ADMIN_PASS = "e2e-Admin-pass-1"
INJECTED_PATH = "/etc/cirrus-e2e.conf"
INJECTED = b"injected by the e2e test\n\x00\xff binary too\n"


@pytest.fixture(scope="module")
def dhcp(cloud: LibvirtCloud, images: Images, networks: Networks) -> Iterator[dict]:
    """Also given an admin password and an injected file (personality, microversion 2.56),
    through openstacksdk: `openstack server create --file` of OSC 10.5 hands the SDK an open
    file, which it cannot serialise ("Object of type BufferedReader is not JSON
    serializable"), a client bug."""
    import openstack
    from openstack.config import loader

    cli = cloud.cli
    config = loader.OpenStackConfig(config_files=[str(cloud.aio.clouds_yaml)], vendor_files=[],
                                    secure_files=[])
    conn = openstack.connection.Connection(
        config=config.get_one(cloud="cirrus", compute_api_version="2.56"))
    try:
        server = conn.compute.create_server(
            name=unique("vm"), flavor_id=cli.json("flavor", "show", images.flavor)["id"],
            image_id=cli.json("image", "show", images.plain)["id"],
            networks=[{"uuid": network_id(cli, networks.dhcp)}], config_drive=True,
            admin_password=ADMIN_PASS, personality=[
                {"path": INJECTED_PATH, "contents": base64.b64encode(INJECTED).decode()}])
        conn.compute.wait_for_server(server, wait=120)
        yield {"id": server.id, "adminPass": server.admin_password, "status": "ACTIVE"}
    finally:
        conn.close()


# ---------------------------------------------------------------- reading the guest


def console(cli: Cli, server: str) -> str:
    return cli.run("console", "log", "show", server).stdout.replace("\r", "")


def wait_for_boots(cli: Cli, server: str, count: int, timeout: float = BOOT_TIMEOUT) -> str:
    """The console once the guest has finished its `count`-th boot (report printed, guest
    agent started)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = console(cli, server)
        if len(AGENT_UP.findall(text)) >= count:
            return text
        time.sleep(1.0)
    tail = "\n".join(text.splitlines()[-30:])
    raise AssertionError(f"server {server} finished {len(AGENT_UP.findall(text))} boots, "
                         f"not {count}, within {timeout:.0f} s; console tail:\n{tail}")


def last_report(text: str) -> Report:
    return parse_report(text[text.rindex("cirrus-report: begin"):])


@dataclass
class PortView:
    """One port as the guest should see it: MAC, address/prefix, and its subnet and network."""

    id: str
    mac: str
    address: str  # "a.b.c.d/prefix"
    subnet: dict
    mtu: int


def server_ports(cli: Cli, server: str) -> dict[str, PortView]:
    """The server's ports by network id, read from the API."""
    views = {}
    for listed in cli.json("port", "list", "--server", server):
        port = cli.json("port", "show", listed["ID"])
        (fixed,) = port["fixed_ips"]
        subnet = cli.json("subnet", "show", fixed["subnet_id"])
        prefix = ipaddress.ip_network(subnet["cidr"]).prefixlen
        mtu = cli.json("network", "show", port["network_id"])["mtu"]
        views[port["network_id"]] = PortView(port["id"], port["mac_address"],
                                             f"{fixed['ip_address']}/{prefix}", subnet, mtu)
    return views


def network_id(cli: Cli, name: str) -> str:
    return cli.json("network", "show", name)["id"]


def virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", LIBVIRT_URI, *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def domain_interfaces(server_id: str, inactive: bool = False) -> dict[str, str]:
    """`virsh domiflist` of the server's domain: MAC -> tap name."""
    flags = ["--inactive"] if inactive else []
    rows = virsh("domiflist", f"cirrus-{server_id}", *flags).splitlines()[2:]
    return {row.split()[4]: row.split()[0] for row in rows if row.strip()}


def host_links() -> dict[str, dict]:
    """`ip -j link` of this host, by interface name."""
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    return {link["ifname"]: link for link in json.loads(out.stdout)}


def guest_exec(server_id: str, path: str, timeout: float = 30.0) -> str:
    """Run a command in the guest through its QEMU guest agent (virsh); its stdout."""
    request = {"execute": "guest-exec", "arguments": {"path": path, "capture-output": True}}
    pid = json.loads(virsh("qemu-agent-command", f"cirrus-{server_id}",
                           json.dumps(request)))["return"]["pid"]
    status_request = json.dumps({"execute": "guest-exec-status", "arguments": {"pid": pid}})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(virsh("qemu-agent-command", f"cirrus-{server_id}",
                                  status_request))["return"]
        if status["exited"]:
            return base64.b64decode(status.get("out-data", "")).decode()
        time.sleep(0.2)
    raise AssertionError(f"{path} did not finish in the guest of {server_id} in {timeout} s")


# ---------------------------------------------------------------- tests


def test_guest_on_a_dhcp_off_subnet_sets_exactly_its_ports_network(
        cloud: LibvirtCloud, single: dict) -> None:
    cli = cloud.cli
    text = wait_for_boots(cli, single["id"], 1)
    (port,) = server_ports(cli, single["id"]).values()
    route = port.subnet["host_routes"][0]
    hostname = cli.json("server", "show", single["id"])["OS-EXT-SRV-ATTR:hostname"]
    report = last_report(text)

    assert single["status"] == "ACTIVE"
    lines = GUEST_LINE.findall(text)
    assert len(lines) == 1 and READY.match(lines[0]), text
    assert report.links == {"eth0": {"mac": port.mac, "mtu": port.mtu}}
    assert report.addresses == {"eth0": {port.address}}
    assert report.routes == {("default", port.subnet["gateway_ip"], "eth0"),
                             (route["destination"], route["nexthop"], "eth0")}
    assert report.hostname == hostname == single["name"]
    assert report.resolv == [f"nameserver {ns}" for ns in port.subnet["dns_nameservers"]]


def test_two_nics_are_named_by_the_nic_map_and_the_image_property_makes_dhcp_static(
        cloud: LibvirtCloud, pair: dict, networks: Networks) -> None:
    cli = cloud.cli
    text = wait_for_boots(cli, pair["id"], 1)
    ports = server_ports(cli, pair["id"])
    first, second = ports[network_id(cli, networks.static)], ports[network_id(cli, networks.dhcp)]
    report = last_report(text)

    assert READY.search(text), text
    # NIC map: index 0 is the first --nic (eth0), index 1 the second (eth1), by MAC.
    assert report.links == {"eth0": {"mac": first.mac, "mtu": first.mtu},
                            "eth1": {"mac": second.mac, "mtu": second.mtu}}
    # eth1's subnet has DHCP on: its static address comes from support_inject_ip.
    assert report.addresses == {"eth0": {first.address}, "eth1": {second.address}}
    route = first.subnet["host_routes"][0]
    assert report.routes == {("default", first.subnet["gateway_ip"], "eth0"),
                             (route["destination"], route["nexthop"], "eth0")}


def test_stop_start_and_reboots_return_to_their_state_and_boot_the_guest_again(
        cloud: LibvirtCloud, own: dict) -> None:
    cli, uuid = cloud.cli, own["id"]
    wait_for_boots(cli, uuid, 1)
    (port,) = server_ports(cli, uuid).values()

    cli.run("server", "stop", uuid)
    stopped = wait_for_status(cli, uuid, "SHUTOFF", timeout=60)
    assert stopped["OS-EXT-STS:power_state"] == 4  # SHUTDOWN
    assert virsh("domstate", f"cirrus-{uuid}").strip() == "shut off"

    cli.run("server", "start", uuid)
    assert wait_for_status(cli, uuid, "ACTIVE", timeout=60)["OS-EXT-STS:power_state"] == 1
    after_start = wait_for_boots(cli, uuid, 2)
    assert virsh("domstate", f"cirrus-{uuid}").strip() == "running"

    cli.run("server", "reboot", "--soft", "--wait", uuid)
    assert cli.json("server", "show", uuid)["status"] == "ACTIVE"
    after_soft = wait_for_boots(cli, uuid, 3)

    cli.run("server", "reboot", "--hard", "--wait", uuid)
    assert cli.json("server", "show", uuid)["status"] == "ACTIVE"
    after_hard = wait_for_boots(cli, uuid, 4)

    for boots, text in ((2, after_start), (3, after_soft), (4, after_hard)):
        assert len(READY.findall(text)) == boots, text
        assert last_report(text).addresses == {"eth0": {port.address}}


def test_hot_plugged_port_reaches_the_running_domain(
        cloud: LibvirtCloud, own: dict, networks: Networks) -> None:
    cli, uuid = cloud.cli, own["id"]
    port = cli.json("port", "create", "--network", networks.plug, unique("hot"))
    net_id = network_id(cli, networks.plug)

    cli.run("server", "add", "port", uuid, port["id"])
    tap = f"tap{port['id'][:11]}"
    links = host_links()

    assert cli.json("port", "show", port["id"])["device_id"] == uuid
    assert domain_interfaces(uuid)[port["mac_address"]] == tap
    assert domain_interfaces(uuid, inactive=True)[port["mac_address"]] == tap  # persistent
    assert links[tap]["mtu"] == 1420
    assert links[tap]["master"] == f"brq{net_id[:11]}"


def test_hot_plugged_port_is_configured_in_the_guest(
        cloud: LibvirtCloud, own: dict, networks: Networks) -> None:
    cli, uuid = cloud.cli, own["id"]
    wait_for_boots(cli, uuid, 1)
    port = cli.json("port", "create", "--network", networks.plug, unique("hot"))
    prefix = ipaddress.ip_network(cli.json("subnet", "list", "--network", networks.plug)[0]
                                  ["Subnet"]).prefixlen
    cli.run("server", "add", "port", uuid, port["id"])
    wanted = f"{port['fixed_ips'][0]['ip_address']}/{prefix}"

    deadline = time.monotonic() + 10  # in case the guest is configured after the attach
    while True:
        report = parse_report(guest_exec(uuid, "/usr/sbin/cirrus-report"))
        named = {link["mac"]: name for name, link in report.links.items()}
        name = named.get(port["mac_address"])
        if (name and wanted in report.addresses[name]) or time.monotonic() > deadline:
            break
        time.sleep(1.0)

    assert name is not None, report.links
    assert report.addresses[name] == {wanted}


def test_hot_plugged_ports_are_on_the_config_drive_at_the_next_boot(
        cloud: LibvirtCloud, own: dict, networks: Networks) -> None:
    cli, uuid = cloud.cli, own["id"]
    port = cli.json("port", "create", "--network", networks.plug, unique("kept"))
    prefix = ipaddress.ip_network(cli.json("subnet", "list", "--network", networks.plug)[0]
                                  ["Subnet"]).prefixlen
    boots = len(AGENT_UP.findall(wait_for_boots(cli, uuid, 1)))
    cli.run("server", "add", "port", uuid, port["id"])

    cli.run("server", "stop", uuid)
    wait_for_status(cli, uuid, "SHUTOFF", timeout=60)
    cli.run("server", "start", uuid)
    wait_for_status(cli, uuid, "ACTIVE", timeout=60)
    text = wait_for_boots(cli, uuid, boots + 1)
    report = last_report(text)
    named = {link["mac"]: name for name, link in report.links.items()}

    # Applied at boot by cirrus-guest-init from the drive (no guest agent call this time).
    last_boot = text[list(AGENT_UP.finditer(text))[-2].end():]
    assert len(READY.findall(last_boot)) == 1, last_boot
    name = named[port["mac_address"]]
    assert report.addresses[name] == {f"{port['fixed_ips'][0]['ip_address']}/{prefix}"}
    assert report.links[name]["mtu"] == 1420
    assert len(report.links) == len(cli.json("port", "list", "--server", uuid))


def test_admin_password_and_injected_files_are_on_the_config_drive(
        cloud: LibvirtCloud, dhcp: dict) -> None:
    from tests.unit.test_configdrive import read_vfat

    label, files = read_vfat(cloud.instances_dir / dhcp["id"] / "disk.config")
    meta = json.loads(files["openstack/latest/meta_data.json"])

    assert label == "config-2"
    assert dhcp["adminPass"] == ADMIN_PASS
    assert meta["admin_pass"] == ADMIN_PASS
    (entry,) = meta["files"]
    assert entry["path"] == INJECTED_PATH
    assert files["openstack" + entry["content_path"]] == INJECTED
    # Erased from the database once the guest has them: `server show` never had them.
    assert "adminPass" not in cloud.cli.json("server", "show", dhcp["id"])


def test_image_without_the_property_on_a_dhcp_subnet_keeps_its_dhcp_path(
        cloud: LibvirtCloud, dhcp: dict) -> None:
    cli = cloud.cli
    text = wait_for_boots(cli, dhcp["id"], 1)
    (port,) = server_ports(cli, dhcp["id"]).values()
    report = last_report(text)

    assert dhcp["status"] == "ACTIVE"
    assert GUEST_LINE.findall(text) == [DHCP_LINE], text
    assert report.links == {"eth0": {"mac": port.mac, "mtu": 1400}}
    # No static address was injected: the guest's udhcpc asked, and the all-in-one's DHCP
    # (dnsmasq in qdhcp-<network>, docs/networking.md "DHCP") gave it its port's address.
    # Read again through the guest agent: a lease later than the boot report counts too.
    deadline = time.monotonic() + 30
    while report.addresses != {"eth0": {port.address}} and time.monotonic() < deadline:
        time.sleep(1.0)
        report = parse_report(guest_exec(dhcp["id"], "/usr/sbin/cirrus-report"))
    assert report.addresses == {"eth0": {port.address}}


def test_delete_leaves_no_domain_disk_tap_or_cache_lock(
        cloud: LibvirtCloud, own: dict, images: Images) -> None:
    cli, uuid = cloud.cli, own["id"]
    taps = [f"tap{p['ID'][:11]}" for p in cli.json("port", "list", "--server", uuid)]
    instance_dir = cloud.instances_dir / uuid
    assert instance_dir.is_dir() and taps
    assert set(taps) <= set(host_links())

    cli.run("server", "delete", "--wait", uuid)

    assert f"cirrus-{uuid}" not in virsh("list", "--all", "--name").split()
    assert not instance_dir.exists()
    assert not set(taps) & set(host_links())
    assert list(cloud.image_cache_dir.glob(".*.lock")) == []
    cached = {path.name for path in cloud.image_cache_dir.iterdir()}
    assert cached and cached <= images.ids, "only whole cached images stay, for the next server"
