"""Keystone v3 credentials and EC2 credentials: CRUD, who may do what, bad input, and the
blob never in clear in the database or the log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import Caller

V3 = "/identity/v3"
KEYS = {"id", "user_id", "project_id", "type", "blob", "links"}


def blob(access: str = "AKIAEXAMPLE", secret: str = "s3cr3t-value") -> str:
    return json.dumps({"access": access, "secret": secret})


def create(api: TestClient, caller: Caller, **fields: object):
    body = {"user_id": caller.user_id, "project_id": caller.project_id, "type": "cert",
            "blob": "certificate-data", **fields}
    return api.post(f"{V3}/credentials", json={"credential": body}, headers=caller.headers)


def error(r, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == status
    return r.json()["error"]["message"]


def test_crud_by_admin_for_another_user(api: TestClient, admin: Caller, member: Caller) -> None:
    r = create(api, admin, user_id=member.user_id, project_id=member.project_id, type="ec2",
               blob=blob())
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    assert set(cred) == KEYS
    assert cred["user_id"] == member.user_id and cred["type"] == "ec2"
    assert json.loads(cred["blob"]) == {"access": "AKIAEXAMPLE", "secret": "s3cr3t-value"}
    assert cred["links"]["self"].endswith(f"/identity/v3/credentials/{cred['id']}")
    # Keystone: an ec2 credential's id is the SHA-256 of its access key
    import hashlib
    assert cred["id"] == hashlib.sha256(b"AKIAEXAMPLE").hexdigest()

    r = api.patch(f"{V3}/credentials/{cred['id']}",
                  json={"credential": {"blob": blob("NEWACCESS", "new-secret")}},
                  headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["credential"]["id"] == cred["id"]
    assert json.loads(r.json()["credential"]["blob"])["secret"] == "new-secret"
    shown = api.get(f"{V3}/credentials/{cred['id']}", headers=admin.headers).json()
    assert json.loads(shown["credential"]["blob"])["access"] == "NEWACCESS"

    listed = api.get(f"{V3}/credentials", headers=admin.headers).json()["credentials"]
    assert cred["id"] in [c["id"] for c in listed]
    assert api.get(f"{V3}/credentials?type=cert", headers=admin.headers).json()[
        "credentials"] == []
    assert api.delete(f"{V3}/credentials/{cred['id']}", headers=admin.headers).status_code == 204
    error(api.get(f"{V3}/credentials/{cred['id']}", headers=admin.headers), 404)


@pytest.mark.parametrize("who", ["member", "reader"])
def test_users_manage_their_own_credentials(api: TestClient, request, who: str,
                                            other_member: Caller) -> None:
    caller: Caller = request.getfixturevalue(who)
    mine = create(api, caller).json()["credential"]
    theirs = create(api, other_member).json()["credential"]
    listed = api.get(f"{V3}/credentials", headers=caller.headers).json()["credentials"]
    assert [c["id"] for c in listed] == [mine["id"]]
    # someone else's credential does not exist for them
    for method in ("get", "delete"):
        error(getattr(api, method)(f"{V3}/credentials/{theirs['id']}", headers=caller.headers),
              404)
    error(api.patch(f"{V3}/credentials/{theirs['id']}", json={"credential": {"blob": "x"}},
                    headers=caller.headers), 404)
    assert api.get(f"{V3}/credentials?user_id={other_member.user_id}",
                   headers=caller.headers).json()["credentials"] == []
    # nor may they make one for someone else, or hand theirs over
    error(create(api, caller, user_id=other_member.user_id), 403)
    error(api.patch(f"{V3}/credentials/{mine['id']}",
                    json={"credential": {"user_id": other_member.user_id}},
                    headers=caller.headers), 403)
    r = api.patch(f"{V3}/credentials/{mine['id']}", json={"credential": {"blob": "renewed"}},
                  headers=caller.headers)
    assert r.status_code == 200 and r.json()["credential"]["blob"] == "renewed"
    assert api.delete(f"{V3}/credentials/{mine['id']}", headers=caller.headers).status_code == 204
    # the other one is untouched
    shown = api.get(f"{V3}/credentials/{theirs['id']}", headers=other_member.headers)
    assert shown.status_code == 200 and shown.json()["credential"]["blob"] == "certificate-data"


@pytest.mark.parametrize(("fields", "field"), [
    ({"blob": 5}, "blob"),
    ({"blob": ""}, "blob"),
    ({"type": ""}, "type"),
    ({"user_id": None}, "user_id"),
    ({"project_id": "bad id!"}, "project_id"),
    ({"project_id": "0" * 32}, "project_id"),
    ({"type": "ec2", "blob": "not json"}, "blob"),
    ({"type": "ec2", "blob": "{\"secret\": \"x\"}"}, "blob"),
    ({"type": "ec2", "project_id": None, "blob": "{\"access\": \"a\"}"}, "project_id"),
])
def test_bad_input_is_400_naming_the_field(api: TestClient, admin: Caller, fields: dict,
                                           field: str) -> None:
    message = error(create(api, admin, **fields), 400)
    assert field in message
    assert api.get(f"{V3}/credentials", headers=admin.headers).json()["credentials"] == []


def test_missing_fields_and_unknown_user(api: TestClient, admin: Caller) -> None:
    r = api.post(f"{V3}/credentials", json={"credential": {"type": "x", "user_id": "u"}},
                 headers=admin.headers)
    assert "blob" in error(r, 400)
    assert "user_id" in error(create(api, admin, user_id="f" * 32), 400)
    assert "credential" in error(api.post(f"{V3}/credentials", json={}, headers=admin.headers),
                                 400)
    assert "credential" in error(api.patch(f"{V3}/credentials/x", json={"credential": {}},
                                           headers=admin.headers), 400)


def test_a_400_never_echoes_the_blob(api: TestClient, admin: Caller) -> None:
    r = create(api, admin, blob=["the-secret-blob-value"])
    assert "the-secret-blob-value" not in r.text and r.status_code == 400


def test_duplicate_ec2_access_is_409(api: TestClient, admin: Caller) -> None:
    assert create(api, admin, type="ec2", blob=blob()).status_code == 201
    error(create(api, admin, type="ec2", blob=blob()), 409)


def test_deleting_the_user_deletes_their_credentials(api: TestClient, admin: Caller) -> None:
    user = api.post(f"{V3}/users", json={"user": {"name": "carol", "password": "pw"}},
                    headers=admin.headers).json()["user"]
    cred = create(api, admin, user_id=user["id"], project_id=None).json()["credential"]
    assert api.delete(f"{V3}/users/{user['id']}", headers=admin.headers).status_code == 204
    error(api.get(f"{V3}/credentials/{cred['id']}", headers=admin.headers), 404)


# ---------------------------------------------------------------- EC2


def ec2_url(user_id: str, access: str = "") -> str:
    return f"{V3}/users/{user_id}/credentials/OS-EC2" + (f"/{access}" if access else "")


@pytest.mark.parametrize("who", ["admin", "member", "reader"])
def test_ec2_create_list_show_delete_own(api: TestClient, request, who: str) -> None:
    caller: Caller = request.getfixturevalue(who)
    r = api.post(ec2_url(caller.user_id), json={"tenant_id": caller.project_id},
                 headers=caller.headers)
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    assert set(cred) == {"user_id", "tenant_id", "access", "secret", "trust_id", "links"}
    assert cred["user_id"] == caller.user_id and cred["tenant_id"] == caller.project_id
    assert cred["access"] and cred["secret"] and cred["trust_id"] is None
    assert cred["links"]["self"].endswith(ec2_url(caller.user_id, cred["access"]))
    listed = api.get(ec2_url(caller.user_id), headers=caller.headers).json()["credentials"]
    assert [c["access"] for c in listed] == [cred["access"]]
    shown = api.get(ec2_url(caller.user_id, cred["access"]), headers=caller.headers).json()
    assert shown["credential"]["secret"] == cred["secret"]
    # the same credential, seen through /v3/credentials
    generic = api.get(f"{V3}/credentials?type=ec2", headers=caller.headers).json()
    assert json.loads(generic["credentials"][0]["blob"])["access"] == cred["access"]
    assert api.delete(ec2_url(caller.user_id, cred["access"]),
                      headers=caller.headers).status_code == 204
    error(api.get(ec2_url(caller.user_id, cred["access"]), headers=caller.headers), 404)


def test_ec2_of_another_user_is_403_except_for_an_admin(api: TestClient, admin: Caller,
                                                        member: Caller, reader: Caller,
                                                        other_member: Caller) -> None:
    cred = api.post(ec2_url(member.user_id), json={"tenant_id": member.project_id},
                    headers=member.headers).json()["credential"]
    for caller in (reader, other_member):
        error(api.post(ec2_url(member.user_id), json={"tenant_id": member.project_id},
                       headers=caller.headers), 403)
        error(api.get(ec2_url(member.user_id), headers=caller.headers), 403)
        error(api.get(ec2_url(member.user_id, cred["access"]), headers=caller.headers), 403)
        error(api.delete(ec2_url(member.user_id, cred["access"]), headers=caller.headers), 403)
    # under another user's URL the access key does not exist
    error(api.get(ec2_url(other_member.user_id, cred["access"]),
                  headers=other_member.headers), 404)
    assert api.get(ec2_url(member.user_id, cred["access"]),
                   headers=admin.headers).status_code == 200
    assert api.delete(ec2_url(member.user_id, cred["access"]),
                      headers=admin.headers).status_code == 204


@pytest.mark.parametrize(("body", "field", "status"), [
    ({}, "tenant_id", 400),
    ({"tenant_id": 5}, "tenant_id", 400),
    ({"tenant_id": "bad id!"}, "tenant_id", 400),
    ({"tenant_id": "0" * 32}, "project", 404),
])
def test_ec2_bad_input(api: TestClient, member: Caller, body: dict, field: str,
                       status: int) -> None:
    assert field in error(api.post(ec2_url(member.user_id), json=body, headers=member.headers),
                          status)
    assert api.get(ec2_url(member.user_id), headers=member.headers).json()["credentials"] == []


# ---------------------------------------------------------------- secrets at rest


def database_bytes(cloud) -> bytes:
    """Every row of every table, and the database files themselves when it is SQLite."""
    from sqlalchemy import text

    from cirrus.db.models import Base

    dump = []
    with cloud.db.reader() as s:
        for table in Base.metadata.sorted_tables:
            dump += [repr(tuple(row)) for row in s.execute(text(f"SELECT * FROM {table.name}"))]
    raw = "\n".join(dump).encode()
    url = cloud.settings.effective_database_url
    if url.startswith("sqlite:///"):
        db_file = Path(url.removeprefix("sqlite:///"))
        raw += b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    return raw


def test_blobs_and_ec2_secrets_are_never_in_clear_in_the_database_or_log(
        api: TestClient, cloud, admin: Caller, member: Caller, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret_blob = "blob-secret-7d1f0c2e9a"
    r = create(api, member, blob=secret_blob)
    assert r.status_code == 201
    ec2 = api.post(ec2_url(member.user_id), json={"tenant_id": member.project_id},
                   headers=member.headers).json()["credential"]
    api.patch(f"{V3}/credentials/{r.json()['credential']['id']}",
              json={"credential": {"blob": secret_blob + "-v2"}}, headers=member.headers)
    raw = database_bytes(cloud)
    for secret in (secret_blob, ec2["secret"]):
        assert secret.encode() not in raw
        assert secret not in caplog.text
    # the key is outside the database, in a 0600 file
    key = Path(cloud.settings.data_dir) / "keys" / "credentials.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_text().splitlines()[-1].encode() not in raw
