"""Serving the API over HTTP or HTTPS with uvicorn, and stopping it within the bound.

`serve_http` runs until SIGTERM/SIGINT. The stop (cirrus.shutdown) closes the listening
socket at once; requests that arrive on a connection already open are answered 503; the
ones in progress may finish until the drain phase ends, then the bus is interrupted (a
request blocked on the broker fails over to its 503 path); whatever is still unanswered at
the abort phase gets a 503 in its service's error shape and is abandoned.

TLS: `tls_context` builds the server's SSLContext: TLS 1.2 at least, forward-secret AEAD
ciphers only (Mozilla's "intermediate" list), no compression, no renegotiation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cirrus import shutdown

if TYPE_CHECKING:
    from cirrus.runtime import Cloud

log = logging.getLogger(__name__)

# Mozilla's intermediate configuration (TLS 1.2 part; TLS 1.3 suites are always on).
TLS_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
               "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
               "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
               "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305")

STOPPING_MESSAGE = "The service is stopping; the request was not completed. Try again shortly."


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """The server side of HTTPS: certificate chain and key from PEM files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    context.load_cert_chain(cert_file, key_file)
    return context


class _InFlight:
    __slots__ = ("send", "scope", "started", "abandoned", "task")

    def __init__(self, scope: dict, send: Callable) -> None:
        self.scope = scope
        self.send = send
        self.started = False
        self.abandoned = False
        self.task = asyncio.current_task()


async def _answer_503(scope: dict, send: Callable) -> None:
    from cirrus.api.errors import error_response, service_of

    response = error_response(service_of(scope.get("path", "")), 503, STOPPING_MESSAGE,
                              {"Connection": "close", "Retry-After": "5"})

    async def no_receive() -> dict:  # a plain response never reads
        return {"type": "http.disconnect"}

    await response(scope, no_receive, send)


class ShutdownGuard:
    """ASGI middleware: knows the requests in progress; once the stop has begun answers new
    ones 503, and at the abort phase answers 503 for each one still without a response."""

    def __init__(self, app: Any, stopper: shutdown.Stopper) -> None:
        self.app = app
        self.stopper = stopper
        self.inflight: dict[int, _InFlight] = {}
        # Told of each abandoned request's task: the server stops waiting for it (uvicorn
        # would cancel it, which ends nothing: its thread runs on).
        self.forget: Callable[[Any], None] | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.stopper.requested.is_set():
            await _answer_503(scope, send)
            return
        entry = _InFlight(scope, send)
        key = id(entry)
        self.inflight[key] = entry

        async def guarded_send(message: dict) -> None:
            if entry.abandoned:
                return  # answered 503 already; what the handler says now goes nowhere
            if message["type"] == "http.response.start":
                entry.started = True
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        finally:
            self.inflight.pop(key, None)

    def busy(self) -> int:
        return len(self.inflight)

    async def abort_all(self) -> None:
        """Answer 503 for every request that has not started its response; abandon all."""
        entries = list(self.inflight.values())
        self.inflight.clear()
        answered = 0
        for entry in entries:
            entry.abandoned = True
            if self.forget is not None and entry.task is not None:
                self.forget(entry.task)
            if entry.started:
                continue  # a streamed body half sent: the connection's close ends it
            with contextlib.suppress(Exception):
                await _answer_503(entry.scope, entry.send)
                answered += 1
        self.stopper.abandoned += len(entries)
        if entries:
            log.warning("stopping: %d request(s) still running answered 503 and abandoned "
                        "(%d mid-response cut)", answered, len(entries) - answered)


FRESH_GRACE = 0.5  # seconds a connection accepted just before the stop gets to send its request


def _protocol_class(base: type) -> type:
    """uvicorn's httptools protocol (`base`: cirrus.api.limits' bounded one), but a connection accepted whose request has not been
    read yet is not closed at the stop (the client would see a reset with no answer): it
    gets FRESH_GRACE seconds to send it, and is answered 503. Idle keep-alive connections
    close at once, as in uvicorn."""
    class GracefulProtocol(base):
        _requests = 0
        _reading = False

        def on_message_begin(self) -> None:
            self._requests += 1
            self._reading = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._reading = False
            super().on_headers_complete()

        def shutdown(self) -> None:
            fresh = self.cycle is None and (self._requests == 0 or self._reading)
            if fresh and not self.transport.is_closing():
                self.loop.call_later(FRESH_GRACE, super().shutdown)
                return
            super().shutdown()

    return GracefulProtocol


