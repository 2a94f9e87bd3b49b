"""The message bus: the only way roles talk to each other.

One small interface with two implementations: `LocalBus` (threads in one process) and,
later, an AMQP bus on kombu. Every message is plain JSON data and carries the caller's
context, request id included, so one request can be followed across every role.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cirrus.context import RequestContext
from cirrus.errors import ServiceUnavailable

Handler = Callable[[RequestContext, dict], Any]


class BusTimeout(Exception):
    """An RPC call got no answer in time."""


class BusStopping(BusTimeout, ServiceUnavailable):
    """The process is stopping (`Bus.interrupt`): a publish or call still waiting gave up.

    A BusTimeout, so the code that copes with an unreachable broker (a create undone, a task
    left to the re-drive) does the same; a 503 where it reaches the API edge; transient, so a
    handler that raised it has its message redelivered instead of dropped."""

    transient = True

    def __init__(self, message: str = "The service is stopping; try again shortly.") -> None:
        ServiceUnavailable.__init__(self, message)


class RemoteError(Exception):
    """The handler of an RPC call raised; carries the remote exception's type and text."""

    def __init__(self, exc_type: str, message: str, transient: bool = False) -> None:
        self.exc_type = exc_type
        self.message = message
        # The remote failure may pass (cirrus.errors.is_transient): worth trying again.
        self.transient = transient
        super().__init__(f"{exc_type}: {message}")


@dataclass(frozen=True)
class Message:
    topic: str
    method: str
    payload: dict
    context: dict

    def encode(self) -> bytes:
        return json.dumps(
            {"topic": self.topic, "method": self.method, "payload": self.payload,
             "context": self.context}
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Message:
        data = json.loads(raw)
        return cls(data["topic"], data["method"], data["payload"], data["context"])


class Bus(abc.ABC):
    """call: request/response with a timeout; cast: one consumer, no answer;
    fanout: every subscriber of the topic gets a copy."""

    @abc.abstractmethod
    def call(self, ctx: RequestContext, topic: str, method: str, payload: dict,
             timeout: float | None = None) -> Any: ...

    @abc.abstractmethod
    def cast(self, ctx: RequestContext, topic: str, method: str, payload: dict) -> None: ...

    @abc.abstractmethod
    def fanout(self, ctx: RequestContext, topic: str, method: str, payload: dict) -> None: ...

    @abc.abstractmethod
    def subscribe(self, topic: str, handlers: dict[str, Handler], *, workers: int = 4,
                  fanout: bool = False) -> None:
        """Serve `handlers` (method name -> callable(ctx, payload)) for messages on `topic`."""

    @abc.abstractmethod
    def unsubscribe(self, topic: str) -> None: ...

    def discard(self, topic: str) -> None:  # noqa: B027 - only a broker keeps topics
        """Forget a topic for good, with the messages waiting on it (a removed host's queue)."""

    def start(self) -> None:  # noqa: B027 - optional hook
        pass

    def interrupt(self) -> None:  # noqa: B027 - optional hook
        """The process is stopping: make every publish and call still waiting raise
        BusStopping now, and every new one at once (cirrus.shutdown)."""

    def set_stop_deadline(self, deadline: float | None) -> None:  # noqa: B027 - optional hook
        """Bound the waits of every later unsubscribe (a role's own stop) by `deadline`."""

    @abc.abstractmethod
    def stop(self, deadline: float | None = None) -> None:
        """Stop consuming and close; `deadline` (time.monotonic()) bounds every wait."""
