"""The host dataplane drivers: `noop` (in memory) and `linuxbridge` (bridges and taps).

The linuxbridge tests each run the driver inside a network namespace they create and always
remove (../shared/PLATFORM.md "Network tests"), and check the result with iproute2's JSON
output, independently of the pyroute2 code under test. They need root; they skip without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest

from cirrus.network.dataplane import load_dataplane
from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane
from cirrus.network.dataplane.noop import NoopDataplane
from cirrus.network.model import Nic
from tests.services import missing, require_root


def make_nic(network_id: str, mtu: int = 1450, index: int = 0) -> Nic:
    return Nic(index=index, name=f"eth{index}", port_id=str(uuid.uuid4()),
               mac=f"fa:16:3e:00:00:{index:02x}", network_id=network_id, mtu=mtu)


def new_network_id() -> str:
    return str(uuid.uuid4())


# --- noop ----------------------------------------------------------------------------------

def test_noop_remembers_plugged_ports_and_plugging_twice_is_harmless():
    dp = load_dataplane("noop")
    assert isinstance(dp, NoopDataplane)
    net = new_network_id()
    a, b = make_nic(net), make_nic(net, index=1)
    dp.plug(a)
    dp.plug(b)
    dp.plug(a)
    assert dp.plugged() == {a.tap: a.bridge, b.tap: a.bridge}


def test_noop_unplug_forgets_the_port_and_unknown_ports_are_not_an_error():
    dp = NoopDataplane()
    nic = make_nic(new_network_id())
    dp.plug(nic)
    dp.unplug(str(uuid.uuid4()), nic.network_id)
    assert dp.plugged() == {nic.tap: nic.bridge}
    dp.unplug(nic.port_id, nic.network_id)
    dp.unplug(nic.port_id, nic.network_id)
    assert dp.plugged() == {}


def test_noop_plugged_is_a_copy():
    dp = NoopDataplane()
    dp.plug(make_nic(new_network_id()))
    dp.plugged().clear()
    assert len(dp.plugged()) == 1


# --- linuxbridge, in a namespace of the test's own ----------------------------------------

def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace, deleted afterwards whatever the test did."""
    require_root("linuxbridge tests (network namespaces)")
    if shutil.which("ip") is None:
        missing("iproute2 `ip` not found")
    if not os.path.exists("/dev/net/tun"):
        missing("/dev/net/tun is missing: taps cannot be created")
    name = f"cirrus-t-{uuid.uuid4().hex[:8]}"
    added = ip("netns", "add", name)
    if added.returncode != 0:
        missing(f"`ip netns add` is unavailable: {added.stderr.strip()}")
    try:
        yield name
    finally:
        ip("netns", "del", name)


def links(ns: str) -> dict[str, dict]:
    """Every link in `ns` by name, with details (kind, bridge and tun data)."""
    out = ip("-j", "-d", "-n", ns, "link", "show")
    assert out.returncode == 0, out.stderr
    return {link["ifname"]: link for link in json.loads(out.stdout)}


def addresses(ns: str) -> dict[str, list[dict]]:
    out = ip("-j", "-n", ns, "addr", "show")
    assert out.returncode == 0, out.stderr
    return {link["ifname"]: link.get("addr_info", []) for link in json.loads(out.stdout)}


