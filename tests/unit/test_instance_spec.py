"""The build contract on the bus: InstanceSpec as plain JSON, both ways, and the version-1
shape (everything in `extra`) that a conductor from before the typed spec still sends during
a rolling upgrade."""

from __future__ import annotations

import json
import time

from cirrus.agent.service import Agent
from cirrus.bus.local import LocalBus
from cirrus.context import RequestContext
from cirrus.network.model import FixedIp, Nic, SubnetInfo
from cirrus.virt.fake import FakeDriver
from cirrus.virt.power import RUNNING
from cirrus.virt.spec import SPEC_VERSION, BlockDevice, ConfigDrive, ImageInfo, InstanceSpec
from tests.conftest import make_settings

SUBNET = SubnetInfo(id="sub", cidr="10.0.0.0/24", ip_version=4, gateway_ip="10.0.0.1")
NIC = Nic(index=0, name="eth0", port_id="port-aaaaaaaaaaaa", mac="fa:16:3e:00:00:01",
          network_id="net-1", mtu=1450, fixed_ips=(FixedIp("10.0.0.5", SUBNET),))
IMAGE = {"id": "img-1", "disk_format": "qcow2", "size": 10, "checksum": "a" * 32,
         "os_hash_algo": "sha512", "os_hash_value": "b" * 128,
         "properties": {"kernel_id": "k-1", "os_command_line": "console=ttyS0"}}

# What a conductor before the typed spec sent (dataclasses.asdict of the old InstanceSpec).
VERSION_1 = {
    "uuid": "u-1", "name": "web-1", "vcpus": 2, "memory_mb": 512, "root_gb": 3,
    "image_ref": "img-1", "user_data": "I2Nsb3VkLWNvbmZpZwo=", "key_data": "ssh-ed25519 AAAA",
    "metadata": {"role": "web"}, "nics": [NIC.to_dict()],
    "extra": {"display_name": "Web 1", "key_name": "mykey", "availability_zone": "az1",
              "project_id": "proj", "launch_index": 1, "config_drive": True,
              "image": IMAGE, "kernel": {"id": "k-1", "disk_format": "aki"},
              "storage_pool": "ssd", "build_secrets": "gAAAA-sealed"},
}


def typed_spec() -> InstanceSpec:
    return InstanceSpec(
        uuid="u-1", name="web-1", vcpus=2, memory_mb=512, root_gb=3, image_ref="img-1",
        user_data="I2Nsb3VkLWNvbmZpZwo=", key_data="ssh-ed25519 AAAA",
        metadata={"role": "web"}, image=ImageInfo.from_dict(IMAGE),
        kernel=ImageInfo(id="k-1", disk_format="aki"), nics=[NIC],
        config_drive=ConfigDrive(requested=True, display_name="Web 1", key_name="mykey",
                                 availability_zone="az1", project_id="proj", launch_index=1,
                                 build_secrets="gAAAA-sealed"),
        storage_pool="ssd",
        block_devices=[BlockDevice(boot_index=0, source_type="image", destination_type="local",
                                   size_gb=3, image_id="img-1")])


def test_a_spec_goes_through_json_and_comes_back_equal() -> None:
    spec = typed_spec()
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["version"] == SPEC_VERSION and "extra" not in data
    assert InstanceSpec.from_dict(data) == spec


def test_a_version_1_spec_from_an_older_conductor_reads_into_the_typed_fields() -> None:
    spec = InstanceSpec.from_dict(json.loads(json.dumps(VERSION_1)))
    assert spec == typed_spec()
    assert spec.root_device().image_id == "img-1" and spec.image.kernel_id == "k-1"


def test_a_version_1_spec_without_image_or_extra_still_reads() -> None:
    old = {k: v for k, v in VERSION_1.items() if k != "extra"}
    spec = InstanceSpec.from_dict(old)
    assert spec.image is None and spec.block_devices == [] and spec.storage_pool is None
    assert spec.config_drive == ConfigDrive() and spec.nics == [NIC]


def test_unsealed_secrets_of_a_version_1_spec_still_open() -> None:
    old = {**VERSION_1, "extra": {"admin_pass": "pw",
                                  "injected_files": [["/etc/motd", "aGk="]]}}
    secrets = InstanceSpec.from_dict(old).open_build_secrets(None)
    assert secrets.admin_pass == "pw" and secrets.injected_files == [("/etc/motd", b"hi")]


def test_an_agent_builds_what_an_older_conductor_sends(tmp_path) -> None:
    bus = LocalBus()
    results: list[dict] = []
    try:
        settings = make_settings(tmp_path)
        settings.fake.storage_pools = {"ssd": "100"}
        driver = FakeDriver("host-a", settings.fake, tmp_path / "fake-hosts")
        agent = Agent(settings, bus, "host-a", driver)
        bus.subscribe("conductor", {"spawn_result": lambda c, p: results.append(p),
                                    "agent_report": lambda c, p: None}, workers=1)
        old = {**VERSION_1, "extra": {k: v for k, v in VERSION_1["extra"].items()
                                      if k != "build_secrets"}}
        agent.spawn(RequestContext.admin(), {"spec": old})
        deadline = time.monotonic() + 5
        while not results and time.monotonic() < deadline:
            time.sleep(0.01)
        assert results and results[0]["ok"], results
        assert driver.list_instances() == {"u-1": RUNNING}
        assert driver._vms["u-1"]["storage_pool"] == "ssd"
        assert agent.nics.get("u-1") == [NIC.to_dict()]
    finally:
        bus.stop()
