"""Resize (confirm, revert) and shelve/unshelve through the `openstack` CLI, on the fake
all-in-one (comp-b). Each test has a server of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Cli, unique, wait_for_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_server(cli: Cli, base_image: dict, base_flavor: dict) -> Iterator[dict]:
    server = cli.json("server", "create", "--flavor", base_flavor["name"], "--image",
                      base_image["name"], "--nic", "none", "--wait", unique("e2e-move"))
    assert server["status"] == "ACTIVE"
    yield server
    cli.run("server", "delete", "--wait", server["id"], check=False)


@pytest.fixture(scope="module")
def bigger_flavor(cli: Cli, base_flavor: dict) -> dict:
    return cli.json("flavor", "create", "--vcpus", str(base_flavor["vcpus"] + 1),
                    "--ram", str(base_flavor["ram"] * 2), "--disk",
                    str(base_flavor["disk"] + 1), unique("e2e.bigger"))


def test_resize_then_confirm(cli: Cli, own_server: dict, bigger_flavor: dict) -> None:
    sid = own_server["id"]
    cli.run("server", "resize", "--flavor", bigger_flavor["name"], sid)
    resized = wait_for_status(cli, sid, "VERIFY_RESIZE")
    assert bigger_flavor["name"] in str(resized["flavor"])
    cli.run("server", "resize", "confirm", sid)
    confirmed = wait_for_status(cli, sid, "ACTIVE")
    assert bigger_flavor["name"] in str(confirmed["flavor"])
    migrations = cli.json("server", "migration", "list", "--server", sid)
    assert [m["Status"] for m in migrations] == ["confirmed"]


def test_resize_then_revert(cli: Cli, own_server: dict, base_flavor: dict,
                            bigger_flavor: dict) -> None:
    sid = own_server["id"]
    cli.run("server", "resize", "--flavor", bigger_flavor["name"], sid)
    wait_for_status(cli, sid, "VERIFY_RESIZE")
    cli.run("server", "resize", "revert", sid)
    reverted = wait_for_status(cli, sid, "ACTIVE")
    assert base_flavor["name"] in str(reverted["flavor"])
    assert bigger_flavor["name"] not in str(reverted["flavor"])


def test_shelve_then_unshelve(cli: Cli, own_server: dict) -> None:
    sid = own_server["id"]
    cli.run("server", "shelve", sid)
    shelved = wait_for_status(cli, sid, "SHELVED_OFFLOADED")
    assert shelved["OS-EXT-STS:vm_state"] == "shelved_offloaded"
    cli.run("server", "unshelve", sid)
    back = wait_for_status(cli, sid, "ACTIVE")
    assert back["OS-EXT-STS:power_state"] in ("Running", 1)
