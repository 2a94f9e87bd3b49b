"""What a service needs from the running cloud, typed: services take `Deps` (or just a
Session, Settings or Database) rather than the whole `cirrus.runtime.Cloud`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cirrus.bus import Bus
    from cirrus.config import Settings
    from cirrus.db.engine import Database


class Deps(Protocol):
    """Settings, the database and the bus; `cirrus.runtime.Cloud` is one."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def bus(self) -> Bus: ...
