"""Storage pool names and how a server asks for one: shared by the scheduler, compute and the
drivers, so none of them imports another's code for it.

A server asks for a pool by flavor extra spec `cirrus:storage_pool`, else by image property
`cirrus_storage_pool` (the flavor, set by the operator, wins); no ask means the host's
`default` pool.
"""

from __future__ import annotations

from typing import Any

DEFAULT_POOL = "default"
FLAVOR_EXTRA_SPEC = "cirrus:storage_pool"
IMAGE_PROPERTY = "cirrus_storage_pool"


def requested_storage_pool(flavor_extra_specs: dict[str, Any] | None,
                           image_properties: dict[str, Any] | None) -> str | None:
    """The pool a server asks for: flavor extra spec, else image property, else None (the
    host's default pool)."""
    for source, key in ((flavor_extra_specs, FLAVOR_EXTRA_SPEC),
                        (image_properties, IMAGE_PROPERTY)):
        value = (source or {}).get(key)
        if value:
            return str(value).strip()
    return None
