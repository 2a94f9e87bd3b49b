"""Limits at the HTTP edge, applied before a request is authenticated or routed.

- `RequestLimitsMiddleware` (ASGI): the URL length (414), the number of query parameters
  (400), the header sizes and the token's length (431), and the body size per route class
  (413): image data uploads are bounded by `image_size_cap`, every other body by
  `max_json_body_size`. A declared Content-Length over the limit is answered at once,
  without reading the body; a chunked body is counted as it arrives and refused as soon as
  it passes the limit (`BodyTooLarge` is raised from `receive`).
- `parse_json`: the only way a request body becomes a Python value. Nesting depth is measured
  on the bytes without recursion before any parser sees them; orjson then refuses invalid
  UTF-8 and lone surrogates; strings longer than `max_json_string_length` and numbers outside
  the signed 64-bit range are refused. Every refusal is a BadRequest (400).
- `http_protocol(settings)`: uvicorn's httptools protocol with a bound on the bytes of a
  request's head while it is being parsed (uvicorn and httptools set none: a 20 MB header
  line or half a million headers were read whole), answered 431.

Every answer is in the error shape of the service the path belongs to.
"""

from __future__ import annotations

import itertools
import operator
import re
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cirrus.api.errors import error_body, error_response, service_of
from cirrus.config import Settings
from cirrus.errors import BadRequest, OverLimit

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Routes whose body is streamed to disk rather than parsed: (method, path, the setting that
# bounds the body). Every other route's body is held in memory and bounded by
# max_json_body_size.
STREAMED_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("PUT", re.compile(r"^/image/v2/images/[^/]+/file/?$"), "image_size_cap"),
]
TOKEN_HEADERS = (b"x-auth-token", b"x-subject-token")


class BodyTooLarge(OverLimit):
    """The request body passed its route's limit (raised from `receive` as bytes arrive)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")
        self.limit = limit


def body_limit(settings: Settings, method: str, path: str) -> int:
    """The largest body a request may carry (0: no limit)."""
    for route_method, pattern, setting in STREAMED_ROUTES:
        if method == route_method and pattern.match(path):
            return int(getattr(settings, setting))
    return settings.max_json_body_size


def head_problem(settings: Settings, scope: Scope) -> tuple[int, str] | None:
    """(status, message) if the request line or headers break a limit, else None."""
    query: bytes = scope.get("query_string") or b""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "replace")
    url_limit = settings.max_url_length
    if url_limit and len(raw_path) + len(query) > url_limit:
        return 414, f"The request URL is longer than the limit of {url_limit} bytes."
    params = settings.max_query_params
    if params and query and query.count(b"&") + 1 > params:
        fields = sum(1 for part in query.split(b"&") if part)
        if fields > params:
            return 400, (f"The query string has {fields} parameters; the limit is {params}.")
    total = 0
    for name, value in scope.get("headers") or ():
        total += len(name) + len(value)
        if name in TOKEN_HEADERS and settings.max_token_size and \
                len(value) > settings.max_token_size:
            # Not a 431: a token that long cannot be valid, and OpenStack's clients answer
            # an invalid token (401) by authenticating again.
            return 401, (f"The {name.decode('latin-1').title()} header is longer than the "
                         f"limit of {settings.max_token_size} bytes; it is not a valid token.")
        if settings.max_header_line and len(value) > settings.max_header_line:
            return 431, (f"The {name.decode('latin-1')[:64]} header is longer than the limit "
                         f"of {settings.max_header_line} bytes.")
    if settings.max_header_size and total > settings.max_header_size:
        return 431, (f"The request headers are larger than the limit of "
                     f"{settings.max_header_size} bytes.")
    return None


def _content_length(scope: Scope) -> tuple[int | None, str | None]:
    """(declared length or None, a problem with it or None)."""
    values = [v for k, v in scope.get("headers") or () if k == b"content-length"]
    if not values:
        return None, None
    lengths = {v.strip() for v in values}
    if len(lengths) != 1:
        return None, "The request has conflicting Content-Length headers."
    text = lengths.pop()
    if not text.isdigit() or len(text) > 19:
        return None, "The Content-Length header is not a valid length."
    return int(text), None


class RequestLimitsMiddleware:
    """Enforces `head_problem` and `body_limit` before the application sees the request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = service_of(scope["path"])
        problem = head_problem(self.settings, scope)
        if problem is not None:
            await error_response(service, *problem)(scope, receive, send)
            return
        limit = body_limit(self.settings, scope["method"], scope["path"])
        declared, bad_length = _content_length(scope)
        if bad_length:
            await error_response(service, 400, bad_length)(scope, receive, send)
            return
        if limit and declared is not None and declared > limit:
            # Answered without reading a byte of the body; the connection is closed so the
            # server does not go on reading what the client still sends.
            await error_response(service, 413, BodyTooLarge(limit).message,
                                 {"Connection": "close"})(scope, receive, send)
            return
        if not limit:
            await self.app(scope, receive, send)
            return

        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if too_large:
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            # A route that let the exception out: answer for it, unless it already answered.
            if started:
                raise
            await error_response(service, 413, exc.message, {"Connection": "close"})(
                scope, receive, send)


