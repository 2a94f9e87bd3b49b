"""The `rbd` volume backend against a real one-node Ceph cluster (scripts/ceph): bytes
written into images read back through clones, snapshots and flattens."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cirrus.config import Settings
from cirrus.storage.volumes.backend import (
    BackendError,
    BackendUnavailable,
    ImageSource,
    VolumeBackend,
)
from cirrus.storage.volumes.backends import load_backends
from cirrus.storage.volumes.backends.rbd import RbdBackend, parse_options
from tests.services import missing
from tests.storage.conftest import MADE_IDS, MiB, new_id, ours, pattern

GiB = 1024**3




@pytest.fixture
def pool(rbd_backend: RbdBackend) -> Iterator[Any]:
    """An ioctx on the backend's pool, and every volume-/image- the test made removed after."""
    import rados
    import rbd

    cluster = rados.Rados(conffile=rbd_backend.conf, name="client.cirrus")
    cluster.connect(timeout=10)
    ioctx = cluster.open_ioctx(rbd_backend.pool)
    before = set(rbd.RBD().list(ioctx))

    def made() -> set[str]:
        return {n for n in set(rbd.RBD().list(ioctx)) - before if ours(n)}

    yield ioctx
    for name in sorted(made(), key=lambda n: n.startswith("image-")):
        if name.startswith("volume-"):
            rbd_backend.delete(name.removeprefix("volume-"))
    for name in made():
        with rbd.Image(ioctx, name) as image:
            for snap in list(image.list_snaps()):
                if image.is_protected_snap(snap["name"]):
                    image.unprotect_snap(snap["name"])
                image.remove_snap(snap["name"])
        rbd.RBD().remove(ioctx, name)
    ioctx.close()
    cluster.shutdown()


def read(ioctx: Any, name: str, offset: int, length: int) -> bytes:
    import rbd

    with rbd.Image(ioctx, name, read_only=True) as image:
        return image.read(offset, length)


def write(ioctx: Any, name: str, offset: int, data: bytes) -> None:
    import rbd

    with rbd.Image(ioctx, name) as image:
        assert image.write(data, offset) == len(data)


def parent(ioctx: Any, name: str) -> tuple[str, str, str] | None:
    import rbd

    with rbd.Image(ioctx, name, read_only=True) as image:
        try:
            return tuple(image.parent_info())
        except rbd.ImageNotFound:
            return None


def snaps(ioctx: Any, name: str) -> list[str]:
    import rbd

    with rbd.Image(ioctx, name, read_only=True) as image:
        return [s["name"] for s in image.list_snaps()]


def test_options_are_parsed_and_checked(tmp_path: Path) -> None:
    backend = load_backends(Settings(data_dir=tmp_path, volume_backends={
        "ceph": "rbd:pool=ssd, conf=/etc/ceph/x.conf,user=nova,keyring=/k,secret_uuid=abc,"
                "connect_timeout=3"}))["ceph"]
    assert isinstance(backend, RbdBackend) and isinstance(backend, VolumeBackend)
    assert (backend.pool, backend.conf, backend.user, backend.keyring, backend.secret_uuid,
            backend.connect_timeout) == ("ssd", "/etc/ceph/x.conf", "nova", "/k", "abc", 3.0)
    default = RbdBackend.from_spec("d", "", Settings(data_dir=tmp_path))
    assert (default.pool, default.conf, default.user) == ("volumes", "/etc/ceph/ceph.conf",
                                                          "cirrus")
    assert parse_options("x", "pool=a;user=b") == {"pool": "a", "user": "b"}
    with pytest.raises(BackendError, match="unknown rbd option 'size=3'"):
        parse_options("x", "pool=a,size=3")
    with pytest.raises(BackendError, match="connect_timeout must be a number"):
        parse_options("x", "connect_timeout=soon")


def test_unreachable_cluster_is_unavailable_within_the_timeout(tmp_path: Path) -> None:
    try:
        import rados  # noqa: F401
    except ImportError as exc:
        missing(f"the rados bindings are not importable here ({exc}); scripts/ceph links them")
    conf = tmp_path / "ceph.conf"
    # A monitor address nothing listens on.
    conf.write_text("[global]\nmon host = 127.0.0.1:9\nauth client required = none\n")
    backend = RbdBackend("gone", conf=str(conf), connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="did not answer within 2 s"):
        backend.exists(new_id())
    assert time.monotonic() - started < 30
    with pytest.raises(BackendUnavailable, match="does not exist"):
        RbdBackend("noconf", conf=str(tmp_path / "none.conf")).capacity()


