"""Images through the `openstack` CLI: create from a file, list, show, download, delete."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, unique

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def image(cli: Cli, image_file: Path) -> dict:
    return cli.json("image", "create", "--file", str(image_file), "--disk-format", "raw",
                    "--container-format", "bare", "--property", "purpose=e2e",
                    unique("e2e-image"))


def test_image_create_from_a_file_is_active_with_checksums(image: dict, image_file: Path) -> None:
    data = image_file.read_bytes()
    assert image["status"] == "active"
    assert image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()


def test_image_list_includes_the_image(cli: Cli, image: dict) -> None:
    listed = {i["ID"]: i for i in cli.json("image", "list")}
    assert listed[image["id"]]["Name"] == image["name"]
    assert listed[image["id"]]["Status"] == "active"


def test_image_show_by_name_and_id(cli: Cli, image: dict, image_file: Path) -> None:
    by_name = cli.json("image", "show", image["name"])
    by_id = cli.json("image", "show", image["id"])
    assert by_name["id"] == by_id["id"] == image["id"]
    assert by_id["disk_format"] == "raw"
    assert by_id["container_format"] == "bare"
    assert by_id["visibility"] in ("private", "shared")
    props = by_id.get("properties") or {}
    assert props["purpose"] == "e2e"
    # OSC shows os_hash_* as properties or top-level fields depending on its version.
    algo = props.get("os_hash_algo") or by_id.get("hash_algo") or by_id.get("os_hash_algo")
    value = props.get("os_hash_value") or by_id.get("hash_value") or by_id.get("os_hash_value")
    assert algo == "sha512"
    assert value == hashlib.sha512(image_file.read_bytes()).hexdigest()


def test_image_save_downloads_the_same_bytes(cli: Cli, image: dict, image_file: Path,
                                             tmp_path: Path) -> None:
    out = tmp_path / "downloaded.raw"
    cli.run("image", "save", "--file", str(out), image["id"])
    assert out.read_bytes() == image_file.read_bytes()


def test_image_delete(cli: Cli, image_file: Path) -> None:
    doomed = cli.json("image", "create", "--file", str(image_file), "--disk-format", "raw",
                      "--container-format", "bare", unique("e2e-doomed"))
    cli.run("image", "delete", doomed["id"])
    assert doomed["id"] not in {i["ID"] for i in cli.json("image", "list")}
    assert cli.fails("image", "show", doomed["id"]).stderr
