"""Servers with networks: NICs made or bound at build in the order asked, `addresses`, the
NIC map that names guest interfaces, ports deleted or kept with the server, `auto`
networks, hot-plug through os-interface, the exact error when a subnet is full, and the
network files a guest is given (/cirrus/v1/servers/{id}/network-config)."""

from __future__ import annotations

from sqlalchemy import select

from cirrus.db.models import Instance
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status

NET = "/network/v2.0"
SERVERS = "/compute/v2.1/servers"


def _network(api, caller, name="net", cidr="10.20.0.0/24", **subnet):
    r = api.post(f"{NET}/networks", json={"network": {"name": name}}, headers=caller.headers)
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    body = {"network_id": net["id"], "ip_version": 4, "cidr": cidr, **subnet}
    r = api.post(f"{NET}/subnets", json={"subnet": body}, headers=caller.headers)
    assert r.status_code == 201, r.text
    return net, r.json()["subnet"]


def _boot(api, cloud, caller, networks, name="vm", status="ACTIVE", **extra):
    flavor, image = add_flavor(cloud, name=f"f-{name}"), add_image(cloud)
    body = server_body(flavor, image, name=name, **extra)
    body["server"]["networks"] = networks
    r = api.post(SERVERS, json=body, headers=caller.compute())
    assert r.status_code == 202, r.text
    return wait_for_status(api, caller.compute(), r.json()["server"]["id"], status)


