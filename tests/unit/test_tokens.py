"""Signed, self-contained tokens: signing, tampering, expiry, revocation and key rotation
(keys in a key directory, cirrus.identity.keys)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from cirrus.db import migrate
from cirrus.db.engine import Database
from cirrus.errors import NotFound, Unauthorized
from cirrus.identity import tokens as tokens_module
from cirrus.identity.keys import KeyRepository
from cirrus.identity.tokens import TokenClaims, TokenProvider


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'tokens.db'}")
    migrate.upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def key_dir(tmp_path) -> str:
    return str(tmp_path / "keys")


@pytest.fixture
def provider(db: Database, key_dir: str) -> TokenProvider:
    p = TokenProvider(db, key_dir, ttl=3600)
    p.ensure_key()
    return p


def claims_for(provider: TokenProvider, user_id: str = "u1", project_id: str | None = "p1",
               ) -> TokenClaims:
    return provider.new_claims(
        user_id=user_id, user_name=f"name-{user_id}", user_domain_id="default",
        user_domain_name="Default", methods=["password"], project_id=project_id,
        project_name="proj" if project_id else None,
        project_domain_id="default" if project_id else None,
        project_domain_name="Default" if project_id else None,
        roles=[{"id": "r1", "name": "member"}] if project_id else [],
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def payload_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def key_id_of(token: str) -> str:
    return token.split(".")[0]


def test_issued_token_validates_to_the_same_claims(provider: TokenProvider) -> None:
    claims = claims_for(provider)
    got = provider.validate(provider.issue(claims))
    assert got == claims
    assert got.role_names == ["member"]
    assert got.expires_at == pytest.approx(got.issued_at + 3600)


def test_issuing_runs_no_sql(provider: TokenProvider, db: Database) -> None:
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    provider.issue(claims_for(provider))
    assert statements == []


def test_tampered_claims_are_rejected(provider: TokenProvider) -> None:
    token = provider.issue(claims_for(provider))
    kid, payload, sig = token.split(".")
    data = payload_of(token)
    data["roles"] = [{"id": "r0", "name": "admin"}]
    forged = f"{kid}.{b64(json.dumps(data, separators=(',', ':')).encode())}.{sig}"
    with pytest.raises(NotFound):
        provider.validate(forged)


def test_tampered_signature_is_rejected(provider: TokenProvider) -> None:
    token = provider.issue(claims_for(provider))
    signed, sig = token.rsplit(".", 1)
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    with pytest.raises(NotFound):
        provider.validate(f"{signed}.{flipped}")


@pytest.mark.parametrize("garbage", [
    "", "no-dot-here", "!!!.???", b64(b"not json") + ".x", b64(b"[1, 2]") + ".x",
    b64(b'"text"') + ".x",  # JSON that is not an object once raised AttributeError (a 500)
    b64(b'{"k": "one"}') + ".x", b64(b'{"k": null}') + ".x",
    b64(b'{"k": 99999}') + ".x", "é" * 10 + ".x", "a" * 12 + "." + "b" * 10 + "." + "c" * 43,
    "a" * 100_000,
])
def test_garbage_tokens_are_not_found_never_a_crash(provider: TokenProvider, garbage: str) -> None:
    with pytest.raises(NotFound):
        provider.validate(garbage)


def test_expired_token_is_rejected(provider: TokenProvider) -> None:
    claims = claims_for(provider)
    claims.issued_at, claims.expires_at = time.time() - 7200, time.time() - 1
    with pytest.raises(NotFound, match="expired"):
        provider.validate(provider.issue(claims))


def test_authenticate_turns_missing_or_bad_tokens_into_401(provider: TokenProvider) -> None:
    with pytest.raises(Unauthorized):
        provider.authenticate(None)
    with pytest.raises(Unauthorized):
        provider.authenticate("bogus.token")
    token = provider.issue(claims_for(provider))
    assert provider.authenticate(token).user_id == "u1"


def test_revoking_one_token_by_audit_id_leaves_the_others(provider: TokenProvider) -> None:
    first, second = claims_for(provider), claims_for(provider)
    t1, t2 = provider.issue(first), provider.issue(second)
    provider.revoke(provider.validate(t1))
    with pytest.raises(NotFound, match="revoked"):
        provider.validate(t1)
    assert provider.validate(t2).audit_id == second.audit_id


def test_revoke_user_revokes_all_their_earlier_tokens_only(provider: TokenProvider) -> None:
    mine = [provider.issue(claims_for(provider, "u1", p)) for p in ("p1", "p2", None)]
    theirs = provider.issue(claims_for(provider, "u2"))
    provider.revoke_user("u1")
    for token in mine:
        with pytest.raises(NotFound):
            provider.validate(token)
    assert provider.validate(theirs).user_id == "u2"
    later = claims_for(provider, "u1")
    later.issued_at += 2  # revocations compare whole seconds, as Keystone does
    assert provider.validate(provider.issue(later)).user_id == "u1"


def test_revoke_user_on_one_project_keeps_their_other_tokens(provider: TokenProvider) -> None:
    on_p1 = provider.issue(claims_for(provider, "u1", "p1"))
    on_p2 = provider.issue(claims_for(provider, "u1", "p2"))
    provider.revoke_user("u1", "p1")
    with pytest.raises(NotFound):
        provider.validate(on_p1)
    assert provider.validate(on_p2).project_id == "p2"


def test_another_process_sees_revocations_after_the_refresh_interval(
        provider: TokenProvider, db: Database, key_dir: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    other = TokenProvider(db, key_dir)
    token = provider.issue(claims_for(provider))
    assert other.validate(token).user_id == "u1"
    provider.revoke(provider.validate(token))
    monkeypatch.setattr(tokens_module, "REVOCATION_REFRESH", 0.0)
    with pytest.raises(NotFound, match="revoked"):
        other.validate(token)


def test_key_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
        provider: TokenProvider, db: Database, key_dir: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    old_token = provider.issue(claims_for(provider))
    KeyRepository(key_dir).rotate(token_ttl=3600)
    monkeypatch.setattr(tokens_module, "KEY_REFRESH", 0.0)  # as long after as a refresh
    new_token = provider.issue(claims_for(provider))
    assert key_id_of(new_token) != key_id_of(old_token)
    assert provider.validate(old_token).user_id == "u1"
    # Another process that never saw the new key reads it on first sight.
    other = TokenProvider(db, key_dir)
    assert other.validate(new_token).user_id == "u1"
    assert other.validate(old_token).user_id == "u1"


def test_a_token_from_another_process_with_a_newer_key_validates(
        provider: TokenProvider, db: Database, key_dir: str) -> None:
    rotator = TokenProvider(db, key_dir)
    KeyRepository(key_dir).rotate(token_ttl=3600)
    # The first rotation promotes the staged key, which every process had already loaded.
    staged_then_primary = rotator.issue(claims_for(rotator))
    assert key_id_of(staged_then_primary) in provider._keys
    # The second promotes a key made by the first: this process has never seen it.
    KeyRepository(key_dir).rotate(token_ttl=3600)
    rotator = TokenProvider(db, key_dir)
    token = rotator.issue(claims_for(rotator))
    assert key_id_of(token) not in provider._keys
    provider._keys_loaded_at = 0.0  # as long after startup as a running process would be
    assert provider.validate(token).user_id == "u1"
    assert provider.validate(staged_then_primary).user_id == "u1"


def test_forged_key_ids_do_not_reload_keys_on_every_request(
        provider: TokenProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[int] = []
    real_load = provider._load_keys
    monkeypatch.setattr(provider, "_load_keys", lambda: (loads.append(1), real_load()))
    provider._keys_loaded_at = 0.0
    for n in range(1000, 1020):
        forged = f"forged{n}xx.{b64(json.dumps({'user_id': 'x'}).encode())}.{'s' * 43}"
        assert len(forged.split(".")[0]) == 12
        with pytest.raises(NotFound):
            provider.validate(forged)
    assert len(loads) == 1
