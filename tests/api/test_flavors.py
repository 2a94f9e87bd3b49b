"""Flavors, extra specs and flavor access through the compute API."""

from __future__ import annotations

import uuid
import warnings

import jsonschema
import pytest
from sqlalchemy import func, select

from cirrus.compute import flavors as flavor_service
from cirrus.context import RequestContext
from cirrus.db.models import FlavorProject
from cirrus.errors import BadRequest, NotFound

BASE = "/compute/v2.1"

# What Tempest's compute response schemas require of a flavor (v2_1 and v2_55 flavors.py).
_LINKS = {"type": "array", "items": {
    "type": "object", "properties": {"href": {"type": "string"}, "rel": {"type": "string"}},
    "required": ["href", "rel"], "additionalProperties": False}}
FLAVOR_V21 = {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "links": _LINKS, "ram": {"type": "integer"},
        "vcpus": {"type": "integer"}, "swap": {"type": ["integer", "string"]},
        "disk": {"type": "integer"}, "id": {"type": "string"},
        "OS-FLV-DISABLED:disabled": {"type": "boolean"},
        "os-flavor-access:is_public": {"type": "boolean"},
        "rxtx_factor": {"type": "number"}, "OS-FLV-EXT-DATA:ephemeral": {"type": "integer"},
    },
    "required": ["name", "links", "ram", "vcpus", "swap", "disk", "id",
                 "OS-FLV-DISABLED:disabled", "os-flavor-access:is_public", "rxtx_factor",
                 "OS-FLV-EXT-DATA:ephemeral"],
    "additionalProperties": False,
}
FLAVOR_V255 = {**FLAVOR_V21,
               "properties": {**FLAVOR_V21["properties"],
                              "description": {"type": ["string", "null"]}},
               "required": [*FLAVOR_V21["required"], "description"]}


def create(api, caller, mv: str = "2.60", **spec):
    body = {"name": f"f-{uuid.uuid4().hex[:8]}", "vcpus": 1, "ram": 512, "disk": 1, **spec}
    return api.post(f"{BASE}/flavors", headers=caller.compute(mv), json={"flavor": body})


def make(api, admin, **spec) -> dict:
    r = create(api, admin, **spec)
    assert r.status_code == 200, r.text
    return r.json()["flavor"]


# ---------------------------------------------------------------- create


def test_create_returns_the_full_view_with_a_generated_uuid(api, admin):
    r = create(api, admin, "2.1", name="small")
    assert r.status_code == 200
    flavor = r.json()["flavor"]
    jsonschema.validate(flavor, FLAVOR_V21)
    assert str(uuid.UUID(flavor["id"])) == flavor["id"]
    assert flavor["name"] == "small"
    assert flavor["swap"] == ""
    assert flavor["rxtx_factor"] == 1.0
    assert flavor["os-flavor-access:is_public"] is True
    assert flavor["links"][0] == {"rel": "self", "href": f"http://testserver{BASE}/flavors/{flavor['id']}"}
    assert flavor["links"][1]["href"] == f"http://testserver/compute/flavors/{flavor['id']}"


def test_create_keeps_the_given_id_swap_ephemeral_and_rxtx(api, admin):
    flavor = make(api, admin, id=42, swap=256, rxtx_factor="2.5",
                  **{"OS-FLV-EXT-DATA:ephemeral": 10})
    assert flavor["id"] == "42"
    assert flavor["swap"] == 256
    assert flavor["OS-FLV-EXT-DATA:ephemeral"] == 10
    assert flavor["rxtx_factor"] == 2.5


def test_description_appears_from_2_55(api, admin):
    old = create(api, admin, "2.54").json()["flavor"]
    assert "description" not in old
    new = create(api, admin, "2.55", description="for tests").json()["flavor"]
    jsonschema.validate(new, FLAVOR_V255)
    assert new["description"] == "for tests"
    brief = api.get(f"{BASE}/flavors", headers=admin.compute("2.55")).json()["flavors"]
    assert {f["id"]: f["description"] for f in brief}[old["id"]] is None
    brief_old = api.get(f"{BASE}/flavors", headers=admin.compute("2.54")).json()["flavors"]
    assert all(set(f) == {"id", "name", "links"} for f in brief_old)


def test_description_before_2_55_is_refused(api, admin):
    r = create(api, admin, "2.54", description="nope")
    assert r.status_code == 400
    assert "description" in r.json()["badRequest"]["message"]


@pytest.mark.parametrize("field,value", [("ram", 0), ("ram", "lots"), ("vcpus", -1),
                                         ("disk", "1.5"), ("swap", -2), ("rxtx_factor", 0)])
