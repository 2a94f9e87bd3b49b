"""Image members: share a `shared` image with other projects, who accept or reject it."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from cirrus.api.framework import ApiRequest
from cirrus.api.image import schemas
from cirrus.api.validation import validate
from cirrus.errors import BadRequest
from cirrus.identity.policy import READ, WRITE, authorize
from cirrus.storage import image_members

if TYPE_CHECKING:
    from cirrus.db.models import ImageMember


def _isotime(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def member_view(member: ImageMember) -> dict[str, Any]:
    return {
        "created_at": _isotime(member.created_at),
        "updated_at": _isotime(member.updated_at or member.created_at),
        "image_id": member.image_id,
        "member_id": member.member_id,
        "status": member.status,
        "schema": "/v2/schemas/member",
    }


def _body(req: ApiRequest, schema: dict) -> dict:
    body = req.json
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    validate(schema, body)
    return body


def list_members(req: ApiRequest, image_id: str) -> dict:
    authorize(req.ctx, READ, "get_members")
    members = image_members.list_members(req.cloud.db, req.ctx, image_id)
    return {"members": [member_view(m) for m in members], "schema": "/v2/schemas/members"}


def show_member(req: ApiRequest, image_id: str, member_id: str) -> dict:
    authorize(req.ctx, READ, "get_member")
    return member_view(image_members.get_member(req.cloud.db, req.ctx, image_id, member_id))


def add_member(req: ApiRequest, image_id: str) -> dict:
    authorize(req.ctx, WRITE, "add_member")
    member_id = _body(req, schemas.CREATE_MEMBER)["member"].strip()
    if not member_id:
        raise BadRequest("Invalid input for field/attribute member: it must not be blank.")
    return member_view(image_members.add_member(req.cloud.db, req.ctx, image_id, member_id))


def update_member(req: ApiRequest, image_id: str, member_id: str) -> dict:
    authorize(req.ctx, WRITE, "modify_member")
    status = _body(req, schemas.UPDATE_MEMBER)["status"]
    return member_view(image_members.set_status(req.cloud.db, req.ctx, image_id, member_id,
                                                status))


def remove_member(req: ApiRequest, image_id: str, member_id: str) -> None:
    authorize(req.ctx, WRITE, "delete_member")
    image_members.remove_member(req.cloud.db, req.ctx, image_id, member_id)


ROUTES: list = [
    ("GET", "/v2/images/{image_id}/members", list_members),
    ("POST", "/v2/images/{image_id}/members", add_member),
    ("GET", "/v2/images/{image_id}/members/{member_id}", show_member),
    ("PUT", "/v2/images/{image_id}/members/{member_id}", update_member),
    ("DELETE", "/v2/images/{image_id}/members/{member_id}", remove_member),
]
