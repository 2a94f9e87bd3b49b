"""Cirrus's replies, judged by Tempest: its service clients send each request the way real
clients do and validate the status code and body with Tempest's JSON schema for the
negotiated compute microversion (tests/api/tempest_schemas.py wires them to the app).

Every Tempest call below raises (InvalidHTTPResponseBody, UnexpectedResponseCode, NotFound,
...) when Cirrus's answer differs from what Tempest, and the clients it stands for, rely on.
Tempest ships no response schemas for identity or image; for those its clients still check
each status code and parse the bodies, and the tests assert the fields clients read.
"""

from __future__ import annotations

import io

import pytest
from tempest.lib.services.compute.availability_zone_client import AvailabilityZoneClient
from tempest.lib.services.compute.flavors_client import FlavorsClient
from tempest.lib.services.compute.hypervisor_client import HypervisorClient
from tempest.lib.services.compute.keypairs_client import KeyPairsClient
from tempest.lib.services.compute.limits_client import LimitsClient
from tempest.lib.services.compute.quotas_client import QuotasClient
from tempest.lib.services.compute.servers_client import ServersClient
from tempest.lib.services.compute.services_client import ServicesClient
from tempest.lib.services.compute.versions_client import VersionsClient
from tempest.lib.services.identity.v3.catalog_client import CatalogClient
from tempest.lib.services.identity.v3.domains_client import DomainsClient
from tempest.lib.services.identity.v3.identity_client import IdentityClient
from tempest.lib.services.identity.v3.projects_client import ProjectsClient
from tempest.lib.services.identity.v3.role_assignments_client import RoleAssignmentsClient
from tempest.lib.services.identity.v3.roles_client import RolesClient
from tempest.lib.services.identity.v3.users_client import UsersClient
from tempest.lib.services.identity.v3.versions_client import (
    VersionsClient as IdentityVersionsClient,
)
from tempest.lib.services.image.v2.images_client import ImagesClient
from tempest.lib.services.image.v2.versions_client import VersionsClient as ImageVersionsClient

from cirrus.api.compute import microversion
from cirrus.hosts.liveness import AGENT_BINARY
from tests.api.servers_helpers import add_flavor, wait_for_status
from tests.api.tempest_schemas import (
    ALWAYS_CHECKED,
    Clients,
    at_least,
    compute_microversion,
    get_validated,
    schema_versions,
)
from tests.conftest import ADMIN_PASSWORD


@pytest.fixture
def as_admin(api) -> Clients:
    return Clients(api, "admin", ADMIN_PASSWORD, "admin")


@pytest.fixture
def as_member(api, member) -> Clients:
    return Clients(api, "alice", "pw-alice", "project-a")


def _server_args(version: str, flavor: str, image: str, **extra) -> dict:
    args = {"name": "vm", "flavorRef": flavor, "imageRef": image, **extra}
    if at_least(version, "2.37"):  # from 2.37 `networks` is required
        args["networks"] = "none"
    return args


def test_schema_versions_cover_every_tempest_switch_up_to_cirrus_maximum():
    versions = schema_versions(ServersClient)
    assert versions[0] == "2.1" and versions[-1] == microversion.fmt(microversion.MAX_VERSION)
    # Tempest's server schemas change at these versions; each one is exercised below.
    for switch in ("2.3", "2.9", "2.16", "2.19", "2.26", "2.47", "2.48", "2.51", "2.54", "2.58"):
        assert switch in versions
    assert set(ALWAYS_CHECKED) <= set(versions)


# ---------------------------------------------------------------- servers


