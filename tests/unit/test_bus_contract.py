"""The bus contracts (cirrus/bus/contract.py and the rpcapi modules): every payload survives
its wire form; every receiver takes the unversioned dicts senders sent before the contracts,
and a receiver of that time reads what a new sender sends (a rolling upgrade); a message a
receiver does not understand is refused with a clear error, and its consumer goes on.
"""

from __future__ import annotations

import dataclasses
import json
import queue
from typing import Any

import pytest
from sqlalchemy import select

from cirrus.agent import rpcapi as agent_rpcapi
from cirrus.agent.service import Agent
from cirrus.bus import RemoteError
from cirrus.bus.contract import VERSION_KEY, ContractError, Payload
from cirrus.bus.local import LocalBus
from cirrus.compute import rpcapi as compute_rpcapi
from cirrus.compute import states
from cirrus.context import RequestContext
from cirrus.db.models import Instance
from cirrus.errors import is_transient
from cirrus.network.model import FixedIp, Nic, SubnetInfo
from cirrus.observe import rpcapi as admin_rpcapi
from cirrus.scheduler import rpcapi as scheduler_rpcapi
from cirrus.storage.volumes import rpcapi as volume_rpcapi
from cirrus.virt.driver import InstanceSpec
from cirrus.virt.fake import FakeDriver
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status
from tests.conftest import make_settings
from tests.unit.test_agent_network import RecordingDataplane

UUID, UUID2 = "6a2f1f7e-0c4b-4a57-9d0e-000000000001", "6a2f1f7e-0c4b-4a57-9d0e-000000000002"
IMAGE, PORT = "0b7d2c0e-5e55-4f3e-8c9a-00000000000a", "port-aaaaaaaaaaaa"
_SUBNET = SubnetInfo(id="sub", cidr="10.0.0.0/24", ip_version=4, gateway_ip="10.0.0.1")
NIC = json.loads(json.dumps(Nic(  # as it travels: JSON data
    index=0, name="eth0", port_id=PORT, mac="fa:16:3e:00:00:01", network_id="net-1", mtu=1450,
    fixed_ips=(FixedIp("10.0.0.10", _SUBNET),)).to_dict()))
SPEC = dataclasses.asdict(InstanceSpec(uuid=UUID, name="vm", vcpus=1, memory_mb=64, root_gb=1))
STATS = {"hypervisor_type": "fake", "hypervisor_version": 1, "vcpus": 4, "memory_mb": 4096,
         "local_gb": 40, "storage_pools": {"default": {"total_gb": 40, "free_gb": 40}}}
CTX = RequestContext.admin()

ROLES = {"agent": agent_rpcapi, "conductor": compute_rpcapi, "scheduler": scheduler_rpcapi,
         "admin": admin_rpcapi, "volume": volume_rpcapi}

SG_STATE = {"generation": 1733480000.5,
            "ports": [{"port_id": PORT, "mac": "fa:16:3e:00:00:01", "addresses": ["10.0.0.5"],
                       "security_groups": ["sg-1"], "port_security_enabled": True,
                       "allowed_address_pairs": []}],
            "rules": {"sg-1": [{"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                                "port_range_min": 22, "port_range_max": 22,
                                "remote_ip_prefix": None, "remote_group_id": None}]},
            "members": {"sg-1": ["10.0.0.5"]}}

