"""The `file` volume backend with the real qemu-img: data written into volumes, snapshots
and clones read back, backing chains checked with `qemu-img info`."""

from __future__ import annotations

import json
import stat
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from cirrus.config import Settings
from cirrus.storage.volumes.backend import BackendError, Connection, ImageSource, VolumeBackend
from cirrus.storage.volumes.backends import load_backends
from cirrus.storage.volumes.backends.file import FileBackend
from tests.storage.conftest import MiB, pattern

pytestmark = pytest.mark.usefixtures("qemu_img_tools")
GiB = 1024**3


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def backend(tmp_path: Path) -> FileBackend:
    return FileBackend("local", tmp_path / "volumes")


def info(path: Path) -> dict:
    return json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)],
                                     check=True, capture_output=True, text=True).stdout)


def write(path: Path, offset: int, data: bytes, tmp: Path) -> None:
    """Write data at offset into the qcow2 file as a guest would (through QEMU's block
    layer: qemu-io writes to the top of the chain)."""
    src = tmp / f"chunk-{uuid.uuid4().hex}"
    src.write_bytes(data)
    # `write -s FILE`: the file's bytes, not a repeated pattern byte.
    subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                    f"write -s {src} {offset} {len(data)}", str(path)],
                   check=True, capture_output=True)


def read(path: Path, offset: int, length: int, tmp: Path) -> bytes:
    """The guest-visible bytes [offset, offset+length) of the qcow2 file's whole chain."""
    out = tmp / f"read-{uuid.uuid4().hex}.raw"
    subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", str(path),
                    str(out)], check=True, capture_output=True)
    with open(out, "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    out.unlink()
    return data


def test_is_a_volume_backend_and_loads_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, volume_backends={
        "default": "file", "elsewhere": f"file:{tmp_path / 'x'}",
        "named": f"file:dir={tmp_path / 'y'}"})
    backends = load_backends(settings)
    assert all(isinstance(b, VolumeBackend) for b in backends.values())
    assert backends["default"].directory == (tmp_path / "volumes").resolve()
    assert backends["elsewhere"].directory == (tmp_path / "x").resolve()
    assert backends["named"].directory == (tmp_path / "y").resolve()
    with pytest.raises(BackendError, match="file options are a directory"):
        load_backends(Settings(data_dir=tmp_path, volume_backends={"bad": "file:pool=x"}))


def test_volume_from_image_is_an_overlay_on_one_base_with_the_image_data(
        backend: FileBackend, raw_image: ImageSource, tmp_path: Path) -> None:
    first, second = new_id(), new_id()
    backend.create_from_image(first, 1, raw_image)
    backend.create_from_image(second, 2, raw_image)
    path = backend.volume_path(first)
    base = backend.directory / "images" / f"image-{raw_image.image_id}.raw"
    chain = info(path)
    assert chain["format"] == "qcow2" and chain["virtual-size"] == GiB
    assert chain["full-backing-filename"] == str(base)
    assert chain["backing-filename-format"] == "raw"
    assert info(backend.volume_path(second))["full-backing-filename"] == str(base)
    assert info(backend.volume_path(second))["virtual-size"] == 2 * GiB
    # One base, the image store's file itself (a hard link: nothing copied), kept if the
    # image's file goes.
    assert base.stat().st_ino == raw_image.path.stat().st_ino
    assert [p.name for p in (backend.directory / "images").iterdir()
            if not p.name.startswith(".")] == [base.name]
    assert path.stat().st_size < MiB  # an overlay, not a copy
    assert read(path, 0, 3 * MiB, tmp_path) == raw_image.path.read_bytes()
    assert read(path, 3 * MiB, MiB, tmp_path) == bytes(MiB)  # grown with zeros
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backend.directory.stat().st_mode) == 0o700
    assert backend.exists(first)
    assert backend.connection(first) == Connection("file", {"path": str(path), "format": "qcow2"})
    # A retried create does nothing (the data written since is kept).
    write(path, 0, pattern(9, 4096), tmp_path)
    backend.create_from_image(first, 1, raw_image)
    assert read(path, 0, 4096, tmp_path) == pattern(9, 4096)


