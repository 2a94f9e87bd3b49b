"""`cirrus serve`, `cirrus bootstrap`, `cirrus db upgrade` and `cirrus log-level`: the new
production settings, role selection, schema checks, and real processes that answer.

The multi-process test needs RabbitMQ: skipped with the reason when it is not reachable,
failed instead when CIRRUS_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from cirrus.bus.local import LocalBus
from cirrus.cli import main
from cirrus.config import Settings, load_settings
from cirrus.db.models import Service
from cirrus.observe.adminclient import admin_session, api_base_url
from cirrus.runtime import (
    ROLES,
    Cloud,
    ConfigurationError,
    check_bus_for_roles,
    make_bus,
    parse_roles,
)
from tests.deployment import (
    BROKER_URL,
    cirrus,
    free_port,
    require_broker,
    run_cirrus,
    wait_for,
    wait_until_answering,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CIRRUS_* or OS_* setting from the developer's shell may leak into these tests."""
    for name in list(os.environ):
        if name.startswith(("CIRRUS_", "OS_")) and name not in (
                "CIRRUS_REQUIRE_SERVICES", "CIRRUS_TEST_BROKER_URL"):
            monkeypatch.delenv(name)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cirrus.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- settings


def test_production_defaults() -> None:
    s = load_settings()
    assert s.broker_urls == []
    assert s.amqp_heartbeat == 30.0
    assert s.tcp_keepalive is True
    assert (s.tcp_keepidle, s.tcp_keepintvl, s.tcp_keepcnt) == (60, 10, 9)
    assert s.amqp_queue_prefix == "cirrus."
    assert s.host_name == ""
    assert s.effective_host_name == socket.gethostname()


def test_broker_urls_from_the_environment_are_split_on_commas(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRRUS_BROKER_URLS",
                       " amqp://u:p@rabbit-1:5672//, amqp://u:p@rabbit-2:5672//,, ")
    assert load_settings().broker_urls == ["amqp://u:p@rabbit-1:5672//",
                                           "amqp://u:p@rabbit-2:5672//"]


def test_broker_urls_from_a_toml_list_or_string(tmp_path: Path) -> None:
    s = load_settings(write_toml(tmp_path, 'broker_urls = ["amqp://a//", "amqp://b//"]\n'))
    assert s.broker_urls == ["amqp://a//", "amqp://b//"]
    s = load_settings(write_toml(tmp_path, 'broker_urls = "amqp://a//,amqp://b//"\n'))
    assert s.broker_urls == ["amqp://a//", "amqp://b//"]


def test_the_environment_overrides_the_file_for_broker_urls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, 'broker_urls = ["amqp://file//"]\n')
    monkeypatch.setenv("CIRRUS_BROKER_URLS", "amqp://env//")
    assert load_settings(path).broker_urls == ["amqp://env//"]


def test_a_broker_list_of_non_strings_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="broker_urls must be a list of strings"):
        load_settings(write_toml(tmp_path, "broker_urls = [1, 2]\n"))