def test_bad_numbers_are_400_naming_the_field(api, admin, field, value):
    r = create(api, admin, **{field: value})
    assert r.status_code == 400
    assert f"flavor/{field}" in r.json()["badRequest"]["message"]


def test_missing_name_and_unknown_fields_are_400(api, admin):
    r = api.post(f"{BASE}/flavors", headers=admin.compute(),
                 json={"flavor": {"vcpus": 1, "ram": 1, "disk": 1}})
    assert r.status_code == 400
    assert "'name' is a required property" in r.json()["badRequest"]["message"]
    r = create(api, admin, colour="blue")
    assert r.status_code == 400
    assert "colour" in r.json()["badRequest"]["message"]
    r = create(api, admin, name="  padded")
    assert r.status_code == 400


def test_duplicate_name_or_id_is_409(api, admin):
    make(api, admin, name="dup", id="dup-id")
    r = create(api, admin, name="dup")
    assert r.status_code == 409
    assert r.json()["conflictingRequest"]["message"] == "Flavor with name dup already exists."
    r = create(api, admin, id="dup-id")
    assert r.status_code == 409


def test_only_admins_create_flavors(api, member, reader):
    assert create(api, member).status_code == 403
    assert create(api, reader).status_code == 403


# ---------------------------------------------------------------- list and show


def test_show_and_unknown_flavor(api, admin, member):
    flavor = make(api, admin)
    r = api.get(f"{BASE}/flavors/{flavor['id']}", headers=member.compute())
    assert r.status_code == 200
    assert r.json()["flavor"] == flavor
    r = api.get(f"{BASE}/flavors/no-such", headers=member.compute())
    assert r.status_code == 404
    assert "itemNotFound" in r.json()


def test_pages_with_limit_marker_and_next_link(api, admin, member):
    ids = sorted(make(api, admin, id=f"p{i}")["id"] for i in range(3))
    r = api.get(f"{BASE}/flavors?limit=2", headers=member.compute())
    body = r.json()
    assert [f["id"] for f in body["flavors"]] == ids[:2]
    nxt = body["flavors_links"][0]
    assert nxt["rel"] == "next"
    assert nxt["href"] == f"http://testserver{BASE}/flavors?limit=2&marker={ids[1]}"
    rest = api.get(nxt["href"].replace("http://testserver", ""), headers=member.compute()).json()
    assert [f["id"] for f in rest["flavors"]] == ids[2:]
    assert "flavors_links" not in rest
    detail = api.get(f"{BASE}/flavors/detail?limit=1", headers=member.compute()).json()
    assert "/flavors/detail?limit=1&marker=" in detail["flavors_links"][0]["href"]


def test_bad_paging_parameters_are_400(api, member):
    assert api.get(f"{BASE}/flavors?marker=nope", headers=member.compute()).status_code == 400
    assert api.get(f"{BASE}/flavors?limit=-1", headers=member.compute()).status_code == 400
    assert api.get(f"{BASE}/flavors?limit=x", headers=member.compute()).status_code == 400


def test_min_ram_and_min_disk_filter(api, admin, member):
    make(api, admin, id="tiny", ram=64, disk=1)
    make(api, admin, id="big", ram=8192, disk=80)
    ids = {f["id"] for f in api.get(f"{BASE}/flavors?minRam=1024",
                                     headers=member.compute()).json()["flavors"]}
    assert ids == {"big"}
    ids = {f["id"] for f in api.get(f"{BASE}/flavors/detail?minDisk=2",
                                     headers=member.compute()).json()["flavors"]}
    assert ids == {"big"}
    r = api.get(f"{BASE}/flavors?minRam=lots", headers=member.compute())
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == "Invalid minRam filter [lots]"


def test_sort_key_and_direction(api, admin, member):
    make(api, admin, id="a", ram=300)
    make(api, admin, id="b", ram=100)
    make(api, admin, id="c", ram=200)
    r = api.get(f"{BASE}/flavors?sort_key=memory_mb&sort_dir=desc", headers=member.compute())
    assert [f["id"] for f in r.json()["flavors"]] == ["a", "c", "b"]
    assert api.get(f"{BASE}/flavors?sort_key=colour",
                   headers=member.compute()).status_code == 400
    assert api.get(f"{BASE}/flavors?sort_dir=up", headers=member.compute()).status_code == 400


