"""qemu-img on image files: what it says of one (format, backing file, size) and the
conversion to qcow2; the image cache (images.py) and the driver run it through here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cirrus.storage.filestore import QCOW2_HEADER, qcow2_virtual_size
from cirrus.virt.driver import SpawnError

QEMU_IMG_TIMEOUT = 600.0


def qemu_img(*args: str) -> str:
    """Run qemu-img; SpawnError with its message if it fails."""
    try:
        done = subprocess.run(["qemu-img", *args], capture_output=True, text=True,
                              timeout=QEMU_IMG_TIMEOUT, check=False)
    except FileNotFoundError:
        raise SpawnError("qemu-img is not installed on this host (Debian: qemu-utils)") from None
    if done.returncode != 0:
        raise SpawnError(f"qemu-img {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def image_info(path: Path, fmt: str | None = None) -> dict:
    """`qemu-img info` as JSON (`--force-share`: the image may be in use)."""
    args = ["info", "--output=json", "--force-share"]
    if fmt:
        args += ["-f", fmt]
    return json.loads(qemu_img(*args, str(path)))


def check_qcow2(path: Path) -> None:
    """Refuse what claims to be qcow2 but is not, or reaches outside itself."""
    info = image_info(path)
    if info.get("format") != "qcow2":
        raise SpawnError(f"image declared qcow2 is {info.get('format')!r}")
    if info.get("backing-filename") or info.get("format-specific", {}).get("data", {}).get(
            "data-file"):
        raise SpawnError("a qcow2 image with a backing file or external data file is refused")


def convert_to_qcow2(path: Path, qemu_format: str) -> Path:
    """Convert `path` (of `qemu_format`) to qcow2 beside it; returns the new file and removes
    the old one."""
    out = path.with_name(path.name + ".qcow2")
    try:
        qemu_img("convert", "-f", qemu_format, "-O", "qcow2", str(path), str(out))
    except SpawnError:
        out.unlink(missing_ok=True)
        raise
    finally:
        path.unlink(missing_ok=True)
    return out


def virtual_size(path: Path, fmt: str) -> int:
    """What the guest sees: the file's size for raw, the header's size for qcow2."""
    if fmt == "raw":
        return path.stat().st_size
    with open(path, "rb") as fh:
        size = qcow2_virtual_size(fh.read(QCOW2_HEADER))
    if size is None:
        raise SpawnError(f"{path} is not qcow2")
    return size
