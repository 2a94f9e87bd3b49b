"""Nova routes that older clients and Tempest still call, answered from what Cirrus has:
the extension list, os-hosts (up to 2.42), os-tenant-networks and os-networks (read-only,
up to 2.35), and the server password (metadata-service passwords are never set here, so it
is always empty; clearing it is accepted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cirrus.api.compute.microversion import max_version
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.compute import instances
from cirrus.errors import CirrusError, NotFound
from cirrus.hosts import records, usage
from cirrus.hosts.liveness import AGENT_BINARY
from cirrus.hosts.zones import service_zone
from cirrus.identity.policy import ADMIN, READ, WRITE, authorize
from cirrus.network import nova_view
from cirrus.network.errors import NetworkNotFound

# ---------------------------------------------------------------- extensions

# Nova v2.1 still lists the v2 extension names for old clients; these are the ones whose
# behaviour Cirrus serves (alias, name, description).
EXTENSIONS = [
    ("os-availability-zone", "AvailabilityZone", "Availability zones."),
    ("os-consoles", "Consoles", "Interactive console support."),
    ("os-console-output", "ConsoleOutput", "Console log output support."),
    ("os-extended-status", "ExtendedStatus", "Extended status attributes."),
    ("os-extended-server-attributes", "ExtendedServerAttributes",
     "Extended server attributes."),
    ("os-flavor-access", "FlavorAccess", "Flavor access support."),
    ("os-flavor-extra-specs", "FlavorExtraSpecs", "Flavor extra specs support."),
    ("os-flavor-manage", "FlavorManage", "Flavor create and delete."),
    ("os-hosts", "Hosts", "Admin-only host administration."),
    ("os-hypervisors", "Hypervisors", "Admin-only hypervisor administration."),
    ("os-instance-actions", "InstanceActions", "View a log of actions on an instance."),
    ("os-attach-interfaces", "AttachInterfaces", "Attach interface support."),
    ("os-keypairs", "Keypairs", "Keypair support."),
    ("os-quota-sets", "Quotas", "Quotas management support."),
    ("os-security-groups", "SecurityGroups", "Security group support."),
    ("os-server-password", "ServerPassword", "Server password support."),
    ("os-services", "Services", "Services support."),
    ("os-tenant-networks", "OSTenantNetworks", "Tenant-based network management."),
    ("os-create-backup", "CreateBackup", "Create a backup of a server."),
    ("os-config-drive", "ConfigDrive", "Config drive support."),
    ("os-user-data", "UserData", "User data support."),
    ("os-multiple-create", "MultipleCreate", "Allow multiple create in the create server call."),
]
_NAMESPACE = "http://docs.openstack.org/compute/ext/fake_xml"
_UPDATED = "2014-12-03T00:00:00Z"


def _extension(alias: str, name: str, description: str) -> dict[str, Any]:
    return {"alias": alias, "name": name, "description": description, "links": [],
            "namespace": _NAMESPACE, "updated": _UPDATED}


def list_extensions(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "os_compute_api:extensions")
    return {"extensions": [_extension(*row) for row in EXTENSIONS]}


def show_extension(req: ApiRequest, alias: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:extensions")
    for row in EXTENSIONS:
        if row[0] == alias:
            return {"extension": _extension(*row)}
    raise NotFound(f"Extension {alias[:64]} could not be found.")


# ---------------------------------------------------------------- os-hosts (to 2.42)

HOSTS_LAST = "2.42"


def _service_name(binary: str) -> str:
    """Nova's topic-like service names: compute, conductor, scheduler."""
    if binary == AGENT_BINARY or binary.endswith("compute"):
        return "compute"
    return binary.rsplit("-", 1)[-1]


@max_version(HOSTS_LAST)
def list_hosts(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-hosts:list")
    zone = req.query.get("zone")
    with req.cloud.db.reader() as s:
        hosts = [{"host_name": svc.host, "service": _service_name(svc.binary),
                  "zone": service_zone(svc, req.cloud.settings)}
                 for svc in records.list_services(s)]
    if zone:  # an empty zone is no filter, as in Nova
        hosts = [h for h in hosts if h["zone"] == zone]
    return {"hosts": hosts}


@max_version(HOSTS_LAST)
def show_host(req: ApiRequest, host: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-hosts:show")
    with req.cloud.db.reader() as s:
        resources = usage.host_resources(s, host)
    return {"host": [{"resource": {"host": host, "project": r.project, "cpu": r.cpu,
                                   "memory_mb": r.memory_mb, "disk_gb": r.disk_gb}}
                     for r in resources]}


HOST_UPDATE = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["enable", "disable", "Enable",
                                                         "Disable", "ENABLE", "DISABLE"]},
                   "maintenance_mode": {"type": "string",
                                        "enum": ["enable", "disable", "Enable", "Disable",
                                                 "ENABLE", "DISABLE"]}},
    "anyOf": [{"required": ["status"]}, {"required": ["maintenance_mode"]}],
    "additionalProperties": False,
}


