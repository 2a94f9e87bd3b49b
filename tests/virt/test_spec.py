"""What the libvirt driver derives from an InstanceSpec: images, root size, config drive;
and the conductor's half, the spec built from database rows (cirrus.compute.specs)."""

from __future__ import annotations

import base64

import pytest

from cirrus import build_secrets
from cirrus.compute.specs import spec_of
from cirrus.config import Settings
from cirrus.network.model import Nic
from cirrus.virt.driver import InstanceSpec, SpawnError
from cirrus.virt.libvirt import spec as specs
from cirrus.virt.spec import ConfigDrive, ImageInfo

IMAGE = {"id": "img-1", "disk_format": "qcow2", "size": 10, "checksum": "a" * 32,
         "properties": {}}
NIC_DHCP_OFF = {
    "index": 0, "name": "eth0", "port_id": "p" * 16, "mac": "fa:16:3e:00:00:01",
    "network_id": "n" * 16, "mtu": 1450,
    "fixed_ips": [{"address": "10.0.0.5", "subnet": {
        "id": "s1", "cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1",
        "dns_nameservers": ["10.0.0.2"], "host_routes": [["10.1.0.0/16", "10.0.0.254"]],
        "enable_dhcp": False}}],
}


def make_spec(image: dict = IMAGE, kernel: dict | None = None, ramdisk: dict | None = None,
              config_drive: object = None, **drive: object) -> InstanceSpec:
    """A spec for IMAGE; `drive`: the ConfigDrive's fields."""
    return InstanceSpec(uuid="u-1", name="web-1", vcpus=1, memory_mb=256, root_gb=2,
                        image=ImageInfo.from_dict(image),
                        kernel=ImageInfo.from_dict(kernel) if kernel else None,
                        ramdisk=ImageInfo.from_dict(ramdisk) if ramdisk else None,
                        config_drive=ConfigDrive.from_dict({"requested": config_drive,
                                                            **drive}))


def test_a_whole_disk_image_has_no_kernel() -> None:
    boot = specs.boot_images(make_spec())
    assert (boot.root.id, boot.root.disk_format, boot.kernel, boot.ramdisk) == (
        "img-1", "qcow2", None, None)
    assert boot.cmdline == "console=ttyS0"


def test_kernel_and_ramdisk_images_and_their_command_line() -> None:
    image = {**IMAGE, "properties": {"kernel_id": "k", "ramdisk_id": "r",
                                     "os_command_line": "root=/dev/vda console=ttyS0"}}
    boot = specs.boot_images(make_spec(image=image, kernel={"id": "k", "disk_format": "aki"},
                                       ramdisk={"id": "r", "disk_format": "ari"}))
    assert (boot.kernel.id, boot.ramdisk.id) == ("k", "r")
    assert boot.cmdline == "root=/dev/vda console=ttyS0"


def test_a_kernel_the_spec_does_not_describe_is_an_error() -> None:
    image = {**IMAGE, "properties": {"kernel_id": "k"}}
    with pytest.raises(SpawnError, match="spec.kernel"):
        specs.boot_images(make_spec(image=image))


def test_no_image_is_an_error() -> None:
    with pytest.raises(SpawnError, match="spec.image"):
        specs.boot_images(InstanceSpec(uuid="u", name="n", vcpus=1, memory_mb=1, root_gb=1))


def test_root_disk_size_is_the_flavors_or_the_images() -> None:
    assert specs.root_disk_bytes(make_spec()) == 2 * 1024**3
    zero = make_spec()
    zero.root_gb = 0
    assert specs.root_disk_bytes(zero) is None


@pytest.mark.parametrize("value,force,expected", [
    (None, False, False), (True, False, True), ("True", False, True), ("false", False, False),
    (None, True, True)])
def test_config_drive_when_asked_or_forced(value: object, force: bool, expected: bool) -> None:
    assert specs.wants_config_drive(make_spec(config_drive=value), force) is expected


