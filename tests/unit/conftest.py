"""Fixtures shared by the unit tests of logging and heartbeats: a JSON log file, and the
root logger put back as it was afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from cirrus.observe.logging import setup_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {name: lg.level for name, lg in logging.Logger.manager.loggerDict.items()
             if isinstance(lg, logging.Logger)}
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        if h not in handlers:
            h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    for name, lg in logging.Logger.manager.loggerDict.items():
        if isinstance(lg, logging.Logger):
            lg.setLevel(named.get(name, logging.NOTSET))


@pytest.fixture
def log_file(tmp_path: Path, restore_logging: None) -> Path:
    path = tmp_path / "cirrus.log"
    setup_logging("INFO", str(path), service="cirrus-test")
    return path