# ---------------------------------------------------------------- JSON bodies

# A JSON string token: quotes around anything but quotes and backslashes, or escapes. An
# unterminated string runs to the end, so a match never fails once begun and the scan stays
# linear (a pattern that could fail there would rescan the rest from every later quote).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
# Opening brackets to 2, closing ones to 0, everything else deleted.
_BRACKETS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in `raw`, measured without recursion or parsing
    (brackets inside strings do not count). Malformed input gives a number too; the parser
    refuses it afterwards."""
    if raw.count(b"[") + raw.count(b"{") == 0:
        return 0
    structure = _STRING.sub(b"", raw) if b'"' in raw else raw
    steps = structure.translate(_BRACKETS, _NOT_BRACKETS)
    if not steps:
        return 0
    # depth after the i-th bracket = (sum of steps up to i) - (i + 1): each opener adds 2-1,
    # each closer 0-1. Every loop here runs in C.
    return max(map(operator.sub, itertools.accumulate(steps), itertools.count(1)))


# Only a document with a run of 19 digits or an exponent can hold a number out of the
# signed 64-bit range (its largest, 9223372036854775807, has 19 digits).
_LONG_NUMBER = re.compile(rb"[0-9]{19}|[0-9.][eE]")


def parse_json(raw: bytes, settings: Settings) -> Any:
    """The value of a JSON request body, within the limits; BadRequest otherwise."""
    max_depth = settings.max_json_depth
    if max_depth and json_depth(raw) > max_depth:
        raise BadRequest(f"The JSON body nests deeper than the limit of {max_depth} levels.")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed request body: {exc}") from None
    max_string = settings.max_json_string_length
    # A string of more than max_string characters takes more than max_string bytes.
    strings = max_string if max_string and len(raw) > max_string else 0
    numbers = _LONG_NUMBER.search(raw) is not None
    if strings or numbers:
        check_json_value(value, strings, numbers=numbers)
    return value


def check_json_value(value: Any, max_string: int, *, numbers: bool = True) -> None:
    """Walk a parsed document without recursion: strings and keys no longer than
    `max_string` characters (0: any length), numbers within the signed 64-bit range. orjson
    reads integers beyond 64 bits as floats, so floats are held to the same range. A refusal
    names where the value is (`server/max_count`, `networks/0/port`)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    pop, push = stack.pop, stack.append
    while stack:
        item, where = pop()
        kind = type(item)
        if kind is str:
            if max_string and len(item) > max_string:
                raise BadRequest(f"The string at {_at(where)} in the JSON body is {len(item)} "
                                 f"characters long; the limit is {max_string}.")
        elif kind is list:
            for index, element in enumerate(item):
                push((element, f"{where}/{index}"))
        elif kind is dict:
            for key, element in item.items():
                if max_string and len(key) > max_string:
                    raise BadRequest(f"A key at {_at(where)} in the JSON body is {len(key)} "
                                     f"characters long; the limit is {max_string}.")
                push((element, f"{where}/{_short_key(key)}"))
        elif numbers and (kind is int or kind is float) and not INT64_MIN <= item <= INT64_MAX:
            raise BadRequest(f"The number {_short(item)} at {_at(where)} in the JSON body is "
                             f"out of range: numbers must lie between {INT64_MIN} and "
                             f"{INT64_MAX}.")


def _at(where: str) -> str:
    return where.lstrip("/") or "the top level"


def _short_key(key: str) -> str:
    return key if len(key) <= 64 else key[:61] + "..."


def _short(number: float) -> str:
    # orjson gives integers beyond 64 bits as floats: show them as the integers they were.
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    text = str(number)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------- the HTTP parser


def http_protocol(settings: Settings) -> type:
    """uvicorn's httptools protocol, bounded: a request head (request line and headers)
    larger than max_url_length + max_header_size is answered 431 and the connection closed
    as soon as that many bytes have arrived, so no client makes the server hold an endless
    head. The finer limits (each header, the token, the URL) are RequestLimitsMiddleware's."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    limit = 0  # either limit turned off turns this one off
    if settings.max_url_length and settings.max_header_size:
        limit = settings.max_url_length + settings.max_header_size

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True
            self._head_bytes = 0

        def data_received(self, data: bytes) -> None:
            counting = limit and self._in_head
            super().data_received(data)
            if not counting or self.transport.is_closing():
                return
            if self._in_head:  # the head has not ended yet: all of `data` belongs to it
                self._head_bytes += len(data)
                if self._head_bytes > limit:
                    self._refuse_head()

        def _refuse_head(self) -> None:
            url = getattr(self, "url", b"") or b""
            path = url.split(b"?", 1)[0].decode("latin-1", "replace")
            message = f"The request head is larger than the limit of {limit} bytes."
            body = orjson.dumps(error_body(service_of(path), 431, message))
            self.logger.info("Request head larger than %d bytes refused.", limit)
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\nconnection: close\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.transport.close()

    return BoundedHttpToolsProtocol
