"""Structured JSON logs that carry the request id and never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback

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
    loggers = {
        name: logging.getLevelName(lg.level)
        for name, lg in sorted(manager.loggerDict.items())
        if isinstance(lg, logging.Logger) and lg.level != logging.NOTSET
    }
    return {"level": logging.getLevelName(logging.getLogger().level), "loggers": loggers}


# Every role process subscribes to this fanout topic, so one admin request changes the log
# level of all of them (cirrus.api.admin sends it).
ADMIN_TOPIC = "cirrus-admin"


def on_set_log_level(ctx: object, payload: dict) -> dict:
    """Bus handler of `set_log_level` {"level", "logger"?}."""
    logger = payload.get("logger") or None
    level = set_log_level(payload["level"], logger)
    logging.getLogger(__name__).warning(
        "log level of %s set to %s", logger or "the root logger", level,
        extra={"fields": {"log_level": level, "target_logger": logger or "root"}})
    return log_levels()
