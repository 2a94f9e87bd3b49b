"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for the load phases.

Why not httpx: on these 2-core machines httpx's client needs more CPU per request than the
server under test, so the figures measured the client (about 1,500 GET/s from threads,
400/s from its async pool at 20 connections, against 4,400/s with this client). httpx
still does the setup calls. One `Connection` per worker: concurrency C = C connections.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> object:
        return jsonlib.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class Connection:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.default_headers = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        return self._streams

    async def close(self) -> None:
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def request(self, method: str, path: str, *, json: object = None,
                      headers: dict[str, str] | None = None) -> Response:
        body = b"" if json is None else jsonlib.dumps(json).encode()
        all_headers = {**self.default_headers, **(headers or {}), "Content-Length": str(len(body))}
        if json is not None:
            all_headers["Content-Type"] = "application/json"
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in all_headers.items()) + "\r\n"
        for attempt in (1, 2):
            reader, writer = await self._open()
            writer.write(head.encode() + body)
            try:
                return await self._read(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                # The server closed an idle keep-alive connection before reading this request.
                await self.close()
                if attempt == 2 or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                    raise
        raise AssertionError("unreachable")

    async def _read(self, reader: asyncio.StreamReader) -> Response:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await reader.read()
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, headers, body)
