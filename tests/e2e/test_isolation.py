"""Projects are isolated: a member of project B cannot see or delete A's server, and a user
with only the reader role cannot create one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import NOT_FOUND, Cli, Users, unique

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project_b(cli: Cli) -> str:
    name = unique("e2e-project-b")
    cli.json("project", "create", "--domain", "default", "--description", "e2e isolation", name)
    return name


def add_user(cli: Cli, users: Users, project: str, role: str) -> Cli:
    name, password = unique(f"e2e-{role}"), unique("pw")
    cli.json("user", "create", "--domain", "default", "--project", project,
             "--password", password, name)
    cli.run("role", "add", "--project", project, "--user", name, role)
    return users.add(name, name, password, project)


@pytest.fixture(scope="module")
def member_b(cli: Cli, users: Users, project_b: str) -> Cli:
    return add_user(cli, users, project_b, "member")


@pytest.fixture(scope="module")
def reader_b(cli: Cli, users: Users, project_b: str) -> Cli:
    return add_user(cli, users, project_b, "reader")


@pytest.fixture(scope="module")
def server_a(cli: Cli, base_image: dict, base_flavor: dict) -> Iterator[dict]:
    server = cli.json("server", "create", "--flavor", base_flavor["id"],
                      "--image", base_image["id"], "--nic", "none", "--wait",
                      unique("e2e-vm-a"))
    yield server
    cli.run("server", "delete", "--wait", server["id"], check=False)


def test_member_of_b_gets_a_token_scoped_to_b(member_b: Cli, cli: Cli, project_b: str) -> None:
    token = member_b.json("token", "issue")
    assert token["project_id"] == cli.json("project", "show", project_b)["id"]


def test_member_of_b_does_not_see_as_server(member_b: Cli, server_a: dict) -> None:
    assert server_a["id"] not in {s["ID"] for s in member_b.json("server", "list")}
    failed = member_b.fails("server", "show", server_a["id"])
    assert NOT_FOUND.search(failed.stderr), failed.stderr


def test_member_of_b_cannot_delete_as_server(member_b: Cli, cli: Cli, server_a: dict) -> None:
    failed = member_b.fails("server", "delete", server_a["id"])
    assert NOT_FOUND.search(failed.stderr), failed.stderr
    assert cli.json("server", "show", server_a["id"])["status"] == "ACTIVE"


def test_member_of_b_can_create_in_b(member_b: Cli, base_image: dict, base_flavor: dict) -> None:
    server = member_b.json("server", "create", "--flavor", base_flavor["id"],
                           "--image", base_image["id"], "--nic", "none", "--wait",
                           unique("e2e-vm-b"))
    assert server["status"] == "ACTIVE"
    member_b.run("server", "delete", "--wait", server["id"])


def test_reader_cannot_create_a_server(reader_b: Cli, base_image: dict,
                                       base_flavor: dict) -> None:
    name = unique("e2e-ro")
    failed = reader_b.fails("server", "create", "--flavor", base_flavor["id"],
                            "--image", base_image["id"], "--nic", "none", name)
    assert "403" in failed.stderr, failed.stderr
    assert name not in {s["Name"] for s in reader_b.json("server", "list")}


def test_reader_can_list_flavors_and_images(reader_b: Cli, base_flavor: dict,
                                            base_image: dict) -> None:
    assert base_flavor["id"] in {f["ID"] for f in reader_b.json("flavor", "list")}
    assert base_image["id"] in {i["ID"] for i in reader_b.json("image", "list")}
