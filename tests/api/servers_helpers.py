"""Helpers for server tests: a flavor and an image straight in the database, and waiting."""

from __future__ import annotations

import time
import uuid

from cirrus.db.models import Flavor, Image


def add_flavor(cloud, name: str = "m1.small", vcpus: int = 1, ram: int = 512, disk: int = 1,
               is_public: bool = True) -> str:
    flavorid = str(uuid.uuid4())

    def work(s):
        s.add(Flavor(flavorid=flavorid, name=name, vcpus=vcpus, memory_mb=ram, root_gb=disk,
                     is_public=is_public, extra_specs={}))

    cloud.db.run(work)
    return flavorid


def add_image(cloud, owner: str | None = None, visibility: str = "public",
              status: str = "active") -> str:
    image_id = str(uuid.uuid4())

    def work(s):
        s.add(Image(id=image_id, name="cirros", owner=owner, status=status, visibility=visibility,
                    disk_format="raw", container_format="bare", size=1024, tags=[], properties={}))

    cloud.db.run(work)
    return image_id


def wait_for_status(api, headers, server_id: str, wanted: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    server: dict = {}
    while time.monotonic() < deadline:
        r = api.get(f"/compute/v2.1/servers/{server_id}", headers=headers)
        if r.status_code == 404 and wanted == "DELETED":
            return {}
        assert r.status_code == 200, r.text
        server = r.json()["server"]
        if server["status"] == wanted and server["OS-EXT-STS:task_state"] is None:
            return server
        time.sleep(0.02)
    raise AssertionError(f"server {server_id} is {server.get('status')}/"
                         f"{server.get('OS-EXT-STS:task_state')}, wanted {wanted}")


def server_body(flavor: str, image: str, name: str = "vm", **extra) -> dict:
    return {"server": {"name": name, "flavorRef": flavor, "imageRef": image, "networks": "none",
                       **extra}}
