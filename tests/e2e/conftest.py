"""End-to-end fixtures: a real `cirrus all-in-one` process driven by the real clients.

One all-in-one runs for the whole e2e session on a free loopback port with its own data
dir. `cli` runs the `openstack` command (python-openstackclient) against it with
OS_CLIENT_CONFIG_FILE and OS_CLOUD; `sdk` is an openstacksdk connection as admin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deployment import terminate

# How the CLI says a server does not exist (osc-lib's or openstacksdk's words, or the 404).
NOT_FOUND = re.compile(r"No server with a name or ID|No Server found|HTTP 404|Not ?Found", re.I)

START_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AllInOne:
    """A running `cirrus all-in-one` subprocess."""

    process: subprocess.Popen
    url: str
    data_dir: Path
    clouds_yaml: Path
    output: list[str] = field(default_factory=list)

    def log_tail(self, lines: int = 15) -> str:
        """The end of its output and of its JSON log, for failure messages."""
        text = "".join(self.output[-lines:])
        log = self.data_dir / "cirrus.log"
        if log.exists():
            text += f"--- {log} (end)\n"
            for line in log.read_text().splitlines()[-lines:]:
                try:
                    entry = json.loads(line)
                except ValueError:
                    text += line + "\n"
                    continue
                text += f"{entry.get('level')} {entry.get('logger')}: {entry.get('message')}\n"
                if entry.get("traceback"):
                    text += entry["traceback"]
        return text

    @property
    def admin_auth(self) -> dict:
        return yaml.safe_load(self.clouds_yaml.read_text())["clouds"]["cirrus"]["auth"]


def _pump(stream, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


def start_all_in_one(data_dir: Path, env: dict[str, str] | None = None,
                     args: Sequence[str] = ()) -> AllInOne:
    """Start `cirrus all-in-one` on a free port; return once clouds.yaml is written and
    GET /identity/v3 answers. `args` are more options (`--virt-driver libvirt`)."""
    port = free_port()
    cmd = [sys.executable, "-m", "cirrus.cli", "all-in-one", "--host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(data_dir), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    server = AllInOne(proc, f"http://127.0.0.1:{port}", data_dir, data_dir / "clouds.yaml")
    threading.Thread(target=_pump, args=(proc.stdout, server.output), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    printed = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            time.sleep(0.2)  # let the pump thread read the last lines
            raise RuntimeError(f"cirrus all-in-one exited with {proc.returncode}:\n"
                               f"{server.log_tail()}")
        printed = printed or any(f"clouds.yaml: {server.clouds_yaml}" in line
                                 for line in list(server.output))
        if printed:
            try:
                if httpx.get(f"{server.url}/identity/v3", timeout=2).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    stop_all_in_one(server)
    raise RuntimeError(f"cirrus all-in-one did not come up in {START_TIMEOUT:.0f}s "
                       f"(clouds.yaml printed: {printed}):\n{server.log_tail()}")


def stop_all_in_one(server: AllInOne) -> int | None:
    """SIGTERM, then wait; returns the exit code, or None if it had to be killed."""
    return terminate(server.process, STOP_TIMEOUT)


@pytest.fixture(scope="session")
def all_in_one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    server = start_all_in_one(tmp_path_factory.mktemp("aio") / "data")
    yield server
    code = stop_all_in_one(server)
    assert code == 0, (f"cirrus all-in-one did not exit 0 within {STOP_TIMEOUT:.0f}s of SIGTERM "
                       f"(exit code {code}):\n{server.log_tail()}")


# ---------------------------------------------------------------- the openstack CLI


def openstack_command() -> str:
    """The `openstack` script installed beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "openstack"
    found = str(beside) if beside.exists() else shutil.which("openstack")
    if not found:
        pytest.fail("the `openstack` command (python-openstackclient) is not installed; "
                    "scripts/test installs it with the test extra")
    return found


