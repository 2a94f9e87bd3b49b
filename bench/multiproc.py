"""The multi-process target: every role its own `cirrus serve` process, on PostgreSQL + RabbitMQ.

The deployment is the test suite's harness (tests/deployment.py): api-1 and api-2,
conductor, scheduler and agent-1..3 (fake hosts node-1..3), on a fresh PostgreSQL database
(tests/dbfixtures.py, dropped afterwards) and a queue prefix of its own on the broker. The
fake hosts, quotas and log level are the all-in-one's (`server.BENCH_ENV`); the liveness
timings are the production defaults, not the harness's faster test ones, so both targets
do the same background work.

The load goes to the two API processes directly (connection i to API i mod 2), not through
the harness's balancer: that one is a Python thread-per-connection proxy that would run on
the same two cores and measure itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench.server import BENCH_ENV
from tests.dbfixtures import ADMIN_URLS, fresh_database
from tests.deployment import BROKER_URL, Deployment, broker_problem

APIS = 2
AGENTS = 3
# cirrus.config's defaults (tests/deployment.py shortens them for tests).
PRODUCTION_TIMINGS = {
    "CIRRUS_HEARTBEAT_INTERVAL": "10",
    "CIRRUS_SERVICE_DOWN_TIME": "60",
    "CIRRUS_AMQP_HEARTBEAT": "30",
}


class ServiceUnavailable(RuntimeError):
    """PostgreSQL or RabbitMQ cannot be reached: the target is skipped, saying which and why."""


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards. The fixture's skip (or, with
    CIRRUS_REQUIRE_SERVICES=1, failure) becomes ServiceUnavailable: a bench is not a test."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_database("postgresql"))
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:
            raise ServiceUnavailable(f"{exc.msg} (admin URL {ADMIN_URLS['postgresql']})") from None
        yield url


@contextlib.contextmanager
def deployment(workdir: Path) -> Iterator[Deployment]:
    """The standard deployment, started and ready (every API answers, every agent is up)."""
    problem = broker_problem(BROKER_URL)
    if problem:
        raise ServiceUnavailable(f"RabbitMQ is not reachable at {BROKER_URL} ({problem}); "
                                 "start it with `rabbitmq-server -detached`")
    with _postgres_database() as url, Deployment(
            workdir, url, [BROKER_URL], env={**BENCH_ENV, **PRODUCTION_TIMINGS}) as d:
        try:
            d.start_standard(apis=APIS, agents=AGENTS)
            d.wait_ready()
        except AssertionError as exc:  # the harness's way of saying a process did not start
            raise RuntimeError(f"the deployment did not start: {exc}\n{d.describe()}") from None
        yield d


def api_urls(d: Deployment) -> list[str]:
    """Each API process's own URL (not the balancer's)."""
    return [f"http://127.0.0.1:{s.port}" for s in d.services.values() if s.port is not None]


def pids(d: Deployment) -> dict[str, int]:
    """Every Cirrus process of the deployment by name (PostgreSQL and RabbitMQ not included)."""
    return {name: s.proc.process.pid for name, s in d.services.items() if s.proc is not None}


def admin_auth(d: Deployment) -> dict:
    """The admin's `auth` section from the clouds.yaml `cirrus bootstrap` wrote."""
    return yaml.safe_load(d.clouds_yaml.read_text())["clouds"]["cirrus"]["auth"]
