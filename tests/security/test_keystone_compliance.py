"""Keystone's security compliance options (issue 11, point 5), through the HTTP API.

Settings as Keystone's `[security_compliance]`: failed-login lockout with a duration,
password expiry, complexity regex with its description, password history, minimum password
age, and PCI-DSS first-use change; per-user exemptions (`options`) as Keystone's; the
bootstrap admin exempt so a cloud cannot lock out its own administrator. Every option is off
by default (as in Keystone). The flows Tempest's IdentityV3UsersTest (security_compliance)
and test_password_history_not_enforced_in_admin_reset check are replayed here.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from cirrus.db.models import User, utcnow
from cirrus.runtime import Cloud
from tests.conftest import ADMIN_PASSWORD, Caller

V3 = "/identity/v3"
UNAUTHENTICATED = "The request you have made requires authentication."
REGEX = r"^(?=.*\d)(?=.*[a-zA-Z]).{7,}$"
REGEX_DESCRIPTION = "at least 7 characters, with a letter and a digit"


def login(api: TestClient, user_id: str, password: str):
    return api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {"id": user_id, "password": password}}}}})


def admin_login(api: TestClient, password: str = ADMIN_PASSWORD):
    return api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": password}}}}})


def change(api: TestClient, user_id: str, original: str, new: str):
    return api.post(f"{V3}/users/{user_id}/password",
                    json={"user": {"original_password": original, "password": new}})


def new_user(api: TestClient, admin: Caller, name: str, password: str = "first-pw1",
             **fields: object) -> dict:
    r = api.post(f"{V3}/users", headers=admin.headers,
                 json={"user": {"name": name, "password": password, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["user"]


def error(r, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == status
    return r.json()["error"]["message"]


def set_user(cloud: Cloud, user_id: str, **values: object) -> None:
    """Move a user's clock-dependent fields (as if time had passed)."""
    with cloud.db.writer() as s:
        s.execute(update(User).where(User.id == user_id).values(**values))


def parse(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f")


# ---------------------------------------------------------------- defaults


def test_everything_is_off_by_default(api: TestClient, admin: Caller) -> None:
    user = new_user(api, admin, "plain", "pw")  # no complexity rule
    assert user["password_expires_at"] is None
    for _ in range(8):
        error(login(api, user["id"], "wrong"), 401)
    r = login(api, user["id"], "pw")  # no lockout
    assert r.status_code == 201
    assert r.json()["token"]["user"]["password_expires_at"] is None
    assert change(api, user["id"], "pw", "pw").status_code == 204  # no history
    assert change(api, user["id"], "pw", "pw2").status_code == 204  # no minimum age


# ---------------------------------------------------------------- lockout


@pytest.fixture
def lockout(cloud: Cloud) -> Cloud:
    cloud.settings.lockout_failure_attempts = 2
    cloud.settings.lockout_duration = 1800
    return cloud


def test_failed_logins_lock_the_account_for_the_duration(api: TestClient, admin: Caller,
                                                         lockout: Cloud) -> None:
    user = new_user(api, admin, "target")
    assert login(api, user["id"], "first-pw1").status_code == 201
    for _ in range(2):
        assert error(login(api, user["id"], "bad"), 401) == UNAUTHENTICATED
    # Locked: even the right password is refused, in Keystone's words.
    locked = f"The account is locked for user: {user['id']}."
    assert error(login(api, user["id"], "first-pw1"), 401) == locked
    assert error(change(api, user["id"], "first-pw1", "other-pw1"), 401) == locked
    # By name too.
    r = api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {"methods": ["password"],
                 "password": {"user": {"name": "target", "domain": {"id": "default"},
                                       "password": "first-pw1"}}}}})
    assert error(r, 401) == locked
    # Once lockout_duration has passed since the last failure, the user can log in again,
    # and the count starts afresh.
    set_user(lockout, user["id"], failed_auth_at=utcnow() - dt.timedelta(seconds=1801))
    assert login(api, user["id"], "first-pw1").status_code == 201
    assert error(login(api, user["id"], "bad"), 401) == UNAUTHENTICATED
    assert login(api, user["id"], "first-pw1").status_code == 201