class CliError(Exception):
    def __init__(self, args: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        super().__init__(f"openstack {' '.join(args)} exited {returncode}:\n{stderr or stdout}")


@dataclass
class Cli:
    """Runs `openstack` as one cloud of a clouds.yaml (`as_cloud` picks another user)."""

    clouds_yaml: Path
    cloud: str = "cirrus"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml), "OS_CLOUD": self.cloud}
        for name in list(env):  # settings from the developer's shell must not leak in
            if name.startswith("OS_") and name not in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD"):
                del env[name]
        proc = subprocess.run([openstack_command(), *args], env=env, capture_output=True,
                              text=True, timeout=CLI_TIMEOUT)
        if check and proc.returncode != 0:
            raise CliError(list(args), proc.returncode, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str) -> object:
        """Run a command with `-f json` and return its parsed output."""
        return json.loads(self.run(*args, "-f", "json").stdout)

    def fails(self, *args: str) -> subprocess.CompletedProcess:
        """Run a command that must fail; return it for its stderr."""
        proc = self.run(*args, check=False)
        assert proc.returncode != 0, f"openstack {' '.join(args)} succeeded:\n{proc.stdout}"
        return proc

    def as_cloud(self, cloud: str) -> Cli:
        return Cli(self.clouds_yaml, cloud)


@dataclass
class Users:
    """Extra users, each a cloud in the test clouds.yaml (same auth_url as the admin)."""

    cli: Cli
    base_auth: dict
    region: str

    def add(self, cloud: str, username: str, password: str, project: str) -> Cli:
        doc = yaml.safe_load(self.cli.clouds_yaml.read_text())
        auth = {**self.base_auth, "username": username, "password": password,
                "project_name": project}
        doc["clouds"][cloud] = {"auth": auth, "region_name": self.region,
                                "identity_api_version": 3, "interface": "public"}
        self.cli.clouds_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
        return self.cli.as_cloud(cloud)


@pytest.fixture(scope="session")
def test_clouds_yaml(all_in_one: AllInOne, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the all-in-one's clouds.yaml that tests may add users to."""
    path = tmp_path_factory.mktemp("clients") / "clouds.yaml"
    shutil.copy(all_in_one.clouds_yaml, path)
    return path


@pytest.fixture(scope="session")
def cli(test_clouds_yaml: Path) -> Cli:
    """The `openstack` command as the admin of the all-in-one."""
    return Cli(test_clouds_yaml)


@pytest.fixture(scope="session")
def users(cli: Cli, all_in_one: AllInOne) -> Users:
    cloud = yaml.safe_load(all_in_one.clouds_yaml.read_text())["clouds"]["cirrus"]
    return Users(cli, cloud["auth"], cloud["region_name"])


@pytest.fixture(scope="session")
def sdk(all_in_one: AllInOne) -> Iterator:
    """An openstacksdk connection as admin, configured from the all-in-one's clouds.yaml."""
    import openstack
    from openstack.config import loader

    config = loader.OpenStackConfig(config_files=[str(all_in_one.clouds_yaml)],
                                    vendor_files=[], secure_files=[])
    conn = openstack.connection.Connection(config=config.get_one(cloud="cirrus"))
    yield conn
    conn.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for_status(cli: Cli, server: str, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    shown: dict = {}
    while time.monotonic() < deadline:
        shown = cli.json("server", "show", server)
        if shown["status"] == status:
            return shown
        if shown["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"server {server} went to ERROR: {shown.get('fault')}")
        time.sleep(0.5)
    raise AssertionError(f"server {server} is {shown.get('status')}, not {status}, "
                         f"after {timeout:.0f}s")


@pytest.fixture(scope="session")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "tiny.raw"
    path.write_bytes(os.urandom(64 * 1024))
    return path


@pytest.fixture(scope="session")
def base_image(cli: Cli, image_file: Path) -> dict:
    """A public raw image that every project may boot from."""
    return cli.json("image", "create", "--file", str(image_file), "--disk-format", "raw",
                    "--container-format", "bare", "--public", unique("e2e-base"))


@pytest.fixture(scope="session")
def base_flavor(cli: Cli) -> dict:
    return cli.json("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1",
                    unique("e2e.tiny"))
