"""Insert-or-learn-it-exists, the one pattern every race in networking code relies on.

A unique key in the database (an address in a subnet, a MAC on a network, a project's
default security group, a project's auto network) decides which of several concurrent
writers wins. The loser's INSERT fails inside a SAVEPOINT, so its transaction goes on and
can try another candidate or read the winner's row.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

Row = TypeVar("Row")


def try_insert(s: Session, row: object) -> bool:
    """Insert `row` in a savepoint: True if it went in, False if a unique key refused it.

    Other errors (deadlocks, lost connections) are left to the enclosing transaction,
    whose retry (cirrus.db.engine.Database.run) starts over.
    """
    savepoint = s.begin_nested()
    try:
        s.add(row)
        s.flush()
    except IntegrityError:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def read_latest(s: Session, model: type[Row], key: object) -> Row | None:
    """The row as committed now, even inside a repeatable-read snapshot (MariaDB) that
    predates it: a locking read, for after try_insert learnt that someone else's row won."""
    mapper_key = inspect(model).primary_key
    keys = key if isinstance(key, tuple) else (key,)
    query = select(model).where(*(col == value for col, value in zip(mapper_key, keys, strict=True)))
    return s.scalar(query.with_for_update(read=True).execution_options(populate_existing=True))
