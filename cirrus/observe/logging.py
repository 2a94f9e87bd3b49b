"""Structured JSON logs that carry the request id and never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback

from cirrus.context import current_request_id

# Values of these keys are replaced in log messages, whatever the caller passed.
_SECRET_RE = re.compile(
    r"""(?i)(["']?(?:password|passwd|secret|token|x-auth-token|x-subject-token|admin_pass|adminPass)["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,}]+)"""
)


def redact(text: str) -> str:
    return _SECRET_RE.sub(r"\1***", text)


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
            "thread": record.threadName,
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "message": redact(record.getMessage()),
        }
        extra = getattr(record, "fields", None)
        if extra:
            entry.update({k: v for k, v in extra.items() if k not in entry})
        if record.exc_info:
            entry["traceback"] = redact("".join(traceback.format_exception(*record.exc_info)))
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


def set_log_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
