"""Domains."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import schemas
from cirrus.api.identity.common import _authorize, _body, _bool_filter, _collection, _revoke
from cirrus.api.identity.views import _domain_view
from cirrus.errors import NotFound
from cirrus.identity import service as identity
from cirrus.identity.policy import ADMIN


def _related_domain_ids(req: ApiRequest, s: Any) -> set[str]:
    """The domains a non-admin may see: their own, their project's, those they have roles on."""
    ids = {req.ctx.domain_id} if req.ctx.domain_id else set()
    if req.claims is not None and req.claims.project_domain_id:
        ids.add(req.claims.project_domain_id)
    ids.update(d.id for d in identity.domains_of_user(s, req.require_user()))
    return ids


def list_domains(req: ApiRequest) -> dict:
    with req.cloud.db.reader() as s:
        only = None if req.ctx.is_admin else _related_domain_ids(req, s)
        domains = identity.list_domains(s, name=req.query.get("name"),
                                        enabled=_bool_filter(req, "enabled"), only_ids=only)
    return _collection(req, "domains", [_domain_view(req, d) for d in domains])


def show_domain(req: ApiRequest, domain_id: str) -> dict:
    with req.cloud.db.reader() as s:
        if not req.ctx.is_admin and domain_id not in _related_domain_ids(req, s):
            raise NotFound(f"Could not find domain: {domain_id}.")
        domain = identity.get_domain(s, domain_id)
    return {"domain": _domain_view(req, domain)}


def create_domain(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_domain")
    fields = _body(req, schemas.domain_create, "domain")
    domain = req.cloud.db.run(lambda s: identity.create_domain(s, fields))
    return Reply(201, {"domain": _domain_view(req, domain)})


def update_domain(req: ApiRequest, domain_id: str) -> dict:
    _authorize(req, ADMIN, "update_domain")
    fields = _body(req, schemas.domain_update, "domain")
    domain, revocations = req.cloud.db.run(lambda s: identity.update_domain(s, domain_id, fields))
    _revoke(req, revocations)
    return {"domain": _domain_view(req, domain)}


def delete_domain(req: ApiRequest, domain_id: str) -> None:
    _authorize(req, ADMIN, "delete_domain")
    _revoke(req, req.cloud.db.run(lambda s: identity.delete_domain(s, domain_id)))


ROUTES: list = [
    ("GET", "/v3/domains", list_domains),
    ("POST", "/v3/domains", create_domain),
    ("GET", "/v3/domains/{domain_id}", show_domain),
    ("PATCH", "/v3/domains/{domain_id}", update_domain),
    ("DELETE", "/v3/domains/{domain_id}", delete_domain),
]
