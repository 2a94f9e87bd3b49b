"""The volume role as its own `cirrus serve --role volume` process (issue 15), beside an
API process, on PostgreSQL and RabbitMQ: volumes are made and deleted through it, a volume
asked for while the role is down is made once it is back, and both processes exit 0."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.dbfixtures import fresh_database
from tests.deployment import BROKER_URL, Deployment, free_port, require_broker, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    require_broker()
    with fresh_database("postgresql") as url:
        d = Deployment(tmp_path_factory.mktemp("volumes"), url, [BROKER_URL],
                       env={"CIRRUS_VOLUME_BACKENDS": "fake=fake"})
        try:
            port = free_port()
            d.prepare([port])
            d.add("api-1", "api", port=port, host_name="api-1")
            d.add("volume", "volume", host_name="vol-1")
            for name in d.services:
                d.start(name)
            d.wait_ready()
            yield d
        finally:
            codes = d.stop()
        assert all(code == 0 for code in codes.values()), f"exit codes {codes}:\n{d.describe()}"


def client(d: Deployment) -> httpx.Client:
    return httpx.Client(base_url=f"{d.url}/volume/v3", timeout=30, headers={
        "X-Auth-Token": d.token(), "OpenStack-API-Version": "volume 3.60"})


def status_of(d: Deployment, volume_id: str) -> str | None:
    with client(d) as c:
        r = c.get(f"/volumes/{volume_id}")
    return None if r.status_code == 404 else r.json()["volume"]["status"]


def test_a_volume_is_made_and_deleted_by_the_volume_process(deployment: Deployment) -> None:
    with client(deployment) as c:
        r = c.post("/volumes", json={"volume": {"size": 1, "name": "mp"}})
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    wait_for(lambda: status_of(deployment, vid) == "available", 30, "volume available")
    assert any("created" in e.get("message", "") for e in deployment.logs("volume"))
    with client(deployment) as c:
        assert c.delete(f"/volumes/{vid}").status_code == 202
    wait_for(lambda: status_of(deployment, vid) is None, 30, "volume deleted")


def test_a_volume_asked_for_while_the_role_is_down_is_made_when_it_is_back(
        deployment: Deployment) -> None:
    deployment.kill("volume", signal.SIGKILL)
    with client(deployment) as c:
        r = c.post("/volumes", json={"volume": {"size": 2}})
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    assert status_of(deployment, vid) == "creating"
    deployment.restart("volume")
    wait_for(lambda: status_of(deployment, vid) == "available", 60, "volume available")
