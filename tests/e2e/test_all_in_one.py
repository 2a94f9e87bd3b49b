"""`cirrus all-in-one` as a process: first start, restart on the same data, clean stop."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import start_all_in_one, stop_all_in_one

pytestmark = pytest.mark.e2e


def test_first_start_writes_clouds_yaml_and_sigterm_exits_zero(tmp_path: Path) -> None:
    server = start_all_in_one(tmp_path / "data")
    try:
        cloud = yaml.safe_load(server.clouds_yaml.read_text())["clouds"]["cirrus"]
        assert cloud["auth"]["auth_url"] == f"{server.url}/identity/v3"
        assert cloud["auth"]["username"] == "admin"
        assert cloud["auth"]["password"]
        assert stat.S_IMODE(server.clouds_yaml.stat().st_mode) == 0o600
        assert any(f"OS_CLIENT_CONFIG_FILE={server.clouds_yaml}" in line for line in server.output)
        assert (server.data_dir / "cirrus.db").exists()
    finally:
        code = stop_all_in_one(server)
    assert code == 0, server.log_tail()


def test_restart_on_the_same_data_dir_keeps_the_admin_password(tmp_path: Path) -> None:
    first = start_all_in_one(tmp_path / "data")
    password = first.admin_auth["password"]
    assert stop_all_in_one(first) == 0, first.log_tail()
    second = start_all_in_one(tmp_path / "data")
    try:
        assert second.admin_auth["password"] == password
        auth = second.admin_auth
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": password, "domain": {"name": "Default"}}}}}}
        r = httpx.post(f"{second.url}/identity/v3/auth/tokens", json=body, timeout=10)
        assert r.status_code == 201, r.text
    finally:
        assert stop_all_in_one(second) == 0, second.log_tail()