def test_an_expired_lockout_counts_afresh(api: TestClient, admin: Caller,
                                          lockout: Cloud) -> None:
    user = new_user(api, admin, "again")
    for _ in range(2):
        error(login(api, user["id"], "bad"), 401)
    set_user(lockout, user["id"], failed_auth_at=utcnow() - dt.timedelta(seconds=1801))
    assert error(login(api, user["id"], "bad"), 401) == UNAUTHENTICATED  # one of two again
    assert login(api, user["id"], "first-pw1").status_code == 201


def test_a_success_resets_the_count(api: TestClient, admin: Caller, lockout: Cloud) -> None:
    user = new_user(api, admin, "resets")
    error(login(api, user["id"], "bad"), 401)
    assert login(api, user["id"], "first-pw1").status_code == 201
    error(login(api, user["id"], "bad"), 401)
    assert login(api, user["id"], "first-pw1").status_code == 201  # 1 + 1, not 2 in a row


def test_wrong_original_passwords_count_towards_the_lockout(api: TestClient, admin: Caller,
                                                            lockout: Cloud) -> None:
    user = new_user(api, admin, "changer")
    for _ in range(2):
        assert error(change(api, user["id"], "bad", "other-pw1"), 401) == UNAUTHENTICATED
    assert "locked" in error(login(api, user["id"], "first-pw1"), 401)


def test_an_admin_enabling_the_user_lifts_the_lockout(api: TestClient, admin: Caller,
                                                      lockout: Cloud) -> None:
    lockout.settings.lockout_duration = 0  # locked until an admin steps in
    user = new_user(api, admin, "stuck")
    for _ in range(2):
        error(login(api, user["id"], "bad"), 401)
    set_user(lockout, user["id"], failed_auth_at=utcnow() - dt.timedelta(days=365))
    assert "locked" in error(login(api, user["id"], "first-pw1"), 401)
    r = api.patch(f"{V3}/users/{user['id']}", headers=admin.headers,
                  json={"user": {"enabled": True}})
    assert r.status_code == 200
    assert login(api, user["id"], "first-pw1").status_code == 201


def test_the_bootstrap_admin_and_exempt_users_are_never_locked(api: TestClient, admin: Caller,
                                                                lockout: Cloud) -> None:
    shown = api.get(f"{V3}/users/{admin.user_id}", headers=admin.headers).json()["user"]
    assert shown["options"] == {"ignore_lockout_failure_attempts": True,
                                "ignore_password_expiry": True,
                                "ignore_change_password_upon_first_use": True}
    for _ in range(5):
        error(admin_login(api, "wrong"), 401)
    assert admin_login(api).status_code == 201
    exempt = new_user(api, admin, "service-user",
                      options={"ignore_lockout_failure_attempts": True})
    for _ in range(5):
        error(login(api, exempt["id"], "bad"), 401)
    assert login(api, exempt["id"], "first-pw1").status_code == 201


def test_cirrus_bootstrap_restores_a_locked_out_admin(cloud: Cloud, api: TestClient,
                                                      admin: Caller, lockout: Cloud) -> None:
    # An operator removed the exemption and the admin got locked out: bootstrap (the
    # documented rescue, as keystone-manage bootstrap) lifts the lockout.
    r = api.patch(f"{V3}/users/{admin.user_id}", headers=admin.headers,
                  json={"user": {"options": {"ignore_lockout_failure_attempts": None}}})
    assert "ignore_lockout_failure_attempts" not in r.json()["user"]["options"]
    for _ in range(2):
        error(admin_login(api, "wrong"), 401)
    assert "locked" in error(admin_login(api), 401)
    assert cloud.bootstrap(ADMIN_PASSWORD, reset_password=True) is False
    assert admin_login(api).status_code == 201


# ---------------------------------------------------------------- expiry


