"""A failed build's retry bookkeeping and the fault it ends with.

Each failed build attempt's error is kept in the instance's request_spec until the build
ends (the retry bookkeeping, as Nova's RequestSpec.retry), so that a build that fails on
every host it tried says why each attempt failed, not only why no host was left.
"""

from __future__ import annotations

import re
from typing import Any

from cirrus.db.models import Instance

BUILD_ERRORS = "build_errors"
MAX_ERROR_KEPT = 2000  # characters of one attempt's error
HIDDEN_HOST = "<host>"


def hide_hosts(text: str, hosts: list[str]) -> str:
    """`text` with the names of `hosts` replaced by HIDDEN_HOST: host names are for admins."""
    for host in sorted({h for h in hosts if h}, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", HIDDEN_HOST, text)
    return text


def _numbers(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"attempt {numbers[0]}"
    return f"attempts {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"


def attempts_fault(errors: list[dict[str, Any]], final: str | None = None,
                   final_details: str | None = None) -> tuple[str, str]:
    """(message, details) of a build that failed on every host it tried.

    The message is what members and readers see: each attempt's own error without host names
    (attempts that failed alike are named together); the details, admins' only (a 500
    fault's details are), name each attempt's host and add why no host was left (`final`).
    """
    hosts = [e.get("host") or "" for e in errors]
    grouped: dict[str, list[int]] = {}
    for number, err in enumerate(errors, start=1):
        grouped.setdefault(hide_hosts(err.get("error") or "unknown error", hosts), []).append(number)
    message = "Build failed on every host tried: " + "; ".join(
        f"{_numbers(numbers)}: {error}" for error, numbers in grouped.items())
    lines = [f"attempt {n} on {e.get('host') or 'no host'}: {e.get('error') or 'unknown error'}"
             for n, e in enumerate(errors, start=1)]
    if final_details or final:
        lines.append(f"then: {final_details or final}")
    return message, "Build failed on every host tried:\n" + "\n".join(lines)


def record_build_error(inst: Instance, host: str, error: str) -> list[dict[str, Any]]:
    """Add one failed attempt's error to the instance's retry bookkeeping; all of them."""
    spec = dict(inst.request_spec or {})
    errors = [*(spec.get(BUILD_ERRORS) or []), {"host": host, "error": error[:MAX_ERROR_KEPT]}]
    inst.request_spec = {**spec, BUILD_ERRORS: errors}
    return errors
