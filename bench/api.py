"""The few REST calls the benchmarks need, as the admin of the cloud under test."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

import httpx

COMPUTE_VERSION = "compute 2.60"


@dataclass
class Session:
    url: str  # the cloud's root URL, for the set-up calls
    token: str
    project_id: str
    # Where the load goes: connection i to load_urls[i % len]; empty: `url`. Several API
    # processes are measured without a balancer in front (the client spreads instead).
    load_urls: list[str] = field(default_factory=list)

    def load_url(self, index: int) -> str:
        """The root URL for the index-th load connection."""
        urls = self.load_urls or [self.url]
        return urls[index % len(urls)]

    @property
    def compute(self) -> str:
        return f"{self.url}/compute/v2.1"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token, "OpenStack-API-Version": COMPUTE_VERSION}


def password_auth_body(auth: dict) -> dict:
    """The Keystone v3 password body for a clouds.yaml `auth` section, project-scoped."""
    return {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"],
            "domain": {"name": auth.get("user_domain_name", "Default")}}}},
        "scope": {"project": {"name": auth["project_name"],
                              "domain": {"name": auth.get("project_domain_name", "Default")}}},
    }}


def login(url: str, auth: dict, load_urls: list[str] | None = None) -> Session:
    r = httpx.post(f"{url}/identity/v3/auth/tokens", json=password_auth_body(auth), timeout=30)
    r.raise_for_status()
    return Session(url, r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"],
                   list(load_urls or []))


def create_flavor(s: Session) -> str:
    name = f"bench.{uuid.uuid4().hex[:6]}"
    r = httpx.post(f"{s.compute}/flavors", headers=s.headers, timeout=30, json={"flavor": {
        "name": name, "vcpus": 1, "ram": 64, "disk": 1}})
    r.raise_for_status()
    return r.json()["flavor"]["id"]


def create_image(s: Session) -> str:
    headers = {"X-Auth-Token": s.token}
    r = httpx.post(f"{s.url}/image/v2/images", headers=headers, timeout=30, json={
        "name": f"bench-{uuid.uuid4().hex[:6]}", "disk_format": "raw",
        "container_format": "bare"})
    r.raise_for_status()
    image_id = r.json()["id"]
    r = httpx.put(f"{s.url}/image/v2/images/{image_id}/file", content=os.urandom(4096),
                  headers={**headers, "Content-Type": "application/octet-stream"}, timeout=30)
    r.raise_for_status()
    return image_id


def create_network(s: Session, name: str, cidr: str) -> dict:
    """A network with one IPv4 subnet of `cidr` (default gateway and pool, DHCP off): the
    subnet as the API shows it."""
    network = f"{s.url}/network/v2.0"
    headers = {"X-Auth-Token": s.token}
    r = httpx.post(f"{network}/networks", headers=headers, timeout=30,
                   json={"network": {"name": name}})
    r.raise_for_status()
    network_id = r.json()["network"]["id"]
    r = httpx.post(f"{network}/subnets", headers=headers, timeout=30, json={"subnet": {
        "network_id": network_id, "name": name, "ip_version": 4, "cidr": cidr,
        "enable_dhcp": False}})
    r.raise_for_status()
    return r.json()["subnet"]


def delete_network(s: Session, network_id: str) -> httpx.Response:
    """DELETE the network (and its subnets); a 409 NetworkInUse means ports are left on it."""
    return httpx.delete(f"{s.url}/network/v2.0/networks/{network_id}",
                        headers={"X-Auth-Token": s.token}, timeout=30)