def test_passwords_expire_after_password_expires_days(api: TestClient, admin: Caller,
                                                      cloud: Cloud) -> None:
    cloud.settings.password_expires_days = 90
    user = new_user(api, admin, "expiring")
    expires = parse(user["password_expires_at"])
    assert abs(expires - (utcnow() + dt.timedelta(days=90))) < dt.timedelta(minutes=1)
    r = login(api, user["id"], "first-pw1")
    assert r.status_code == 201
    assert r.json()["token"]["user"]["password_expires_at"] == user["password_expires_at"]
    token = r.headers["X-Subject-Token"]
    shown = api.get(f"{V3}/auth/tokens", headers={"X-Auth-Token": token,
                                                  "X-Subject-Token": token})
    assert shown.json()["token"]["user"]["password_expires_at"] == user["password_expires_at"]
    # 90 days later:
    set_user(cloud, user["id"], password_expires_at=utcnow() - dt.timedelta(seconds=1))
    assert error(login(api, user["id"], "first-pw1"), 401) == (
        f"The password is expired and needs to be changed for user: {user['id']}.")
    assert error(login(api, user["id"], "wrong"), 401) == UNAUTHENTICATED  # says nothing
    # The expired password still changes itself; the new one expires 90 days from now.
    assert change(api, user["id"], "first-pw1", "second-pw2").status_code == 204
    assert login(api, user["id"], "second-pw2").status_code == 201
    shown = api.get(f"{V3}/users/{user['id']}", headers=admin.headers).json()["user"]
    assert parse(shown["password_expires_at"]) > utcnow() + dt.timedelta(days=89)


def test_ignore_password_expiry_exempts_a_user(api: TestClient, admin: Caller,
                                               cloud: Cloud) -> None:
    cloud.settings.password_expires_days = 90
    user = new_user(api, admin, "robot", options={"ignore_password_expiry": True})
    assert user["password_expires_at"] is None
    assert user["options"] == {"ignore_password_expiry": True}


# ---------------------------------------------------------------- first use (PCI-DSS)


def test_a_new_or_reset_password_must_be_changed_on_first_use(api: TestClient, admin: Caller,
                                                              cloud: Cloud) -> None:
    cloud.settings.change_password_upon_first_use = True
    user = new_user(api, admin, "newcomer")
    assert user["password_expires_at"] is not None
    expired = f"The password is expired and needs to be changed for user: {user['id']}."
    assert error(login(api, user["id"], "first-pw1"), 401) == expired
    assert change(api, user["id"], "first-pw1", "my-own-pw2").status_code == 204
    r = login(api, user["id"], "my-own-pw2")
    assert r.status_code == 201
    assert r.json()["token"]["user"]["password_expires_at"] is None
    # An admin's reset must be changed again.
    r = api.patch(f"{V3}/users/{user['id']}", headers=admin.headers,
                  json={"user": {"password": "reset-pw3"}})
    assert r.status_code == 200 and r.json()["user"]["password_expires_at"] is not None
    assert error(login(api, user["id"], "reset-pw3"), 401) == expired
    assert change(api, user["id"], "reset-pw3", "mine-again4").status_code == 204
    assert login(api, user["id"], "mine-again4").status_code == 201
    # Exempt users and the bootstrap admin are not asked to.
    exempt = new_user(api, admin, "svc", options={"ignore_change_password_upon_first_use": True})
    assert login(api, exempt["id"], "first-pw1").status_code == 201
    assert admin_login(api).status_code == 201


# ---------------------------------------------------------------- complexity


def test_password_regex_refuses_with_its_description(api: TestClient, admin: Caller,
                                                     cloud: Cloud, member: Caller) -> None:
    cloud.settings.password_regex = REGEX
    cloud.settings.password_regex_description = REGEX_DESCRIPTION
    message = f"The password does not match the requirements: {REGEX_DESCRIPTION}."
    r = api.post(f"{V3}/users", headers=admin.headers,
                 json={"user": {"name": "weak", "password": "letters"}})
    assert error(r, 400) == message
    assert api.get(f"{V3}/users?name=weak", headers=admin.headers).json()["users"] == []
    user = new_user(api, admin, "strong", "strong-pw1")
    r = api.patch(f"{V3}/users/{user['id']}", headers=admin.headers,
                  json={"user": {"password": "1234567"}})
    assert error(r, 400) == message
    assert error(change(api, user["id"], "strong-pw1", "short1"), 400) == message
    assert login(api, user["id"], "strong-pw1").status_code == 201  # nothing changed
    assert change(api, user["id"], "strong-pw1", "better-pw2").status_code == 204
    # A password without a rule's match is refused for the member's own change too.
    assert error(change(api, member.user_id, "pw-alice", "nodigits"), 400) == message


