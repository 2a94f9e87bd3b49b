"""The static network files a guest applies, rendered from its NICs: pure functions, no I/O.

The input is a server's NICs (`cirrus.network.model.Nic`) in guest order: index 0 is eth0.
Every value written comes from a port, its subnets or its network; nothing is invented (no
gateway when a subnet has none, no DNS lines when it lists none). Four files:

- `network_data`: OpenStack's network_data.json, shaped as Nova writes it for the config
  drive (nova/virt/netutils.py, get_network_metadata): `links`, one per NIC (id = the tap
  device, as Nova's devname; vif_id = the port; type "phy"; mtu; ethernet_mac_address),
  `networks`, one per fixed IP ("network0", "network1", ... with type, link and
  network_id; for an address the guest sets itself also ip_address, netmask (an IPv6
  netmask written out, "ffff:ffff:ffff:ffff::", as Nova does), routes (the default route
  via the subnet's gateway, then its host routes) and services), and the top-level
  `services`: every DNS server once. Unlike Nova, which keeps the first IPv4 and the first
  IPv6 address of a port, every fixed IP is listed, and a NIC with no address still has
  its link (the guest still needs its name).
- `debian_interfaces`: /etc/network/interfaces in the form of seed 004 (NetEase's static IP
  injection): `auto`/`allow-hotplug` per NIC, `iface ethN inet static` with address,
  netmask, broadcast, gateway, mtu (and dns-nameservers, read by resolvconf), then a
  gratuitous ARP in the background and a `down route del`/`up route add` pair per host
  route; IPv6 addresses in `iface ethN inet6 static` stanzas.
- `udev_rules`: persistent-net rules naming each NIC by its MAC, so the names the other
  files use are the names the guest has (the seed's ports_pattern).
- `netplan`: a netplan v2 file, matching each NIC by MAC and naming it.

Static or DHCP is decided per fixed IP (`address_mode`, the network_data type):
static ("ipv4"/"ipv6") when the subnet has DHCP off, or when the image has
`support_inject_ip` (`static=True`: its guest applies these files before networking starts
and wants every address written, which is the seed's point: no DHCP wait at boot);
otherwise "ipv4_dhcp"/"ipv6_dhcp", or for an IPv6 subnet with an ipv6_address_mode
"ipv6_" + that mode ("ipv6_slaac", ...), as Nova writes it. A NIC that learns any address
from DHCP or router advertisements learns its MTU there too: Nova writes `"mtu": null` for
it (Nova bug 1899487), and the other files leave the MTU out likewise.

One default route per IP family in the files the guest applies directly (interfaces,
netplan): the gateway of the first subnet, in NIC order, that has one, because the kernel
refuses a second default route ("File exists") and ifup then fails the interface.
network_data keeps a default route on every network with a gateway, as Nova does; its
consumer (cloud-init) decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import yaml

from cirrus.network.model import FixedIp, Nic

STATIC_MODES = ("ipv4", "ipv6")

# The seed sends 120 announcements, one a second, in the background: neighbours and switches
# learn the new MAC even if the path only comes up some time after the interface does.
ARP_ANNOUNCEMENTS = 120

INDENT = " " * 8  # ifupdown option lines, as in the seed

# How a guest configures an address it does not set itself: (ifupdown family, method, extra
# options), and the netplan keys.
_DEBIAN_DYNAMIC = {
    "ipv4_dhcp": ("inet", "dhcp", ()),
    "ipv6_dhcp": ("inet6", "dhcp", ()),
    "ipv6_dhcpv6-stateful": ("inet6", "dhcp", ()),
    "ipv6_slaac": ("inet6", "auto", ()),
    "ipv6_dhcpv6-stateless": ("inet6", "auto", ("dhcp 1",)),
}
_NETPLAN_DYNAMIC = {
    "ipv4_dhcp": {"dhcp4": True},
    "ipv6_dhcp": {"dhcp6": True},
    "ipv6_dhcpv6-stateful": {"dhcp6": True},
    "ipv6_slaac": {"accept-ra": True},
    "ipv6_dhcpv6-stateless": {"accept-ra": True, "dhcp6": True},
}


def address_mode(ip: FixedIp, *, static: bool = False) -> str:
    """The network_data type of one fixed IP: how the guest gets this address."""
    subnet = ip.subnet
    if static or not subnet.enable_dhcp:
        return f"ipv{subnet.ip_version}"
    if subnet.ip_version == 6 and subnet.ipv6_address_mode:
        return f"ipv6_{subnet.ipv6_address_mode}"
    return f"ipv{subnet.ip_version}_dhcp"


def render_all(nics: Sequence[Nic], *, static: bool = False) -> dict:
    """The four files, as `GET /cirrus/v1/servers/{id}/network-config` returns them."""
    return {
        "network_data": network_data(nics, static=static),
        "interfaces": debian_interfaces(nics, static=static),
        "udev_rules": udev_rules(nics),
        "netplan": netplan(nics, static=static),
    }


# --- network_data.json -------------------------------------------------------------------


def network_data(nics: Sequence[Nic], *, static: bool = False) -> dict:
    """OpenStack network_data.json: links, networks (one per fixed IP) and DNS services."""
    links: list[dict] = []
    networks: list[dict] = []
    services: list[dict] = []
    for nic in _guest_order(nics):
        links.append(_link(nic, static))
        for ip in nic.fixed_ips:
            networks.append(_network(f"network{len(networks)}", nic, ip, static))
            services += [s for s in _dns_services(ip) if s not in services]
    return {"links": links, "networks": networks, "services": services}


def _link(nic: Nic, static: bool) -> dict:
    return {
        "id": nic.tap,
        "vif_id": nic.port_id,
        "type": "phy",
        "mtu": nic.mtu if _mtu_is_static(nic, static) else None,
        "ethernet_mac_address": nic.mac.lower(),
    }


def _network(network_id: str, nic: Nic, ip: FixedIp, static: bool) -> dict:
    mode = address_mode(ip, static=static)
    if mode.endswith("_dhcp"):  # the guest learns address, routes and DNS from DHCP
        return {"id": network_id, "type": mode, "link": nic.tap, "network_id": nic.network_id}
    net = _subnet_network(ip)
    default = "0.0.0.0" if net.version == 4 else "::"
    routes = [{"network": default, "netmask": default, "gateway": ip.subnet.gateway_ip}
              ] if ip.subnet.gateway_ip else []
    for destination, nexthop in ip.subnet.host_routes:
        dest = ipaddress.ip_network(destination, strict=False)
        routes.append({"network": str(dest.network_address), "netmask": str(dest.netmask),
                       "gateway": nexthop})
    return {
        "id": network_id,
        "type": mode,
        "link": nic.tap,
        "ip_address": ip.address,
        "netmask": str(net.netmask),
        "routes": routes,
        "network_id": nic.network_id,
        "services": _dns_services(ip),
    }


def _dns_services(ip: FixedIp) -> list[dict]:
    return [{"type": "dns", "address": server} for server in ip.subnet.dns_nameservers]


# --- /etc/network/interfaces -------------------------------------------------------------


def debian_interfaces(nics: Sequence[Nic], *, static: bool = False) -> str:
    """A Debian /etc/network/interfaces in the seed's form (see the module docstring)."""
    gateways = _default_gateways(nics)
    blocks = ["# The loopback network interface\nauto lo\niface lo inet loopback\n"]
    for nic in _guest_order(nics):
        head = f"auto {nic.name}\nallow-hotplug {nic.name}\n"
        blocks.append(head + "\n".join(_debian_stanzas(nic, static, gateways)))
    return "\n".join(blocks)


