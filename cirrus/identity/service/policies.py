"""Policies (Keystone's /v3/policies): a type and an opaque blob, stored and served back.
Neither Keystone nor Cirrus enforces them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import Policy
from cirrus.errors import NotFound
from cirrus.identity.service.common import new_id

_FIELDS = ("blob", "type", "id")


def create_policy(s: Session, fields: dict) -> Policy:
    policy = Policy(id=new_id(), type=fields["type"], blob=fields["blob"],
                    extra={k: v for k, v in fields.items() if k not in _FIELDS})
    s.add(policy)
    s.flush()
    return policy


def get_policy(s: Session, policy_id: str) -> Policy:
    policy = s.get(Policy, policy_id)
    if policy is None:
        raise NotFound(f"Could not find policy: {policy_id}.")
    return policy


def list_policies(s: Session, *, kind: str | None = None) -> list[Policy]:
    query = select(Policy).order_by(Policy.created_at, Policy.id)
    if kind is not None:
        query = query.where(Policy.type == kind)
    return list(s.scalars(query))


def update_policy(s: Session, policy_id: str, fields: dict) -> Policy:
    policy = get_policy(s, policy_id)
    if "type" in fields:
        policy.type = fields["type"]
    if "blob" in fields:
        policy.blob = fields["blob"]
    extra = {k: v for k, v in fields.items() if k not in _FIELDS}
    if extra:
        policy.extra = {**(policy.extra or {}), **extra}
    s.flush()
    return policy


def delete_policy(s: Session, policy_id: str) -> None:
    s.delete(get_policy(s, policy_id))
