"""A running Cirrus: settings, database, bus, token provider and the roles started in it."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cirrus import files
from cirrus.bus import Bus
from cirrus.bus.local import LocalBus
from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.observe.logging import on_set_log_level
from cirrus.observe.rpcapi import ADMIN_TOPIC
from cirrus.observe.rpcapi import endpoints as admin_endpoints

# The database, identity and token modules (SQLAlchemy, Alembic, argon2: ~50 MB) are imported
# where they are first used: an agent-only process never opens the database.
if TYPE_CHECKING:
    from cirrus.db.engine import Database
    from cirrus.identity.tokens import TokenProvider

log = logging.getLogger(__name__)

ROLES = ("api", "conductor", "scheduler", "agent", "volume")
# The roles one process must run for the in-process bus to connect them (volume is optional:
# without it, volumes stay `creating` until a volume role runs).
CORE_ROLES = ("api", "conductor", "scheduler", "agent")


class ConfigurationError(Exception):
    """The settings or the command line ask for something that cannot run; says what to fix."""


def parse_roles(text: str) -> list[str]:
    """`api,conductor` -> ["api", "conductor"], in ROLES order; unknown names are refused."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ROLES]
    if unknown or not names:
        raise ConfigurationError(
            f"unknown role(s) {', '.join(unknown) or '(none given)'}; roles are "
            f"{', '.join(ROLES)} (comma-separated, e.g. --role conductor,scheduler)")
    return [role for role in ROLES if role in names]


def check_bus_for_roles(settings: Settings, roles: list[str]) -> None:
    """The in-process bus only connects roles that share this process."""
    if settings.broker_urls or set(roles) >= set(CORE_ROLES):
        return
    raise ConfigurationError(
        f"--role {','.join(roles)} needs a message broker to reach the other roles, but "
        "broker_urls is empty (the in-process bus only works when one process runs all of "
        "api,conductor,scheduler,agent). Set broker_urls in the config file or "
        "CIRRUS_BROKER_URLS=amqp://user:password@rabbit:5672/ (comma-separated, tried in "
        "order), or run `cirrus serve --role api,conductor,scheduler,agent`.")


def make_bus(settings: Settings) -> Bus:
    """AMQP when broker URLs are set, else the in-process bus."""
    if not settings.broker_urls:
        return LocalBus(default_timeout=settings.rpc_timeout)
    try:
        from cirrus.bus.amqp import AmqpBus
    except ImportError as exc:
        raise ConfigurationError(
            f"broker_urls is set but the AMQP bus cannot be loaded ({exc}); install Cirrus "
            "with kombu, or leave broker_urls empty to use the in-process bus") from exc
    return AmqpBus(
        settings.broker_urls, heartbeat=settings.amqp_heartbeat,
        tcp_keepalive=settings.tcp_keepalive, tcp_keepidle=settings.tcp_keepidle,
        tcp_keepintvl=settings.tcp_keepintvl, tcp_keepcnt=settings.tcp_keepcnt,
        tcp_user_timeout=settings.tcp_user_timeout, default_timeout=settings.rpc_timeout,
        queue_prefix=settings.amqp_queue_prefix, queue_type=settings.amqp_queue_type,
        publish_timeout=settings.amqp_publish_timeout or None,
    )


