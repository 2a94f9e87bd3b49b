"""Random bodies and query strings against the server routes: each gets the answer its case
calls for (a 400 in Nova's error shape for what is malformed, a 2xx or a 409 for what is
well-formed), never a 500, and no half-written record."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cirrus.api.validation import to_bool
from cirrus.compute.instances import SORT_KEYS
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
COMPUTE_ERRORS = {400: "badRequest", 403: "forbidden", 404: "itemNotFound",
                  409: "conflictingRequest"}


def assert_compute_error(r, status: int, context: object) -> None:
    """`r` is `status` with Nova's error shape: {"<name>": {"code": status, "message": ...}}."""
    assert r.status_code == status, (context, r.status_code, r.text)
    body = r.json()
    assert list(body) == [COMPUTE_ERRORS[status]], (context, body)
    fault = body[COMPUTE_ERRORS[status]]
    assert fault["code"] == status, (context, body)
    assert isinstance(fault["message"], str) and fault["message"].strip(), (context, body)


def _is_integer(value: object) -> bool:  # JSON Schema's "integer": 3 and 3.0, never true
    return not isinstance(value, bool) and (
        isinstance(value, int) or isinstance(value, float) and value.is_integer())


def _valid_console_length(length: object) -> bool:
    if length is None:
        return True
    if _is_integer(length):
        return length >= -1
    return (isinstance(length, str) and len(length) <= 255
            and re.search(r"^-?[0-9]+$", length) is not None and int(length) >= -1)


def _numbers_in_range(value: object) -> bool:
    """Every number in a JSON body must fit a signed 64-bit integer (cirrus/api/limits.py)."""
    if isinstance(value, dict):
        return all(map(_numbers_in_range, value.values()))
    if isinstance(value, list):
        return all(map(_numbers_in_range, value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return -(2**63) <= value <= 2**63 - 1
    return True


def well_formed_action(action: dict) -> bool:
    """Whether `action` is a well-formed body of one of the actions sampled below (the
    server's state then decides between a 2xx and a 409)."""
    if len(action) != 1 or not _numbers_in_range(action):
        return False
    (name, value), = action.items()
    if name in ("os-stop", "os-start"):  # Nova reads no arguments of these
        return True
    if name == "reboot":
        return (isinstance(value, dict) and set(value) == {"type"}
                and value["type"] in ("HARD", "Hard", "hard", "SOFT", "Soft", "soft"))
    if name == "os-getConsoleOutput":
        return (isinstance(value, dict) and set(value) <= {"length"}
                and _valid_console_length(value.get("length")))
    return False  # "bogus": no such action
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(body=st.one_of(json_values, st.fixed_dictionaries({"server": server_fields})))
def test_server_create_with_random_body_is_4xx_and_writes_nothing(api, cloud, member, body):
    r = api.post("/compute/v2.1/servers", json=body, headers=member.compute())
    if r.status_code == 202:  # a random body can be valid only with a real flavor and image
        raise AssertionError(f"accepted {body!r}")
    assert_compute_error(r, 400, body)  # bad input, an unknown flavor or image alike
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 0


@FUZZ
@given(action=st.dictionaries(st.sampled_from(["os-stop", "os-start", "reboot",
                                               "os-getConsoleOutput", "bogus"]),
                              json_values, min_size=0, max_size=2))
def test_server_action_with_random_body_is_400_unless_well_formed(api, cloud, member, action):
    sid = _SERVERS.get(id(cloud))
    if sid is None:  # one server per cloud fixture, shared by the examples
        flavor, image = add_flavor(cloud, name="fuzz"), add_image(cloud)
        r = api.post("/compute/v2.1/servers", json={"server": {
            "name": "f", "flavorRef": flavor, "imageRef": image, "networks": "none"}},
            headers=member.compute())
        sid = _SERVERS[id(cloud)] = r.json()["server"]["id"]
    r = api.post(f"/compute/v2.1/servers/{sid}/action", json=action, headers=member.compute())
    if not well_formed_action(action):
        assert_compute_error(r, 400, action)
    elif r.status_code == 409:  # e.g. os-start on an active server, a reboot while one runs
        assert_compute_error(r, 409, action)
    else:
        expected = 200 if "os-getConsoleOutput" in action else 202
        assert r.status_code == expected, (action, r.status_code, r.text)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["limit", "marker", "status", "changes-since",
                                               "sort_key", "sort_dir", "name", "all_tenants",
                                               "image", "flavor"]),
                              st.text(max_size=15), max_size=4))
def test_server_list_with_random_query_is_200_400_or_403_as_the_query_calls_for(
        api, member, params):
    r = api.get("/compute/v2.1/servers/detail", params=params, headers=member.compute())
    all_tenants = params.get("all_tenants")
    if all_tenants is not None and (all_tenants == "" or to_bool(all_tenants)):
        assert_compute_error(r, 403, params)  # a member may not list other projects'
    elif (params.get("sort_key", "created_at") not in SORT_KEYS
          or params.get("sort_dir", "desc") not in ("asc", "desc")):
        assert_compute_error(r, 400, params)
    elif r.status_code == 200:  # the rest: a 400 for a bad limit, marker or time, else 200
        assert isinstance(r.json()["servers"], list)
    else:
        assert_compute_error(r, 400, params)
