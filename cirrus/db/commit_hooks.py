"""Work that follows a committed write transaction, from what its flushes noted.

A capability that must act on every change of some rows, whatever code path made it (DHCP,
cirrus.network.dhcp.changes; routers, cirrus.network.l3.changes), watches every session's
flush (`on_flush`) and notes in the session's `info` what changed (`Notes`). After the
commit, `Database.writer` hands that info to its commit hooks (`Database.commit_hooks`),
where a `Notifier` reads the notes back and acts on them (sends messages). Listening to
every flush, rather than calling something from each service, means no code path that
changes those rows can forget to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session


class Notes:
    """Ids noted in a write session's `info` under `key`, each with the hosts that must
    hear of it (a host that served it and no longer does)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def note(self, s: Session, item: str | None, host: str | None = None) -> None:
        if not item:
            return
        hosts = s.info.setdefault(self.key, {}).setdefault(item, set())
        if host:
            hosts.add(host)

    def touched(self, info: Mapping[str, Any]) -> dict[str, set[str]]:
        """What a committed transaction noted (its session's info)."""
        return dict(info.get(self.key) or {})

    def forget(self, s: Session) -> None:
        """Drop what this transaction noted (a notifier's own writes need no second round)."""
        s.info.pop(self.key, None)


def on_flush(notice: Callable[[Session, object], None]) -> None:
    """Have `notice(session, obj)` called, before each flush of any session, for every
    object the flush adds, changes or deletes."""
    def before_flush(s: Session, _context: object, _instances: object) -> None:
        for obj in (*s.new, *s.dirty, *s.deleted):
            notice(s, obj)

    event.listen(Session, "before_flush", before_flush)


def previous(obj: object, attribute: str) -> list[Any]:
    """The values `attribute` of `obj` had before the change being flushed."""
    return list(inspect(obj).attrs[attribute].history.deleted or ())


class Notifier:
    """A commit hook of the database (`on_commit`): hands what a transaction noted to
    `sync`. Its failure is logged and goes no further: the change is committed, and the
    next full sync catches up."""

    def __init__(self, log: logging.Logger, area: str, kind: str) -> None:
        self.log = log
        self.area, self.kind = area, kind  # for the log: "dhcp", "networks"

    def touched(self, info: Mapping[str, Any]) -> dict[str, set[str]]:
        """What the transaction of `info` changed: id -> hosts that must hear of it too."""
        raise NotImplementedError

    def sync(self, touched: dict[str, set[str]]) -> None:
        raise NotImplementedError

    def on_commit(self, info: dict[str, Any]) -> None:
        touched = self.touched(info)
        if not touched:
            return
        try:
            self.sync(touched)
        except Exception:
            self.log.exception("%s: sync of %s %s failed", self.area, self.kind,
                               ", ".join(sorted(touched)))
