"""A role's own heartbeat row: written at start, refreshed every interval, and a failing
beat logged and retried (cirrus.hosts.heartbeat)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cirrus.db import migrate
from cirrus.db.engine import Database
from cirrus.db.models import Service
from cirrus.hosts.heartbeat import ServiceHeartbeat
from tests.unit.test_observe import entries


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'hb.db'}")
    migrate.upgrade(database.engine)
    yield database
    database.dispose()


def test_a_heartbeat_row_appears_at_start_and_is_refreshed(db: Database) -> None:
    beat = ServiceHeartbeat(db, "ctl-1", "cirrus-scheduler", "scheduler", interval=0.05)
    beat.start()
    try:
        with db.reader() as s:
            first = s.scalar(select(Service).where(Service.binary == "cirrus-scheduler"))
            assert (first.host, first.topic) == ("ctl-1", "scheduler")
        deadline = time.monotonic() + 5
        count = first.report_count
        while time.monotonic() < deadline and count <= first.report_count:
            time.sleep(0.05)
            with db.reader() as s:
                count = s.scalar(select(Service.report_count)
                                 .where(Service.binary == "cirrus-scheduler"))
    finally:
        beat.stop()
    assert count > first.report_count


def test_a_failing_heartbeat_is_logged_and_retried(db: Database, log_file: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    beat = ServiceHeartbeat(db, "ctl-1", "cirrus-scheduler", "scheduler", interval=0.05)
    beat.start()
    calls = []

    def broken(work):
        calls.append(1)
        raise RuntimeError("database restarting")

    monkeypatch.setattr(db, "run", broken)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(calls) < 2:
        time.sleep(0.05)
    beat.stop()
    assert len(calls) >= 2  # the loop survived the first failure
    assert any("heartbeat of ctl-1 failed" in e["message"] for e in entries(log_file))
