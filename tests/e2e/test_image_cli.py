"""Images through the `openstack` CLI: create from a file, list, show, download, delete, and
share with another project (add project, accept as the member, list, boot)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, Users, unique

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


# ---------------------------------------------------------------- sharing between projects


def _member_of_new_project(cli: Cli, users: Users, role: str = "member") -> tuple[Cli, str]:
    project = unique("e2e-share")
    project_id = cli.json("project", "create", "--domain", "default", project)["id"]
    name, password = unique("e2e-sharer"), "pw-" + uuid.uuid4().hex
    cli.json("user", "create", "--domain", "default", "--project", project,
             "--password", password, name)
    cli.run("role", "add", "--project", project, "--user", name, role)
    return users.add(name, name, password, project), project_id


def test_image_sharing_accept_list_and_boot(cli: Cli, users: Users, image_file: Path,
                                            base_flavor: dict) -> None:
    """The owner shares an image with a project; its member accepts it, lists it and boots
    a server from it; a project it is not shared with sees nothing."""
    shared = cli.json("image", "create", "--file", str(image_file), "--disk-format", "raw",
                      "--container-format", "bare", "--shared", unique("e2e-shared"))
    assert shared["visibility"] == "shared"
    member, member_project = _member_of_new_project(cli, users)
    stranger, _ = _member_of_new_project(cli, users)

    added = cli.json("image", "add", "project", shared["id"], member_project)
    assert added["status"] == "pending"
    assert shared["id"] not in {i["ID"] for i in member.json("image", "list")}
    # Before accepting, the member sees it when it asks for pending images.
    pending = member.json("image", "list", "--member-status", "pending")
    assert shared["id"] in {i["ID"] for i in pending}

    member.run("image", "set", "--accept", shared["id"])
    listed = {i["ID"] for i in member.json("image", "list")}
    assert shared["id"] in listed
    members = cli.json("image", "member", "list", shared["id"])
    assert [(m["Member ID"], m["Status"]) for m in members] == [(member_project, "accepted")]

    server = member.json("server", "create", "--flavor", base_flavor["id"],
                         "--image", shared["id"], "--nic", "none", "--wait",
                         unique("e2e-vm-shared"))
    assert server["status"] == "ACTIVE"
    member.run("server", "delete", "--wait", server["id"])

    assert shared["id"] not in {i["ID"] for i in stranger.json("image", "list")}
    assert stranger.fails("image", "show", shared["id"]).stderr
    assert stranger.fails("server", "create", "--flavor", base_flavor["id"], "--image",
                          shared["id"], "--nic", "none", unique("e2e-vm-no")).stderr

    member.run("image", "set", "--reject", shared["id"])
    assert shared["id"] not in {i["ID"] for i in member.json("image", "list")}
    cli.run("image", "remove", "project", shared["id"], member_project)
    assert member.fails("image", "show", shared["id"]).stderr
