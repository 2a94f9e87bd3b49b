"""Faults under real client load, every role its own process on a real database and RabbitMQ.

Each test drives creates and deletes from several client threads through the API processes
while one thing fails: the broker connection of every process is cut (a TCP proxy between
Cirrus and RabbitMQ drops and refuses traffic for a while); the database server restarts;
a conductor is killed (SIGKILL) with builds in its hands while a second one runs; an agent
is killed and started again. Afterwards nothing may be lost:

- every create answered 202 ends ACTIVE, or ERROR with a fault, or deleted if the client
  deleted it; every create not answered 202 got a 4xx/5xx in OpenStack's error shape and
  left no server behind;
- no server is left in a task state;
- every ACTIVE server runs as exactly one VM, on the host the database names; no other VM
  runs anywhere (no duplicates, no orphans);
- quota usage equals the live servers, and each hypervisor's used vCPUs, RAM and VM count
  equal the servers placed on it.

Needs RabbitMQ and PostgreSQL/MariaDB: skipped with the reason when missing, failed instead
when CIRRUS_REQUIRE_SERVICES=1 (CI). The database restart restarts the machine's server.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.dbfixtures import fresh_database
from tests.deployment import BROKER_URL, Deployment, require_broker, wait_for
from tests.faults.tcp_proxy import TcpProxy
from tests.threads import ThreadErrors

pytestmark = pytest.mark.timeout(600)

FLAVOR = {"name": "f1", "vcpus": 1, "ram": 128, "disk": 1}
CLIENTS = 4
SETTLE_TIMEOUT = 150.0

# Timings scaled down so a fault and its recovery fit in a test: heartbeats every second,
# stalled tasks re-driven after 10 s, full agent syncs every 5 s, a 0.3 s "boot".
FAULT_ENV = {
    "CIRRUS_TASK_REDRIVE_AFTER": "10",
    "CIRRUS_RPC_TIMEOUT": "20",
    "CIRRUS_SYNC_INTERVAL": "5",
    "CIRRUS_BUILD_TIMEOUT": "300",
    "CIRRUS_FAKE_BOOT_DELAY": "0.3",
    "CIRRUS_FAKE_VCPUS": "256",
    "CIRRUS_FAKE_MEMORY_MB": "262144",
    "CIRRUS_QUOTA_INSTANCES": "100000",
    "CIRRUS_QUOTA_CORES": "100000",
    "CIRRUS_QUOTA_RAM": "100000000",
}


# ---------------------------------------------------------------- the deployment


@pytest.fixture
def broker_proxy() -> Iterator[TcpProxy]:
    require_broker()
    host_port = BROKER_URL.split("@")[-1].split("/")[0]
    host, _, port = host_port.partition(":")
    with TcpProxy(host or "127.0.0.1", int(port or 5672)) as proxy:
        yield proxy


def _via(proxy: TcpProxy) -> str:
    credentials = BROKER_URL.split("//", 1)[1].rsplit("@", 1)[0]
    vhost = BROKER_URL.rsplit("/", 1)[1]
    return f"amqp://{credentials}@127.0.0.1:{proxy.port}/{vhost}"


@pytest.fixture
def deploy(tmp_path: Path, broker_proxy: TcpProxy):
    """`deploy(backend, conductors=1)`: a started deployment on a fresh database, every
    process reaching RabbitMQ through `broker_proxy`."""
    opened: list[tuple] = []

    def make(backend: str = "postgresql", conductors: int = 1, **env: str) -> Deployment:
        database = fresh_database(backend)
        url = database.__enter__()
        d = Deployment(tmp_path / "deployment", url, [_via(broker_proxy)],
                       env={**FAULT_ENV, **env})
        opened.append((database, d))
        d.start_standard(apis=2, agents=3)
        for i in range(2, conductors + 1):
            d.add(f"conductor-{i}", "conductor", host_name=f"ctl-{i}")
            d.start(f"conductor-{i}")
        d.wait_ready()
        return d

    yield make
    for database, d in reversed(opened):
        d.stop()
        database.__exit__(None, None, None)


# ---------------------------------------------------------------- client load


@dataclass
class Load:
    """Client threads creating servers (and deleting some) until stopped."""

    d: Deployment
    flavor: str
    image: str
    accepted: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    refused: list[tuple[int, str]] = field(default_factory=list)
    transport_errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _errors: ThreadErrors = field(default_factory=ThreadErrors)

    def start(self, clients: int = CLIENTS) -> Load:
        for i in range(clients):
            self._threads.append(self._errors.thread(self._run, i, daemon=True,
                                                     name=f"load-{i}"))
        return self

    def stop(self) -> None:
        """Stop the clients; fail the test with whatever a client thread raised (an
        unexpected status on delete included)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)
        self._errors.check()
        assert not any(t.is_alive() for t in self._threads), "a client thread hung"

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        mine: list[str] = []
        with self.d.client(timeout=90) as c:
            n = 0
            while not self._stop.is_set():
                n += 1
                self._create(c, f"load-{index}-{n}", mine)
                if n % 4 == 0 and mine:
                    self._delete(c, mine.pop(rng.randrange(len(mine))))
                time.sleep(0.05)

    def _create(self, c: httpx.Client, name: str, mine: list[str]) -> None:
        body = {"server": {"name": name, "flavorRef": self.flavor, "imageRef": self.image,
                           "networks": "none"}}
        try:
            r = c.post("/compute/v2.1/servers", json=body)
        except httpx.HTTPError:
            with self._lock:
                self.transport_errors += 1
            return
        if r.status_code == 202:
            with self._lock:
                self.accepted.append(r.json()["server"]["id"])
            mine.append(r.json()["server"]["id"])
        else:
            with self._lock:
                self.refused.append((r.status_code, r.text))

    def _delete(self, c: httpx.Client, uuid: str) -> None:
        try:
            r = c.delete(f"/compute/v2.1/servers/{uuid}")
        except httpx.HTTPError:
            with self._lock:
                self.transport_errors += 1
            return
        if r.status_code == 204:
            with self._lock:
                self.deleted.add(uuid)
        else:  # busy (409) or refused while a fault lasts: keep it, it must settle anyway
            assert r.status_code in (409, 503), r.text


