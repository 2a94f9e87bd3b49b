"""The `volumes` suite: a volume created from an image on each backend (issue 15).

For each backend (`file`: qcow2 files in a temporary directory on the same filesystem as
the image; `rbd`: the pool `volumes` of the Ceph cluster scripts/ceph starts, as
client.cirrus) and each image (raw, 10 MiB and 1 GiB, every byte written, not sparse):

  first  the first volume made from the image: the backend takes the image in (file: a hard
         link as the image's base, or a qcow2 copy on another filesystem; rbd: `qemu-img
         convert` into image-<id>, a snapshot, protected), then makes the volume;
  next   each of --volumes-repeat more volumes from the same image (file: a qcow2 overlay on
         the base; rbd: a clone of image-<id>@base): what every volume after the first costs.

Every volume is 2 GiB (bigger than the image: grown after the clone). Times are
`VolumeBackend.create_from_image` calls in this process, medians; the volumes, the file
backend's directory and the rbd image cache are removed afterwards. The goal: `next` the same
for both sizes on each backend, and under 0.5 s on rbd. Needs qemu-img; the rbd rows need a
running cluster (`scripts/ceph`), else they say why they were not run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cirrus.storage.volumes.backend import ImageSource, VolumeBackend
from cirrus.storage.volumes.backends.file import FileBackend

MiB = 1024 * 1024
SIZES = {"10 MiB": 10 * MiB, "1 GiB": 1024 * MiB}
VOLUME_GB = 2
GOAL_RBD_SECONDS = 0.5
CEPH_CONF = Path(os.environ.get("CIRRUS_CEPH_DIR", "/var/lib/cirrus-ceph")) / "ceph.conf"


def make_image(directory: Path, size: int) -> ImageSource:
    """A raw image of `size` bytes, every MiB written (distinct bytes per MiB)."""
    path = directory / str(uuid.uuid4())
    with open(path, "wb") as fh:
        for i in range(size // MiB):
            fh.write(bytes([(i % 250) + 1]) * MiB)
    return ImageSource(path.name, path, "raw", size)


def rbd_backend() -> tuple[Any, str | None]:
    """The rbd backend on scripts/ceph's cluster, or (None, why not)."""
    if not CEPH_CONF.exists():
        return None, f"no Ceph cluster ({CEPH_CONF} does not exist; scripts/ceph starts one)"
    try:
        import rados  # noqa: F401
        import rbd  # noqa: F401
    except ImportError as exc:
        return None, f"the rados/rbd bindings are not importable ({exc}; scripts/ceph links them)"
    from cirrus.storage.volumes.backend import BackendError
    from cirrus.storage.volumes.backends.rbd import RbdBackend

    backend = RbdBackend("rbd", pool="volumes", conf=str(CEPH_CONF), user="cirrus",
                         connect_timeout=5)
    try:
        backend.capacity()
    except BackendError as exc:
        return None, str(exc)
    return backend, None


def drop_rbd_image(backend: Any, image_id: str) -> None:
    import rados
    import rbd

    cluster = rados.Rados(conffile=backend.conf, name=f"client.{backend.user}")
    cluster.connect(timeout=10)
    try:
        ioctx = cluster.open_ioctx(backend.pool)
        name = f"image-{image_id}"
        try:
            with rbd.Image(ioctx, name) as image:
                for snap in list(image.list_snaps()):
                    if image.is_protected_snap(snap["name"]):
                        image.unprotect_snap(snap["name"])
                    image.remove_snap(snap["name"])
            rbd.RBD().remove(ioctx, name)
        except rbd.ImageNotFound:
            pass
        finally:
            ioctx.close()
    finally:
        cluster.shutdown()


