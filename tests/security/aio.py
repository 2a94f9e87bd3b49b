"""A `cirrus all-in-one` subprocess for the security tests (plain HTTP or HTTPS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.deployment import free_port, terminate

START_TIMEOUT = 90.0


@dataclass
class Aio:
    process: subprocess.Popen
    url: str
    data_dir: Path
    verify: object = True
    output: list[str] = field(default_factory=list)

    @property
    def clouds_yaml(self) -> Path:
        return self.data_dir / "clouds.yaml"

    def log_entries(self) -> list[dict]:
        path = self.data_dir / "cirrus.log"
        entries = []
        for line in (path.read_text().splitlines() if path.exists() else []):
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries

    def text(self) -> str:
        log = self.data_dir / "cirrus.log"
        tail = log.read_text()[-4000:] if log.exists() else ""
        return "".join(self.output[-30:]) + "\n--- log ---\n" + tail

    def token(self) -> str:
        auth = yaml.safe_load(self.clouds_yaml.read_text())["clouds"]["cirrus"]["auth"]
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "domain": {"id": "default"},
            "password": auth["password"]}}},
            "scope": {"project": {"name": auth["project_name"], "domain": {"id": "default"}}}}}
        r = httpx.post(f"{self.url}/identity/v3/auth/tokens", json=body, timeout=30,
                       verify=self.verify)
        assert r.status_code == 201, r.text
        return r.headers["x-subject-token"]

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, verify=self.verify, headers={
            "X-Auth-Token": self.token(), "OpenStack-API-Version": "compute 2.60"})

    def stop(self, timeout: float = 20.0) -> int | None:
        return terminate(self.process, timeout)


def start(data_dir: Path, *args: str, env: dict[str, str] | None = None,
          scheme: str = "http", verify: object = True) -> Aio:
    port = free_port()
    cmd = [sys.executable, "-m", "cirrus.cli", "all-in-one", "--host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(data_dir), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    aio = Aio(proc, f"{scheme}://127.0.0.1:{port}", data_dir, verify)
    threading.Thread(target=lambda: aio.output.extend(proc.stdout), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            time.sleep(0.2)
            raise AssertionError(f"all-in-one exited with {proc.returncode}:\n{aio.text()}")
        if any("listening on" in line for line in list(aio.output)):
            verify_now = verify() if callable(verify) else verify
            aio.verify = verify_now
            try:
                if httpx.get(f"{aio.url}/identity/v3", timeout=2,
                             verify=verify_now).status_code == 200:
                    return aio
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    aio.stop()
    raise AssertionError(f"all-in-one did not come up:\n{aio.text()}")
