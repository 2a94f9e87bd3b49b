"""revert_to_snapshot and prune_image_cache on the real backends: the file backend with the
real qemu-img, the rbd backend against the one-node Ceph cluster (scripts/ceph; skipped
saying why without it, failed under CIRRUS_REQUIRE_SERVICES=1). Also copy_to_file into the
image store, as os-volume_upload_image uses it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cirrus.storage.filestore import FileStore, store_file
from cirrus.storage.volumes.backend import BackendError, ImageSource
from cirrus.storage.volumes.backends.file import FileBackend
from tests.services import require
from tests.storage.conftest import MiB, new_id, pattern
from tests.storage.test_file_backend import read as file_read
from tests.storage.test_file_backend import write as file_write
from tests.storage.test_rbd_backend import pool, read, snaps, write  # noqa: F401 (fixture)


@pytest.fixture
def tools() -> None:
    require(shutil.which("qemu-img") and shutil.which("qemu-io"),
            "qemu-img and qemu-io are not installed (Debian: qemu-utils)")


@pytest.fixture
def backend(tmp_path: Path, tools: None) -> FileBackend:
    return FileBackend("local", tmp_path / "volumes")


# ---------------------------------------------------------------- file


def test_file_revert_brings_back_the_snapshot_data_over_the_image(
        backend: FileBackend, raw_image: ImageSource, tmp_path: Path) -> None:
    vid, sid, later = new_id(), new_id(), new_id()
    backend.create_from_image(vid, 1, raw_image)
    path = backend.volume_path(vid)
    file_write(path, 0, pattern(5, MiB), tmp_path)
    backend.create_snapshot(vid, sid)
    file_write(path, 0, pattern(6, MiB), tmp_path)  # after the snapshot
    file_write(path, 2 * MiB, pattern(7, MiB), tmp_path)
    backend.create_snapshot(vid, later)
    backend.delete_snapshot(vid, later)
    backend.revert_to_snapshot(vid, sid)
    assert file_read(path, 0, MiB, tmp_path) == pattern(5, MiB)
    assert file_read(path, 2 * MiB, MiB, tmp_path) == pattern(2, MiB)  # the image's again
    base = backend.directory / "images" / f"image-{raw_image.image_id}.raw"
    assert subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)],
                          capture_output=True, text=True, check=True).stdout.count(
        str(base)) >= 1  # still an overlay on the image's base, not a full copy
    assert backend.snapshot_path(sid).exists()
    backend.revert_to_snapshot(vid, sid)  # again: the same data
    assert file_read(path, 0, MiB, tmp_path) == pattern(5, MiB)


def test_file_revert_refuses_a_missing_snapshot_or_another_size(
        backend: FileBackend, tmp_path: Path) -> None:
    vid, sid = new_id(), new_id()
    backend.create_empty(vid, 1)
    with pytest.raises(BackendError, match="no snapshot file"):
        backend.revert_to_snapshot(vid, sid)
    backend.create_snapshot(vid, sid)
    backend.extend(vid, 2)
    with pytest.raises(BackendError, match="differ in size"):
        backend.revert_to_snapshot(vid, sid)


def test_file_prune_removes_only_bases_nothing_uses(
        backend: FileBackend, raw_image: ImageSource, tmp_path: Path) -> None:
    other_path = tmp_path / "store" / new_id()
    other_path.write_bytes(pattern(3, MiB))
    other = ImageSource(other_path.name, other_path, "raw", MiB)
    vid, wid, sid = new_id(), new_id(), new_id()
    backend.create_from_image(vid, 1, raw_image)
    backend.create_from_image(wid, 1, other)
    backend.create_snapshot(wid, sid)  # backed by the other image's base too
    images = backend.directory / "images"
    base, other_base = (images / f"image-{raw_image.image_id}.raw",
                        images / f"image-{other.image_id}.raw")
    # in use by files: kept even when the caller's keep set is empty
    assert backend.prune_image_cache(set()) == []
    backend.delete(vid)
    # no volume left on it, but the database still lists it (a create in flight): kept
    assert backend.prune_image_cache({raw_image.image_id}) == []
    assert base.exists()
    assert backend.prune_image_cache(set()) == [raw_image.image_id]
    assert not base.exists() and raw_image.path.exists()  # the image store keeps its file
    backend.delete(wid)
    assert backend.prune_image_cache(set()) == []  # the snapshot still needs its base
    assert other_base.exists()
    backend.delete_snapshot(wid, sid)
    assert backend.prune_image_cache(set()) == [other.image_id]
    assert list(images.glob("image-*")) == []
    # a volume made from a pruned image makes its base again
    again = new_id()
    backend.create_from_image(again, 1, raw_image)
    assert file_read(backend.volume_path(again), 0, MiB, tmp_path) == pattern(1, MiB)


def test_file_copy_to_file_into_the_image_store(
        backend: FileBackend, raw_image: ImageSource, tmp_path: Path) -> None:
    vid = new_id()
    backend.create_from_image(vid, 1, raw_image)
    file_write(backend.volume_path(vid), MiB, pattern(8, MiB), tmp_path)
    store = FileStore(tmp_path / "images")
    stored = store_file(store, "img-1", lambda p: backend.copy_to_file(vid, p, "qcow2"))
    path = store.path_of(stored.location)
    assert stored.size == path.stat().st_size and stored.qcow2_virtual_size == 1024**3
    assert file_read(path, 0, 3 * MiB, tmp_path) == (
        pattern(1, MiB) + pattern(8, MiB) + pattern(2, MiB))
    assert not any((tmp_path / "images" / ".staging").iterdir())
    with pytest.raises(BackendError):
        store_file(store, "img-2", lambda p: backend.copy_to_file(new_id(), p, "raw"))
    assert not (tmp_path / "images" / "img-2").exists()
    assert not any((tmp_path / "images" / ".staging").iterdir())


# ---------------------------------------------------------------- rbd


def test_rbd_revert_rolls_the_volume_back(rbd_backend: Any, pool: Any,  # noqa: F811
                                          raw_image: ImageSource) -> None:
    vid, sid = new_id(), new_id()
    rbd_backend.create_from_image(vid, 1, raw_image)
    name = f"volume-{vid}"
    write(pool, name, 0, pattern(5, MiB))
    rbd_backend.create_snapshot(vid, sid)
    write(pool, name, 0, pattern(6, MiB))
    write(pool, name, 2 * MiB, pattern(7, MiB))
    rbd_backend.revert_to_snapshot(vid, sid)
    assert read(pool, name, 0, MiB) == pattern(5, MiB)
    assert read(pool, name, 2 * MiB, MiB) == pattern(2, MiB)
    assert f"snapshot-{sid}" in snaps(pool, name)
    with pytest.raises(BackendError, match="no snapshot"):
        rbd_backend.revert_to_snapshot(vid, new_id())
    rbd_backend.extend(vid, 2)
    with pytest.raises(BackendError, match="differ in size"):
        rbd_backend.revert_to_snapshot(vid, sid)


def test_rbd_prune_keeps_caches_with_clones_or_in_keep(rbd_backend: Any, pool: Any,  # noqa: F811
                                                       raw_image: ImageSource,
                                                       tmp_path: Path) -> None:
    import rbd

    other_path = tmp_path / "store" / new_id()
    other_path.write_bytes(pattern(3, MiB))
    other = ImageSource(other_path.name, other_path, "raw", MiB)
    vid, wid, cid = new_id(), new_id(), new_id()
    rbd_backend.create_from_image(vid, 1, raw_image)
    rbd_backend.create_from_image(wid, 1, other)
    cache, other_cache = f"image-{raw_image.image_id}", f"image-{other.image_id}"
    mine = {raw_image.image_id, other.image_id}
    # Other tests' caches in the shared pool are kept: everything else is in `keep`.
    existing = {n.removeprefix("image-") for n in rbd.RBD().list(pool)
                if n.startswith("image-")} - mine
    assert rbd_backend.prune_image_cache(existing) == []  # both have clones
    rbd_backend.delete(vid)
    assert rbd_backend.prune_image_cache(existing | {raw_image.image_id}) == []
    assert cache in rbd.RBD().list(pool)
    assert rbd_backend.prune_image_cache(existing) == [raw_image.image_id]
    assert cache not in rbd.RBD().list(pool)
    # a volume cloned from a volume made from the image: deleting the middle one flattens
    # the clone, after which nothing depends on the cache
    rbd_backend.create_from_volume(cid, 1, wid)
    rbd_backend.delete(wid)
    assert rbd_backend.prune_image_cache(existing) == [other.image_id]
    assert other_cache not in rbd.RBD().list(pool)
    assert read(pool, f"volume-{cid}", 0, MiB) == pattern(3, MiB)
    # made again on the next use
    again = new_id()
    rbd_backend.create_from_image(again, 1, raw_image)
    assert read(pool, f"volume-{again}", 0, MiB) == pattern(1, MiB)
