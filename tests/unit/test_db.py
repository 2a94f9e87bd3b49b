"""The database layer on SQLite, PostgreSQL and MariaDB: migrations, schema check, retries."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import LargeBinary, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from cirrus.db import engine as db_engine
from cirrus.db import migrate
from cirrus.db.engine import Database
from cirrus.db.models import Base, QuotaLimit

pytest_plugins = ("tests.dbfixtures",)  # fixtures empty_db_url, server_db_url, cloud_on


@pytest.fixture
def db(empty_db_url: str):
    database = Database(empty_db_url)
    yield database
    database.dispose()


@pytest.fixture
def migrated(db: Database) -> Database:
    migrate.upgrade(db.engine)
    return db


# ---------------------------------------------------------------- migrations


def test_migrations_create_every_table_of_the_models(migrated: Database) -> None:
    tables = set(inspect(migrated.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    assert migrate.current_revision(migrated.engine) == migrate.head_revision(migrated.engine)


# MySQL stores BLOB(n) as the smallest BLOB type that holds n bytes (TINYBLOB up to 255).
_MYSQL_BLOB_LIMITS = {"TINYBLOB": 255, "BLOB": 65535, "MEDIUMBLOB": 2**24 - 1, "LONGBLOB": 2**32 - 1}


def _compare_type(ctx, _reflected_col, _model_col, reflected, model) -> bool | None:
    """Alembic's type comparison, except for MySQL's equivalent of a sized LargeBinary."""
    limit = _MYSQL_BLOB_LIMITS.get(type(reflected).__name__)
    if ctx.dialect.name == "mysql" and limit is not None and isinstance(model, LargeBinary) \
            and model.length:
        smaller = [n for n in _MYSQL_BLOB_LIMITS.values() if n < limit]
        return not (model.length <= limit and all(model.length > n for n in smaller))
    return None  # default comparison


def test_migrated_schema_matches_the_models(migrated: Database) -> None:
    with migrated.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": _compare_type,
                                                     "compare_server_default": False})
        differences = compare_metadata(ctx, Base.metadata)
    assert differences == [], (
        "the migrations and cirrus/db/models.py disagree; run scripts/regen-initial-migration"
    )


def test_upgrade_twice_is_a_no_op(migrated: Database) -> None:
    migrate.upgrade(migrated.engine)
    assert migrate.current_revision(migrated.engine) == migrate.head_revision(migrated.engine)


def test_cli_db_upgrade_brings_an_empty_database_to_head(
    db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from cirrus.cli import main

    monkeypatch.setenv("CIRRUS_DATABASE_URL", db.url)
    assert main(["db", "upgrade"]) == 0
    head = migrate.head_revision(db.engine)
    assert head in capsys.readouterr().out
    assert migrate.current_revision(db.engine) == head


# ---------------------------------------------------------------- schema check


def test_check_schema_refuses_an_empty_database(db: Database) -> None:
    with pytest.raises(migrate.SchemaOutOfDate, match="cirrus db upgrade"):
        migrate.check_schema(db.engine)


def test_check_schema_refuses_an_out_of_date_schema(migrated: Database) -> None:
    with migrated.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(migrate.SchemaOutOfDate) as info:
        migrate.check_schema(migrated.engine)
    assert "cirrus db upgrade" in str(info.value)
    assert "0000" in str(info.value)


def test_check_schema_accepts_an_upgraded_schema(migrated: Database) -> None:
    migrate.check_schema(migrated.engine)


def test_cloud_on_each_backend_bootstraps_and_issues_tokens(empty_db_url: str,
                                                            cloud_on) -> None:
    with cloud_on(empty_db_url, roles=False) as cloud:
        cloud.check_schema()
        cloud.bootstrap("admin-secret")  # a second start must not fail or duplicate
        with cloud.db.reader() as s:
            from cirrus.db.models import Role, User

            assert s.scalar(select(func.count(User.id)).where(User.name == "admin")) == 1
            assert {r.name for r in s.scalars(select(Role))} >= {"admin", "member", "reader"}
        token = cloud.tokens.issue(cloud.tokens.new_claims(
            user_id="u", user_name="u", user_domain_id="default", user_domain_name="Default",
            methods=["password"]))
        assert cloud.tokens.validate(token).user_id == "u"


# ---------------------------------------------------------------- retries


def _deadlock() -> OperationalError:
    return OperationalError("UPDATE x", {}, Exception("(1213, 'Deadlock found when trying to get lock')"))


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(db_engine.time, "sleep", slept.append)
    return slept


def test_run_retries_a_deadlock_at_most_max_retries_times(tmp_path: Path, no_sleep) -> None:
    db = Database(f"sqlite:///{tmp_path}/r.db", max_retries=3)
    calls = []

    def work(_session):
        calls.append(1)
        raise _deadlock()

    with pytest.raises(OperationalError, match="Deadlock"):
        db.run(work)
    assert len(calls) == 4  # the first try and three retries
    assert len(no_sleep) == 3
    assert all(0 < delay <= 1.0 for delay in no_sleep)
    db.dispose()


def test_run_returns_the_result_once_a_retry_succeeds(tmp_path: Path, no_sleep) -> None:
    db = Database(f"sqlite:///{tmp_path}/r.db", max_retries=5)
    calls = []

    def work(_session):
        calls.append(1)
        if len(calls) < 3:
            raise _deadlock()
        return "done"

    assert db.run(work) == "done"
    assert len(calls) == 3
    db.dispose()


def test_run_does_not_retry_other_errors(tmp_path: Path, no_sleep) -> None:
    db = Database(f"sqlite:///{tmp_path}/r.db")
    calls = []

    def work(_session):
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    with pytest.raises(IntegrityError):
        db.run(work)
    assert calls == [1]
    assert no_sleep == []
    db.dispose()


def test_run_retries_a_real_deadlock_between_two_writers(server_db_url: str) -> None:
    """Two transactions lock two rows in opposite order; the server kills one, run() retries it."""
    db = Database(server_db_url, max_retries=5)
    migrate.upgrade(db.engine)
    db.run(lambda s: s.add_all([QuotaLimit(project_id="p", resource="a", hard_limit=0),
                                QuotaLimit(project_id="p", resource="b", hard_limit=0)]))
    both_hold_first_lock = threading.Barrier(2, timeout=20)
    attempts = {"ab": 0, "ba": 0}
    errors: list[BaseException] = []

    def writer(first: str, second: str) -> None:
        name = first + second

        def work(s):
            attempts[name] += 1
            s.get(QuotaLimit, ("p", first), with_for_update=True).hard_limit += 1
            if attempts[name] == 1:
                both_hold_first_lock.wait()
            s.get(QuotaLimit, ("p", second), with_for_update=True).hard_limit += 1

        try:
            db.run(work)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sum(attempts.values()) == 3, attempts  # exactly one victim, retried once
    with db.reader() as s:
        assert sorted(s.scalars(select(QuotaLimit.hard_limit))) == [2, 2]
    db.dispose()


def test_concurrent_writers_do_not_fail(empty_db_url: str) -> None:
    """8 threads x 50 write transactions; on SQLite this would hit "database is locked"
    without BEGIN IMMEDIATE and the busy timeout."""
    db = Database(empty_db_url)
    migrate.upgrade(db.engine)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                db.run(lambda s, i=i: s.add(QuotaLimit(project_id=f"p{n}", resource=f"r{i}",
                                                       hard_limit=i)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with db.reader() as s:
        assert s.scalar(select(func.count()).select_from(QuotaLimit)) == 400
    db.dispose()
