"""Networking: Neutron-compatible networks, subnets and ports, exact IPAM, the host
dataplane (`cirrus.network.dataplane`) and the static files a guest applies
(`cirrus.network.render`)."""
