"""Random bodies and query strings against the networking API: a refusal is always a 4xx in
Neutron's shape, never a 500, and a refused write leaves every table as it was."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cirrus.db.models import IPAllocation, Network, Port, SecurityGroup, Subnet, SubnetPool
from tests.api.network_helpers import NET, network, subnet

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=20)
    | st.sampled_from(["10.0.0.0/24", "10.0.0.5", "2001:db8::/64", "fa:16:3e:00:00:01",
                       "ingress", "tcp", "slaac", "-1", "True", "24", "64"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10),
                                                                      children, max_size=3),
    max_leaves=10,
)
FIELDS = {
    "networks": ("network", ["name", "shared", "mtu", "admin_state_up", "router:external",
                             "provider:segmentation_id", "tags", "is_default"]),
    "subnets": ("subnet", ["network_id", "cidr", "ip_version", "gateway_ip", "allocation_pools",
                           "dns_nameservers", "host_routes", "enable_dhcp", "ipv6_address_mode",
                           "subnetpool_id", "prefixlen", "use_default_subnetpool"]),
    "subnetpools": ("subnetpool", ["prefixes", "min_prefixlen", "max_prefixlen",
                                   "default_prefixlen", "is_default", "shared", "name"]),
    "ports": ("port", ["network_id", "fixed_ips", "mac_address", "security_groups",
                       "device_owner", "binding:host_id", "port_security_enabled"]),
    "security-group-rules": ("security_group_rule", [
        "security_group_id", "direction", "protocol", "port_range_min", "port_range_max",
        "remote_ip_prefix", "ethertype"]),
}
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_FIXTURES: dict[int, dict] = {}


def rows(cloud) -> tuple[int, ...]:
    with cloud.db.reader() as s:
        return tuple(s.scalar(select(func.count()).select_from(m))
                     for m in (Network, Subnet, Port, IPAllocation, SecurityGroup, SubnetPool))


def fixture_ids(api, cloud, member) -> dict:
    """One network with a subnet per cloud fixture, shared by the examples."""
    if id(cloud) not in _FIXTURES:
        net = network(api, member)
        sub = subnet(api, member, net["id"], "10.0.0.0/28")
        groups = api.get(f"{NET}/security-groups", headers=member.headers).json()
        pool = api.post(f"{NET}/subnetpools", headers=member.headers, json={"subnetpool": {
            "prefixes": ["10.100.0.0/16"], "min_prefixlen": 16, "default_prefixlen": 24}})
        assert pool.status_code == 201, pool.text
        _FIXTURES[id(cloud)] = {"network_id": net["id"], "subnet_id": sub["id"],
                                "security_group_id": groups["security_groups"][0]["id"],
                                "subnetpool_id": pool.json()["subnetpool"]["id"]}
    return _FIXTURES[id(cloud)]


def bodies(collection: str) -> st.SearchStrategy:
    resource, names = FIELDS[collection]
    fields = st.dictionaries(st.sampled_from(names), json_values, max_size=4)
    return st.one_of(json_values, st.fixed_dictionaries({resource: fields}))


def check_refusal(r, before: tuple, cloud) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert set(r.json()) == {"NeutronError"}, r.text
        assert rows(cloud) == before


@FUZZ
@given(collection=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_random_creates_are_4xx_or_created(api, cloud, member, collection, data):
    ids = fixture_ids(api, cloud, member)
    body = data.draw(bodies(collection))
    if isinstance(body, dict) and isinstance(body.get(FIELDS[collection][0]), dict):
        inner = body[FIELDS[collection][0]]
        for key in ("network_id", "security_group_id", "subnetpool_id"):  # real ids: deeper checks
            if key in FIELDS[collection][1] and data.draw(st.booleans()):
                inner[key] = ids[key]
    before = rows(cloud)
    r = api.post(f"{NET}/{collection}", json=body, headers=member.headers)
    check_refusal(r, before, cloud)


@FUZZ
@given(collection=st.sampled_from(["networks", "subnets", "ports"]), data=st.data())
def test_random_updates_are_4xx_or_applied(api, cloud, member, collection, data):
    ids = fixture_ids(api, cloud, member)
    target = ids["network_id"] if collection == "networks" else ids["subnet_id"]
    if collection == "ports":
        r = api.post(f"{NET}/ports", json={"port": {"network_id": ids["network_id"],
                                                    "fixed_ips": []}}, headers=member.headers)
        assert r.status_code == 201, r.text
        target = r.json()["port"]["id"]
    body = data.draw(bodies(collection))
    before = rows(cloud)
    r = api.put(f"{NET}/{collection}/{target}", json=body, headers=member.headers)
    check_refusal(r, before, cloud)
    if collection == "ports":
        assert api.delete(f"{NET}/ports/{target}", headers=member.headers).status_code == 204


@FUZZ
@given(collection=st.sampled_from(["networks", "subnets", "ports", "security-groups",
                                   "security-group-rules", "subnetpools"]),
       params=st.dictionaries(st.sampled_from(["limit", "marker", "sort_key", "sort_dir",
                                               "fields", "name", "shared", "fixed_ips",
                                               "tags", "page_reverse", "ip_version", "mtu"]),
                              st.text(max_size=12), max_size=4))
def test_random_list_queries_are_never_500(api, member, collection, params):
    r = api.get(f"{NET}/{collection}", params=params, headers=member.headers)
    assert r.status_code < 500, (params, r.text)
