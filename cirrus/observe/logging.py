"""Structured JSON logs that carry the request id and never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import cast

from cirrus.context import current_global_request_id, current_request_id

# Values of these keys are replaced in log messages, whatever the caller passed.
_SECRET_RE = re.compile(
    r"""(?i)(["']?(?:password|passwd|secret|token|x-auth-token|x-subject-token|admin_pass|adminPass)["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,}]+)"""
)


# user:password@ in URLs (amqp://, postgresql://, mysql://): keep the user, hide the password.
_URL_PASSWORD_RE = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s/]+)(@)")

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def redact(text: str) -> str:
    return _URL_PASSWORD_RE.sub(r"\1***\3", _SECRET_RE.sub(r"\1***", text))


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "cirrus") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "pid": record.process,
            "thread": record.threadName,
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "message": redact(record.getMessage()),
        }
        global_request_id = current_global_request_id()
        if global_request_id:
            entry["global_request_id"] = global_request_id
        extra = getattr(record, "fields", None)
        if extra:
            entry.update({k: v for k, v in extra.items() if k not in entry})
        if record.exc_info:
            # The whole chain ("During handling of the above exception..."), in one field.
            entry["traceback"] = redact("".join(traceback.format_exception(*record.exc_info)))
        elif record.exc_text:
            entry["traceback"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "INFO", log_file: str = "", service: str = "cirrus") -> None:
    handler: logging.Handler
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's access log duplicates ours and lacks the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # uvicorn logs one WARNING per malformed request ("Invalid HTTP request received."): a
    # flood of them is summarised instead.
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, RateLimitFilter) for f in server_log.filters):
        server_log.addFilter(RateLimitFilter())


def check_level(level: str, logger: str | None = None) -> str:
    """The upper-case level name; ValueError for anything else. NOTSET (inherit the parent's
    level) only makes sense for a named logger."""
    name = str(level).strip().upper()
    if name == "WARN":
        name = "WARNING"
    allowed = LEVELS + (("NOTSET",) if logger else ())
    if name not in allowed:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(allowed)}")
    return name


def set_log_level(level: str, logger: str | None = None) -> str:
    """Change the level of the root logger, or of one logger (`cirrus.compute`), at run time."""
    name = check_level(level, logger)
    logging.getLogger(logger or None).setLevel(name)
    return name


def log_levels() -> dict:
    """{"level": root level, "loggers": {name: level}} for every logger given its own level."""
    manager = logging.Logger.manager
    # A copy first: another thread creating a logger (a module imported on first use) would
    # change the dictionary under the iteration (once a 500 on PUT /cirrus/v1/log-level).
    known = dict(manager.loggerDict)
    loggers = {
        name: logging.getLevelName(lg.level)
        for name, lg in sorted(known.items())
        if isinstance(lg, logging.Logger) and lg.level != logging.NOTSET
    }
    return {"level": logging.getLevelName(logging.getLogger().level), "loggers": loggers}


def on_set_log_level(ctx: object, payload: dict) -> dict:
    """Bus handler of `set_log_level` {"level", "logger"?}."""
    logger = payload.get("logger") or None
    level = set_log_level(payload["level"], logger)
    logging.getLogger(__name__).warning(
        "log level of %s set to %s", logger or "the root logger", level,
        extra={"fields": {"log_level": level, "target_logger": logger or "root"}})
    return log_levels()


# ---------------------------------------------------------------- rate-limited logging

SUMMARY_ATTR = "rate_limit_summary"  # set on summary records, which filters let through


class RateLimiter:
    """Per key, lets the first `burst` events of each `interval` seconds through and counts
    the rest; `report(key, count, level)` is called once the interval is over for the
    events held back (from a timer thread, or from the next event, whichever comes first).
    An interval starts with the first event after a quiet one."""

    def __init__(self, report: Callable[[object, int, int], None], *, burst: int = 3,
                 interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.report = report
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        # key -> [window start, events let through, events held back, highest held level]
        self._windows: dict[object, list] = {}

    def allow(self, key: object, level: int = logging.INFO) -> bool:
        """True if this event may be logged; False if it was counted for the summary."""
        due = None
        with self._lock:
            now = self.clock()
            window = self._windows.get(key)
            if window is not None and now - window[0] >= self.interval:
                due = self._close(key, window)
                window = None
            if window is None:
                window = self._windows[key] = [now, 0, 0, level]
            if window[1] < self.burst:
                window[1] += 1
                allowed = True
            else:
                if window[2] == 0:  # the first one held back: report at the interval's end
                    timer = threading.Timer(window[0] + self.interval - now, self.flush,
                                            args=(key,))
                    timer.daemon = True
                    timer.start()
                window[2] += 1
                window[3] = max(window[3], level)
                allowed = False
        if due is not None:
            self.report(key, *due)
        return allowed

    def flush(self, key: object | None = None) -> None:
        """Report what was held back in finished intervals (of `key`, or of every key)."""
        due = []
        with self._lock:
            now = self.clock()
            for k in [key] if key is not None else list(self._windows):
                window = self._windows.get(k)
                if window is not None and now - window[0] >= self.interval - 1e-3:
                    summary = self._close(k, window)
                    if summary is not None:
                        due.append((k, *summary))
        for item in due:
            self.report(*item)

    def _close(self, key: object, window: list) -> tuple[int, int] | None:
        del self._windows[key]
        return (window[2], window[3]) if window[2] else None


class RateLimitedLog:
    """A logger for events a crowd of clients can cause (disconnects, malformed requests):
    at most `burst` lines per `interval` seconds, then one line "N more <what> in the last
    <interval> s" for the rest.

        disconnects = RateLimitedLog(log, what="client disconnects")
        disconnects.info("upload of %s abandoned", image_id)
    """

    def __init__(self, logger: logging.Logger, *, what: str, burst: int = 3,
                 interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what
        self.limiter = RateLimiter(self._summary, burst=burst, interval=interval, clock=clock)

    def log(self, level: int, msg: str, *args: object, **kwargs: object) -> bool:
        """Log unless over the rate; True if it was logged."""
        if not self.logger.isEnabledFor(level):
            return False
        if not self.limiter.allow(None, level):
            return False
        self.logger.log(level, msg, *args, **kwargs)  # type: ignore[arg-type]
        return True

    def info(self, msg: str, *args: object, **kwargs: object) -> bool:
        return self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: str, *args: object, **kwargs: object) -> bool:
        return self.log(logging.WARNING, msg, *args, **kwargs)

    def _summary(self, _key: object, count: int, level: int) -> None:
        interval = self.limiter.interval
        self.logger.log(level, "%d more %s in the last %s s", count, self.what,
                        f"{interval:g}", extra={SUMMARY_ATTR: True,
                                                "fields": {"suppressed": count}})


class RateLimitFilter(logging.Filter):
    """A filter for another library's logger: each message (its format string) passes at
    most `burst` times per `interval` seconds; the rest are counted and summarised in one
    record "N more '<message>' messages in the last <interval> s"."""

    def __init__(self, *, burst: int = 3, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.limiter = RateLimiter(self._summary, burst=burst, interval=interval, clock=clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY_ATTR, False):
            return True
        return self.limiter.allow((record.name, str(record.msg)), record.levelno)

    def _summary(self, key: object, count: int, level: int) -> None:
        name, msg = cast("tuple[str, str]", key)
        logging.getLogger(name).log(
            level, "%d more '%s' messages in the last %s s", count, msg,
            f"{self.limiter.interval:g}", extra={SUMMARY_ATTR: True,
                                                 "fields": {"suppressed": count}})
