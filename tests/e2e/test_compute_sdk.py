"""The same basics through openstacksdk, the library most tools are built on."""

from __future__ import annotations

import pytest
from openstack.exceptions import NotFoundException

from tests.e2e.conftest import unique

pytestmark = [
    pytest.mark.e2e,
    # openstacksdk's deprecation warnings about its own internals are not ours to fix.
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def test_sdk_lists_flavors_and_images(sdk, base_flavor: dict, base_image: dict) -> None:
    assert base_flavor["id"] in {f.id for f in sdk.compute.flavors()}
    assert base_image["id"] in {i.id for i in sdk.image.images()}


def test_sdk_create_server_then_delete_server_wait(sdk, base_flavor: dict,
                                                   base_image: dict) -> None:
    name = unique("e2e-sdk")
    server = sdk.create_server(name, image=base_image["id"], flavor=base_flavor["id"],
                               auto_ip=False)  # no network given: the SDK asks for "auto"
    server = sdk.compute.wait_for_server(server, status="ACTIVE", wait=120)
    assert sdk.get_server(server.id).name == name
    assert server.id in {s.id for s in sdk.compute.servers()}
    assert sdk.delete_server(server.id, wait=True, timeout=120) is True
    assert sdk.get_server(server.id) is None


def test_sdk_create_server_wait_true(sdk, base_flavor: dict, base_image: dict) -> None:
    # The SDK waits for an address too (it deletes an ACTIVE server without one): the
    # project's `auto` network gives it one.
    server = sdk.create_server(unique("e2e-sdk-wait"), image=base_image["id"],
                               flavor=base_flavor["id"], wait=True, auto_ip=False, timeout=120)
    assert server.status == "ACTIVE"
    assert server.private_v4 or any(server.addresses.values())
    sdk.delete_server(server.id, wait=True, timeout=120)


def test_sdk_proxy_create_with_no_network_and_power_actions(sdk, base_flavor: dict,
                                                           base_image: dict) -> None:
    server = sdk.compute.create_server(name=unique("e2e-sdk-proxy"), image_id=base_image["id"],
                                       flavor_id=base_flavor["id"], networks="none")
    server = sdk.compute.wait_for_server(server, status="ACTIVE", wait=120)
    sdk.compute.stop_server(server)
    sdk.compute.wait_for_server(server, status="SHUTOFF", wait=60)
    sdk.compute.start_server(server)
    sdk.compute.wait_for_server(server, status="ACTIVE", wait=60)
    assert sdk.compute.get_server_console_output(server)["output"]
    sdk.compute.delete_server(server)
    sdk.compute.wait_for_delete(server, wait=60)
    with pytest.raises(NotFoundException):
        sdk.compute.get_server(server.id)
