"""Identity through the `openstack` CLI: tokens, the catalog, application credentials."""

from __future__ import annotations

import pytest
import yaml

from tests.e2e.conftest import Cli, Users, unique

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


def test_application_credential_lists_servers(cli: Cli, users: Users) -> None:
    """`openstack application credential create`, then a clouds.yaml entry with
    `auth_type: v3applicationcredential` that lists servers; deleting it locks it out."""
    project, user = unique("appcred-p"), unique("appcred-u")
    cli.run("project", "create", project)
    cli.run("user", "create", "--password", "pw-" + user, user)
    cli.run("role", "add", "--project", project, "--user", user, "member")
    owner = users.add(user, user, "pw-" + user, project)

    cred = owner.json("application", "credential", "create", "ci", "--role", "member",
                      "--description", "for CI")
    assert cred["Secret"] and cred["Unrestricted"] is False
    assert [c["ID"] for c in owner.json("application", "credential", "list")] == [cred["ID"]]

    doc = yaml.safe_load(cli.clouds_yaml.read_text())
    entry = {k: v for k, v in doc["clouds"]["cirrus"].items() if k != "auth"}
    entry["auth_type"] = "v3applicationcredential"
    entry["auth"] = {"auth_url": doc["clouds"]["cirrus"]["auth"]["auth_url"],
                     "application_credential_id": cred["ID"],
                     "application_credential_secret": cred["Secret"]}
    doc["clouds"]["appcred"] = entry
    cli.clouds_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
    as_cred = cli.as_cloud("appcred")

    assert as_cred.json("server", "list") == []
    token = as_cred.json("token", "issue")
    assert token["project_id"] == cli.json("project", "show", project)["id"]
    # A restricted credential cannot make another one.
    assert as_cred.fails("application", "credential", "create", "more").returncode != 0

    owner.run("application", "credential", "delete", "ci")
    assert as_cred.fails("server", "list").returncode != 0


def test_catalog_changes_show_in_new_tokens(cli: Cli) -> None:
    """`openstack region/service/endpoint create`: the next token's catalog has them."""
    region, kind = unique("region"), unique("dns")
    cli.run("region", "create", "--parent-region", "RegionOne", region)
    service = cli.json("service", "create", "--name", "designate", kind)
    endpoint = cli.json("endpoint", "create", "--region", region, service["id"], "public",
                        "http://dns.example:9001")
    assert endpoint["enabled"] is True and endpoint["region"] == region
    shown = cli.json("catalog", "show", kind)
    assert "http://dns.example:9001" in str(shown["endpoints"])
    cli.run("endpoint", "set", "--disable", endpoint["id"])
    cli.run("service", "delete", service["id"])
    assert kind not in {entry["Type"] for entry in cli.json("catalog", "list")}
    cli.run("region", "delete", region)
    assert region not in {r["Region"] for r in cli.json("region", "list")}
