"""Typed bus messages: versioned payload dataclasses, their JSON wire form, dispatch tables.

A payload is a frozen dataclass. On the wire it is a flat JSON object, its fields plus
`"v"` (its version): a receiver that predates versions ignores the extra key, so a new
sender can talk to an old receiver. A receiver takes its payload's current version and the
one before; version 1 is the unversioned dict every sender sent before the contracts, so
an un-upgraded sender can talk to a new receiver. When a payload's shape changes, raise its
VERSION and turn the previous shape into the new one in `upgrade`.

Each receiving role has an `rpcapi` module (`cirrus/agent/rpcapi.py`, ...) holding its
topics, one client method per message, and the table (method name -> payload class) that
`endpoints` turns into the handlers a `Bus.subscribe` takes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self, TypeVar

from cirrus.context import RequestContext
from cirrus.errors import CirrusError

VERSION_KEY = "v"
LEGACY_VERSION = 1  # the unversioned dicts sent before the contracts
BusHandler = Callable[[RequestContext, dict[str, Any]], Any]


class ContractError(CirrusError):
    """A message this receiver cannot take (unknown method, version it does not accept,
    missing or mistyped field). Never transient: redelivering it cannot help."""

    status = 400
    default_message = "The message does not match its contract."
    transient = False


class Payload:
    """Base of every bus payload (subclasses are frozen dataclasses)."""

    VERSION: ClassVar[int] = 2

    def fields(self) -> dict[str, Any]:
        """Every field as plain JSON data (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in _fields(self)}

    def as_dict(self) -> dict[str, Any]:
        """The dict a sender of before the contracts sent, and a handler of that time reads:
        the fields, without the optional ones left unset."""
        unset = {f.name for f in _fields(self)
                 if f.default is None and getattr(self, f.name) is None}
        return {k: v for k, v in self.fields().items() if k not in unset}

    def to_wire(self) -> dict[str, Any]:
        """`as_dict()` with the version: a receiver of before the contracts reads it too.
        A payload still at version 1 goes without the key, as it always went."""
        if self.VERSION == LEGACY_VERSION:
            return self.as_dict()
        return {VERSION_KEY: self.VERSION, **self.as_dict()}

    @classmethod
    def upgrade(cls, version: int, data: dict[str, Any]) -> dict[str, Any]:
        """`data` of an accepted older `version` in the current shape. Versions 1 and 2 have
        the same fields (2 only adds the version key), so the default changes nothing."""
        return data

    @classmethod
    def from_wire(cls, data: object) -> Self:
        """Decode (and check) a payload as received; ContractError says what is wrong."""
        name = cls.__name__
        if not isinstance(data, Mapping):
            raise ContractError(f"{name}: a payload is a JSON object, not {type(data).__name__}")
        version = data.get(VERSION_KEY, LEGACY_VERSION)
        accepted = sorted({max(LEGACY_VERSION, cls.VERSION - 1), cls.VERSION})
        if type(version) is not int or version not in accepted:
            raise ContractError(f"{name}: version {version!r} is not accepted here "
                                f"({' or '.join(f'v{v}' for v in accepted)}); a newer "
                                "sender needs its receivers upgraded first")
        values = cls.upgrade(version, {k: v for k, v in data.items() if k != VERSION_KEY})
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in _fields(cls):
            if f.name in values:
                kwargs[f.name] = _convert(values[f.name], hints[f.name], f"{name}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ContractError(f"{name}: field {f.name!r} is missing")
        return cls(**kwargs)

    @classmethod
    def coerce(cls, value: Self | Mapping[str, Any]) -> Self:
        """`value` itself, or decoded from its wire form (a direct caller's plain dict)."""
        return value if isinstance(value, cls) else cls.from_wire(value)


P = TypeVar("P", bound=Payload)


def route(payload: type[P], handler: Callable[[RequestContext, P], object]) -> BusHandler:
    """A bus handler that decodes `payload` and gives it to `handler`; a Payload reply is
    sent in its wire form."""
    def receive(ctx: RequestContext, wire: dict[str, Any]) -> Any:
        reply = handler(ctx, payload.from_wire(wire))
        return reply.to_wire() if isinstance(reply, Payload) else reply

    return receive


def route_as_dict(payload: type[Payload],
                  handler: Callable[[RequestContext, dict[str, Any]], object]) -> BusHandler:
    """As `route`, for a handler that still takes a dict: it gets the checked payload's
    `as_dict()`, whatever version was sent."""
    def receive(ctx: RequestContext, wire: dict[str, Any]) -> Any:
        reply = handler(ctx, payload.from_wire(wire).as_dict())
        return reply.to_wire() if isinstance(reply, Payload) else reply

    return receive


def endpoints(messages: Mapping[str, type[Payload]], handler: object, *,
              as_dict: bool = False) -> dict[str, BusHandler]:
    """The handlers for `Bus.subscribe`: each message of the table to the method of
    `handler` with its name, which takes the decoded payload (or its `as_dict()`)."""
    wrap = route_as_dict if as_dict else route
    return {name: wrap(cls, getattr(handler, name)) for name, cls in messages.items()}


def _fields(payload: Payload | type[Payload]) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(payload)  # type: ignore[arg-type]  # subclasses are dataclasses


def _plain(value: Any) -> Any:
    if isinstance(value, Payload):
        return value.fields()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _convert(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against the field type `hint` (lists become tuples where the field
    is a tuple); ContractError if it does not fit."""
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # an optional field: say what is wrong inside the value
            return _convert(value, options[0], where)
        for option in options:
            try:
                return _convert(value, option, where)
            except ContractError:
                continue
        raise ContractError(f"{where}: {type(value).__name__} {value!r:.60} is not {hint}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ContractError(f"{where}: expected a list, got {type(value).__name__}")
        items = [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ContractError(f"{where}: expected an object, got {type(value).__name__}")
        if not args:
            return dict(value)
        return {_convert(k, args[0], f"{where} key"): _convert(v, args[1], f"{where}[{k!r}]")
                for k, v in value.items()}
    if hint is type(None):
        if value is None:
            return None
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint in (str, bool):
        if isinstance(value, hint):
            return value
    else:
        raise TypeError(f"{where}: field type {hint} is not supported in a payload")
    raise ContractError(f"{where}: {type(value).__name__} {value!r:.60} is not {hint.__name__}")
