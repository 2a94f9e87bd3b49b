"""Calls the networking API tests share: make a network, a subnet, a port; read an error."""

from __future__ import annotations

from typing import Any

NET = "/network/v2.0"


def create(api, caller, collection: str, resource: str, **body: Any):
    return api.post(f"{NET}/{collection}", json={resource: body}, headers=caller.headers)


def network(api, caller, **body: Any) -> dict:
    r = create(api, caller, "networks", "network", **{"name": "net", **body})
    assert r.status_code == 201, r.text
    return r.json()["network"]


def subnet(api, caller, network_id: str, cidr: str = "10.0.0.0/24", **body: Any) -> dict:
    r = create(api, caller, "subnets", "subnet", network_id=network_id, cidr=cidr,
               ip_version=6 if ":" in cidr else 4, **body)
    assert r.status_code == 201, r.text
    return r.json()["subnet"]


def port(api, caller, network_id: str, **body: Any) -> dict:
    r = create(api, caller, "ports", "port", network_id=network_id, **body)
    assert r.status_code == 201, r.text
    return r.json()["port"]


def neutron_error(r) -> dict:
    """The NeutronError of a response, checking its shape."""
    body = r.json()
    assert set(body) == {"NeutronError"}, body
    assert set(body["NeutronError"]) == {"type", "message", "detail"}, body
    return body["NeutronError"]
