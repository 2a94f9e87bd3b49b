"""An admin's server list filters by project only with all_tenants (Nova lp:#1185290;
Tempest's ServersAdminTestJSON.test_list_servers_by_admin_with_specified_tenant)."""

from __future__ import annotations

from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status

BASE = "/compute/v2.1"


def test_admin_list_ignores_tenant_id_without_all_tenants(api, cloud, admin, member):
    r = api.post(f"{BASE}/servers", headers=member.compute(),
                 json=server_body(add_flavor(cloud), add_image(cloud)))
    sid = r.json()["server"]["id"]
    wait_for_status(api, member.compute(), sid, "ACTIVE")

    def ids(query):
        r = api.get(f"{BASE}/servers/detail?{query}", headers=admin.compute())
        assert r.status_code == 200, r.text
        return [s["id"] for s in r.json()["servers"]]

    assert sid not in ids(f"tenant_id={member.project_id}")
    assert sid not in ids(f"project_id={member.project_id}")
    assert sid in ids(f"all_tenants=&tenant_id={member.project_id}")
    assert sid in ids(f"all_tenants=1&project_id={member.project_id}")
    assert sid not in ids(f"all_tenants=&tenant_id={admin.project_id}")
    # A member's tenant_id is ignored as before: its own servers.
    r = api.get(f"{BASE}/servers?tenant_id={admin.project_id}", headers=member.compute())
    assert sid in [s["id"] for s in r.json()["servers"]]