def measure(backend: VolumeBackend, image: ImageSource, repeat: int) -> dict[str, Any]:
    made: list[str] = []
    try:
        volume = str(uuid.uuid4())
        started = time.perf_counter()
        backend.create_from_image(volume, VOLUME_GB, image)
        first = time.perf_counter() - started
        made.append(volume)
        nexts = []
        for _ in range(repeat):
            volume = str(uuid.uuid4())
            started = time.perf_counter()
            backend.create_from_image(volume, VOLUME_GB, image)
            nexts.append(time.perf_counter() - started)
            made.append(volume)
    finally:
        for volume in made:
            backend.delete(volume)
    return {"first_s": first, "next_s": nexts}


def run(repeat: int, say: Callable[[str], None]) -> dict[str, Any]:
    if not shutil.which("qemu-img"):
        return {"skipped": "qemu-img is not installed (Debian: qemu-utils)"}
    runs: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="cirrus-bench-volumes-") as tmp:
        work = Path(tmp)
        (work / "store").mkdir()
        images = {}
        for label, size in SIZES.items():
            say(f"volumes: writing a {label} raw image")
            images[label] = make_image(work / "store", size)
        backends: dict[str, Any] = {"file": FileBackend("file", work / "volumes")}
        ceph, why = rbd_backend()
        if ceph is None:
            skipped["rbd"] = why or "no Ceph"
            say(f"volumes: rbd NOT RUN: {why}")
        else:
            backends["rbd"] = ceph
        for kind, backend in backends.items():
            for label, image in images.items():
                say(f"volumes: {kind}, {label} image, 1 + {repeat} volumes")
                try:
                    runs[f"{kind} {label}"] = measure(backend, image, repeat)
                finally:
                    if kind == "rbd":
                        drop_rbd_image(backend, image.image_id)
        if ceph is not None:
            ceph.close()
    med = statistics.median
    results: dict[str, float] = {}
    for key, r in runs.items():
        results[f"{key} first_s"] = r["first_s"]
        results[f"{key} next_s"] = med(r["next_s"])
    for kind in backends:
        small, big = results.get(f"{kind} 10 MiB next_s"), results.get(f"{kind} 1 GiB next_s")
        if small and big:
            results[f"{kind} ratio"] = big / small
    meets = None
    if "rbd 1 GiB next_s" in results:
        meets = results["rbd 1 GiB next_s"] < GOAL_RBD_SECONDS
    return {"results": results, "runs": runs, "repeat": repeat, "skipped_backends": skipped,
            "meets_goal": meets}


def table(outcome: dict, markdown: bool) -> str:
    r, runs = outcome["results"], outcome["runs"]
    rows = []
    for key, run in runs.items():
        rows.append((f"{key} image: first volume (image taken in)",
                     f"{1000 * run['first_s']:.0f} ms", ""))
        rows.append((f"{key} image: each next volume", f"{1000 * r[f'{key} next_s']:.0f} ms",
                     ", ".join(f"{1000 * v:.0f}" for v in run["next_s"])))
    for kind in ("file", "rbd"):
        if f"{kind} ratio" in r:
            rows.append((f"{kind}: next volume, 1 GiB / 10 MiB image (goal ~1)",
                         f"{r[f'{kind} ratio']:.2f}", ""))
    for kind, why in outcome.get("skipped_backends", {}).items():
        rows.append((f"{kind}: NOT RUN", "", why))
    if outcome.get("meets_goal") is not None:
        rows.append((f"goal: a volume from a 1 GiB image < {GOAL_RBD_SECONDS} s on rbd", "",
                     "meets the goal" if outcome["meets_goal"] else "MISSES the goal"))
    if markdown:
        lines = ["| | median | runs (ms) |", "|---|---:|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        return "\n".join(lines)
    width = max(len(a) for a, _, _ in rows)
    return "\n".join(f"{a:<{width}}  {b:>10}  {c}" for a, b, c in rows)


if __name__ == "__main__":
    import sys

    outcome = run(int(sys.argv[1]) if len(sys.argv) > 1 else 5, print)
    if "results" in outcome:
        print(table(outcome, "--markdown" in sys.argv))
    else:
        print(outcome)
