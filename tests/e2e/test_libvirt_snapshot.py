"""createImage on real QEMU guests (TCG): a live and a cold snapshot through the `openstack`
CLI become active qcow2 images without a backing file, and a server booted from the live
one starts its guest. Reuses the module cloud, images and networks of test_libvirt_cli.py
(this module gets its own instances of those module-scoped fixtures)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e import test_libvirt_cli as base
from tests.e2e.conftest import Cli, unique, wait_for_status
from tests.e2e.test_libvirt_cli import Images, LibvirtCloud, Networks, create_server, wait_for_boots

# The module-scoped fixtures of test_libvirt_cli, found by name (this module gets its own).
cloud_root, cloud, images, networks = base.cloud_root, base.cloud, base.images, base.networks

pytestmark = pytest.mark.e2e


def snapshot(cli: Cli, server: str) -> dict:
    """`server image create --wait`, then the image as the image service shows it."""
    created = cli.json("server", "image", "create", "--wait", "--name", unique("snap"), server)
    return cli.json("image", "show", created["id"])


def wait_for_no_task(cli: Cli, server: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    shown: dict = {}
    while time.monotonic() < deadline:
        shown = cli.json("server", "show", server)
        if shown["OS-EXT-STS:task_state"] is None:
            return shown
        time.sleep(0.5)
    raise AssertionError(f"server {server} still in task {shown['OS-EXT-STS:task_state']}")


def qemu_img_info(cli: Cli, image_id: str, where: Path) -> dict:
    path = where / f"{image_id}.qcow2"
    cli.run("image", "save", "--file", str(path), image_id)
    info = subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True,
                          capture_output=True, text=True).stdout
    return json.loads(info)


def test_live_and_cold_snapshots_are_flat_qcow2_and_boot(
        cloud: LibvirtCloud, images: Images, networks: Networks, cloud_root: Path) -> None:
    cli = cloud.cli
    server = create_server(cli, images.plain, images.flavor, networks.static)["id"]
    wait_for_boots(cli, server, 1)

    live = snapshot(cli, server)
    assert live["status"] == "active" and live["disk_format"] == "qcow2"
    props = live["properties"]
    assert props["image_type"] == "snapshot" and props["instance_uuid"] == server
    assert props["kernel_id"] in images.ids  # inherited, so the snapshot boots as its server
    info = qemu_img_info(cli, live["id"], cloud_root)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    assert wait_for_no_task(cli, server)["status"] == "ACTIVE"

    cli.run("server", "stop", server)
    wait_for_status(cli, server, "SHUTOFF", timeout=60)
    cold = snapshot(cli, server)
    assert cold["status"] == "active"
    assert "backing-filename" not in qemu_img_info(cli, cold["id"], cloud_root)
    assert wait_for_no_task(cli, server)["status"] == "SHUTOFF"

    clone = create_server(cli, live["id"], images.flavor, networks.static)["id"]
    wait_for_boots(cli, clone, 1)
    cli.run("server", "delete", "--wait", server, clone)