@pytest.mark.parametrize("version", schema_versions(ServersClient))
def test_server_routes_match_tempest_schemas(api, admin, as_member, as_admin, flavor, image,
                                             version):
    with compute_microversion(version):
        servers = as_member.compute(ServersClient)
        created = servers.create_server(**_server_args(version, flavor, image))["server"]
        sid = created["id"]
        assert created["adminPass"]
        wait_for_status(api, admin.compute(), sid, "ACTIVE")

        assert [s["id"] for s in servers.list_servers()["servers"]] == [sid]
        paged = servers.list_servers(limit=1)
        assert paged["servers_links"][0]["rel"] == "next"
        detail = servers.list_servers(detail=True)["servers"][0]
        assert detail["status"] == "ACTIVE"
        shown = servers.show_server(sid)["server"]
        assert "OS-EXT-SRV-ATTR:host" not in shown  # admin-only

        updated = servers.update_server(sid, name="renamed")["server"]
        assert updated["name"] == "renamed"
        assert "OS-EXT-STS:vm_state" not in updated  # before 2.75 an update shows less

        assert servers.set_server_metadata(sid, {"a": "1"})["metadata"] == {"a": "1"}
        assert servers.update_server_metadata(sid, {"b": "2"})["metadata"] == {"a": "1", "b": "2"}
        assert servers.list_server_metadata(sid)["metadata"] == {"a": "1", "b": "2"}
        assert servers.show_server_metadata_item(sid, "a")["meta"] == {"a": "1"}
        assert servers.set_server_metadata_item(sid, "a", {"a": "3"})["meta"] == {"a": "3"}
        servers.delete_server_metadata_item(sid, "a")

        servers.stop_server(sid)
        wait_for_status(api, admin.compute(), sid, "SHUTOFF")
        assert servers.show_server(sid)["server"]["status"] == "SHUTOFF"
        assert "progress" not in servers.update_server(sid, name="stopped")["server"]
        servers.start_server(sid)
        wait_for_status(api, admin.compute(), sid, "ACTIVE")
        servers.reboot_server(sid, type="SOFT")
        wait_for_status(api, admin.compute(), sid, "ACTIVE")
        assert isinstance(servers.get_console_output(sid, length=5)["output"], str)

        actions = servers.list_instance_actions(sid)["instanceActions"]
        assert [a["action"] for a in actions][-1] == "create"
        if at_least(version, "2.58"):  # paging and changes-since over the actions
            url = f"servers/{sid}/os-instance-actions"
            first = get_validated(servers, f"{url}?limit=1", "list_instance_actions")
            assert first["instanceActions"] == actions[:1]
            assert f"marker={actions[0]['request_id']}" in first["links"][0]["href"]
            rest = get_validated(servers, f"{url}?marker={actions[0]['request_id']}"
                                 "&changes-since=2000-01-01T00:00:00Z", "list_instance_actions")
            assert rest["instanceActions"] == actions[1:]
        action = servers.show_instance_action(sid, actions[0]["request_id"])["instanceAction"]
        assert ("events" in action) == at_least(version, "2.51")

        # The admin's views add host attributes (and host_status from 2.16).
        admin_servers = as_admin.compute(ServersClient)
        admin_view = admin_servers.show_server(sid)["server"]
        assert admin_view["OS-EXT-SRV-ATTR:host"]
        admin_servers.list_servers(detail=True, all_tenants=True)
        admin_servers.update_server(sid, name="by-admin")
        admin_servers.show_instance_action(sid, actions[0]["request_id"])

        servers.delete_server(sid)
        wait_for_status(api, admin.compute(), sid, "DELETED")


@pytest.mark.parametrize("version", schema_versions(ServersClient))
def test_server_with_every_create_option_matches_tempest_schemas(api, cloud, admin, as_member,
                                                                 as_admin, flavor, image,
                                                                 version):
    options = {"key_name": "mykey", "config_drive": True, "metadata": {"role": "web"},
               "user_data": "IyEvYmluL3NoCg==", "accessIPv4": "192.0.2.7",
               "security_groups": [{"name": "default"}], "availability_zone": "nova",
               "OS-DCF:diskConfig": "MANUAL"}
    if at_least(version, "2.19"):
        options["description"] = "a described server"
    if at_least(version, "2.52"):
        options["tags"] = ["blue", "green"]
    cloud.settings.fake.boot_delay = 0.3
    with compute_microversion(version):
        as_member.compute(KeyPairsClient).create_keypair(name="mykey")
        servers = as_member.compute(ServersClient)
        created = servers.create_server(**_server_args(version, flavor, image, **options))
        sid = created["server"]["id"]
        assert created["server"]["OS-DCF:diskConfig"] == "MANUAL"

        building = servers.show_server(sid)["server"]  # seen during BUILD
        assert building["status"] == "BUILD"
        as_admin.compute(ServersClient).show_server(sid)
        wait_for_status(api, admin.compute(), sid, "ACTIVE", timeout=20)

        shown = servers.show_server(sid)["server"]
        assert shown["key_name"] == "mykey" and shown["config_drive"] == "True"
        assert shown["accessIPv4"] == "192.0.2.7"
        if at_least(version, "2.19"):
            assert shown["description"] == "a described server"
        if at_least(version, "2.52"):
            assert sorted(shown["tags"]) == ["blue", "green"]
        listed = servers.list_servers(detail=True, name="vm", status="ACTIVE")["servers"]
        assert [s["id"] for s in listed] == [sid]

        admin_servers = as_admin.compute(ServersClient)
        admin_view = admin_servers.list_servers(detail=True, all_tenants=True)["servers"][0]
        if at_least(version, "2.3"):
            assert admin_view["OS-EXT-SRV-ATTR:user_data"] == options["user_data"]
        servers.delete_server(sid)
        wait_for_status(api, admin.compute(), sid, "DELETED", timeout=20)
        gone = admin_servers.list_servers(detail=True, all_tenants=True, deleted=True)["servers"]
        assert [s["status"] for s in gone if s["id"] == sid] == ["DELETED"]


