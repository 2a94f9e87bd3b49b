"""A multi-process Cirrus deployment for tests and benchmarks: every role its own process.

    with Deployment(tmp_path, database_url, [BROKER_URL]) as d:
        d.start_standard(apis=2, agents=3)   # api-1, api-2, conductor, scheduler, agent-1..3
        d.wait_ready()
        client = d.client()                   # httpx.Client with an admin token
        d.kill("conductor")                   # SIGKILL; d.restart("conductor") starts it again

Each process is `python -m cirrus.cli serve --role ...` with its own JSON log file. The API
processes sit behind a round-robin TCP balancer (`d.url`); the catalog (CIRRUS_PUBLIC_URL)
and the clouds.yaml written by `cirrus bootstrap` point at it, so the real clients spread
over both. A unique queue prefix keeps one deployment's queues apart from another's on the
shared broker; they are deleted when the deployment stops. Every process shares one build
secrets key file (`<workdir>/keys/build-secrets.key`). The broker URLs may point at a
`TcpProxy` (tests/faults/tcp_proxy.py) so a test can cut the processes off the broker.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cirrus import build_secrets
from cirrus.config import Settings
from tests.faults.tcp_proxy import TcpProxy
from tests.services import missing

BROKER_URL = os.environ.get("CIRRUS_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
START_TIMEOUT = 60.0
ADMIN_PASSWORD = "deployment-admin-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float = 15.0,
             what: str = "condition", interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"{what} not met in {timeout} s")


@functools.cache
def broker_problem(url: str = BROKER_URL) -> str | None:
    """Why RabbitMQ cannot be used, or None."""
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=0)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require_broker(url: str = BROKER_URL) -> None:
    """Skip (or, with CIRRUS_REQUIRE_SERVICES=1, fail) when RabbitMQ is not reachable."""
    problem = broker_problem(url)
    if problem:
        reason = (f"RabbitMQ is not reachable at {url} ({problem}); start it with "
                  "`rabbitmq-server -detached`")
        missing(reason)


@dataclass
class Proc:
    """One `python -m cirrus.cli ...` subprocess, its output and its JSON log file."""

    process: subprocess.Popen
    log_file: Path
    output: list[str] = field(default_factory=list)

    def text(self) -> str:
        log = self.log_file.read_text() if self.log_file.exists() else ""
        return "".join(self.output) + "\n--- log ---\n" + log[-4000:]

    def log_entries(self) -> list[dict]:
        if not self.log_file.exists():
            return []
        entries = []
        for line in self.log_file.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
        return entries

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15) -> int | None:
        return terminate(self.process, timeout)


def terminate(process: subprocess.Popen, timeout: float = 15) -> int | None:
    """SIGTERM, then wait; the exit code, or None if it had to be killed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def cirrus(*args: str, env: dict[str, str], log_file: Path) -> Proc:
    """Start `cirrus ARGS` with CIRRUS_LOG_FILE set to `log_file` (appended to)."""
    proc = subprocess.Popen([sys.executable, "-m", "cirrus.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **env, "CIRRUS_LOG_FILE": str(log_file)})
    p = Proc(proc, log_file)
    threading.Thread(target=lambda: p.output.extend(proc.stdout), daemon=True).start()
    return p


def run_cirrus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cirrus.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


def wait_until_answering(p: Proc, url: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.process.poll() is not None:
            time.sleep(0.2)
            raise AssertionError(f"exited with {p.process.returncode}:\n{p.text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"did not answer {url} in time:\n{p.text()}")


@dataclass
class Service:
    """How to (re)start one process of the deployment."""

    name: str
    args: list[str]
    env: dict[str, str]
    port: int | None = None
    proc: Proc | None = None


class Deployment:
    """Roles as separate `cirrus serve` processes on one database and broker."""

    def __init__(self, workdir: Path, database_url: str, broker_urls: list[str], *,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.queue_prefix = f"dep{uuid.uuid4().hex[:8]}."
        self.balancer: TcpProxy | None = None
        self.url = ""
        self.services: dict[str, Service] = {}
        self.agent_hosts: list[str] = []
        self.clouds_yaml = self.workdir / "clouds.yaml"
        self.env = {
            "CIRRUS_DATABASE_URL": database_url,
            "CIRRUS_BROKER_URLS": ",".join(broker_urls),
            "CIRRUS_AMQP_QUEUE_PREFIX": self.queue_prefix,
            "CIRRUS_DATA_DIR": str(self.workdir / "data"),
            "CIRRUS_HEARTBEAT_INTERVAL": "1",
            "CIRRUS_SERVICE_DOWN_TIME": "10",
            "CIRRUS_AMQP_HEARTBEAT": "10",
            # One build secrets key for every API and agent, made before any starts, as
            # docs/deployment.md asks of a real deployment (no process makes its own).
            "CIRRUS_BUILD_SECRETS_KEY_FILE": str(build_secrets.ensure_key(Settings(
                data_dir=self.workdir, build_secrets_key_file=str(
                    self.workdir / "keys" / "build-secrets.key")))),
            **(env or {}),
        }
        self._token: str | None = None

    # ---- set-up
    def prepare(self, api_ports: list[int]) -> None:
        """A balancer over `api_ports`, the schema, the admin and clouds.yaml."""
        self.balancer = TcpProxy(targets=[("127.0.0.1", p) for p in api_ports])
        self.url = f"http://127.0.0.1:{self.balancer.port}"
        self.env["CIRRUS_PUBLIC_URL"] = self.url
        done = run_cirrus("db", "upgrade", env=self.env)
        assert done.returncode == 0, done.stderr
        done = run_cirrus("bootstrap", "--admin-password", ADMIN_PASSWORD, "--api-url", self.url,
                          "--clouds-yaml", str(self.clouds_yaml), env=self.env)
        assert done.returncode == 0, done.stderr

    def add(self, name: str, roles: str, *, host_name: str | None = None,
            port: int | None = None, env: dict[str, str] | None = None) -> Service:
        args = ["serve", "--role", roles]
        if port is not None:
            args += ["--host", "127.0.0.1", "--port", str(port)]
        if host_name is not None:
            args += ["--host-name", host_name]
        service = Service(name, args, {**self.env, **(env or {})}, port)
        self.services[name] = service
        return service

    def start(self, name: str) -> Proc:
        service = self.services[name]
        service.proc = cirrus(*service.args, env=service.env,
                              log_file=self.workdir / f"{name}.log")
        return service.proc

    def start_standard(self, apis: int = 2, agents: int = 3, *,
                       env: dict[str, dict[str, str]] | None = None) -> None:
        """api-1..N behind the balancer, conductor, scheduler and agent-1..M (node-1..M)."""
        env = env or {}
        ports = [free_port() for _ in range(apis)]
        self.prepare(ports)
        for i, port in enumerate(ports, 1):
            self.add(f"api-{i}", "api", port=port, host_name=f"api-{i}", env=env.get(f"api-{i}"))
        self.add("conductor", "conductor", host_name="ctl-1", env=env.get("conductor"))
        self.add("scheduler", "scheduler", host_name="sched-1", env=env.get("scheduler"))
        for i in range(1, agents + 1):
            self.agent_hosts.append(f"node-{i}")
            self.add(f"agent-{i}", "agent", host_name=f"node-{i}", env=env.get(f"agent-{i}"))
        for name in self.services:
            self.start(name)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Every API answers and os-services shows every started role up."""
        for service in self.services.values():
            if service.port is not None and service.proc is not None:
                wait_until_answering(service.proc, f"http://127.0.0.1:{service.port}/identity/v3",
                                     timeout)
        expected = {("nova-compute", host) for host in self.agent_hosts
                    if self.services[f"agent-{host.split('-')[1]}"].proc is not None}
        wait_for(lambda: expected <= self.services_up(), timeout, "every agent up")

    # ---- clients
    def token(self, refresh: bool = False) -> str:
        if self._token is None or refresh:
            body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
            r = httpx.post(f"{self.url}/identity/v3/auth/tokens", json=body, timeout=30)
            assert r.status_code == 201, r.text
            self._token = r.headers["x-subject-token"]
        return self._token

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, headers={
            "X-Auth-Token": self.token(), "OpenStack-API-Version": "compute 2.60"})

    def services_up(self) -> set[tuple[str, str]]:
        try:
            with self.client(timeout=10) as c:
                rows = c.get("/compute/v2.1/os-services").json()["services"]
        except (httpx.HTTPError, KeyError, ValueError):
            return set()
        return {(r["binary"], r["host"]) for r in rows if r["state"] == "up"}

    def cli_env(self) -> dict[str, str]:
        """Environment for the `openstack` command against this deployment."""
        return {**os.environ, "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml), "OS_CLOUD": "cirrus"}

    # ---- faults
    def proc(self, name: str) -> Proc:
        proc = self.services[name].proc
        assert proc is not None, f"{name} was never started"
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.proc(name)
        proc.process.send_signal(sig)
        proc.process.wait(timeout=30)

    def restart(self, name: str) -> Proc:
        if self.services[name].proc is not None and self.proc(name).alive():
            self.proc(name).stop()
        proc = self.start(name)
        port = self.services[name].port
        if port is not None:
            wait_until_answering(proc, f"http://127.0.0.1:{port}/identity/v3")
        return proc

    def logs(self, name: str) -> list[dict]:
        return self.proc(name).log_entries()

    def describe(self) -> str:
        """Every process's output and log tail, for a failure message."""
        return "\n\n".join(f"===== {name}\n{s.proc.text()}" for name, s in self.services.items()
                           if s.proc is not None)

    # ---- tear-down
    def stop(self) -> dict[str, int | None]:
        """SIGTERM every process (agents first, APIs last); their exit codes."""
        codes = {}
        for name in reversed(list(self.services)):
            proc = self.services[name].proc
            if proc is not None:
                codes[name] = proc.stop()
        if self.balancer is not None:
            self.balancer.close()
        self._delete_queues()
        return codes

    def _delete_queues(self) -> None:
        import kombu

        names = ["conductor", "scheduler", "volume"] + [f"agent.{h}" for h in self.agent_hosts]
        with contextlib.suppress(Exception), kombu.Connection(BROKER_URL, connect_timeout=2) as conn:
            for name in names:
                with contextlib.suppress(Exception):
                    channel = conn.channel()
                    channel.queue_delete(f"{self.queue_prefix}{name}")
                    channel.close()
            with contextlib.suppress(Exception):
                channel = conn.channel()
                channel.exchange_delete(f"{self.queue_prefix}fanout.cirrus-admin")
                channel.close()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
