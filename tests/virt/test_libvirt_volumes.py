"""Volumes on the real libvirtd of this machine (QEMU TCG): a file volume (FileBackend) and an
RBD volume (RbdBackend, against the Ceph of scripts/ceph) hot-attached to a running test
guest, seen by the guest (its sysfs, read through the QEMU guest agent) with the right size
and serial, extended live, detached once the guest lets go; a blank guest (no OS) for what
needs none: attach to a stopped domain, volumes in the spec at spawn, boot from volume, and a
detach the guest never answers. The libvirt secret holding the Ceph key.

Skipped when libvirtd (or, for RBD, Ceph) is missing; failed instead under
CIRRUS_REQUIRE_SERVICES=1. One test guest boots for the module (TCG boots are slow)."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from cirrus.config import Settings
from cirrus.storage.volumes.backends.file import FileBackend
from cirrus.virt.driver import VolumeDetachTimeout, VolumeError
from cirrus.virt.power import RUNNING, SHUTDOWN
from cirrus.virt.spec import VolumeDevice, VolumeQos
from tests.storage.conftest import ceph_conf  # noqa: F401  (the session's Ceph cluster)
from tests.virt.conftest import LIBVIRT_URI
from tests.virt.test_libvirt_driver import MIB, Spawner, guest_images, wait_for

pytestmark = pytest.mark.usefixtures("libvirt_available")
GIB = 1024**3


@pytest.fixture(scope="module")
def module_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cirrus-virt-vol-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def spawner(libvirt_available, module_dir: Path) -> Iterator[Spawner]:
    settings = Settings(data_dir=module_dir, virt_driver="libvirt", virt_type="qemu",
                        libvirt_uri=LIBVIRT_URI, libvirt_shutdown_timeout=2.0)
    s = Spawner(settings)
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def files(spawner: Spawner) -> FileBackend:
    """The file backend in the data directory, as the all-in-one has it."""
    return FileBackend("local", Path(spawner.settings.data_dir) / "volumes")


def agent_exec(dom, command: str, timeout: float = 30.0) -> str:
    """`sh -c command` in the guest through the QEMU guest agent; its stdout."""
    import libvirt_qemu

    request = {"execute": "guest-exec", "arguments": {
        "path": "/bin/sh", "arg": ["-c", command], "capture-output": True}}
    pid = json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), 10, 0))[
        "return"]["pid"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(
            {"execute": "guest-exec-status", "arguments": {"pid": pid}}), 10, 0))["return"]
        if status.get("exited"):
            return base64.b64decode(status.get("out-data") or "").decode(errors="replace")
        time.sleep(0.2)
    pytest.fail(f"`{command}` did not finish in the guest within {timeout:.0f} s")


def guest_disks(dom) -> dict[str, tuple[int, str]]:
    """What the guest's kernel sees: virtio disk name -> (bytes, serial)."""
    import libvirt

    try:
        out = agent_exec(dom, "for d in /sys/block/vd*; do echo ${d##*/} $(cat $d/size) "
                              "$(cat $d/serial 2>/dev/null); done")
    except libvirt.libvirtError:
        return {}  # the agent is not up yet
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            found[parts[0]] = (int(parts[1]) * 512, parts[2] if len(parts) > 2 else "")
    return found


def by_serial(dom, serial: str) -> int | None:
    """The size of the guest's disk whose serial is the volume id's first 20 characters."""
    return next((size for size, s in guest_disks(dom).values() if s == serial[:20]), None)


@pytest.fixture(scope="module")
def guest(spawner: Spawner, test_guest: tuple[Path, Path]):
    """The test guest, booted once for the module, its guest agent answering."""
    spawner.settings.libvirt_shutdown_timeout = 30.0
    spec = spawner.spec(**guest_images(spawner, test_guest))
    spawner.driver.spawn(spec)
    wait_for(lambda: "cirrus-report: end" in spawner.driver.console_output(spec.uuid), 180,
             "the test guest's report")
    dom = spawner.domain(spec.uuid)
    wait_for(lambda: guest_disks(dom), 60, "the guest agent")
    return spec


