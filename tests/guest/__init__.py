"""Tests of the guest side: cirrus-guest-init in network namespaces, the test guest on QEMU."""

from __future__ import annotations

import os

import pytest


def skip_or_fail(reason: str) -> None:
    """Skip; fail instead under CIRRUS_REQUIRE_SERVICES=1 (CI), which has every tool and root."""
    if os.environ.get("CIRRUS_REQUIRE_SERVICES", "") not in ("", "0"):
        pytest.fail(f"{reason} [CIRRUS_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(reason)
