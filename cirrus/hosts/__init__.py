"""Hosts: everything Cirrus knows about the machines it runs on, in one place.

- `records`: service rows (one per role per host) and compute nodes; what an operator may
  change (enable, disable, force down, delete); hypervisor statistics.
- `heartbeat`: a role's own heartbeat, and the service row every heartbeat refreshes.
- `liveness`: whether a service is up (a recent heartbeat and not forced down).
- `reports`: what an agent reports (heartbeat, resources, the VMs it runs).
- `reconcile`: making the database agree with the VMs an agent reports.
- `view`: the hosts as the scheduler sees them (`HostState`, with liveness).
- `zones`: availability zones.

Evacuation and fencing (acting on a host found down) will live here too.
"""