# One payload per class, every field set to something other than its default.
SAMPLES: list[Payload] = [
    agent_rpcapi.SpawnInstance(spec=SPEC, task=states.UNSHELVING),
    agent_rpcapi.DestroyInstance(uuid=UUID),
    agent_rpcapi.PowerInstance(uuid=UUID, task=states.POWERING_OFF, action="stop"),
    agent_rpcapi.AttachInterface(uuid=UUID, nic=NIC),
    agent_rpcapi.DetachInterface(uuid=UUID, nic=NIC),
    agent_rpcapi.SnapshotInstance(uuid=UUID, image_id=IMAGE, file="snap-1", host="fake-1"),
    agent_rpcapi.ListInstances(),
    agent_rpcapi.ConsoleOutput(uuid=UUID, length=10),
    agent_rpcapi.RebuildInstance(spec=SPEC, task=states.REBUILD_SPAWNING, stopped=True),
    compute_rpcapi.BuildInstances(uuids=(UUID, UUID2)),
    compute_rpcapi.SpawnResult(uuid=UUID, host="fake-1", ok=False, error="no disk",
                               details="Traceback ...", power_state=0,
                               task=states.UNSHELVING),
    compute_rpcapi.DeleteInstance(uuid=UUID),
    compute_rpcapi.AttachInterface(uuid=UUID, request=({"uuid": "net-1", "fixed_ip": "10.0.0.9"},)),
    compute_rpcapi.DetachInterface(uuid=UUID, port_id=PORT),
    compute_rpcapi.PowerAction(uuid=UUID, task=states.REBOOTING),
    compute_rpcapi.TaskResult(uuid=UUID, task=states.REBOOTING, ok=False, host="fake-1",
                              error="boom", details="Traceback ...", power_state=1),
    compute_rpcapi.SnapshotInstance(uuid=UUID, image_id=IMAGE),
    compute_rpcapi.SnapshotResult(uuid=UUID, image_id=IMAGE, file="snap-1", ok=False,
                                  host="fake-1", error="disk gone", details="Traceback ..."),
    compute_rpcapi.AgentReport(host="fake-1", stats=STATS, taken_at=1733480000.25,
                               instances={UUID: 1, UUID2: 4}, startup=True,
                               overlay_ip="192.0.2.1"),
    agent_rpcapi.NetworkPeers(networks={"net-1": [{"host": "fake-2", "vtep": "192.0.2.2",
                                                   "macs": ["fa:16:3e:00:00:02"]}]},
                              full=True, taken_at=1733480000.5),  # l2
    scheduler_rpcapi.SelectDestination(
        instance_uuid=UUID, vcpus=2, memory_mb=512, disk_gb=10, availability_zone="az1",
        exclude_hosts=("fake-2",), storage_pool="ssd", force_host="fake-1", force_node="fake-1",
        task=states.UNSHELVING),
    scheduler_rpcapi.Destination(host=None, node=None, reason="fake-1: full",
                                 public_reason="full", gone=True),
    admin_rpcapi.SetLogLevel(level="DEBUG", logger="cirrus.agent"),
    # shelve, resize and cold migrate (comp-b)
    agent_rpcapi.ShelveInstance(uuid=UUID, image_id=IMAGE, file="snap-1"),
    agent_rpcapi.OffloadInstance(uuid=UUID),
    agent_rpcapi.PrepareResize(uuid=UUID),
    agent_rpcapi.ResizeInstance(spec=SPEC, task=states.RESIZE_MIGRATING, power_on=True),
    compute_rpcapi.ShelveInstance(uuid=UUID, image_id=IMAGE),
    compute_rpcapi.ShelveResult(uuid=UUID, image_id=IMAGE, file="snap-1", ok=False,
                                host="fake-1", error="disk gone", details="Traceback ...",
                                power_state=4),
    compute_rpcapi.OffloadInstance(uuid=UUID),
    compute_rpcapi.UnshelveInstance(uuid=UUID),
    compute_rpcapi.ResizeRequest(uuid=UUID, migration=UUID2),
    compute_rpcapi.ResizeResult(uuid=UUID, host="fake-1", task=states.RESIZE_MIGRATING,
                                ok=False, error="boom", details="Traceback ...", power_state=1),
    compute_rpcapi.ResizeDecision(uuid=UUID),
    agent_rpcapi.InstanceDiagnostics(uuid=UUID),  # issue 13
    # security groups (issue 14, sg)
    agent_rpcapi.UpdateSecurityGroups(state=SG_STATE),
    # DHCP (issue 14, dhcp)
    agent_rpcapi.SyncDhcp(network_id="net-1", network={"network_id": "net-1", "mtu": 1450},
                          stamp=1733480000.5),
    agent_rpcapi.SyncDhcp(network_id="net-1", network=None, stamp=1733480000.5),
    agent_rpcapi.SyncDhcpAll(networks=[{"network_id": "net-1", "mtu": 1450}],
                             stamp=1733480000.5),
    compute_rpcapi.AgentReport(host="fake-1", dhcp=True),
    # routers on the hosts (issue 14, l3)
    agent_rpcapi.SyncRouter(router_id="r-1", router={
        "router_id": "r-1", "enable_snat": True, "routes": [["10.9.0.0/16", "10.0.0.9"]],
        "interfaces": [{"port_id": "p-1", "mac": "fa:16:3e:00:00:01",
                        "addresses": ["10.0.0.1/24"], "network_id": "net-1", "mtu": 1450,
                        "network_type": "vxlan", "physical_network": None,
                        "segmentation_id": 1001, "gateway_ips": []}],
        "gateway": {"port_id": "p-2", "mac": "fa:16:3e:00:00:02",
                    "addresses": ["203.0.113.10/24"], "network_id": "ext-1", "mtu": 1500,
                    "network_type": "flat", "physical_network": "physnet1",
                    "segmentation_id": None, "gateway_ips": ["203.0.113.1"]},
        "floating_ips": [["203.0.113.50", "10.0.0.5"]]}, stamp=1733480000.5),
    agent_rpcapi.SyncRouter(router_id="r-1", router=None, stamp=1733480000.5),
    agent_rpcapi.SyncRoutersAll(routers=[{"router_id": "r-1"}], stamp=1733480000.5),
    compute_rpcapi.AgentReport(host="fake-1", dhcp=True, l3=True),
    # a router's status from its host (issue 14, l3)
    compute_rpcapi.RouterStatus(host="fake-1", router_id="r-1", built=True,
                                stamp=1733480000.5),
    compute_rpcapi.RouterStatus(host="fake-1", router_id="r-1", built=False,
                                error="RuntimeError: ip netns add: File exists",
                                stamp=1733480000.5),
    # block storage (issue 15)
    volume_rpcapi.CreateVolume(volume_id=UUID),
    volume_rpcapi.DeleteVolume(volume_id=UUID, snapshot_ids=(UUID2,)),
    volume_rpcapi.ExtendVolume(volume_id=UUID, new_size=5),
    volume_rpcapi.CreateSnapshot(snapshot_id=UUID2),
    volume_rpcapi.DeleteSnapshot(snapshot_id=UUID2),
    volume_rpcapi.InitializeConnection(volume_id=UUID),
    agent_rpcapi.AttachVolume(uuid=UUID, volume={"volume_id": UUID2,
                                                 "driver_volume_type": "file",
                                                 "data": {"path": "/v", "format": "qcow2"}}),
    agent_rpcapi.DetachVolume(uuid=UUID, volume_id=UUID2, timeout=5.0),
    agent_rpcapi.ExtendAttachedVolume(uuid=UUID, volume_id=UUID2, new_size=3),
    compute_rpcapi.AttachVolume(uuid=UUID, attachment_id=UUID2),
    compute_rpcapi.DetachVolume(uuid=UUID, attachment_id=UUID2),
    compute_rpcapi.ExtendAttachedVolume(volume_id=UUID2, new_size=3),
    volume_rpcapi.ExtendAttached(volume_id=UUID2, new_size=3),
    volume_rpcapi.UploadImage(volume_id=UUID, image_id=UUID2, disk_format="qcow2"),
    volume_rpcapi.RevertVolume(volume_id=UUID, snapshot_id=UUID2),
]

