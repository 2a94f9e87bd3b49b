"""Block storage end to end (issue 15, point 5) on real QEMU guests through the `openstack`
CLI, on both backends of one all-in-one: `local` (the file backend, qcow2 files) and `ceph`
(rbd, the one-node cluster of scripts/ceph), each named by a volume type's
`volume_backend_name`. Every test runs once per backend:

- `volume create --image`: the guest reads the image's bytes on the attached disk;
- `server add volume` to a running guest: the guest sees a disk of the volume's size whose
  serial is the volume id; data the guest writes survives detach and attach to ANOTHER
  running server;
- `volume set --size` (3.42) of an attached volume: the guest sees the new size;
- `volume snapshot create` then `volume create --snapshot`: the new volume has the data;
- a QoS spec (consumer front-end) associated to a type: its limits are the disk's
  `<iotune>` in the running domain (`virsh dumpxml`).

The guest is read through its QEMU guest agent (sysfs, dd, sha256sum). Two guests boot for
the module (TCG) and are shared. Needs root, libvirtd, qemu and, for `ceph`, the cluster
(scripts/ceph): skipped locally without them, failed under CIRRUS_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_libvirt_cli as base
from tests.e2e.conftest import Cli, start_all_in_one, stop_all_in_one, unique
from tests.e2e.test_libvirt_cli import (
    Images,
    LibvirtCloud,
    Networks,
    create_server,
    virsh,
    wait_for_boots,
)
from tests.services import missing
from tests.storage.conftest import CEPH_DIR, _ceph_answers, pattern
from tests.virt.conftest import LIBVIRT_URI

# test_libvirt_cli.py's module fixtures (they use this module's `cloud`)
cloud_root, images, networks = base.cloud_root, base.images, base.networks

pytestmark = pytest.mark.e2e

GIB = 1024**3
MIB = 1024**2
BACKENDS = ("local", "ceph")
SECRET_UUID = str(uuid.uuid4())  # the libvirt secret of this cloud's Ceph key


def ceph_problem() -> str | None:
    """None when the Ceph cluster answers and its bindings import, else why not."""
    problem = _ceph_answers(CEPH_DIR / "ceph.conf")
    if problem:
        return f"Ceph is not running ({problem}); `scripts/ceph` starts a test cluster"
    try:
        import rados  # noqa: F401
        import rbd  # noqa: F401
    except ImportError as exc:
        return f"the rados/rbd bindings do not import ({exc}); `CIRRUS_VENV=<venv> scripts/ceph`"
    return None


@dataclass
class VolumeCloud(LibvirtCloud):
    ceph: str | None  # why the ceph backend is missing, None when it is there
    sdk: Any = None  # openstacksdk, for polling: each `openstack` run costs seconds here

    def volume(self, volume_id: str) -> dict:
        """GET the volume (Cinder's view), or {} once it is gone."""
        r = self.sdk.block_storage.get(f"/volumes/{volume_id}", raise_exc=False)
        return {} if r.status_code == 404 else r.json()["volume"]

    def snapshot(self, snapshot_id: str) -> dict:
        r = self.sdk.block_storage.get(f"/snapshots/{snapshot_id}", raise_exc=False)
        return {} if r.status_code == 404 else r.json()["snapshot"]


@pytest.fixture(scope="module")
def cloud(cloud_root: Path) -> Iterator[VolumeCloud]:
    problem = ceph_problem()
    backends = "local=file"
    if problem is None:
        conf = CEPH_DIR / "ceph.conf"
        keyring = CEPH_DIR / "ceph.client.cirrus.keyring"
        # The `vms` pool, not `volumes`: this cloud's volume role prunes the image caches of
        # its pool that its own volumes do not use, and tests/storage (run beside this
        # module in CI) keeps its caches in `volumes`.
        backends += (f",ceph=rbd:pool=vms;conf={conf};user=cirrus;keyring={keyring};"
                     f"secret_uuid={SECRET_UUID}")
    aio = start_all_in_one(cloud_root / "data", args=["--virt-driver", "libvirt"],
                           env={"CIRRUS_VIRT_TYPE": "qemu", "CIRRUS_LIBVIRT_URI": LIBVIRT_URI,
                                "CIRRUS_VOLUME_BACKENDS": backends})
    cli = Cli(aio.clouds_yaml)
    import openstack
    from openstack.config import loader

    config = loader.OpenStackConfig(config_files=[str(aio.clouds_yaml)], vendor_files=[],
                                    secure_files=[])
    sdk = openstack.connection.Connection(config=config.get_one(cloud="cirrus"))
    try:
        yield VolumeCloud(aio, cli, problem, sdk)
        servers = [s["ID"] for s in cli.json("server", "list")]
        if servers:
            cli.run("server", "delete", "--wait", *servers)
        for snap in cli.json("volume", "snapshot", "list"):
            cli.run("volume", "snapshot", "delete", snap["ID"], check=False)
        _wait_gone(cli, "snapshot")
        for vol in cli.json("volume", "list"):
            cli.run("volume", "delete", vol["ID"], check=False)
        _wait_gone(cli, "volume")
        for p in cli.json("port", "list", "--long"):
            if p.get("Device Owner") != "network:dhcp":
                cli.run("port", "delete", p["ID"], check=False)
        for net in cli.json("network", "list"):
            cli.run("network", "delete", net["ID"], check=False)
    finally:
        sdk.close()
        code = stop_all_in_one(aio)
        _undefine_secret()
    assert code == 0, f"all-in-one exit code {code}:\n{aio.log_tail()}"


def _wait_gone(cli: Cli, kind: str) -> None:
    args = ("volume", "snapshot", "list") if kind == "snapshot" else ("volume", "list")
    for _ in range(60):
        if not cli.json(*args):
            return
        time.sleep(0.5)


def _undefine_secret() -> None:
    import libvirt

    conn = libvirt.open(LIBVIRT_URI)
    try:
        conn.secretLookupByUUIDString(SECRET_UUID).undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


@dataclass
class Types:
    plain: dict[str, str]  # backend -> type name
    qos: dict[str, str]  # backend -> type name with the QoS spec
    qos_spec: dict[str, str]


QOS = {"total_iops_sec": "300", "read_bytes_sec": "10485760", "write_bytes_sec": "5242880"}


@pytest.fixture(scope="module")
def types(cloud: VolumeCloud) -> Types:
    cli = cloud.cli
    spec = cli.json("volume", "qos", "create", "--consumer", "front-end",
                    *[a for k, v in QOS.items() for a in ("--property", f"{k}={v}")],
                    unique("qos"))
    plain, qos = {}, {}
    for backend in BACKENDS:
        plain[backend] = cli.json("volume", "type", "create", "--property",
                                  f"volume_backend_name={backend}", unique(backend))["name"]
        qos[backend] = cli.json("volume", "type", "create", "--property",
                                f"volume_backend_name={backend}", unique(f"{backend}-qos"))["name"]
        cli.run("volume", "qos", "associate", spec["id"], qos[backend])
    return Types(plain, qos, QOS)


@pytest.fixture(scope="module")
def guests(cloud: VolumeCloud, images: Images, networks: Networks) -> tuple[str, str]:
    """Two running servers, their guest agents answering: one to write, one to read."""
    cli = cloud.cli
    ids = tuple(create_server(cli, images.plain, images.flavor, networks.static)["id"]
                for _ in range(2))
    for sid in ids:
        wait_for_boots(cli, sid, 1)
    return ids  # type: ignore[return-value]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, cloud: VolumeCloud) -> str:
    if request.param == "ceph" and cloud.ceph:
        missing(cloud.ceph)
    return request.param


# ---------------------------------------------------------------- the guest


def sh(server_id: str, command: str, timeout: float = 60.0) -> str:
    """`sh -c command` in the guest through its QEMU guest agent; its stdout (fails on a
    non-zero exit)."""
    request = {"execute": "guest-exec", "arguments": {
        "path": "/bin/sh", "arg": ["-c", command], "capture-output": True}}
    pid = json.loads(virsh("qemu-agent-command", f"cirrus-{server_id}",
                           json.dumps(request)))["return"]["pid"]
    status_request = json.dumps({"execute": "guest-exec-status", "arguments": {"pid": pid}})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(virsh("qemu-agent-command", f"cirrus-{server_id}",
                                  status_request))["return"]
        if status["exited"]:
            out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
            err = base64.b64decode(status.get("err-data", "")).decode(errors="replace")
            assert status.get("exitcode") == 0, f"`{command}`: {status} {out} {err}"
            return out
        time.sleep(0.2)
    raise AssertionError(f"`{command}` did not finish in the guest of {server_id} in {timeout} s")


def guest_disk(server_id: str, volume_id: str) -> tuple[str, int] | None:
    """The guest's disk whose serial is the volume id (its first 20 characters, virtio-blk's
    limit): (device name, bytes), or None."""
    out = sh(server_id, "for d in /sys/block/vd*; do echo ${d##*/} $(cat $d/size) "
                        "$(cat $d/serial 2>/dev/null); done")
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == volume_id[:20]:
            return parts[0], int(parts[1]) * 512
    return None


def wait_for_disk(server_id: str, volume_id: str, size: int | None = None,
                  timeout: float = 60.0) -> str:
    """The device name once the guest sees the volume (with `size` bytes, if given)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = guest_disk(server_id, volume_id)
        if seen and (size is None or seen[1] == size):
            return seen[0]
        time.sleep(0.5)
    raise AssertionError(f"the guest of {server_id} never saw volume {volume_id} "
                         f"(size {size}): {seen}")


def wait_for_no_disk(server_id: str, volume_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while guest_disk(server_id, volume_id) is not None:
        assert time.monotonic() < deadline, f"the guest of {server_id} still has {volume_id}"
        time.sleep(0.5)


def read_hex(server_id: str, device: str, count: int) -> bytes:
    """The first `count` bytes of /dev/<device> as the guest reads them."""
    out = sh(server_id, f"dd if=/dev/{device} bs={count} count=1 2>/dev/null | od -An -v -tx1")
    return bytes.fromhex("".join(out.split()))


def checksum(server_id: str, device: str, size: int) -> str:
    return sh(server_id, f"head -c {size} /dev/{device} | sha256sum").split()[0]


def write_marker(server_id: str, device: str, marker: bytes) -> None:
    """The guest writes `marker` at the start of the disk and flushes it."""
    sh(server_id, f"printf '%s' '{marker.decode()}' | dd of=/dev/{device} conv=fsync "
                  "2>/dev/null; sync")


# ---------------------------------------------------------------- the cloud


def wait_volume(cloud: VolumeCloud, volume_id: str, status: str, size: int | None = None,
                timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    shown: dict = {}
    while time.monotonic() < deadline:
        shown = cloud.volume(volume_id)
        if shown["status"] == status and (size is None or shown["size"] == size):
            return shown
        assert "error" not in shown["status"], shown
        time.sleep(0.5)
    raise AssertionError(f"volume {volume_id} not {status} (size {size}): {shown}")


def create_volume(cloud: VolumeCloud, volume_type: str, *args: str, size: int = 1) -> str:
    # --property: OSC sends "metadata": null without one (accepted since fd94a94, kept for
    # older servers)
    volume = cloud.cli.json("volume", "create", "--size", str(size), "--type", volume_type,
                            "--property", "purpose=e2e", *args, unique("vol"))
    wait_volume(cloud, volume["id"], "available")
    return volume["id"]


def attach(cloud: VolumeCloud, server_id: str, volume_id: str, size: int = GIB) -> str:
    cloud.cli.run("server", "add", "volume", server_id, volume_id)
    assert wait_volume(cloud, volume_id, "in-use")["attachments"][0]["server_id"] == server_id
    return wait_for_disk(server_id, volume_id, size)


def detach(cloud: VolumeCloud, server_id: str, volume_id: str) -> None:
    cloud.cli.run("server", "remove", "volume", server_id, volume_id)
    wait_volume(cloud, volume_id, "available")
    wait_for_no_disk(server_id, volume_id)


def source_of(server_id: str, volume_id: str) -> str:
    """The disk of the running domain whose serial is the volume id, as XML."""
    xml = virsh("dumpxml", f"cirrus-{server_id}")
    for disk in re.findall(r"<disk .*?</disk>", xml, re.S):
        if f"<serial>{volume_id}</serial>" in disk:
            return disk
    raise AssertionError(f"no disk with serial {volume_id} in cirrus-{server_id}:\n{xml}")


# ---------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def data_image(cloud: VolumeCloud, cloud_root: Path) -> tuple[str, str, bytes]:
    """A 2 MiB raw image of known bytes: (image id, sha256 of its bytes, its first bytes)."""
    path = cloud_root / "data-image.raw"
    head = b"cirrus-e2e-volume-image\n"
    data = head + pattern(5, 2 * MIB - len(head))
    path.write_bytes(data)
    image = cloud.cli.json("image", "create", "--disk-format", "raw", "--container-format",
                           "bare", "--file", str(path), unique("data-image"))
    return image["id"], hashlib.sha256(data).hexdigest(), head


def test_a_volume_from_an_image_has_the_images_bytes_in_the_guest(
        cloud: VolumeCloud, types: Types, guests: tuple[str, str], backend: str,
        data_image: tuple[str, str, bytes]) -> None:
    cli, (server, _) = cloud.cli, guests
    image_id, digest, head = data_image
    vid = create_volume(cloud, types.plain[backend], "--image", image_id)
    shown = cli.json("volume", "show", vid)
    assert str(shown["bootable"]).lower() == "true"  # OSC turns Cinder's "true" into a bool
    assert shown["os-vol-host-attr:host"] == f"cirrus@{backend}#{backend}"  # its type's backend

    device = attach(cloud, server, vid)
    disk = source_of(server, vid)
    if backend == "ceph":
        assert "protocol='rbd'" in disk and f"vms/volume-{vid}" in disk, disk
    else:
        assert f"volume-{vid}.qcow2" in disk, disk
    assert read_hex(server, device, len(head)) == head
    assert checksum(server, device, 2 * MIB) == digest
    detach(cloud, server, vid)
    cli.run("volume", "delete", vid)


def test_data_written_by_a_guest_survives_detach_and_attach_to_another_server(
        cloud: VolumeCloud, types: Types, guests: tuple[str, str], backend: str) -> None:
    cli, (first, second) = cloud.cli, guests
    vid = create_volume(cloud, types.plain[backend])
    marker = f"cirrus-marker-{backend}-{vid}".encode()

    device = attach(cloud, first, vid, GIB)  # the guest sees 1 GiB
    assert read_hex(first, device, len(marker)) == bytes(len(marker))  # a new volume is zeros
    write_marker(first, device, marker)
    detach(cloud, first, vid)
    assert cloud.volume(vid)["attachments"] == []

    device = attach(cloud, second, vid, GIB)
    assert cloud.volume(vid)["attachments"][0]["server_id"] == second
    assert read_hex(second, device, len(marker)) == marker
    detach(cloud, second, vid)
    cli.run("volume", "delete", vid)


def test_an_attached_volume_extended_is_seen_larger_by_the_guest(
        cloud: VolumeCloud, types: Types, guests: tuple[str, str], backend: str) -> None:
    cli, (server, _) = cloud.cli, guests
    vid = create_volume(cloud, types.plain[backend])
    attach(cloud, server, vid, GIB)

    cli.run("--os-volume-api-version", "3.42", "volume", "set", "--size", "2", vid)
    wait_volume(cloud, vid, "in-use", size=2)
    wait_for_disk(server, vid, 2 * GIB)  # the guest's kernel has the new capacity
    detach(cloud, server, vid)
    cli.run("volume", "delete", vid)


def test_a_volume_made_from_a_snapshot_has_the_data(
        cloud: VolumeCloud, types: Types, guests: tuple[str, str], backend: str) -> None:
    cli, (first, second) = cloud.cli, guests
    vid = create_volume(cloud, types.plain[backend])
    marker = f"cirrus-snapshot-{backend}-{vid}".encode()
    write_marker(first, attach(cloud, first, vid), marker)
    detach(cloud, first, vid)

    snap = cli.json("volume", "snapshot", "create", "--volume", vid, unique("snap"))
    for _ in range(240):
        if cloud.snapshot(snap["id"])["status"] == "available":
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"snapshot {snap['id']} never became available")
    # the source changes after the snapshot: the clone must not see it
    write_marker(first, attach(cloud, first, vid), b"overwritten-after-the-snapshot")
    detach(cloud, first, vid)
    clone = create_volume(cloud, types.plain[backend], "--snapshot", snap["id"])
    assert cli.json("volume", "show", clone)["snapshot_id"] == snap["id"]

    device = attach(cloud, second, clone)
    assert read_hex(second, device, len(marker)) == marker
    detach(cloud, second, clone)
    cli.run("volume", "delete", clone)
    cli.run("volume", "snapshot", "delete", snap["id"])
    for _ in range(240):
        if not cloud.snapshot(snap["id"]):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"snapshot {snap['id']} was not deleted")
    cli.run("volume", "delete", vid)


def test_a_qos_spec_of_the_volume_type_is_the_disks_iotune(
        cloud: VolumeCloud, types: Types, guests: tuple[str, str], backend: str) -> None:
    cli, (server, _) = cloud.cli, guests
    vid = create_volume(cloud, types.qos[backend])
    attach(cloud, server, vid)

    disk = source_of(server, vid)
    iotune = re.search(r"<iotune>(.*?)</iotune>", disk, re.S)
    assert iotune, disk
    found = dict(re.findall(r"<(\w+)>(\d+)</\1>", iotune.group(1)))
    assert found == types.qos_spec
    persistent = virsh("dumpxml", "--inactive", f"cirrus-{server}")
    assert f"<serial>{vid}</serial>" in persistent and "<total_iops_sec>300<" in persistent
    detach(cloud, server, vid)
    cli.run("volume", "delete", vid)