def test_qcow2_images_and_other_formats(backend: FileBackend, raw_image: ImageSource,
                                        tmp_path: Path) -> None:
    qcow2 = tmp_path / "store" / "img-qcow2"
    vmdk = tmp_path / "store" / "img-vmdk"
    for fmt, path in (("qcow2", qcow2), ("vmdk", vmdk)):
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, str(raw_image.path),
                        str(path)], check=True)
    for fmt, path in (("qcow2", qcow2), ("vmdk", vmdk)):
        volume = new_id()
        backend.create_from_image(volume, 1, ImageSource(path.name, path, fmt,
                                                         path.stat().st_size))
        assert read(backend.volume_path(volume), 0, 3 * MiB, tmp_path) == \
            raw_image.path.read_bytes()
        base = Path(info(backend.volume_path(volume))["full-backing-filename"])
        assert base.name == f"image-{path.name}.qcow2" and info(base)["format"] == "qcow2"
    # vmdk was converted to a qcow2 base; qcow2 is kept as it is (a link).
    assert (backend.directory / "images" / "image-img-qcow2.qcow2").stat().st_ino == \
        qcow2.stat().st_ino
    # A qcow2 "image" that reaches outside itself is refused.
    sneaky = tmp_path / "store" / "sneaky"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    str(raw_image.path), str(sneaky)], check=True)
    with pytest.raises(BackendError, match="backing file"):
        backend.create_from_image(new_id(), 1, ImageSource("sneaky", sneaky, "qcow2", 1))
    with pytest.raises(BackendError, match="disk format 'iso'"):
        backend.create_from_image(new_id(), 1, ImageSource("iso", raw_image.path, "iso", 1))


def test_volume_smaller_than_its_image_is_refused(backend: FileBackend, tmp_path: Path) -> None:
    big = tmp_path / "big"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(big), str(GiB + MiB)],
                   check=True)
    volume = new_id()
    with pytest.raises(BackendError, match="2 GiB or more needed"):
        backend.create_from_image(volume, 1, ImageSource("big", big, "raw", GiB + MiB))
    assert not backend.exists(volume)
    assert not [p for p in backend.directory.iterdir() if ".part." in p.name]


def test_snapshot_clone_and_delete_snapshot_rebases_the_clone(
        backend: FileBackend, raw_image: ImageSource, tmp_path: Path) -> None:
    volume, snap, clone = new_id(), new_id(), new_id()
    backend.create_from_image(volume, 1, raw_image)
    vpath = backend.volume_path(volume)
    write(vpath, 5 * MiB, pattern(3, MiB), tmp_path)
    backend.create_snapshot(volume, snap)
    spath = backend.snapshot_path(snap)
    # The snapshot holds the volume's own clusters, backed by what the volume is backed by.
    base = info(vpath)["full-backing-filename"]
    assert info(spath)["full-backing-filename"] == base
    assert spath.stat().st_size < 3 * MiB
    write(vpath, 5 * MiB, pattern(4, MiB), tmp_path)  # after the snapshot
    backend.create_from_snapshot(clone, 2, volume, snap)
    cpath = backend.volume_path(clone)
    assert info(cpath)["full-backing-filename"] == str(spath)
    assert info(cpath)["virtual-size"] == 2 * GiB
    assert read(cpath, 5 * MiB, MiB, tmp_path) == pattern(3, MiB)
    assert read(vpath, 5 * MiB, MiB, tmp_path) == pattern(4, MiB)
    write(cpath, 7 * MiB, pattern(5, MiB), tmp_path)
    # A second snapshot, of the clone: its chain is clone-snap -> snap -> base.
    snap2 = new_id()
    backend.create_snapshot(clone, snap2)
    assert info(backend.snapshot_path(snap2))["full-backing-filename"] == str(spath)

    backend.delete_snapshot(volume, snap)
    assert not spath.exists()
    # Both files backed by the snapshot now back onto the image base, and read the same.
    assert info(cpath)["full-backing-filename"] == base
    assert info(backend.snapshot_path(snap2))["full-backing-filename"] == base
    whole = raw_image.path.read_bytes()
    assert read(cpath, 0, 3 * MiB, tmp_path) == whole
    assert read(cpath, 5 * MiB, MiB, tmp_path) == pattern(3, MiB)
    assert read(cpath, 7 * MiB, MiB, tmp_path) == pattern(5, MiB)
    backend.create_from_snapshot(third := new_id(), 2, clone, snap2)
    assert read(backend.volume_path(third), 5 * MiB, 3 * MiB, tmp_path) == \
        pattern(3, MiB) + bytes(MiB) + pattern(5, MiB)
    backend.delete_snapshot(volume, snap)  # idempotent
    with pytest.raises(BackendError, match="no snapshot file"):
        backend.create_from_snapshot(new_id(), 1, volume, snap)