def test_amqp_and_keepalive_settings_from_file_and_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, "amqp_heartbeat = 15\ntcp_keepalive = false\ntcp_keepidle = 30\n"
                                'host_name = "compute-7"\n')
    monkeypatch.setenv("CIRRUS_TCP_KEEPCNT", "4")
    monkeypatch.setenv("CIRRUS_TCP_USER_TIMEOUT", "12.5")
    s = load_settings(path)
    assert s.amqp_heartbeat == 15.0 and isinstance(s.amqp_heartbeat, float)
    assert s.tcp_keepalive is False
    assert (s.tcp_keepidle, s.tcp_keepcnt, s.tcp_user_timeout) == (30, 4, 12.5)
    assert s.effective_host_name == "compute-7"


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("1", True), ("YES", True), ("on", True),
    ("false", False), ("0", False), ("no", False), ("Off", False),
])
def test_boolean_environment_values(text: str, expected: bool,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRRUS_TCP_KEEPALIVE", text)
    assert load_settings().tcp_keepalive is expected


def test_a_boolean_that_is_not_one_is_refused(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRRUS_TCP_KEEPALIVE", "maybe")
    with pytest.raises(ValueError, match="not a boolean"):
        load_settings()
    monkeypatch.delenv("CIRRUS_TCP_KEEPALIVE")
    with pytest.raises(ValueError, match="tcp_keepalive must be true or false"):
        load_settings(write_toml(tmp_path, "tcp_keepalive = 3\n"))


def test_host_name_from_the_environment_and_the_command_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRRUS_HOST_NAME", "env-host")
    assert load_settings().effective_host_name == "env-host"
    assert load_settings(host_name="flag-host").effective_host_name == "flag-host"


# ---------------------------------------------------------------- roles and bus


def test_roles_are_parsed_in_a_fixed_order() -> None:
    assert parse_roles("agent, API,conductor") == ["api", "conductor", "agent"]
    assert parse_roles("scheduler") == ["scheduler"]


@pytest.mark.parametrize("text", ["", ",", "api,compute", "web"])
def test_unknown_or_no_roles_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="roles are api, conductor, scheduler, agent"):
        parse_roles(text)


def test_the_local_bus_refuses_a_partial_role_set() -> None:
    with pytest.raises(ConfigurationError, match="needs a message broker.*CIRRUS_BROKER_URLS"):
        check_bus_for_roles(Settings(), ["api"])
    with pytest.raises(ConfigurationError):
        check_bus_for_roles(Settings(), ["api", "conductor", "scheduler"])


def test_all_roles_in_one_process_or_a_broker_are_accepted() -> None:
    check_bus_for_roles(Settings(), list(ROLES))
    check_bus_for_roles(Settings(broker_urls=["amqp://rabbit//"]), ["agent"])


def test_no_broker_urls_means_the_local_bus() -> None:
    bus = make_bus(Settings(rpc_timeout=7.0))
    assert isinstance(bus, LocalBus)
    assert bus.default_timeout == 7.0


def test_broker_urls_select_the_amqp_bus_with_the_settings() -> None:
    from cirrus.bus.amqp import AmqpBus

    settings = Settings(broker_urls=["amqp://u:p@127.0.0.1:1//", "amqp://u:p@127.0.0.2:1//"],
                        amqp_heartbeat=12.0, tcp_keepalive=False, tcp_keepidle=5,
                        tcp_keepintvl=3, tcp_keepcnt=2, tcp_user_timeout=9.0,
                        rpc_timeout=11.0, amqp_queue_prefix="c1.")
    bus = make_bus(settings)
    try:
        assert isinstance(bus, AmqpBus)
        assert bus.urls == settings.broker_urls
        assert bus.heartbeat == 12.0
        assert (bus.tcp_keepalive, bus.tcp_keepidle, bus.tcp_keepintvl, bus.tcp_keepcnt,
                bus.tcp_user_timeout) == (False, 5, 3, 2, 9.0)
        assert bus.default_timeout == 11.0
        assert bus.queue_prefix == "c1."
    finally:
        bus.stop()


def test_a_missing_amqp_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cirrus.bus.amqp", None)  # import now fails
    with pytest.raises(ConfigurationError, match="AMQP bus cannot be loaded"):
        make_bus(Settings(broker_urls=["amqp://rabbit//"]))


def _services(cloud: Cloud) -> set[tuple[str, str]]:
    with cloud.db.reader() as s:
        return {(row.host, row.binary) for row in s.scalars(select(Service))}


@pytest.mark.parametrize(("roles", "expected"), [
    (["scheduler"], {("ctl-9", "cirrus-scheduler")}),
    (["conductor"], {("ctl-9", "cirrus-conductor")}),
])
def test_each_role_records_only_its_own_heartbeat(tmp_path: Path, roles: list[str],
                                                  expected: set) -> None:
    cloud = Cloud(Settings(data_dir=tmp_path, host_name="ctl-9"))
    cloud.upgrade_schema()
    try:
        cloud.start_roles(roles)
        assert _services(cloud) == expected
    finally:
        cloud.stop()


# ---------------------------------------------------------------- db upgrade, bootstrap


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'cirrus.db'}"
    monkeypatch.setenv("CIRRUS_DATABASE_URL", url)
    monkeypatch.setenv("CIRRUS_DATA_DIR", str(tmp_path / "data"))  # where the token keys go
    return url


