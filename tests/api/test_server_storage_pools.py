"""A flavor asking for a storage pool (`cirrus:storage_pool`) places its servers only on hosts
that report that pool; when none has it the server goes to ERROR saying why."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cirrus.config import Settings
from cirrus.db.models import Instance
from tests.api.servers_helpers import add_image, server_body, wait_for_status

BASE = "/compute/v2.1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.fake.storage_pools = {"ssd": "100/2"}  # of fake-1..3, only fake-2 has ssd
    return settings


def pool_flavor(api, admin, pool: str) -> str:
    """A flavor made as an operator would: create it, then set its extra spec."""
    r = api.post(f"{BASE}/flavors", headers=admin.compute(),
                 json={"flavor": {"name": f"on-{pool}", "vcpus": 1, "ram": 512, "disk": 1}})
    assert r.status_code == 200, r.text
    flavor_id = r.json()["flavor"]["id"]
    r = api.post(f"{BASE}/flavors/{flavor_id}/os-extra_specs", headers=admin.compute(),
                 json={"extra_specs": {"cirrus:storage_pool": pool}})
    assert r.status_code == 200, r.text
    return flavor_id


def create(api, caller, flavor: str, image: str) -> str:
    r = api.post(f"{BASE}/servers", json=server_body(flavor, image), headers=caller.compute())
    assert r.status_code == 202, r.text
    return r.json()["server"]["id"]


def test_servers_asking_for_ssd_go_only_to_the_host_with_ssd(api, cloud, admin, member) -> None:
    flavor, image = pool_flavor(api, admin, "ssd"), add_image(cloud)
    sids = [create(api, member, flavor, image) for _ in range(3)]
    hosts = {wait_for_status(api, admin.compute(), sid, "ACTIVE")["OS-EXT-SRV-ATTR:host"]
             for sid in sids}
    assert hosts == {"fake-2"}
    # Placed there at once: no spawn failed on a host without ssd and was retried elsewhere.
    with cloud.db.reader() as s:
        tried = s.execute(select(Instance.tried_hosts).where(Instance.uuid.in_(sids))).scalars()
        assert [t or [] for t in tried] == [[], [], []]


def test_no_host_with_the_pool_ends_in_error_naming_the_filter(api, cloud, admin, member) -> None:
    flavor, image = pool_flavor(api, admin, "nvme"), add_image(cloud)
    sid = create(api, member, flavor, image)
    fault = wait_for_status(api, member.compute(), sid, "ERROR")["fault"]
    assert "No valid host was found. 3 host(s) considered: StoragePoolFilter refused 3" in (
        fault["message"])
    # Members read the reason without host names; admins read them in the details.
    assert "(no storage pool 'nvme')" in fault["message"] and "fake-" not in str(fault)
    details = wait_for_status(api, admin.compute(), sid, "ERROR")["fault"]["details"]
    assert "fake-2: no storage pool 'nvme' (it has: default, ssd)" in details