def test_delete_snapshot_without_backing_flattens_the_clones(
        backend: FileBackend, tmp_path: Path) -> None:
    volume, snap, clone = new_id(), new_id(), new_id()
    backend.create_empty(volume, 1)
    write(backend.volume_path(volume), 0, pattern(6, MiB), tmp_path)
    backend.create_snapshot(volume, snap)
    backend.create_from_snapshot(clone, 1, volume, snap)
    backend.delete(volume)
    backend.delete_snapshot(volume, snap)
    cpath = backend.volume_path(clone)
    assert "backing-filename" not in info(cpath)
    assert read(cpath, 0, MiB, tmp_path) == pattern(6, MiB)


def test_volume_from_volume_is_independent_of_its_source(
        backend: FileBackend, raw_image: ImageSource, tmp_path: Path) -> None:
    source, copy = new_id(), new_id()
    backend.create_from_image(source, 1, raw_image)
    write(backend.volume_path(source), 4 * MiB, pattern(7, MiB), tmp_path)
    backend.create_from_volume(copy, 2, source)
    cpath = backend.volume_path(copy)
    assert info(cpath)["virtual-size"] == 2 * GiB
    assert info(cpath)["full-backing-filename"].endswith(f"image-{raw_image.image_id}.raw")
    backend.delete(source)
    backend.delete(source)  # idempotent
    assert not backend.exists(source)
    assert read(cpath, 0, 5 * MiB, tmp_path) == \
        raw_image.path.read_bytes() + bytes(MiB) + pattern(7, MiB)
    with pytest.raises(BackendError, match="smaller than its source"):
        backend.create_from_volume(new_id(), 1, copy)


def test_extend_copy_to_file_and_capacity(backend: FileBackend, raw_image: ImageSource,
                                          tmp_path: Path) -> None:
    volume = new_id()
    backend.create_from_image(volume, 1, raw_image)
    backend.extend(volume, 3)
    assert info(backend.volume_path(volume))["virtual-size"] == 3 * GiB
    backend.extend(volume, 3)  # a retried extend
    with pytest.raises(BackendError, match="would shrink it"):
        backend.extend(volume, 2)
    raw = tmp_path / "upload.raw"
    assert backend.copy_to_file(volume, raw, "raw") == 3 * GiB
    with open(raw, "rb") as fh:
        assert fh.read(3 * MiB) == raw_image.path.read_bytes()
    qcow2 = tmp_path / "upload.qcow2"
    written = backend.copy_to_file(volume, qcow2, "qcow2")
    assert written == qcow2.stat().st_size and written < 10 * MiB
    assert info(qcow2)["format"] == "qcow2" and "backing-filename" not in info(qcow2)
    assert read(qcow2, 0, 3 * MiB, tmp_path) == raw_image.path.read_bytes()
    cap = backend.capacity()
    assert 0 < cap.free_gb <= cap.total_gb


def test_empty_volume_bad_ids_and_missing_volumes(backend: FileBackend, tmp_path: Path) -> None:
    volume = new_id()
    backend.create_empty(volume, 2)
    backend.create_empty(volume, 2)
    assert info(backend.volume_path(volume))["virtual-size"] == 2 * GiB
    assert read(backend.volume_path(volume), 0, MiB, tmp_path) == bytes(MiB)
    with pytest.raises(BackendError, match="not a valid id"):
        backend.create_empty("../../etc/passwd", 1)
    missing = new_id()
    assert not backend.exists(missing)
    backend.delete(missing)  # nothing there: deleted
    for call in (lambda: backend.extend(missing, 2), lambda: backend.connection(missing),
                 lambda: backend.create_snapshot(missing, new_id()),
                 lambda: backend.copy_to_file(missing, tmp_path / "x", "raw")):
        with pytest.raises(BackendError, match="no volume file"):
            call()


def test_concurrent_first_volumes_make_one_base(tmp_path: Path) -> None:
    qcow2 = tmp_path / "img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "64M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 1M", str(qcow2)], check=True,
                   capture_output=True)
    # vmdk is converted (the slow path, where a race would show), not linked.
    vmdk = tmp_path / "img.vmdk"
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", str(qcow2), str(vmdk)], check=True)
    image = ImageSource("img-vmdk", vmdk, "vmdk", vmdk.stat().st_size)
    # Two backends on one directory: as two volume processes would be.
    backends = [FileBackend("a", tmp_path / "v"), FileBackend("b", tmp_path / "v")]
    volumes = [new_id() for _ in range(4)]
    errors: list[BaseException] = []

    def make(i: int) -> None:
        try:
            backends[i % 2].create_from_image(volumes[i], 1, image)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(p.name for p in (tmp_path / "v" / "images").iterdir()
                  if not p.name.startswith(".")) == ["image-img-vmdk.qcow2"]
    for volume in volumes:
        assert read(backends[0].volume_path(volume), 0, MiB, tmp_path) == b"\x5a" * MiB