# What each sender sent before the contracts (version 1), copied from the code of that time.
LEGACY: list[tuple[str, str, dict[str, Any]]] = [
    ("agent", "spawn", {"spec": SPEC}),
    ("agent", "destroy", {"uuid": UUID}),
    ("agent", "power", {"uuid": UUID, "task": states.POWERING_OFF, "action": "stop"}),
    ("agent", "attach_interface", {"uuid": UUID, "nic": NIC}),
    ("agent", "detach_interface", {"uuid": UUID, "nic": NIC}),
    ("agent", "snapshot", {"uuid": UUID, "image_id": IMAGE, "host": "fake-1",
                           "file": "snapshot-" + IMAGE}),
    ("agent", "list_instances", {}),
    ("agent", "console_output", {"uuid": UUID, "length": None}),
    ("agent", "console_output", {"uuid": UUID, "length": 5}),
    ("agent", "rebuild", {"spec": SPEC, "task": states.REBUILD_SPAWNING}),
    ("agent", "update_security_groups", {"state": SG_STATE}),  # new with issue 14: as v1
    ("conductor", "build_instances", {"uuids": [UUID, UUID2]}),
    ("conductor", "spawn_result", {"uuid": UUID, "host": "fake-1", "ok": True, "error": None,
                                   "details": None, "power_state": 1}),
    ("conductor", "spawn_result", {"uuid": UUID, "host": "fake-1", "ok": False,
                                   "error": "no disk", "details": "Traceback ..."}),
    ("conductor", "delete_instance", {"uuid": UUID}),
    ("conductor", "attach_interface", {"uuid": UUID, "request": "auto"}),
    ("conductor", "attach_interface", {"uuid": UUID, "request": [{"port": PORT}]}),
    ("conductor", "detach_interface", {"uuid": UUID, "port_id": PORT}),
    ("conductor", "power_action", {"uuid": UUID, "task": states.POWERING_OFF}),
    ("conductor", "task_result", {"uuid": UUID, "host": "fake-1", "task": states.POWERING_OFF,
                                  "ok": True, "error": None, "power_state": 4}),
    ("conductor", "snapshot_instance", {"uuid": UUID, "image_id": IMAGE}),
    ("conductor", "snapshot_result", {"uuid": UUID, "image_id": IMAGE, "host": "fake-1",
                                      "file": "snapshot-" + IMAGE, "ok": True, "error": None}),
    ("conductor", "agent_report", {"host": "fake-1"}),
    ("conductor", "agent_report", {"host": "fake-1", "stats": STATS, "taken_at": 1733480000.25,
                                   "instances": {UUID: 1}, "startup": False}),
    ("scheduler", "select_destination", {
        "instance_uuid": UUID, "vcpus": 1, "memory_mb": 512, "disk_gb": 1,
        "availability_zone": None, "exclude_hosts": [], "storage_pool": None,
        "force_host": None, "force_node": None}),
    ("admin", "set_log_level", {"level": "WARNING", "logger": None}),
    ("admin", "set_log_level", {"level": "WARNING", "logger": "cirrus.agent"}),
    # shelve, resize and cold migrate (comp-b): new messages, their first form
    ("agent", "shelve", {"uuid": UUID, "image_id": IMAGE, "file": "snapshot-" + IMAGE}),
    ("agent", "offload", {"uuid": UUID}),
    ("agent", "prepare_resize", {"uuid": UUID}),
    ("agent", "resize", {"spec": SPEC, "task": states.RESIZE_MIGRATING, "power_on": False}),
    ("conductor", "shelve_instance", {"uuid": UUID, "image_id": IMAGE}),
    ("conductor", "shelve_result", {"uuid": UUID, "image_id": IMAGE, "host": "fake-1",
                                    "file": "snapshot-" + IMAGE, "ok": True}),
    ("conductor", "offload_instance", {"uuid": UUID}),
    ("conductor", "unshelve_instance", {"uuid": UUID}),
    ("conductor", "resize_instance", {"uuid": UUID, "migration": UUID2}),
    ("conductor", "resize_result", {"uuid": UUID, "host": "fake-1",
                                    "task": states.RESIZE_REVERTING, "ok": True}),
    ("conductor", "confirm_resize", {"uuid": UUID}),
    ("conductor", "revert_resize", {"uuid": UUID}),
    ("agent", "diagnostics", {"uuid": UUID}),  # issue 13: a new message, its first form
    # multi-host L2 (l2): a new message, its first form
    ("agent", "update_network_peers", {"networks": {"net-1": [
        {"host": "fake-2", "vtep": "192.0.2.2", "macs": ["fa:16:3e:00:00:02"]}]}}),
    # DHCP (issue 14, dhcp): new messages, their first form
    ("agent", "sync_dhcp", {"network_id": "net-1", "network": None, "stamp": 0.0}),
    ("agent", "sync_dhcp_all", {"networks": [], "stamp": 0.0}),
    ("agent", "sync_router", {"router_id": "r-1", "router": None, "stamp": 0.0}),
    ("agent", "sync_routers_all", {"routers": [], "stamp": 0.0}),
    # a router's status from its host (issue 14, l3): a new message, its first form
    ("conductor", "router_status", {"host": "fake-1", "router_id": "r-1", "built": True,
                                    "error": None, "stamp": 0.0}),
    # block storage (issue 15): new messages, their first form
    ("volume", "create_volume", {"volume_id": UUID}),
    ("volume", "delete_volume", {"volume_id": UUID, "snapshot_ids": []}),
    ("volume", "delete_volume", {"volume_id": UUID}),
    ("volume", "extend_volume", {"volume_id": UUID, "new_size": 2}),
    ("volume", "create_snapshot", {"snapshot_id": UUID2}),
    ("volume", "delete_snapshot", {"snapshot_id": UUID2}),
    ("volume", "initialize_connection", {"volume_id": UUID}),
    ("volume", "upload_image", {"volume_id": UUID, "image_id": UUID2}),
    ("volume", "revert_volume", {"volume_id": UUID, "snapshot_id": UUID2}),
    ("agent", "attach_volume", {"uuid": UUID, "volume": {"volume_id": UUID2,
                                                         "driver_volume_type": "file",
                                                         "data": {"path": "/v"}}}),
    ("agent", "detach_volume", {"uuid": UUID, "volume_id": UUID2}),
    ("agent", "extend_volume", {"uuid": UUID, "volume_id": UUID2, "new_size": 3}),
    ("conductor", "attach_volume", {"uuid": UUID, "attachment_id": UUID2}),
    ("conductor", "detach_volume", {"uuid": UUID, "attachment_id": UUID2}),
    ("conductor", "extend_attached_volume", {"volume_id": UUID2, "new_size": 3}),
    ("volume", "extend_attached", {"volume_id": UUID2, "new_size": 3}),
]
LEGACY_REPLIES: list[tuple[type[Payload], dict[str, Any]]] = [
    (scheduler_rpcapi.Destination, {"host": "fake-1", "node": "fake-1"}),
    (scheduler_rpcapi.Destination, {"host": None, "reason": "r", "public_reason": "p"}),
    (scheduler_rpcapi.Destination, {"host": None, "gone": True, "reason": "deleted"}),
]


