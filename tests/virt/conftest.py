"""Fixtures of the libvirt driver tests: an image store with images in it, directories QEMU
can reach, a libvirt connection (skipped when libvirtd is unreachable, failed instead under
CIRRUS_REQUIRE_SERVICES=1) and the test guest of scripts/build-test-guest."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cirrus.config import Settings
from tests.services import missing

REPO = Path(__file__).resolve().parents[2]
LIBVIRT_URI = os.environ.get("CIRRUS_TEST_LIBVIRT_URI", "qemu:///system")


def store_image(store: Path, data: bytes | Path, disk_format: str = "raw",
                properties: dict | None = None, image_id: str | None = None) -> dict:
    """Put an image into the image store directory as the API would; returns the
    `InstanceSpec.image` (as a dict) the conductor sends for it."""
    image_id = image_id or str(uuid.uuid4())
    store.mkdir(parents=True, exist_ok=True)
    target = store / image_id
    if isinstance(data, Path):
        shutil.copyfile(data, target)
    else:
        target.write_bytes(data)
    sha512, md5 = hashlib.sha512(), hashlib.md5(usedforsecurity=False)
    with open(target, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha512.update(chunk)
            md5.update(chunk)
    return {"id": image_id, "disk_format": disk_format, "size": target.stat().st_size,
            "checksum": md5.hexdigest(), "os_hash_algo": "sha512",
            "os_hash_value": sha512.hexdigest(), "properties": dict(properties or {})}


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory QEMU (user libvirt-qemu) can traverse: pytest's tmp_path is under a 0700
    directory, so it is not one."""
    path = Path(tempfile.mkdtemp(prefix="cirrus-virt-test-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def libvirt_settings(reachable_dir: Path) -> Settings:
    return Settings(data_dir=reachable_dir, virt_driver="libvirt", virt_type="qemu",
                    libvirt_uri=LIBVIRT_URI, libvirt_shutdown_timeout=2.0)


@pytest.fixture(scope="session")
def libvirt_available() -> None:
    """libvirt-python importable and libvirtd answering at LIBVIRT_URI."""
    try:
        import libvirt
    except ImportError:
        missing("libvirt-python is not installed (pip install cirrus[libvirt])")
    try:
        conn = libvirt.open(LIBVIRT_URI)
    except libvirt.libvirtError as exc:
        missing(f"libvirtd is not reachable at {LIBVIRT_URI}: {exc.get_error_message()} "
                "(start it: `libvirtd -d; virtlogd -d`)")
    conn.close()


@pytest.fixture(scope="session")
def test_guest() -> tuple[Path, Path]:
    """(kernel, initramfs) of the test guest, built once and cached by the script."""
    script = REPO / "scripts" / "build-test-guest"
    if not script.exists():
        missing("scripts/build-test-guest does not exist")
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=900,
                          check=False)
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2:
        missing(f"scripts/build-test-guest failed: {done.stderr.strip()[-500:]}")
    return Path(lines[0]), Path(lines[1])