def test_is_public_filter_is_for_admins(api, admin, member):
    public = make(api, admin)["id"]
    private = make(api, admin, **{"os-flavor-access:is_public": False})["id"]

    def ids(caller, query=""):
        r = api.get(f"{BASE}/flavors{query}", headers=caller.compute())
        assert r.status_code == 200, r.text
        return {f["id"] for f in r.json()["flavors"]}

    assert public in ids(admin) and private not in ids(admin)
    assert ids(admin, "?is_public=false") == {private}
    assert {public, private} <= ids(admin, "?is_public=none")
    assert private not in ids(member, "?is_public=none")  # ignored for non-admins
    assert api.get(f"{BASE}/flavors?is_public=maybe",
                   headers=admin.compute()).status_code == 400


# ---------------------------------------------------------------- private flavors


def test_private_flavor_is_visible_only_to_projects_given_access(api, admin, member, other_member):
    flavor = make(api, admin, **{"os-flavor-access:is_public": False})
    path = f"{BASE}/flavors/{flavor['id']}"
    assert api.get(path, headers=member.compute()).status_code == 404

    r = api.post(f"{path}/action", headers=admin.compute(),
                 json={"addTenantAccess": {"tenant": member.project_id}})
    assert r.status_code == 200
    assert r.json() == {"flavor_access": [{"flavor_id": flavor["id"],
                                           "tenant_id": member.project_id}]}
    assert api.get(path, headers=member.compute()).status_code == 200
    listed = api.get(f"{BASE}/flavors", headers=member.compute()).json()["flavors"]
    assert flavor["id"] in {f["id"] for f in listed}
    assert api.get(path, headers=other_member.compute()).status_code == 404

    r = api.get(f"{path}/os-flavor-access", headers=admin.compute())
    assert r.json()["flavor_access"][0]["tenant_id"] == member.project_id

    r = api.post(f"{path}/action", headers=admin.compute(),
                 json={"removeTenantAccess": {"tenant": member.project_id}})
    assert r.status_code == 200
    assert r.json() == {"flavor_access": []}
    assert api.get(path, headers=member.compute()).status_code == 404


def test_access_errors(api, admin, member):
    public = make(api, admin)["id"]
    private = make(api, admin, **{"os-flavor-access:is_public": False})["id"]
    grant = {"addTenantAccess": {"tenant": member.project_id}}

    r = api.get(f"{BASE}/flavors/{public}/os-flavor-access", headers=admin.compute())
    assert r.status_code == 404
    # 2.7 refuses grants on public flavors; before that they were accepted.
    assert api.post(f"{BASE}/flavors/{public}/action", headers=admin.compute("2.7"),
                    json=grant).status_code == 409
    assert api.post(f"{BASE}/flavors/{public}/action", headers=admin.compute("2.6"),
                    json=grant).status_code == 200

    path = f"{BASE}/flavors/{private}/action"
    assert api.post(path, headers=admin.compute(), json=grant).status_code == 200
    assert api.post(path, headers=admin.compute(), json=grant).status_code == 409
    r = api.post(path, headers=admin.compute(), json={"addTenantAccess": {"tenant": "nope"}})
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == "Project ID nope is not a valid project."
    r = api.post(path, headers=admin.compute(), json={"removeTenantAccess": {"tenant": "nope"}})
    assert r.status_code == 404
    r = api.post(path, headers=admin.compute(), json={"addTenantAccess": {}})
    assert r.status_code == 400
    assert "tenant" in r.json()["badRequest"]["message"]
    r = api.post(path, headers=admin.compute(), json={"shrink": {}})
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == "There is no such action: shrink"
    assert api.post(path, headers=member.compute(), json=grant).status_code == 403
    assert api.get(f"{BASE}/flavors/{private}/os-flavor-access",
                   headers=member.compute()).status_code == 403
    assert api.post(f"{BASE}/flavors/missing/action", headers=admin.compute(),
                    json=grant).status_code == 404


# ---------------------------------------------------------------- update and delete


def test_update_description_from_2_55(api, admin, member):
    flavor = make(api, admin)
    path = f"{BASE}/flavors/{flavor['id']}"
    body = {"flavor": {"description": "now described"}}
    assert api.put(path, headers=admin.compute("2.54"), json=body).status_code == 404
    r = api.put(path, headers=admin.compute("2.55"), json=body)
    assert r.status_code == 200
    assert r.json()["flavor"]["description"] == "now described"
    shown = api.get(path, headers=member.compute("2.55")).json()["flavor"]
    assert shown["description"] == "now described"
    assert api.put(path, headers=member.compute("2.55"), json=body).status_code == 403
    r = api.put(path, headers=admin.compute("2.55"), json={"flavor": {"name": "x"}})
    assert r.status_code == 400
    assert api.put(f"{BASE}/flavors/missing", headers=admin.compute("2.55"),
                   json=body).status_code == 404