def _legacy_id(case: tuple[str, str, dict[str, Any]]) -> str:
    return f"{case[0]}.{case[1]}"


def _set(data: dict[str, Any]) -> dict[str, Any]:
    """What a reader of `data` finds with .get(): the keys whose value is not None."""
    return {k: v for k, v in data.items() if v is not None}


def test_every_message_has_a_sample_and_an_example_of_before() -> None:
    sampled = {type(p) for p in SAMPLES}
    legacy = {(role, method) for role, method, _ in LEGACY}
    for role, module in ROLES.items():
        for method, cls in module.MESSAGES.items():
            assert cls in sampled, f"no sample of {cls.__name__}"
            assert (role, method) in legacy, f"no dict of before for {role}.{method}"


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: type(p).__name__)
def test_every_payload_survives_its_wire_form(payload: Payload) -> None:
    wire = json.loads(json.dumps(payload.to_wire()))
    assert wire.get(VERSION_KEY, 1) == type(payload).VERSION
    assert type(payload).from_wire(wire) == payload
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(payload, "extra", 1)  # noqa: B010


@pytest.mark.parametrize("case", LEGACY, ids=_legacy_id)
def test_a_dict_of_before_is_taken_and_what_is_sent_now_reads_as_one(
        case: tuple[str, str, dict[str, Any]]) -> None:
    """Version 1 (no version key) decodes; the current wire form carries every key the dict
    of before had, so a receiver of before reads it as it read that."""
    role, method, legacy = case
    cls = ROLES[role].MESSAGES[method]
    decoded = cls.from_wire(json.loads(json.dumps(legacy)))
    assert _set(legacy).items() <= _set(decoded.as_dict()).items()
    wire = decoded.to_wire()
    assert wire.get(VERSION_KEY, 1) == cls.VERSION and _set(legacy).items() <= wire.items()
    assert cls.from_wire(wire) == decoded


