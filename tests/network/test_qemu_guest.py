"""A real QEMU guest end to end on the dataplane (issue 14, point 7): the API, the control
side, the bus, two agents whose linuxbridge dataplanes are network namespaces joined by an
underlay (tests/network/fabric.py), a real libvirt/QEMU guest (TCG) of
scripts/build-test-guest on one of them, and real packets.

    underlay ns:  `ul` (VXLAN underlay 192.0.2.0/24), `pv` (physnet1: the external network)
    qemu-host:    libvirt driver, VTEP 192.0.2.1; the guest's tap on the tenant bridge
    net-host:     fake driver, VTEP 192.0.2.2, eth1 on `pv` (physnet1), DHCP and L3 agent:
                  the network's dnsmasq (qdhcp) and the router (qrouter) run here, and a
                  namespace "VM" of a server bound here sits on the tenant bridge
    outside ns:   198.51.100.1 on `pv`, the external subnet's gateway

The guest sits on a vxlan tenant network with DHCP and gets its address from dnsmasq on the
other host across the overlay (the test image has no injected network then: its /init runs
udhcpc); it talks to the namespace VM over VXLAN; the network is on a router whose gateway
is on a flat external network, so it reaches the outside namespace through SNAT (seen from
the gateway's address) and, once a floating IP is associated and a security group rule
opens a port, is reached at its floating IP (and leaves from it).

libvirtd runs in the machine's own namespace and opens a `managed='no'` tap by name there,
so the libvirt host's taps are lent to it for the domain's start and go back to the host's
namespace, onto their bridge, once QEMU holds them (`NamespacedTapsLibvirtDriver`; a tap
keeps its queue when its device changes namespace). Nothing in the machine's namespace gets
an address, a bridge or an uplink.

What the guest does is read through the QEMU guest agent (`guest-exec` with libvirt's
qemu-agent-command, as the driver's hot-plug does), and what it shows is checked from the
namespaces' side too (the peer address their servers see). One guest boot for the module
(TCG is slow); each test leaves the guest as it found it. Needs root, iproute2, nftables,
dnsmasq, QEMU, libvirtd at qemu:///system (CIRRUS_TEST_LIBVIRT_URI) and the Debian mirror
for the first guest build; skips without them, fails instead under CIRRUS_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from cirrus.config import Settings
from cirrus.db.models import Service
from cirrus.hosts.liveness import DHCP_BINARY, L3_BINARY
from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane
from cirrus.network.model import tap_name
from cirrus.runtime import Cloud
from tests.api.network_helpers import NET, create, network, subnet
from tests.api.servers_helpers import add_flavor, wait_for_status
from tests.conftest import ADMIN_PASSWORD, Caller, make_settings
from tests.guest.qemu import build_test_guest, parse_report
from tests.network.conftest import kill_namespace, wait_for
from tests.network.fabric import Fabric, Host, ip, require_fabric
from tests.network.test_router import SERVER, seen_by
from tests.services import missing, require
from tests.virt.conftest import LIBVIRT_URI
from tests.virt.domains import destroy_leftover_domains

QEMU_HOST, NET_HOST = "qemu-host", "net-host"
CMDLINE = "console=ttyS0 quiet panic=-1"
BOOT_TIMEOUT = 120.0  # a start to the guest agent's answer, under TCG on a busy machine
AGENT_UP = re.compile(r"^cirrus-init: guest agent on ", re.M)
DHCP_LINE = "cirrus-guest: no injected network, leaving DHCP"
TENANT_CIDR, TENANT_GW = "10.94.0.0/24", "10.94.0.1"
OUTSIDE_IP = "198.51.100.1"  # the external subnet's gateway: the outside namespace
GUEST_HTTP = 8080  # busybox httpd in the guest, a CGI answering the peer's address
PEER_PORT = 7777  # tests/network/test_router.SERVER: answers the peer's address
COMPUTE = "/compute/v2.1"


def require_qemu_host() -> None:
    """Root and network namespaces (the fabric), nftables, dnsmasq, QEMU and libvirtd."""
    require_fabric()
    require(shutil.which("nft") is not None, "nftables (nft) is not installed")
    require(shutil.which("dnsmasq") or Path("/usr/sbin/dnsmasq").exists(),
            "dnsmasq is not installed (apt-get install dnsmasq-base)")
    for tool in ("qemu-img", "qemu-system-x86_64"):
        require(shutil.which(tool) is not None,
                f"`{tool}` is not installed (qemu-utils, qemu-system-x86)")
    try:
        import libvirt
    except ImportError:
        missing("libvirt-python is not installed (pip install 'cirrus[libvirt]')")
    try:
        libvirt.open(LIBVIRT_URI).close()
    except libvirt.libvirtError as exc:
        missing(f"libvirtd is not reachable at {LIBVIRT_URI}: {exc.get_error_message()} "
                "(start it: `libvirtd -d; virtlogd -d`)")


# ---------------------------------------------------------------- the libvirt host's taps


def _lend_taps_driver():
    from cirrus.virt.libvirt.driver import LibvirtDriver

    class NamespacedTapsLibvirtDriver(LibvirtDriver):
        """The libvirt driver of a host whose dataplane is in a network namespace.

        libvirtd attaches a `managed='no'` tap by name in its own namespace, the machine's.
        So for the domain's start each NIC's tap (made by the agent's `plug` in the host's
        namespace) moves to the machine's namespace, down, with IPv6 off and no master;
        once QEMU holds it, it moves back and is plugged again (master, MTU, up, filter).
        Only spawn starts a domain in these tests."""

        def __init__(self, settings: Settings, host: str, dataplane: LinuxBridgeDataplane):
            super().__init__(settings, host)
            self.dataplane = dataplane
            self.lent: set[str] = set()

        def spawn(self, spec) -> None:
            netns = self.dataplane.netns
            assert netns is not None
            for nic in spec.nics:
                self.lent.add(nic.tap)
                ip("-n", netns, "link", "set", nic.tap, "netns", "1")
                _sysctl(f"net.ipv6.conf.{nic.tap}.disable_ipv6=1")
            try:
                super().spawn(spec)
            finally:
                for nic in spec.nics:
                    if lent_here(nic.tap):
                        ip("link", "set", nic.tap, "netns", netns)
                    self.dataplane.plug(nic)

        def take_back(self) -> None:
            """Delete any tap still lent to the machine's namespace (a spawn cut short)."""
            for tap in self.lent:
                if lent_here(tap):
                    ip("link", "del", tap, check=False)

    return NamespacedTapsLibvirtDriver