def disk_of(spawner: Spawner, instance: str, volume_id: str, live: bool = True):
    xml = spawner.domain(instance).XMLDesc(0 if live else 2)  # 2: VIR_DOMAIN_XML_INACTIVE
    return next((d for d in ET.fromstring(xml).findall("devices/disk")
                 if d.findtext("serial") == volume_id), None)


def qemu_sees(spawner: Spawner, instance: str) -> str:
    """QEMU's own list of its block devices (HMP `info block`)."""
    import libvirt_qemu

    return libvirt_qemu.qemuMonitorCommand(spawner.domain(instance), "info block",
                                           libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)


def test_a_file_volume_is_hot_attached_seen_extended_and_detached(
        spawner: Spawner, guest, files: FileBackend) -> None:
    driver, dom = spawner.driver, spawner.domain(guest.uuid)
    volume_id = str(uuid.uuid4())
    files.create_empty(volume_id, 1)
    conn = files.connection(volume_id)
    qos = VolumeQos(total_iops_sec=800, read_bytes_sec=20 * MIB, write_bytes_sec=10 * MIB)
    device = VolumeDevice(volume_id, conn.driver_volume_type, conn.data, qos=qos)

    target = driver.attach_volume(guest.uuid, device.to_dict())  # plain data, as a message
    assert target == "vdb"  # vda is the root disk; no config drive here
    assert driver.attach_volume(guest.uuid, device) == "vdb"  # again: nothing changes
    for live in (True, False):  # the running guest and its definition
        disk = disk_of(spawner, guest.uuid, volume_id, live)
        assert disk is not None and disk.find("target").get("dev") == "vdb"
        assert disk.find("source").get("file") == conn.data["path"]
        assert disk.find("driver").get("type") == "qcow2"
        iotune = {el.tag: int(el.text) for el in disk.find("iotune")}
        assert iotune == {"total_iops_sec": 800, "read_bytes_sec": 20 * MIB,
                          "write_bytes_sec": 10 * MIB}
    assert driver.volume_targets(guest.uuid) == {volume_id: "vdb"}
    limits = dom.blockIoTune("vdb", 0)  # what QEMU enforces
    assert (limits["total_iops_sec"], limits["read_bytes_sec"]) == (800, 20 * MIB)
    assert conn.data["path"] in qemu_sees(spawner, guest.uuid)
    assert wait_for(lambda: by_serial(dom, volume_id), 60, "the guest to see the volume") == GIB

    driver.extend_volume(guest.uuid, volume_id, 2)  # QEMU grows the qcow2 it holds
    assert dom.blockInfo("vdb", 0)[0] == 2 * GIB
    wait_for(lambda: by_serial(dom, volume_id) == 2 * GIB, 30, "the guest to see 2 GiB")
    with pytest.raises(VolumeError, match="shrink"):
        driver.extend_volume(guest.uuid, volume_id, 1)

    driver.detach_volume(guest.uuid, volume_id)  # waits for the guest to let go
    assert disk_of(spawner, guest.uuid, volume_id) is None
    assert disk_of(spawner, guest.uuid, volume_id, live=False) is None
    assert conn.data["path"] not in qemu_sees(spawner, guest.uuid)
    assert by_serial(dom, volume_id) is None
    driver.detach_volume(guest.uuid, volume_id)  # again: nothing to do
    files.delete(volume_id)


@pytest.fixture
def rbd_backend(ceph_conf: Path) -> Iterator:  # noqa: F811
    from cirrus.storage.volumes.backends.rbd import RbdBackend

    backend = RbdBackend("ceph", pool="volumes", conf=str(ceph_conf), user="cirrus",
                         secret_uuid=str(uuid.uuid4()), connect_timeout=10)
    yield backend
    backend.close()
    import libvirt

    conn = libvirt.open(LIBVIRT_URI)
    try:
        conn.secretLookupByUUIDString(backend.secret_uuid).undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


