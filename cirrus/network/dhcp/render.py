"""dnsmasq's files and command line for one network: pure functions of a `DhcpNetwork`.

One dnsmasq serves every DHCP subnet of a network, each range tagged `subnet-<id>` so that
the options of one subnet (router, DNS servers, routes) go only to its clients. Ranges are
`static`: only the ports in the hosts file get an address, the one the port has. The server
is authoritative, so a renewal it has no lease for (after a restart, a hosts-file change,
or from a client of another DHCP host of the network) is answered from the hosts file
instead of NAKed: the renew failure of seed 002.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cirrus.network.dhcp.model import DhcpNetwork, DhcpSubnet

STATEFUL, STATELESS = "dhcpv6-stateful", "dhcpv6-stateless"


def tag(subnet: DhcpSubnet) -> str:
    return f"subnet-{subnet.id}"


def served(subnet: DhcpSubnet) -> bool:
    """Whether dnsmasq has a range for the subnet: every IPv4 one; IPv6 only in a DHCPv6
    mode (SLAAC is the router's) and with a prefix dnsmasq takes (/64 or larger)."""
    if subnet.ip_version == 4:
        return True
    prefix = ipaddress.ip_network(subnet.cidr).prefixlen
    return subnet.ipv6_address_mode in (STATEFUL, STATELESS) and prefix <= 64


def _stateful(subnet: DhcpSubnet) -> bool:
    return subnet.ip_version == 4 or subnet.ipv6_address_mode == STATEFUL


def hosts_file(net: DhcpNetwork) -> str:
    """`mac,name.domain,address` per address to hand out (IPv6 in brackets), sorted."""
    subnets = [sn for sn in net.subnets if served(sn) and _stateful(sn)]
    nets = [ipaddress.ip_network(sn.cidr) for sn in subnets]
    lines = set()
    for entry in net.entries:
        address = ipaddress.ip_address(entry.ip)
        if not any(address in n for n in nets):
            continue
        shown = f"[{address}]" if address.version == 6 else str(address)
        name = f"{entry.hostname}.{net.domain}" if net.domain else entry.hostname
        lines.add(f"{entry.mac},{name},{shown}")
    return "".join(f"{line}\n" for line in sorted(lines))


def _routes(subnet: DhcpSubnet) -> list[str]:
    """Option 121's pairs. A client that takes option 121 ignores the router option (RFC
    3442), so the default route through the gateway is one of them."""
    pairs = [f"{dest},{hop}" for dest, hop in subnet.host_routes]
    if subnet.gateway_ip and not any(dest == "0.0.0.0/0" for dest, _ in subnet.host_routes):
        pairs.append(f"0.0.0.0/0,{subnet.gateway_ip}")
    return pairs


def opts_file(net: DhcpNetwork) -> str:
    """The options of each served subnet, tagged with it."""
    lines: list[str] = []
    for subnet in net.subnets:
        if not served(subnet):
            continue
        t = f"tag:{tag(subnet)}"
        if subnet.ip_version == 4:
            # An empty router option tells dnsmasq to send none (no gateway on the subnet).
            lines.append(f"{t},option:router" + (f",{subnet.gateway_ip}"
                                                 if subnet.gateway_ip else ""))
            if subnet.dns_nameservers:
                lines.append(f"{t},option:dns-server,{','.join(subnet.dns_nameservers)}")
            if subnet.host_routes:
                routes = ",".join(_routes(subnet))
                lines.append(f"{t},option:classless-static-route,{routes}")
                lines.append(f"{t},249,{routes}")  # the same, for Windows
        else:
            if subnet.dns_nameservers:
                servers = ",".join(f"[{s}]" for s in subnet.dns_nameservers)
                lines.append(f"{t},option6:dns-server,{servers}")
            if net.domain:
                lines.append(f"{t},option6:domain-search,{net.domain}")
    return "".join(f"{line}\n" for line in lines)


def _lease_max(net: DhcpNetwork) -> int:
    """As many leases as the served subnets have addresses (at most 2**16): a function of
    the subnets only, so a port change never changes the command line."""
    size = sum(ipaddress.ip_network(sn.cidr).num_addresses for sn in net.subnets if served(sn))
    return max(16, min(size, 65536))


def lease_text(seconds: int) -> str:
    return "infinite" if seconds < 0 else f"{seconds}s"


def _range(subnet: DhcpSubnet, lease: str) -> str:
    network = ipaddress.ip_network(subnet.cidr)
    if network.version == 4:
        return f"set:{tag(subnet)},{network.network_address},static,{network.netmask},{lease}"
    return f"set:{tag(subnet)},{network.network_address},static,{network.prefixlen},{lease}"


@dataclass(frozen=True)
class Paths:
    """The files of one network's dnsmasq, in its private state directory."""

    directory: Path

    @property
    def hosts(self) -> Path:
        return self.directory / "hosts"

    @property
    def opts(self) -> Path:
        return self.directory / "opts"

    @property
    def leases(self) -> Path:
        return self.directory / "leases"

    @property
    def pid(self) -> Path:
        return self.directory / "pid"

    @property
    def log(self) -> Path:
        return self.directory / "dnsmasq.log"

    @property
    def config(self) -> Path:
        return self.directory / "network.json"


def dnsmasq_argv(net: DhcpNetwork, paths: Paths, user: str, group: str,
                 binary: str = "dnsmasq") -> list[str]:
    """dnsmasq's command line: DHCP only (no DNS: --port=0), no file of the host read
    (--conf-file=/dev/null, --no-hosts, --no-resolv), bound to the namespace's interface,
    run as `user`, who owns its files; the network's MTU (option 26) forced."""
    argv = [binary, "--conf-file=/dev/null", "--no-hosts", "--no-resolv", "--port=0",
            "--except-interface=lo", "--bind-interfaces", f"--user={user}", f"--group={group}",
            f"--pid-file={paths.pid}", f"--dhcp-hostsfile={paths.hosts}",
            f"--dhcp-optsfile={paths.opts}", f"--dhcp-leasefile={paths.leases}",
            f"--log-facility={paths.log}", "--dhcp-authoritative",
            f"--dhcp-lease-max={_lease_max(net)}"]
    lease = lease_text(net.lease)
    argv += [f"--dhcp-range={_range(sn, lease)}" for sn in net.subnets if served(sn)]
    if any(sn.ip_version == 4 for sn in net.subnets):
        # Sent even to clients that do not ask for it (busybox's udhcpc does not), as Neutron.
        argv.append(f"--dhcp-option-force=option:mtu,{net.mtu}")
    if net.domain:
        argv.append(f"--domain={net.domain}")
    return argv