def _ports(api, caller, **filters):
    r = api.get(f"{NET}/ports", params=filters, headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()["ports"]


def _nics(cloud, uuid):
    with cloud.db.reader() as s:
        return s.scalar(select(Instance.nics).where(Instance.uuid == uuid))


def test_a_server_gets_a_port_per_network_in_the_order_asked(api, cloud, member):
    net_a, sub_a = _network(api, member, "a", "10.1.0.0/24")
    net_b, sub_b = _network(api, member, "b", "10.2.0.0/24", gateway_ip=None)
    server = _boot(api, cloud, member, [{"uuid": net_b["id"]}, {"uuid": net_a["id"]}])
    ports = {p["network_id"]: p for p in _ports(api, member, device_id=server["id"])}
    assert set(ports) == {net_a["id"], net_b["id"]}
    assert all(p["status"] == "ACTIVE" and p["device_owner"] == "compute:nova"
               for p in ports.values())
    nics = _nics(cloud, server["id"])
    assert [(n["network_id"], n["name"], n["preserve"]) for n in nics] == [
        (net_b["id"], "eth0", False), (net_a["id"], "eth1", False)]
    addresses = server["addresses"]
    assert addresses["b"] == [{"version": 4, "addr": ports[net_b["id"]]["fixed_ips"][0]["ip_address"],
                               "OS-EXT-IPS:type": "fixed",
                               "OS-EXT-IPS-MAC:mac_addr": ports[net_b["id"]]["mac_address"]}]
    assert addresses["a"][0]["addr"].startswith("10.1.0.")
    ips = api.get(f"{SERVERS}/{server['id']}/ips", headers=member.compute()).json()
    assert ips == {"addresses": addresses}
    one = api.get(f"{SERVERS}/{server['id']}/ips/a", headers=member.compute()).json()
    assert one == {"a": addresses["a"]}


def test_the_guest_network_files_follow_the_nic_map(api, cloud, member):
    net_a, _ = _network(api, member, "a", "10.1.0.0/24", enable_dhcp=False,
                        host_routes=[{"destination": "192.168.7.0/24", "nexthop": "10.1.0.254"}],
                        dns_nameservers=["10.1.0.53"])
    net_b, _ = _network(api, member, "b", "10.2.0.0/24", enable_dhcp=False)
    server = _boot(api, cloud, member, [{"uuid": net_a["id"], "fixed_ip": "10.1.0.77"},
                                        {"uuid": net_b["id"]}])
    ports = {p["network_id"]: p for p in _ports(api, member, device_id=server["id"])}
    r = api.get(f"/cirrus/v1/servers/{server['id']}/network-config", headers=member.headers)
    assert r.status_code == 200, r.text
    files = r.json()
    mac_a, mac_b = ports[net_a["id"]]["mac_address"], ports[net_b["id"]]["mac_address"]
    assert [link["ethernet_mac_address"] for link in files["network_data"]["links"]] == [mac_a, mac_b]
    assert files["network_data"]["networks"][0]["ip_address"] == "10.1.0.77"
    assert "address 10.1.0.77" in files["interfaces"]
    assert "192.168.7.0" in files["interfaces"] and "10.1.0.254" in files["interfaces"]
    rules = files["udev_rules"]
    assert rules.index(mac_a) < rules.index(mac_b)
    assert f'ATTR{{address}}=="{mac_a}", NAME="eth0"' in rules
    assert f'ATTR{{address}}=="{mac_b}", NAME="eth1"' in rules
    assert "10.1.0.53" in files["netplan"]


def test_network_config_is_for_the_owner_and_admins(api, cloud, member, other_member, admin):
    net, _ = _network(api, member)
    server = _boot(api, cloud, member, [{"uuid": net["id"]}])
    url = f"/cirrus/v1/servers/{server['id']}/network-config"
    assert api.get(url, headers=other_member.headers).status_code == 404
    assert api.get(url, headers=admin.headers).status_code == 200


def test_auto_makes_one_network_per_project_on_first_use(api, cloud, member, other_member):
    first = _boot(api, cloud, member, "auto", name="one")
    second = _boot(api, cloud, member, "auto", name="two")
    theirs = _boot(api, cloud, other_member, "auto", name="three")
    net_of = {s["id"]: _nics(cloud, s["id"])[0]["network_id"] for s in (first, second, theirs)}
    assert net_of[first["id"]] == net_of[second["id"]] != net_of[theirs["id"]]
    assert list(first["addresses"]) and list(theirs["addresses"])
    nets = api.get(f"{NET}/networks", headers=member.headers).json()["networks"]
    assert [n["id"] for n in nets] == [net_of[first["id"]]]


def test_none_means_no_nic(api, cloud, member):
    server = _boot(api, cloud, member, "none")
    assert server["addresses"] == {} and _nics(cloud, server["id"]) == []


def test_ports_made_for_a_server_go_with_it_ports_passed_in_stay_unbound(api, cloud, member):
    net, _ = _network(api, member)
    r = api.post(f"{NET}/ports", json={"port": {"network_id": net["id"], "name": "mine"}},
                 headers=member.headers)
    assert r.status_code == 201, r.text
    mine = r.json()["port"]
    server = _boot(api, cloud, member, [{"port": mine["id"]}, {"uuid": net["id"]}])
    attached = _ports(api, member, device_id=server["id"])
    assert len(attached) == 2
    made = next(p for p in attached if p["id"] != mine["id"])
    assert api.delete(f"{SERVERS}/{server['id']}", headers=member.compute()).status_code == 204
    wait_for_status(api, member.compute(), server["id"], "DELETED")
    kept = api.get(f"{NET}/ports/{mine['id']}", headers=member.headers).json()["port"]
    assert (kept["device_id"], kept["device_owner"]) == ("", "")
    assert kept["fixed_ips"] == mine["fixed_ips"]
    assert api.get(f"{NET}/ports/{made['id']}", headers=member.headers).status_code == 404


def test_a_full_subnet_fails_the_build_with_the_exact_reason(api, cloud, member):
    net, subnet = _network(api, member, cidr="10.9.0.0/30", gateway_ip=None)  # 2 addresses
    for _ in range(2):
        r = api.post(f"{NET}/ports", json={"port": {"network_id": net["id"]}}, headers=member.headers)
        assert r.status_code == 201, r.text
    server = _boot(api, cloud, member, [{"uuid": net["id"]}], status="ERROR")
    expected = f"No more IP addresses available on subnet {subnet['id']} (10.9.0.0/30, 2 in use)"
    assert expected in server["fault"]["message"]
    assert _ports(api, member, device_id=server["id"]) == []


def test_bad_networks_are_refused_before_anything_is_recorded(api, cloud, member, other_member):
    flavor, image = add_flavor(cloud), add_image(cloud)
    theirs, _ = _network(api, other_member)
    net, _ = _network(api, member)

    def create(networks, **extra):
        body = server_body(flavor, image, **extra)
        body["server"]["networks"] = networks
        return api.post(SERVERS, json=body, headers=member.compute())

    r = create([{"uuid": theirs["id"]}])
    assert r.status_code == 400 and "could not be found" in r.text
    r = create([{"uuid": net["id"], "fixed_ip": "not-an-ip"}])
    assert r.status_code == 400
    port = api.post(f"{NET}/ports", json={"port": {"network_id": net["id"]}},
                    headers=member.headers).json()["port"]
    r = create([{"port": port["id"]}], max_count=2)
    assert r.status_code == 400 and "single configured port" in r.text
    _boot(api, cloud, member, [{"port": port["id"]}], name="holder")
    r = create([{"port": port["id"]}])
    assert r.status_code == 409 and "still in use" in r.text
    servers = api.get(SERVERS, headers=member.compute()).json()["servers"]
    assert [s["name"] for s in servers] == ["holder"]


def test_hot_plug_and_unplug_a_port_on_a_running_server(api, cloud, member):
    net_a, _ = _network(api, member, "a", "10.1.0.0/24")
    net_b, _ = _network(api, member, "b", "10.2.0.0/24")
    server = _boot(api, cloud, member, [{"uuid": net_a["id"]}])
    url = f"{SERVERS}/{server['id']}/os-interface"
    r = api.post(url, json={"interfaceAttachment": {"net_id": net_b["id"]}},
                 headers=member.compute())
    assert r.status_code == 200, r.text
    attached = r.json()["interfaceAttachment"]
    assert attached["net_id"] == net_b["id"] and attached["port_state"] == "ACTIVE"
    listed = api.get(url, headers=member.compute()).json()["interfaceAttachments"]
    assert [a["net_id"] for a in listed] == [net_a["id"], net_b["id"]]
    assert [n["name"] for n in _nics(cloud, server["id"])] == ["eth0", "eth1"]
    agent = _agent_of(cloud, server["id"])
    assert attached["port_id"] in agent.driver._vms[server["id"]]["nics"]
    assert f"tap{attached['port_id'][:11]}" in agent.dataplane.plugged()

    r = api.delete(f"{url}/{attached['port_id']}", headers=member.compute())
    assert r.status_code == 202, r.text
    assert [a["net_id"] for a in api.get(url, headers=member.compute()).json()[
        "interfaceAttachments"]] == [net_a["id"]]
    assert attached["port_id"] not in agent.driver._vms[server["id"]]["nics"]
    assert f"tap{attached['port_id'][:11]}" not in agent.dataplane.plugged()
    assert api.get(f"{NET}/ports/{attached['port_id']}", headers=member.headers).status_code == 404
    r = api.delete(f"{url}/{attached['port_id']}", headers=member.compute())
    assert r.status_code == 404


def test_deleting_a_server_unplugs_its_taps(api, cloud, member):
    net, _ = _network(api, member)
    server = _boot(api, cloud, member, [{"uuid": net["id"]}])
    agent = _agent_of(cloud, server["id"])
    port = _ports(api, member, device_id=server["id"])[0]
    assert f"tap{port['id'][:11]}" in agent.dataplane.plugged()
    api.delete(f"{SERVERS}/{server['id']}", headers=member.compute())
    wait_for_status(api, member.compute(), server["id"], "DELETED")
    assert f"tap{port['id'][:11]}" not in agent.dataplane.plugged()


def _agent_of(cloud, uuid):
    with cloud.db.reader() as s:
        host = s.scalar(select(Instance.host).where(Instance.uuid == uuid))
    return next(r for r in cloud.roles if type(r).__name__ == "Agent" and r.host == host)


def test_a_compute_quota_reset_leaves_network_quotas_alone(api, admin, member):
    url = f"{NET}/quotas/{member.project_id}"
    assert api.put(url, json={"quota": {"port": 7}}, headers=admin.headers).status_code == 200
    r = api.delete(f"/compute/v2.1/os-quota-sets/{member.project_id}", headers=admin.compute())
    assert r.status_code == 202, r.text
    assert api.get(url, headers=admin.headers).json()["quota"]["port"] == 7


def test_deleting_a_port_plugged_into_a_server_detaches_it_first(api, cloud, member):
    net, _ = _network(api, member)
    server = _boot(api, cloud, member, [{"uuid": net["id"]}, {"uuid": net["id"]}])
    first, second = (n["port_id"] for n in _nics(cloud, server["id"]))
    agent = _agent_of(cloud, server["id"])
    r = api.delete(f"{NET}/ports/{second}", headers=member.headers)
    assert r.status_code == 204, r.text
    assert [n["port_id"] for n in _nics(cloud, server["id"])] == [first]
    assert f"tap{second[:11]}" not in agent.dataplane.plugged()
    assert second not in agent.driver._vms[server["id"]]["nics"]
    assert api.get(f"{NET}/ports/{second}", headers=member.headers).status_code == 404


def test_servers_are_listed_by_part_of_their_ip_and_ip6(api, cloud, member, other_member):
    """`ip` and `ip6` find servers by part of a fixed address, taken literally, as Nova
    (through Neutron's ip_address_substr): 10.30.0.1 also finds 10.30.0.10."""
    net, _ = _network(api, member, "dual", "10.30.0.0/24",
                      allocation_pools=[{"start": "10.30.0.10", "end": "10.30.0.11"}])
    r = api.post(f"{NET}/subnets", json={"subnet": {
        "network_id": net["id"], "ip_version": 6, "cidr": "2001:db8:30::/64"}},
        headers=member.headers)
    assert r.status_code == 201, r.text
    one = _boot(api, cloud, member, [{"uuid": net["id"]}], "one")
    two = _boot(api, cloud, member, [{"uuid": net["id"]}], "two")
    v4 = {s["id"]: [a["addr"] for a in s["addresses"]["dual"] if a["version"] == 4][0]
          for s in (one, two)}
    assert sorted(v4.values()) == ["10.30.0.10", "10.30.0.11"]  # the pool holds only these two
    one, two = sorted((one, two), key=lambda s: v4[s["id"]])

    def listed(caller, **q):
        r = api.get(SERVERS, params=q, headers=caller.compute())
        assert r.status_code == 200, r.text
        return {s["id"] for s in r.json()["servers"]}

    assert listed(member, ip="10.30.0.10") == {one["id"]}
    assert listed(member, ip="10.30.0.1") == {one["id"], two["id"]}
    assert listed(member, ip="10.30.9") == set()
    assert listed(member, ip=".") == {one["id"], two["id"]}  # literal, not a regex
    assert listed(member, ip="%") == set()  # nor a LIKE pattern
    v6 = [a["addr"] for a in two["addresses"]["dual"] if a["version"] == 6][0]
    assert listed(member, ip6=v6) == {two["id"]}
    assert listed(member, ip6="2001:db8:30:") == {one["id"], two["id"]}
    assert listed(member, ip="2001:db8:30:") == set()  # ip is IPv4 only
    assert listed(other_member, ip="10.30.0.1") == set()  # another project's servers
