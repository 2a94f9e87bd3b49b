"""Shared fixtures: a Cirrus cloud on a fresh SQLite database, an HTTP client, users."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from cirrus.config import Settings
from cirrus.db.models import Project, User
from cirrus.identity import service as identity
from cirrus.runtime import Cloud, fake_host_names

ADMIN_PASSWORD = "admin-secret"


def make_settings(tmp_path, **overrides) -> Settings:
    settings = Settings(data_dir=tmp_path, admin_password=ADMIN_PASSWORD,
                        public_url="http://testserver")
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings


# CIRRUS_TEST_DATABASE=postgresql|mariadb runs every test that uses the `cloud` fixture on a
# empty database of that server (CI does, after the SQLite run); default: SQLite.
TEST_DATABASE = os.environ.get("CIRRUS_TEST_DATABASE", "sqlite")


@pytest.fixture
def settings(tmp_path) -> Iterator[Settings]:
    if TEST_DATABASE == "sqlite":
        yield make_settings(tmp_path)
        return
    from tests.dbfixtures import pooled_database

    with pooled_database(TEST_DATABASE) as url:
        yield make_settings(tmp_path, database_url=url)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a server database (CIRRUS_TEST_DATABASE), run only the tests that use it: those
    built on `settings` (the `cloud` fixture and all above it). The others do not change
    with it (pure unit tests, lint and type checks, tests that name their backends through
    `db_url`, already run on every server in the SQLite pass): run again, they only cost CI
    time."""
    if TEST_DATABASE == "sqlite":
        return
    keep = [item for item in items if "settings" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if "settings" not in getattr(item, "fixturenames", ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the server databases the `settings` fixture kept for reuse."""
    import sys

    dbfixtures = sys.modules.get("tests.dbfixtures")
    if dbfixtures is not None:
        dbfixtures.drop_pooled_databases()


@pytest.fixture
def cloud(settings: Settings) -> Iterator[Cloud]:
    """A bootstrapped cloud with scheduler, conductor and fake agents running."""
    c = Cloud(settings)
    c.upgrade_schema()
    c.bootstrap(ADMIN_PASSWORD)
    c.start_roles(["scheduler", "conductor", "agent"], agent_hosts=fake_host_names(settings))
    _wait_for_agents(c, settings.fake.count)
    yield c
    c.stop()


def _wait_for_agents(c: Cloud, count: int, timeout: float = 10.0) -> None:
    """Agents register through the bus; tests start once every fake host is known."""
    import time

    from sqlalchemy import func

    from cirrus.db.models import ComputeNode

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with c.db.reader() as s:
            if s.scalar(select(func.count()).select_from(ComputeNode)) >= count:
                return
        time.sleep(0.01)
    raise AssertionError(f"{count} fake agents did not register within {timeout} s")


@pytest.fixture
def api(cloud: Cloud) -> Iterator[TestClient]:
    from cirrus.api.app import create_app

    with TestClient(create_app(cloud), base_url="http://testserver") as client:
        yield client


@dataclass
class Caller:
    """A user with a token scoped to one project; `headers` authenticates a request."""

    user_id: str
    project_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}

    def compute(self, microversion: str = "2.60") -> dict[str, str]:
        return {"X-Auth-Token": self.token, "OpenStack-API-Version": f"compute {microversion}"}


def make_caller(cloud: Cloud, user_name: str, project_name: str, role: str) -> Caller:
    def work(s):
        project = identity.ensure_project(s, project_name)
        user = identity.ensure_user(s, user_name, "pw-" + user_name, default_project_id=project.id)
        identity.ensure_assignment(s, identity.ensure_role(s, role).id, user.id, project.id)
        return user.id, project.id

    user_id, project_id = cloud.db.run(work)
    with cloud.db.reader() as s:
        user = s.get(User, user_id)
        project = s.get(Project, project_id)
        claims = identity.build_claims(s, cloud.tokens, user, project)
    return Caller(user_id, project_id, cloud.tokens.issue(claims))


@pytest.fixture
def admin(cloud: Cloud) -> Caller:
    with cloud.db.reader() as s:
        user = s.scalar(select(User).where(User.name == "admin"))
        project = s.scalar(select(Project).where(Project.name == "admin"))
        claims = identity.build_claims(s, cloud.tokens, user, project)
    return Caller(user.id, project.id, cloud.tokens.issue(claims))


@pytest.fixture
def member(cloud: Cloud) -> Caller:
    return make_caller(cloud, "alice", "project-a", "member")


@pytest.fixture
def other_member(cloud: Cloud) -> Caller:
    return make_caller(cloud, "bob", "project-b", "member")


@pytest.fixture
def reader(cloud: Cloud) -> Caller:
    return make_caller(cloud, "rita", "project-a", "reader")


@pytest.fixture
def spawned(cloud: Cloud) -> dict:
    """Every spec the fake agents' drivers are asked to spawn, by uuid (a spy: the real
    spawn still runs)."""
    import threading

    from cirrus.agent.service import Agent

    seen: dict = {}
    lock = threading.Lock()
    for role in cloud.roles:
        if isinstance(role, Agent):
            def spy(spec,
                     _spawn=role.driver.spawn) -> None:
                with lock:
                    seen[spec.uuid] = spec
                _spawn(spec)
            role.driver.spawn = spy
    return seen
