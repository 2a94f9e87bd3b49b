"""Request bodies of Cirrus's own admin API (cirrus.api.admin)."""

from __future__ import annotations

set_log_level = {
    "type": "object",
    "properties": {
        # Case-insensitive; cirrus.observe.logging.check_level names the allowed levels.
        "level": {"type": "string", "minLength": 1, "maxLength": 16},
        "logger": {"type": ["string", "null"], "maxLength": 200,
                   "pattern": r"^[A-Za-z_][A-Za-z0-9_.\-]*$"},
    },
    "required": ["level"],
    "additionalProperties": False,
}