def _debian_stanzas(nic: Nic, static: bool, gateways: set[FixedIp]) -> list[str]:
    """One stanza per static address, one per dynamic method, `manual` for no address."""
    if not nic.fixed_ips:
        return [f"iface {nic.name} inet manual\n{INDENT}mtu {nic.mtu}\n"]
    stanzas: list[str] = []
    for ip in nic.fixed_ips:
        mode = address_mode(ip, static=static)
        if mode in STATIC_MODES:
            stanza = _debian_static(nic, ip, ip in gateways, _mtu_is_static(nic, static))
        else:
            family, method, options = _DEBIAN_DYNAMIC[mode]
            stanza = "".join([f"iface {nic.name} {family} {method}\n",
                              *(f"{INDENT}{option}\n" for option in options)])
        if stanza not in stanzas:  # two addresses from one DHCP server: one stanza
            stanzas.append(stanza)
    return stanzas


def _debian_static(nic: Nic, ip: FixedIp, default_route: bool, with_mtu: bool) -> str:
    net = _subnet_network(ip)
    v4 = net.version == 4
    options = [f"address {ip.address}",
               f"netmask {net.netmask if v4 else net.prefixlen}"]
    if v4:
        options.append(f"broadcast {net.broadcast_address}")
    if default_route:
        options.append(f"gateway {ip.subnet.gateway_ip}")
    if with_mtu:
        options.append(f"mtu {nic.mtu}")
    if ip.subnet.dns_nameservers:
        options.append("dns-nameservers " + " ".join(ip.subnet.dns_nameservers))
    commands = [f"post-up arping -U -I {nic.name} -c {ARP_ANNOUNCEMENTS} {ip.address} &"
                ] if v4 else []
    for destination, nexthop in ip.subnet.host_routes:
        commands += _route_commands(nic.name, destination, nexthop)
    family = "inet" if v4 else "inet6"
    lines = [f"iface {nic.name} {family} static", *(INDENT + o for o in options)]
    if commands:
        lines += ["", *(INDENT + c for c in commands)]
    return "\n".join(lines) + "\n"