def test_volume_from_image_is_a_clone_of_the_cached_image(
        rbd_backend: RbdBackend, pool: Any, raw_image: ImageSource) -> None:
    first, second = new_id(), new_id()
    rbd_backend.create_from_image(first, 1, raw_image)
    rbd_backend.create_from_image(second, 2, raw_image)
    cached = f"image-{raw_image.image_id}"
    assert snaps(pool, cached) == ["base"]
    assert parent(pool, f"volume-{first}") == ("volumes", cached, "base")
    assert parent(pool, f"volume-{second}") == ("volumes", cached, "base")
    assert read(pool, f"volume-{first}", 0, 3 * MiB) == raw_image.path.read_bytes()
    assert read(pool, f"volume-{first}", 3 * MiB, MiB) == bytes(MiB)
    import rbd

    with rbd.Image(pool, f"volume-{second}", read_only=True) as image:
        assert image.size() == 2 * GiB
    write(pool, f"volume-{first}", 0, pattern(9, 4096))
    rbd_backend.create_from_image(first, 1, raw_image)  # retried: nothing changes
    assert read(pool, f"volume-{first}", 0, 4096) == pattern(9, 4096)
    assert read(pool, f"volume-{second}", 0, 4096) == pattern(1, 4096)
    assert rbd_backend.exists(first) and not rbd_backend.exists(new_id())
    c = rbd_backend.connection(first)
    assert c.driver_volume_type == "rbd"
    assert c.data["name"] == f"volumes/volume-{first}"
    assert c.data["hosts"] == ["127.0.0.1"] and c.data["ports"] == ["6789"]
    assert c.data["auth_username"] == "cirrus" and c.data["secret_type"] == "ceph"
    assert c.data["secret_uuid"] == rbd_backend.secret_uuid
    assert c.data["conf"] == rbd_backend.conf


def test_qcow2_image_is_imported_as_raw(rbd_backend: RbdBackend, pool: Any,
                                        raw_image: ImageSource, tmp_path: Path) -> None:
    import subprocess

    qcow2 = tmp_path / "store" / f"q{uuid.uuid4().hex}"
    MADE_IDS.add(qcow2.name)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw_image.path),
                    str(qcow2)], check=True)
    volume = new_id()
    rbd_backend.create_from_image(volume, 1, ImageSource(qcow2.name, qcow2, "qcow2",
                                                         qcow2.stat().st_size))
    assert read(pool, f"volume-{volume}", 0, 3 * MiB) == raw_image.path.read_bytes()
    with pytest.raises(BackendError, match="cannot hold its source"):
        rbd_backend.create_from_image(new_id(), 0, ImageSource(qcow2.name, qcow2, "qcow2", 1))


def test_snapshot_clone_and_delete_snapshot_flattens_the_clone(
        rbd_backend: RbdBackend, pool: Any, raw_image: ImageSource) -> None:
    volume, snap, clone = new_id(), new_id(), new_id()
    rbd_backend.create_from_image(volume, 1, raw_image)
    write(pool, f"volume-{volume}", 5 * MiB, pattern(3, MiB))
    rbd_backend.create_snapshot(volume, snap)
    rbd_backend.create_snapshot(volume, snap)  # retried
    write(pool, f"volume-{volume}", 5 * MiB, pattern(4, MiB))  # after the snapshot
    rbd_backend.create_from_snapshot(clone, 2, volume, snap)
    assert parent(pool, f"volume-{clone}") == ("volumes", f"volume-{volume}", f"snapshot-{snap}")
    assert read(pool, f"volume-{clone}", 5 * MiB, MiB) == pattern(3, MiB)
    assert read(pool, f"volume-{volume}", 5 * MiB, MiB) == pattern(4, MiB)
    write(pool, f"volume-{clone}", 7 * MiB, pattern(5, MiB))

    rbd_backend.delete_snapshot(volume, snap)
    assert snaps(pool, f"volume-{volume}") == []
    assert parent(pool, f"volume-{clone}") is None  # flattened: its own copy
    assert read(pool, f"volume-{clone}", 0, 3 * MiB) == raw_image.path.read_bytes()
    assert read(pool, f"volume-{clone}", 5 * MiB, 3 * MiB) == \
        pattern(3, MiB) + bytes(MiB) + pattern(5, MiB)
    rbd_backend.delete_snapshot(volume, snap)  # idempotent
    with pytest.raises(BackendError, match="not found"):
        rbd_backend.create_from_snapshot(new_id(), 1, volume, snap)


