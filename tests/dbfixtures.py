"""Fresh, empty databases on SQLite, PostgreSQL and MariaDB for tests that touch the schema.

Use in a test module:

    pytest_plugins = ("tests.dbfixtures",)

    def test_something(db_url, cloud_on):   # runs once per backend, one database per module
        with cloud_on(db_url) as cloud:      # a bootstrapped Cloud with its roles running
            ...

Fixtures: `db_url` (one database per module and backend), `empty_db_url` (one per test),
`server_db_url` (PostgreSQL and MariaDB only), `cloud_on`, `db_cloud`.

`fresh_database(backend)` is the context manager behind the fixtures, for a test that needs
a database of its own. A server that cannot be reached skips the test with the reason, or
fails it when CIRRUS_REQUIRE_SERVICES=1 (CI sets that, so CI never skips silently).

The admin connections default to this platform's services (PostgreSQL at 127.0.0.1:5432 as
`postgres` with trust auth, MariaDB at 127.0.0.1:3306 as root with no password); set
CIRRUS_TEST_POSTGRES_URL or CIRRUS_TEST_MYSQL_URL to use others.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from cirrus.db.engine import normalize_url
from tests.services import missing, services_required  # noqa: F401 - services_required re-exported

BACKENDS = ("sqlite", "postgresql", "mariadb")
SERVER_BACKENDS = ("postgresql", "mariadb")

ADMIN_URLS = {
    "postgresql": os.environ.get("CIRRUS_TEST_POSTGRES_URL",
                                 "postgresql://postgres@127.0.0.1:5432/postgres"),
    "mariadb": os.environ.get("CIRRUS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/"),
}
START_HINTS = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mariadb": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
}


def _unavailable(backend: str, reason: str) -> None:
    missing(f"{backend} is not available ({reason}); start it with `{START_HINTS[backend]}`")


def _admin_engine(backend: str) -> Engine:
    url = normalize_url(ADMIN_URLS[backend])
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True,
                         connect_args={"connect_timeout": 5})


def _database_url(backend: str, name: str) -> str:
    """The plain URL (`postgresql://` or `mysql://`) of database `name` on the admin's server."""
    admin = make_url(ADMIN_URLS[backend])
    plain = "postgresql" if backend == "postgresql" else "mysql"
    return admin.set(drivername=plain, database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(backend: str, tmp_dir: Path | None = None) -> Iterator[str]:
    """Create an empty, uniquely named database, yield its URL, drop it afterwards."""
    if backend == "sqlite":
        if tmp_dir is None:
            raise ValueError("a SQLite database needs tmp_dir")
        path = Path(tmp_dir) / f"cirrus-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        return
    if backend not in SERVER_BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    name = _create(backend)
    try:
        yield _database_url(backend, name)
    finally:
        _drop(backend, name)


def _create(backend: str) -> str:
    """Create an empty, uniquely named database on the server; its name."""
    name = f"cirrus_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(backend)
    problem = None
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
            else:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                                  "COLLATE utf8mb4_unicode_ci"))
    except Exception as exc:  # driver missing, server down, auth refused
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        admin.dispose()
    if problem:
        _unavailable(backend, problem)
    return name


# Databases the `cloud` fixture has used and emptied, for the next test of this process
# (pytest-xdist workers each keep their own): a fresh server database costs CREATE DATABASE,
# the whole migration and DROP DATABASE (1.3 s on PostgreSQL, 1.2 s on MariaDB here), an
# emptied one 0.05 s (the migrations themselves are tested in tests/unit/test_db.py on fresh
# databases). Dropped when the session ends.
_POOL: dict[str, list[str]] = {"postgresql": [], "mariadb": []}
_POOL_NAMES: dict[str, list[str]] = {"postgresql": [], "mariadb": []}


def _quote(backend: str, name: str) -> str:
    return f'"{name}"' if backend == "postgresql" else f"`{name}`"