def _route_commands(device: str, destination: str, nexthop: str) -> list[str]:
    """The seed's down/up pair for one host route (net-tools or busybox `route`)."""
    dest = ipaddress.ip_network(destination, strict=False)
    if dest.version == 4:
        target = f"-net {dest.network_address} netmask {dest.netmask}"
        return [f"down route del {target} gateway {nexthop} dev {device}",
                f"up route add {target} gateway {nexthop} dev {device}"]
    return [f"down route -A inet6 del {dest} gateway {nexthop} dev {device}",
            f"up route -A inet6 add {dest} gateway {nexthop} dev {device}"]


# --- udev ----------------------------------------------------------------------------------


def udev_rules(nics: Sequence[Nic]) -> str:
    """Persistent-net rules: each MAC (lower case, as sysfs shows it) gets its NIC name."""
    lines = ["# Guest NIC names by MAC address, in the order the server's ports were given."]
    lines += [f'SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", '
              f'ATTR{{address}}=="{nic.mac.lower()}", NAME="{nic.name}"'
              for nic in _guest_order(nics)]
    return "\n".join(lines) + "\n"


# --- netplan -------------------------------------------------------------------------------


def netplan(nics: Sequence[Nic], *, static: bool = False) -> str:
    """A netplan v2 file: each NIC matched by MAC, named, and configured."""
    gateways = _default_gateways(nics)
    ethernets = {nic.name: _netplan_ethernet(nic, static, gateways)
                 for nic in _guest_order(nics)}
    document = {"network": {"version": 2, "ethernets": ethernets}}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def _netplan_ethernet(nic: Nic, static: bool, gateways: set[FixedIp]) -> dict:
    entry: dict = {"match": {"macaddress": nic.mac.lower()}, "set-name": nic.name}
    addresses: list[str] = []
    routes: list[dict] = []
    nameservers: list[str] = []
    for ip in nic.fixed_ips:
        mode = address_mode(ip, static=static)
        if mode not in STATIC_MODES:
            entry.update(_NETPLAN_DYNAMIC[mode])
            continue
        addresses.append(f"{ip.address}/{_subnet_network(ip).prefixlen}")
        if ip in gateways:
            routes.append({"to": "default", "via": ip.subnet.gateway_ip})
        routes += [{"to": str(ipaddress.ip_network(dest, strict=False)), "via": nexthop}
                   for dest, nexthop in ip.subnet.host_routes]
        nameservers += [s for s in ip.subnet.dns_nameservers if s not in nameservers]
    if addresses:
        entry["addresses"] = addresses
    if routes:
        entry["routes"] = routes
    if nameservers:
        entry["nameservers"] = {"addresses": nameservers}
    if _mtu_is_static(nic, static):
        entry["mtu"] = nic.mtu
    return entry


# --- shared --------------------------------------------------------------------------------


def _guest_order(nics: Iterable[Nic]) -> list[Nic]:
    return sorted(nics, key=lambda nic: nic.index)


def _subnet_network(ip: FixedIp) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(ip.subnet.cidr, strict=False)


def _mtu_is_static(nic: Nic, static: bool) -> bool:
    """Whether the files carry the MTU: not when DHCP or RA configures the NIC (Nova's rule)."""
    return all(address_mode(ip, static=static) in STATIC_MODES for ip in nic.fixed_ips)


def _default_gateways(nics: Sequence[Nic]) -> set[FixedIp]:
    """The fixed IPs whose subnet gateway becomes the default route: per IP family, the first
    in guest order whose subnet has a gateway (static or DHCP: either way it is the route)."""
    first: dict[int, FixedIp] = {}
    for nic in _guest_order(nics):
        for ip in nic.fixed_ips:
            if ip.subnet.gateway_ip:
                first.setdefault(ip.subnet.ip_version, ip)
    return set(first.values())
