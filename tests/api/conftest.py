"""Fixtures the server API tests share: a public flavor and an active image, straight in the
database (tests/api/servers_helpers.py)."""

from __future__ import annotations

import pytest

from tests.api.servers_helpers import add_flavor, add_image


@pytest.fixture
def flavor(cloud) -> str:
    return add_flavor(cloud)


@pytest.fixture
def image(cloud) -> str:
    return add_image(cloud)
