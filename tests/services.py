"""What a test needs from the machine (a server, a tool, root): skipped locally when it is
missing, failed instead under CIRRUS_REQUIRE_SERVICES=1, which CI sets, so CI never skips
silently. Every test that depends on the machine goes through here:

    from tests.services import missing, require

    require(shutil.which("dash") is not None, "dash is not installed")
    if problem:
        missing(f"RabbitMQ is not reachable ({problem})")
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def services_required() -> bool:
    """Whether every service and tool a test needs must be there (CI)."""
    return os.environ.get("CIRRUS_REQUIRE_SERVICES", "") not in ("", "0")


def missing(reason: str) -> NoReturn:
    """Skip the test for `reason`; fail it instead under CIRRUS_REQUIRE_SERVICES=1."""
    if services_required():
        pytest.fail(f"{reason} [CIRRUS_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(reason)


def require(condition: object, reason: str) -> None:
    """Go on if `condition` holds, else `missing(reason)`."""
    if not condition:
        missing(reason)


def require_root(what: str) -> None:
    require(os.geteuid() == 0, f"{what} need root")
