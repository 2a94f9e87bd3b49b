"""Issue 13 (comp-a) server actions through the `openstack` CLI on the fake all-in-one:
rebuild (another image, a new name and properties; the server keeps its id and ports),
pause/unpause, suspend/resume, lock/unlock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, unique, wait_for_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_server(cli: Cli, base_image: dict, base_flavor: dict) -> Iterator[dict]:
    server = cli.json("server", "create", "--flavor", base_flavor["name"],
                      "--image", base_image["name"], "--nic", "none", "--wait",
                      unique("e2e-actions"))
    assert server["status"] == "ACTIVE"
    yield server
    cli.run("server", "unlock", server["id"], check=False)
    cli.run("server", "delete", "--wait", server["id"], check=False)


def test_server_rebuild_with_another_image(cli: Cli, own_server: dict, base_image: dict,
                                           image_file: Path) -> None:
    other = cli.json("image", "create", "--file", str(image_file), "--disk-format", "raw",
                     "--container-format", "bare", unique("e2e-rebuild"))
    name = unique("e2e-rebuilt")
    # --wait prints "Complete" before the server: the answer is read with `show`
    cli.run("server", "rebuild", "--image", other["id"], "--name", name, "--property",
            "role=rebuilt", "--password", "Rebuild-pw-1", "--wait", own_server["id"])
    shown = cli.json("server", "show", own_server["id"])
    assert shown["status"] == "ACTIVE"
    assert shown["name"] == name
    assert other["id"] in str(shown["image"]) and base_image["id"] not in str(shown["image"])
    assert "rebuilt" in str(shown["properties"])
    actions = cli.json("server", "event", "list", own_server["id"])
    assert [a["Action"] for a in actions][:2] == ["rebuild", "create"]


def test_pause_suspend_and_lock(cli: Cli, own_server: dict) -> None:
    sid = own_server["id"]
    cli.run("server", "pause", sid)
    assert wait_for_status(cli, sid, "PAUSED")["OS-EXT-STS:power_state"] in ("Paused", 3)
    cli.run("server", "unpause", sid)
    wait_for_status(cli, sid, "ACTIVE")
    cli.run("server", "suspend", sid)
    assert wait_for_status(cli, sid, "SUSPENDED")["OS-EXT-STS:power_state"] in ("Suspended", 7)
    cli.run("server", "resume", sid)
    wait_for_status(cli, sid, "ACTIVE")
    cli.run("server", "lock", sid)
    assert cli.json("server", "show", sid)["locked"] in (True, "True")
    cli.run("server", "unlock", sid)
    assert cli.json("server", "show", sid)["locked"] in (False, "False")
