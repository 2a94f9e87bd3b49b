"""Cirrus's own admin API: run-time log level (admin only, fanned out to every process) and
the health check for load balancers."""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from cirrus.observe.rpcapi import ADMIN_TOPIC
from cirrus.runtime import Cloud
from tests.conftest import Caller

URL = "/cirrus/v1/log-level"


@pytest.fixture(autouse=True)
def restore_levels() -> Iterator[None]:
    saved = {name: lg.level for name, lg in logging.Logger.manager.loggerDict.items()
             if isinstance(lg, logging.Logger)}
    root = logging.getLogger().level
    yield
    logging.getLogger().setLevel(root)
    for name, lg in logging.Logger.manager.loggerDict.items():
        if isinstance(lg, logging.Logger):
            lg.setLevel(saved.get(name, logging.NOTSET))


@pytest.fixture
def fanned_out(cloud: Cloud) -> queue.Queue:
    """What another process subscribed to the admin topic would receive."""
    received: queue.Queue = queue.Queue()
    cloud.bus.subscribe(ADMIN_TOPIC, {"set_log_level": lambda ctx, p: received.put((ctx, p))},
                        workers=1, fanout=True)
    return received


def test_admin_reads_the_levels(api: TestClient, admin: Caller) -> None:
    logging.getLogger().setLevel("WARNING")
    r = api.get(URL, headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["level"] == "WARNING"
    assert isinstance(r.json()["loggers"], dict)
    assert r.headers["x-openstack-request-id"].startswith("req-")


def test_admin_changes_the_root_level(api: TestClient, admin: Caller) -> None:
    logging.getLogger().setLevel("INFO")
    r = api.put(URL, headers=admin.headers, json={"level": "debug"})
    assert r.status_code == 200
    assert r.json()["level"] == "DEBUG"
    assert r.json()["propagated"] is True
    assert logging.getLogger().level == logging.DEBUG
    assert api.get(URL, headers=admin.headers).json()["level"] == "DEBUG"


def test_admin_changes_one_logger(api: TestClient, admin: Caller) -> None:
    r = api.put(URL, headers=admin.headers, json={"level": "ERROR", "logger": "cirrus.compute"})
    assert r.status_code == 200
    assert r.json()["loggers"]["cirrus.compute"] == "ERROR"
    assert logging.getLogger("cirrus.compute").level == logging.ERROR
    assert not logging.getLogger("cirrus.compute.conductor").isEnabledFor(logging.WARNING)


def test_the_change_is_fanned_out_to_every_process(api: TestClient, admin: Caller,
                                                   fanned_out: queue.Queue) -> None:
    r = api.put(URL, headers=admin.headers, json={"level": "warning", "logger": "cirrus.agent"})
    assert r.status_code == 200
    ctx, payload = fanned_out.get(timeout=5)
    assert payload == {"level": "WARNING", "logger": "cirrus.agent"}
    assert ctx.request_id == r.headers["x-openstack-request-id"]


def test_a_bus_failure_still_changes_this_process_and_says_so(
        api: TestClient, admin: Caller, cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(cloud.bus, "fanout", broken)
    r = api.put(URL, headers=admin.headers, json={"level": "CRITICAL"})
    assert r.status_code == 200
    assert r.json()["propagated"] is False
    assert logging.getLogger().level == logging.CRITICAL


@pytest.mark.parametrize("caller", ["member", "reader"])
def test_non_admins_are_forbidden(api: TestClient, caller: str,
                                  request: pytest.FixtureRequest) -> None:
    headers = request.getfixturevalue(caller).headers
    before = logging.getLogger().level
    for r in (api.get(URL, headers=headers),
              api.put(URL, headers=headers, json={"level": "DEBUG"})):
        assert r.status_code == 403
        assert r.json()["error"]["code"] == 403
    assert logging.getLogger().level == before


def test_no_token_is_unauthorized(api: TestClient) -> None:
    r = api.put(URL, json={"level": "DEBUG"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == 401


@pytest.mark.parametrize(("body", "says"), [
    ({"level": "LOUD"}, "unknown log level"),
    ({"level": "NOTSET"}, "unknown log level"),
    ({}, "'level' is a required property"),
    ({"level": 10}, "level"),
    ({"level": "DEBUG", "logger": "bad name!"}, "logger"),
    ({"level": "DEBUG", "colour": "red"}, "Additional properties"),
    ([], "body"),
])
def test_bad_bodies_are_400_and_change_nothing(api: TestClient, admin: Caller, body: object,
                                               says: str) -> None:
    before = logging.getLogger().level
    r = api.put(URL, headers=admin.headers, json=body)
    assert r.status_code == 400, r.text
    assert says in r.json()["error"]["message"]
    assert logging.getLogger().level == before


def test_a_malformed_body_is_400(api: TestClient, admin: Caller) -> None:
    r = api.put(URL, headers={**admin.headers, "Content-Type": "application/json"},
                content=b"{level")
    assert r.status_code == 400


def test_other_methods_are_405(api: TestClient, admin: Caller) -> None:
    r = api.delete(URL, headers=admin.headers)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == 405


def test_health_answers_without_a_token(api: TestClient) -> None:
    r = api.get("/cirrus/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_health_is_503_when_the_database_is_unreachable(api: TestClient, cloud: Cloud,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable():
        raise ConnectionRefusedError("db down")

    monkeypatch.setattr(cloud.db, "reader", unreachable)
    r = api.get("/cirrus/v1/health")
    assert r.status_code == 503
    assert "database" in r.json()["error"]["message"]


def test_unknown_admin_paths_are_404(api: TestClient, admin: Caller) -> None:
    assert api.get("/cirrus/v1/nothing", headers=admin.headers).status_code == 404