@pytest.mark.parametrize("cls, legacy", LEGACY_REPLIES)
def test_a_reply_of_before_is_taken(cls: type[Payload], legacy: dict[str, Any]) -> None:
    decoded = cls.from_wire(legacy)
    assert _set(legacy).items() <= decoded.as_dict().items()
    assert _set(legacy).items() <= decoded.to_wire().items()


@pytest.mark.parametrize("wire, error", [
    ({"v": 3, "uuid": UUID}, "DeleteInstance: version 3 is not accepted here (v1 or v2)"),
    ({"v": 0, "uuid": UUID}, "version 0 is not accepted"),
    ({"v": "2", "uuid": UUID}, "version '2' is not accepted"),
    ({"v": 2}, "DeleteInstance: field 'uuid' is missing"),
    ({"uuid": 7}, "DeleteInstance.uuid: int 7 is not str"),
    ([UUID], "DeleteInstance: a payload is a JSON object, not list"),
])
def test_a_payload_that_breaks_the_contract_is_refused_saying_why(wire: object,
                                                                   error: str) -> None:
    with pytest.raises(ContractError, match=error.replace("(", r"\(").replace(")", r"\)")):
        compute_rpcapi.DeleteInstance.from_wire(wire)


def test_a_payload_never_changed_goes_as_it_went_and_takes_no_newer_version() -> None:
    assert admin_rpcapi.SetLogLevel(level="INFO").to_wire() == {"level": "INFO"}
    with pytest.raises(ContractError, match=r"SetLogLevel: version 2 is not accepted here \(v1\)"):
        admin_rpcapi.SetLogLevel.from_wire({"v": 2, "level": "INFO"})