def test_config_drive_inputs_come_from_the_spec() -> None:
    spec = make_spec(key_name="mykey", admin_pass="pw", display_name="Web 1",
                     availability_zone="az1", project_id="proj", launch_index=2,
                     injected_files=[["/etc/motd", base64.b64encode(b"hi").decode()]])
    spec.key_data = "ssh-ed25519 AAAA me"
    spec.user_data = base64.b64encode(b"#cloud-config\n").decode()
    spec.metadata = {"role": "web"}
    spec.nics = [Nic.from_dict(NIC_DHCP_OFF)]
    # A spec from before build secrets were sealed: they come as they are.
    secrets = spec.open_build_secrets(None)
    inputs = specs.config_drive_inputs(spec, {"support_inject_ip": "True"}, secrets)
    nic = inputs.pop("nics")[0]
    assert (nic.name, nic.mac, nic.fixed_ips[0].address) == ("eth0", "fa:16:3e:00:00:01",
                                                             "10.0.0.5")
    assert nic.fixed_ips[0].subnet.host_routes == (("10.1.0.0/16", "10.0.0.254"),)
    assert inputs == {
        "uuid": "u-1", "hostname": "web-1", "name": "Web 1",
        "public_keys": {"mykey": "ssh-ed25519 AAAA me"}, "admin_pass": "pw",
        "user_data": b"#cloud-config\n", "injected_files": [("/etc/motd", b"hi")],
        "inject_ip": True, "metadata": {"role": "web"}, "availability_zone": "az1",
        "project_id": "proj", "launch_index": 2,
    }


def test_sealed_build_secrets_reach_the_config_drive_inputs(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    token = build_secrets.seal(settings, "u-1", build_secrets.BuildSecrets(
        "pw", [("/etc/motd", b"hi")]))
    spec = make_spec(build_secrets=token)
    assert "pw" not in token and base64.b64encode(b"hi").decode() not in token
    inputs = specs.config_drive_inputs(
        spec, {}, spec.open_build_secrets(settings))
    assert inputs["admin_pass"] == "pw"
    assert inputs["injected_files"] == [("/etc/motd", b"hi")]


def test_config_drive_inputs_without_optional_parts() -> None:
    inputs = specs.config_drive_inputs(make_spec(), {})
    assert inputs["public_keys"] == {} and inputs["user_data"] is None
    assert inputs["injected_files"] == [] and inputs["inject_ip"] is False
    assert inputs["name"] == "web-1"


def test_the_conductor_side_builds_the_spec_from_database_rows() -> None:
    from types import SimpleNamespace

    def image_row(image_id: str, disk_format: str, **properties) -> SimpleNamespace:
        return SimpleNamespace(id=image_id, disk_format=disk_format, size=7,
                               checksum="c" * 32, os_hash_algo="sha512",
                               os_hash_value="d" * 128, properties=properties)

    inst = SimpleNamespace(uuid="u", hostname="n", display_name="Web 1", vcpus=1, memory_mb=1,
                           root_gb=1, image_ref="img", user_data=None, key_data=None,
                           metadata_items={}, key_name="k", availability_zone=None,
                           project_id="p", launch_index=1, config_drive="True",
                           flavor={"extra_specs": {"cirrus:storage_pool": "ssd"}},
                           request_spec={"networks": "none", "build_secrets": "gAAAA-sealed"})
    image = image_row("img", "raw", kernel_id="kern", ramdisk_id="rd", cirrus_storage_pool="hdd")
    spec = spec_of(inst, image, image_row("kern", "aki"), image_row("rd", "ari"))
    assert spec.storage_pool == "ssd" and spec.config_drive.requested is True
    assert spec.config_drive.build_secrets == "gAAAA-sealed"  # passed on sealed, opened by the agent
    assert spec.image.properties["kernel_id"] == "kern"
    assert not spec.kernel.properties and spec.ramdisk.disk_format == "ari"
    boot = specs.boot_images(InstanceSpec.from_dict(spec.to_dict()))
    assert (boot.root.id, boot.kernel.id, boot.ramdisk.id) == ("img", "kern", "rd")
    assert boot.root.os_hash_value == "d" * 128
    no_image = spec_of(inst, None)
    assert no_image.image is None and no_image.config_drive.availability_zone == ""
    inst.request_spec = {"networks": "none"}  # erased once the guest had them
    drive = spec_of(inst, None).config_drive
    assert not (drive.build_secrets or drive.admin_pass or drive.injected_files)
