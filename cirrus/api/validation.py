"""JSON-schema validation with 400s that name the bad field."""

from __future__ import annotations

import functools
import json

import jsonschema
from jsonschema import Draft202012Validator

from cirrus.errors import BadRequest


@functools.lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json), format_checker=jsonschema.FormatChecker())


def validate(schema: dict, body: object) -> None:
    """Raise BadRequest naming the first bad field, in Nova's words."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(body), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    err = errors[0]
    if err.validator == "required":
        raise BadRequest(err.message)
    if err.validator == "additionalProperties":
        where = "/".join(str(p) for p in err.path)
        prefix = f"Invalid input for field/attribute {where}. " if where else ""
        raise BadRequest(f"{prefix}Additional properties are not allowed ({err.message.split('(')[-1]}")
    field = "/".join(str(p) for p in err.path) or "body"
    value = err.instance
    shown = value if not isinstance(value, str) or len(value) < 200 else value[:200] + "..."
    raise BadRequest(f"Invalid input for field/attribute {field}. Value: {shown}. {err.message}")


# Reusable fragments
name = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^(?!\s)[\s\S]*(?<!\s)$"}
non_negative_int = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^[0-9]+$"},
    ]
}
positive_int = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": r"^[1-9][0-9]*$"},
    ]
}
boolean = {
    "anyOf": [
        {"type": "boolean"},
        {"type": "string", "enum": ["true", "True", "TRUE", "false", "False", "FALSE", "1", "0",
                                    "yes", "no", "on", "off"]},
    ]
}
metadata = {
    "type": "object",
    "patternProperties": {
        r"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255},
    },
    "additionalProperties": False,
}
uuid = {"type": "string", "pattern": r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"}


def to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")
