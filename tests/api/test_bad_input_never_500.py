"""Random bodies and query strings against write routes: always a 4xx, never a 500, and no
half-written record."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cirrus.db.models import Instance
from tests.api.servers_helpers import add_flavor, add_image

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
server_fields = st.fixed_dictionaries({}, optional={
    "name": json_values, "flavorRef": json_values, "imageRef": json_values, "networks": json_values,
    "min_count": json_values, "max_count": json_values, "metadata": json_values,
    "key_name": json_values, "user_data": json_values, "availability_zone": json_values,
    "security_groups": json_values, "config_drive": json_values, "description": json_values,
})
_SERVERS: dict[int, str] = {}
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(body=st.one_of(json_values, st.fixed_dictionaries({"server": server_fields})))
def test_server_create_with_random_body_is_4xx_and_writes_nothing(api, cloud, member, body):
    r = api.post("/compute/v2.1/servers", json=body, headers=member.compute())
    if r.status_code == 202:  # a random body can be valid only with a real flavor and image
        raise AssertionError(f"accepted {body!r}")
    assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
    assert set(r.json()) <= {"badRequest", "forbidden", "itemNotFound", "conflictingRequest"}
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 0


@FUZZ
@given(action=st.dictionaries(st.sampled_from(["os-stop", "os-start", "reboot",
                                               "os-getConsoleOutput", "bogus"]),
                              json_values, min_size=0, max_size=2))
def test_server_action_with_random_body_is_4xx(api, cloud, member, action):
    sid = _SERVERS.get(id(cloud))
    if sid is None:  # one server per cloud fixture, shared by the examples
        flavor, image = add_flavor(cloud, name="fuzz"), add_image(cloud)
        r = api.post("/compute/v2.1/servers", json={"server": {
            "name": "f", "flavorRef": flavor, "imageRef": image, "networks": "none"}},
            headers=member.compute())
        sid = _SERVERS[id(cloud)] = r.json()["server"]["id"]
    r = api.post(f"/compute/v2.1/servers/{sid}/action", json=action, headers=member.compute())
    assert r.status_code < 500, (action, r.status_code, r.text)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["limit", "marker", "status", "changes-since",
                                               "sort_key", "sort_dir", "name", "all_tenants",
                                               "image", "flavor"]),
                              st.text(max_size=15), max_size=4))
def test_server_list_with_random_query_is_never_500(api, member, params):
    r = api.get("/compute/v2.1/servers/detail", params=params, headers=member.compute())
    assert r.status_code < 500, (params, r.status_code, r.text)