class Cloud:
    def __init__(self, settings: Settings, bus: Bus | None = None) -> None:
        from cirrus.network import segments

        try:
            segments.check_settings(settings)  # l2: ranges and types, before anything runs
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.settings = settings
        self.bus = bus or make_bus(settings)
        self.roles: list = []
        self._admin_subscribed = False
        self._db: Database | None = None
        self._tokens: TokenProvider | None = None
        self._open_lock = threading.Lock()

    # The database is opened on first use: an agent-only process never touches it (nor
    # needs its driver installed).
    @property
    def db(self) -> Database:
        if self._db is None:
            from cirrus import files
            from cirrus.db.engine import Database

            with self._open_lock:
                if self._db is None:
                    sqlite_file = files.sqlite_path(self.settings.effective_database_url)
                    if sqlite_file is not None:  # SQLite gives -wal and -shm the same mode
                        files.touch_private(sqlite_file)
                    db = Database(self.settings.effective_database_url,
                                  reconnect_timeout=self.settings.db_reconnect_timeout)
                    # dhcp: a change to a network's ports or subnets syncs its DHCP hosts.
                    from cirrus.network.dhcp.control import DhcpNotifier

                    db.commit_hooks.append(DhcpNotifier(self).on_commit)
                    # l3: a change to a router, its ports or floating IPs syncs its host.
                    from cirrus.network.l3.control import L3Notifier

                    db.commit_hooks.append(L3Notifier(self).on_commit)
                    self._db = db
        return self._db

    @property
    def tokens(self) -> TokenProvider:
        if self._tokens is None:
            from cirrus.identity.tokens import TokenProvider

            db = self.db
            with self._open_lock:
                if self._tokens is None:
                    self._tokens = TokenProvider(
                        db, self.settings.effective_token_key_dir, ttl=self.settings.token_ttl,
                        max_active_keys=self.settings.token_max_active_keys)
        return self._tokens

    # ---- first start
    def upgrade_schema(self) -> None:
        from cirrus.db import migrate

        migrate.upgrade(self.db.engine)

    def check_schema(self) -> None:
        from cirrus.db import migrate

        migrate.check_schema(self.db.engine)

    def recover_after_restart(self) -> None:
        """Undo what a crash of the only API process left half-done (interrupted uploads)."""
        from cirrus.storage import image_data
        from cirrus.storage.filestore import FileStore

        image_data.recover_interrupted_uploads(self.db, FileStore(self.settings.effective_image_dir))

    def bootstrap(self, admin_password: str, reset_password: bool = False) -> bool:
        """Default domain, roles, admin user and project, the first token signing keys (in
        the key directory, not the database). With `reset_password`, an existing admin gets
        `admin_password` too and any lockout is lifted (as keystone-manage bootstrap does);
        returns whether the password was changed."""
        from cirrus.identity import service as identity
        from cirrus.identity.compliance import PasswordPolicy
        from cirrus.identity.passwords import verify_password
        from cirrus.identity.service import catalog_admin

        s = self.settings

        def work(session) -> bool:
            user = identity.bootstrap(session, s.admin_user, admin_password, s.admin_project)
            catalog_admin.ensure_default_catalog(session, s.effective_public_url, s.region)
            from cirrus.storage.volumes.types import ensure_default_type

            ensure_default_type(session)  # Cinder's __DEFAULT__ volume type
            if reset_password:
                user.failed_auth_count = 0
                if not verify_password(user.password_hash, admin_password):
                    identity.reset_password(user, admin_password,
                                            PasswordPolicy.from_settings(s))
                    return True
            return False

        changed = self.db.run(work)
        self.tokens.ensure_key()
        return changed

    # ---- roles
    def start_roles(self, roles: list[str], agent_hosts: list[str] | None = None) -> None:
        """Start `roles` in this process ("api" needs nothing here but the admin topic:
        the caller serves HTTP). Agents run one per name in `agent_hosts`."""
        from cirrus.agent.service import Agent
        from cirrus.virt import load_driver

        self.subscribe_admin()
        host_name = self.settings.effective_host_name
        if "scheduler" in roles:
            from cirrus.hosts.heartbeat import ServiceHeartbeat
            from cirrus.scheduler.rpcapi import SCHEDULER_TOPIC
            from cirrus.scheduler.service import Scheduler

            self.roles.append(Scheduler(self))
            self.roles.append(ServiceHeartbeat(self.db, host_name, "cirrus-scheduler",
                                               SCHEDULER_TOPIC, self.settings.heartbeat_interval))
        if "conductor" in roles:
            from cirrus.compute.conductor import Conductor

            conductor = Conductor(self)
            conductor.hostname = host_name
            self.roles.append(conductor)
        if "volume" in roles:  # block storage (issue 15): backends' work and its sweeper
            from cirrus.storage.volumes.manager import VolumeManager

            self.roles.append(VolumeManager(self))
        if "agent" in roles:
            for host in agent_hosts or []:
                driver = load_driver(self.settings, host)
                self.roles.append(Agent(self.settings, self.bus, host, driver))
        for role in self.roles:
            role.start()
        log.info("started roles %s", ", ".join(type(r).__name__ for r in self.roles))

    def subscribe_admin(self) -> None:
        """Every role process takes the admin fanout (run-time log level), once."""
        if not self._admin_subscribed:
            self.bus.subscribe(ADMIN_TOPIC, admin_endpoints(on_set_log_level), workers=1,
                               fanout=True)
            self._admin_subscribed = True

    def stop(self, deadline: float | None = None) -> None:
        """Stop the roles (last started first), the bus and the database. `deadline`
        (time.monotonic()) bounds it all (cirrus.shutdown): roles get most of the time, the
        bus the rest; a role still stopping then is left to the process exit, and what its
        handlers had not acked goes back to the broker."""
        roles = list(reversed(self.roles))
        self.roles.clear()

        def stop_roles() -> None:
            for role in roles:
                try:
                    role.stop()
                except Exception:
                    log.exception("stopping %s failed", type(role).__name__)

        if deadline is None:
            stop_roles()
            self.bus.stop()
        else:
            roles_by = time.monotonic() + 0.8 * max(0.0, deadline - time.monotonic())
            self.bus.set_stop_deadline(roles_by)
            stopper = threading.Thread(target=stop_roles, name="stop-roles", daemon=True)
            stopper.start()
            stopper.join(max(0.0, roles_by - time.monotonic()))
            if stopper.is_alive():
                log.warning("roles still stopping at the shutdown deadline; left to the exit")
            self.bus.stop(deadline)
        if self._db is not None:
            self._db.dispose()

    def admin_context(self) -> RequestContext:
        return RequestContext.admin()


def fake_host_names(settings: Settings) -> list[str]:
    return [f"fake-{i}" for i in range(1, settings.fake.count + 1)]


def all_in_one_host_names(settings: Settings) -> list[str]:
    """The agents an all-in-one runs: the fake driver's simulated hosts, or, with a real
    driver, this machine alone under its host name."""
    if settings.virt_driver == "fake":
        return fake_host_names(settings)
    return [settings.effective_host_name]


def write_clouds_yaml(path: Path, auth_url: str, username: str, password: str, project: str,
                      region: str, cacert: str | None = None) -> None:
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
    if cacert:  # a self-signed certificate: the clients trust it for this cloud only
        doc["clouds"]["cirrus"]["cacert"] = str(cacert)
    files.write_private(path, yaml.safe_dump(doc, sort_keys=False), secret=True)


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
