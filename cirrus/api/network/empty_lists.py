"""Collections Cirrus answers as Neutron does when it has none of their resources.

- `GET /v2.0/agents`: Cirrus runs no Neutron agents (its own agents plug the ports), so the
  list is empty; Neutron lets only admins see agents and answers others an empty list.
- `GET /v2.0/routers`: there are no routers until the network dataplane work (issue 14)
  replaces this with the real resource; clients that clean up routers they made (Tempest's
  DHCPv6 tests) list them. Creating one stays a 404, as the `router` extension is not
  announced.

Filters and `fields` are checked as for every Neutron list (an unknown filter is a 400).
"""

from __future__ import annotations

from cirrus.api.framework import ApiRequest
from cirrus.api.network.listing import finish, parse_listing
from cirrus.network.access import READ, require
from cirrus.network.errors import AgentNotFound, RouterNotFound

AGENT_KEYS = {"id", "agent_type", "binary", "topic", "host", "admin_state_up", "alive",
              "availability_zone", "description", "created_at", "started_at",
              "heartbeat_timestamp", "configurations", "resources_synced"}
ROUTER_KEYS = {"id", "name", "status", "admin_state_up", "project_id", "tenant_id",
               "external_gateway_info", "description", "distributed", "ha", "flavor_id",
               "revision_number", "routes", "tags", "created_at", "updated_at",
               "availability_zone_hints", "availability_zones", "enable_ndp_proxy"}


def list_agents(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_agent")
    return finish(req, "agents", [], parse_listing(req, AGENT_KEYS))


def show_agent(req: ApiRequest, agent_id: str) -> dict:
    require(req.ctx, READ, "get_agent")
    raise AgentNotFound(agent_id)


def list_routers(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_router")
    return finish(req, "routers", [], parse_listing(req, ROUTER_KEYS))


def show_router(req: ApiRequest, router_id: str) -> dict:
    require(req.ctx, READ, "get_router")
    raise RouterNotFound(router_id)


ROUTES = [
    ("GET", "/v2.0/agents", list_agents),
    ("GET", "/v2.0/agents/{agent_id}", show_agent),
    ("GET", "/v2.0/routers", list_routers),
    ("GET", "/v2.0/routers/{router_id}", show_router),
]