def _empty(backend: str, url: str) -> None:
    """Delete every row of every table but Alembic's and restart the sequences, so the
    database is as the migration left it. Raises if anything still holds a lock."""
    engine = create_engine(normalize_url(url), connect_args={"connect_timeout": 5})
    try:
        with engine.begin() as conn:
            if backend == "postgresql":
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            else:
                conn.execute(text("SET SESSION innodb_lock_wait_timeout = 5"))
                conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
            for table in tables:
                conn.execute(text(f"DELETE FROM {_quote(backend, table)}"))
            if backend == "postgresql":
                for (name,) in conn.execute(text(
                        "SELECT sequence_name FROM information_schema.sequences "
                        "WHERE sequence_schema = 'public'")):
                    conn.execute(text(f'ALTER SEQUENCE "{name}" RESTART'))
            else:
                used = conn.execute(text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                    "DATABASE() AND auto_increment > 1")).scalars().all()
                for table in used:
                    conn.execute(text(f"ALTER TABLE `{table}` AUTO_INCREMENT = 1"))
                conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
    finally:
        engine.dispose()


def _drop(backend: str, name: str) -> None:
    admin = _admin_engine(backend)
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        admin.dispose()


@contextlib.contextmanager
def pooled_database(backend: str) -> Iterator[str]:
    """A database of `backend` with nothing in it but, if it was used before, the schema at
    the migration's head (the `cloud` fixture upgrades and bootstraps whatever it gets).
    Emptied and kept for the next test afterwards; dropped instead if it cannot be emptied."""
    if backend not in SERVER_BACKENDS:
        raise ValueError(f"no pool for {backend!r}")
    if _POOL[backend]:
        url = _POOL[backend].pop()
    else:
        name = _create(backend)  # dropped by drop_pooled_databases()
        _POOL_NAMES[backend].append(name)
        url = _database_url(backend, name)
    yield url
    try:
        _empty(backend, url)
    except Exception:  # a connection left open by the test holds a lock: start afresh
        name = make_url(url).database or ""
        _drop(backend, name)
        _POOL_NAMES[backend].remove(name)
    else:
        _POOL[backend].append(url)


def drop_pooled_databases() -> None:
    for backend, names in _POOL_NAMES.items():
        for name in names:
            with contextlib.suppress(Exception):
                _drop(backend, name)
        names.clear()
        _POOL[backend].clear()


@pytest.fixture(scope="module", params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One empty database per test module and backend, shared by the module's tests."""
    with fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's own, once per backend."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=SERVER_BACKENDS)
def server_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database of the test's own on PostgreSQL, then on MariaDB."""
    with fresh_database(request.param) as url:
        yield url


@contextlib.contextmanager
def make_cloud_on(url: str, data_dir: Path, *, roles: bool = True, **settings: object) -> Iterator:
    """A bootstrapped cirrus.runtime.Cloud on the database at `url` (as tests/conftest.py's
    `cloud` fixture builds on SQLite): schema upgraded, admin bootstrapped and, unless
    `roles=False`, scheduler, conductor and fake agents running. Stopped afterwards."""
    from cirrus.runtime import Cloud, fake_host_names
    from tests.conftest import ADMIN_PASSWORD, make_settings

    s = make_settings(data_dir, database_url=url, **settings)
    cloud = Cloud(s)
    try:
        cloud.upgrade_schema()
        cloud.bootstrap(ADMIN_PASSWORD)
        if roles:
            cloud.start_roles(["scheduler", "conductor", "agent"], agent_hosts=fake_host_names(s))
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture
def cloud_on(tmp_path: Path) -> Callable[..., contextlib.AbstractContextManager]:
    """`with cloud_on(url, **settings) as cloud:` a running Cloud on that database.

    Settings overrides are Settings fields (e.g. build_max_attempts=1); `roles=False` starts
    no scheduler, conductor or agents. The cloud is stopped when the `with` block ends.
    """

    def open_cloud(url: str, **settings: object) -> contextlib.AbstractContextManager:
        data_dir = tmp_path / f"cloud-{uuid.uuid4().hex[:6]}"
        data_dir.mkdir()
        return make_cloud_on(url, data_dir, **settings)

    return open_cloud


@pytest.fixture
def db_cloud(db_url: str, cloud_on) -> Iterator:
    """A running Cloud on each backend (the module's database; bootstrap is idempotent)."""
    with cloud_on(db_url) as cloud:
        yield cloud
