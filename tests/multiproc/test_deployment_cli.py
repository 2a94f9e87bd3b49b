"""The production layout end to end, driven by the real `openstack` CLI.

Two API processes behind a round-robin balancer, a conductor, a scheduler and three agents
(node-1..3), each its own `cirrus serve` process, on a fresh PostgreSQL database and
RabbitMQ (tests/deployment.py). One deployment serves the whole module, so the tests run in
file order and build on each other: services and hypervisors, a flavor and an image,
servers spread over the agents, stop/start, request ids followed through the roles' JSON
logs, adding and removing an agent host, delete; then every process must exit 0.
docs/deployment.md describes this layout and names this file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.dbfixtures import fresh_database
from tests.deployment import BROKER_URL, Deployment, require_broker, wait_for
from tests.e2e.conftest import NOT_FOUND, Cli, unique, wait_for_status

pytestmark = pytest.mark.e2e

AGENT_HOSTS = ["node-1", "node-2", "node-3"]
SERVER_COUNT = 6
LOG_TIMEOUT = 10.0  # a role logs just after the state change the CLI already saw


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """api-1, api-2, conductor, scheduler, agent-1..3; afterwards, every one exits 0."""
    require_broker()
    with fresh_database("postgresql") as url:
        d = Deployment(tmp_path_factory.mktemp("deployment"), url, [BROKER_URL])
        try:
            d.start_standard(apis=2, agents=len(AGENT_HOSTS))
            d.wait_ready()
            yield d
        finally:
            codes = d.stop()
        assert all(code == 0 for code in codes.values()), f"exit codes {codes}:\n{d.describe()}"


@pytest.fixture(scope="module")
def cli(deployment: Deployment) -> Cli:
    """`openstack` as the admin, through the balancer (the clouds.yaml of `cirrus bootstrap`)."""
    return Cli(deployment.clouds_yaml)


def agent_of(host: str) -> str:
    """The deployment's process name for the agent of `host` (node-2 -> agent-2)."""
    return f"agent-{host.split('-')[1]}"


def logged(d: Deployment, process: str, request_id: str, text: str) -> bool:
    """Whether `process` wrote a log line carrying `request_id` whose message holds `text`."""
    return any(e.get("request_id") == request_id and text in e.get("message", "")
               for e in d.logs(process))


def wait_logged(d: Deployment, process: str, request_id: str, text: str) -> None:
    try:
        wait_for(lambda: logged(d, process, request_id, text), LOG_TIMEOUT,
                 f"{process} logging {text!r} with {request_id}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{d.describe()}") from None


def request_id_of(cli: Cli, server_id: str, action: str) -> str:
    """The request id of the latest `action` on a server, from its instance actions."""
    events = [e for e in cli.json("server", "event", "list", server_id) if e["Action"] == action]
    assert events, f"no {action} action on {server_id}"
    return events[0]["Request ID"]


def api_processes_logging(d: Deployment, request_id: str, method: str, path: str) -> list[str]:
    """The API processes whose access log has this request."""
    return [name for name in ("api-1", "api-2")
            if any(e.get("request_id") == request_id and e.get("method") == method
                   and e.get("path") == path for e in d.logs(name))]


# ---------------------------------------------------------------- the deployment as the CLI sees it


def test_compute_service_list_shows_every_role_up(cli: Cli) -> None:
    rows = cli.json("compute", "service", "list")
    up = {(r["Binary"], r["Host"]) for r in rows if r["State"] == "up" and r["Status"] == "enabled"}
    expected = {("nova-conductor", "ctl-1"), ("nova-scheduler", "sched-1")}
    expected |= {("nova-compute", host) for host in AGENT_HOSTS}
    assert expected <= up, rows


def test_hypervisor_list_shows_each_agent_host(cli: Cli) -> None:
    names = {h["Hypervisor Hostname"] for h in cli.json("hypervisor", "list")}
    assert names == set(AGENT_HOSTS)


