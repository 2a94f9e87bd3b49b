"""Who is asking, and on behalf of which request: carried from the API through the bus."""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, field

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(request_id: str | None) -> contextvars.Token:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)


@dataclass
class RequestContext:
    """The caller of one request. Plain data, so it can travel in a bus message."""

    request_id: str = field(default_factory=new_request_id)
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
        return {"request_id": self.request_id, "user_id": self.user_id,
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
