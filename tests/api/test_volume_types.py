"""Volume types (extra specs, private types and their access lists, the __DEFAULT__ type)
and QoS specs (associations) through the block-storage API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cirrus.runtime import Cloud
from tests.api.volume_helpers import (
    create_volume,
    url,
    vol,
    volume_cloud,
)


@pytest.fixture
def cloud(settings) -> Iterator[Cloud]:
    """Overrides tests/conftest.py's: the volume role alone, on the fake backend."""
    yield from volume_cloud(settings)


def _type(api, admin, **fields) -> dict:
    r = api.post(url(admin, "/types"), headers=vol(admin), json={"volume_type": fields})
    assert r.status_code == 200, r.text
    return r.json()["volume_type"]


def test_the_default_type_exists_and_cannot_be_deleted(api, admin, member):
    types = api.get(url(member, "/types"), headers=vol(member)).json()["volume_types"]
    assert [t["name"] for t in types] == ["__DEFAULT__"]
    default = api.get(url(member, "/types/default"), headers=vol(member)).json()["volume_type"]
    assert default["id"] == types[0]["id"]
    r = api.delete(url(admin, f"/types/{default['id']}"), headers=vol(admin))
    assert r.status_code == 400 and "__DEFAULT__" in r.json()["badRequest"]["message"]


def test_create_update_delete_with_extra_specs(api, admin, member):
    made = _type(api, admin, name="ssd", description="fast",
                 extra_specs={"volume_backend_name": "fake", "multiattach": "<is> True"})
    assert made["extra_specs"]["volume_backend_name"] == "fake" and made["is_public"] is True
    r = api.post(url(admin, "/types"), headers=vol(admin), json={"volume_type": {"name": "ssd"}})
    assert r.status_code == 409 and "conflictingRequest" in r.json()
    r = api.post(url(admin, "/types"), headers=vol(admin), json={
        "volume_type": {"name": "x", "extra_specs": {"volume_backend_name": "ceph"}}})
    assert r.status_code == 400 and "volume_backend_name" in r.json()["badRequest"]["message"]
    r = api.post(url(admin, "/types"), headers=vol(admin), json={"volume_type": {"name": ""}})
    assert r.status_code == 400 and "volume_type/name" in r.json()["badRequest"]["message"]

    # a member sees the type, but not where it is stored
    seen = api.get(url(member, f"/types/{made['id']}"), headers=vol(member)).json()
    assert seen["volume_type"]["extra_specs"] == {"multiattach": "<is> True"}
    assert api.get(url(member, f"/types/{made['id']}/extra_specs/volume_backend_name"),
                   headers=vol(member)).status_code == 404

    specs = url(admin, f"/types/{made['id']}/extra_specs")
    assert api.post(specs, headers=vol(admin),
                    json={"extra_specs": {"color": "blue"}}).status_code == 200
    assert api.get(f"{specs}/color", headers=vol(admin)).json() == {"color": "blue"}
    assert api.put(f"{specs}/color", headers=vol(admin),
                   json={"color": "red"}).json() == {"color": "red"}
    r = api.put(f"{specs}/color", headers=vol(admin), json={"shade": "red"})
    assert r.status_code == 400
    assert api.delete(f"{specs}/color", headers=vol(admin)).status_code == 202
    assert "color" not in api.get(specs, headers=vol(admin)).json()["extra_specs"]

    r = api.put(url(admin, f"/types/{made['id']}"), headers=vol(admin),
                json={"volume_type": {"name": "ssd2", "description": "faster"}})
    assert r.json()["volume_type"]["name"] == "ssd2"

    # in use: neither deleted nor moved to another backend
    volume = create_volume(api, member, 1, volume_type="ssd2")
    assert volume["volume_type"] == "ssd2"
    r = api.delete(url(admin, f"/types/{made['id']}"), headers=vol(admin))
    assert r.status_code == 400 and "in use" in r.json()["badRequest"]["message"]
    r = api.post(specs, headers=vol(admin),
                 json={"extra_specs": {"volume_backend_name": "fake"}})
    assert r.status_code == 400

    # extra-spec filter (3.52)
    found = api.get(url(admin, '/types?extra_specs={"multiattach": "<is> True"}'),
                    headers=vol(admin)).json()["volume_types"]
    assert [t["name"] for t in found] == ["ssd2"]
    everything = api.get(url(admin, '/types?extra_specs={"multiattach": "<is> True"}'),
                         headers=vol(admin, "3.51")).json()["volume_types"]
    assert len(everything) == 2


def test_private_types_and_their_access_list(api, admin, member, other_member):
    private = _type(api, admin, name="gold", **{"os-volume-type-access:is_public": False})
    assert private["is_public"] is False
    assert api.get(url(member, f"/types/{private['id']}"),
                   headers=vol(member)).status_code == 404
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"size": 1, "volume_type": "gold"}})
    assert r.status_code == 404
    action = url(admin, f"/types/{private['id']}/action")
    assert api.post(action, headers=vol(admin), json={
        "addProjectAccess": {"project": member.project_id}}).status_code == 202
    assert api.post(action, headers=vol(admin), json={
        "addProjectAccess": {"project": member.project_id}}).status_code == 409
    access = api.get(url(admin, f"/types/{private['id']}/os-volume-type-access"),
                     headers=vol(admin)).json()["volume_type_access"]
    assert access == [{"volume_type_id": private["id"], "project_id": member.project_id}]
    names = [t["name"] for t in api.get(url(member, "/types"),
                                        headers=vol(member)).json()["volume_types"]]
    assert "gold" in names
    assert "gold" not in [t["name"] for t in api.get(
        url(other_member, "/types"), headers=vol(other_member)).json()["volume_types"]]
    assert create_volume(api, member, 1, volume_type="gold")["volume_type"] == "gold"
    assert api.post(action, headers=vol(admin), json={
        "removeProjectAccess": {"project": member.project_id}}).status_code == 202
    assert api.get(url(member, f"/types/{private['id']}"),
                   headers=vol(member)).status_code == 404
    r = api.post(url(member, f"/types/{private['id']}/action"), headers=vol(member), json={
        "addProjectAccess": {"project": member.project_id}})
    assert r.status_code == 403


