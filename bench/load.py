"""Load phases: create and delete servers, issue and validate tokens, the HTTP floor."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.api import COMPUTE_VERSION, Session, password_auth_body
from bench.http import Connection

POLL_INTERVAL = 0.05
SERVER_TIMEOUT = 300.0


@dataclass
class PhaseResult:
    count: int = 0  # operations that succeeded
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the phase
    latencies: list[float] = field(default_factory=list)  # per operation, seconds

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def connection(s: Session, index: int, token: bool = True) -> Connection:
    """The index-th load connection, to the API that `s.load_url(index)` names."""
    headers = {"X-Auth-Token": s.token, "OpenStack-API-Version": COMPUTE_VERSION} if token else {}
    return Connection(s.load_url(index), headers)


async def run_workers(s: Session, concurrency: int, jobs: int,
                   job: Callable[[Connection, int], Awaitable[None]]) -> float:
    """Run `job(conn, i)` for i in range(jobs) on `concurrency` connections (spread over
    the session's load URLs); wall seconds."""
    next_job = iter(range(jobs))

    async def worker(index: int) -> None:
        conn = connection(s, index)
        try:
            for i in next_job:
                await job(conn, i)
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return time.perf_counter() - t0


async def _create_servers(s: Session, n: int, concurrency: int, flavor: str, image: str,
                          ids: list[str]) -> PhaseResult:
    result = PhaseResult()
    run = uuid.uuid4().hex[:6]
    servers = "/compute/v2.1/servers"

    async def create(conn: Connection, i: int) -> None:
        started = time.perf_counter()
        body = {"server": {"name": f"bench-{run}-{i}", "flavorRef": flavor, "imageRef": image,
                           "networks": "none"}}
        r = await conn.request("POST", servers, json=body)
        if r.status != 202:
            result.errors.append(f"POST /servers {r.status}: {r.text[:200]}")
            return
        server_id = r.json()["server"]["id"]
        ids.append(server_id)
        while time.perf_counter() - started < SERVER_TIMEOUT:
            r = await conn.request("GET", f"{servers}/{server_id}")
            status = r.json().get("server", {}).get("status") if r.status == 200 else None
            if status == "ACTIVE":
                result.latencies.append(time.perf_counter() - started)
                result.count += 1
                return
            if status == "ERROR" or r.status != 200:
                result.errors.append(f"server {server_id}: {status or r.status} {r.text[:200]}")
                return
            await asyncio.sleep(POLL_INTERVAL)
        result.errors.append(f"server {server_id}: not ACTIVE after {SERVER_TIMEOUT:.0f}s")

    result.seconds = await run_workers(s, concurrency, n, create)
    return result


async def _delete_servers(s: Session, ids: list[str], concurrency: int) -> PhaseResult:
    result = PhaseResult()

    async def delete(conn: Connection, i: int) -> None:
        path = f"/compute/v2.1/servers/{ids[i]}"
        started = time.perf_counter()
        r = await conn.request("DELETE", path)
        if r.status not in (202, 204):
            result.errors.append(f"DELETE {ids[i]} {r.status}: {r.text[:200]}")
            return
        while time.perf_counter() - started < SERVER_TIMEOUT:
            r = await conn.request("GET", path)
            if r.status == 404:
                result.latencies.append(time.perf_counter() - started)
                result.count += 1
                return
            await asyncio.sleep(POLL_INTERVAL)
        result.errors.append(f"server {ids[i]}: still there after {SERVER_TIMEOUT:.0f}s")

    result.seconds = await run_workers(s, concurrency, len(ids), delete)
    return result


def create_and_delete(s: Session, n: int, concurrency: int, flavor: str,
                      image: str) -> tuple[PhaseResult, PhaseResult]:
    """N servers to ACTIVE (each worker POSTs, then polls GET), then all deleted to 404."""
    ids: list[str] = []
    created = asyncio.run(_create_servers(s, n, concurrency, flavor, image, ids))
    deleted = asyncio.run(_delete_servers(s, ids, concurrency))
    return created, deleted


def _for_duration(s: Session, seconds: float, concurrency: int, method: str, path: str,
                  expect: int, *, json: object = None, headers: dict[str, str] | None = None,
                  token: bool = True) -> PhaseResult:
    """Send the same request from `concurrency` connections for `seconds`."""
    result = PhaseResult()

    async def worker(index: int, deadline: float) -> None:
        conn = connection(s, index, token)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                r = await conn.request(method, path, json=json, headers=headers)
                if r.status == expect:
                    result.count += 1
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.errors.append(f"{method} {path} {r.status}: {r.text[:200]}")
        finally:
            await conn.close()

    async def main() -> None:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i, t0 + seconds) for i in range(concurrency)))
        result.seconds = time.perf_counter() - t0

    asyncio.run(main())
    return result


def token_issue(s: Session, auth: dict, seconds: float, concurrency: int) -> PhaseResult:
    return _for_duration(s, seconds, concurrency, "POST", "/identity/v3/auth/tokens", 201,
                         json=password_auth_body(auth), token=False)


def token_validate(s: Session, seconds: float, concurrency: int) -> PhaseResult:
    return _for_duration(s, seconds, concurrency, "GET", "/identity/v3/auth/tokens", 200,
                         headers={"X-Subject-Token": s.token})


def http_floor(s: Session, seconds: float, concurrency: int) -> PhaseResult:
    """The cheapest round trip this server answers: GET /compute/v2.1 (the version document,
    no token)."""
    return _for_duration(s, seconds, concurrency, "GET", "/compute/v2.1", 200, token=False)


def in_process_validate(database_url: str, token: str, seconds: float) -> PhaseResult:
    """TokenProvider.validate in this process, on the all-in-one's database: no HTTP at all."""
    from sqlalchemy.engine import make_url

    from cirrus.db.engine import Database
    from cirrus.identity.tokens import TokenProvider

    db = Database(database_url)
    try:
        # The all-in-one's keys: <data_dir>/keys/token beside its <data_dir>/cirrus.db.
        key_dir = Path(make_url(database_url).database).parent / "keys" / "token"
        provider = TokenProvider(db, key_dir)
        provider.validate(token)  # loads the signing key and the revocations
        result = PhaseResult()
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            for _ in range(100):
                provider.validate(token)
            result.count += 100
        result.seconds = time.perf_counter() - t0
        return result
    finally:
        db.dispose()
