"""Compute through the `openstack` CLI: flavors, keypairs and a server's whole life.

Each test stands alone (any one may run by itself, in any order): those that only read
share the module's server; those that change a server's state (stop, start, delete) get one
of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import NOT_FOUND, Cli, unique, wait_for_status

pytestmark = pytest.mark.e2e


def test_flavor_create_and_show(cli: Cli) -> None:
    name = unique("e2e.small")
    created = cli.json("flavor", "create", "--vcpus", "2", "--ram", "512", "--disk", "5",
                       "--property", "hw:cpu_policy=shared", name)
    assert (created["name"], created["vcpus"], created["ram"], created["disk"]) == (name, 2, 512, 5)
    shown = cli.json("flavor", "show", name)
    assert shown["id"] == created["id"]
    assert name in {f["Name"] for f in cli.json("flavor", "list")}


def test_keypair_create_generates_a_private_key(cli: Cli, tmp_path: Path) -> None:
    name = unique("e2e-key")
    key_file = tmp_path / "id_e2e"
    created = cli.json("keypair", "create", "--private-key", str(key_file), name)
    assert created["name"] == name
    assert created["fingerprint"]
    assert "PRIVATE KEY" in key_file.read_text()
    assert name in {k["Name"] for k in cli.json("keypair", "list")}
    cli.run("keypair", "delete", name)
    assert name not in {k["Name"] for k in cli.json("keypair", "list")}


def test_keypair_import_of_a_public_key(cli: Cli, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    pub_file = tmp_path / "id.pub"
    pub_file.write_bytes(public + b" e2e@cirrus\n")
    name = unique("e2e-imported")
    created = cli.json("keypair", "create", "--public-key", str(pub_file), name)
    assert created["name"] == name
    shown = cli.json("keypair", "show", name)
    assert shown["fingerprint"] == created["fingerprint"]
    assert cli.run("keypair", "show", "--public-key", name).stdout.startswith("ssh-ed25519 ")


@pytest.fixture(scope="module")
def keypair(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> str:
    name = unique("e2e-server-key")
    cli.json("keypair", "create", "--private-key",
             str(tmp_path_factory.mktemp("keys") / "id"), name)
    return name


def create_server(cli: Cli, base_image: dict, base_flavor: dict, keypair: str) -> dict:
    return cli.json("server", "create", "--flavor", base_flavor["name"],
                    "--image", base_image["name"], "--nic", "none", "--key-name", keypair,
                    "--wait", unique("e2e-vm"))


@pytest.fixture(scope="module")
def server(cli: Cli, base_image: dict, base_flavor: dict, keypair: str) -> Iterator[dict]:
    """The module's server, ACTIVE: tests that use it leave it ACTIVE (reboots at most)."""
    server = create_server(cli, base_image, base_flavor, keypair)
    yield server
    cli.run("server", "delete", "--wait", server["id"], check=False)


@pytest.fixture
def own_server(cli: Cli, base_image: dict, base_flavor: dict, keypair: str) -> Iterator[dict]:
    """A server of the test's own, ACTIVE, for a test that changes its state."""
    server = create_server(cli, base_image, base_flavor, keypair)
    assert server["status"] == "ACTIVE"
    yield server
    cli.run("server", "delete", "--wait", server["id"], check=False)


def test_server_create_wait_ends_active(server: dict, base_image: dict, keypair: str) -> None:
    assert server["status"] == "ACTIVE"
    assert server["id"]
    assert server["key_name"] == keypair
    assert base_image["id"] in str(server["image"])


def test_server_list_includes_it(cli: Cli, server: dict) -> None:
    listed = {s["ID"]: s for s in cli.json("server", "list")}
    assert listed[server["id"]]["Name"] == server["name"]
    assert listed[server["id"]]["Status"] == "ACTIVE"
    named = cli.json("server", "list", "--name", server["name"])
    assert [s["ID"] for s in named] == [server["id"]]


def test_server_show_by_name(cli: Cli, server: dict) -> None:
    shown = cli.json("server", "show", server["name"])
    assert shown["id"] == server["id"]
    assert shown["status"] == "ACTIVE"
    assert shown["OS-EXT-STS:power_state"] in ("Running", 1)


def test_stop_then_start(cli: Cli, own_server: dict) -> None:
    server = own_server
    cli.run("server", "stop", server["id"])
    stopped = wait_for_status(cli, server["id"], "SHUTOFF")
    assert stopped["OS-EXT-STS:power_state"] in ("Shutdown", 4)
    cli.run("server", "start", server["id"])
    started = wait_for_status(cli, server["id"], "ACTIVE")
    assert started["OS-EXT-STS:power_state"] in ("Running", 1)


@pytest.mark.parametrize("kind", ["--soft", "--hard"])
def test_reboot_wait_returns_to_active(cli: Cli, server: dict, kind: str) -> None:
    cli.run("server", "reboot", kind, "--wait", server["id"])
    assert cli.json("server", "show", server["id"])["status"] == "ACTIVE"


def test_console_log_show(cli: Cli, server: dict) -> None:
    out = cli.run("console", "log", "show", server["id"]).stdout
    assert out.strip()
    last = cli.run("console", "log", "show", "--lines", "1", server["id"]).stdout
    assert len(last.strip().splitlines()) == 1


def test_server_delete_wait_removes_it(cli: Cli, own_server: dict) -> None:
    server = own_server
    cli.run("server", "delete", "--wait", server["id"])
    assert server["id"] not in {s["ID"] for s in cli.json("server", "list")}
    failed = cli.fails("server", "show", server["id"])
    assert NOT_FOUND.search(failed.stderr), failed.stderr
