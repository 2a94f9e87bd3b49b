"""Self-service password change: only the original password opens it, whoever asks."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.api.test_identity import V3, assert_error, password_auth
from tests.conftest import Caller


def _change(api: TestClient, user_id: str, headers: dict, original: str, new: str):
    return api.post(f"{V3}/users/{user_id}/password", headers=headers,
                    json={"user": {"original_password": original, "password": new}})


@pytest.mark.parametrize("who", ["admin", "reader", "other_member"])
def test_nobody_else_changes_a_password_without_the_original(
        api: TestClient, member: Caller, who: str, request: pytest.FixtureRequest) -> None:
    caller: Caller = request.getfixturevalue(who)
    assert_error(_change(api, member.user_id, caller.headers, "guess", "new-pw-123"), 401)
    # Nothing changed: the old password still works, the member's token still does.
    assert api.post(f"{V3}/auth/tokens", json=password_auth(
        "alice", "pw-alice")).status_code == 201
    assert api.get(f"{V3}/auth/projects", headers=member.headers).status_code == 200


def test_the_owner_changes_it_and_their_application_credential_tokens_go_too(
        api: TestClient, member: Caller) -> None:
    cred = api.post(f"{V3}/users/{member.user_id}/application_credentials",
                    headers=member.headers,
                    json={"application_credential": {"name": "ci"}}).json()
    cred = cred["application_credential"]
    r = api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": cred["id"], "secret": cred["secret"]}}}})
    app_token = {"X-Auth-Token": r.headers["X-Subject-Token"]}
    assert _change(api, member.user_id, {}, "pw-alice", "new-pw-123").status_code == 204
    assert_error(api.get(f"{V3}/auth/projects", headers=member.headers), 401)
    assert_error(api.get(f"{V3}/auth/projects", headers=app_token), 401)
    assert api.post(f"{V3}/auth/tokens", json=password_auth(
        "alice", "new-pw-123")).status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"user": {"password": "x"}}, "original_password"),
    ({"user": {"original_password": "pw-alice", "password": ""}}, "user/password"),
    ({"user": {"original_password": "pw-alice", "password": 5}}, "user/password"),
])
def test_bad_input_is_400_naming_the_field(api: TestClient, member: Caller, body: dict,
                                           field: str) -> None:
    r = api.post(f"{V3}/users/{member.user_id}/password", json=body)
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]
    assert "pw-alice" not in r.text
    assert api.post(f"{V3}/auth/tokens", json=password_auth(
        "alice", "pw-alice")).status_code == 201
