"""Quota classes (os-quota-class-sets): admin only.

Only the `default` class has an effect, as in Nova: its limits are the defaults of every
project that has no override of its own (os-quota-sets/{project}/defaults shows them). Other
class names can be read and written but apply to no project.

Microversions: before 2.50 a class shows the network quotas (fixed_ips, floating_ips,
security_groups, security_group_rules) and not the server group ones; 2.50 swaps them; 2.57
drops the injected_file* quotas. Each version takes in an update what it shows.
"""

from __future__ import annotations

import re
from typing import Any

from cirrus.api.compute.common import bounded_int
from cirrus.api.compute.microversion import by_version
from cirrus.api.framework import ApiRequest
from cirrus.api.validation import validate
from cirrus.compute import quotas
from cirrus.errors import BadRequest
from cirrus.identity.policy import ADMIN, authorize

_NETWORK = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
_SERVER_GROUPS = ("server_groups", "server_group_members")
_INJECTED = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")

# The quotas a class shows and takes, by microversion.
SHOWN = by_version({
    ("2.1", "2.49"): tuple(r for r in quotas.RESOURCES if r not in _SERVER_GROUPS),
    ("2.50", "2.56"): tuple(r for r in quotas.RESOURCES if r not in _NETWORK),
    ("2.57", None): tuple(r for r in quotas.RESOURCES if r not in _NETWORK + _INJECTED),
})

# Nova's quota class names: 1 to 255 characters of letters, digits, `_`, `-`, ` ` and `.`.
_CLASS_NAME = re.compile(r"^[a-zA-Z0-9_\-. ]{1,255}$")
_LIMIT = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1,
          "maximum": quotas.MAX_LIMIT, "maxLength": 255}


def _update_schema(names: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object",
            "properties": {"quota_class_set": {
                "type": "object", "properties": dict.fromkeys(names, _LIMIT),
                "additionalProperties": False}},
            "required": ["quota_class_set"], "additionalProperties": False}


def _check_name(class_name: str) -> None:
    if not _CLASS_NAME.match(class_name):
        raise BadRequest(f"Invalid input for field/attribute id. Value: {class_name[:64]}. "
                         "It is not a valid quota class name.")


def _view(req: ApiRequest, limits: dict[str, int], class_name: str | None) -> dict:
    body: dict[str, Any] = {"id": class_name} if class_name is not None else {}
    body.update({name: limits[name] for name in SHOWN(req)})
    return {"quota_class_set": body}


def show_quota_class(req: ApiRequest, class_name: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-quota-class-sets:show")
    _check_name(class_name)
    with req.cloud.db.reader() as s:
        return _view(req, quotas.class_limits(s, req.cloud.settings, class_name), class_name)


def update_quota_class(req: ApiRequest, class_name: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-quota-class-sets:update")
    _check_name(class_name)
    body = req.json
    validate(_update_schema(SHOWN(req)), body)
    values = {name: bounded_int(value, f"quota_class_set/{name}", quotas.UNLIMITED,
                                quotas.MAX_LIMIT)
              for name, value in body["quota_class_set"].items()}

    def work(s):
        quotas.set_class_limits(s, class_name, values)
        return quotas.class_limits(s, req.cloud.settings, class_name)

    # Nova leaves the id out of the update response.
    return _view(req, req.cloud.db.run(work), None)


ROUTES = [
    ("GET", "/v2.1/os-quota-class-sets/{class_name}", show_quota_class),
    ("PUT", "/v2.1/os-quota-class-sets/{class_name}", update_quota_class),
]
