"""Files private (issue 11, point 1): after a whole lifecycle of a real `cirrus all-in-one`
(flavor, image upload, server created with an adminPass, snapshot, delete), nothing under
its data directory has a permission bit for the group or others; and a path made looser
behind its back is named in a WARNING at the next start."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.security import aio as aiomod

pytestmark = pytest.mark.timeout(300)


def _wait(what: str, fetch, done, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached: {value}")


def _lifecycle(c: httpx.Client) -> None:
    r = c.post("/compute/v2.1/flavors", json={"flavor": {
        "name": "files", "vcpus": 1, "ram": 64, "disk": 1}})
    assert r.status_code == 200, r.text
    flavor = r.json()["flavor"]["id"]
    r = c.post("/image/v2/images", json={"name": "private-image", "disk_format": "raw",
                                         "container_format": "bare", "visibility": "private"})
    assert r.status_code == 201, r.text
    image = r.json()["id"]
    r = c.put(f"/image/v2/images/{image}/file", content=b"secret image bytes" * 1000,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    r = c.post("/compute/v2.1/servers", json={"server": {
        "name": "files-vm", "flavorRef": flavor, "imageRef": image, "networks": "none",
        "adminPass": "a-secret-admin-pass"}})
    assert r.status_code == 202, r.text
    server = r.json()["server"]["id"]
    _wait("ACTIVE", lambda: c.get(f"/compute/v2.1/servers/{server}").json()["server"],
          lambda s: s["status"] in ("ACTIVE", "ERROR"))
    r = c.post(f"/compute/v2.1/servers/{server}/action", json={"createImage": {"name": "snap"}})
    assert r.status_code == 202, r.text
    snap = r.json()["image_id"]
    _wait("snapshot active", lambda: c.get(f"/image/v2/images/{snap}").json(),
          lambda i: i.get("status") in ("active", "killed"))
    _wait("server idle", lambda: c.get(f"/compute/v2.1/servers/{server}").json()["server"],
          lambda s: s.get("OS-EXT-STS:task_state") is None)
    assert c.delete(f"/compute/v2.1/servers/{server}").status_code == 204
    _wait("deleted", lambda: c.get(f"/compute/v2.1/servers/{server}").status_code,
          lambda code: code == 404)


def _loose_paths(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath) / name if name != "." else Path(dirpath)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            if stat.S_IMODE(st.st_mode) & 0o077:
                found.append(f"{path} {stat.S_IMODE(st.st_mode):04o}")
    return found


def test_everything_under_the_data_dir_is_private_after_a_lifecycle(tmp_path: Path) -> None:
    data = tmp_path / "data"
    os.umask(0o022)  # what a shell gives: Cirrus must not depend on its caller's umask
    server = aiomod.start(data)
    try:
        with server.client() as c:
            _lifecycle(c)
    finally:
        code = server.stop()
    assert code == 0, server.text()
    names = {p.name for p in data.rglob("*")}
    assert {"cirrus.db", "cirrus.log", "clouds.yaml", "images"} <= names, names
    assert any(p.parent.name == "images" and p.is_file() for p in data.rglob("*")), \
        "no image file was written: the test did not exercise the image store"
    assert _loose_paths(data) == []
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_a_looser_path_is_named_in_a_warning_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = aiomod.start(data)
    assert server.stop() == 0, server.text()
    (data / "cirrus.db").chmod(0o644)
    stray = data / "images" / "stray"
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"x")
    stray.chmod(0o604)
    server = aiomod.start(data)
    try:
        warnings = [e["message"] for e in server.log_entries() if e.get("level") == "WARNING"]
    finally:
        assert server.stop() == 0, server.text()
    assert any(str(data / "cirrus.db") in m and "0644" in m for m in warnings), warnings
    assert any(str(stray) in m and "others" in m for m in warnings), warnings
    assert not any("clouds.yaml" in m for m in warnings), warnings


def test_libvirt_instance_directories_may_be_group_traversable(tmp_path: Path) -> None:
    """The exception the libvirt driver's layout needs: group bits under a storage pool
    are accepted with virt_driver = libvirt, others' bits never."""
    from cirrus import files
    from cirrus.config import Settings

    settings = Settings(data_dir=tmp_path, virt_driver="libvirt")
    inst = tmp_path / "instances" / "vm-1"
    inst.mkdir(parents=True)
    tmp_path.chmod(0o710)  # QEMU's group may traverse the data directory to its pool
    (tmp_path / "instances").chmod(0o710)
    inst.chmod(0o750)
    disk = inst / "disk"
    disk.write_bytes(b"")
    disk.chmod(0o660)
    other = inst / "console.log"
    other.write_bytes(b"")
    other.chmod(0o604)
    old = os.umask(0o022)
    try:
        files.apply(settings)
        loose = {str(p) for p, _ in files.check_tree(settings)}
    finally:
        os.umask(old)
    assert loose == {str(other)}
    fake = Settings(data_dir=tmp_path / "x", virt_driver="fake")
    fake_dir = tmp_path / "x" / "instances"
    fake_dir.mkdir(parents=True)
    (tmp_path / "x").chmod(0o700)
    fake_dir.chmod(0o750)
    files._group_ok.clear()
    files.apply(fake)
    os.umask(old)
    assert {str(p) for p, _ in files.check_tree(fake)} == {str(fake_dir)}


def test_file_group_gives_the_group_read_access_but_secrets_stay_private(tmp_path: Path) -> None:
    import grp

    from cirrus import files
    from cirrus.config import Settings

    group = grp.getgrgid(os.getgid()).gr_name
    old = os.umask(0o022)
    try:
        files.apply(Settings(data_dir=tmp_path / "data", file_group=group))
        files.make_dirs(tmp_path / "data" / "images")
        os.close(files.create_private(tmp_path / "data" / "images" / "img"))
        files.write_private(tmp_path / "data" / "clouds.yaml", "password: x", secret=True)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "data").rglob("*")}
        assert modes == {"images": 0o2750, "img": 0o640, "clouds.yaml": 0o600}, modes
        assert files.check_tree(Settings(data_dir=tmp_path / "data", file_group=group)) == []
    finally:
        files.apply(Settings(data_dir=tmp_path))
        os.umask(old)


def test_an_unknown_file_group_stops_the_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cirrus.cli", "db", "upgrade"],
                          env={**os.environ, "CIRRUS_DATA_DIR": str(tmp_path / "data"),
                               "CIRRUS_FILE_GROUP": "no-such-group-here"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "no-such-group-here" in done.stderr and not (tmp_path / "data").exists()