def test_db_upgrade_takes_a_plain_sqlite_url_from_the_environment(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["db", "upgrade"]) == 0
    assert "schema at revision" in capsys.readouterr().out
    assert (tmp_path / "nested" / "dir" / "cirrus.db").exists()
    assert main(["db", "upgrade"]) == 0  # a second run is a no-op


def test_bootstrap_refuses_an_unupgraded_database(db_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "nested" / "dir").mkdir(parents=True)
    code = main(["bootstrap", "--admin-password", "pw", "--clouds-yaml",
                 str(tmp_path / "clouds.yaml")])
    assert code == 1
    assert "Run `cirrus db upgrade` first" in capsys.readouterr().err
    assert not (tmp_path / "clouds.yaml").exists()


def test_bootstrap_needs_a_password(db_url: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    assert main(["bootstrap", "--clouds-yaml", str(tmp_path / "c.yaml")]) == 2
    assert "--admin-password" in capsys.readouterr().err


def test_bootstrap_creates_the_admin_and_writes_clouds_yaml(db_url: str, tmp_path: Path) -> None:
    assert main(["db", "upgrade"]) == 0
    clouds_yaml = tmp_path / "etc" / "clouds.yaml"
    assert main(["bootstrap", "--admin-password", "first-pw", "--api-url",
                 "https://cloud.example:8443/", "--clouds-yaml", str(clouds_yaml)]) == 0
    cloud = yaml.safe_load(clouds_yaml.read_text())["clouds"]["cirrus"]
    assert cloud["auth"]["auth_url"] == "https://cloud.example:8443/identity/v3"
    assert cloud["auth"]["username"] == "admin"
    assert cloud["auth"]["password"] == "first-pw"
    assert cloud["auth"]["project_name"] == "admin"
    assert clouds_yaml.stat().st_mode & 0o777 == 0o600

    # The admin can log in with it, and a second bootstrap resets the password.
    settings = load_settings()
    c = Cloud(settings, bus=LocalBus())
    try:
        assert _verify_admin(c, "first-pw")
        assert main(["bootstrap", "--admin-password", "second-pw", "--clouds-yaml",
                     str(clouds_yaml)]) == 0
        assert _verify_admin(c, "second-pw") and not _verify_admin(c, "first-pw")
        # The token signing keys are in the key directory (0700, keys 0600), not the database.
        key_dir = tmp_path / "data" / "keys" / "token"
        assert key_dir.stat().st_mode & 0o777 == 0o700
        assert sorted(p.name for p in key_dir.iterdir() if p.name.isdigit()) == ["0", "1"]
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in key_dir.iterdir())
        assert c.tokens.has_signing_key()
    finally:
        c.stop()


def _verify_admin(cloud: Cloud, password: str) -> bool:
    from cirrus.db.models import User
    from cirrus.identity.passwords import verify_password

    with cloud.db.reader() as s:
        user = s.scalar(select(User).where(User.name == "admin"))
        return verify_password(user.password_hash, password)


def test_api_base_url_from_an_auth_url() -> None:
    assert api_base_url("http://lb:8774/identity/v3") == "http://lb:8774"
    assert api_base_url("http://lb:8774/identity/v3/") == "http://lb:8774"
    assert api_base_url("https://cloud.example/identity") == "https://cloud.example"


# ---------------------------------------------------------------- real processes