@pytest.fixture(scope="module")
def flavor(cli: Cli) -> dict:
    return cli.json("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1",
                    unique("mp.tiny"))


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "tiny.raw"
    path.write_bytes(bytes(range(256)) * 256)
    return path


@pytest.fixture(scope="module")
def image(cli: Cli, image_file: Path) -> dict:
    return cli.json("image", "create", "--file", str(image_file), "--disk-format", "raw",
                    "--container-format", "bare", unique("mp-image"))


def test_flavor_create(cli: Cli, flavor: dict) -> None:
    assert (flavor["vcpus"], flavor["ram"], flavor["disk"]) == (1, 128, 1)
    assert cli.json("flavor", "show", flavor["name"])["id"] == flavor["id"]


def test_image_create_uploads_the_file(cli: Cli, image: dict, image_file: Path) -> None:
    data = image_file.read_bytes()
    shown = cli.json("image", "show", image["id"])
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------- servers over three agents


@pytest.fixture(scope="module")
def servers(cli: Cli, flavor: dict, image: dict) -> list[dict]:
    """SERVER_COUNT servers, created by concurrent `server create --wait` commands."""

    def create(name: str) -> dict:
        return cli.json("server", "create", "--flavor", flavor["name"], "--image", image["name"],
                        "--nic", "none", "--wait", name)

    names = [unique("mp-vm") for _ in range(SERVER_COUNT)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(create, names))


@pytest.fixture(scope="module")
def hosts(cli: Cli, servers: list[dict]) -> dict[str, str]:
    """Server id -> the agent host it was built on (`server show`, an admin's field)."""
    return {s["id"]: cli.json("server", "show", s["id"])["OS-EXT-SRV-ATTR:host"] for s in servers}


def test_servers_reach_active(servers: list[dict]) -> None:
    assert [s["status"] for s in servers] == ["ACTIVE"] * SERVER_COUNT


def test_servers_spread_over_more_than_one_agent(hosts: dict[str, str]) -> None:
    assert set(hosts.values()) <= set(AGENT_HOSTS), hosts
    assert len(set(hosts.values())) > 1, hosts


def test_stop_then_start_reach_the_agent(cli: Cli, deployment: Deployment, servers: list[dict],
                                         hosts: dict[str, str]) -> None:
    server_id = servers[0]["id"]
    agent = agent_of(hosts[server_id])
    cli.run("server", "stop", server_id)
    assert wait_for_status(cli, server_id, "SHUTOFF")["OS-EXT-STS:power_state"] in ("Shutdown", 4)
    wait_logged(deployment, agent, request_id_of(cli, server_id, "stop"), f"stop of {server_id}")
    cli.run("server", "start", server_id)
    assert wait_for_status(cli, server_id, "ACTIVE")["OS-EXT-STS:power_state"] in ("Running", 1)
    wait_logged(deployment, agent, request_id_of(cli, server_id, "start"), f"start of {server_id}")


# ---------------------------------------------------------------- one request id across the roles


def test_create_request_id_is_in_the_api_scheduler_and_agent_logs(
        cli: Cli, deployment: Deployment, servers: list[dict], hosts: dict[str, str]) -> None:
    server_id = servers[1]["id"]
    request_id = request_id_of(cli, server_id, "create")
    wait_for(lambda: api_processes_logging(deployment, request_id, "POST", "/compute/v2.1/servers"),
             LOG_TIMEOUT, f"an API process logging POST /servers with {request_id}")
    assert len(api_processes_logging(deployment, request_id, "POST", "/compute/v2.1/servers")) == 1
    wait_logged(deployment, "scheduler", request_id, f"{server_id} scheduled to {hosts[server_id]}")
    wait_logged(deployment, agent_of(hosts[server_id]), request_id, f"spawned {server_id}")


