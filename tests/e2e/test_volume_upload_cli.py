"""`openstack image create --volume` (os-volume_upload_image) against a real all-in-one
(its default `file` volume backend, real qemu-img): the image is active with the volume's
data, the volume available again."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, unique
from tests.services import require

pytestmark = pytest.mark.e2e


def _wait(cli: Cli, kind: str, name: str, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    shown: dict = {}
    while time.monotonic() < deadline:
        shown = cli.json(kind, "show", name)
        if shown["status"] == status:
            return shown
        if shown["status"] in ("error", "killed"):
            break
        time.sleep(0.5)
    raise AssertionError(f"{kind} {name} is {shown.get('status')}, not {status}")


def test_image_create_from_a_volume(cli: Cli, base_image: dict, image_file: Path,
                                    tmp_path: Path) -> None:
    require(subprocess.run(["which", "qemu-img"], capture_output=True).returncode == 0,
            "qemu-img is not installed (Debian: qemu-utils)")
    volume = cli.json("volume", "create", "--size", "1", "--image", base_image["id"],
                      unique("e2e-upload-src"))
    _wait(cli, "volume", volume["id"], "available")
    name = unique("e2e-from-volume")
    made = cli.json("image", "create", "--volume", volume["id"], "--disk-format", "qcow2",
                    name)
    assert made["image_name"] == name and made["disk_format"] == "qcow2"
    image = _wait(cli, "image", made["image_id"], "active")
    assert image["name"] == name and image["disk_format"] == "qcow2"
    _wait(cli, "volume", volume["id"], "available")
    out = tmp_path / "from-volume.qcow2"
    cli.run("image", "save", "--file", str(out), made["image_id"])
    raw = tmp_path / "from-volume.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(out), str(raw)],
                   check=True, capture_output=True)
    data = image_file.read_bytes()
    with open(raw, "rb") as fh:
        assert fh.read(len(data)) == data
    assert raw.stat().st_size == 1024**3
    cli.run("image", "delete", made["image_id"])
    cli.run("volume", "delete", volume["id"])
