"""Neutron's bulk create: `POST /v2.0/<collection>` with `{"<collection>": [{...}, ...]}`.

Each item is checked as a single create's body would be (an item may also be wrapped as
`{"<resource>": {...}}`, as Neutron accepts). The handlers then create every item in ONE
write transaction, in order: one invalid item, one quota overrun or one address that
cannot be had rolls the whole request back (no network, subnet, port or IP allocation is
left), and the answer lists the created resources in the order they were asked for.
"""

from __future__ import annotations

from cirrus.api.network import schemas
from cirrus.errors import BadRequest

# More items than any client sends at once; a bound so that one request cannot hold a
# write transaction for minutes.
MAX_ITEMS = 1000


def bodies(body: object, resource: str, collection: str) -> tuple[list[dict], bool]:
    """The resource bodies of a create request, and whether it was a bulk one."""
    if not isinstance(body, dict) or collection not in body:
        return [schemas.unwrap(body, resource)], False
    if resource in body:
        raise BadRequest(f"Invalid input: give either '{resource}' or '{collection}', "
                         "not both.")
    items = body[collection]
    if not isinstance(items, list):
        raise BadRequest(f"Invalid input for {collection}. Reason: a bulk create takes a "
                         "list of objects.")
    if not items:
        raise BadRequest("Resources required")
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"Invalid input for {collection}. Reason: at most {MAX_ITEMS} "
                         "resources may be created in one request.")
    result: list[dict] = []
    for item in items:
        if isinstance(item, dict) and set(item) == {resource}:
            item = item[resource]
        if not isinstance(item, dict):
            raise BadRequest(f"Invalid input for {collection}. Reason: each item must be a "
                             "JSON object.")
        result.append(item)
    return result, True


def reply_body(views: list[dict], resource: str, collection: str, bulk: bool) -> dict:
    return {collection: views} if bulk else {resource: views[0]}