def test_create_request_id_is_in_the_conductor_log(cli: Cli, deployment: Deployment,
                                                   servers: list[dict]) -> None:
    server_id = servers[1]["id"]  # built long ago: the conductor had its chance to log
    assert logged(deployment, "conductor", request_id_of(cli, server_id, "create"), server_id)


def test_delete_request_id_is_in_the_api_conductor_and_agent_logs(
        cli: Cli, deployment: Deployment, servers: list[dict], hosts: dict[str, str]) -> None:
    server_id = servers[2]["id"]
    cli.run("server", "delete", "--wait", server_id)
    # Instance actions outlive the server (admins may read a deleted server's actions).
    request_id = request_id_of(cli, server_id, "delete")
    path = f"/compute/v2.1/servers/{server_id}"
    assert len(api_processes_logging(deployment, request_id, "DELETE", path)) == 1
    wait_logged(deployment, "conductor", request_id, f"instance {server_id} deleted")
    wait_logged(deployment, agent_of(hosts[server_id]), request_id, f"destroyed {server_id}")


def test_both_api_processes_served_compute_requests(deployment: Deployment,
                                                    servers: list[dict]) -> None:
    for name in ("api-1", "api-2"):
        paths = [e.get("path", "") for e in deployment.logs(name)]
        assert any(p.startswith("/compute/v2.1/servers") for p in paths), (name, paths)


# ---------------------------------------------------------------- adding and removing an agent host


def service_row(cli: Cli, binary: str, host: str) -> dict | None:
    rows = [r for r in cli.json("compute", "service", "list", "--host", host)
            if r["Binary"] == binary]
    return rows[0] if rows else None


def set_agents_enabled(cli: Cli, hosts: list[str], enabled: bool) -> None:
    change = ["--enable"] if enabled else ["--disable", "--disable-reason", "test: node-4 only"]
    for host in hosts:
        cli.run("compute", "service", "set", *change, host, "nova-compute")


def test_added_agent_host_registers_takes_servers_and_can_be_removed(
        cli: Cli, deployment: Deployment, flavor: dict, image: dict) -> None:
    deployment.agent_hosts.append("node-4")  # so that stop() deletes its queue too
    deployment.add("agent-4", "agent", host_name="node-4")
    deployment.start("agent-4")
    wait_for(lambda: (service_row(cli, "nova-compute", "node-4") or {}).get("State") == "up",
             30, "node-4 up in compute service list", interval=0.5)
    assert "node-4" in {h["Hypervisor Hostname"] for h in cli.json("hypervisor", "list")}

    set_agents_enabled(cli, AGENT_HOSTS, False)  # only the new host may take the next server
    try:
        server = cli.json("server", "create", "--flavor", flavor["name"], "--image",
                          image["name"], "--nic", "none", "--wait", unique("mp-new-host"))
    finally:
        set_agents_enabled(cli, AGENT_HOSTS, True)
    assert cli.json("server", "show", server["id"])["OS-EXT-SRV-ATTR:host"] == "node-4"
    cli.run("server", "delete", "--wait", server["id"])

    assert deployment.proc("agent-4").stop() == 0
    cli.run("compute", "service", "delete", service_row(cli, "nova-compute", "node-4")["ID"])
    assert service_row(cli, "nova-compute", "node-4") is None
    assert "node-4" not in {h["Hypervisor Hostname"] for h in cli.json("hypervisor", "list")}


# ---------------------------------------------------------------- delete


def test_server_delete_wait_removes_every_server(cli: Cli, servers: list[dict]) -> None:
    remaining = {s["ID"] for s in cli.json("server", "list")}
    doomed = [s["id"] for s in servers if s["id"] in remaining]
    cli.run("server", "delete", "--wait", *doomed)
    assert not {s["ID"] for s in cli.json("server", "list")} & {s["id"] for s in servers}
    failed = cli.fails("server", "show", doomed[0])
    assert NOT_FOUND.search(failed.stderr), failed.stderr