def test_an_rbd_volume_is_hot_attached_seen_extended_and_detached(
        spawner: Spawner, guest, rbd_backend) -> None:
    import libvirt

    driver, dom = spawner.driver, spawner.domain(guest.uuid)
    volume_id = str(uuid.uuid4())
    rbd_backend.create_empty(volume_id, 1)
    try:
        conn = rbd_backend.connection(volume_id)
        device = VolumeDevice(volume_id, conn.driver_volume_type, conn.data)
        target = driver.attach_volume(guest.uuid, device)
        disk = disk_of(spawner, guest.uuid, volume_id)
        assert disk.get("type") == "network"
        assert disk.find("source").get("protocol") == "rbd"
        assert disk.find("source").get("name") == f"volumes/volume-{volume_id}"
        assert disk.find("auth/secret").get("uuid") == rbd_backend.secret_uuid
        key = Path("/etc/ceph/ceph.client.cirrus.keyring").read_text().split("key =")[1].split()[0]
        assert key not in dom.XMLDesc(0)
        secret = libvirt.open(LIBVIRT_URI).secretLookupByUUIDString(rbd_backend.secret_uuid)
        with pytest.raises(libvirt.libvirtError):
            secret.value()  # private: libvirt never gives it back
        assert f"volume-{volume_id}" in qemu_sees(spawner, guest.uuid)
        assert wait_for(lambda: by_serial(dom, volume_id), 60, "the guest to see it") == GIB

        rbd_backend.extend(volume_id, 2)  # the volume service grows the image...
        driver.extend_volume(guest.uuid, volume_id, 2)  # ...and the guest is told
        assert dom.blockInfo(target, 0)[0] == 2 * GIB
        wait_for(lambda: by_serial(dom, volume_id) == 2 * GIB, 30, "the guest to see 2 GiB")

        driver.detach_volume(guest.uuid, volume_id)
        assert disk_of(spawner, guest.uuid, volume_id) is None
        assert f"volume-{volume_id}" not in qemu_sees(spawner, guest.uuid)
        assert by_serial(dom, volume_id) is None
    finally:
        rbd_backend.delete(volume_id)  # refused ("in use") if QEMU still had it open


def test_volumes_of_a_stopped_and_a_blank_domain(spawner: Spawner, files: FileBackend) -> None:
    """Spawn with a volume in the spec; attach to the definition of a stopped domain and see
    it come up at start; a guest that never answers the unplug (no OS) times the detach out,
    and the volume is gone from the definition; boot from volume."""
    driver = spawner.driver
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for volume_id in ids:
        files.create_empty(volume_id, 1)
    first, second, root = (VolumeDevice(i, "file", files.connection(i).data) for i in ids)

    spec = spawner.spec(spawner.blank_image())
    spec.volumes = [first]
    driver.spawn(spec)
    assert disk_of(spawner, spec.uuid, first.volume_id) is not None  # vdb, from the spec
    # virtio-scsi: the controller is hot-plugged with the first scsi volume; QEMU lets go of
    # a SCSI disk without the guest's help, so even this guest's detach finishes
    scsi = VolumeDevice(root.volume_id, "file", root.data, bus="scsi", read_only=True)
    assert driver.attach_volume(spec.uuid, scsi) == "sda"
    live = ET.fromstring(spawner.domain(spec.uuid).XMLDesc(0))
    assert [c.get("model") for c in live.findall("devices/controller[@type='scsi']")] == [
        "virtio-scsi"]
    assert disk_of(spawner, spec.uuid, root.volume_id).find("readonly") is not None
    assert root.data["path"] in qemu_sees(spawner, spec.uuid)
    driver.detach_volume(spec.uuid, root.volume_id, timeout=10)
    assert disk_of(spawner, spec.uuid, root.volume_id) is None

    driver.power_off(spec.uuid)
    assert driver.power_state(spec.uuid) == SHUTDOWN
    assert driver.attach_volume(spec.uuid, second) == "vdc"  # its definition only
    assert disk_of(spawner, spec.uuid, second.volume_id, live=False) is not None
    driver.power_on(spec.uuid)
    assert disk_of(spawner, spec.uuid, second.volume_id) is not None  # came up with it
    assert driver.volume_targets(spec.uuid) == {first.volume_id: "vdb",
                                                second.volume_id: "vdc"}
    with pytest.raises(VolumeDetachTimeout, match="did not release volume"):
        driver.detach_volume(spec.uuid, second.volume_id, timeout=3)
    assert disk_of(spawner, spec.uuid, second.volume_id, live=False) is None
    driver.power_off(spec.uuid)  # off: nothing holds it any more
    assert disk_of(spawner, spec.uuid, second.volume_id, live=False) is None
    with pytest.raises(VolumeError, match="not attached"):
        driver.extend_volume(spec.uuid, second.volume_id, 2)
    driver.destroy(spec.uuid)
    assert files.exists(first.volume_id)  # a volume outlives its server

    # boot from volume: no image, no local root disk; the volume is vda with boot order 1
    bfv = spawner.spec(spawner.blank_image())
    bfv.image, bfv.block_devices = None, []
    bfv.volumes = [VolumeDevice(root.volume_id, "file", root.data, boot_index=0)]
    driver.spawn(bfv)
    assert driver.power_state(bfv.uuid) == RUNNING
    disk = disk_of(spawner, bfv.uuid, root.volume_id)
    assert disk.find("target").get("dev") == "vda" and disk.find("boot").get("order") == "1"
    assert not (spawner.driver.pools.find_instance_dir(bfv.uuid) / "disk.qcow2").exists()
    driver.destroy(bfv.uuid)
    for volume_id in ids:
        files.delete(volume_id)