def test_delete_is_202_and_admin_only(api, admin, member):
    flavor = make(api, admin)
    path = f"{BASE}/flavors/{flavor['id']}"
    assert api.delete(path, headers=member.compute()).status_code == 403
    r = api.delete(path, headers=admin.compute())
    assert r.status_code == 202
    assert r.content == b""
    assert api.get(path, headers=admin.compute()).status_code == 404
    assert api.delete(path, headers=admin.compute()).status_code == 404


# ---------------------------------------------------------------- extra specs


def test_extra_specs_lifecycle(api, admin, member):
    flavor = make(api, admin)
    path = f"{BASE}/flavors/{flavor['id']}/os-extra_specs"
    r = api.post(path, headers=admin.compute(),
                 json={"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": 512}})
    assert r.status_code == 200
    assert r.json() == {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": 512}}
    r = api.get(path, headers=member.compute())
    assert r.json() == {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": "512"}}
    r = api.get(f"{path}/hw:cpu_policy", headers=member.compute())
    assert r.json() == {"hw:cpu_policy": "dedicated"}

    r = api.put(f"{path}/hw:cpu_policy", headers=admin.compute(),
                json={"hw:cpu_policy": "shared"})
    assert r.status_code == 200
    assert r.json() == {"hw:cpu_policy": "shared"}
    r = api.delete(f"{path}/quota:cpu_shares", headers=admin.compute())
    assert r.status_code == 200
    assert api.get(path, headers=member.compute()).json() == {
        "extra_specs": {"hw:cpu_policy": "shared"}}
    assert api.get(f"{path}/quota:cpu_shares", headers=member.compute()).status_code == 404
    assert api.delete(f"{path}/quota:cpu_shares", headers=admin.compute()).status_code == 404


def test_extra_spec_errors(api, admin, member):
    flavor = make(api, admin)
    path = f"{BASE}/flavors/{flavor['id']}/os-extra_specs"
    r = api.put(f"{path}/a", headers=admin.compute(), json={"b": "1"})
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == "Request body and URI mismatch"
    assert api.put(f"{path}/a", headers=admin.compute(),
                   json={"a": "1", "b": "2"}).status_code == 400
    assert api.post(path, headers=admin.compute(),
                    json={"extra_specs": {"bad/key": "1"}}).status_code == 400
    assert api.post(path, headers=admin.compute(),
                    json={"extra_specs": {"k": "v" * 256}}).status_code == 400
    assert api.post(path, headers=member.compute(),
                    json={"extra_specs": {"k": "v"}}).status_code == 403
    assert api.put(f"{path}/k", headers=member.compute(), json={"k": "v"}).status_code == 403
    assert api.get(f"{BASE}/flavors/missing/os-extra_specs",
                   headers=member.compute()).status_code == 404


# ---------------------------------------------------------------- the servers API's entry point


def test_get_flavor_for_project_honours_access_and_disabled(cloud, api, admin, member):
    private = make(api, admin, **{"os-flavor-access:is_public": False})["id"]
    public = make(api, admin)["id"]
    ctx = RequestContext(user_id=member.user_id, project_id=member.project_id, roles=["member"])
    with cloud.db.reader() as s:
        with pytest.raises(NotFound):
            flavor_service.get_flavor_for_project(s, private, ctx)
        found = flavor_service.get_flavor_for_project(
            s, f"http://testserver{BASE}/flavors/{public}", ctx)
        assert (found.flavorid, found.memory_mb) == (public, 512)

    def disable(s):
        flavor_service.get_flavor(s, public, RequestContext.admin()).disabled = True

    cloud.db.run(disable)
    with cloud.db.reader() as s, pytest.raises(BadRequest):
        flavor_service.get_flavor_for_project(s, public, ctx)
    # A disabled flavor also drops out of a member's list.
    ids = {f["id"] for f in api.get(f"{BASE}/flavors", headers=member.compute()).json()["flavors"]}
    assert public not in ids


def test_deleting_a_private_flavor_removes_its_grants_cleanly(cloud, api, admin, member):
    flavor = make(api, admin, **{"os-flavor-access:is_public": False})
    api.post(f"{BASE}/flavors/{flavor['id']}/action", headers=admin.compute(),
             json={"addTenantAccess": {"tenant": member.project_id}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SQLAlchemy warns if the grant rows vanish under it
        cloud.db.run(lambda s: flavor_service.delete_flavor(s, flavor["id"],
                                                            RequestContext.admin()))
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(FlavorProject)) == 0
