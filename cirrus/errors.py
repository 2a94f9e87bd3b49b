"""Domain errors. Services raise these; the API edge maps them to HTTP and OpenStack bodies."""

from __future__ import annotations


class CirrusError(Exception):
    status = 500
    default_message = "An unexpected error occurred."

    def __init__(self, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers = headers or {}  # extra response headers the edge should send
        super().__init__(self.message)


class BadRequest(CirrusError):
    status = 400
    default_message = "The request is invalid."


class Unauthorized(CirrusError):
    status = 401
    default_message = "The request you have made requires authentication."


class Forbidden(CirrusError):
    status = 403
    default_message = "You are not authorized to perform the requested action."


class NotFound(CirrusError):
    status = 404
    default_message = "The resource could not be found."


class MethodNotAllowed(CirrusError):
    status = 405
    default_message = "The method is not allowed for this resource."


class NotAcceptable(CirrusError):
    status = 406
    default_message = "The requested version is not supported."


class Conflict(CirrusError):
    status = 409
    default_message = "The request conflicts with the current state of the resource."


class QuotaExceeded(CirrusError):
    """Nova answers quota failures with 403 (overLimit in older releases used 413)."""

    status = 403
    default_message = "Quota exceeded."


class OverLimit(CirrusError):
    status = 413
    default_message = "Request too large."


class NoValidHost(CirrusError):
    status = 500
    default_message = "No valid host was found."


class ServiceUnavailable(CirrusError):
    status = 503
    default_message = "The service is temporarily unavailable."


class DatabaseUnavailable(ServiceUnavailable):
    """The database could not be reached (restarting, failing over, network down).

    `transient`: the same work may succeed later, so the bus redelivers a message whose
    handler raised this instead of dropping it, and the API answers 503.
    """

    transient = True
    default_message = "The database is unavailable; try again shortly."


def is_transient(exc: BaseException | None) -> bool:
    """True if `exc`, or an exception it was raised from, says the work may succeed later."""
    seen = 0
    while exc is not None and seen < 10:
        if getattr(exc, "transient", False):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
