"""Shared by the block-storage API tests: a cloud whose volume role runs on the fake
backend, and waits for a volume's or snapshot's status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from starlette.testclient import TestClient

from cirrus.config import Settings
from cirrus.runtime import Cloud
from tests.conftest import ADMIN_PASSWORD, Caller


def volume_cloud(settings: Settings, **overrides: Any) -> Iterator[Cloud]:
    settings.volume_backends = {"fake": "fake"}
    for key, value in overrides.items():
        setattr(settings, key, value)
    c = Cloud(settings)
    c.upgrade_schema()
    c.bootstrap(ADMIN_PASSWORD)
    c.start_roles(["volume"])
    yield c
    c.stop()


def vol(caller: Caller, version: str = "3.60") -> dict[str, str]:
    return {**caller.headers, "OpenStack-API-Version": f"volume {version}"}


def url(caller: Caller, path: str) -> str:
    return f"/volume/v3/{caller.project_id}{path}"


def wait_for(api: TestClient, caller: Caller, path: str, key: str, status: str,
             timeout: float = 10.0) -> dict:
    """GET path until body[key]["status"] is `status` (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        r = api.get(url(caller, path), headers=vol(caller))
        assert r.status_code == 200, r.text
        body = r.json()[key]
        if body["status"] == status:
            return body
        time.sleep(0.02)
    raise AssertionError(f"{path}: status {body.get('status')!r}, never {status!r}")


def wait_gone(api: TestClient, caller: Caller, path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get(url(caller, path), headers=vol(caller)).status_code == 404:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} still there after {timeout} s")


def create_volume(api: TestClient, caller: Caller, size: int = 1, **fields: Any) -> dict:
    r = api.post(url(caller, "/volumes"), headers=vol(caller),
                 json={"volume": {"size": size, **fields}})
    assert r.status_code == 202, r.text
    return wait_for(api, caller, f"/volumes/{r.json()['volume']['id']}", "volume", "available")
