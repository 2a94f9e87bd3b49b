"""JSON log lines that carry the request id and never a password or token."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cirrus.context import reset_request_id, set_request_id
from cirrus.observe.logging import JsonFormatter, redact, setup_logging

SECRET = "s3cret-Value-42"


@pytest.fixture
def restore_root_logger(restore_logging: None) -> None:
    """The root logger's handlers and levels put back (tests/unit/conftest.py)."""


@pytest.fixture
def log_file(tmp_path: Path, restore_root_logger: None) -> Path:
    path = tmp_path / "cirrus.log"
    setup_logging("DEBUG", str(path), service="cirrus-test")
    return path


def lines(path: Path) -> list[dict]:
    for h in logging.getLogger().handlers:
        h.flush()
    return [json.loads(line) for line in path.read_text().splitlines()]


def record(msg: str, *args: object, exc_info: object = None, **attrs: object) -> logging.LogRecord:
    rec = logging.LogRecord("cirrus.test", logging.INFO, __file__, 1, msg, args, exc_info)
    rec.__dict__.update(attrs)
    return rec


def test_each_record_is_one_json_line_with_the_current_request_id(log_file: Path) -> None:
    token = set_request_id("req-abc")
    try:
        logging.getLogger("cirrus.compute").info("built %s", "vm-1")
    finally:
        reset_request_id(token)
    logging.getLogger("cirrus.compute").warning("no request here")
    first, second = lines(log_file)
    assert first["request_id"] == "req-abc"
    assert first["message"] == "built vm-1"
    assert first["level"] == "INFO"
    assert first["logger"] == "cirrus.compute"
    assert first["service"] == "cirrus-test"
    assert first["ts"].endswith("Z")
    assert second["request_id"] is None
    assert second["level"] == "WARNING"


def test_a_global_request_id_is_logged_beside_ours_when_there_is_one() -> None:
    token = set_request_id("req-ours", "req-callers")
    try:
        with_global = json.loads(JsonFormatter().format(record("x")))
    finally:
        reset_request_id(token)
    without = json.loads(JsonFormatter().format(record("y")))
    assert (with_global["request_id"], with_global["global_request_id"]) == ("req-ours",
                                                                              "req-callers")
    assert "global_request_id" not in without


def test_request_id_given_on_the_record_wins() -> None:
    token = set_request_id("req-context")
    try:
        out = json.loads(JsonFormatter().format(record("x", request_id="req-explicit")))
    finally:
        reset_request_id(token)
    assert out["request_id"] == "req-explicit"


def test_structured_fields_are_merged_without_overwriting_the_basics() -> None:
    out = json.loads(JsonFormatter().format(
        record("GET /x 200", fields={"status": 200, "duration_ms": 1.5, "message": "spoof"})))
    assert out["status"] == 200 and out["duration_ms"] == 1.5
    assert out["message"] == "GET /x 200"


def test_traceback_stays_on_one_line_as_a_json_field(log_file: Path) -> None:
    try:
        raise RuntimeError("driver exploded")
    except RuntimeError:
        logging.getLogger("cirrus.agent").exception("spawn failed")
    (entry,) = lines(log_file)
    assert entry["message"] == "spawn failed"
    assert "RuntimeError: driver exploded" in entry["traceback"]
    assert len(log_file.read_text().splitlines()) == 1


@pytest.mark.parametrize("message", [
    f'auth body {{"user": {{"name": "admin", "password": "{SECRET}"}}}}',
    f"password={SECRET}",
    f"admin_pass: {SECRET}",
    f'{{"adminPass": "{SECRET}"}}',
    f"X-Auth-Token: {SECRET}",
    f"x-subject-token={SECRET}",
    f'{{"token": "{SECRET}"}}',
    f"secret = '{SECRET}'",
])
def test_passwords_and_tokens_are_redacted_from_messages(message: str, log_file: Path) -> None:
    logging.getLogger("cirrus.api").info("%s", message)
    (entry,) = lines(log_file)
    assert SECRET not in entry["message"]
    assert "***" in entry["message"]


def test_secrets_in_a_traceback_are_redacted(log_file: Path) -> None:
    def authenticate(password: str) -> None:
        raise ValueError(f"login failed for password={password}")

    try:
        authenticate(SECRET)
    except ValueError:
        logging.getLogger("cirrus.identity").exception("token request failed")
    (entry,) = lines(log_file)
    assert "ValueError: login failed" in entry["traceback"]
    assert SECRET not in log_file.read_text()


def test_ordinary_text_is_not_redacted() -> None:
    text = "server vm-1 went ACTIVE on fake-2 after 0.12 s"
    assert redact(text) == text


def test_secrets_in_a_python_dict_repr_are_redacted() -> None:
    text = redact(str({"password": SECRET, "X-Auth-Token": SECRET}))
    assert SECRET not in text