@pytest.fixture
def deployment_env(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite database upgraded with `cirrus db upgrade`, and the admin bootstrapped."""
    env = {"CIRRUS_DATABASE_URL": f"sqlite:///{tmp_path / 'cirrus.db'}",
           "CIRRUS_DATA_DIR": str(tmp_path / "data"), "CIRRUS_HEARTBEAT_INTERVAL": "1"}
    done = run_cirrus("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    return env


def test_serve_refuses_an_unupgraded_database(tmp_path: Path) -> None:
    env = {"CIRRUS_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    done = run_cirrus("serve", "--role", "api,conductor,scheduler,agent", "--port",
                      str(free_port()), env=env)
    assert done.returncode == 1
    assert "schema is at revision none" in done.stderr
    assert "Run `cirrus db upgrade` first" in done.stderr


def test_serve_refuses_a_partial_role_set_without_a_broker(deployment_env: dict) -> None:
    done = run_cirrus("serve", "--role", "api", env=deployment_env)
    assert done.returncode == 2
    assert "needs a message broker" in done.stderr and "CIRRUS_BROKER_URLS" in done.stderr


def test_serve_all_roles_answers_dumps_stacks_and_changes_log_level(
        deployment_env: dict, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clouds_yaml = tmp_path / "clouds.yaml"
    done = run_cirrus("bootstrap", "--admin-password", "boot-pw", "--api-url", url,
                      "--clouds-yaml", str(clouds_yaml), env=deployment_env)
    assert done.returncode == 0, done.stderr
    p = cirrus("serve", "--role", "api,conductor,scheduler,agent", "--port", str(port),
               "--host-name", "node-a", env=deployment_env, log_file=tmp_path / "serve.log")
    try:
        wait_until_answering(p, f"{url}/identity/v3")
        # The clouds.yaml written by bootstrap works against the running API.
        session = admin_session("cirrus", clouds_yaml=str(clouds_yaml))
        assert session.base_url == url
        headers = {"X-Auth-Token": session.token}
        services = httpx.get(f"{url}/compute/v2.1/os-services", headers=headers).json()
        rows = {(s["binary"], s["host"]): s["state"] for s in services["services"]}
        assert rows[("nova-compute", "node-a")] == "up"
        assert ("nova-scheduler", "node-a") in rows and ("nova-conductor", "node-a") in rows
        hypervisors = httpx.get(f"{url}/compute/v2.1/os-hypervisors",
                                headers=headers).json()["hypervisors"]
        assert [h["hypervisor_hostname"] for h in hypervisors] == ["node-a"]

        # SIGUSR1: every thread's stack in the log, and the process keeps serving.
        p.process.send_signal(signal.SIGUSR1)
        wait_for(lambda: any(e.get("thread_name") == "MainThread" for e in p.log_entries()),
                 what="a stack dump in the log")
        dumped = [e for e in p.log_entries() if "dump_id" in e and "stack" in e]
        assert len({e["thread_name"] for e in dumped}) >= 3
        # The main thread runs the HTTP server's event loop (cirrus.serving).
        assert any("serve_http" in e["stack"] for e in dumped if e["thread_name"] == "MainThread")
        assert p.process.poll() is None
        assert httpx.get(f"{url}/identity/v3", timeout=5).status_code == 200

        # `cirrus log-level` with the token from clouds.yaml.
        env = {**deployment_env, "OS_CLIENT_CONFIG_FILE": str(clouds_yaml)}
        done = run_cirrus("log-level", "DEBUG", "--logger", "cirrus.agent", env=env)
        assert done.returncode == 0, done.stderr
        assert "cirrus.agent: DEBUG" in done.stdout
        shown = run_cirrus("log-level", "--os-cloud", "cirrus", env=env)
        assert "cirrus.agent: DEBUG" in shown.stdout
        wait_for(lambda: any(e.get("thread", "").startswith("bus-cirrus-admin")
                             and "set to DEBUG" in e["message"] for e in p.log_entries()),
                 what="the fanned-out level change")
        refused = run_cirrus("log-level", "LOUD", env=env)
        assert refused.returncode == 1 and "unknown log level" in refused.stderr
    finally:
        code = p.stop()
    assert code == 0, p.text()


# ---------------------------------------------------------------- on RabbitMQ


@pytest.fixture
def broker_env(deployment_env: dict) -> Iterator[dict[str, str]]:
    require_broker()
    prefix = f"clitest{uuid.uuid4().hex[:8]}."
    yield {**deployment_env, "CIRRUS_BROKER_URLS": BROKER_URL,
           "CIRRUS_AMQP_QUEUE_PREFIX": prefix}
    _delete_queues(prefix)


def _delete_queues(prefix: str) -> None:
    import kombu

    with kombu.Connection(BROKER_URL, connect_timeout=2) as conn:
        for name in ("conductor", "scheduler", "agent.node-q"):
            try:
                channel = conn.channel()
                channel.queue_delete(f"{prefix}{name}")
                channel.close()
            except Exception:
                pass
        try:
            channel = conn.channel()
            channel.exchange_delete(f"{prefix}fanout.cirrus-admin")
            channel.close()
        except Exception:
            pass


def test_roles_in_separate_processes_on_rabbitmq_build_a_server(broker_env: dict,
                                                                tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clouds_yaml = tmp_path / "clouds.yaml"
    done = run_cirrus("bootstrap", "--admin-password", "pw", "--api-url", url,
                      "--clouds-yaml", str(clouds_yaml), env=broker_env)
    assert done.returncode == 0, done.stderr
    port_2 = free_port()
    procs = [
        cirrus("serve", "--role", "api", "--port", str(port), env=broker_env,
               log_file=tmp_path / "api.log"),
        cirrus("serve", "--role", "api", "--port", str(port_2), env=broker_env,
               log_file=tmp_path / "api-2.log"),
        cirrus("serve", "--role", "conductor,scheduler", "--host-name", "ctl-q",
               env=broker_env, log_file=tmp_path / "ctl.log"),
        # An agent never touches the database: give it one that cannot be reached.
        cirrus("serve", "--role", "agent", "--host-name", "node-q",
               env={**broker_env, "CIRRUS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"},
               log_file=tmp_path / "agent.log"),
    ]
    try:
        wait_until_answering(procs[0], f"{url}/identity/v3")
        wait_until_answering(procs[1], f"http://127.0.0.1:{port_2}/identity/v3")
        session = admin_session("cirrus", clouds_yaml=str(clouds_yaml))
        h = {"X-Auth-Token": session.token, "OpenStack-API-Version": "compute 2.60"}
        compute = f"{url}/compute/v2.1"
        # A token issued by one API process is good at the other.
        assert httpx.get(f"http://127.0.0.1:{port_2}/compute/v2.1/flavors",
                         headers=h).status_code == 200

        def services() -> dict:
            rows = httpx.get(f"{compute}/os-services", headers=h).json()["services"]
            return {(s["binary"], s["host"]): s["state"] for s in rows}

        wait_for(lambda: services().get(("nova-compute", "node-q")) == "up",
                 what="the agent registered through the conductor")
        assert services()[("nova-scheduler", "ctl-q")] == "up"
        assert services()[("nova-conductor", "ctl-q")] == "up"

        flavor = httpx.post(f"{compute}/flavors", headers=h, json={"flavor": {
            "name": "t1", "vcpus": 1, "ram": 128, "disk": 1}}).json()["flavor"]["id"]
        image = httpx.post(f"{url}/image/v2/images", headers=h, json={
            "name": "img", "disk_format": "raw", "container_format": "bare"}).json()["id"]
        put = httpx.put(f"{url}/image/v2/images/{image}/file", content=b"x" * 1024,
                        headers={**h, "Content-Type": "application/octet-stream"})
        assert put.status_code == 204, put.text
        created = httpx.post(f"{compute}/servers", headers=h, json={"server": {
            "name": "vm", "flavorRef": flavor, "imageRef": image, "networks": "none"}})
        assert created.status_code == 202, created.text
        server_id = created.json()["server"]["id"]

        def server() -> dict:
            return httpx.get(f"{compute}/servers/{server_id}", headers=h).json()["server"]

        wait_for(lambda: server()["status"] != "BUILD", what="the build to end")
        assert server()["status"] == "ACTIVE", server()
        assert server()["OS-EXT-SRV-ATTR:host"] == "node-q"
        # One request id followed from the api process to the scheduler's (the agent logs
        # nothing on a successful spawn).
        request_id = created.headers["x-openstack-request-id"]
        for proc in (procs[0], procs[2]):
            wait_for(lambda proc=proc: any(e.get("request_id") == request_id
                                           for e in proc.log_entries()),
                     what=f"{request_id} in {proc.log_file.name}")

        # A log level change through one API process reaches every process.
        changed = httpx.put(f"{url}/cirrus/v1/log-level", headers=h,
                            json={"level": "DEBUG", "logger": "cirrus.agent"})
        assert changed.json()["propagated"] is True
        for proc in procs:
            wait_for(lambda proc=proc: any("set to DEBUG" in e["message"]
                                           and e["thread"].startswith("bus-cirrus-admin")
                                           for e in proc.log_entries()),
                     what=f"the level change in {proc.log_file.name}")
    finally:
        codes = [p.stop() for p in reversed(procs)]
    assert codes == [0, 0, 0, 0], "\n\n".join(p.text() for p in procs)