def test_a_refusal_is_not_transient_so_no_bus_redelivers_it() -> None:
    with pytest.raises(ContractError) as refused:
        compute_rpcapi.BuildInstances.from_wire({"uuids": "not-a-list"})
    assert not is_transient(refused.value)


def test_nested_fields_are_checked_too() -> None:
    with pytest.raises(ContractError, match=r"AgentReport.instances\['u'\]: str 'x' is not int"):
        compute_rpcapi.AgentReport.from_wire({"host": "h", "instances": {"u": "x"}})
    with pytest.raises(ContractError, match=r"BuildInstances.uuids\[1\]: int 2 is not str"):
        compute_rpcapi.BuildInstances.from_wire({"uuids": ["a", 2]})


# ---------------------------------------------------------------- receivers on a real bus


class _Scheduler:
    def __init__(self) -> None:
        self.requests: list[scheduler_rpcapi.SelectDestination] = []

    def select_destination(self, ctx: RequestContext,
                           payload: scheduler_rpcapi.SelectDestination
                           ) -> scheduler_rpcapi.Destination:
        self.requests.append(payload)
        return scheduler_rpcapi.Destination(host="fake-1", node="fake-1")


def test_an_unknown_method_or_version_is_refused_and_the_consumer_goes_on() -> None:
    bus, scheduler = LocalBus(default_timeout=5), _Scheduler()
    try:
        bus.subscribe(scheduler_rpcapi.SCHEDULER_TOPIC, scheduler_rpcapi.endpoints(scheduler),
                      workers=1)
        request = scheduler_rpcapi.SelectDestination(instance_uuid=UUID, vcpus=1,
                                                     memory_mb=64, disk_gb=1)
        with pytest.raises(RemoteError, match="no handler for scheduler.pick_host"):
            bus.call(CTX, "scheduler", "pick_host", request.to_wire())
        with pytest.raises(RemoteError, match="version 3 is not accepted") as refused:
            bus.call(CTX, "scheduler", "select_destination", {**request.to_wire(), "v": 3})
        assert refused.value.exc_type == "ContractError" and not refused.value.transient
        # Casts refused alike are dropped (logged), not retried: the one worker is free.
        bus.cast(CTX, "scheduler", "select_destination", {"v": 3})
        bus.cast(CTX, "scheduler", "pick_host", {})
        choice = scheduler_rpcapi.SchedulerAPI(bus).select_destination(CTX, request, timeout=5)
        assert choice == scheduler_rpcapi.Destination(host="fake-1", node="fake-1")
        assert scheduler.requests == [request]
    finally:
        bus.stop()


