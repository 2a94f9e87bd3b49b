"""VolumeDevice and VolumeQos in the InstanceSpec: the JSON round trip the bus carries, the
checks that name the field, Cinder's shapes (connection_info, QoS spec strings)."""

from __future__ import annotations

import json

import pytest

from cirrus.virt.spec import InstanceSpec, VolumeDevice, VolumeQos, VolumeSpecError, root_disk

RBD = {"name": "volumes/volume-v1", "hosts": ["127.0.0.1"], "ports": ["6789"],
       "auth_enabled": True, "auth_username": "cirrus", "secret_uuid": "", "secret_type": "ceph",
       "conf": "/etc/ceph/ceph.conf", "keyring": ""}


def spec_with_volumes() -> InstanceSpec:
    return InstanceSpec(
        uuid="u-1", name="vm", vcpus=1, memory_mb=128, root_gb=1,
        block_devices=[root_disk("img", 1)],
        volumes=[VolumeDevice("v1", "rbd", dict(RBD), device_name="vdc", bus="virtio",
                              qos=VolumeQos(read_iops_sec=100, write_iops_sec=50)),
                 VolumeDevice("v2", "file", {"path": "/srv/v2.qcow2", "format": "qcow2"},
                              bus="scsi", read_only=True)])


def test_volumes_survive_the_json_round_trip() -> None:
    spec = spec_with_volumes()
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["volumes"][0]["qos"]["read_iops_sec"] == 100
    again = InstanceSpec.from_dict(data)
    assert again.volumes == spec.volumes
    assert again.to_dict() == spec.to_dict()
    assert again.boot_volume() is None


def test_a_spec_without_volumes_reads_as_none() -> None:
    data = spec_with_volumes().to_dict()
    del data["volumes"]
    assert InstanceSpec.from_dict(data).volumes == []


def test_the_boot_volume_and_the_serial() -> None:
    spec = spec_with_volumes()
    spec.volumes.append(VolumeDevice("root", "file", {"path": "/srv/r.qcow2"}, boot_index=0))
    assert spec.boot_volume().volume_id == "root"
    assert spec.volumes[0].serial == "v1"


def test_cinder_connection_info_and_qos_strings_are_read() -> None:
    dev = VolumeDevice.from_dict({
        "volume_id": "v9", "connection": {"driver_volume_type": "file",
                                          "data": {"path": "/p", "format": "raw"}},
        "device_name": "/dev/vdd", "read_only": "True", "boot_index": "0",
        "qos": {"total_bytes_sec": "1048576", "total_iops_sec": "", "consumer": "front-end"}})
    assert (dev.driver_volume_type, dev.data["path"], dev.device_name) == ("file", "/p", "vdd")
    assert dev.read_only and dev.boot_index == 0
    assert dev.qos.limits() == {"total_bytes_sec": 1048576}


@pytest.mark.parametrize(("data", "field"), [
    ({"volume_id": "", "driver_volume_type": "file", "data": {"path": "/p"}}, "volume_id"),
    ({"volume_id": "v", "driver_volume_type": "iscsi"}, "driver_volume_type"),
    ({"volume_id": "v", "driver_volume_type": "file", "data": {"path": "/p"},
      "device_name": "/dev/../vdb"}, "device_name"),
    ({"volume_id": "v", "driver_volume_type": "file", "data": {}}, "data.path"),
    ({"volume_id": "v", "driver_volume_type": "file", "data": {"path": "/p", "format": "vmdk"}},
     "data.format"),
    ({"volume_id": "v", "driver_volume_type": "rbd", "data": {"name": "noslash"}}, "data.name"),
    ({"volume_id": "v", "driver_volume_type": "file", "data": {"path": "/p"}, "bus": "ide"},
     "bus"),
    ({"volume_id": "v", "driver_volume_type": "file", "data": {"path": "/p"},
      "qos": {"read_iops_sec": "fast"}}, "qos.read_iops_sec"),
    ({"volume_id": "v", "driver_volume_type": "file", "data": {"path": "/p"},
      "qos": {"write_bytes_sec": -1}}, "qos.write_bytes_sec"),
    ({"volume_id": "v", "driver_volume_type": "file", "data": {"path": "/p"},
      "qos": {"total_iops_sec": 5, "read_iops_sec": 1}}, "qos.total_iops_sec"),
])
def test_bad_volume_devices_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(VolumeSpecError, match=field.replace(".", r"\.")):
        VolumeDevice.from_dict(data)
