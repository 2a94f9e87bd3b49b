"""The agent's side of networking: a VM's taps exist before it starts, go when it goes, and
come back first thing after a host restart (seed 002: a reboot must not lose VM networking).
"""

from __future__ import annotations

from cirrus.agent.service import Agent
from cirrus.bus.local import LocalBus
from cirrus.context import RequestContext
from cirrus.network.dataplane.noop import NoopDataplane
from cirrus.network.model import FixedIp, Nic, SubnetInfo
from cirrus.virt.driver import InstanceSpec
from cirrus.virt.fake import FakeDriver
from tests.conftest import make_settings


class RecordingDataplane(NoopDataplane):
    """The noop dataplane, remembering the order of plugs and what the VM saw meanwhile."""

    def __init__(self, driver: FakeDriver) -> None:
        super().__init__()
        self.driver = driver
        self.events: list[tuple[str, str, bool]] = []

    def plug(self, nic: Nic) -> None:
        super().plug(nic)
        vm_exists = nic.port_id in str(self.driver._vms)
        self.events.append(("plug", nic.tap, vm_exists))


def _nic(index: int, port: str, net: str = "net-1111-2222") -> dict:
    subnet = SubnetInfo(id="sub", cidr="10.0.0.0/24", ip_version=4, gateway_ip="10.0.0.1")
    return Nic(index=index, name=f"eth{index}", port_id=port, mac=f"fa:16:3e:00:00:0{index}",
               network_id=net, mtu=1450,
               fixed_ips=(FixedIp(f"10.0.0.{10 + index}", subnet),)).to_dict()


def _agent(tmp_path, bus: LocalBus) -> Agent:
    settings = make_settings(tmp_path)
    driver = FakeDriver("host-a", settings.fake, tmp_path / "fake-hosts")
    agent = Agent(settings, bus, "host-a", driver, dataplane=RecordingDataplane(driver))
    bus.subscribe("conductor", {"spawn_result": lambda c, p: None,
                                "agent_report": lambda c, p: None}, workers=1)
    return agent


def test_taps_are_plugged_before_the_vm_starts_and_unplugged_after_it_goes(tmp_path) -> None:
    bus = LocalBus()
    try:
        agent = _agent(tmp_path, bus)
        nics = [_nic(0, "port-aaaaaaaaaaaa"), _nic(1, "port-bbbbbbbbbbbb")]
        spec = InstanceSpec(uuid="vm-1", name="vm", vcpus=1, memory_mb=64, root_gb=1,
                            nics=[Nic.from_dict(n) for n in nics])
        agent.spawn(RequestContext.admin(), {"spec": spec.to_dict()})
        assert agent.dataplane.events == [("plug", "tapport-aaaaaa", False),
                                          ("plug", "tapport-bbbbbb", False)]
        assert set(agent.dataplane.plugged()) == {"tapport-aaaaaa", "tapport-bbbbbb"}
        assert agent.nics.get("vm-1") == nics
        agent.destroy(RequestContext.admin(), {"uuid": "vm-1"})
        assert agent.dataplane.plugged() == {} and agent.nics.get("vm-1") == []
    finally:
        bus.stop()


def test_after_a_host_restart_every_running_vms_taps_are_made_again_first(tmp_path) -> None:
    bus = LocalBus()
    try:
        agent = _agent(tmp_path, bus)
        spec = InstanceSpec(uuid="vm-1", name="vm", vcpus=1, memory_mb=64, root_gb=1,
                            nics=[Nic.from_dict(_nic(0, "port-aaaaaaaaaaaa"))])
        agent.spawn(RequestContext.admin(), {"spec": spec.to_dict()})
        gone = InstanceSpec(uuid="vm-2", name="gone", vcpus=1, memory_mb=64, root_gb=1,
                            nics=[Nic.from_dict(_nic(0, "port-cccccccccccc"))])
        agent.spawn(RequestContext.admin(), {"spec": gone.to_dict()})
        agent.driver._vms.pop("vm-2")  # vanished while the host was down
        agent.driver._save()
    finally:
        bus.stop()

    # The host rebooted: no bridge or tap is left; the agent starts again on the same disk.
    bus = LocalBus()
    try:
        fresh = _agent(tmp_path, bus)
        assert fresh.dataplane.plugged() == {}
        fresh.start()
        assert fresh.dataplane.plugged() == {"tapport-aaaaaa": "brqnet-1111-22"}
        assert fresh.dataplane.events[0] == ("plug", "tapport-aaaaaa", True)
        assert fresh.nics.get("vm-2") == []  # the vanished VM's ports are forgotten
        fresh.stop()
    finally:
        bus.stop()


def test_security_groups_are_applied_kept_on_disk_and_rebuilt_on_start(tmp_path) -> None:
    """update_security_groups reaches the dataplane's firewall; after a restart the agent
    rebuilds it from its file, with the ports it plugs (issue 14, sg)."""
    from cirrus.network.port_filter import HostFilterState, PortFilter, SecurityGroupRule

    group = "sg-1111"
    nic = {**_nic(0, "port-aaaaaaaaaaaa"), "security_groups": [group]}
    state = HostFilterState(generation=5.0, ports=(PortFilter.from_nic(Nic.from_dict(nic)),),
                            rules={group: (SecurityGroupRule("ingress", protocol="tcp",
                                                             port_range_min=22,
                                                             port_range_max=22),)},
                            members={group: ("10.0.0.10",)})
    bus = LocalBus()
    try:
        agent = _agent(tmp_path, bus)
        spec = InstanceSpec(uuid="vm-1", name="vm", vcpus=1, memory_mb=64, root_gb=1,
                            nics=[Nic.from_dict(nic)])
        agent.spawn(RequestContext.admin(), {"spec": spec.to_dict()})
        assert agent.dataplane.firewall.state.ports["port-aaaaaaaaaaaa"].security_groups == (group,)
        agent.update_security_groups(RequestContext.admin(), {"state": state.to_dict()})
        assert agent.dataplane.firewall.state.rules == state.rules
        assert (tmp_path / "agents" / "host-a" / "firewall.json").stat().st_mode & 0o077 == 0
    finally:
        bus.stop()

    bus = LocalBus()
    try:
        fresh = _agent(tmp_path, bus)
        assert fresh.dataplane.firewall.state.rules == {}
        fresh.start()
        restored = fresh.dataplane.firewall.state
        assert restored.rules == state.rules and restored.members == state.members
        assert restored.generation == 5.0 and set(restored.ports) == {"port-aaaaaaaaaaaa"}
        fresh.stop()
    finally:
        bus.stop()
