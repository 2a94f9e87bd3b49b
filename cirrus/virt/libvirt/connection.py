"""The libvirt connection the driver's parts share, and what they all do with a domain.

One connection per driver, shared by the agent's worker threads (libvirt connections are
thread-safe; no event loop is needed for what is done here), opened on first use and opened
again when it was closed (libvirtd restarted). `LibvirtBase` holds it and the state the other
parts (host.py, build.py, drive.py, operations.py, interfaces.py) read; driver.py puts them
together.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import libvirt

from cirrus.config import Settings
from cirrus.virt.driver import SpawnError, VirtDriver
from cirrus.virt.libvirt.images import ImageCache
from cirrus.virt.libvirt.storage import StoragePools

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL = 0.2  # seconds between state checks while waiting for a guest
# Errors that mean the connection, not the request, failed: reconnect and try once more.
CONNECTION_ERRORS = (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_NO_CONNECT,
                     libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_RPC)

# libvirt-python prints every error to stderr unless a handler takes them; the driver turns
# them into exceptions with context instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class LibvirtBase(VirtDriver):
    """The connection and the settings every part of the libvirt driver works with."""

    settings: Settings
    host: str
    uri: str
    virt_type: str
    pools: StoragePools
    images: ImageCache
    _conn: libvirt.virConnect | None
    _conn_lock: threading.Lock

    def _connection(self) -> libvirt.virConnect:
        with self._conn_lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.close()
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                self._conn = None
                raise SpawnError(f"cannot connect to libvirt at {self.uri} on {self.host}: "
                                 f"{exc.get_error_message()}") from exc
            return self._conn

    def _call(self, what: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        """fn(connection), once more on a fresh connection if the first one broke; a libvirt
        error becomes a SpawnError saying what was being done."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                return fn(conn)
            except libvirt.libvirtError as exc:
                if attempt == 1 and exc.get_error_code() in CONNECTION_ERRORS:
                    log.warning("libvirt connection lost during %s: reconnecting", what)
                    with self._conn_lock:
                        self._conn = None
                    continue
                raise SpawnError(f"{what} failed on {self.host}: "
                                 f"{exc.get_error_message()}") from exc
        raise AssertionError("unreachable")

    def _domain(self, uuid: str) -> libvirt.virDomain | None:
        def lookup(conn: libvirt.virConnect) -> libvirt.virDomain | None:
            try:
                return conn.lookupByUUIDString(uuid)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise
        return self._call(f"looking up {uuid}", lookup)

    def _require(self, uuid: str) -> libvirt.virDomain:
        dom = self._domain(uuid)
        if dom is None:
            raise SpawnError(f"no domain for instance {uuid} on {self.host}")
        return dom

    def _is_active(self, dom: libvirt.virDomain, uuid: str) -> bool:
        return bool(self._call(f"reading state of {uuid}", lambda c: dom.isActive()))

    def _stop(self, dom: libvirt.virDomain, uuid: str) -> None:
        """Pull the plug; a domain already off is fine."""
        def destroy(_conn: libvirt.virConnect) -> None:
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # not running
                    raise
        self._call(f"stopping {uuid}", destroy)


def best_effort(action: Callable[[], object]) -> bool:
    """Run a best-effort libvirt call (guest agent, clean-up); whether it worked."""
    try:
        action()
    except libvirt.libvirtError as exc:
        log.debug("best-effort libvirt call failed: %s", exc.get_error_message())
        return False
    return True


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll `done` every POLL s for up to `timeout` s; whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
