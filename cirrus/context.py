"""Who is asking, and on behalf of which request: carried from the API through the bus."""

from __future__ import annotations

import contextvars
import re
import uuid
from dataclasses import dataclass, field

# (request id, global request id) of the work this thread or task is doing, for the logs.
_request_ids: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "request_ids", default=(None, None))
# What Nova (oslo.middleware) accepts as a caller's X-OpenStack-Request-ID.
GLOBAL_REQUEST_ID = re.compile(
    r"^req-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def current_request_id() -> str | None:
    return _request_ids.get()[0]


def current_global_request_id() -> str | None:
    return _request_ids.get()[1]


def set_request_id(request_id: str | None,
                   global_request_id: str | None = None) -> contextvars.Token:
    """`global_request_id`: the id of the caller's own request (another service, a client
    tool) that this one serves, when it sent one; logged beside ours to follow it across."""
    return _request_ids.set((request_id, global_request_id))


def reset_request_id(token: contextvars.Token) -> None:
    _request_ids.reset(token)


@dataclass
class RequestContext:
    """The caller of one request. Plain data, so it can travel in a bus message."""

    request_id: str = field(default_factory=new_request_id)
    global_request_id: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    domain_id: str | None = None
    roles: list[str] = field(default_factory=list)
    system: bool = False

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def can_write(self) -> bool:
        return "admin" in self.roles or "member" in self.roles

    def to_dict(self) -> dict:
        # Hand-written: dataclasses.asdict deep-copies and is slow on this hot path.
        return {"request_id": self.request_id, "global_request_id": self.global_request_id,
                "user_id": self.user_id,
                "user_name": self.user_name, "project_id": self.project_id,
                "project_name": self.project_name, "domain_id": self.domain_id,
                "roles": list(self.roles), "system": self.system}

    @classmethod
    def from_dict(cls, data: dict) -> RequestContext:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def admin(cls, request_id: str | None = None) -> RequestContext:
        """A context for work Cirrus does on its own behalf (periodic tasks, bootstrap)."""
        return cls(request_id=request_id or new_request_id(), roles=["admin"], system=True)
