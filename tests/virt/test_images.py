"""The image cache (copied once, verified, concurrent first uses wait on one lock) and the
qcow2 overlays root disks are."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt import images
from cirrus.virt.libvirt.images import CachedImage, ImageCache, ImageRef
from tests.virt.conftest import missing, store_image

MIB = 1024**2
GIB = 1024**3


@pytest.fixture(autouse=True)
def need_qemu_img() -> None:
    if shutil.which("qemu-img") is None:
        missing("qemu-img is not installed (Debian: qemu-utils)")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "images"


@pytest.fixture
def cache(tmp_path: Path, store: Path) -> ImageCache:
    return ImageCache(store, tmp_path / "_base")


def info(path: Path) -> dict:
    return json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)],
                                     capture_output=True, text=True, check=True).stdout)


def leftovers(cache: ImageCache) -> list[str]:
    """Anything in the cache but finished images: part files, lock files."""
    if not cache.cache_dir.exists():
        return []
    return sorted(p.name for p in cache.cache_dir.iterdir() if p.name.startswith("."))


def counting_downloads(cache: ImageCache, calls: list, delay: float = 0.0) -> None:
    real = cache._download

    def download(image: ImageRef, path: Path) -> None:
        calls.append(image.id)
        time.sleep(delay)  # widen the window in which other first uses arrive
        real(image, path)
    cache._download = download


def test_first_use_copies_verifies_and_later_uses_reuse(cache: ImageCache, store: Path) -> None:
    ref = ImageRef.from_dict(store_image(store, b"x" * MIB))
    calls: list = []
    counting_downloads(cache, calls)
    first = cache.fetch(ref)
    second = cache.fetch(ref)
    assert first == second == CachedImage(cache.cache_dir / ref.id, "raw", MIB)
    assert first.path.read_bytes() == b"x" * MIB
    assert calls == [ref.id]
    assert leftovers(cache) == []


def test_concurrent_first_uses_in_threads_copy_once(cache: ImageCache, store: Path) -> None:
    ref = ImageRef.from_dict(store_image(store, b"y" * MIB))
    calls: list = []
    counting_downloads(cache, calls, delay=0.3)
    results, errors = [], []

    def use() -> None:
        try:
            results.append(cache.fetch(ref))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert calls == [ref.id]
    assert len(results) == 8 and len(set(results)) == 1
    assert leftovers(cache) == []


def _fetch_in_process(store: str, cache_dir: str, ref: dict, start: float) -> int:
    """In a child process: wait for the common start, fetch, say whether it copied."""
    cache = ImageCache(Path(store), Path(cache_dir))
    calls: list = []
    counting_downloads(cache, calls, delay=0.3)
    time.sleep(max(0.0, start - time.time()))
    cache.fetch(ImageRef.from_dict(ref))
    return len(calls)


def test_concurrent_first_uses_in_processes_copy_once(cache: ImageCache, store: Path) -> None:
    ref = store_image(store, b"z" * MIB)
    start = time.time() + 1.0
    with multiprocessing.get_context("fork").Pool(4) as pool:
        copies = pool.starmap(_fetch_in_process, [(str(store), str(cache.cache_dir), ref,
                                                   start)] * 4)
    assert sorted(copies) == [0, 0, 0, 1]
    assert leftovers(cache) == []


@pytest.mark.parametrize("field,value", [("os_hash_value", "0" * 128), ("checksum", "0" * 32),
                                         ("size", 5)])
def test_a_copy_that_does_not_verify_is_refused_and_removed(cache: ImageCache, store: Path,
                                                           field: str, value: object) -> None:
    ref = store_image(store, b"q" * MIB)
    ref[field] = value
    with pytest.raises(SpawnError, match="failed verification"):
        cache.fetch(ImageRef.from_dict(ref))
    assert not (cache.cache_dir / ref["id"]).exists()
    assert leftovers(cache) == []


def test_md5_alone_is_enough(cache: ImageCache, store: Path) -> None:
    ref = store_image(store, b"m" * 1000)
    ref["os_hash_value"] = None
    assert cache.fetch(ImageRef.from_dict(ref)).virtual_size == 1000


def test_an_image_without_any_checksum_is_refused(cache: ImageCache, store: Path) -> None:
    ref = store_image(store, b"n" * 1000)
    ref["os_hash_value"] = ref["checksum"] = None
    with pytest.raises(SpawnError, match="no checksum"):
        cache.fetch(ImageRef.from_dict(ref))


def test_image_data_missing_from_the_store_says_image_dir_must_be_shared(
        cache: ImageCache) -> None:
    with pytest.raises(SpawnError, match="image_dir"):
        cache.fetch(ImageRef(id="abc", checksum="0" * 32))


def test_a_bad_image_id_is_refused(cache: ImageCache) -> None:
    with pytest.raises(SpawnError, match="bad image id"):
        cache.fetch(ImageRef(id="../etc/passwd", checksum="0" * 32))


def test_unbootable_formats_are_refused(cache: ImageCache, store: Path) -> None:
    ref = store_image(store, b"iso", disk_format="iso")
    with pytest.raises(SpawnError, match="cannot be a root disk"):
        cache.fetch(ImageRef.from_dict(ref))


def make_qcow2(path: Path, size: str, backing: Path | None = None) -> Path:
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing:
        args += ["-F", "raw", "-b", str(backing)]
    subprocess.run([*args, str(path), size], check=True)
    return path


def test_qcow2_images_stay_qcow2(cache: ImageCache, store: Path, tmp_path: Path) -> None:
    ref = store_image(store, make_qcow2(tmp_path / "src.qcow2", "64M"), disk_format="qcow2")
    cached = cache.fetch(ImageRef.from_dict(ref))
    assert (cached.fmt, cached.virtual_size) == ("qcow2", 64 * MIB)
    assert info(cached.path)["format"] == "qcow2"


def test_a_qcow2_image_with_a_backing_file_is_refused(cache: ImageCache, store: Path,
                                                      tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"s" * 4096)
    ref = store_image(store, make_qcow2(tmp_path / "evil.qcow2", "1M", backing=secret),
                      disk_format="qcow2")
    with pytest.raises(SpawnError, match="backing file"):
        cache.fetch(ImageRef.from_dict(ref))
    assert leftovers(cache) == []


def test_raw_data_declared_qcow2_is_refused(cache: ImageCache, store: Path) -> None:
    ref = store_image(store, b"r" * 4096, disk_format="qcow2")
    with pytest.raises(SpawnError, match="declared qcow2"):
        cache.fetch(ImageRef.from_dict(ref))


def test_vmdk_is_converted_to_qcow2_once(cache: ImageCache, store: Path,
                                         tmp_path: Path) -> None:
    vmdk = tmp_path / "src.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(vmdk), "32M"], check=True)
    ref = store_image(store, vmdk, disk_format="vmdk")
    cached = cache.fetch(ImageRef.from_dict(ref))
    assert cached.fmt == "qcow2" and info(cached.path)["format"] == "qcow2"
    assert cached.virtual_size == 32 * MIB
    assert leftovers(cache) == []


@pytest.mark.parametrize("base_format", ["raw", "qcow2"])
def test_the_root_disk_is_an_overlay_grown_to_the_flavor(tmp_path: Path,
                                                         base_format: str) -> None:
    base = tmp_path / f"base.{base_format}"
    if base_format == "raw":
        base.write_bytes(b"\0" * MIB)
    else:
        make_qcow2(base, "1M")
    disk = tmp_path / "disk.qcow2"
    images.create_overlay(CachedImage(base, base_format, MIB), disk, 2 * GIB)
    got = info(disk)
    assert got["format"] == "qcow2"
    assert got["virtual-size"] == 2 * GIB
    assert got["backing-filename"] == str(base.resolve())
    assert got["backing-filename-format"] == base_format
    assert disk.stat().st_size < MIB  # nothing copied


def test_root_disk_of_size_zero_takes_the_image_size(tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    base.write_bytes(b"\0" * 3 * MIB)
    images.create_overlay(CachedImage(base, "raw", 3 * MIB), tmp_path / "disk.qcow2", None)
    assert info(tmp_path / "disk.qcow2")["virtual-size"] == 3 * MIB


def test_a_root_disk_smaller_than_the_image_is_refused(tmp_path: Path) -> None:
    base = make_qcow2(tmp_path / "base.qcow2", "2G")
    with pytest.raises(SpawnError, match="smaller than the image"):
        images.create_overlay(CachedImage(base, "qcow2", 2 * GIB), tmp_path / "d.qcow2", GIB)
    assert not (tmp_path / "d.qcow2").exists()


def test_overlay_creation_time_does_not_grow_with_the_image(tmp_path: Path) -> None:
    """Copy-on-write: a 10 MiB and a 1 GiB base (real data, not sparse) take about as long.
    Medians are reported (run with -s), never asserted: the machines are shared."""
    timings = {}
    for name, size in (("10MiB", 10 * MIB), ("1GiB", GIB)):
        base = tmp_path / f"base-{name}.raw"
        with open(base, "wb") as fh:
            block = bytes(range(256)) * 4096  # 1 MiB of non-zero data
            for _ in range(size // MIB):
                fh.write(block)
        runs = []
        for i in range(5):
            disk = tmp_path / f"disk-{name}-{i}.qcow2"
            started = time.perf_counter()
            images.create_overlay(CachedImage(base, "raw", size), disk, 2 * GIB)
            runs.append(time.perf_counter() - started)
            assert info(disk)["backing-filename"] == str(base.resolve())
        timings[name] = sorted(runs)[len(runs) // 2]
        base.unlink()
    ratio = timings["1GiB"] / timings["10MiB"]
    print(f"root disk creation, median of 5: 10 MiB base {timings['10MiB'] * 1000:.1f} ms, "
          f"1 GiB base {timings['1GiB'] * 1000:.1f} ms (ratio {ratio:.2f})")


def test_the_lock_is_exclusive_and_leaves_no_file(tmp_path: Path) -> None:
    lock = tmp_path / ".img.lock"
    inside, overlaps = [], []

    def hold() -> None:
        with images.file_lock(lock):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    assert not lock.exists()