@pytest.mark.parametrize("version", schema_versions(ServersClient))
def test_server_in_error_shows_fault_matching_tempest_schemas(api, cloud, admin, as_member,
                                                              as_admin, flavor, image, version):
    cloud.settings.fake.failure_rate = 1.0
    with compute_microversion(version):
        servers = as_member.compute(ServersClient)
        sid = servers.create_server(**_server_args(version, flavor, image))["server"]["id"]
        wait_for_status(api, admin.compute(), sid, "ERROR")

        fault = servers.show_server(sid)["server"]["fault"]
        assert fault["code"] == 500 and fault["message"]
        assert servers.list_servers(detail=True)["servers"][0]["fault"] == fault
        assert servers.update_server(sid, name="still-broken")["server"]["fault"] == fault
        admin_fault = as_admin.compute(ServersClient).show_server(sid)["server"]["fault"]
        assert "details" in admin_fault

        request_id = servers.list_instance_actions(sid)["instanceActions"][0]["request_id"]
        for client in (servers, as_admin.compute(ServersClient)):
            client.show_instance_action(sid, request_id)
        servers.delete_server(sid)
        wait_for_status(api, admin.compute(), sid, "DELETED")

        # Never scheduled: no host, and the fault names the filter that refused.
        cloud.settings.quota_ram = -1
        huge = add_flavor(cloud, name="huge", ram=10**7)
        sid = servers.create_server(**_server_args(version, huge, image))["server"]["id"]
        wait_for_status(api, admin.compute(), sid, "ERROR")
        assert "No valid host" in servers.show_server(sid)["server"]["fault"]["message"]
        unplaced = as_admin.compute(ServersClient).show_server(sid)["server"]
        assert unplaced["OS-EXT-SRV-ATTR:host"] is None
        servers.delete_server(sid)


# ---------------------------------------------------------------- flavors


@pytest.mark.parametrize("version", schema_versions(FlavorsClient))
def test_flavor_routes_match_tempest_schemas(as_admin, as_member, member, flavor, version):
    with compute_microversion(version):
        flavors = as_admin.compute(FlavorsClient)
        roomy = flavors.create_flavor(name="roomy", ram=128, vcpus=2, disk=5, swap=256,
                                      ephemeral=3, rxtx_factor=2.0)["flavor"]
        assert roomy["swap"] == 256 and roomy["OS-FLV-EXT-DATA:ephemeral"] == 3
        flavors.delete_flavor(roomy["id"])
        private = flavors.create_flavor(name="private", ram=64, vcpus=1, disk=1, id="private-1",
                                        **{"os-flavor-access:is_public": False})["flavor"]
        assert private["os-flavor-access:is_public"] is False
        assert flavors.show_flavor("private-1")["flavor"]["name"] == "private"
        assert len(flavors.list_flavors(is_public="None")["flavors"]) == 2
        flavors.list_flavors(detail=True, is_public="None")
        assert len(flavors.list_flavors(limit=1)["flavors"]) == 1

        specs = flavors.set_flavor_extra_spec("private-1", **{"hw:cpu_policy": "shared"})
        assert specs["extra_specs"] == {"hw:cpu_policy": "shared"}
        assert flavors.list_flavor_extra_specs("private-1")["extra_specs"] == specs["extra_specs"]
        assert flavors.show_flavor_extra_spec("private-1", "hw:cpu_policy") == {
            "hw:cpu_policy": "shared"}
        flavors.update_flavor_extra_spec("private-1", "hw:cpu_policy",
                                         **{"hw:cpu_policy": "dedicated"})
        flavors.unset_flavor_extra_spec("private-1", "hw:cpu_policy")

        granted = flavors.add_flavor_access("private-1", member.project_id)["flavor_access"]
        assert granted == [{"flavor_id": "private-1", "tenant_id": member.project_id}]
        assert flavors.list_flavor_access("private-1")["flavor_access"] == granted
        assert flavors.remove_flavor_access("private-1", member.project_id)["flavor_access"] == []

        if at_least(version, "2.55"):
            described = flavors.update_flavor("private-1", description="small")["flavor"]
            assert described["description"] == "small"

        mine = as_member.compute(FlavorsClient)
        assert [f["id"] for f in mine.list_flavors()["flavors"]] == [flavor]
        assert mine.list_flavors(detail=True)["flavors"][0]["ram"] == 512
        mine.show_flavor(flavor)

        flavors.delete_flavor("private-1")


