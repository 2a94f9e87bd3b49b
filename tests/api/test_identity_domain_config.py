"""Keystone v3 domain configuration: stored and served back (not acted on), admin only,
Keystone's groups and options; the LDAP password sealed and never shown."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from tests.api.test_identity_credentials import database_bytes, error
from tests.conftest import Caller

V3 = "/identity/v3"
CONFIG = {"identity": {"driver": "ldap"},
          "ldap": {"url": "ldap://myldap.com:389/", "user_tree_dn": "ou=Users,dc=org"}}


@pytest.fixture
def domain(api: TestClient, admin: Caller) -> str:
    r = api.post(f"{V3}/domains", json={"domain": {"name": "configured"}}, headers=admin.headers)
    assert r.status_code == 201, r.text
    return r.json()["domain"]["id"]


def url(domain_id: str, *parts: str) -> str:
    return "/".join([f"{V3}/domains/{domain_id}/config", *parts])


def test_default_config_groups_and_options(api: TestClient, admin: Caller) -> None:
    config = api.get(f"{V3}/domains/config/default", headers=admin.headers).json()["config"]
    assert config["identity"] == {"driver": "sql", "list_limit": None}
    assert "password" not in config["ldap"] and config["ldap"]["url"] == "ldap://localhost"
    group = api.get(f"{V3}/domains/config/ldap/default", headers=admin.headers).json()
    assert group == {"config": {"ldap": config["ldap"]}}
    for option in config["ldap"]:
        r = api.get(f"{V3}/domains/config/ldap/{option}/default", headers=admin.headers)
        assert r.json() == {"config": {option: config["ldap"][option]}}
    error(api.get(f"{V3}/domains/config/nope/default", headers=admin.headers), 404)
    error(api.get(f"{V3}/domains/config/ldap/nope/default", headers=admin.headers), 404)


def test_put_get_patch_delete(api: TestClient, admin: Caller, domain: str) -> None:
    error(api.get(url(domain), headers=admin.headers), 404)
    r = api.put(url(domain), json={"config": CONFIG}, headers=admin.headers)
    assert r.status_code == 201 and r.json() == {"config": CONFIG}
    assert api.get(url(domain), headers=admin.headers).json() == {"config": CONFIG}
    assert api.get(url(domain, "ldap"), headers=admin.headers).json() == {
        "config": {"ldap": CONFIG["ldap"]}}
    assert api.get(url(domain, "ldap", "url"), headers=admin.headers).json() == {
        "config": {"url": "ldap://myldap.com:389/"}}
    # a second PUT replaces it: 200
    r = api.put(url(domain), json={"config": {"identity": {"driver": "sql"}}},
                headers=admin.headers)
    assert r.status_code == 200 and r.json() == {"config": {"identity": {"driver": "sql"}}}
    api.put(url(domain), json={"config": CONFIG}, headers=admin.headers)
    # PATCH the whole, a group, an option: the whole configuration back each time
    r = api.patch(url(domain), json={"config": {"ldap": {"url": "ldap://other/"}}},
                  headers=admin.headers)
    assert r.status_code == 200 and r.json()["config"]["ldap"]["url"] == "ldap://other/"
    r = api.patch(url(domain, "identity"),
                  json={"config": {"identity": {"driver": "d2", "list_limit": 7}}},
                  headers=admin.headers)
    assert r.json()["config"]["identity"] == {"driver": "d2", "list_limit": 7}
    assert r.json()["config"]["ldap"]["user_tree_dn"] == "ou=Users,dc=org"
    r = api.patch(url(domain, "identity", "driver"), json={"config": {"driver": "d3"}},
                  headers=admin.headers)
    assert r.status_code == 200 and r.json()["config"]["identity"]["driver"] == "d3"
    # DELETE an option, a group, the whole
    assert api.delete(url(domain, "identity", "driver"), headers=admin.headers).status_code == 204
    error(api.get(url(domain, "identity", "driver"), headers=admin.headers), 404)
    assert api.delete(url(domain, "identity"), headers=admin.headers).status_code == 204
    error(api.get(url(domain, "identity"), headers=admin.headers), 404)
    error(api.delete(url(domain, "identity"), headers=admin.headers), 404)
    assert api.delete(url(domain), headers=admin.headers).status_code == 204
    error(api.get(url(domain), headers=admin.headers), 404)
    error(api.delete(url(domain), headers=admin.headers), 404)


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_domain_config_is_admin_only(api: TestClient, admin: Caller, domain: str, request,
                                     who: str) -> None:
    caller: Caller = request.getfixturevalue(who)
    api.put(url(domain), json={"config": CONFIG}, headers=admin.headers)
    h = caller.headers
    error(api.get(f"{V3}/domains/config/default", headers=h), 403)
    error(api.get(f"{V3}/domains/config/ldap/default", headers=h), 403)
    error(api.get(f"{V3}/domains/config/ldap/url/default", headers=h), 403)
    error(api.put(url(domain), json={"config": CONFIG}, headers=h), 403)
    for parts, body in (((), {"config": CONFIG}),
                        (("ldap",), {"config": {"ldap": {"url": "x"}}}),
                        (("ldap", "url"), {"config": {"url": "x"}})):
        error(api.get(url(domain, *parts), headers=h), 403)
        error(api.patch(url(domain, *parts), json=body, headers=h), 403)
        error(api.delete(url(domain, *parts), headers=h), 403)
    assert api.get(url(domain), headers=admin.headers).json() == {"config": CONFIG}


@pytest.mark.parametrize(("body", "status", "word"), [
    ({}, 400, "config"),
    ({"config": {}}, 400, "config"),
    ({"config": {"ldap": "x"}}, 400, "ldap"),
    ({"config": {"ldap": {}}}, 400, "ldap"),
    ({"config": {"ldap": {"url": {"nested": 1}}}}, 400, "url"),
    ({"config": {"assignment": {"driver": "sql"}}}, 403, "assignment"),
    ({"config": {"ldap": {"no_such_option": "x"}}}, 403, "no_such_option"),
])
def test_bad_config_is_refused_naming_it(api: TestClient, admin: Caller, domain: str,
                                         body: dict, status: int, word: str) -> None:
    assert word in error(api.put(url(domain), json=body, headers=admin.headers), status)
    error(api.get(url(domain), headers=admin.headers), 404)
    api.put(url(domain), json={"config": CONFIG}, headers=admin.headers)
    assert word in error(api.patch(url(domain), json=body, headers=admin.headers), status)
    assert api.get(url(domain), headers=admin.headers).json() == {"config": CONFIG}


def test_patch_of_a_group_or_option_must_name_only_it(api: TestClient, admin: Caller,
                                                      domain: str) -> None:
    api.put(url(domain), json={"config": CONFIG}, headers=admin.headers)
    assert "config" in error(api.patch(url(domain, "ldap"), json={"config": {
        "identity": {"driver": "x"}}}, headers=admin.headers), 400)
    assert "config" in error(api.patch(url(domain, "ldap", "url"), json={"config": {
        "user": "x"}}, headers=admin.headers), 400)
    # a group or option not configured yet cannot be patched through its own URL
    error(api.patch(url(domain, "ldap", "user"), json={"config": {"user": "x"}},
                    headers=admin.headers), 404)
    assert api.get(url(domain), headers=admin.headers).json() == {"config": CONFIG}
    error(api.put(url("0" * 32), json={"config": CONFIG}, headers=admin.headers), 404)


def test_the_ldap_password_is_sealed_and_never_shown(api: TestClient, cloud, admin: Caller,
                                                     domain: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "ldap-bind-password-5e1c"
    config = {"ldap": {"url": "ldap://x/", "password": secret}}
    r = api.put(url(domain), json={"config": config}, headers=admin.headers)
    assert r.status_code == 201 and r.json() == {"config": {"ldap": {"url": "ldap://x/"}}}
    error(api.get(url(domain, "ldap", "password"), headers=admin.headers), 404)
    assert secret.encode() not in database_bytes(cloud)
    assert secret not in caplog.text
    # a 400 does not echo it either
    r = api.put(url(domain), json={"config": {"ldap": {"password": {"x": secret}}}},
                headers=admin.headers)
    assert r.status_code == 400 and secret not in r.text


def test_deleting_the_domain_deletes_its_config(api: TestClient, admin: Caller,
                                                domain: str) -> None:
    api.put(url(domain), json={"config": CONFIG}, headers=admin.headers)
    api.patch(f"{V3}/domains/{domain}", json={"domain": {"enabled": False}},
              headers=admin.headers)
    assert api.delete(f"{V3}/domains/{domain}", headers=admin.headers).status_code == 204
    error(api.get(url(domain), headers=admin.headers), 404)
