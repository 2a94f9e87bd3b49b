"""The image cache (copied once, verified, concurrent first uses wait on one lock), its expiry
(what no instance has used for the maximum age goes) and the qcow2 overlays root disks are."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import subprocess
import threading
import time
import traceback
import uuid
from pathlib import Path

import pytest

from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt import images
from cirrus.virt.libvirt.image_use import USE_FILE, ImagesInUse, record_image_use
from cirrus.virt.libvirt.images import CachedImage, ImageCache, ImageRef
from tests.threads import ThreadErrors, run_threads
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
        except Exception as exc:
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


def test_overlay_creation_does_not_copy_the_image_so_its_cost_does_not_grow_with_it(
        tmp_path: Path) -> None:
    """Copy-on-write: the root disk on a 10 MiB and on a 1 GiB base (real data, not sparse)
    is a qcow2 whose backing file is the base, holds no data of its own (every guest-visible
    byte of the image is read from the base), and takes the same few blocks on disk whatever
    the base's size. That is why its creation time does not grow with the image; the times
    are printed (run with -s), never asserted: the machines are shared, and speed goals
    belong in bench/."""
    allocated, timings = {}, {}
    for name, size in (("10MiB", 10 * MIB), ("1GiB", GIB)):
        base = tmp_path / f"base-{name}.raw"
        with open(base, "wb") as fh:
            block = bytes(range(256)) * 4096  # 1 MiB of non-zero data
            for _ in range(size // MIB):
                fh.write(block)
        base_stat = base.stat()
        runs, sizes = [], set()
        for i in range(5):
            disk = tmp_path / f"disk-{name}-{i}.qcow2"
            started = time.perf_counter()
            images.create_overlay(CachedImage(base, "raw", size), disk, 2 * GIB)
            runs.append(time.perf_counter() - started)
            got = info(disk)
            assert got["format"] == "qcow2"
            assert got["backing-filename"] == str(base.resolve())
            assert got["backing-filename-format"] == "raw"
            assert got["virtual-size"] == 2 * GIB
            extents = json.loads(subprocess.run(
                ["qemu-img", "map", "--output=json", "-U", str(disk)], capture_output=True,
                text=True, check=True).stdout)
            own = [e for e in extents if e["data"] and e["depth"] == 0]
            assert own == [], f"the overlay holds data of its own: {own[:3]}"
            from_base = sum(e["length"] for e in extents if e["data"] and e["depth"] == 1)
            assert from_base == size  # the whole image, read through from the base
            sizes.add(disk.stat().st_blocks * 512)
        assert (base.stat().st_size, base.stat().st_mtime_ns) == (
            base_stat.st_size, base_stat.st_mtime_ns)  # the base is not written to
        allocated[name] = max(sizes)
        timings[name] = sorted(runs)[len(runs) // 2]
        base.unlink()
    assert allocated["1GiB"] == allocated["10MiB"], allocated  # independent of the base
    assert allocated["1GiB"] < MIB, allocated  # metadata only: nothing copied
    ratio = timings["1GiB"] / timings["10MiB"]
    print(f"root disk creation, median of 5: 10 MiB base {timings['10MiB'] * 1000:.1f} ms, "
          f"1 GiB base {timings['1GiB'] * 1000:.1f} ms (ratio {ratio:.2f}); "
          f"{allocated['1GiB']} bytes on disk for either")


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

    run_threads([hold] * 6)
    assert overlaps == []
    assert not lock.exists()


# ---- expiry: the cache inside the default pool (`<instances>/_base`), as a host has it

DAY = 86400.0
HOUR = 3600.0


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    return tmp_path / "instances"


@pytest.fixture
def host_cache(store: Path, pool: Path) -> ImageCache:
    return ImageCache(store, pool / "_base")


def make_old(path: Path, seconds: float) -> None:
    """Make `path` look last used (or written) `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def stored(store: Path, size: int = MIB, disk_format: str = "raw") -> ImageRef:
    """Real (not sparse) data, so the bytes freed are real too."""
    return ImageRef.from_dict(store_image(store, os.urandom(size), disk_format))


def spawn_like(cache: ImageCache, pool: Path, root: ImageRef,
               *boot: ImageRef) -> Path:
    """What LibvirtDriver._spawn does to the cache, in its order: the use record first, then
    the fetches, then the overlay."""
    inst = pool / str(uuid.uuid4())
    inst.mkdir(parents=True)
    record_image_use(inst, [root.id, *(ref.id for ref in boot)])
    base = cache.fetch(root)
    for ref in boot:
        cache.fetch(ref)
    images.create_overlay(base, inst / "disk.qcow2", None)
    return inst


def backing_chain_opens(disk: Path) -> bool:
    """Whether qemu-img can open `disk` and every file it backs onto."""
    return subprocess.run(["qemu-img", "info", "-U", "--backing-chain", str(disk)],
                          capture_output=True, check=False).returncode == 0


def test_an_image_unused_for_longer_than_the_max_age_is_removed(host_cache: ImageCache,
                                                                store: Path, pool: Path) -> None:
    ref = stored(store)
    path = host_cache.fetch(ref).path
    make_old(path, 2 * DAY)
    report = host_cache.expire(DAY, ImagesInUse([pool], host_cache.cache_dir))
    assert not path.exists()
    assert list(report.removed) == [ref.id]
    assert report.bytes_freed >= MIB
    assert leftovers(host_cache) == []  # the image's lock went with it
    assert host_cache.fetch(ref).path.read_bytes() == (store / ref.id).read_bytes()  # again


def test_an_image_in_use_is_kept_however_old_until_its_instance_goes(
        host_cache: ImageCache, store: Path, pool: Path) -> None:
    ref = stored(store)
    inst = spawn_like(host_cache, pool, ref)
    path = host_cache.cache_dir / ref.id
    make_old(path, 1000 * DAY)
    report = host_cache.expire(DAY, ImagesInUse([pool], host_cache.cache_dir))
    assert path.exists() and report.in_use == [ref.id] and report.removed == {}
    assert time.time() - path.stat().st_mtime < HOUR  # its last use is now
    assert backing_chain_opens(inst / "disk.qcow2")
    shutil.rmtree(inst)  # the instance is destroyed
    make_old(path, 2 * DAY)
    report = host_cache.expire(DAY, ImagesInUse([pool], host_cache.cache_dir))
    assert list(report.removed) == [ref.id] and not path.exists()


def test_a_recently_used_image_is_kept_and_a_fetch_renews_its_use(
        host_cache: ImageCache, store: Path, pool: Path) -> None:
    ref = stored(store)
    path = host_cache.fetch(ref).path
    make_old(path, DAY - HOUR)
    report = host_cache.expire(DAY, ImagesInUse([pool], host_cache.cache_dir))
    assert path.exists() and report.recently_used == [ref.id]
    make_old(path, 2 * DAY)
    host_cache.fetch(ref)  # a use: found in the cache, not copied again
    report = host_cache.expire(DAY, ImagesInUse([pool], host_cache.cache_dir))
    assert path.exists() and report.recently_used == [ref.id]


def test_a_kernel_and_ramdisk_in_use_are_kept(host_cache: ImageCache, store: Path,
                                              pool: Path) -> None:
    root, kernel, ramdisk = stored(store), stored(store, disk_format="aki"), stored(
        store, disk_format="ari")
    unused = stored(store)
    spawn_like(host_cache, pool, root, kernel, ramdisk)
    host_cache.fetch(unused)
    for ref in (root, kernel, ramdisk, unused):
        make_old(host_cache.cache_dir / ref.id, 2 * DAY)
    report = host_cache.expire(DAY, ImagesInUse([pool], host_cache.cache_dir))
    assert sorted(report.in_use) == sorted([root.id, kernel.id, ramdisk.id])
    assert list(report.removed) == [unused.id]
    assert sorted(p.name for p in host_cache.cache_dir.iterdir()) == sorted(
        [root.id, kernel.id, ramdisk.id])


def test_instances_in_every_pool_count(host_cache: ImageCache, store: Path, pool: Path,
                                       tmp_path: Path) -> None:
    in_default, in_ssd = stored(store), stored(store)
    spawn_like(host_cache, pool, in_default)
    spawn_like(host_cache, tmp_path / "ssd", in_ssd)
    for ref in (in_default, in_ssd):
        make_old(host_cache.cache_dir / ref.id, 2 * DAY)
    only_default = host_cache.expire(DAY, ImagesInUse([pool], host_cache.cache_dir))
    assert list(only_default.removed) == [in_ssd.id]  # what a host that forgot a pool does
    make_old(host_cache.cache_dir / in_default.id, 2 * DAY)
    both = host_cache.expire(DAY, ImagesInUse([pool, tmp_path / "ssd"], host_cache.cache_dir))
    assert both.in_use == [in_default.id] and both.removed == {}


@pytest.mark.parametrize("record", ["missing", "torn"])
def test_an_instance_without_a_readable_record_is_read_from_its_disk_and_domain(
        host_cache: ImageCache, store: Path, pool: Path, record: str) -> None:
    root, kernel, other = stored(store), stored(store, disk_format="aki"), stored(store)
    inst = spawn_like(host_cache, pool, root, kernel)
    host_cache.fetch(other)
    if record == "missing":
        (inst / USE_FILE).unlink()
    else:
        (inst / USE_FILE).write_text('{"images": ["')
    domains = {inst.name: [str(host_cache.cache_dir / kernel.id), "/boot/elsewhere"]}
    used = ImagesInUse([pool], host_cache.cache_dir, boot_files=lambda u: domains.get(u, []))
    assert used() == {root.id, kernel.id}
    for ref in (root, kernel, other):
        make_old(host_cache.cache_dir / ref.id, 2 * DAY)
    report = host_cache.expire(DAY, used)
    assert sorted(report.in_use) == sorted([root.id, kernel.id])
    assert list(report.removed) == [other.id]


def test_an_unreadable_disk_of_an_instance_without_a_record_stops_the_pass(
        host_cache: ImageCache, store: Path, pool: Path) -> None:
    """When "in use" cannot be known, nothing is removed rather than a guess."""
    ref = stored(store)
    inst = spawn_like(host_cache, pool, ref)
    (inst / USE_FILE).unlink()
    (inst / "disk.qcow2").write_bytes(b"not qcow2 at all")
    make_old(host_cache.cache_dir / ref.id, 2 * DAY)
    with pytest.raises(SpawnError, match="qemu-img info failed"):
        host_cache.expire(DAY, ImagesInUse([pool], host_cache.cache_dir))
    assert (host_cache.cache_dir / ref.id).exists()


@pytest.mark.parametrize("max_age", [0, -1])
def test_expiry_disabled_removes_nothing(host_cache: ImageCache, store: Path, pool: Path,
                                         max_age: float) -> None:
    ref = stored(store)
    path = host_cache.fetch(ref).path
    part = host_cache.cache_dir / f".{ref.id}.part.0123abcd"
    lock = host_cache.cache_dir / f".{ref.id}.lock"
    part.write_bytes(b"x" * 1000)
    lock.touch()
    for f in (path, part, lock):
        make_old(f, 1000 * DAY)
    report = host_cache.expire(max_age, ImagesInUse([pool], host_cache.cache_dir))
    assert report.removed == {} and report.leftovers == {}
    assert path.exists() and part.exists() and lock.exists()


def test_leftovers_older_than_an_hour_go_unless_their_lock_is_held(
        host_cache: ImageCache, store: Path, pool: Path) -> None:
    cache_dir = host_cache.cache_dir
    cache_dir.mkdir(parents=True)
    old_part = cache_dir / ".img-a.part.0123abcd"
    old_converted = cache_dir / ".img-b.part.89abcdef.qcow2"
    stale_lock = cache_dir / ".img-c.lock"
    fresh_part = cache_dir / ".img-d.part.deadbeef"
    held_part = cache_dir / ".img-e.part.feedface"
    for f in (old_part, old_converted, fresh_part, held_part):
        f.write_bytes(os.urandom(64 * 1024))
    stale_lock.touch()
    for f in (old_part, old_converted, stale_lock, held_part):
        make_old(f, 2 * HOUR)
    make_old(fresh_part, HOUR / 2)
    with images.file_lock(cache_dir / ".img-e.lock"):  # a download still going on
        make_old(cache_dir / ".img-e.lock", 2 * HOUR)
        report = host_cache.expire(DAY, ImagesInUse([pool], cache_dir))
        assert held_part.exists() and (cache_dir / ".img-e.lock").exists()
    assert sorted(report.leftovers) == sorted([old_part.name, old_converted.name,
                                               stale_lock.name])
    assert report.bytes_freed >= 2 * 64 * 1024
    assert leftovers(host_cache) == sorted([fresh_part.name, held_part.name])


def test_expiry_does_not_wait_for_an_image_being_fetched(host_cache: ImageCache, store: Path,
                                                         pool: Path) -> None:
    """A held lock means a fetch: the image is in use, and the agent's loop is not held up."""
    ref = stored(store)
    path = host_cache.fetch(ref).path
    make_old(path, 2 * DAY)
    done: list = []
    with images.file_lock(host_cache.cache_dir / f".{ref.id}.lock"):
        errors = ThreadErrors()
        worker = errors.thread(lambda: done.append(
            host_cache.expire(DAY, ImagesInUse([pool], host_cache.cache_dir))), daemon=True)
        worker.join(timeout=60)
        assert not worker.is_alive(), "expiry waited for a held image lock"
    errors.check()
    assert done[0].in_use == [ref.id] and path.exists()


def test_concurrent_spawns_and_expiry_never_leave_an_overlay_without_its_base(
        host_cache: ImageCache, store: Path, pool: Path) -> None:
    """Spawns (record, fetch, overlay, check, destroy) race an expiry that removes any image
    no instance uses at once (max age ~0, so only the use record and the lock protect a
    spawn): every overlay must open with its base, and the base must really go and come
    back meanwhile, or the race was not run."""
    ref = stored(store, 64 * 1024)
    downloads: list = []
    counting_downloads(host_cache, downloads)
    removed, errors = [], []
    stop = threading.Event()

    def expire_all_the_time() -> None:
        while not stop.is_set():
            try:
                removed.extend(host_cache.expire(1e-9, ImagesInUse(
                    [pool], host_cache.cache_dir)).removed)
            except Exception:
                errors.append(traceback.format_exc())

    def spawn_and_destroy(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(16):
            try:
                inst = spawn_like(host_cache, pool, ref)
                if not backing_chain_opens(inst / "disk.qcow2"):
                    errors.append(f"{inst.name}: the overlay's base is gone")
                shutil.rmtree(inst)
            except Exception:
                errors.append(traceback.format_exc())
            time.sleep(rng.uniform(0, 0.03))  # moments with no instance: expiry removes

    expirer = threading.Thread(target=expire_all_the_time)
    spawners = [threading.Thread(target=spawn_and_destroy, args=(i,)) for i in range(2)]
    expirer.start()
    for t in spawners:
        t.start()
    for t in spawners:
        t.join()
    stop.set()
    expirer.join()
    assert errors == [], "\n".join(map(str, errors))
    assert len(removed) >= 1 and len(downloads) >= 2
    assert [p for p in leftovers(host_cache) if ".part." in p] == []
