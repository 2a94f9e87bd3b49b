"""DHCP for subnets with `enable_dhcp`: one dnsmasq per network on each host that serves it.

- `model`: what a DHCP host is told about a network (plain data, sent on the bus);
- `render`: the dnsmasq hosts and options files and its command line (pure functions);
- `server`: the host side, run by the agent: a `qdhcp-<network>` namespace joined to the
  network's bridge by a veth, the DHCP port's addresses on it, and dnsmasq in it;
- `control`: the control side, over the database: which hosts serve a network, their DHCP
  ports (device_owner `network:dhcp`), and the `sync_dhcp` messages to their agents;
- `changes`: how a write transaction says which networks' DHCP changed.

This package's `__init__` imports nothing: the agent imports `model`, `render` and `server`
without pulling in the database.
"""