class _Conductor:
    """Takes every conductor message as the conductor does (a dict), and keeps them."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        for method in compute_rpcapi.MESSAGES:
            setattr(self, method, self._keeper(method))

    def _keeper(self, method: str) -> Any:
        def keep(ctx: RequestContext, payload: dict[str, Any]) -> None:
            self.received.put((method, payload))
        return keep

    def next(self, method: str) -> dict[str, Any]:
        while True:
            got, payload = self.received.get(timeout=5)
            if got == method:
                return payload


def test_an_upgraded_agent_takes_every_dict_an_old_conductor_sent(tmp_path) -> None:
    """Rolling upgrade: the agent is new, the conductor and the API not yet. Every message
    is today's exact dict on the agent's topic, spelled as the old senders spelled it; the
    agent's answers decode with the new contract."""
    bus, conductor = LocalBus(default_timeout=10), _Conductor()
    settings = make_settings(tmp_path)
    driver = FakeDriver("host-a", settings.fake, tmp_path / "fake-hosts")
    agent = Agent(settings, bus, "host-a", driver, dataplane=RecordingDataplane(driver))
    bus.subscribe("conductor", compute_rpcapi.endpoints(conductor), workers=1)  # type: ignore
    topic = "agent.host-a"
    try:
        agent.start()
        assert conductor.next("agent_report")["startup"] is True
        bus.cast(CTX, topic, "spawn", {"spec": {**SPEC, "nics": [NIC]}})
        assert _set(conductor.next("spawn_result")) == {
            "uuid": UUID, "host": "host-a", "ok": True, "power_state": states.RUNNING}
        assert bus.call(CTX, topic, "list_instances", {}) == {UUID: states.RUNNING}
        assert "Booting" in bus.call(CTX, topic, "console_output",
                                     {"uuid": UUID, "length": None})["output"]
        bus.cast(CTX, topic, "power", {"uuid": UUID, "task": states.POWERING_OFF,
                                        "action": "stop"})
        done = conductor.next("task_result")
        assert (done["ok"], done["task"], done["power_state"]) == (True, states.POWERING_OFF,
                                                                   states.SHUTDOWN)
        bus.cast(CTX, topic, "snapshot", {"uuid": UUID, "image_id": IMAGE, "host": "host-a",
                                          "file": "snapshot-" + IMAGE})
        snap = conductor.next("snapshot_result")
        assert (snap["ok"], snap["file"], snap["host"]) == (True, "snapshot-" + IMAGE, "host-a")
        other = {**NIC, "index": 1, "name": "eth1", "port_id": "port-bbbbbbbbbbbb"}
        assert bus.call(CTX, topic, "attach_interface", {"uuid": UUID, "nic": other}) == {
            "attached": "port-bbbbbbbbbbbb"}
        assert bus.call(CTX, topic, "detach_interface", {"uuid": UUID, "nic": other}) == {
            "detached": "port-bbbbbbbbbbbb"}
        assert bus.call(CTX, topic, "destroy", {"uuid": UUID}) == {"uuid": UUID,
                                                                    "destroyed": True}
        assert driver.list_instances() == {}
    finally:
        agent.stop()
        bus.stop()


def test_an_upgraded_scheduler_takes_the_dict_an_old_conductor_sent(cloud) -> None:
    legacy = dict(next(p for r, m, p in LEGACY if m == "select_destination"), vcpus=10 ** 6)
    reply = cloud.bus.call(CTX, "scheduler", "select_destination", legacy, timeout=10)
    # An old conductor reads the reply by its keys; a new one decodes it.
    assert reply["host"] is None and "No valid host was found" in reply["reason"]
    choice = scheduler_rpcapi.Destination.from_wire(reply)
    assert choice.host is None and choice.public_reason and not choice.gone


def test_the_conductors_endpoints_take_the_dicts_of_before(api, cloud, member):
    """What the conductor will subscribe with (compute.rpcapi.endpoints) hands its handlers
    today's dicts, whichever version was sent."""
    conductor = next(r for r in cloud.roles if type(r).__name__ == "Conductor")
    handlers = compute_rpcapi.endpoints(conductor)
    assert set(handlers) == set(compute_rpcapi.MESSAGES)
    handlers["agent_report"](CTX, {"host": "fake-1"})
    flavor, image = add_flavor(cloud), add_image(cloud)
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image),
                 headers=member.compute())
    sid = wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")["id"]
    handlers["delete_instance"](CTX, {"uuid": sid})
    with cloud.db.reader() as s:
        assert s.scalar(select(Instance.deleted).where(Instance.uuid == sid)) is True
    with pytest.raises(ContractError, match="DeleteInstance: field 'uuid' is missing"):
        handlers["delete_instance"](CTX, {"v": 2, "id": sid})