# ---------------------------------------------------------------- key pairs


KEYPAIR_VERSIONS = schema_versions(KeyPairsClient, also=ALWAYS_CHECKED + ("2.10", "2.35"))


@pytest.mark.parametrize("version", KEYPAIR_VERSIONS)
def test_keypair_routes_match_tempest_schemas(as_member, as_admin, member, version):
    with compute_microversion(version):
        keypairs = as_member.compute(KeyPairsClient)
        generated = keypairs.create_keypair(name="generated")["keypair"]
        assert generated["private_key"]
        imported = keypairs.create_keypair(name="imported",
                                           public_key=generated["public_key"])["keypair"]
        assert "private_key" not in imported
        names = sorted(k["keypair"]["name"] for k in keypairs.list_keypairs()["keypairs"])
        assert names == ["generated", "imported"]
        assert keypairs.show_keypair("imported")["keypair"]["user_id"] == member.user_id
        if at_least(version, "2.2"):
            x509 = keypairs.create_keypair(name="cert", type="x509")["keypair"]
            assert x509["type"] == "x509" and x509["private_key"]
            assert keypairs.show_keypair("cert")["keypair"]["type"] == "x509"
            keypairs.delete_keypair("cert")
        if at_least(version, "2.10"):
            on_behalf = as_admin.compute(KeyPairsClient)
            on_behalf.create_keypair(name="for-alice", user_id=member.user_id)
            assert len(on_behalf.list_keypairs(user_id=member.user_id)["keypairs"]) == 3
            on_behalf.show_keypair("for-alice", user_id=member.user_id)
            on_behalf.delete_keypair("for-alice", user_id=member.user_id)
        keypairs.delete_keypair("generated")
        keypairs.delete_keypair("imported")
        assert keypairs.list_keypairs()["keypairs"] == []


# ---------------------------------------------------------------- limits and quotas


@pytest.mark.parametrize("version", schema_versions(LimitsClient))
def test_limits_match_tempest_schemas(as_member, version):
    with compute_microversion(version):
        absolute = as_member.compute(LimitsClient).show_limits()["limits"]["absolute"]
    assert absolute["totalInstancesUsed"] == 0
    assert ("maxImageMeta" in absolute) == (not at_least(version, "2.39"))
    assert ("maxPersonality" in absolute) == (not at_least(version, "2.57"))


@pytest.mark.parametrize("version", schema_versions(QuotasClient))
def test_quota_set_routes_match_tempest_schemas(as_member, as_admin, member, version):
    project = member.project_id
    with compute_microversion(version):
        mine = as_member.compute(QuotasClient)
        shown = mine.show_quota_set(project)["quota_set"]
        assert shown["id"] == project
        assert mine.show_quota_set(project, detail=True)["quota_set"]["instances"]["in_use"] == 0
        defaults = mine.show_default_quota_set(project)["quota_set"]
        assert defaults["instances"] == shown["instances"]

        quotas = as_admin.compute(QuotasClient)
        quotas.show_quota_set(project, detail=True, user_id=member.user_id)
        assert quotas.update_quota_set(project, instances=7, cores=9)["quota_set"]["instances"] == 7
        assert quotas.show_quota_set(project)["quota_set"]["cores"] == 9
        quotas.delete_quota_set(project)
        assert quotas.show_quota_set(project)["quota_set"]["instances"] == defaults["instances"]
    assert ("floating_ips" in shown) == (not at_least(version, "2.36"))
    assert ("injected_files" in shown) == (not at_least(version, "2.57"))