def test_the_ceph_secret_is_private_idempotent_and_never_shows_the_key(
        libvirt_available, tmp_path: Path) -> None:
    import libvirt

    from cirrus.virt.libvirt.secrets import CephSecretError, ensure_ceph_secret, usage_name

    key = base64.b64encode(b"not-a-real-ceph-key-0123456789").decode()
    keyring = tmp_path / "ceph.client.vt.keyring"
    keyring.write_text(f"[client.other]\n\tkey = AAAA\n[client.vt]\n\tkey = {key}\n"
                       "\tcaps mon = \"profile rbd\"\n")
    secret_uuid = str(uuid.uuid4())
    data = {"auth_username": "vt", "secret_uuid": secret_uuid, "keyring": str(keyring)}
    conn = libvirt.open(LIBVIRT_URI)
    try:
        assert ensure_ceph_secret(conn, data) == secret_uuid
        assert ensure_ceph_secret(conn, data) == secret_uuid  # again: the same secret
        secret = conn.secretLookupByUUIDString(secret_uuid)
        assert secret.usageType() == libvirt.VIR_SECRET_USAGE_TYPE_CEPH
        assert secret.usageID() == usage_name("vt", secret_uuid)
        assert "private='yes'" in secret.XMLDesc(0) or 'private="yes"' in secret.XMLDesc(0)
        assert key not in secret.XMLDesc(0)
        with pytest.raises(libvirt.libvirtError):
            secret.value()
        assert [s for s in conn.listAllSecrets() if s.UUIDString() == secret_uuid]

        # a host without the keyring uses the secret defined already...
        gone = {**data, "keyring": ""}
        keyring.unlink()
        assert ensure_ceph_secret(conn, {**gone, "auth_username": "nobody-here"}
                                  | {"secret_uuid": secret_uuid}) == secret_uuid
        # ...and without either, it says so (never with a key in the message)
        with pytest.raises(CephSecretError, match="no libvirt secret"):
            ensure_ceph_secret(conn, {**gone, "auth_username": "nobody-here",
                                      "secret_uuid": str(uuid.uuid4())})
        named = {**data, "keyring": str(tmp_path / "missing.keyring")}
        with pytest.raises(CephSecretError, match="does not exist"):
            ensure_ceph_secret(conn, named)
        keyring.write_text("[client.other]\n\tkey = AAAA\n")
        with pytest.raises(CephSecretError, match="has no key for client.vt") as err:
            ensure_ceph_secret(conn, data)
        assert "AAAA" not in str(err.value)
    finally:
        try:
            conn.secretLookupByUUIDString(secret_uuid).undefine()
        finally:
            conn.close()
