"""Identity through the `openstack` CLI: tokens and the catalog."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e


def test_token_issue(cli: Cli) -> None:
    token = cli.json("token", "issue")
    assert token["id"]
    assert token["project_id"]
    assert token["user_id"]
    assert token["expires"]


def test_catalog_lists_identity_compute_and_image(cli: Cli) -> None:
    services = {entry["Type"] for entry in cli.json("catalog", "list")}
    assert {"identity", "compute", "image"} <= services


def test_project_and_user_list_show_the_admin(cli: Cli) -> None:
    assert "admin" in {p["Name"] for p in cli.json("project", "list")}
    assert "admin" in {u["Name"] for u in cli.json("user", "list")}
    assert {"admin", "member", "reader"} <= {r["Name"] for r in cli.json("role", "list")}
