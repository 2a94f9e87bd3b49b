"""A running Cirrus: settings, database, bus, token provider and the roles started in it."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import yaml

from cirrus.bus import Bus
from cirrus.bus.local import LocalBus
from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db import migrate
from cirrus.db.engine import Database
from cirrus.identity import service as identity
from cirrus.identity.tokens import TokenProvider

log = logging.getLogger(__name__)


class Cloud:
    def __init__(self, settings: Settings, bus: Bus | None = None) -> None:
        self.settings = settings
        self.db = Database(settings.effective_database_url)
        self.bus = bus or LocalBus(default_timeout=settings.rpc_timeout)
        self.tokens = TokenProvider(self.db, ttl=settings.token_ttl)
        self.roles: list = []

    # ---- first start
    def upgrade_schema(self) -> None:
        migrate.upgrade(self.db.engine)

    def check_schema(self) -> None:
        migrate.check_schema(self.db.engine)

    def recover_after_restart(self) -> None:
        """Undo what a crash of the only API process left half-done (interrupted uploads)."""
        from cirrus.storage import images
        from cirrus.storage.filestore import FileStore

        images.recover_interrupted_uploads(self.db, FileStore(self.settings.effective_image_dir))

    def bootstrap(self, admin_password: str) -> None:
        s = self.settings
        self.db.run(lambda session: identity.bootstrap(session, s.admin_user, admin_password,
                                                       s.admin_project))
        self.tokens.ensure_key()

    # ---- roles
    def start_roles(self, roles: list[str], agent_hosts: list[str] | None = None) -> None:
        from cirrus.agent.service import Agent
        from cirrus.compute.conductor import Conductor
        from cirrus.scheduler.service import Scheduler
        from cirrus.virt import load_driver

        if "scheduler" in roles:
            self.roles.append(Scheduler(self))
        if "conductor" in roles:
            self.roles.append(Conductor(self))
        if "agent" in roles:
            for host in agent_hosts or []:
                driver = load_driver(self.settings, host)
                self.roles.append(Agent(self.settings, self.bus, host, driver))
        for role in self.roles:
            role.start()
        log.info("started roles %s", ", ".join(type(r).__name__ for r in self.roles))

    def stop(self) -> None:
        for role in reversed(self.roles):
            try:
                role.stop()
            except Exception:
                log.exception("stopping %s failed", type(role).__name__)
        self.roles.clear()
        self.bus.stop()
        self.db.dispose()

    def admin_context(self) -> RequestContext:
        return RequestContext.admin()


def fake_host_names(settings: Settings) -> list[str]:
    return [f"fake-{i}" for i in range(1, settings.fake.count + 1)]


def write_clouds_yaml(path: Path, auth_url: str, username: str, password: str, project: str,
                      region: str) -> None:
    doc = {
        "clouds": {
            "cirrus": {
                "auth": {
                    "auth_url": auth_url,
                    "username": username,
                    "password": password,
                    "project_name": project,
                    "user_domain_name": "Default",
                    "project_domain_name": "Default",
                },
                "region_name": region,
                "identity_api_version": 3,
                "interface": "public",
            }
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)


def admin_password_for(settings: Settings, clouds_yaml: Path) -> str:
    """The configured admin password, else the one a previous start wrote, else a new one."""
    if settings.admin_password:
        return settings.admin_password
    if clouds_yaml.exists():
        doc = yaml.safe_load(clouds_yaml.read_text()) or {}
        password = doc.get("clouds", {}).get("cirrus", {}).get("auth", {}).get("password")
        if password:
            return password
    return secrets.token_urlsafe(18)