def test_qos_specs_and_their_associations(api, admin):
    r = api.post(url(admin, "/qos-specs"), headers=vol(admin), json={"qos_specs": {
        "name": "slow", "consumer": "front-end", "read_iops_sec": "100",
        "write_bytes_sec": 1048576}})
    assert r.status_code == 200, r.text
    spec = r.json()["qos_specs"]
    assert spec["specs"] == {"read_iops_sec": "100", "write_bytes_sec": "1048576"}
    assert spec["consumer"] == "front-end"
    r = api.post(url(admin, "/qos-specs"), headers=vol(admin), json={"qos_specs": {
        "name": "bad", "read_iops_sec": "lots"}})
    assert r.status_code == 400 and "read_iops_sec" in r.json()["badRequest"]["message"]
    r = api.post(url(admin, "/qos-specs"), headers=vol(admin), json={"qos_specs": {
        "name": "bad", "consumer": "everyone"}})
    assert r.status_code == 400 and "consumer" in r.json()["badRequest"]["message"]

    base = url(admin, f"/qos-specs/{spec['id']}")
    assert api.put(base, headers=vol(admin), json={"qos_specs": {"total_iops_sec": "500"}}
                   ).json() == {"qos_specs": {"total_iops_sec": "500"}}
    assert api.put(f"{base}/delete_keys", headers=vol(admin),
                   json={"keys": ["read_iops_sec"]}).status_code == 202
    assert "read_iops_sec" not in api.get(base, headers=vol(admin)).json()["qos_specs"]["specs"]

    vtype = _type(api, admin, name="limited")
    assert api.get(f"{base}/associate?vol_type_id={vtype['id']}",
                   headers=vol(admin)).status_code == 202
    assert api.get(f"{base}/associations", headers=vol(admin)).json() == {
        "qos_associations": [{"association_type": "volume_type", "name": "limited",
                              "id": vtype["id"]}]}
    shown = api.get(url(admin, f"/types/{vtype['id']}"), headers=vol(admin)).json()
    assert shown["volume_type"]["qos_specs_id"] == spec["id"]
    r = api.delete(base, headers=vol(admin))
    assert r.status_code == 400 and "associated" in r.json()["badRequest"]["message"]
    assert api.get(f"{base}/disassociate?vol_type_id={vtype['id']}",
                   headers=vol(admin)).status_code == 202
    assert api.get(f"{base}/associations", headers=vol(admin)).json()["qos_associations"] == []
    assert api.get(f"{base}/associate", headers=vol(admin)).status_code == 400
    assert api.delete(base, headers=vol(admin)).status_code == 202
    assert api.get(base, headers=vol(admin)).status_code == 404


def test_a_type_whose_volumes_are_deleted_can_be_deleted(api, admin, member):
    made = _type(api, admin, name="short-lived")
    volume = create_volume(api, member, 1, volume_type="short-lived")
    assert api.delete(url(member, f"/volumes/{volume['id']}"),
                      headers=vol(member)).status_code == 202
    for _ in range(500):
        if api.get(url(member, f"/volumes/{volume['id']}"),
                   headers=vol(member)).status_code == 404:
            break
        time.sleep(0.02)
    assert api.delete(url(admin, f"/types/{made['id']}"), headers=vol(admin)).status_code == 202
    assert api.get(url(admin, f"/types/{made['id']}"), headers=vol(admin)).status_code == 404
    r = api.put(url(admin, "/types/00000000-0000-0000-0000-000000000000"), headers=vol(admin),
                json={"volume_type": {"name": "x"}})
    assert r.status_code == 404


def test_an_updated_type_answers_without_access_keys(api, admin):
    made = _type(api, admin, name="to-update")
    r = api.put(url(admin, f"/types/{made['id']}"), headers=vol(admin),
                json={"volume_type": {"is_public": False, "description": "d"}})
    assert r.status_code == 200
    body = r.json()["volume_type"]
    assert body["is_public"] is False and body["description"] == "d"
    assert "os-volume-type-access:is_public" not in body and "qos_specs_id" not in body


def test_retype_within_a_backend(api, admin, member):
    _type(api, admin, name="silver")
    made = create_volume(api, member, 1)
    action = url(member, f"/volumes/{made['id']}/action")
    r = api.post(action, headers=vol(member), json={"os-retype": {"new_type": "silver"}})
    assert r.status_code == 202, r.text
    shown = api.get(url(member, f"/volumes/{made['id']}"), headers=vol(member)).json()
    assert shown["volume"]["volume_type"] == "silver"
    r = api.post(action, headers=vol(member), json={"os-retype": {"new_type": "silver"}})
    assert r.status_code == 400 and "already" in r.json()["badRequest"]["message"]
    r = api.post(action, headers=vol(member), json={"os-retype": {"new_type": "nope"}})
    assert r.status_code == 404
    r = api.post(action, headers=vol(member),
                 json={"os-retype": {"new_type": "__DEFAULT__", "migration_policy": "x"}})
    assert r.status_code == 400 and "migration_policy" in r.json()["badRequest"]["message"]