def serve_http(cloud: Cloud, host: str, port: int, stopper: shutdown.Stopper,
               on_ready: Callable[[], None] | None = None,
               ssl_context: ssl.SSLContext | None = None) -> None:
    """Serve the API until SIGTERM/SIGINT, then stop within the stopper's phases."""
    import uvicorn

    from cirrus.api.app import create_app
    from cirrus.api.limits import http_protocol

    guard = ShutdownGuard(create_app(cloud), stopper)
    loop_box: list[asyncio.AbstractEventLoop] = []

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            loop_box.append(asyncio.get_running_loop())
            await super().startup(sockets=sockets)
            if on_ready is not None and not self.should_exit:
                on_ready()  # only now does the port accept connections

        def handle_exit(self, sig: int, frame) -> None:
            first = stopper.begin(sig)
            super().handle_exit(sig, frame)
            if first:
                _schedule_phases()

    def _abort() -> None:
        if loop_box:
            asyncio.run_coroutine_threadsafe(guard.abort_all(), loop_box[0])

    def _schedule_phases() -> None:
        idle = lambda: guard.busy() == 0  # noqa: E731
        shutdown.after(stopper, shutdown.DRAIN, cloud.bus.interrupt, until=idle,
                       name="shutdown-interrupt-bus")
        shutdown.after(stopper, shutdown.ABORT, _abort, until=idle, name="shutdown-abort")

    grace = max(0.5, (shutdown.ABORT + 0.05) * stopper.timeout)
    config = uvicorn.Config(
        guard, host=host, port=port, log_config=None, access_log=False,
        http=_protocol_class(http_protocol(cloud.settings)), loop="uvloop", lifespan="off", timeout_keep_alive=30,
        # uvicorn cancels what is left (only abandoned requests) a little after the abort
        # (annotated int, it is an asyncio.timeout delay: a float works).
        timeout_graceful_shutdown=grace,  # type: ignore[arg-type]
    )
    config.load()
    if ssl_context is not None:
        config.ssl = ssl_context
    server = _Server(config)
    guard.forget = server.server_state.tasks.discard
    # uvicorn re-raises the signal that stopped it once it has shut down, with the handlers
    # it found installed; installing no-op ones lets Cirrus stop its roles and exit 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    # Not asyncio.run: its clean-up waits for every task, and a request abandoned in a
    # worker thread (CPU-bound, blocked on the database) would hold the stop past its bound.
    factory = config.get_loop_factory()
    loop = factory() if factory is not None else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(server.serve())
    finally:
        _wind_down(loop, stopper)


def _wind_down(loop: asyncio.AbstractEventLoop, stopper: shutdown.Stopper) -> None:
    """Cancel what is left on the loop and give it a moment: an abandoned upload then
    discards its staging file and puts its image back to queued. A task waiting on a thread
    (CPU-bound, blocked on the database) cannot end so: it is left to the process exit."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    grace = 0.2
    if stopper.requested.is_set():
        grace = min(1.0, max(0.05, stopper.left(shutdown.ABORT + 0.08)))
    if pending:
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait(pending, timeout=grace))
    if all(t.done() for t in pending):
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    asyncio.set_event_loop(None)


def self_signed_pair(directory, hosts: list[str], days: int = 825) -> tuple[str, str]:
    """`<directory>/cert.pem` and `key.pem`, made on the first call (an ECDSA P-256 key,
    0600, and a certificate naming `hosts` as subject alternative names); kept after."""
    import datetime
    import ipaddress
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from cirrus import files

    directory = Path(directory)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.is_file() and key_path.is_file():
        return str(cert_path), str(key_path)
    files.make_dirs(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(h for h in hosts if h):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "cirrus"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cirrus all-in-one")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # Its own CA, so clients can trust it as `cacert` (clouds.yaml) or a CA bundle.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    files.write_private(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), secret=True)
    files.write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    log.info("made a self-signed TLS certificate %s for %s", cert_path, ", ".join(hosts))
    return str(cert_path), str(key_path)
