"""A caller's X-OpenStack-Request-ID (Nova's global request id) follows its request through
every role's logs beside Cirrus's own request id, which the response still returns."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from cirrus.observe.logging import JsonFormatter
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every cirrus log line of the test, formatted as the services write them (the request
    ids are read when the line is written, in the thread that does the work)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cirrus")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


def entries(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_callers_request_id_is_logged_by_every_role_that_builds_its_server(
        api, cloud, member, json_log):
    callers = f"req-{uuid.uuid4()}"
    headers = {**member.compute(), "X-OpenStack-Request-ID": callers}
    r = api.post("/compute/v2.1/servers",
                 json=server_body(add_flavor(cloud), add_image(cloud)), headers=headers)
    assert r.status_code == 202, r.text
    ours = r.headers["x-openstack-request-id"]
    wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")

    tagged = [e for e in entries(json_log) if e.get("global_request_id") == callers]
    assert ours != callers and ours.startswith("req-")
    assert {e["request_id"] for e in tagged} == {ours}
    loggers = {e["logger"] for e in tagged}
    assert {"cirrus.api.access", "cirrus.scheduler.service", "cirrus.agent.service",
            "cirrus.compute.conductor"} <= loggers


@pytest.mark.parametrize("given", ["not-a-request-id", "req-1234",
                                   "req-0c1c5b5e-8a51-4a4e-9d3e-2f6f3d0b7a11\nforged log line"],
                         ids=["not-a-uuid", "short", "uuid-with-newline"])
def test_a_malformed_request_id_is_ignored(api, member, json_log, given):
    r = api.get("/compute/v2.1/flavors",
                headers={**member.compute(), "X-OpenStack-Request-ID": given})
    assert r.status_code == 200
    lines = [e for e in entries(json_log) if e["request_id"] == r.headers["x-openstack-request-id"]]
    assert lines and all("global_request_id" not in e for e in lines)
