"""Tempest's own service clients, driven against the in-process Cirrus app.

Tempest (`tempest.lib`) is what OpenStack uses to prove a cloud conforms: each of its service
clients sends a request the way real clients do and then checks the reply with
`RestClient.validate_response` (the expected status code, then the body against a JSON schema
for the negotiated compute microversion, jsonschema Draft 4 with Tempest's format checker).
Here those clients talk to the Starlette TestClient instead of a socket, so a passing call
means Tempest would accept Cirrus's answer.

Authentication goes through Tempest's Keystone v3 auth provider too: it issues a token
against Cirrus's /identity/v3/auth/tokens and finds every endpoint in Cirrus's catalog.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from starlette.testclient import TestClient
from tempest.lib import auth
from tempest.lib.services.compute import base_compute_client

from cirrus.api.compute import microversion

AUTH_URL = "http://testserver/identity/v3"


class _Response(dict):
    """What tempest.lib.common.http hands back: lower-cased headers plus `status`."""

    def __init__(self, url: str, status: int, reason: str, headers: Any) -> None:
        super().__init__()
        for key, value in headers.items():
            self[key.lower()] = value
        self.status = status
        self["status"] = str(status)
        self.reason = reason
        self.version = 11
        self["content-location"] = url


class InProcessHttp:
    """Stands in for the urllib3 pool behind every Tempest RestClient (`http_obj`)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def request(self, url: str, method: str, headers: dict | None = None, body: Any = None,
                chunked: bool = False, preload_content: bool = True, **_: Any) -> tuple:
        r = self.client.request(method, url, headers=headers or {}, content=body)
        return _Response(url, r.status_code, r.reason_phrase, r.headers), r.content


class Clients:
    """Tempest service clients authenticated as one Cirrus user, all served in-process."""

    def __init__(self, api: TestClient, username: str, password: str, project_name: str,
                 region: str = "RegionOne") -> None:
        self.http = InProcessHttp(api)
        credentials = auth.KeystoneV3Credentials(
            username=username, password=password, project_name=project_name,
            user_domain_name="Default", project_domain_name="Default")
        self.auth_provider = auth.KeystoneV3AuthProvider(credentials, AUTH_URL)
        self.auth_provider.auth_client.http_obj = self.http
        self.region = region

    def client(self, cls: type, service: str, **kwargs: Any) -> Any:
        """An instance of Tempest client class `cls` for catalog service type `service`."""
        instance = cls(self.auth_provider, service, self.region, **kwargs)
        instance.http_obj = self.http
        return instance

    def compute(self, cls: type, **kwargs: Any) -> Any:
        return self.client(cls, "compute", **kwargs)


@contextlib.contextmanager
def compute_microversion(version: str | None) -> Iterator[None]:
    """Make every Tempest compute client ask for `version` and pick that version's schemas.

    This is the switch Tempest's own compute tests flip (APIMicroversionFixture).
    """
    previous = base_compute_client.COMPUTE_MICROVERSION
    base_compute_client.COMPUTE_MICROVERSION = version
    try:
        yield
    finally:
        base_compute_client.COMPUTE_MICROVERSION = previous


# Microversions the conformance tests always cover, whether or not Tempest switches schema there.
ALWAYS_CHECKED = ("2.1", "2.26", "2.47", "2.53", "2.60", "2.75", "2.88", "2.90")


def _version_key(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def schema_versions(*client_classes: type, also: tuple[str, ...] = ALWAYS_CHECKED) -> list[str]:
    """Every microversion up to Cirrus's maximum where Tempest picks a new schema for these
    clients (their `schema_versions_info`), plus `also`: each schema Tempest has gets checked."""
    highest = microversion.MAX_VERSION
    found = set(also)
    for cls in client_classes:
        for row in getattr(cls, "schema_versions_info", []):
            low = row["min"] or "2.1"
            if _version_key(low) <= highest:
                found.add(low)
    return sorted(found, key=_version_key)


def at_least(version: str, minimum: str) -> bool:
    return _version_key(version) >= _version_key(minimum)


def get_validated(client: Any, url: str, schema_name: str) -> dict:
    """GET `url` (relative to the client's endpoint) and validate the reply the way the
    client's own methods do, with its schema named `schema_name` for the current
    microversion: for query parameters Tempest's method does not pass on."""
    resp, body = client.get(url)
    body = json.loads(body)
    schema = getattr(client.get_schema(client.schema_versions_info), schema_name)
    client.validate_response(schema, resp, body)
    return body
