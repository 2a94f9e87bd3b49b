"""Server tags (/servers/{id}/tags), from microversion 2.26 (before, 404).

Members and admins change their servers' tags; readers list and check them. PUT of one tag
answers 201 with its Location when it is new, 204 when the server already had it.
"""

from __future__ import annotations

from urllib.parse import quote

from cirrus.api.compute.common import api_root
from cirrus.api.compute.microversion import min_version
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.compute import tags
from cirrus.errors import NotFound
from cirrus.identity.policy import READ, WRITE, authorize

_tag = {"type": "string", "minLength": 1, "maxLength": tags.MAX_LENGTH, "pattern": "^[^,/]*$"}
replace_schema = {
    "type": "object",
    "properties": {"tags": {"type": "array", "maxItems": tags.MAX_TAGS, "items": _tag}},
    "required": ["tags"],
    "additionalProperties": False,
}


@min_version("2.26")
def list_tags(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-server-tags:index")
    return {"tags": tags.get_tags(req.cloud, req.ctx, server_id)}


@min_version("2.26")
def replace_tags(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:os-server-tags:update_all")
    validate(replace_schema, req.json)
    return {"tags": tags.replace_tags(req.cloud, req.ctx, server_id, req.json["tags"])}


@min_version("2.26")
def delete_all_tags(req: ApiRequest, server_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-server-tags:delete_all")
    tags.delete_tag(req.cloud, req.ctx, server_id, None)
    return Reply(204)


@min_version("2.26")
def check_tag(req: ApiRequest, server_id: str, tag: str) -> Reply:
    authorize(req.ctx, READ, "os_compute_api:os-server-tags:show")
    if tag not in tags.get_tags(req.cloud, req.ctx, server_id):
        raise NotFound(f"Tag '{tag}' could not be found for instance {server_id}.")
    return Reply(204)


@min_version("2.26")
def add_tag(req: ApiRequest, server_id: str, tag: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-server-tags:update")
    location = f"{api_root(req)}/servers/{server_id}/tags/{quote(tag, safe='')}"
    created = tags.add_tag(req.cloud, req.ctx, server_id, tag)
    return Reply(201 if created else 204, None, {"Location": location})


@min_version("2.26")
def delete_tag(req: ApiRequest, server_id: str, tag: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-server-tags:delete")
    tags.delete_tag(req.cloud, req.ctx, server_id, tag)
    return Reply(204)


ROUTES = [
    ("GET", "/v2.1/servers/{server_id}/tags", list_tags),
    ("PUT", "/v2.1/servers/{server_id}/tags", replace_tags),
    ("DELETE", "/v2.1/servers/{server_id}/tags", delete_all_tags),
    ("GET", "/v2.1/servers/{server_id}/tags/{tag}", check_tag),
    ("PUT", "/v2.1/servers/{server_id}/tags/{tag}", add_tag),
    ("DELETE", "/v2.1/servers/{server_id}/tags/{tag}", delete_tag),
]
