"""os-simple-tenant-usage: figures from launched_at/terminated_at, who may read them, paging
(2.40) and bad periods."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from cirrus.db.models import Instance

BASE = "/compute/v2.1"
T0 = dt.datetime(2026, 1, 1, 0, 0, 0)
FLAVOR = {"flavorid": "f1", "name": "m1.usage", "vcpus": 2, "ram": 1024, "disk": 10,
          "ephemeral": 5}


def add_instance(cloud, project_id: str, name: str, launched: dt.datetime | None,
                 terminated: dt.datetime | None = None) -> str:
    ident = str(uuid.uuid4())
    cloud.db.run(lambda s: s.add(Instance(
        uuid=ident, display_name=name, project_id=project_id, user_id="u", flavor=FLAVOR,
        vcpus=2, memory_mb=1024, root_gb=10, vm_state="deleted" if terminated else "active",
        launched_at=launched, terminated_at=terminated, deleted=terminated is not None)))
    return ident


@pytest.fixture
def usage(cloud, member, other_member) -> dict:
    return {
        # 10 hours inside the window, 2 of them before it starts.
        "running": add_instance(cloud, member.project_id, "running", T0 - dt.timedelta(hours=2)),
        # 3 hours, deleted inside the window.
        "gone": add_instance(cloud, member.project_id, "gone", T0 + dt.timedelta(hours=1),
                             T0 + dt.timedelta(hours=4)),
        "never": add_instance(cloud, member.project_id, "never", None),
        "before": add_instance(cloud, member.project_id, "before", T0 - dt.timedelta(days=3),
                               T0 - dt.timedelta(days=2)),
        "other": add_instance(cloud, other_member.project_id, "other", T0),
    }


def period(hours: int = 8) -> str:
    return f"start={T0.isoformat()}&end={(T0 + dt.timedelta(hours=hours)).isoformat()}"


def test_project_usage_from_launch_and_termination(api, member, reader, usage):
    for caller in (member, reader):
        r = api.get(f"{BASE}/os-simple-tenant-usage/{member.project_id}?{period()}",
                    headers=caller.compute())
        assert r.status_code == 200, r.text
        body = r.json()["tenant_usage"]
        servers = {u["name"]: u for u in body["server_usages"]}
        assert set(servers) == {"running", "gone"}
        assert servers["running"]["hours"] == pytest.approx(8)
        assert servers["gone"]["hours"] == pytest.approx(3)
        assert servers["gone"]["state"] == "terminated"
        assert servers["gone"]["uptime"] == 3 * 3600
        assert servers["running"]["local_gb"] == 15 and servers["running"]["vcpus"] == 2
        assert body["total_hours"] == pytest.approx(11)
        assert body["total_vcpus_usage"] == pytest.approx(22)
        assert body["total_memory_mb_usage"] == pytest.approx(11 * 1024)
        assert body["start"] == T0.isoformat()


def test_admin_lists_every_project(api, admin, member, other_member, usage):
    r = api.get(f"{BASE}/os-simple-tenant-usage?{period()}&detailed=1",
                headers=admin.compute())
    assert r.status_code == 200
    by_project = {u["tenant_id"]: u for u in r.json()["tenant_usages"]}
    assert by_project[member.project_id]["total_hours"] == pytest.approx(11)
    assert by_project[other_member.project_id]["total_hours"] == pytest.approx(8)
    assert "server_usages" in by_project[member.project_id]
    plain = api.get(f"{BASE}/os-simple-tenant-usage?{period()}", headers=admin.compute())
    assert all("server_usages" not in u for u in plain.json()["tenant_usages"])


def test_paging_from_2_40(api, admin, usage):
    r = api.get(f"{BASE}/os-simple-tenant-usage?{period()}&limit=1&detailed=1",
                headers=admin.compute("2.40"))
    body = r.json()
    assert sum(len(u["server_usages"]) for u in body["tenant_usages"]) == 1
    assert "marker=" in body["tenant_usages_links"][0]["href"]
    r = api.get(f"{BASE}/os-simple-tenant-usage?{period()}&limit=1&detailed=1",
                headers=admin.compute("2.39"))
    assert sum(len(u["server_usages"]) for u in r.json()["tenant_usages"]) == 3


def test_authorisation(api, member, reader, other_member, usage):
    assert api.get(f"{BASE}/os-simple-tenant-usage", headers=member.compute()).status_code == 403
    assert api.get(f"{BASE}/os-simple-tenant-usage", headers=reader.compute()).status_code == 403
    r = api.get(f"{BASE}/os-simple-tenant-usage/{member.project_id}?{period()}",
                headers=other_member.compute())
    assert r.status_code == 403


def test_project_without_usage_is_an_empty_object(api, other_member):
    r = api.get(f"{BASE}/os-simple-tenant-usage/{other_member.project_id}?{period()}",
                headers=other_member.compute())
    assert r.status_code == 200 and r.json() == {"tenant_usage": {}}


@pytest.mark.parametrize(("query", "field"), [
    ("start=yesterday", "start"),
    ("end=2026-13-01T00:00:00", "end"),
    ("start=2026-01-02T00:00:00&end=2026-01-01T00:00:00", "start time"),
    ("detailed=perhaps", "detailed"),
])
def test_bad_periods_are_400(api, admin, query, field):
    r = api.get(f"{BASE}/os-simple-tenant-usage?{query}", headers=admin.compute())
    assert r.status_code == 400, r.text
    assert field in r.json()["badRequest"]["message"]
