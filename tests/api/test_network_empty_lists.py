"""Agents, which Cirrus has none of: empty lists for every caller who may read, 404 for any
id, 400 for an unknown filter, 401 without a token. (Routers are real: test_routers.py.)"""

from __future__ import annotations

import pytest

from tests.api.network_helpers import NET, neutron_error


@pytest.mark.parametrize("collection", ["agents"])
def test_lists_are_empty_for_every_reader(api, admin, member, reader, other_member, collection):
    for caller in (admin, member, reader, other_member):
        r = api.get(f"{NET}/{collection}", headers=caller.headers)
        assert r.status_code == 200, r.text
        assert r.json() == {collection: []}
    assert api.get(f"{NET}/{collection}").status_code == 401


@pytest.mark.parametrize(("collection", "error_type"), [("agents", "AgentNotFound"),
                                                         ("routers", "RouterNotFound"),
                                                         ("floatingips", "FloatingIPNotFound")])
def test_show_is_404(api, admin, member, collection, error_type):
    for caller in (admin, member):
        r = api.get(f"{NET}/{collection}/abc", headers=caller.headers)
        assert r.status_code == 404
        error = neutron_error(r)
        assert error["type"] == error_type and "abc" in error["message"]


@pytest.mark.parametrize("collection", ["agents", "routers", "floatingips"])
def test_filters_are_checked(api, member, collection):
    r = api.get(f"{NET}/{collection}?name=x&id=y&fields=id", headers=member.headers)
    if collection != "routers":
        assert r.status_code == 400 and "name" in neutron_error(r)["message"]
    else:
        assert r.status_code == 200 and r.json() == {"routers": []}
    r = api.get(f"{NET}/{collection}?bogus=1", headers=member.headers)
    assert r.status_code == 400 and "bogus" in neutron_error(r)["message"]

