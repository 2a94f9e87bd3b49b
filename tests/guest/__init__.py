"""Tests of the guest side: cirrus-guest-init in network namespaces, the test guest on QEMU."""

from __future__ import annotations

from tests.services import missing as skip_or_fail

__all__ = ["skip_or_fail"]