def ipv6_disabled(ns: str, dev: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n",
                          f"net/ipv6/conf/{dev}/disable_ipv6"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip()


def root_link_names() -> set[str]:
    return {link["ifname"] for link in json.loads(ip("-j", "link", "show").stdout)}


def snapshot(ns: str) -> dict[str, tuple]:
    """What plugging must not change once right: identity, MTU, master, admin state, MAC
    (not carrier flags: the kernel updates those on its own, a moment after a port joins)."""
    return {name: (link["ifindex"], link["mtu"], link.get("master"), "UP" in link["flags"],
                   link.get("address"))
            for name, link in links(ns).items()}


@pytest.fixture
def three_ports(netns):
    """Two ports on a 1450 network and one on a 9000 network, all plugged."""
    dp = LinuxBridgeDataplane(netns=netns)
    net_a, net_b = new_network_id(), new_network_id()
    nics = [make_nic(net_a, 1450, 0), make_nic(net_a, 1450, 1), make_nic(net_b, 9000, 0)]
    for nic in nics:
        dp.plug(nic)
    return dp, nics


def assert_plugged_as_expected(ns: str, nics: list[Nic]) -> None:
    state, addrs = links(ns), addresses(ns)
    for nic in nics:
        bridge, tap = state[nic.bridge], state[nic.tap]
        assert bridge["linkinfo"]["info_kind"] == "bridge"
        assert bridge["linkinfo"]["info_data"]["stp_state"] == 0
        assert bridge["linkinfo"]["info_data"]["forward_delay"] == 0
        assert bridge["mtu"] == nic.mtu and tap["mtu"] == nic.mtu
        assert "UP" in bridge["flags"] and "UP" in tap["flags"]
        tun = tap["linkinfo"]["info_data"]
        assert (tun["type"], tun["persist"], tun["multi_queue"]) == ("tap", True, False)
        assert tap["master"] == nic.bridge
        for dev in (nic.bridge, nic.tap):
            assert addrs[dev] == [], f"{dev} has a host address"
            assert ipv6_disabled(ns, dev) == "1"
    bridges = {nic.bridge for nic in nics}
    ports = {name for name, link in state.items() if link.get("master") in bridges}
    assert ports == {nic.tap for nic in nics}, "a bridge has a port that is not a tap (uplink?)"


def test_plug_makes_a_bridge_per_network_and_a_tap_per_port(netns, three_ports):
    dp, nics = three_ports
    assert len({nic.bridge for nic in nics}) == 2
    assert_plugged_as_expected(netns, nics)
    assert dp.plugged() == {nic.tap: nic.bridge for nic in nics}


def test_plugging_again_changes_nothing(netns, three_ports):
    dp, nics = three_ports
    before = snapshot(netns)
    for nic in nics:
        dp.plug(nic)
    assert snapshot(netns) == before


def test_plugging_again_fixes_mtu_master_and_admin_state(netns, three_ports):
    dp, nics = three_ports
    nic = nics[0]
    assert ip("-n", netns, "link", "set", nic.tap, "nomaster", "mtu", "1300", "down").returncode == 0
    assert ip("-n", netns, "link", "set", nic.bridge, "down").returncode == 0
    assert links(netns)[nic.tap].get("master") is None
    dp.plug(nic)
    assert_plugged_as_expected(netns, nics)


def test_unplug_removes_the_tap_then_the_bridge_once_empty(netns, three_ports):
    dp, (a1, a2, b1) = three_ports
    dp.unplug(a1.port_id, a1.network_id)
    state = links(netns)
    assert a1.tap not in state and a1.bridge in state
    assert state[a1.bridge]["mtu"] == 1450
    assert dp.plugged() == {a2.tap: a2.bridge, b1.tap: b1.bridge}

    dp.unplug(a2.port_id, a2.network_id)
    state = links(netns)
    assert a2.tap not in state and a2.bridge not in state
    assert b1.tap in state and b1.bridge in state
    assert dp.plugged() == {b1.tap: b1.bridge}

    dp.unplug(a2.port_id, a2.network_id)  # already gone
    dp.unplug(str(uuid.uuid4()), str(uuid.uuid4()))  # never known
    assert dp.plugged() == {b1.tap: b1.bridge}


def test_plugged_ignores_devices_that_are_not_cirrus_taps_on_cirrus_bridges(netns, three_ports):
    dp, nics = three_ports
    assert ip("-n", netns, "link", "add", "br-other", "type", "bridge").returncode == 0
    assert ip("-n", netns, "tuntap", "add", "tapforeign", "mode", "tap").returncode == 0
    assert ip("-n", netns, "link", "set", "tapforeign", "master", "br-other").returncode == 0
    assert ip("-n", netns, "tuntap", "add", "taploose", "mode", "tap").returncode == 0
    assert dp.plugged() == {nic.tap: nic.bridge for nic in nics}


def test_plug_restores_bridges_and_taps_lost_in_a_host_restart(netns, three_ports):
    dp, nics = three_ports
    for name in {nic.tap for nic in nics} | {nic.bridge for nic in nics}:
        assert ip("-n", netns, "link", "del", name).returncode == 0
    assert dp.plugged() == {}
    for nic in nics:
        dp.plug(nic)
    assert_plugged_as_expected(netns, nics)
    assert dp.plugged() == {nic.tap: nic.bridge for nic in nics}


def test_concurrent_plugs_from_many_threads_all_land(netns):
    dp = LinuxBridgeDataplane(netns=netns)
    net = new_network_id()
    nics = [make_nic(net, 1450, i) for i in range(6)]
    errors: list[BaseException] = []

    def plug(nic: Nic) -> None:
        try:
            dp.plug(nic)
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=plug, args=(nic,)) for nic in nics]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert_plugged_as_expected(netns, nics)


def test_a_missing_namespace_is_an_error_and_is_not_created(netns):
    absent = f"{netns}-absent"
    dp = LinuxBridgeDataplane(netns=absent)
    with pytest.raises(OSError):
        dp.plug(make_nic(new_network_id()))
    assert absent not in ip("netns", "list").stdout


def test_working_in_a_namespace_creates_nothing_in_the_root_namespace(netns):
    before = root_link_names()
    dp = load_dataplane("linuxbridge", netns=netns)
    nics = [make_nic(new_network_id(), 1450, i) for i in range(2)]
    for nic in nics:
        dp.plug(nic)
    assert set(links(netns)) >= {nic.tap for nic in nics} | {nic.bridge for nic in nics}
    created = root_link_names() - before
    ours = {nic.tap for nic in nics} | {nic.bridge for nic in nics}
    # Other processes may add links meanwhile; a tap or bridge of ours never appears here.
    assert not {name for name in created if name.startswith(("tap", "brq"))}
    assert not ours & root_link_names()
    for nic in nics:
        dp.unplug(nic.port_id, nic.network_id)
    assert not ours & set(links(netns))
