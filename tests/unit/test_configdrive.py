"""The config drive (`cirrus.virt.configdrive`): what is on it, and the images that carry it.

- Contents (`drive_contents`, no I/O): Nova's openstack/ tree for every metadata version,
  each meta_data.json with exactly the keys of its version; network_data.json equal to
  cirrus.network.render's; injected files under openstack/content; the cirrus/ extras, the
  network ones only when static addresses are injected.
- Images (`build_config_drive`): a real vfat image (dosfstools + mtools) and a real
  iso9660 image (pycdlib) are read back file by file, label included. vfat is skipped when
  mkfs.vfat or mtools are missing (failed with CIRRUS_REQUIRE_SERVICES=1, as in CI).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest

from cirrus.network.model import FixedIp, Nic, SubnetInfo
from cirrus.network.render import network_data, render_all
from cirrus.virt import configdrive
from cirrus.virt.configdrive import (
    OPENSTACK_VERSIONS,
    ConfigDriveError,
    build_config_drive,
    drive_contents,
)
from tests.services import missing as missing_tool

VERSIONS = (*OPENSTACK_VERSIONS, "latest")
UUID = "6f1c2d3e-5f0c-4c1e-8d8b-4f439a380a6f"
KEYS = {"alice": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@example\n",
        "bob": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABbob bob@example"}
USER_DATA = b"#cloud-config\nruncmd:\n  - echo hello\n"
BINARY = bytes(range(256)) + b"\r\n\x00end"  # no text conversion anywhere on the way
INJECTED = [("/etc/motd", b"welcome\n"), ("/root/blob.bin", BINARY)]

SUBNET_A = SubnetInfo(id="11111111-1111-4111-8111-111111111111", cidr="10.0.0.0/24",
                      ip_version=4, gateway_ip="10.0.0.1", dns_nameservers=("10.0.0.2",),
                      host_routes=(("10.9.0.0/16", "10.0.0.254"),), enable_dhcp=True)
SUBNET_B = SubnetInfo(id="22222222-2222-4222-8222-222222222222", cidr="192.168.5.0/26",
                      ip_version=4, gateway_ip=None, enable_dhcp=True)
NICS = [
    Nic(index=0, name="eth0", port_id="cd9f6d46-4a3a-43ab-a466-994af9db96fc",
        mac="FA:16:3E:00:00:01", network_id="5f0c1c1e-8d8b-4f43-9a38-0a6f1c2d3e4f", mtu=1450,
        fixed_ips=(FixedIp("10.0.0.5", SUBNET_A),)),
    Nic(index=1, name="eth1", port_id="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        mac="fa:16:3e:00:00:02", network_id="9b2e7d60-3c1a-4b5e-8f7d-1e2f3a4b5c6d", mtu=1500,
        fixed_ips=(FixedIp("192.168.5.10", SUBNET_B),)),
]

# meta_data.json keys by version: Nova's _metadata_as_json for a server with everything.
ALWAYS = {"uuid", "meta", "files", "admin_pass", "public_keys", "keys", "hostname", "name",
          "launch_index", "availability_zone"}
META_KEYS = {
    "2012-08-10": ALWAYS,
    "2013-04-04": ALWAYS | {"random_seed"},
    "2013-10-17": ALWAYS | {"random_seed"},
    "2015-10-15": ALWAYS | {"random_seed", "project_id"},
    **dict.fromkeys(["2016-06-30", "2016-10-06", "2017-02-22", "2018-08-27"],
                    ALWAYS | {"random_seed", "project_id", "devices"}),
    **dict.fromkeys(["2020-10-14", "2025-04-04", "latest"],
                    ALWAYS | {"random_seed", "project_id", "devices", "dedicated_cpus"}),
}
VERSION_FILES = {  # which files each version directory has (user data given)
    "2012-08-10": {"meta_data.json", "user_data"},
    "2013-04-04": {"meta_data.json", "user_data"},
    "2013-10-17": {"meta_data.json", "user_data", "vendor_data.json"},
    "2015-10-15": {"meta_data.json", "user_data", "vendor_data.json", "network_data.json"},
    "2016-06-30": {"meta_data.json", "user_data", "vendor_data.json", "network_data.json"},
    **dict.fromkeys([*OPENSTACK_VERSIONS[5:], "latest"],
                    {"meta_data.json", "user_data", "vendor_data.json", "network_data.json",
                     "vendor_data2.json"}),
}
NETWORK_EXTRAS = {"cirrus/inject-ip", "cirrus/interfaces", "cirrus/70-persistent-net.rules",
                  "cirrus/netplan.yaml"}


def server(**overrides) -> dict:
    """The inputs of a full server: 2 NICs injected static, keys, user data, password,
    files, metadata."""
    inputs = dict(uuid=UUID, hostname="web-1", name="Web 1", public_keys=KEYS,
                  admin_pass="s3cret", user_data=USER_DATA, injected_files=INJECTED,
                  nics=NICS, inject_ip=True, metadata={"role": "web", "tier": "1"},
                  availability_zone="az-1", project_id="f00dfeed", launch_index=2)
    return {**inputs, **overrides}


def meta_data(contents: dict[str, bytes], version: str) -> dict:
    return json.loads(contents[f"openstack/{version}/meta_data.json"])


# --- contents ----------------------------------------------------------------------------


def test_full_server_has_every_file_of_nova_layout_plus_cirrus_extras():
    contents = drive_contents(**server())
    expected = {f"openstack/{version}/{file}"
                for version, files in VERSION_FILES.items() for file in files}
    expected |= {"openstack/content/0000", "openstack/content/0001",
                 "cirrus/hostname", "cirrus/authorized_keys"} | NETWORK_EXTRAS
    assert set(contents) == expected
    assert all(isinstance(data, bytes) for data in contents.values())


@pytest.mark.parametrize("version", VERSIONS)
def test_meta_data_has_exactly_the_keys_of_its_version(version):
    meta = meta_data(drive_contents(**server()), version)
    assert set(meta) == META_KEYS[version]
    assert meta["uuid"] == UUID
    assert (meta["hostname"], meta["name"]) == ("web-1", "Web 1")
    assert (meta["launch_index"], meta["availability_zone"]) == (2, "az-1")
    assert meta["meta"] == {"role": "web", "tier": "1"}
    assert meta["admin_pass"] == "s3cret"
    assert meta["public_keys"] == KEYS
    assert meta["keys"] == [{"name": name, "type": "ssh", "data": key}
                            for name, key in KEYS.items()]
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"},
                             {"path": "/root/blob.bin", "content_path": "/content/0001"}]


def test_versioned_values_are_nova_shaped():
    contents = drive_contents(**server())
    latest = meta_data(contents, "latest")
    assert len(base64.b64decode(latest["random_seed"], validate=True)) == 512
    assert latest["project_id"] == "f00dfeed"
    assert (latest["devices"], latest["dedicated_cpus"]) == ([], [])
    seeds = {meta_data(contents, version)["random_seed"] for version in VERSIONS[1:]}
    assert len(seeds) == len(VERSIONS) - 1  # a fresh seed per version, as Nova reads one
    assert json.loads(contents["openstack/latest/vendor_data.json"]) == {}
    assert json.loads(contents["openstack/latest/vendor_data2.json"]) == {"static": {}}


def test_injected_files_and_user_data_are_stored_byte_for_byte():
    contents = drive_contents(**server())
    assert contents["openstack/content/0000"] == b"welcome\n"
    assert contents["openstack/content/0001"] == BINARY
    assert {contents[f"openstack/{version}/user_data"] for version in VERSIONS} == {USER_DATA}


def test_network_data_is_renders_in_every_version_that_has_it():
    contents = drive_contents(**server())
    expected = network_data(NICS, static=True)
    assert expected["networks"][0]["type"] == "ipv4"  # injected: static although DHCP is on
    for version in VERSIONS[VERSIONS.index("2015-10-15"):]:
        assert json.loads(contents[f"openstack/{version}/network_data.json"]) == expected


def test_optional_keys_and_files_are_left_out_when_empty():
    contents = drive_contents(**server(public_keys={}, admin_pass=None, user_data=None,
                                       injected_files=[], metadata={}))
    meta = meta_data(contents, "latest")
    assert not {"meta", "files", "admin_pass", "public_keys", "keys"} & set(meta)
    assert not [path for path in contents
                if path.endswith("/user_data") or path.startswith("openstack/content/")]
    assert contents["cirrus/authorized_keys"] == b""


def test_cirrus_hostname_and_authorized_keys_are_plain_lines():
    contents = drive_contents(**server())
    assert contents["cirrus/hostname"] == b"web-1\n"
    assert contents["cirrus/authorized_keys"] == (
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@example\n"
        b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABbob bob@example\n")


def test_injected_network_files_are_renders_output():
    contents = drive_contents(**server())
    rendered = render_all(NICS, static=True)
    assert contents["cirrus/inject-ip"] == b""
    assert contents["cirrus/interfaces"] == rendered["interfaces"].encode()
    assert contents["cirrus/70-persistent-net.rules"] == rendered["udev_rules"].encode()
    assert contents["cirrus/netplan.yaml"] == rendered["netplan"].encode()
    assert b"address 10.0.0.5" in contents["cirrus/interfaces"]


def test_dhcp_guest_without_injection_gets_no_network_files():
    contents = drive_contents(**server(inject_ip=False))
    assert not NETWORK_EXTRAS & set(contents)
    assert {"cirrus/hostname", "cirrus/authorized_keys"} <= set(contents)
    networks = json.loads(contents["openstack/latest/network_data.json"])["networks"]
    assert [network["type"] for network in networks] == ["ipv4_dhcp", "ipv4_dhcp"]


def test_a_subnet_without_dhcp_injects_even_when_the_image_does_not_ask():
    no_dhcp = dataclasses.replace(SUBNET_B, enable_dhcp=False)
    nics = [NICS[0], dataclasses.replace(NICS[1], fixed_ips=(FixedIp("192.168.5.10", no_dhcp),))]
    contents = drive_contents(**server(nics=nics, inject_ip=False))
    assert NETWORK_EXTRAS <= set(contents)
    rendered = render_all(nics, static=False)  # eth0 stays DHCP, eth1 static
    assert contents["cirrus/interfaces"] == rendered["interfaces"].encode()
    assert b"iface eth0 inet dhcp" in contents["cirrus/interfaces"]
    assert b"iface eth1 inet static" in contents["cirrus/interfaces"]


def test_a_server_without_nics_still_gets_a_drive():
    contents = drive_contents(**server(nics=[], inject_ip=False))
    assert json.loads(contents["openstack/latest/network_data.json"]) == {
        "links": [], "networks": [], "services": []}
    assert not NETWORK_EXTRAS & set(contents)


# --- images ------------------------------------------------------------------------------


def require_vfat_tools() -> None:
    missing = [tool for tool in ("mkfs.vfat", "mcopy", "mdir", "mtype", "mlabel")
               if shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin") is None]
    if missing:
        reason = (f"{', '.join(missing)} missing: apt-get install dosfstools mtools")
        missing_tool(reason)


def mtools(*args: str) -> bytes:
    return subprocess.run(args, check=True, capture_output=True,
                          env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}).stdout


def read_vfat(image: Path) -> tuple[str, dict[str, bytes]]:
    """(label, relative path -> bytes) of every file, read with mtools (no mount, no root)."""
    label = mtools("mlabel", "-s", "-i", str(image), "::").decode()
    listing = mtools("mdir", "-/", "-b", "-i", str(image), "::/").decode().splitlines()
    files = {entry.removeprefix("::/"): mtools("mtype", "-i", str(image), entry)
             for entry in listing if not entry.endswith("/")}
    return label.removeprefix(" Volume label is").strip(), files


def read_iso(image: Path, *, joliet: bool) -> tuple[str, dict[str, bytes]]:
    """(volume identifier, relative path -> bytes) through the Rock Ridge or Joliet names."""
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        facade = iso.get_joliet_facade() if joliet else iso.get_rock_ridge_facade()
        files: dict[str, bytes] = {}
        for root, _, names in facade.walk("/"):
            for name in names:
                path = f"{root.rstrip('/')}/{name}"
                out = io.BytesIO()
                facade.get_file_from_iso_fp(out, path)
                files[path.lstrip("/")] = out.getvalue()
        return iso.pvd.volume_identifier.decode().strip(), files
    finally:
        iso.close()


def assert_same_files(found: dict[str, bytes], contents: dict[str, bytes]) -> None:
    """The image holds exactly the contents; random seeds differ per build, so meta_data
    is compared without them."""
    assert set(found) == set(contents)
    for path, data in contents.items():
        if path.endswith("meta_data.json"):
            stored, expected = json.loads(found[path]), json.loads(data)
            stored.pop("random_seed", None)
            expected.pop("random_seed", None)
            assert stored == expected, path
        else:
            assert found[path] == data, path


def test_vfat_image_carries_label_and_every_file(tmp_path):
    require_vfat_tools()
    path = build_config_drive(tmp_path / "disk.config", **server())
    assert path == tmp_path / "disk.config"
    assert path.stat().st_size == 64 * 1024 * 1024
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the admin password
    label, files = read_vfat(path)
    assert label == "config-2"
    assert_same_files(files, drive_contents(**server()))
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]  # no .tmp, no staging


@pytest.mark.parametrize("joliet", [False, True], ids=["rock-ridge", "joliet"])
def test_iso9660_image_carries_label_and_every_file(tmp_path, joliet):
    path = build_config_drive(tmp_path / "disk.config", fmt="iso9660", **server())
    assert path.stat().st_mode & 0o777 == 0o600
    label, files = read_iso(path, joliet=joliet)
    assert label == "config-2"
    assert_same_files(files, drive_contents(**server()))
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]


def test_rebuilding_replaces_the_drive_whole(tmp_path):
    target = tmp_path / "disk.config"
    build_config_drive(target, fmt="iso9660", **server(hostname="old"))
    (tmp_path / "disk.config.tmp").write_bytes(b"left by a crash")
    build_config_drive(target, fmt="iso9660", **server(hostname="new"))
    assert read_iso(target, joliet=False)[1]["cirrus/hostname"] == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]


def test_a_failed_build_keeps_the_old_drive_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "disk.config"
    target.write_bytes(b"previous drive")

    def broken_writer(image: Path, contents: dict[str, bytes]) -> None:
        image.write_bytes(b"half a drive")
        raise ConfigDriveError("mcopy failed (1): Disk full")

    monkeypatch.setattr(configdrive, "_write_iso9660", broken_writer)
    with pytest.raises(ConfigDriveError, match="Disk full"):
        build_config_drive(target, fmt="iso9660", **server())
    assert target.read_bytes() == b"previous drive"
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]


def test_a_missing_tool_is_a_spawn_error_that_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(configdrive.shutil, "which", lambda name, path=None: None)
    with pytest.raises(configdrive.SpawnError, match="mkfs.vfat is not installed.*dosfstools"):
        build_config_drive(tmp_path / "disk.config", **server())
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'ext4'"):
        build_config_drive(tmp_path / "disk.config", fmt="ext4", **server())
    assert list(tmp_path.iterdir()) == []
