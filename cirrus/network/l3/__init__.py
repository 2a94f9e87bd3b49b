"""Routers on the hosts (issue 14, l3): what an L3 host is told (model), how it makes a
router's namespace, veths, routes and NAT (agent), and which host runs each router and when
it is told (control, changes)."""
