"""qemu-img for the volume backends: run it with an argument list, read what it says of a file,
and read a qcow2 file's backing file name from its header without running anything."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from cirrus.storage.volumes.backend import BackendError, BackendUnavailable

TIMEOUT = 3600.0  # a convert of a large volume on a slow disk
QCOW2_MAGIC = b"QFI\xfb"
# Glance disk formats -> qemu-img's names; anything else is refused.
QEMU_FORMATS = {"raw": "raw", "ami": "raw", "aki": "raw", "ari": "raw", "qcow2": "qcow2",
                "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc", "vhdx": "vhdx"}


def qemu_format(disk_format: str) -> str:
    try:
        return QEMU_FORMATS[disk_format]
    except KeyError:
        raise BackendError(
            f"disk format {disk_format!r} is not supported for volumes "
            f"(supported: {', '.join(sorted(QEMU_FORMATS))})") from None


def run(*args: str, timeout: float = TIMEOUT) -> str:
    """qemu-img ARGS; BackendError with qemu-img's own message when it fails."""
    try:
        done = subprocess.run(["qemu-img", *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise BackendUnavailable(
            "qemu-img is not installed on the volume host (Debian: qemu-utils)") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"qemu-img {args[0]} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise BackendError(f"qemu-img {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def info(path: Path | str, fmt: str | None = None, chain: bool = False) -> Any:
    """`qemu-img info --output=json` (--force-share: the file may be attached to a guest).
    With chain, a list: the file first, then each backing file."""
    args = ["info", "--output=json", "--force-share"]
    if fmt:
        args += ["-f", fmt]
    if chain:
        args.append("--backing-chain")
    return json.loads(run(*args, str(path)))


def backing_file(path: Path) -> str | None:
    """A qcow2 file's backing file name as written in its header (None: none, or not qcow2)."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
            if len(header) < 20 or header[:4] != QCOW2_MAGIC:
                return None
            offset = int.from_bytes(header[8:16], "big")
            size = int.from_bytes(header[16:20], "big")
            if not offset or not size or size > 1023:
                return None
            fh.seek(offset)
            return fh.read(size).decode("utf-8", "replace")
    except FileNotFoundError:
        return None
