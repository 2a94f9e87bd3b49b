"""Random bodies against the credential, EC2, policy, consumer and domain-config routes: a
4xx in Keystone's error shape or a 2xx, never a 500; and blobs too long in bytes are 400."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.api.test_identity_credentials import error
from tests.conftest import Caller

V3 = "/identity/v3"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)
KEYS = ["blob", "type", "user_id", "project_id", "description", "identity", "ldap", "url",
        "driver", "password", "tenant_id"]
bodies = st.one_of(json_values, st.dictionaries(st.sampled_from(
    ["credential", "policy", "consumer", "config", "tenant_id"]), st.one_of(
    json_values, st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)), max_size=2))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, route=st.sampled_from([
    ("post", "credentials"), ("patch", "credentials/{cred}"), ("post", "policies"),
    ("patch", "policies/{policy}"), ("post", "OS-OAUTH1/consumers"),
    ("patch", "OS-OAUTH1/consumers/{consumer}"), ("put", "domains/default/config"),
    ("patch", "domains/default/config"), ("patch", "domains/default/config/ldap"),
    ("patch", "domains/default/config/ldap/url"), ("post", "users/{user}/credentials/OS-EC2"),
]))
def test_random_bodies_never_500(api: TestClient, admin: Caller, body: object,
                                 route: tuple[str, str]) -> None:
    ids = _ids(api, admin)
    method, path = route
    r = getattr(api, method)(f"{V3}/{path.format(**ids)}", json=body, headers=admin.headers)
    assert r.status_code < 500, (route, body, r.text)
    if r.status_code >= 400:
        assert r.json()["error"]["code"] == r.status_code


_made: dict[str, dict] = {}


def _ids(api: TestClient, admin: Caller) -> dict:
    key = admin.token
    if key not in _made:
        h = admin.headers
        cred = api.post(f"{V3}/credentials", json={"credential": {
            "user_id": admin.user_id, "type": "cert", "blob": "b"}}, headers=h).json()
        policy = api.post(f"{V3}/policies", json={"policy": {"type": "t", "blob": "b"}},
                          headers=h).json()
        consumer = api.post(f"{V3}/OS-OAUTH1/consumers", json={"consumer": {}},
                            headers=h).json()
        api.put(f"{V3}/domains/default/config", json={"config": {"ldap": {"url": "u"}}},
                headers=h)
        _made[key] = {"cred": cred["credential"]["id"], "policy": policy["policy"]["id"],
                      "consumer": consumer["consumer"]["id"], "user": admin.user_id}
    return _made[key]


def test_blob_longer_than_32_kib_in_utf8_is_400(api: TestClient, admin: Caller) -> None:
    body = {"credential": {"user_id": admin.user_id, "type": "cert", "blob": "é" * 20000}}
    assert "blob" in error(api.post(f"{V3}/credentials", json=body, headers=admin.headers), 400)
    body = {"policy": {"type": "t", "blob": "é" * 40000}}
    assert "blob" in error(api.post(f"{V3}/policies", json=body, headers=admin.headers), 400)
    assert api.get(f"{V3}/credentials", headers=admin.headers).json()["credentials"] == []
    assert api.get(f"{V3}/policies", headers=admin.headers).json()["policies"] == []
