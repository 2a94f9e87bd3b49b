"""Fixtures for the volume backends: images with known bytes, and a real Ceph cluster.

The rbd tests run against the one-node cluster scripts/ceph starts: a running one is used
as it is; with none running and root, the session starts it with the script (about 20 s
the first time, packages installed with apt-get if missing); without root they skip saying
why (fail under CIRRUS_REQUIRE_SERVICES=1, as in CI). CIRRUS_CEPH_DIR names another cluster
directory made by the script.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cirrus.storage.volumes.backend import ImageSource
from tests.services import missing, require

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
CEPH_DIR = Path(os.environ.get("CIRRUS_CEPH_DIR", "/var/lib/cirrus-ceph"))


def pattern(seed: int, size: int) -> bytes:
    """`size` bytes no other seed gives (not a repeated byte: an offset error shows)."""
    block = bytes((seed * 31 + i * 7) % 251 for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


@pytest.fixture
def qemu_img_tools() -> None:
    require(shutil.which("qemu-img") and shutil.which("qemu-io"),
            "qemu-img and qemu-io are not installed (Debian: qemu-utils)")


# Every id these tests give a volume, snapshot or image: the rbd tests' clean-up removes
# only the pool's images named with one of them, never another user's of the shared pool
# (CI runs the QEMU volume tests beside these).
MADE_IDS: set[str] = set()


def new_id() -> str:
    made = str(uuid.uuid4())
    MADE_IDS.add(made)
    return made


def ours(name: str) -> bool:
    """An RBD image name (volume-<id>, image-<id>) made by these tests."""
    return name.partition("-")[2] in MADE_IDS


@pytest.fixture
def raw_image(tmp_path: Path) -> ImageSource:
    """A 3 MiB raw image: pattern(1) in its first MiB, zeros, pattern(2) in its last MiB."""
    path = tmp_path / "store" / new_id()
    path.parent.mkdir()
    data = pattern(1, MiB) + bytes(MiB) + pattern(2, MiB)
    path.write_bytes(data)
    return ImageSource(image_id=path.name, path=path, disk_format="raw", size=len(data))


def _ceph_answers(conf: Path) -> str | None:
    """None when the cluster behind conf answers as client.cirrus, else why not."""
    if not conf.exists():
        return f"{conf} does not exist"
    try:
        done = subprocess.run(["ceph", "-c", str(conf), "--id", "cirrus", "--connect-timeout",
                               "5", "health"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "the ceph command is not installed"
    except subprocess.TimeoutExpired:
        return "ceph health did not answer within 30 s"
    if done.returncode != 0:
        return f"ceph health failed: {done.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def ceph_conf() -> Path:
    """A healthy Ceph cluster's conf (scripts/ceph's), its bindings importable here."""
    conf = CEPH_DIR / "ceph.conf"
    problem = _ceph_answers(conf)
    if problem and os.geteuid() == 0:
        env = {**os.environ, "CIRRUS_VENV": sys.prefix, "CIRRUS_CEPH_DIR": str(CEPH_DIR)}
        done = subprocess.run([str(ROOT / "scripts" / "ceph")], env=env, capture_output=True,
                              text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"scripts/ceph failed:\n{done.stderr[-3000:]}", pytrace=False)
        problem = _ceph_answers(conf)
    if problem:
        missing(f"Ceph is not running ({problem}); `scripts/ceph` starts a test cluster "
                "(as root)")
    importlib.invalidate_caches()
    try:
        importlib.import_module("rados")
        importlib.import_module("rbd")
    except ImportError as exc:
        missing(f"the rados/rbd bindings do not import in {sys.prefix} ({exc}); "
                "`CIRRUS_VENV=<venv> scripts/ceph` links them")
    return conf


@pytest.fixture
def rbd_backend(ceph_conf: Path) -> Iterator[object]:
    from cirrus.storage.volumes.backends.rbd import RbdBackend

    backend = RbdBackend("ceph", pool="volumes", conf=str(ceph_conf), user="cirrus",
                         secret_uuid="5b4d5a6e-0000-4000-8000-00000000cafe", connect_timeout=10)
    yield backend
    backend.close()