def test_a_broken_regex_refuses_passwords_without_a_500(api: TestClient, admin: Caller,
                                                        cloud: Cloud) -> None:
    cloud.settings.password_regex = "([unclosed"
    r = api.post(f"{V3}/users", headers=admin.headers,
                 json={"user": {"name": "any", "password": "whatever-1"}})
    assert "invalid configuration" in error(r, 400)


# ---------------------------------------------------------------- history and age


def test_password_history_as_tempest_checks_it(api: TestClient, admin: Caller,
                                               cloud: Cloud, member: Caller) -> None:
    """Tempest's test_password_history_check_self_service_api and
    test_user_update_own_password with unique_last_password_count = 2."""
    cloud.settings.unique_last_password_count = 2
    old_token = member.token
    assert change(api, member.user_id, "pw-alice", "new-pass1").status_code == 204
    message = ("The new password cannot be identical to a previous password. The total "
               "number which includes the new password must be unique is 2.")
    assert error(change(api, member.user_id, "new-pass1", "new-pass1"), 400) == message
    assert error(change(api, member.user_id, "new-pass1", "pw-alice"), 400) == message
    assert change(api, member.user_id, "new-pass1", "new-pass2").status_code == 204
    # The old token is gone (404 on validation), the old password refused.
    r = api.get(f"{V3}/auth/tokens", headers={**admin.headers, "X-Subject-Token": old_token})
    assert r.status_code == 404
    error(login(api, member.user_id, "pw-alice"), 401)
    # Tempest's restore: unique_count random changes, then the original is accepted again.
    current = "new-pass2"
    for i in range(2):
        assert change(api, member.user_id, current, f"random-{i}x").status_code == 204
        current = f"random-{i}x"
    assert change(api, member.user_id, current, "pw-alice").status_code == 204
    assert login(api, member.user_id, "pw-alice").status_code == 201


def test_password_history_is_not_enforced_on_an_admin_reset(api: TestClient, admin: Caller,
                                                            cloud: Cloud) -> None:
    """Tempest's test_password_history_not_enforced_in_admin_reset."""
    cloud.settings.unique_last_password_count = 2
    user = new_user(api, admin, "reset-me")
    for _ in range(2):
        r = api.patch(f"{V3}/users/{user['id']}", headers=admin.headers,
                      json={"user": {"password": "same-pw1"}})
        assert r.status_code == 200
    assert login(api, user["id"], "same-pw1").status_code == 201


def test_minimum_password_age(api: TestClient, admin: Caller, cloud: Cloud) -> None:
    cloud.settings.minimum_password_age = 1
    user = new_user(api, admin, "patient")
    # The admin's password may be changed at once (only a self-service one starts the age).
    assert change(api, user["id"], "first-pw1", "second-pw2").status_code == 204
    message = error(change(api, user["id"], "second-pw2", "third-pw3"), 400)
    assert message.startswith("You cannot change your password at this time due to the "
                              "minimum password age. Once you change your password, it must "
                              "be used for 1 day(s) before it can be changed.")
    set_user(cloud, user["id"], password_created_at=utcnow() - dt.timedelta(days=1, seconds=1))
    assert change(api, user["id"], "second-pw2", "third-pw3").status_code == 204
    # An admin reset lets the user change it at once.
    assert change(api, user["id"], "third-pw3", "fourth-pw4").status_code == 400
    api.patch(f"{V3}/users/{user['id']}", headers=admin.headers,
              json={"user": {"password": "reset-pw5"}})
    assert change(api, user["id"], "reset-pw5", "fifth-pw6").status_code == 204


def test_lock_password_forbids_self_service_changes(api: TestClient, admin: Caller) -> None:
    user = new_user(api, admin, "kiosk", options={"lock_password": True})
    message = error(change(api, user["id"], "first-pw1", "other-pw2"), 400)
    assert "password policy disallowing password changes" in message
    assert login(api, user["id"], "first-pw1").status_code == 201


# ---------------------------------------------------------------- options


