"""The whole L3 flow driven by the real `openstack` CLI, with real packets (issue 14, 7).

A cloud (scheduler, conductor, the API served over HTTP on loopback) and one agent with the
fake virt driver, `l3_agent` on and the linuxbridge dataplane in a namespace of its own
("the host"). A project member runs, with the `openstack` command and a clouds.yaml of this
cloud: network and subnet create, router create, router set --external-gateway, router add
subnet, server create, floating ip create, server add floating ip, security group rule
create and delete. The server's NIC is a guest namespace: the fake driver's tap is swapped
for a veth of the same name whose other end is the guest's eth0 (the port's MAC and
address), so the host's bridge, nftables security groups and router carry its traffic as
they would a VM's. An "outside" namespace on the external network then connects to the
floating IP's port 22: dropped by the project's default security group, let in once the
rule is created, dropped again for new connections once it is deleted.

Needs root, iproute2, nft and the `openstack` command; skips with the reason otherwise.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cirrus.hosts.liveness import L3_BINARY
from cirrus.network.l3.agent import NamespaceRouters, namespace_name
from cirrus.network.model import bridge_name, tap_name
from cirrus.runtime import Cloud, write_clouds_yaml
from tests.conftest import ADMIN_PASSWORD
from tests.e2e.conftest import Cli, Users, free_port, openstack_command
from tests.network.conftest import cloud_with_agent_in, ip, wait_for
from tests.network.lab import Vm
from tests.network.test_l3_cloud import nat_rules
from tests.services import require

HOST = "cli-host-1"
CIDR, GATEWAY = "10.94.0.0/24", "10.94.0.1"
PUBLIC_CIDR, UPSTREAM = "198.51.100.0/24", "198.51.100.1"  # the outside namespace's address
ENFORCED_WITHIN = 2.0  # seconds from a rule command's return to new connections following it


@dataclass
class ServedCloud:
    cloud: Cloud
    admin: Cli
    host_ns: str


@pytest.fixture
def host_ns(namespaces) -> str:
    return namespaces.add("hv")


@pytest.fixture
def served(settings, host_ns, tmp_path) -> Iterator[ServedCloud]:
    """The cloud with its namespace agent, its API on a loopback port, and the admin's CLI."""
    import uvicorn

    from cirrus.api.app import create_app

    require(shutil.which("nft") is not None, "nftables (nft) is not installed")
    openstack_command()  # fails saying how to install it when missing
    settings.api_host, settings.api_port = "127.0.0.1", free_port()
    settings.public_url = f"http://127.0.0.1:{settings.api_port}"  # the catalog's endpoints
    settings.l3_agent = True
    with cloud_with_agent_in(settings, HOST, host_ns, L3_BINARY) as (c, agent):
        assert isinstance(agent.routers, NamespaceRouters)
        server = uvicorn.Server(uvicorn.Config(
            create_app(c), host=settings.api_host, port=settings.api_port, log_config=None,
            access_log=False, lifespan="off", loop="asyncio"))
        thread = threading.Thread(target=server.run, name="test-api", daemon=True)
        thread.start()  # not the main thread: uvicorn installs no signal handlers
        try:
            wait_for(lambda: server.started, what="the API listening")
            clouds_yaml = tmp_path / "clouds.yaml"
            write_clouds_yaml(clouds_yaml, f"{settings.effective_public_url}/identity/v3",
                              settings.admin_user, ADMIN_PASSWORD, settings.admin_project,
                              settings.region)
            yield ServedCloud(c, Cli(clouds_yaml), host_ns)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            for router_id in list(agent.routers.served()):
                agent.routers.remove(router_id)


def member_cli(admin: Cli) -> Cli:
    suffix = uuid.uuid4().hex[:8]
    project, name, password = f"cli-l3-{suffix}", f"cli-l3-member-{suffix}", uuid.uuid4().hex
    admin.json("project", "create", "--domain", "default", project)
    admin.json("user", "create", "--domain", "default", "--project", project,
               "--password", password, name)
    admin.run("role", "add", "--project", project, "--user", name, "member")
    cloud = yaml.safe_load(admin.clouds_yaml.read_text())["clouds"]["cirrus"]
    return Users(admin, cloud["auth"], cloud["region_name"]).add(name, name, password, project)


def guest_behind(namespaces, host_ns: str, network_id: str, port: dict) -> Vm:
    """Swap the fake driver's tap of `port` for a veth of the same name whose other end is
    a guest namespace's eth0, with the port's MAC and address and the subnet's gateway."""
    tap = tap_name(port["ID"])
    wait_for(lambda: tap in ip("-o", "link", "show", netns=host_ns), what=f"the tap {tap}")
    ip("link", "del", tap, netns=host_ns)
    guest = namespaces.add(f"g{uuid.uuid4().hex[:4]}")
    address = port["Fixed IP Addresses"][0]["ip_address"]
    ip("link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", guest,
       netns=host_ns)
    ip("link", "set", tap, "master", bridge_name(network_id), "up", netns=host_ns)
    ip("link", "set", "eth0", "address", port["MAC Address"], netns=guest)
    ip("addr", "add", f"{address}/24", "dev", "eth0", netns=guest)
    ip("link", "set", "eth0", "up", netns=guest)
    ip("route", "add", "default", "via", GATEWAY, netns=guest)
    return Vm(netns=guest, port_id=port["ID"], mac=port["MAC Address"], ip=address)


