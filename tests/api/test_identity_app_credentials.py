"""Application credentials: create, list, show, delete; authentication with one."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from tests.api.test_identity import V3, assert_error
from tests.conftest import Caller


def _url(user_id: str, cred_id: str = "") -> str:
    return f"{V3}/users/{user_id}/application_credentials" + (f"/{cred_id}" if cred_id else "")


def create(api: TestClient, caller: Caller, **fields: object) -> dict:
    r = api.post(_url(caller.user_id), headers=caller.headers,
                 json={"application_credential": {"name": "ci", **fields}})
    assert r.status_code == 201, r.text
    return r.json()["application_credential"]


def app_cred_auth(api: TestClient, ref: dict):
    return api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"], "application_credential": ref}}})


def test_create_authenticate_and_delete(api: TestClient, member: Caller, cloud,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cred = create(api, member, description="for CI")
    secret = cred["secret"]
    assert len(secret) >= 64
    assert cred["project_id"] == member.project_id and cred["unrestricted"] is False
    assert {r["name"] for r in cred["roles"]} == {"member", "reader"}
    assert cred["expires_at"] is None

    shown = api.get(_url(member.user_id, cred["id"]), headers=member.headers).json()
    assert "secret" not in shown["application_credential"]
    listed = api.get(_url(member.user_id), headers=member.headers).json()
    assert [c["id"] for c in listed["application_credentials"]] == [cred["id"]]

    r = app_cred_auth(api, {"id": cred["id"], "secret": secret})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["methods"] == ["application_credential"]
    assert token["project"]["id"] == member.project_id
    assert token["application_credential"] == {"id": cred["id"], "name": "ci",
                                               "restricted": True}
    assert token["catalog"]
    app_token = r.headers["X-Subject-Token"]
    assert api.get("/compute/v2.1/servers", headers={"X-Auth-Token": app_token}).status_code == 200

    by_name = app_cred_auth(api, {"name": "ci", "secret": secret,
                                  "user": {"name": "alice", "domain": {"id": "default"}}})
    assert by_name.status_code == 201, by_name.text
    assert_error(app_cred_auth(api, {"id": cred["id"], "secret": "wrong"}), 401)

    # A restricted credential's token cannot manage credentials.
    assert_error(api.post(_url(member.user_id), headers={"X-Auth-Token": app_token},
                          json={"application_credential": {"name": "more"}}), 403)
    assert_error(api.delete(_url(member.user_id, cred["id"]),
                            headers={"X-Auth-Token": app_token}), 403)
    # Nor be re-scoped into a token without that restriction.
    r = api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {
        "methods": ["token"], "token": {"id": app_token}}}})
    assert_error(r, 401)

    assert api.delete(_url(member.user_id, cred["id"]), headers=member.headers).status_code == 204
    assert_error(app_cred_auth(api, {"id": cred["id"], "secret": secret}), 401)
    r = api.get("/compute/v2.1/servers", headers={"X-Auth-Token": app_token})
    assert r.status_code == 401  # its tokens are revoked
    assert api.get("/compute/v2.1/servers", headers=member.headers).status_code == 200

    assert secret not in caplog.text
    with cloud.db.reader() as s:
        dumped = repr(s.execute(text("SELECT * FROM application_credentials")).all())
        dumped += repr(s.execute(text("SELECT * FROM token_revocations")).all())
    assert secret not in dumped


def test_unrestricted_roles_subset_given_secret_and_expiry(api: TestClient, cloud,
                                                           admin: Caller) -> None:
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cred = create(api, admin, secret="my-own-secret", unrestricted=True,
                  roles=[{"name": "reader"}], expires_at=expires)
    assert cred["secret"] == "my-own-secret"
    assert [r["name"] for r in cred["roles"]] == ["reader"]
    assert cred["expires_at"].startswith(expires[:19])
    r = app_cred_auth(api, {"id": cred["id"], "secret": "my-own-secret"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert [role["name"] for role in token["roles"]] == ["reader"]
    assert token["expires_at"][:19] <= expires[:19]
    app_token = {"X-Auth-Token": r.headers["X-Subject-Token"]}
    # reader only: no admin rights through it
    assert_error(api.get(f"{V3}/services", headers=app_token), 403)
    # unrestricted: it may create another credential
    r = api.post(_url(admin.user_id), headers=app_token,
                 json={"application_credential": {"name": "child"}})
    assert r.status_code == 201, r.text
    # an expired credential no longer authenticates
    cloud.db.run(lambda s: s.execute(text(
        "UPDATE application_credentials SET expires_at = '2001-01-01 00:00:00'")))
    assert_error(app_cred_auth(api, {"id": cred["id"], "secret": "my-own-secret"}), 401)


def test_roles_the_caller_lacks_and_duplicates_are_refused(api: TestClient,
                                                           reader: Caller) -> None:
    r = api.post(_url(reader.user_id), headers=reader.headers,
                 json={"application_credential": {"name": "x", "roles": [{"name": "member"}]}})
    assert_error(r, 404)
    create(api, reader)  # a reader may make one with their own roles
    r = api.post(_url(reader.user_id), headers=reader.headers,
                 json={"application_credential": {"name": "ci"}})
    assert_error(r, 409)


@pytest.mark.parametrize("fields, field", [
    ({"name": ""}, "application_credential/name"),
    ({"name": "x", "unrestricted": "yes"}, "application_credential/unrestricted"),
    ({"name": "x", "expires_at": "tomorrow"}, "application_credential/expires_at"),
    ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "application_credential/expires_at"),
    ({"name": "x", "roles": [{"color": "red"}]}, "application_credential/roles/0"),
    ({"name": "x", "access_rules": [{"path": "/v2.1/servers"}]},
     "application_credential/access_rules"),
])
def test_bad_input_is_400_naming_the_field(api: TestClient, member: Caller, fields: dict,
                                           field: str) -> None:
    r = api.post(_url(member.user_id), headers=member.headers,
                 json={"application_credential": fields})
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]
    assert api.get(_url(member.user_id), headers=member.headers).json()[
        "application_credentials"] == []


def test_a_secret_is_never_echoed_in_an_error(api: TestClient, member: Caller) -> None:
    r = api.post(_url(member.user_id), headers=member.headers,
                 json={"application_credential": {"name": "x", "secret": 12345678}})
    assert_error(r, 400)
    assert "12345678" not in r.text


@pytest.mark.parametrize("who", ["admin", "reader", "other_member"])
def test_only_the_owner_manages_their_credentials(api: TestClient, member: Caller, who: str,
                                                  request: pytest.FixtureRequest) -> None:
    cred = create(api, member)
    caller: Caller = request.getfixturevalue(who)
    h = caller.headers
    assert_error(api.post(_url(member.user_id), headers=h,
                          json={"application_credential": {"name": "theirs"}}), 403)
    if who == "admin":  # an administrator sees and deletes anyone's
        assert api.get(_url(member.user_id, cred["id"]), headers=h).status_code == 200
        assert len(api.get(_url(member.user_id), headers=h).json()[
            "application_credentials"]) == 1
        assert api.delete(_url(member.user_id, cred["id"]), headers=h).status_code == 204
        return
    assert_error(api.get(_url(member.user_id), headers=h), 404)
    assert_error(api.get(_url(member.user_id, cred["id"]), headers=h), 404)
    assert_error(api.delete(_url(member.user_id, cred["id"]), headers=h), 404)
    # Nor through their own user id.
    assert_error(api.get(_url(caller.user_id, cred["id"]), headers=h), 404)
    assert_error(api.delete(_url(caller.user_id, cred["id"]), headers=h), 404)
    assert api.get(_url(member.user_id, cred["id"]), headers=member.headers).status_code == 200


def test_deleting_the_user_deletes_their_credentials(api: TestClient, admin: Caller,
                                                     member: Caller) -> None:
    cred = create(api, member)
    assert api.delete(f"{V3}/users/{member.user_id}", headers=admin.headers).status_code == 204
    assert_error(app_cred_auth(api, {"id": cred["id"], "secret": cred["secret"]}), 401)


def test_a_role_granted_after_the_token_counts(api: TestClient, admin: Caller,
                                               member: Caller) -> None:
    """As Tempest's test_create_application_credential_with_roles: Keystone checks the
    user's assignments, not the roles in the caller's token."""
    role = api.post(f"{V3}/roles", headers=admin.headers, json={"role": {"name": "deployer"}})
    role_id = role.json()["role"]["id"]
    r = api.put(f"{V3}/projects/{member.project_id}/users/{member.user_id}/roles/{role_id}",
                headers=admin.headers)
    assert r.status_code == 204, r.text
    cred = create(api, member, roles=[{"id": role_id}])
    assert [r["name"] for r in cred["roles"]] == ["deployer"]
    r = app_cred_auth(api, {"id": cred["id"], "secret": cred["secret"]})
    assert r.status_code == 201, r.text
    assert [r["id"] for r in r.json()["token"]["roles"]] == [role_id]


@pytest.mark.parametrize("fields, field", [
    ({"name": "x", "secret": "s" * 256}, "application_credential/secret"),
    ({"name": "x", "expires_at": "9999-12-31T23:59:59-14:00"},
     "application_credential/expires_at"),
    ({"name": "x", "expires_at": "2027-13-45T00:00:00"}, "application_credential/expires_at"),
])
def test_edge_values_are_400_not_500(api: TestClient, member: Caller, fields: dict,
                                     field: str) -> None:
    r = api.post(_url(member.user_id), headers=member.headers,
                 json={"application_credential": fields})
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]
    assert "s" * 256 not in r.text


def test_deleting_the_project_deletes_its_credentials(api: TestClient, admin: Caller,
                                                      member: Caller) -> None:
    cred = create(api, member)
    assert api.delete(f"{V3}/projects/{member.project_id}",
                      headers=admin.headers).status_code == 204
    assert_error(app_cred_auth(api, {"id": cred["id"], "secret": cred["secret"]}), 401)
    assert api.get(_url(member.user_id), headers=admin.headers).json()[
        "application_credentials"] == []