def test_user_options_are_keystones_merged_and_removed_with_null(api: TestClient,
                                                                 admin: Caller) -> None:
    user = new_user(api, admin, "opts", options={"ignore_password_expiry": True})
    r = api.patch(f"{V3}/users/{user['id']}", headers=admin.headers,
                  json={"user": {"options": {"lock_password": True}}})
    assert r.json()["user"]["options"] == {"ignore_password_expiry": True, "lock_password": True}
    r = api.patch(f"{V3}/users/{user['id']}", headers=admin.headers,
                  json={"user": {"options": {"ignore_password_expiry": None}}})
    assert r.json()["user"]["options"] == {"lock_password": True}
    for bad in ({"no_such_option": True}, {"lock_password": "yes"}):
        r = api.patch(f"{V3}/users/{user['id']}", headers=admin.headers,
                      json={"user": {"options": bad}})
        error(r, 400)


@pytest.mark.parametrize("caller", ["member", "reader", "other_member"])
def test_only_an_admin_sets_options_or_passwords_of_others(api: TestClient, admin: Caller,
                                                           caller: str,
                                                           request: pytest.FixtureRequest,
                                                           cloud: Cloud) -> None:
    if caller == "reader":
        from tests.conftest import make_caller

        who = make_caller(cloud, "rita", "project-a", "reader")
    else:
        who = request.getfixturevalue(caller)
    target = new_user(api, admin, "victim")
    r = api.patch(f"{V3}/users/{target['id']}", headers=who.headers,
                  json={"user": {"options": {"ignore_lockout_failure_attempts": True}}})
    assert r.status_code == 403
    r = api.patch(f"{V3}/users/{who.user_id}", headers=who.headers,
                  json={"user": {"options": {"ignore_lockout_failure_attempts": True}}})
    assert r.status_code == 403  # not even on themselves
    # The self-service change of someone else's password needs their original password.
    assert error(change(api, target["id"], "guess", "mine-now1"), 401) == UNAUTHENTICATED
    assert login(api, target["id"], "first-pw1").status_code == 201


# ---------------------------------------------------------------- Tempest's own clients


def test_tempests_security_compliance_flows_with_tempests_clients(
        api: TestClient, member: Caller, cloud: Cloud) -> None:
    """IdentityV3UsersTest (run only with security_compliance = True), step by step with
    Tempest's UsersClient and V3TokenClient and Tempest's default settings for it:
    user_lockout_failure_attempts 2, user_unique_last_password_count 2."""
    from tempest.lib import exceptions
    from tempest.lib.services.identity.v3.token_client import V3TokenClient
    from tempest.lib.services.identity.v3.users_client import UsersClient

    from tests.api.tempest_schemas import AUTH_URL, Clients, InProcessHttp

    cloud.settings.lockout_failure_attempts = 2
    cloud.settings.lockout_duration = 5
    cloud.settings.unique_last_password_count = 2
    users = Clients(api, "alice", "pw-alice", "project-a").client(UsersClient, "identity")
    token = V3TokenClient(AUTH_URL)
    token.http_obj = InProcessHttp(api)

    # test_password_history_check_self_service_api
    users.update_user_password(member.user_id, password="new-pass1", original_password="pw-alice")
    token.auth(user_id=member.user_id, password="new-pass1")
    with pytest.raises(exceptions.BadRequest):
        users.update_user_password(member.user_id, password="new-pass1",
                                   original_password="new-pass1")
    with pytest.raises(exceptions.BadRequest):
        users.update_user_password(member.user_id, password="pw-alice",
                                   original_password="new-pass1")
    users.update_user_password(member.user_id, password="new-pass2", original_password="new-pass1")
    with pytest.raises(exceptions.Unauthorized):
        token.auth(user_id=member.user_id, password="pw-alice")

    # test_user_account_lockout
    token.auth(user_id=member.user_id, password="new-pass2")
    for _ in range(2):
        with pytest.raises(exceptions.Unauthorized):
            token.auth(user_id=member.user_id, password="bad-pass")
    with pytest.raises(exceptions.Unauthorized):
        token.auth(user_id=member.user_id, password="new-pass2")
    # Tempest sleeps lockout_duration + 1 s; here the last failure is moved back instead.
    set_user(cloud, member.user_id, failed_auth_at=utcnow() - dt.timedelta(seconds=6))
    token.auth(user_id=member.user_id, password="new-pass2")
