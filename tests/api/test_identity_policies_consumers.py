"""Keystone v3 policies and OAuth1 consumers: admin only; the consumer secret shown once and
stored hashed."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from tests.api.test_identity_credentials import database_bytes, error
from tests.conftest import Caller

V3 = "/identity/v3"


def test_policy_crud_by_admin(api: TestClient, admin: Caller) -> None:
    r = api.post(f"{V3}/policies", json={"policy": {"blob": "{\"a\": 1}", "type": "json",
                                                    "note": "kept"}}, headers=admin.headers)
    assert r.status_code == 201, r.text
    policy = r.json()["policy"]
    assert policy["blob"] == "{\"a\": 1}" and policy["type"] == "json"
    assert policy["note"] == "kept"
    assert policy["links"]["self"].endswith(f"/identity/v3/policies/{policy['id']}")
    r = api.patch(f"{V3}/policies/{policy['id']}", json={"policy": {"type": "yaml"}},
                  headers=admin.headers)
    assert r.status_code == 200 and r.json()["policy"]["type"] == "yaml"
    shown = api.get(f"{V3}/policies/{policy['id']}", headers=admin.headers).json()["policy"]
    assert (shown["type"], shown["blob"]) == ("yaml", "{\"a\": 1}")
    listed = api.get(f"{V3}/policies", headers=admin.headers).json()
    assert [p["id"] for p in listed["policies"]] == [policy["id"]]
    assert api.get(f"{V3}/policies?type=json", headers=admin.headers).json()["policies"] == []
    assert api.delete(f"{V3}/policies/{policy['id']}", headers=admin.headers).status_code == 204
    error(api.get(f"{V3}/policies/{policy['id']}", headers=admin.headers), 404)


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_policies_and_consumers_are_admin_only(api: TestClient, admin: Caller, request,
                                               who: str) -> None:
    caller: Caller = request.getfixturevalue(who)
    policy = api.post(f"{V3}/policies", json={"policy": {"blob": "b", "type": "t"}},
                      headers=admin.headers).json()["policy"]
    consumer = api.post(f"{V3}/OS-OAUTH1/consumers", json={"consumer": {"description": "d"}},
                        headers=admin.headers).json()["consumer"]
    for kind, key, item in (("policies", "policy", policy),
                            ("OS-OAUTH1/consumers", "consumer", consumer)):
        body = {key: {"blob": "x", "type": "x"} if key == "policy" else {"description": "x"}}
        error(api.get(f"{V3}/{kind}", headers=caller.headers), 403)
        error(api.post(f"{V3}/{kind}", json=body, headers=caller.headers), 403)
        error(api.get(f"{V3}/{kind}/{item['id']}", headers=caller.headers), 403)
        error(api.patch(f"{V3}/{kind}/{item['id']}", json=body, headers=caller.headers), 403)
        error(api.delete(f"{V3}/{kind}/{item['id']}", headers=caller.headers), 403)
    assert api.get(f"{V3}/policies/{policy['id']}", headers=admin.headers).json()[
        "policy"]["type"] == "t"
    assert len(api.get(f"{V3}/OS-OAUTH1/consumers", headers=admin.headers).json()[
        "consumers"]) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({}, "policy"),
    ({"policy": {"type": "t"}}, "blob"),
    ({"policy": {"blob": "b"}}, "type"),
    ({"policy": {"blob": 1, "type": "t"}}, "blob"),
    ({"policy": {"blob": "b", "type": ""}}, "type"),
    ({"policy": "x"}, "policy"),
])
def test_policy_bad_input(api: TestClient, admin: Caller, body: dict, field: str) -> None:
    assert field in error(api.post(f"{V3}/policies", json=body, headers=admin.headers), 400)
    assert api.get(f"{V3}/policies", headers=admin.headers).json()["policies"] == []


def test_policy_update_bad_input_changes_nothing(api: TestClient, admin: Caller) -> None:
    policy = api.post(f"{V3}/policies", json={"policy": {"blob": "b", "type": "t"}},
                      headers=admin.headers).json()["policy"]
    for body, field in (({"policy": {}}, "policy"), ({"policy": {"type": 3}}, "type")):
        assert field in error(api.patch(f"{V3}/policies/{policy['id']}", json=body,
                                        headers=admin.headers), 400)
    assert api.get(f"{V3}/policies/{policy['id']}", headers=admin.headers).json()[
        "policy"]["type"] == "t"
    error(api.patch(f"{V3}/policies/nope", json={"policy": {"type": "u"}},
                    headers=admin.headers), 404)


def test_consumer_crud_secret_shown_once(api: TestClient, cloud, admin: Caller,
                                         caplog) -> None:
    caplog.set_level(logging.DEBUG)
    r = api.post(f"{V3}/OS-OAUTH1/consumers", json={"consumer": {"description": "app"}},
                 headers=admin.headers)
    assert r.status_code == 201, r.text
    consumer = r.json()["consumer"]
    assert set(consumer) == {"id", "description", "secret", "links"}
    assert consumer["links"]["self"].endswith(f"/identity/v3/OS-OAUTH1/consumers/{consumer['id']}")
    shown = api.get(f"{V3}/OS-OAUTH1/consumers/{consumer['id']}",
                    headers=admin.headers).json()["consumer"]
    assert shown == {k: v for k, v in consumer.items() if k != "secret"}
    listed = api.get(f"{V3}/OS-OAUTH1/consumers", headers=admin.headers).json()["consumers"]
    assert listed == [shown]
    # stored hashed: not in the database, not in the log
    assert consumer["secret"].encode() not in database_bytes(cloud)
    assert consumer["secret"] not in caplog.text
    r = api.patch(f"{V3}/OS-OAUTH1/consumers/{consumer['id']}",
                  json={"consumer": {"description": "renamed"}}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["consumer"]["description"] == "renamed"
    assert "secret" not in r.json()["consumer"]
    assert api.delete(f"{V3}/OS-OAUTH1/consumers/{consumer['id']}",
                      headers=admin.headers).status_code == 204
    error(api.get(f"{V3}/OS-OAUTH1/consumers/{consumer['id']}", headers=admin.headers), 404)


def test_consumer_without_description_and_bad_input(api: TestClient, admin: Caller) -> None:
    r = api.post(f"{V3}/OS-OAUTH1/consumers", json={"consumer": {}}, headers=admin.headers)
    assert r.status_code == 201 and r.json()["consumer"]["description"] is None
    consumer_id = r.json()["consumer"]["id"]
    for body, field in (({}, "consumer"), ({"consumer": {"description": 5}}, "description"),
                        ({"consumer": []}, "consumer")):
        assert field in error(api.post(f"{V3}/OS-OAUTH1/consumers", json=body,
                                       headers=admin.headers), 400)
        assert field in error(api.patch(f"{V3}/OS-OAUTH1/consumers/{consumer_id}", json=body,
                                        headers=admin.headers), 400)
    assert len(api.get(f"{V3}/OS-OAUTH1/consumers", headers=admin.headers).json()[
        "consumers"]) == 1
