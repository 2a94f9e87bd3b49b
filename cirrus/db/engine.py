"""Engines and transactions that behave the same on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cirrus.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// and mysql:// URLs and pick the driver Cirrus ships with."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
              "mysql": "mysql+pymysql", "mariadb": "mysql+pymysql"}.get(parsed.drivername)
    if driver:
        parsed = parsed.set(drivername=driver)
    if parsed.drivername.startswith("mysql") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=16,
            max_overflow=32,
        )
        _make_sqlite_behave(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_recycle=3600)


def _make_sqlite_behave(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the lock up front: a deferred transaction that upgrades to a
        # write lock fails at once with SQLITE_BUSY instead of waiting its turn.
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.connection.driver_connection.execute(f"BEGIN {mode}")


def _is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return any(
        marker in text
        for marker in (
            "deadlock",  # MariaDB 1213, PostgreSQL 40P01
            "could not serialize",  # PostgreSQL 40001
            "lock wait timeout",  # MariaDB 1205
            "database is locked",  # SQLite busy after timeout
        )
    )


# What PostgreSQL, MariaDB and their drivers say when the server went away or cannot be
# reached: a restart, a failover, a network cut. SQLAlchemy flags most of these as
# `connection_invalidated`; connection attempts that fail outright are matched by text.
_UNREACHABLE = (
    "connection refused",  # psycopg and PyMySQL (errno 111) while the server is down
    "can't connect",  # MariaDB 2003
    "lost connection",  # MariaDB 2013
    "server has gone away",  # MariaDB 2006
    "server closed the connection",  # libpq
    "terminating connection",  # PostgreSQL 57P01 on shutdown or restart
    "the database system is",  # ... starting up / shutting down / in recovery mode
    "connection is closed",
    "consuming input failed",
    "connection failed",
    "could not connect",
)


def is_disconnect(exc: BaseException) -> bool:
    """True when `exc` means the database was unreachable, not that the work was wrong."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return any(marker in text for marker in _UNREACHABLE)


class Database:
    """Owns the engine and hands out sessions: `writer()` for changes, `reader()` for reads."""

    def __init__(self, url: str, max_retries: int = 5, reconnect_timeout: float = 30.0) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.max_retries = max_retries
        # How long `run` keeps retrying while the database cannot be reached (a restart).
        self.reconnect_timeout = reconnect_timeout
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite allows one writer at a time and its busy handler polls with sleeps of up to
        # 100 ms; queueing this process's writers on a lock wakes the next one at once.
        self._write_lock = threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        if self.is_sqlite:
            read_engine = self.engine.execution_options(sqlite_begin="DEFERRED")
            self._reader = sessionmaker(read_engine, expire_on_commit=False)
        else:
            self._reader = self._writer
        # Called with a write session's `info` after it committed, outside the write lock:
        # for work that must follow a change but not be part of it (DHCP syncs).
        self.commit_hooks: list[Callable[[dict], None]] = []

    @contextlib.contextmanager
    def writer(self) -> Iterator[Session]:
        with self._write_lock, self._writer() as session:
            with session.begin():
                yield session
            info = dict(session.info)
        if info:
            for hook in self.commit_hooks:
                try:
                    hook(info)
                except Exception:  # the transaction is committed whatever a hook does
                    log.exception("commit hook %r failed", hook)

    @contextlib.contextmanager
    def reader(self) -> Iterator[Session]:
        """A read transaction. An unreachable database raises DatabaseUnavailable (a 503 at
        the API, a later redelivery on the bus); the pool drops the dead connections."""
        try:
            with self._reader() as session, session.begin():
                yield session
        except DBAPIError as exc:
            if is_disconnect(exc):
                raise DatabaseUnavailable() from exc
            raise

    def run(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one write transaction, retrying deadlocks and serialization failures
        (up to `max_retries`) and an unreachable database (for up to `reconnect_timeout`
        seconds, then DatabaseUnavailable). `work` may therefore run more than once: it must
        read what it decides on inside the transaction, as every caller here does.

        A connection lost during COMMIT leaves the outcome unknown; the retry then meets the
        committed rows, which conditional updates (every state change here) simply skip.
        """
        attempt = 0
        unreachable_since: float | None = None
        while True:
            try:
                with self.writer() as session:
                    return work(session)
            except (OperationalError, DBAPIError) as exc:
                if is_disconnect(exc):
                    now = time.monotonic()
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since >= self.reconnect_timeout:
                        raise DatabaseUnavailable() from exc
                    log.warning("database unreachable (%s), retrying", type(exc.orig).__name__)
                    time.sleep(random.uniform(0.3, 1.0))
                    continue
                attempt += 1
                if not _is_retryable(exc) or attempt > self.max_retries:
                    raise
                delay = min(0.05 * 2**attempt, 1.0) * random.uniform(0.5, 1.0)
                log.warning("retrying transaction after %s (attempt %d)", type(exc.orig).__name__, attempt)
                time.sleep(delay)

    def ping(self) -> None:
        """One round trip to the database (the health check); raises if it is unreachable."""
        with self.reader() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
