"""The declared microversion gates of cirrus.api.compute.microversion."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cirrus.api.compute.microversion import Since, by_version, fields_since, min_version
from cirrus.errors import NotFound


@dataclass
class Req:
    microversion: tuple[int, int]


def test_since_starts_at_its_version_and_ends_after_until() -> None:
    assert not Since("2.10")(Req((2, 9)))
    assert Since("2.10")(Req((2, 10)))
    assert Since("2.10")(Req((2, 60)))
    personality = Since("2.1", until="2.56")
    assert personality(Req((2, 56)))
    assert not personality(Req((2, 57)))


def test_by_version_picks_the_declared_range() -> None:
    status = by_version({("2.1", "2.1"): 200, ("2.2", None): 201})
    assert status(Req((2, 1))) == 200
    assert status(Req((2, 2))) == 201
    assert status(Req((2, 60))) == 201
    with pytest.raises(LookupError):
        by_version({("2.5", None): 1})(Req((2, 4)))


def test_fields_since_adds_fields_in_table_order() -> None:
    table = {"2.9": {"locked": lambda o: o["locked"]}, "2.19": {"description": lambda o: "d"}}
    obj = {"locked": True}
    assert fields_since(Req((2, 8)), table, obj) == {}
    assert fields_since(Req((2, 9)), table, obj) == {"locked": True}
    assert list(fields_since(Req((2, 19)), table, obj)) == ["locked", "description"]


def test_min_version_hides_the_handler_before_its_version() -> None:
    @min_version("2.53")
    def handler(req: Req, ident: str) -> str:
        return ident

    assert handler(Req((2, 53)), "x") == "x"
    with pytest.raises(NotFound):
        handler(Req((2, 52)), "x")