def lent_here(tap: str) -> bool:
    """Whether `tap` is in the machine's own namespace."""
    return ip("link", "show", tap, check=False).returncode == 0


def _sysctl(setting: str) -> None:
    subprocess.run(["sysctl", "-q", "-w", setting], capture_output=True, check=False)


# ---------------------------------------------------------------- the guest agent


def guest_exec(uuid: str, path: str, *args: str, stdin: str | None = None,
               timeout: float = 30.0) -> tuple[int, str]:
    """Run a command in the guest through its agent (libvirt's qemu-agent-command):
    (exit status, stdout and stderr)."""
    import libvirt
    import libvirt_qemu

    conn = libvirt.open(LIBVIRT_URI)
    try:
        dom = conn.lookupByName(f"cirrus-{uuid}")
        request: dict = {"path": path, "arg": list(args), "capture-output": True}
        if stdin is not None:
            request["input-data"] = base64.b64encode(stdin.encode()).decode()
        answer = libvirt_qemu.qemuAgentCommand(
            dom, json.dumps({"execute": "guest-exec", "arguments": request}), 30, 0)
        pid = json.loads(answer)["return"]["pid"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(
                {"execute": "guest-exec-status", "arguments": {"pid": pid}}), 30, 0))["return"]
            if status.get("exited"):
                out = b"".join(base64.b64decode(status.get(k) or "")
                               for k in ("out-data", "err-data"))
                return status.get("exitcode", -1), out.decode(errors="replace")
            time.sleep(0.1)
    finally:
        conn.close()
    raise AssertionError(f"{path} {args} did not finish in the guest within {timeout} s")


def guest_sh(uuid: str, script: str, timeout: float = 30.0) -> tuple[int, str]:
    return guest_exec(uuid, "/bin/sh", "-c", script, timeout=timeout)


