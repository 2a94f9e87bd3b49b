"""OAuth1 consumers (Keystone's OS-OAUTH1 extension, the consumer registry only): the secret
is shown once, when the consumer is made, and kept as a salted hash (Keystone keeps it in
clear; nothing here needs it back)."""

from __future__ import annotations

import secrets as _random

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import OAuthConsumer
from cirrus.errors import NotFound
from cirrus.identity import secrets
from cirrus.identity.service.common import new_id


def create_consumer(s: Session, fields: dict) -> tuple[OAuthConsumer, str]:
    """The consumer and its secret (the only time it is known)."""
    secret = _random.token_urlsafe(24)
    extra = {k: v for k, v in fields.items() if k not in ("description", "id", "secret")}
    consumer = OAuthConsumer(id=new_id(), description=fields.get("description"),
                             secret_hash=secrets.hash_secret(secret), extra=extra)
    s.add(consumer)
    s.flush()
    return consumer, secret


def get_consumer(s: Session, consumer_id: str) -> OAuthConsumer:
    consumer = s.get(OAuthConsumer, consumer_id)
    if consumer is None:
        raise NotFound(f"Could not find consumer: {consumer_id}.")
    return consumer


def list_consumers(s: Session) -> list[OAuthConsumer]:
    return list(s.scalars(select(OAuthConsumer).order_by(OAuthConsumer.created_at,
                                                          OAuthConsumer.id)))


def update_consumer(s: Session, consumer_id: str, fields: dict) -> OAuthConsumer:
    consumer = get_consumer(s, consumer_id)
    if "description" in fields:
        consumer.description = fields["description"]
    extra = {k: v for k, v in fields.items() if k not in ("description", "id", "secret")}
    if extra:
        consumer.extra = {**(consumer.extra or {}), **extra}
    s.flush()
    return consumer


def delete_consumer(s: Session, consumer_id: str) -> None:
    s.delete(get_consumer(s, consumer_id))