# ---------------------------------------------------------------- zones, hypervisors, services


@pytest.mark.parametrize("version", ALWAYS_CHECKED)
def test_availability_zones_match_tempest_schemas(as_member, as_admin, version):
    with compute_microversion(version):
        zones = as_member.compute(AvailabilityZoneClient).list_availability_zones()
        detail = as_admin.compute(AvailabilityZoneClient).list_availability_zones(detail=True)
    assert zones["availabilityZoneInfo"][0]["zoneState"]["available"] is True
    assert any(z["hosts"] for z in detail["availabilityZoneInfo"])


@pytest.mark.parametrize("version", schema_versions(HypervisorClient))
def test_hypervisor_routes_match_tempest_schemas(api, admin, as_admin, flavor, image, version):
    with compute_microversion(version):
        servers = as_admin.compute(ServersClient)
        sid = servers.create_server(**_server_args(version, flavor, image))["server"]["id"]
        host = wait_for_status(api, admin.compute(), sid, "ACTIVE")["OS-EXT-SRV-ATTR:host"]

        hypervisors = as_admin.compute(HypervisorClient)
        listed = hypervisors.list_hypervisors()["hypervisors"]
        assert len(listed) >= 1
        node = next(h for h in hypervisors.list_hypervisors(detail=True)["hypervisors"]
                    if h["service"]["host"] == host)
        assert hypervisors.show_hypervisor(node["id"])["hypervisor"]["running_vms"] == 1
        stats = hypervisors.show_hypervisor_statistics()["hypervisor_statistics"]
        assert stats["running_vms"] == 1
        if at_least(version, "2.33"):
            assert hypervisors.list_hypervisors(limit=1)["hypervisors_links"]
        if at_least(version, "2.53"):
            with_servers = hypervisors.list_hypervisors(with_servers=True)["hypervisors"]
            assert [s["uuid"] for h in with_servers for s in h.get("servers", [])] == [sid]
        else:
            name = node["hypervisor_hostname"]
            assert hypervisors.search_hypervisor(name)["hypervisors"][0]["id"] == node["id"]
            on_host = hypervisors.list_servers_on_hypervisor(name)["hypervisors"][0]
            assert on_host["servers"][0]["uuid"] == sid
        servers.delete_server(sid)


@pytest.mark.parametrize("version", schema_versions(ServicesClient))
def test_service_routes_match_tempest_schemas(as_admin, version):
    with compute_microversion(version):
        services = as_admin.compute(ServicesClient)
        listed = services.list_services()["services"]
        agent = next(s for s in listed if s["binary"] == AGENT_BINARY)
        assert services.list_services(binary=AGENT_BINARY, host=agent["host"])["services"]
        if at_least(version, "2.53"):
            disabled = services.update_service(agent["id"], status="disabled",
                                               disabled_reason="maintenance")["service"]
            assert disabled["status"] == "disabled"
            services.update_service(agent["id"], status="enabled")
            assert services.update_service(agent["id"], forced_down=True)["service"]["forced_down"]
            services.update_service(agent["id"], forced_down=False)
        else:
            where = {"host": agent["host"], "binary": AGENT_BINARY}
            assert services.disable_service(**where)["service"]["status"] == "disabled"
            services.disable_log_reason(disabled_reason="maintenance", **where)
            assert services.enable_service(**where)["service"]["status"] == "enabled"
            if at_least(version, "2.11"):
                assert services.update_forced_down(forced_down=True, **where)["service"][
                    "forced_down"] is True
                services.update_forced_down(forced_down=False, **where)


def test_compute_version_documents_match_tempest_schemas(as_member):
    versions = as_member.compute(VersionsClient)
    listed = versions.list_versions()["versions"]
    assert listed[0]["version"] == microversion.fmt(microversion.MAX_VERSION)
    one = versions.get_version_by_url("http://testserver/compute/v2.1")["version"]
    assert one["min_version"] == "2.1"