def _prepare_load(d: Deployment) -> Load:
    with d.client() as c:
        flavor = c.post("/compute/v2.1/flavors", json={"flavor": FLAVOR})
        assert flavor.status_code == 200, flavor.text
        image = c.post("/image/v2/images", json={"name": "img", "disk_format": "raw",
                                                  "container_format": "bare"}).json()["id"]
        put = c.put(f"/image/v2/images/{image}/file", content=b"x" * 4096,
                    headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 204, put.text
    return Load(d, flavor.json()["flavor"]["id"], image)


def _run_load_around(d: Deployment, fault, before: float = 4.0, after: float = 6.0) -> Load:
    """Load for `before` seconds, the fault (a callable), load for `after` seconds more."""
    load = _prepare_load(d).start()
    try:
        time.sleep(before)
        fault()
        time.sleep(after)
    finally:
        load.stop()
    return load


# ---------------------------------------------------------------- what must hold afterwards


def _all_servers(c: httpx.Client) -> list[dict]:
    r = c.get("/compute/v2.1/servers/detail", params={"all_tenants": "1", "limit": "1000"})
    assert r.status_code == 200, r.text
    return r.json()["servers"]


def _vms(d: Deployment) -> dict[str, list[str]]:
    """uuid -> hosts whose (fake) hypervisor runs it."""
    found: dict[str, list[str]] = {}
    for host in d.agent_hosts:
        path = d.workdir / "data" / "fake-hosts" / f"{host}.json"
        vms = json.loads(path.read_text()) if path.exists() else {}
        for uuid in vms:
            found.setdefault(uuid, []).append(host)
    return found


def _settled(d: Deployment) -> bool:
    with d.client() as c:
        return all(s["OS-EXT-STS:task_state"] is None and s["status"] != "BUILD"
                   for s in _all_servers(c))


def check_nothing_lost(d: Deployment, load: Load) -> dict:
    """Every invariant of the module docstring; returns the outcome counts for the report."""
    assert load.accepted, f"no create was accepted at all: {load.refused[:3]}"
    for status, text in load.refused:
        # A fault may refuse a request (503: try again), never fail it with a crash (500).
        assert status == 503 and "serviceUnavailable" in text, (status, text)
    try:
        wait_for(lambda: _settled(d), SETTLE_TIMEOUT, "every server out of its task state",
                 interval=1.0)
    except AssertionError:
        with d.client() as c:
            stuck = [(s["id"], s["status"], s["OS-EXT-STS:task_state"]) for s in _all_servers(c)
                     if s["OS-EXT-STS:task_state"] is not None or s["status"] == "BUILD"]
        raise AssertionError(f"stuck: {stuck[:10]}\n{d.describe()[-20000:]}") from None

    with d.client() as c:
        servers = {s["id"]: s for s in _all_servers(c)}
        outcome = {"accepted": len(load.accepted), "deleted": 0, "ACTIVE": 0, "ERROR": 0,
                   "refused (503)": len(load.refused), "transport_errors": load.transport_errors}
        for uuid in load.accepted:
            s = servers.get(uuid)
            if uuid in load.deleted:
                assert s is None, f"{uuid} was deleted (204) but is {s and s['status']}"
                outcome["deleted"] += 1
                continue
            assert s is not None, f"accepted server {uuid} is gone"
            assert s["status"] in ("ACTIVE", "ERROR"), (uuid, s["status"])
            if s["status"] == "ERROR":
                assert s.get("fault", {}).get("message"), f"{uuid} is ERROR without a fault"
            outcome[s["status"]] += 1
        unknown = set(servers) - set(load.accepted)
        assert not unknown, f"servers nobody was told about: {sorted(unknown)[:5]}"

        # VMs: one per ACTIVE server, where the database says; none for anything else.
        # Destroys of failed builds are asynchronous: give them a moment to land.
        def vms_match() -> bool:
            return _vm_problems(d, servers) == []

        try:
            wait_for(vms_match, 30, "hypervisors agreeing with the database", interval=0.5)
        except AssertionError:
            raise AssertionError(f"VM mismatch: {_vm_problems(d, servers)[:10]}") from None

        # Quotas: usage counted equals the live servers.
        absolute = c.get("/compute/v2.1/limits").json()["limits"]["absolute"]
        live = list(servers.values())
        assert absolute["totalInstancesUsed"] == len(live), (absolute, len(live))
        assert absolute["totalCoresUsed"] == len(live) * FLAVOR["vcpus"], absolute
        assert absolute["totalRAMUsed"] == len(live) * FLAVOR["ram"], absolute

        # Claims: what each hypervisor has used equals what is placed on it and running.
        hypervisors = c.get("/compute/v2.1/os-hypervisors/detail").json()["hypervisors"]
        for h in hypervisors:
            placed = [s for s in servers.values() if s["status"] == "ACTIVE"
                      and s["OS-EXT-SRV-ATTR:hypervisor_hostname"] == h["hypervisor_hostname"]]
            assert h["running_vms"] == len(placed), (h["hypervisor_hostname"], h, len(placed))
            assert h["vcpus_used"] == len(placed) * FLAVOR["vcpus"], h
            assert h["memory_mb_used"] == len(placed) * FLAVOR["ram"], h
    return outcome


def _vm_problems(d: Deployment, servers: dict[str, dict]) -> list[str]:
    problems = []
    vms = _vms(d)
    for uuid, hosts in vms.items():
        s = servers.get(uuid)
        if len(hosts) > 1:
            problems.append(f"{uuid} runs on {hosts}")
        elif s is None or s["status"] != "ACTIVE":
            problems.append(f"{uuid} runs on {hosts} but is {s and s['status']}")
        elif s["OS-EXT-SRV-ATTR:host"] != hosts[0]:
            problems.append(f"{uuid} runs on {hosts[0]}, database says {s['OS-EXT-SRV-ATTR:host']}")
    for uuid, s in servers.items():
        if s["status"] == "ACTIVE" and uuid not in vms:
            problems.append(f"{uuid} is ACTIVE on {s['OS-EXT-SRV-ATTR:host']} but runs nowhere")
    return problems


# ---------------------------------------------------------------- the faults


def test_broker_connection_cut_while_servers_are_created(deploy, broker_proxy: TcpProxy) -> None:
    d = deploy("postgresql")
    load = _run_load_around(d, lambda: broker_proxy.cut(refuse_for=5.0), after=8.0)
    outcome = check_nothing_lost(d, load)
    assert broker_proxy.refused > 0, "nothing tried to reconnect during the cut"
    print("broker cut:", outcome)


def test_broker_connections_silently_dropped_while_servers_are_created(
        deploy, broker_proxy: TcpProxy) -> None:
    """A firewall forgets every session: no RST, no FIN, nothing. Only AMQP heartbeats (2 s
    here) and publisher-confirm timeouts can tell; every process must notice and reconnect."""
    d = deploy("postgresql", CIRRUS_AMQP_HEARTBEAT="2")
    before = broker_proxy.accepted

    def drop_silently() -> None:
        broker_proxy.blackhole()
        time.sleep(6.0)
        broker_proxy.restore()  # new connections pass again; the old ones stay dead

    load = _run_load_around(d, drop_silently, after=12.0)
    outcome = check_nothing_lost(d, load)
    assert broker_proxy.accepted > before, "no process reconnected"
    print("broker black-holed:", outcome)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_database_restarted_mid_load(deploy, backend: str) -> None:
    d = deploy(backend)
    load = _run_load_around(d, lambda: restart_database(backend), after=8.0)
    outcome = check_nothing_lost(d, load)
    print(f"{backend} restart:", outcome)


def test_conductor_killed_mid_build_another_finishes(deploy) -> None:
    d = deploy("postgresql", conductors=2)
    load = _run_load_around(d, lambda: d.kill("conductor"), after=8.0)
    assert not d.proc("conductor").alive()
    outcome = check_nothing_lost(d, load)
    # The survivor did the rest: builds accepted after the kill all finished.
    assert outcome["ACTIVE"] > 0
    print("conductor killed:", outcome)


def test_agent_killed_and_restarted(deploy) -> None:
    d = deploy("postgresql")

    def kill_and_restart() -> None:
        d.kill("agent-1")
        time.sleep(3.0)
        d.restart("agent-1")

    load = _run_load_around(d, kill_and_restart, after=8.0)
    outcome = check_nothing_lost(d, load)
    with d.client() as c:
        hosts = {s["OS-EXT-SRV-ATTR:host"] for s in _all_servers(c) if s["status"] == "ACTIVE"}
    assert "node-1" in hosts, "the restarted agent's host has no server at all"
    print("agent killed:", outcome)


# ---------------------------------------------------------------- restarting a database


def restart_database(backend: str, down_for: float = 2.0) -> None:
    """Stop the machine's database server, wait `down_for` seconds, start it again."""
    if backend == "postgresql":
        version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
        _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast")
        time.sleep(down_for)
        _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start")
        wait_for(lambda: _ok("pg_isready", "-q", "-h", "127.0.0.1"), 60, "PostgreSQL back")
    else:
        _run("mysqladmin", "-h", "127.0.0.1", "-u", "root", "shutdown")
        wait_for(lambda: not _ok("pgrep", "-x", "mariadbd"), 60, "MariaDB stopped")
        time.sleep(down_for)
        Path("/run/mysqld").mkdir(exist_ok=True)
        shutil.chown("/run/mysqld", "mysql", "mysql")
        _run("start-stop-daemon", "--start", "--oknodo", "--background", "--exec",
             "/usr/sbin/mariadbd", "--", "--user=mysql")
        wait_for(lambda: _ok("mysqladmin", "-h", "127.0.0.1", "-u", "root", "ping"), 60,
                 "MariaDB back")


def _run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr}"


def _ok(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
