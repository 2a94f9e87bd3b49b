"""The Neutron version document, the v2.0 resource index and the extension list.

Extensions listed are only those Cirrus implements, so clients that check before using a
feature (openstackclient's `find_extension`) learn the truth.
"""

from __future__ import annotations

from cirrus.api.framework import ApiRequest
from cirrus.errors import NotFound

EXTENSIONS = (
    ("external-net", "Neutron external network",
     "Adds external network attribute to network resource.", "2013-01-14T10:00:00-00:00"),
    ("provider", "Provider Network",
     "Expose mapping of virtual networks to physical networks", "2012-09-07T10:00:00-00:00"),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource.",
     "2015-03-25T10:00:00-00:00"),
    ("net-mtu-writable", "Network MTU (writable)",
     "Provides a writable MTU attribute for a network resource.", "2017-07-12T00:00:00-00:00"),
    ("binding", "Port Binding",
     "Expose port bindings of a virtual port to external application",
     "2014-02-03T10:00:00-00:00"),
    ("port-security", "Port Security", "Provides port security", "2012-07-23T10:00:00-00:00"),
    ("allowed-address-pairs", "Allowed Address Pairs",
     "Provides allowed address pairs", "2013-07-23T10:00:00-00:00"),
    ("security-group", "security-group", "The security groups extension.",
     "2012-10-05T10:00:00-00:00"),
    ("stateful-security-group", "Stateful security group",
     "Indicates if the security group is stateful or not", "2019-11-26T09:00:00-00:00"),
    ("quotas", "Quota management support", "Expose functions for quotas management per project",
     "2012-07-29T10:00:00-00:00"),
    ("quota_details", "Quota details management support",
     "Expose functions for quotas usage statistics per project", "2017-02-10T10:00:00-00:00"),
    ("quota-check-limit", "Quota engine limit check",
     "Support for checking the resource usage before applying a new quota limit",
     "2021-09-08T16:00:00-00:00"),
    ("auto-allocated-topology", "Auto Allocated Topology Services",
     "Auto Allocated Topology Services.", "2016-01-01T00:00:00-00:00"),
    ("standard-attr-description", "standard-attr-description",
     "Extension to add descriptions to standard attributes", "2016-02-10T10:00:00-00:00"),
    ("standard-attr-revisions", "Resource revision numbers",
     "This extension will display the revision number of neutron resources.",
     "2016-04-11T10:00:00-00:00"),
    ("standard-attr-timestamp", "Resource timestamps",
     "Adds created_at and updated_at fields to all Neutron resources that have Neutron "
     "standard attributes.", "2016-09-12T10:00:00-00:00"),
    ("standard-attr-tag", "Tag support for resources with standard attribute: network, "
     "subnet, port, router, floatingip, subnetpool",
     "Enables to set tag on resources with standard attribute.",
     "2017-01-01T00:00:00-00:00"),
    ("project-id", "project_id field enabled",
     "Extension that indicates that project_id field is enabled.", "2016-09-09T09:09:09-09:09"),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled.",
     "2016-06-12T00:00:00-00:00"),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled.",
     "2016-06-12T00:00:00-00:00"),
    ("filter-validation", "Filter parameters validation",
     "Provides validation on filter parameters.", "2018-07-04T10:00:00-00:00"),
    ("ip-substring-filtering", "IP address substring filtering",
     "Provides IP address substring filtering when listing ports",
     "2017-11-28T09:00:00-00:00"),
    # L3 (issue 14): the API and its records; the dataplane that carries them comes apart.
    ("router", "Neutron L3 Router",
     "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to "
     "external networks via a NAT gateway.", "2012-07-20T10:00:00-00:00"),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router",
     "2013-02-01T10:00:00-00:00"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode",
     "Extension of the router abstraction for specifying whether SNAT should occur on the "
     "external gateway", "2013-03-28T10:00:00-00:00"),
    # Subnet pools (cirrus.network.subnetpools).
    ("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet "
     "pool", "2015-03-30T10:00:00-00:00"),
    ("default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a "
     "subnetpool as the default.", "2016-02-18T18:00:00-00:00"),
)
COLLECTIONS = (("network", "networks"), ("subnet", "subnets"), ("port", "ports"),
               ("security_group", "security-groups"),
               ("security_group_rule", "security-group-rules"), ("quota", "quotas"),
               ("router", "routers"), ("floatingip", "floatingips"),
               ("subnetpool", "subnetpools"))


def _extension(row: tuple[str, str, str, str]) -> dict:
    alias, name, description, updated = row
    return {"alias": alias, "name": name, "description": description, "updated": updated,
            "links": []}


def version_document(req: ApiRequest) -> dict:
    return {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"rel": "self", "href": f"{req.base_url}/network/v2.0/"}]}]}


def resource_index(req: ApiRequest) -> dict:
    base = f"{req.base_url}/network/v2.0"
    return {"resources": [{"name": name, "collection": collection,
                           "links": [{"rel": "self", "href": f"{base}/{collection}"}]}
                          for name, collection in COLLECTIONS]}


def list_extensions(req: ApiRequest) -> dict:
    return {"extensions": [_extension(row) for row in EXTENSIONS]}


def show_extension(req: ApiRequest, alias: str) -> dict:
    for row in EXTENSIONS:
        if row[0] == alias:
            return {"extension": _extension(row)}
    raise NotFound(f"Extension with alias {alias} does not exist")


ROUTES = [
    ("GET", "/", version_document, {"auth": False, "inline": True}),
    ("GET", "/v2.0", resource_index),
    ("GET", "/v2.0/", resource_index),
    ("GET", "/v2.0/extensions", list_extensions),
    ("GET", "/v2.0/extensions/{alias}", show_extension),
]
