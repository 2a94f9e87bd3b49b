"""cirrus.files: the database file a sqlite URL names, read without SQLAlchemy."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from cirrus.files import sqlite_path

URLS = [
    "sqlite:////var/lib/cirrus/cirrus.db",
    "sqlite:///relative/cirrus.db",
    "sqlite+pysqlite:////abs/with%20space.db?timeout=5",
    "sqlite:///file:shared.db?mode=ro&uri=true",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite://localhost/odd.db",
]


@pytest.mark.parametrize("url", URLS)
def test_sqlite_path_reads_a_sqlite_url_as_sqlalchemy_does(url: str) -> None:
    database = make_url(url).database
    expected = None if not database or database == ":memory:" else Path(database)
    assert sqlite_path(url) == expected


@pytest.mark.parametrize("url", [
    "postgresql://cirrus@127.0.0.1/cirrus",
    "mysql+pymysql://cirrus@127.0.0.1/cirrus",
    "sqlitex:///not/sqlite.db",
])
def test_sqlite_path_is_none_for_other_databases(url: str) -> None:
    assert sqlite_path(url) is None