def test_volume_from_volume_survives_its_source(rbd_backend: RbdBackend, pool: Any,
                                                raw_image: ImageSource) -> None:
    source, copy = new_id(), new_id()
    rbd_backend.create_from_image(source, 1, raw_image)
    write(pool, f"volume-{source}", 4 * MiB, pattern(7, MiB))
    rbd_backend.create_from_volume(copy, 2, source)
    assert parent(pool, f"volume-{copy}") == ("volumes", f"volume-{source}", f"clone-{copy}")
    write(pool, f"volume-{source}", 4 * MiB, pattern(8, MiB))  # not seen by the copy
    rbd_backend.delete(source)  # flattens the copy first
    rbd_backend.delete(source)  # idempotent
    assert not rbd_backend.exists(source)
    assert parent(pool, f"volume-{copy}") is None
    assert read(pool, f"volume-{copy}", 0, 5 * MiB) == \
        raw_image.path.read_bytes() + bytes(MiB) + pattern(7, MiB)
    # Deleting a copy removes the snapshot it was cloned from on a source still there.
    other = new_id()
    rbd_backend.create_from_volume(other, 2, copy)
    assert snaps(pool, f"volume-{copy}") == [f"clone-{other}"]
    rbd_backend.delete(other)
    assert snaps(pool, f"volume-{copy}") == []


def test_empty_extend_copy_to_file_and_capacity(rbd_backend: RbdBackend, pool: Any,
                                                raw_image: ImageSource, tmp_path: Path) -> None:
    import rbd

    empty = new_id()
    rbd_backend.create_empty(empty, 1)
    rbd_backend.create_empty(empty, 1)
    assert read(pool, f"volume-{empty}", 0, MiB) == bytes(MiB)
    rbd_backend.extend(empty, 3)
    rbd_backend.extend(empty, 3)
    with rbd.Image(pool, f"volume-{empty}", read_only=True) as image:
        assert image.size() == 3 * GiB
    with pytest.raises(BackendError, match="would shrink it"):
        rbd_backend.extend(empty, 2)
    volume = new_id()
    rbd_backend.create_from_image(volume, 1, raw_image)
    write(pool, f"volume-{volume}", 8 * MiB, pattern(6, MiB))
    out = tmp_path / "upload.qcow2"
    assert rbd_backend.copy_to_file(volume, out, "qcow2") == out.stat().st_size
    raw = tmp_path / "back.raw"
    import subprocess

    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(out), str(raw)],
                   check=True)
    assert raw.stat().st_size == GiB
    with open(raw, "rb") as fh:
        assert fh.read(3 * MiB) == raw_image.path.read_bytes()
        fh.seek(8 * MiB)
        assert fh.read(MiB) == pattern(6, MiB)
    cap = rbd_backend.capacity()
    assert 0 < cap.free_gb <= cap.total_gb
    missing = new_id()
    rbd_backend.delete(missing)  # nothing there: deleted
    for call in (lambda: rbd_backend.extend(missing, 2),
                 lambda: rbd_backend.create_snapshot(missing, new_id()),
                 lambda: rbd_backend.create_from_volume(new_id(), 1, missing)):
        with pytest.raises(BackendError, match="not found"):
            call()
    with pytest.raises(BackendError, match="no volume"):
        rbd_backend.connection(missing)


def test_concurrent_first_volumes_import_the_image_once(
        rbd_backend: RbdBackend, pool: Any, raw_image: ImageSource) -> None:
    volumes = [new_id() for _ in range(4)]
    errors: list[BaseException] = []

    def make(volume: str) -> None:
        try:
            rbd_backend.create_from_image(volume, 1, raw_image)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(v,)) for v in volumes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert snaps(pool, f"image-{raw_image.image_id}") == ["base"]
    for volume in volumes:
        assert parent(pool, f"volume-{volume}") == ("volumes", f"image-{raw_image.image_id}",
                                                    "base")
        assert read(pool, f"volume-{volume}", 2 * MiB, MiB) == pattern(2, MiB)