def guest_fetch_peer(uuid: str, address: str) -> str | None:
    """What the peer-address server at `address` saw as the guest's source (busybox nc in
    the guest); None when the guest could not connect."""
    code, out = guest_sh(uuid, f"nc -w 3 {address} {PEER_PORT} </dev/null")
    return out.strip() if code == 0 and out.strip() else None


CGI = """#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "$REMOTE_ADDR"
"""

HTTP_CLIENT = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode().strip())
"""
DIGEST_CLIENT = """
import hashlib, sys, urllib.request
data = urllib.request.urlopen(sys.argv[1], timeout=10).read()
print(len(data), hashlib.sha256(data).hexdigest())
"""
BIG_KIB = 512  # /www/big in the guest: hundreds of full-sized frames


def fetch_big(client_ns: str, address: str) -> str:
    """"<length> <sha256>" of the guest's /www/big fetched from `client_ns`."""
    done = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c",
                           DIGEST_CLIENT, f"http://{address}:{GUEST_HTTP}/big"],
                          capture_output=True, text=True, check=False, timeout=60)
    return done.stdout.strip() or done.stderr.strip()[-300:]


def peer_seen_by_guest(client_ns: str, address: str, timeout: float = 5.0) -> str | None:
    """The source address the guest's httpd saw for a request from `client_ns` to the guest at
    `address`; None when no answer came within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c",
                               HTTP_CLIENT, f"http://{address}:{GUEST_HTTP}/cgi-bin/peer", "2"],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            # busybox httpd listens on IPv6 and says "[::ffff:10.0.0.5]" for IPv4 peers
            return done.stdout.strip().strip("[]").removeprefix("::ffff:")
        time.sleep(0.3)
    return None


# ---------------------------------------------------------------- the module's cloud


@dataclass
class Lab:
    cloud: Cloud
    api: TestClient
    admin: Caller
    fabric: Fabric
    qemu_host: Host
    net_host: Host
    outside: str  # namespace on the external network (198.51.100.1)
    net: dict  # the tenant vxlan network
    public: dict  # the external flat network
    router: dict
    gateway_ip: str  # the router's address on the external network
    guest: dict  # the QEMU server
    guest_ip: str
    guest_port: dict
    vm_ns: str  # the namespace VM of a server on the network host
    vm_ip: str
    big: str  # "<length> <sha256>" of the guest's /www/big
    servers: list[subprocess.Popen]

    def agent(self, host: str):
        from cirrus.agent.service import Agent

        return next(r for r in self.cloud.roles if isinstance(r, Agent) and r.host == host)


def _registered(cloud: Cloud, binary: str) -> bool:
    with cloud.db.reader() as s:
        return s.scalar(select(Service.id).where(Service.binary == binary)) is not None


def _admin(cloud: Cloud) -> Caller:
    from cirrus.db.models import Project, User
    from cirrus.identity import service as identity

    with cloud.db.reader() as s:
        user = s.scalar(select(User).where(User.name == "admin"))
        project = s.scalar(select(Project).where(Project.name == "admin"))
        claims = identity.build_claims(s, cloud.tokens, user, project)
    return Caller(user.id, project.id, cloud.tokens.issue(claims))


def _image(api: TestClient, admin: Caller, path: Path, disk_format: str, **props) -> str:
    container = disk_format if disk_format in ("aki", "ari") else "bare"
    r = api.post("/image/v2/images", headers=admin.headers,
                 json={"name": path.name, "disk_format": disk_format,
                       "container_format": container, "visibility": "public", **props})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    r = api.put(f"/image/v2/images/{image_id}/file", content=path.read_bytes(),
                headers={**admin.headers, "Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    return image_id


def _server(api: TestClient, admin: Caller, name: str, flavor: str, image: str, net_id: str,
            host: str, timeout: float) -> dict:
    r = api.post(f"{COMPUTE}/servers", headers=admin.compute(), json={"server": {
        "name": name, "flavorRef": flavor, "imageRef": image, "config_drive": True,
        "networks": [{"uuid": net_id}], "availability_zone": f"nova:{host}"}})
    assert r.status_code == 202, r.text
    return wait_for_status(api, admin.compute(), r.json()["server"]["id"], "ACTIVE",
                           timeout=timeout)


def _port_of(api: TestClient, admin: Caller, server_id: str) -> dict:
    [port] = api.get(f"{NET}/ports?device_id={server_id}", headers=admin.headers).json()["ports"]
    return port


def console(api: TestClient, admin: Caller, server_id: str) -> str:
    r = api.post(f"{COMPUTE}/servers/{server_id}/action", headers=admin.compute(),
                 json={"os-getConsoleOutput": {}})
    assert r.status_code == 200, r.text
    return r.json()["output"].replace("\r", "")


def _namespace_vm(fabric: Fabric, host: Host, port: dict, mtu: int) -> tuple[str, str]:
    """A namespace standing in for the guest of a server the fake driver "runs" on `host`:
    the tap the agent plugged becomes a veth of the same name (so the host's filter applies
    to it as to a tap), its other end the VM's eth0 with the port's MAC and address."""
    ns = fabric.netns("vm")
    tap = tap_name(port["id"])
    master = json.loads(ip("-j", "-n", host.ns, "link", "show", tap).stdout)[0]["master"]
    ip("-n", host.ns, "link", "del", tap)
    ip("link", "add", tap, "netns", host.ns, "mtu", str(mtu), "type", "veth", "peer", "name",
       "eth0", "netns", ns, "address", port["mac_address"], "mtu", str(mtu))
    ip("-n", host.ns, "link", "set", tap, "master", master, "up")
    address = port["fixed_ips"][0]["ip_address"]
    ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")
    ip("-n", ns, "route", "add", "default", "via", TENANT_GW)
    return ns, address


def _outside(fabric: Fabric) -> str:
    """A namespace on the external network's switch (`pv` in the underlay)."""
    ns = fabric.netns("out")
    outer = f"pvo{fabric.tag}"
    ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", outer, "netns",
       fabric.underlay)
    ip("-n", fabric.underlay, "link", "set", outer, "master", "pv", "up")
    ip("-n", ns, "addr", "add", f"{OUTSIDE_IP}/24", "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")
    return ns


