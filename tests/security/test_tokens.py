"""Tokens and their signing keys, through the HTTP API (issue 11, points 1 and 2).

- The signing keys live in a key directory (0700, keys 0600), not in the database: a token
  forged with anything copied from the database is refused, one signed with the key
  directory's key is accepted (so the test can tell the two apart).
- Any alteration of a valid token, at every position, is answered 401: never 200, never 500.
  The encoding is canonical (no padding, no other final character decoding to the same bytes),
  the length bounded, the HMAC checked before any JSON is parsed, claims type- and range-checked.
- Rotation (`cirrus token-keys rotate`) keeps earlier tokens valid until they expire.
- Password length bounds as Keystone's max_password_length (4096).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import MetaData, inspect, select
from starlette.testclient import TestClient

from cirrus.cli import main
from cirrus.db.models import Project, User
from cirrus.identity import service as identity
from cirrus.identity.keys import KeyRepository, key_id
from cirrus.identity.tokens import TokenClaims, sign
from cirrus.runtime import Cloud
from tests.conftest import ADMIN_PASSWORD, Caller
from tests.deployment import free_port, run_cirrus

V3 = "/identity/v3"
ADMIN_ONLY = "/cirrus/v1/log-level"  # the route the forged token reached
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def primary_key(cloud: Cloud) -> bytes:
    key = KeyRepository(cloud.settings.effective_token_key_dir).load().primary
    assert key is not None
    return key


def admin_claims(cloud: Cloud) -> TokenClaims:
    with cloud.db.reader() as s:
        user = s.scalar(select(User).where(User.name == "admin"))
        project = s.scalar(select(Project).where(Project.name == "admin"))
        return identity.build_claims(s, cloud.tokens, user, project)


def sign_raw(key: bytes, payload: bytes) -> str:
    """A token over any payload bytes, signed with `key`: what only a key holder can make."""
    signed = f"{key_id(key)}.{b64(payload)}"
    return f"{signed}.{b64(hmac.new(key, signed.encode(), hashlib.sha256).digest())}"


def status_with(api: TestClient, token: str) -> int:
    return api.get(ADMIN_ONLY, headers={"X-Auth-Token": token}).status_code


# ---------------------------------------------------------------- keys outside the database


def test_the_keys_are_private_files_and_the_database_has_none(cloud: Cloud) -> None:
    key_dir = cloud.settings.effective_token_key_dir
    assert key_dir == Path(cloud.settings.data_dir) / "keys" / "token"
    assert key_dir.stat().st_mode & 0o777 == 0o700
    assert key_dir.parent.stat().st_mode & 0o777 == 0o700  # <data_dir>/keys, made with it
    keys = [p for p in key_dir.iterdir() if p.name.isdigit()]
    assert sorted(p.name for p in keys) == ["0", "1"]  # staged and primary
    for path in key_dir.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert "signing_keys" not in inspect(cloud.db.engine).get_table_names()


def _every_value_in(engine) -> list[bytes]:
    """Every text or blob value of every table: what a dump or backup of the database holds."""
    values: list[bytes] = []
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as con:
        for table in tables.sorted_tables:
            for row in con.execute(select(table)):
                for value in row:
                    if isinstance(value, dict | list):
                        value = json.dumps(value)
                    if isinstance(value, str) and len(value) >= 16:
                        values.append(value.encode())
                    elif isinstance(value, bytes | memoryview) and len(value) >= 16:
                        values.append(bytes(value))
    return values


def test_a_token_forged_with_keys_copied_from_the_database_is_refused(
        api: TestClient, cloud: Cloud, admin: Caller) -> None:
    assert status_with(api, admin.token) == 200
    candidates = _every_value_in(cloud.db.engine)
    assert len(candidates) > 10  # the copy holds the users, hashes, ids...
    claims = admin_claims(cloud)
    real_kid = key_id(primary_key(cloud))
    for candidate in candidates:
        keys = {candidate}
        with contextlib.suppress(ValueError):  # a base64 value may hide a key's bytes
            keys.add(base64.urlsafe_b64decode(candidate + b"=" * (-len(candidate) % 4)))
        for key in keys:
            forged = sign(key, claims)
            assert status_with(api, forged) == 401
            # The same forgery claiming the real key's id.
            payload = forged.split(".")[1]
            sig = b64(hmac.new(key, f"{real_kid}.{payload}".encode(), hashlib.sha256).digest())
            assert status_with(api, f"{real_kid}.{payload}.{sig}") == 401
    # The same claims signed with the key directory's key do validate: the test can tell.
    assert status_with(api, sign(primary_key(cloud), claims)) == 200


# ---------------------------------------------------------------- altered tokens


def _alterations(token: str) -> list[str]:
    variants = {token + extra for extra in ("=", "==", "A", ".", "\t", " x")}
    variants |= {token[:-1], token[1:], token[:-2] + "==", "." + token, token + "." + token}
    for i, char in enumerate(token):
        other = B64[(B64.index(char) + 1) % 64] if char in B64 else "A"
        variants.add(token[:i] + other + token[i + 1:])  # a different character
        variants.add(token[:i] + token[i + 1:])  # removed
        variants.add(token[:i] + "=" + token[i:])  # padding or junk inserted
        variants.add(token[:i] + ("A" if char != "A" else "B") + token[i:])  # inserted
        if char != ".":
            variants.add(token[:i] + "." + token[i + 1:])  # a separator instead
    variants.discard(token)
    return sorted(variants)


def test_every_alteration_of_a_valid_token_is_401(api: TestClient, member: Caller) -> None:
    route = f"{V3}/auth/projects"
    assert api.get(route, headers=member.headers).status_code == 200
    variants = _alterations(member.token)
    assert len(variants) > 4 * len(member.token)
    answers: dict[int, list[str]] = {}
    for variant in variants:
        status = api.get(route, headers={"X-Auth-Token": variant}).status_code
        answers.setdefault(status, []).append(variant)
    assert set(answers) == {401}, {k: v[:3] for k, v in answers.items()}


def test_the_signature_has_one_encoding_only(api: TestClient, member: Caller) -> None:
    """32 bytes take 43 base64 characters, the last carrying 2 unused bits: three other final
    characters decode to the same bytes. Those, and padding, are refused."""
    route = f"{V3}/auth/projects"
    signed, sig = member.token.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(sig + "=")
    same_bytes = [sig[:-1] + c for c in B64
                  if c != sig[-1] and base64.urlsafe_b64decode(sig[:-1] + c + "=") == raw]
    assert len(same_bytes) == 3
    for variant in [*same_bytes, sig + "=", sig + "=="]:
        r = api.get(route, headers={"X-Auth-Token": f"{signed}.{variant}"})
        assert r.status_code == 401, variant


def test_the_claims_have_one_encoding_only(api: TestClient, cloud: Cloud) -> None:
    """Even signed by the right key, a payload in a non-canonical encoding is refused."""
    key = primary_key(cloud)
    body = json.dumps(admin_claims(cloud).to_json(), separators=(",", ":")).encode()
    if len(body) % 3 == 0:
        body += b" "  # so the last base64 character carries unused bits
    good = sign_raw(key, body)
    assert status_with(api, good) == 200
    payload = good.split(".")[1]
    assert len(payload) % 4  # a final character with unused bits exists
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    for c in B64:
        text = payload[:-1] + c
        if c != payload[-1] and base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == raw:
            signed = f"{key_id(key)}.{text}"
            sig = b64(hmac.new(key, signed.encode(), hashlib.sha256).digest())
            assert status_with(api, f"{signed}.{sig}") == 401


@pytest.mark.parametrize("change", [
    {"expires_at": 10**400},  # once an OverflowError, a 500 before authentication
    {"expires_at": 1e308 * 10},  # inf is not JSON: json.dumps writes Infinity
    {"expires_at": -1},
    {"expires_at": "tomorrow"},
    {"expires_at": True},
    {"issued_at": None},
    {"roles": "admin"},
    {"roles": [{"id": 1, "name": "admin"}]},
    {"roles": [["admin"]]},
    {"methods": "password"},
    {"user_id": 12},
    {"user_id": "x" * 100_000},
    {"project_id": {"id": "p"}},
    {"password_expires_at": 10**30},
    {"surplus": 1},
])
def test_signed_claims_of_the_wrong_type_or_range_are_401(api: TestClient, cloud: Cloud,
                                                          change: dict) -> None:
    data = {**admin_claims(cloud).to_json(), **change}
    text = json.dumps(data, separators=(",", ":"))
    assert status_with(api, sign_raw(primary_key(cloud), text.encode())) == 401


@pytest.mark.parametrize("payload", [
    b"", b"not json", b"[1,2]", b'"text"', b"null", b"1" * 5000, b"[" * 5000 + b"]" * 5000,
    b'{"user_id":' * 3000, "\ud800".encode("utf-8", "surrogatepass"), b"\xff\xfe",
])
def test_signed_payloads_that_are_not_claims_are_401(api: TestClient, cloud: Cloud,
                                                      payload: bytes) -> None:
    assert status_with(api, sign_raw(primary_key(cloud), payload)) == 401


def test_a_huge_number_in_an_unsigned_payload_is_401_not_500(api: TestClient,
                                                             member: Caller) -> None:
    kid, _, sig = member.token.split(".")
    for payload in (b'{"expires_at":1e999999}', b'{"k":' + b"9" * 100_000 + b"}"):
        r = api.get(f"{V3}/auth/projects", headers={"X-Auth-Token": f"{kid}.{b64(payload)}.{sig}"})
        assert r.status_code == 401


def test_token_length_is_bounded(api: TestClient, member: Caller) -> None:
    for token in ("A" * 9000, member.token + "A" * 9000, "x." * 5000):
        assert api.get(f"{V3}/auth/projects", headers={"X-Auth-Token": token}).status_code == 401


def test_altered_subject_and_rescoping_tokens_are_refused_never_500(
        api: TestClient, admin: Caller, member: Caller) -> None:
    for variant in _alterations(member.token)[::7]:
        r = api.get(f"{V3}/auth/tokens",
                    headers={**admin.headers, "X-Subject-Token": variant})
        assert r.status_code == 404  # Keystone: an invalid subject token is not found
        r = api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {
            "methods": ["token"], "token": {"id": variant}}}})
        assert r.status_code == 401


# ---------------------------------------------------------------- rotation


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_rotation_keeps_earlier_tokens_valid_until_they_expire(
        api: TestClient, cloud: Cloud, member: Caller, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    from cirrus.identity import tokens as tokens_module

    key_dir = cloud.settings.effective_token_key_dir
    monkeypatch.setenv("CIRRUS_DATA_DIR", str(cloud.settings.data_dir))
    monkeypatch.setattr(tokens_module, "KEY_REFRESH", 0.0)
    monkeypatch.setattr(tokens_module, "REVOCATION_REFRESH", 0.0)
    route = f"{V3}/auth/projects"
    first = member.token
    assert main(["token-keys", "rotate"]) == 0
    assert "key 2 is primary" in capsys.readouterr().out
    after_one = api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {
        "methods": ["token"], "token": {"id": first}}}}).headers["X-Subject-Token"]
    assert after_one.split(".")[0] != first.split(".")[0]  # signed by the new primary
    assert main(["token-keys", "rotate"]) == 0
    # Key 1 (which signed `first`) is beyond max_active_keys (3) now, but key 2 became primary
    # moments ago: tokens of key 1 may still be valid, so it is kept.
    names = sorted(int(p.name) for p in key_dir.iterdir() if p.name.isdigit())
    assert names == [0, 1, 2, 3]
    assert "beyond token_max_active_keys" in capsys.readouterr().out
    for token in (first, after_one):
        assert api.get(route, headers={"X-Auth-Token": token}).status_code == 200
    # Once key 2 has been primary for longer than token_ttl, key 1's tokens have all expired:
    # the next rotation removes it, and a token it signed is refused.
    # Key 2 (which signed `after_one`) was replaced by key 3 just now: it stays.
    _age(key_dir / "2", cloud.settings.token_ttl + 1)
    assert main(["token-keys", "rotate"]) == 0
    names = sorted(int(p.name) for p in key_dir.iterdir() if p.name.isdigit())
    assert names == [0, 2, 3, 4]
    assert api.get(route, headers={"X-Auth-Token": first}).status_code == 401
    assert api.get(route, headers={"X-Auth-Token": after_one}).status_code == 200
    for path in key_dir.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600


def test_token_keys_setup_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    key_dir = tmp_path / "etc" / "keys"
    monkeypatch.setenv("CIRRUS_TOKEN_KEY_DIR", str(key_dir))
    assert main(["token-keys", "list"]) == 1
    assert "run `cirrus token-keys setup`" in capsys.readouterr().err
    assert main(["token-keys", "rotate"]) == 1
    assert main(["token-keys", "setup"]) == 0
    out = capsys.readouterr().out
    assert "created" in out and "1: primary" in out and "0: staged" in out
    before = {p.name: p.read_bytes() for p in key_dir.iterdir()}
    assert main(["token-keys", "setup"]) == 0  # a second setup changes nothing
    assert {p.name: p.read_bytes() for p in key_dir.iterdir()} == before
    assert key_dir.stat().st_mode & 0o777 == 0o700


def test_loose_key_files_are_warned_about(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    repo = KeyRepository(tmp_path / "keys")
    repo.setup()
    (tmp_path / "keys" / "1").chmod(0o644)
    repo.load()
    assert any("other users may read it" in r.getMessage() and str(tmp_path / "keys" / "1")
               in r.getMessage() for r in caplog.records)


def test_serve_refuses_an_api_without_signing_keys(tmp_path: Path) -> None:
    env = {"CIRRUS_DATABASE_URL": f"sqlite:///{tmp_path / 'cirrus.db'}",
           "CIRRUS_DATA_DIR": str(tmp_path / "data")}
    assert run_cirrus("db", "upgrade", env=env).returncode == 0
    done = run_cirrus("serve", "--role", "api,conductor,scheduler,agent", "--port",
                      str(free_port()), env=env)
    assert done.returncode == 1
    assert "no token signing key" in done.stderr and "cirrus token-keys setup" in done.stderr


# ---------------------------------------------------------------- password length


def test_passwords_longer_than_keystones_bound_are_refused(api: TestClient,
                                                           admin: Caller) -> None:
    too_long = "p" * 4097
    message = ("The password length must be less than or equal to 4096. The server could "
               "not comply with the request because the password is invalid.")
    r = api.post(f"{V3}/users", headers=admin.headers,
                 json={"user": {"name": "long", "password": too_long}})
    assert r.status_code == 400 and r.json()["error"]["message"] == message
    assert api.get(f"{V3}/users?name=long", headers=admin.headers).json()["users"] == []
    r = api.post(f"{V3}/users", headers=admin.headers,
                 json={"user": {"name": "mega", "password": "p" * (1 << 20)}})
    assert r.status_code in (400, 413)  # 413 once a body size limit is in front
    r = api.post(f"{V3}/users", headers=admin.headers,
                 json={"user": {"name": "edge", "password": "p" * 4096}})
    assert r.status_code == 201, r.text
    user_id = r.json()["user"]["id"]
    r = api.patch(f"{V3}/users/{user_id}", headers=admin.headers,
                  json={"user": {"password": too_long}})
    assert r.status_code == 400 and r.json()["error"]["message"] == message
    r = api.post(f"{V3}/users/{user_id}/password", json={"user": {
        "original_password": "p" * 4096, "password": too_long}})
    assert r.status_code == 400 and r.json()["error"]["message"] == message
    # Nothing changed: the 4096-character password still logs in.
    r = api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {"methods": ["password"],
                 "password": {"user": {"id": user_id, "password": "p" * 4096}}}}})
    assert r.status_code == 201


def test_a_huge_password_at_login_is_401(api: TestClient, admin: Caller) -> None:
    for password in ("x" * 4097, ADMIN_PASSWORD + "x" * (1 << 20)):
        r = api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {"methods": ["password"],
                     "password": {"user": {"name": "admin", "domain": {"id": "default"},
                                           "password": password}}}}})
        assert r.status_code in (401, 413), r.text  # 413 once a body size limit is in front
