"""A TCP forwarder on 127.0.0.1 that a test can cut or black-hole, like a failing network.

`cut(refuse_for)`: reset every connection and refuse new ones for a while (a broker
restart, a link down). `blackhole()`: keep every connection open but silently swallow
what it carries, and do the same to new connections until `restore()` (a firewall that
dropped its session table: neither side hears a thing, only heartbeats can tell).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time


def _reset(sock: socket.socket) -> None:
    """Close with RST, waking any thread blocked on the socket."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One proxied connection: client <-> upstream, a pump thread each way."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None,
                 swallowing: bool) -> None:
        self.client = client
        self.upstream = upstream
        self.swallowing = swallowing
        self.closed = False
        pairs = [(client, upstream)]
        if upstream is not None:
            pairs.append((upstream, client))
        for src, dst in pairs:
            threading.Thread(target=self._pump, args=(src, dst), daemon=True,
                             name="tcp-proxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket | None) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                if not self.swallowing:  # a silent firewall does not pass closes on
                    self.close()
                return
            if self.swallowing or dst is None:
                continue
            try:
                dst.sendall(data)
            except OSError:
                self.close()
                return

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        _reset(self.client)
        if self.upstream is not None:
            _reset(self.upstream)


class TcpProxy:
    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5672, *,
                 targets: list[tuple[str, int]] | None = None) -> None:
        # Several targets: new connections go to them in turn (a round-robin balancer).
        self.targets = list(targets or [(target_host, target_port)])
        self.target = self.targets[0]
        self._turn = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._refuse_until = 0.0
        self._blackhole = False
        self._closed = False
        self.accepted = 0
        self.refused = 0
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy-accept").start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, user: str = "guest", password: str = "guest", vhost: str = "/") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{vhost}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            with self._lock:
                if self._closed or time.monotonic() < self._refuse_until:
                    self.refused += 1
                    _reset(client)
                    continue
                blackhole = self._blackhole
                target = self.targets[self._turn % len(self.targets)]
                self._turn += 1
            upstream = None
            if not blackhole:
                try:
                    upstream = socket.create_connection(target, timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    _reset(client)
                    continue
            with self._lock:
                self.accepted += 1
                self._links.append(_Link(client, upstream, swallowing=blackhole))

    def cut(self, refuse_for: float) -> None:
        """Reset every open connection and refuse new ones for `refuse_for` seconds."""
        with self._lock:
            self._refuse_until = time.monotonic() + refuse_for
            links, self._links = self._links, []
        for link in links:
            link.close()

    def blackhole(self) -> None:
        """From now on every open connection swallows its traffic; so do new ones."""
        with self._lock:
            self._blackhole = True
            for link in self._links:
                link.swallowing = True

    def restore(self) -> None:
        """New connections are forwarded again (black-holed ones stay dead)."""
        with self._lock:
            self._blackhole = False
            self._refuse_until = 0.0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            links, self._links = self._links, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self._listener.close()
        for link in links:
            link.close()