def outside_on(namespaces, host_ns: str, network_id: str) -> Vm:
    """A namespace on the external network's bridge, as the upstream router would be."""
    ns = namespaces.add(f"o{uuid.uuid4().hex[:4]}")
    outer = f"v{uuid.uuid4().hex[:10]}"
    ip("link", "add", "eth0", "type", "veth", "peer", "name", outer, "netns", host_ns,
       netns=ns)
    ip("link", "set", outer, "master", bridge_name(network_id), "up", netns=host_ns)
    ip("addr", "add", f"{UPSTREAM}/24", "dev", "eth0", netns=ns)
    ip("link", "set", "eth0", "up", netns=ns)
    return Vm(netns=ns, port_id="", mac="", ip=UPSTREAM)


def within(seconds: float, check) -> float | None:
    """Seconds until `check()` held, polling; None if it did not within `seconds`."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            return None
        time.sleep(0.05)


def reaches(client: Vm, address: str, port: int, timeout: float = 0.5) -> bool:
    sock = client.connect(address, port, timeout=timeout)
    if sock is None:
        return False
    sock.close()
    return True


def test_the_openstack_cli_drives_router_floating_ip_and_security_group_with_real_packets(
        served: ServedCloud, namespaces, tmp_path: Path):
    admin, host_ns = served.admin, served.host_ns
    member = member_cli(admin)
    public = admin.json("network", "create", "--external", "public")
    admin.json("subnet", "create", "--network", public["id"], "--subnet-range", PUBLIC_CIDR,
               "--gateway", UPSTREAM, "--no-dhcp", "public-subnet")
    image_file = tmp_path / "tiny.raw"
    image_file.write_bytes(b"\0" * 65536)
    image = admin.json("image", "create", "--file", str(image_file), "--disk-format", "raw",
                       "--container-format", "bare", "--public", "tiny")
    flavor = admin.json("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "1",
                        "cli.tiny")

    # The project's network, its router out to the external network, and a server.
    net = member.json("network", "create", "private")
    subnet = member.json("subnet", "create", "--network", net["id"], "--subnet-range", CIDR,
                         "--gateway", GATEWAY, "--no-dhcp", "private-subnet")
    router = member.json("router", "create", "r1")
    member.run("router", "set", "--external-gateway", public["id"], router["id"])
    member.run("router", "add", "subnet", router["id"], subnet["id"])
    # The router's status comes from its host: ACTIVE once the namespace is built there.
    wait_for(lambda: member.json("router", "show", router["id"])["status"] == "ACTIVE",
             what="the router ACTIVE (built by its L3 host)")
    ns = namespace_name(router["id"], host_ns)
    assert Path("/run/netns", ns).exists()

    server = member.json("server", "create", "--image", image["id"], "--flavor", flavor["id"],
                         "--nic", f"net-id={net['id']}", "--wait", "vm1")
    assert server["status"] == "ACTIVE"
    [port] = member.json("port", "list", "--server", server["id"], "--long")
    vm = guest_behind(namespaces, host_ns, net["id"], port)
    outside = outside_on(namespaces, host_ns, public["id"])
    listeners = [vm.listen(22), outside.listen(8000)]
    try:
        fip = member.json("floating ip", "create", public["id"])
        floating = fip["floating_ip_address"]
        member.run("server", "add", "floating", "ip", server["id"], floating)
        wait_for(lambda: f"dnat to {vm.ip}" in nat_rules(ns), what="the floating IP's DNAT")

        # The path works (egress is allowed: the guest reaches the outside, SNATed), but the
        # default security group lets nothing in: port 22 on the floating IP is dropped.
        assert reaches(vm, UPSTREAM, 8000, timeout=2.0)
        assert not reaches(outside, floating, 22, timeout=1.0)

        [group] = member.json("port", "show", port["ID"])["security_group_ids"]
        rule = member.json("security group rule", "create", "--ingress", "--protocol", "tcp",
                           "--dst-port", "22", "--remote-ip", "0.0.0.0/0", group)
        took = within(ENFORCED_WITHIN, lambda: reaches(outside, floating, 22))
        assert took is not None, f"port 22 still closed {ENFORCED_WITHIN}s after the rule"
        ssh = outside.connect(floating, 22)
        assert ssh is not None
        ssh.close()
        assert not reaches(outside, floating, 23, timeout=0.5)  # only 22 was opened

        member.run("security group rule", "delete", rule["id"])
        took = within(ENFORCED_WITHIN, lambda: not reaches(outside, floating, 22, timeout=0.3))
        assert took is not None, f"port 22 still open {ENFORCED_WITHIN}s after the delete"
        assert not reaches(outside, floating, 22, timeout=1.0)  # and it stays closed
        assert reaches(vm, UPSTREAM, 8000, timeout=2.0)  # egress untouched
    finally:
        for listener in listeners:
            listener.close()
