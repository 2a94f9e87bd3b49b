"""Security groups and anti-spoofing on a host, with nftables (issue 14).

Two tables, both owned by Cirrus and always replaced whole or changed in one `nft -f`
transaction (atomic; conntrack entries are kept, so established connections the new rules
still allow go on). Chains do not grow with the ports (nft slows down badly with
thousands of chains): ports are elements of sets and maps keyed by their tap.

- `bridge cirrus` sees each tap: stateless anti-spoofing in `prerouting` (sets `macs`,
  `addr4`, `addr6` of tap . address: only the port's MACs, fixed IPs, allowed address pairs
  and link-local addresses, ARP included); in `forward` it writes the source port's index
  into the packet mark (map `src_mark`) and the destination port's into the packet's
  priority as a classid (map `dst_class`, reset after the inet hooks in `forward_done`):
  the `inet` hooks that `br_netfilter` runs for bridged traffic only see the bridge as
  in/out device.
- `inet cirrus` is stateful (conntrack works here, not in the bridge family): one base
  chain on `forward` per direction dispatches (maps `egress` by mark, `ingress` by class)
  to the chain of the port's set of groups (`ce-`/`ci-<hash>`, shared by every port with
  the same groups), which jumps to the fixed part (`port_egress`/`port_ingress`:
  established/related accepted, DHCP client traffic and ICMPv6 neighbour discovery let
  through, the VM acting as a DHCP server or router refused, invalid dropped), then to
  each group's chain (`ge-`/`gi-<group>`, whose rules `accept`), and drops the rest.
  Accepting in the egress hook still leaves the packet to the ingress hook of its
  destination port.
- Remote groups are named sets of member addresses, `g4-<group>`/`g6-<group>`.
- Each network has its own conntrack zone (`zone`, raw priority, from the bridge), so equal
  addresses on two networks never share connection state.
- Stateless ports (all their groups `stateful: false`) are not tracked: the same `zone`
  chain sets `notrack` on packets from or to their MACs (set `stateless`), and the chains
  of their sets of groups jump to fixed parts without the conntrack rules
  (`port_egress_stateless`, `port_ingress_stateless`): a reply is accepted only if a rule
  of its direction allows it.

A rule or membership change rewrites only the groups' chains and sets; a port change (or
a group becoming stateless or stateful) replaces both tables. Ports with port security off get nothing: no element anywhere.

Modules: `rules` (one rule as an nft match and as conntrack filters), `sets` (remote-group
sets, the addresses a port may send from, conntrack zones), `ruleset` (the tables as one
`nft -f` script, whole or groups only), `nft` (the state kept and applied on the host).
The names other modules use are importable from here.
"""

from cirrus.network.dataplane.firewall.nft import Firewall, NftFirewall, load_firewall
from cirrus.network.dataplane.firewall.rules import conntrack_filters, render_rule
from cirrus.network.dataplane.firewall.ruleset import (
    FirewallState,
    combo_chain,
    group_chain,
    render_group_update,
    render_ruleset,
)
from cirrus.network.dataplane.firewall.sets import conntrack_zone, port_addresses, set_name

__all__ = ["Firewall", "FirewallState", "NftFirewall", "combo_chain", "conntrack_filters",
           "conntrack_zone", "group_chain", "load_firewall", "port_addresses",
           "render_group_update", "render_rule", "render_ruleset", "set_name"]
