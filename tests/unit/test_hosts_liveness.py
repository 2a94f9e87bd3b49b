"""The liveness rule: up while the last heartbeat is at most service_down_time old and no
operator forced the service down."""

from __future__ import annotations

import datetime as dt

from cirrus.hosts.liveness import is_up

NOW = dt.datetime(2026, 1, 1, 12, 0, 0)


def test_a_recent_heartbeat_is_up() -> None:
    assert is_up(False, NOW - dt.timedelta(seconds=60), 60, NOW)


def test_a_heartbeat_older_than_the_down_time_is_down() -> None:
    assert not is_up(False, NOW - dt.timedelta(seconds=61), 60, NOW)


def test_forced_down_is_down_however_recent_the_heartbeat() -> None:
    assert not is_up(True, NOW, 60, NOW)


def test_never_seen_is_down() -> None:
    assert not is_up(None, None, 60, NOW)
