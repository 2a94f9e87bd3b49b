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
from sqlalchemy import create_engine, text
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
    name = f"cirrus_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(backend)
    try:
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
        if problem:
            _unavailable(backend, problem)
        try:
            yield _database_url(backend, name)
        finally:
            with admin.connect() as conn:
                if backend == "postgresql":
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                else:
                    conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        admin.dispose()


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
