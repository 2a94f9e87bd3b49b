"""Collections Cirrus answers as Neutron does when it has none of their resources.

- `GET /v2.0/agents`: Cirrus runs no Neutron agents (its own agents plug the ports), so the
  list is empty; Neutron lets only admins see agents and answers others an empty list.

Filters and `fields` are checked as for every Neutron list (an unknown filter is a 400).
"""

from __future__ import annotations

from cirrus.api.framework import ApiRequest
from cirrus.api.network.listing import finish, parse_listing
from cirrus.network.access import READ, require
from cirrus.network.errors import AgentNotFound

AGENT_KEYS = {"id", "agent_type", "binary", "topic", "host", "admin_state_up", "alive",
              "availability_zone", "description", "created_at", "started_at",
              "heartbeat_timestamp", "configurations", "resources_synced"}


def list_agents(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_agent")
    return finish(req, "agents", [], parse_listing(req, AGENT_KEYS))


def show_agent(req: ApiRequest, agent_id: str) -> dict:
    require(req.ctx, READ, "get_agent")
    raise AgentNotFound(agent_id)


ROUTES = [
    ("GET", "/v2.0/agents", list_agents),
    ("GET", "/v2.0/agents/{agent_id}", show_agent),
]