class NotImplementedByDriver(CirrusError):
    status = 501
    default_message = "Virt driver does not implement host power management."


@max_version(HOSTS_LAST)
def update_host(req: ApiRequest, host: str) -> dict:
    """Enable or disable the host's compute service (maintenance mode is not a driver
    feature here: 501, as Nova's libvirt driver answers)."""
    authorize(req.ctx, ADMIN, "os_compute_api:os-hosts:update")
    validate(HOST_UPDATE, req.json)
    body = req.json

    def work(s: Any) -> dict:
        if not usage.known_host(s, host):
            raise NotFound(f"Compute host {host} could not be found.")
        if "maintenance_mode" in body:
            raise NotImplementedByDriver("Virt driver does not implement host maintenance "
                                         "mode.")
        disabled = body["status"].lower() == "disable"
        svc = records.find_service(s, host, AGENT_BINARY)
        records.set_status(s, svc, disabled=disabled)
        return {"host": host, "status": "disabled" if disabled else "enabled"}

    return req.cloud.db.run(work)


def _power(action: str) -> Callable[..., dict]:
    @max_version(HOSTS_LAST)
    def handler(req: ApiRequest, host: str) -> dict:
        authorize(req.ctx, ADMIN, f"os_compute_api:os-hosts:{action}")
        with req.cloud.db.reader() as s:
            if not usage.known_host(s, host):
                raise NotFound(f"Compute host {host} could not be found.")
        raise NotImplementedByDriver()

    handler.__name__ = f"host_{action}"
    return handler


# ---------------------------------------------------------------- network proxies (to 2.35)

NETWORKS_LAST = "2.35"


@max_version(NETWORKS_LAST)
def list_tenant_networks(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-tenant-networks:list")
    with req.cloud.db.reader() as s:
        views = nova_view.networks(s, req.ctx)
    return {"networks": [{"id": v["id"], "label": v["label"], "cidr": v["cidr"]} for v in views]}


@max_version(NETWORKS_LAST)
def show_tenant_network(req: ApiRequest, network_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-tenant-networks:show")
    with req.cloud.db.reader() as s:
        try:
            v = nova_view.network(s, req.ctx, network_id)
        except NetworkNotFound:
            raise NotFound("Network not found.") from None
    return {"network": {"id": v["id"], "label": v["label"], "cidr": v["cidr"]}}


@max_version(NETWORKS_LAST)
def list_networks(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-networks:list")
    with req.cloud.db.reader() as s:
        return {"networks": nova_view.networks(s, req.ctx)}


@max_version(NETWORKS_LAST)
def show_network(req: ApiRequest, network_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-networks:show")
    with req.cloud.db.reader() as s:
        try:
            return {"network": nova_view.network(s, req.ctx, network_id)}
        except NetworkNotFound:
            raise NotFound("Network not found.") from None


# ---------------------------------------------------------------- server password


def show_server_password(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-server-password:show")
    with req.cloud.db.reader() as s:
        instances.get(s, req.ctx, server_id)
    return {"password": ""}


def clear_server_password(req: ApiRequest, server_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-server-password:clear")
    with req.cloud.db.reader() as s:
        instances.get(s, req.ctx, server_id)
    return Reply(204)


ROUTES = [
    ("GET", "/v2.1/extensions", list_extensions),
    ("GET", "/v2.1/extensions/{alias}", show_extension),
    ("GET", "/v2.1/os-hosts", list_hosts),
    ("GET", "/v2.1/os-hosts/{host}", show_host),
    ("PUT", "/v2.1/os-hosts/{host}", update_host),
    ("GET", "/v2.1/os-hosts/{host}/startup", _power("startup")),
    ("GET", "/v2.1/os-hosts/{host}/shutdown", _power("shutdown")),
    ("GET", "/v2.1/os-hosts/{host}/reboot", _power("reboot")),
    ("GET", "/v2.1/os-tenant-networks", list_tenant_networks),
    ("GET", "/v2.1/os-tenant-networks/{network_id}", show_tenant_network),
    ("GET", "/v2.1/os-networks", list_networks),
    ("GET", "/v2.1/os-networks/{network_id}", show_network),
    ("GET", "/v2.1/servers/{server_id}/os-server-password", show_server_password),
    ("DELETE", "/v2.1/servers/{server_id}/os-server-password", clear_server_password),
]