def _serve_peer(ns: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, "900"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_qemu_host()
    kernel, initrd = build_test_guest()
    from cirrus.agent.service import Agent
    from cirrus.virt.fake import FakeDriver

    root = Path(tempfile.mkdtemp(prefix="cirrus-netqemu-", dir="/var/tmp"))
    root.chmod(0o755)  # QEMU's user must traverse it to the instance directories
    fabric = Fabric()
    servers: list[subprocess.Popen] = []
    cloud = driver = None
    try:
        qemu_host = fabric.add_host(QEMU_HOST, 1)
        net_host = fabric.add_host(NET_HOST, 2)
        settings = make_settings(root / "data", heartbeat_interval=1.0)
        cloud = Cloud(settings)
        cloud.upgrade_schema()
        cloud.bootstrap(ADMIN_PASSWORD)
        cloud.start_roles(["scheduler", "conductor"])
        qemu_settings = dataclasses.replace(
            settings, virt_driver="libvirt", virt_type="qemu", libvirt_uri=LIBVIRT_URI,
            libvirt_shutdown_timeout=2.0, overlay_local_ip=qemu_host.vtep,
            network_dataplane="linuxbridge")
        net_settings = dataclasses.replace(
            settings, dhcp_agent=True, l3_agent=True, overlay_local_ip=net_host.vtep,
            physical_interface_mappings={"physnet1": "eth1"}, network_dataplane="linuxbridge")
        driver = _lend_taps_driver()(qemu_settings, QEMU_HOST, qemu_host.dataplane)
        fake = FakeDriver(NET_HOST, settings.fake, Path(settings.data_dir) / "fake-hosts",
                          settings)
        for agent in (Agent(qemu_settings, cloud.bus, QEMU_HOST, driver,
                            dataplane=qemu_host.dataplane),
                      Agent(net_settings, cloud.bus, NET_HOST, fake,
                            dataplane=net_host.dataplane)):
            agent.start()
            cloud.roles.append(agent)
        wait_for(lambda: _registered(cloud, DHCP_BINARY) and _registered(cloud, L3_BINARY),
                 what="the network host's DHCP and L3 services")
        from cirrus.api.app import create_app

        with TestClient(create_app(cloud), base_url="http://testserver") as api:
            admin = _admin(cloud)
            yield _build(cloud, api, admin, fabric, qemu_host, net_host, kernel, initrd,
                         root, servers)
            for server in api.get(f"{COMPUTE}/servers", headers=admin.compute()).json()[
                    "servers"]:
                api.delete(f"{COMPUTE}/servers/{server['id']}", headers=admin.compute())
                wait_for_status(api, admin.compute(), server["id"], "DELETED", timeout=60)
    finally:
        for server in servers:
            server.kill()
            server.wait()
        if cloud is not None:
            for role in list(cloud.roles):
                for side in ("dhcp", "routers"):
                    host = getattr(role, side, None)
                    for key in list(host.served()) if host is not None else ():
                        host.remove(key)
            cloud.stop()
        destroy_leftover_domains(LIBVIRT_URI, root)
        for ns in sorted(os.listdir("/run/netns"), reverse=True):
            if ns.startswith(f"cl2-{fabric.tag}"):
                kill_namespace(ns)
        fabric.close()
        if driver is not None:
            driver.take_back()
        shutil.rmtree(root, ignore_errors=True)


def _build(cloud, api, admin, fabric, qemu_host, net_host, kernel, initrd, root,
           servers) -> Lab:
    public = network(api, admin, name="public", **{
        "router:external": True, "provider:network_type": "flat",
        "provider:physical_network": "physnet1"})
    subnet(api, admin, public["id"], "198.51.100.0/24", gateway_ip=OUTSIDE_IP,
           enable_dhcp=False)
    net = network(api, admin, name="tenant")
    assert net["provider:network_type"] == "vxlan" and net["mtu"] == 1450
    sn = subnet(api, admin, net["id"], TENANT_CIDR, gateway_ip=TENANT_GW, enable_dhcp=True)
    made = create(api, admin, "routers", "router", name="r1",
                  external_gateway_info={"network_id": public["id"]})
    assert made.status_code == 201, made.text
    router = made.json()["router"]
    gateway_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    r = api.put(f"{NET}/routers/{router['id']}/add_router_interface",
                json={"subnet_id": sn["id"]}, headers=admin.headers)
    assert r.status_code == 200, r.text
    routers = next(role.routers for role in cloud.roles if getattr(role, "routers", None))
    wait_for(lambda: len(getattr(routers.served().get(router["id"]), "interfaces", ())) == 1,
             what="the router with its interface on the network host")

    kernel_id = _image(api, admin, kernel, "aki")
    ramdisk_id = _image(api, admin, initrd, "ari")
    disk = root / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    image = _image(api, admin, disk, "qcow2", kernel_id=kernel_id, ramdisk_id=ramdisk_id,
                   os_command_line=CMDLINE)
    flavor = add_flavor(cloud, name="guest.tiny", vcpus=1, ram=256, disk=1)

    # The namespace VM first: its server is bound on the network host.
    other = _server(api, admin, "vm", flavor, image, net["id"], NET_HOST, 30)
    vm_ns, vm_ip = _namespace_vm(fabric, net_host, _port_of(api, admin, other["id"]),
                                 net["mtu"])
    servers.append(_serve_peer(vm_ns))
    outside = _outside(fabric)
    servers.append(_serve_peer(outside))

    guest = _server(api, admin, "guest", flavor, image, net["id"], QEMU_HOST, BOOT_TIMEOUT)
    port = _port_of(api, admin, guest["id"])
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not AGENT_UP.search(text := console(api, admin, guest["id"])):
        assert time.monotonic() < deadline, f"the guest's agent did not start:\n{text[-3000:]}"
        time.sleep(0.5)
    # A CGI that answers the peer's address, for the inbound checks.
    code, out = guest_exec(guest["id"], "/bin/sh", "-c",
                           "mkdir -p /www/cgi-bin && cat >/www/cgi-bin/peer && "
                           f"chmod 755 /www/cgi-bin/peer && httpd -p {GUEST_HTTP} -h /www && "
                           f"dd if=/dev/urandom of=/www/big bs=1024 count={BIG_KIB} 2>/dev/null"
                           " && sha256sum /www/big", stdin=CGI)
    assert code == 0, out
    big = f"{BIG_KIB * 1024} {out.split()[0]}"
    return Lab(cloud=cloud, api=api, admin=admin, fabric=fabric, qemu_host=qemu_host,
               net_host=net_host, outside=outside, net=net, public=public, router=router,
               gateway_ip=gateway_ip, guest=guest, guest_ip=port["fixed_ips"][0]["ip_address"],
               guest_port=port, vm_ns=vm_ns, vm_ip=vm_ip, big=big, servers=servers)


# ---------------------------------------------------------------- tests


def guest_ipv4(lab: Lab) -> str:
    code, out = guest_sh(lab.guest["id"], "ip -o -4 addr show dev eth0")
    assert code == 0, out
    found = re.search(r"inet (\S+)", out)
    return found[1] if found else ""


def test_the_guest_gets_its_port_address_by_dhcp_across_the_overlay(lab):
    """dnsmasq runs on the network host only: the guest's DHCP crossed the VXLAN overlay."""
    text = console(lab.api, lab.admin, lab.guest["id"])
    assert DHCP_LINE in text  # no injected network: the image's DHCP path (udhcpc)
    wait_for(lambda: guest_ipv4(lab) == f"{lab.guest_ip}/24", timeout=30,
             what="the guest's DHCP address")
    report = parse_report(guest_sh(lab.guest["id"], "cirrus-report")[1])
    assert report.links["eth0"] == {"mac": lab.guest_port["mac_address"], "mtu": 1450}
    assert ("default", TENANT_GW, "eth0") in report.routes
    code, out = guest_sh(lab.guest["id"], "pidof udhcpc")  # the client that renews it
    assert code == 0 and out.strip(), out
    dhcp = lab.agent(NET_HOST).dhcp
    assert lab.net["id"] in dhcp.served()
    assert lab.agent(QEMU_HOST).dhcp is None  # nothing answers DHCP on the guest's host
    leases = dhcp.paths(lab.net["id"]).leases
    first = lease_expiry(leases.read_text(), lab.guest_port["mac_address"], lab.guest_ip)
    assert first is not None, leases.read_text()
    # A renewal (udhcpc renews on SIGUSR1): unicast to the server across the overlay, and
    # dnsmasq acknowledges it (the lease moves on), the address stays.
    time.sleep(1.1)  # the expiry is in whole seconds
    code, out = guest_sh(lab.guest["id"], "kill -USR1 $(pidof udhcpc)")
    assert code == 0, out
    wait_for(lambda: (lease_expiry(leases.read_text(), lab.guest_port["mac_address"],
                                   lab.guest_ip) or 0) > first, timeout=15,
             what="the renewed lease")
    assert guest_ipv4(lab) == f"{lab.guest_ip}/24"


def lease_expiry(leases: str, mac: str, address: str) -> int | None:
    """The expiry (epoch seconds) of dnsmasq's lease of `address` to `mac`."""
    for line in leases.splitlines():
        fields = line.split()
        if fields[1:3] == [mac, address]:
            return int(fields[0])
    return None


def test_the_guest_and_a_namespace_vm_on_another_host_talk_over_vxlan(lab):
    assert guest_fetch_peer(lab.guest["id"], lab.vm_ip) == lab.guest_ip
    code, out = guest_sh(lab.guest["id"], f"ping -c 2 -W 3 {lab.vm_ip}")
    assert code == 0, out
    # The other way: the VM reaches the guest's server (the default group lets its members
    # in), which sees the VM's own address.
    assert peer_seen_by_guest(lab.vm_ns, lab.guest_ip) == lab.vm_ip
    # Full-sized frames cross too: the guest's 1450 bytes plus the overlay's 50 fit the
    # underlay's 1500 (nothing lost to fragmentation).
    assert fetch_big(lab.vm_ns, lab.guest_ip) == lab.big
    # Over the overlay, and to the VTEP the port bindings name.
    fdb = lab.qemu_host.dataplane.fdb(lab.net["id"])
    vm_port = api_port(lab, lab.vm_ip)
    assert (vm_port["mac_address"], lab.net_host.vtep) in fdb


def api_port(lab: Lab, address: str) -> dict:
    ports = lab.api.get(f"{NET}/ports?network_id={lab.net['id']}",
                        headers=lab.admin.headers).json()["ports"]
    return next(p for p in ports if p["fixed_ips"][0]["ip_address"] == address)


def test_the_guest_reaches_outside_through_snat_and_is_reached_at_its_floating_ip(lab):
    api, admin = lab.api, lab.admin
    assert guest_fetch_peer(lab.guest["id"], OUTSIDE_IP) == lab.gateway_ip  # SNAT

    made = create(api, admin, "floatingips", "floatingip",
                  floating_network_id=lab.public["id"], port_id=lab.guest_port["id"])
    assert made.status_code == 201, made.text
    fip = made.json()["floatingip"]
    floating = fip["floating_ip_address"]
    routers = lab.agent(NET_HOST).routers
    wait_for(lambda: routers.served()[lab.router["id"]].floating_ips
             == ((floating, lab.guest_ip),), what="the floating IP on the router")
    [group] = api.get(f"{NET}/security-groups?name=default&project_id={admin.project_id}",
                      headers=admin.headers).json()["security_groups"]
    rule_id = None
    try:
        # The default group lets nobody from outside in yet.
        assert peer_seen_by_guest(lab.outside, floating, timeout=2.0) is None
        made = create(api, admin, "security-group-rules", "security_group_rule",
                      security_group_id=group["id"], direction="ingress", ethertype="IPv4",
                      protocol="tcp", port_range_min=GUEST_HTTP, port_range_max=GUEST_HTTP,
                      remote_ip_prefix="0.0.0.0/0")
        assert made.status_code == 201, made.text
        rule_id = made.json()["security_group_rule"]["id"]
        # 1:1 NAT: the guest sees the outside's own address, and leaves from its floating IP.
        assert peer_seen_by_guest(lab.outside, floating) == OUTSIDE_IP
        assert fetch_big(lab.outside, floating) == lab.big
        assert guest_fetch_peer(lab.guest["id"], OUTSIDE_IP) == floating
    finally:
        if rule_id:
            api.delete(f"{NET}/security-group-rules/{rule_id}", headers=admin.headers)
        r = api.delete(f"{NET}/floatingips/{fip['id']}", headers=admin.headers)
        assert r.status_code == 204, r.text
    wait_for(lambda: routers.served()[lab.router["id"]].floating_ips == (),
             what="the floating IP gone from the router")
    assert seen_by(lab.outside, floating, timeout=1.0) is None
    assert guest_fetch_peer(lab.guest["id"], OUTSIDE_IP) == lab.gateway_ip


SPY = """
table bridge spy {
    chain forward {
        type filter hook forward priority -500; policy accept;
        ip saddr %s icmp type echo-request counter
    }
}
"""


def test_a_spoofed_source_address_from_the_guest_is_dropped_on_its_host(lab):
    """The guest takes an address that is not its port's: what it sends from it never
    leaves its host (the libvirt host's filter drops it at the tap; a counter on the other
    host's bridge, before any filter there, sees nothing), while its own address passes."""
    spoofed = "10.94.0.250"
    uuid = lab.guest["id"]
    net_ns = lab.net_host.ns
    subprocess.run(["ip", "netns", "exec", net_ns, "nft", "-f", "-"], input=SPY % spoofed,
                   text=True, check=True)
    try:
        code, out = guest_sh(uuid, f"ip addr add {spoofed}/24 dev eth0")
        assert code == 0, out
        code, out = guest_sh(uuid, f"ping -c 1 -W 3 -I {lab.guest_ip} {lab.vm_ip}")
        assert code == 0, out  # the own address passes (and the VM's MAC is known now)
        code, out = guest_sh(uuid, f"ping -c 2 -W 2 -I {spoofed} {lab.vm_ip}")
        assert code != 0, out
        counters = subprocess.run(["ip", "netns", "exec", net_ns, "nft", "list", "table",
                                   "bridge", "spy"], capture_output=True, text=True).stdout
        assert "counter packets 0 " in counters, counters
    finally:
        guest_sh(uuid, f"ip addr del {spoofed}/24 dev eth0")
        subprocess.run(["ip", "netns", "exec", net_ns, "nft", "delete", "table", "bridge",
                        "spy"], capture_output=True, check=False)