# ---------------------------------------------------------------- identity (status codes)


def test_identity_token_routes_answer_tempest_status_codes(as_member, as_admin):
    # Tempest's auth provider already issued the token (201) and read its catalog.
    token, body = as_member.auth_provider.get_auth()
    assert body["project"]["name"] == "project-a" and body["expires_at"]
    identity = as_admin.client(IdentityClient, "identity")
    shown = identity.show_token(token)["token"]
    assert shown["user"]["name"] == "alice"
    assert "member" in {r["name"] for r in shown["roles"]}
    identity.check_token_existence(token)
    assert identity.list_auth_projects()["projects"]
    assert as_admin.client(CatalogClient, "identity").show_catalog()["catalog"]
    identity.delete_token(token)
    with pytest.raises(Exception, match="404|Not ?Found"):
        identity.show_token(token)
    assert as_admin.client(IdentityVersionsClient, "identity").list_versions()["versions"]


def test_identity_admin_routes_answer_tempest_status_codes(as_admin):
    projects = as_admin.client(ProjectsClient, "identity")
    users = as_admin.client(UsersClient, "identity")
    roles = as_admin.client(RolesClient, "identity")
    domains = as_admin.client(DomainsClient, "identity")

    assert domains.show_domain("default")["domain"]["name"] == "Default"
    assert domains.list_domains()["domains"]
    project = projects.create_project("conformance", description="x")["project"]
    assert projects.show_project(project["id"])["project"]["name"] == "conformance"
    assert projects.update_project(project["id"], description="y")["project"]["description"] == "y"
    assert any(p["id"] == project["id"] for p in projects.list_projects()["projects"])

    user = users.create_user(name="carol", password="pw-carol", project_id=project["id"],
                             domain_id="default")["user"]
    assert users.show_user(user["id"])["user"]["name"] == "carol"
    users.update_user(user["id"], email="carol@example.org")
    assert any(u["id"] == user["id"] for u in users.list_users()["users"])

    member_role = next(r for r in roles.list_roles()["roles"] if r["name"] == "member")
    roles.show_role(member_role["id"])
    roles.create_user_role_on_project(project["id"], user["id"], member_role["id"])
    roles.check_user_role_existence_on_project(project["id"], user["id"], member_role["id"])
    assert roles.list_user_roles_on_project(project["id"], user["id"])["roles"]
    assert users.list_user_projects(user["id"])["projects"][0]["id"] == project["id"]
    assignments = as_admin.client(RoleAssignmentsClient, "identity").list_role_assignments(
        **{"user.id": user["id"]})["role_assignments"]
    assert assignments[0]["role"]["id"] == member_role["id"]
    roles.delete_role_from_user_on_project(project["id"], user["id"], member_role["id"])

    role = roles.create_role(name="auditor")["role"]
    roles.update_role(role["id"], name="auditor2")
    roles.delete_role(role["id"])
    users.delete_user(user["id"])
    projects.delete_project(project["id"])


# ---------------------------------------------------------------- image (status codes)


def test_image_routes_answer_tempest_status_codes(as_member):
    images = as_member.client(ImagesClient, "image")
    created = images.create_image(name="conformance", disk_format="raw",
                                  container_format="bare", visibility="private")
    assert created["status"] == "queued"
    image_id = created["id"]
    images.store_image_file(image_id, io.BytesIO(b"x" * 4096))
    assert images.show_image_file(image_id).data == b"x" * 4096
    shown = images.show_image(image_id)
    assert shown["status"] == "active" and shown["size"] == 4096 and shown["os_hash_value"]
    # Tempest sends the openstack-images-v2.0-json-patch dialect.
    patched = images.update_image(image_id, [{"add": "/os_distro", "value": "cirros"}])
    assert patched["os_distro"] == "cirros"
    images.add_image_tag(image_id, "tagged")
    images.delete_image_tag(image_id, "tagged")
    assert [i["id"] for i in images.list_images({"name": "conformance"})["images"]] == [image_id]
    images.delete_image(image_id)
    assert as_member.client(ImageVersionsClient, "image").list_versions()["versions"]
