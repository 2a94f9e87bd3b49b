"""Policies (/v3/policies) and OAuth1 consumers (/v3/OS-OAUTH1/consumers): admin only, as
Keystone's default policy (its system reader is Cirrus's admin). Policies are stored, not
enforced (Keystone does not enforce them either). A consumer's secret is shown once, at
creation, and stored hashed; the OAuth1 token flow (request/access tokens) is not served.
"""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import schemas_extra as schemas
from cirrus.api.identity.common import _authorize, _collection, _v3
from cirrus.api.validation import validate
from cirrus.db.models import OAuthConsumer, Policy
from cirrus.identity.policy import ADMIN
from cirrus.identity.service import oauth, policies


def _body(req: ApiRequest, schema: dict, key: str) -> dict:
    body = req.json
    validate(schema, schemas.redacted(body))
    for name in ("blob", "description"):
        schemas.fits(body[key], name, schemas.TEXT_BYTES)
    return body[key]


def _policy_view(req: ApiRequest, policy: Policy) -> dict:
    return {**(policy.extra or {}), "id": policy.id, "type": policy.type, "blob": policy.blob,
            "links": {"self": f"{_v3(req)}/policies/{policy.id}"}}


def list_policies(req: ApiRequest) -> dict:
    _authorize(req, ADMIN, "list_policies")
    with req.cloud.db.reader() as s:
        found = policies.list_policies(s, kind=req.query.get("type"))
    return _collection(req, "policies", [_policy_view(req, p) for p in found])


def create_policy(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_policy")
    fields = _body(req, schemas.policy_create, "policy")
    policy = req.cloud.db.run(lambda s: policies.create_policy(s, fields))
    return Reply(201, {"policy": _policy_view(req, policy)})


def show_policy(req: ApiRequest, policy_id: str) -> dict:
    _authorize(req, ADMIN, "get_policy")
    with req.cloud.db.reader() as s:
        return {"policy": _policy_view(req, policies.get_policy(s, policy_id))}


def update_policy(req: ApiRequest, policy_id: str) -> dict:
    _authorize(req, ADMIN, "update_policy")
    fields = _body(req, schemas.policy_update, "policy")
    policy = req.cloud.db.run(lambda s: policies.update_policy(s, policy_id, fields))
    return {"policy": _policy_view(req, policy)}


def delete_policy(req: ApiRequest, policy_id: str) -> None:
    _authorize(req, ADMIN, "delete_policy")
    req.cloud.db.run(lambda s: policies.delete_policy(s, policy_id))


def _consumer_view(req: ApiRequest, consumer: OAuthConsumer) -> dict:
    return {**(consumer.extra or {}), "id": consumer.id, "description": consumer.description,
            "links": {"self": f"{_v3(req)}/OS-OAUTH1/consumers/{consumer.id}"}}


def list_consumers(req: ApiRequest) -> dict:
    _authorize(req, ADMIN, "list_consumers")
    with req.cloud.db.reader() as s:
        found = oauth.list_consumers(s)
    return _collection(req, "consumers", [_consumer_view(req, c) for c in found])


def create_consumer(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_consumer")
    fields = _body(req, schemas.consumer_create, "consumer")
    consumer, secret = req.cloud.db.run(lambda s: oauth.create_consumer(s, fields))
    return Reply(201, {"consumer": {**_consumer_view(req, consumer), "secret": secret}})


def show_consumer(req: ApiRequest, consumer_id: str) -> dict:
    _authorize(req, ADMIN, "get_consumer")
    with req.cloud.db.reader() as s:
        return {"consumer": _consumer_view(req, oauth.get_consumer(s, consumer_id))}


def update_consumer(req: ApiRequest, consumer_id: str) -> dict:
    _authorize(req, ADMIN, "update_consumer")
    fields = _body(req, schemas.consumer_update, "consumer")
    consumer = req.cloud.db.run(lambda s: oauth.update_consumer(s, consumer_id, fields))
    return {"consumer": _consumer_view(req, consumer)}


def delete_consumer(req: ApiRequest, consumer_id: str) -> None:
    _authorize(req, ADMIN, "delete_consumer")
    req.cloud.db.run(lambda s: oauth.delete_consumer(s, consumer_id))


ROUTES: list = [
    ("GET", "/v3/policies", list_policies),
    ("POST", "/v3/policies", create_policy),
    ("GET", "/v3/policies/{policy_id}", show_policy),
    ("PATCH", "/v3/policies/{policy_id}", update_policy),
    ("DELETE", "/v3/policies/{policy_id}", delete_policy),
    ("GET", "/v3/OS-OAUTH1/consumers", list_consumers),
    ("POST", "/v3/OS-OAUTH1/consumers", create_consumer),
    ("GET", "/v3/OS-OAUTH1/consumers/{consumer_id}", show_consumer),
    ("PATCH", "/v3/OS-OAUTH1/consumers/{consumer_id}", update_consumer),
    ("DELETE", "/v3/OS-OAUTH1/consumers/{consumer_id}", delete_consumer),
]
