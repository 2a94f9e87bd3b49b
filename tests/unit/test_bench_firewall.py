"""The firewall benchmark's throughput figures (bench/firewall.py): each ABCCBA round gives
its ratios from its own runs, so a machine that slows down between rounds moves no ratio."""

from __future__ import annotations

import pytest

from bench.firewall import throughput_figures


def _round(bare: tuple[float, float], conntrack: tuple[float, float],
           filtered: tuple[float, float]) -> list[dict]:
    order = [("bare", bare[0]), ("conntrack", conntrack[0]), ("filtered", filtered[0]),
             ("filtered", filtered[1]), ("conntrack", conntrack[1]), ("bare", bare[1])]
    return [{"kind": kind, "gbps": gbps, "cpu": gbps / 10, "load": 1.0, "steal": 0.01}
            for kind, gbps in order]


def test_each_round_is_its_own_baseline():
    # the second round ran on a machine twice as slow: its ratios are the same
    rounds = [_round((10, 10), (9.5, 9.5), (9, 9)), _round((5, 5), (4.75, 4.75), (4.5, 4.5)),
              _round((10, 8), (9, 9), (8.1, 8.1))]
    figures = throughput_figures({"rounds": rounds, "seconds": 5})
    assert figures["filtered_ratio"]["each"] == pytest.approx([0.9, 0.9, 0.9])
    assert figures["filtered_ratio"]["median"] == pytest.approx(0.9)
    assert figures["rules_ratio"]["each"] == pytest.approx([9 / 9.5, 9 / 9.5, 0.9])
    assert figures["bare_noise"]["each"] == pytest.approx([1.0, 1.0, 0.8])
    assert (figures["bare_noise"]["min"], figures["bare_noise"]["max"]) == pytest.approx((0.8, 1.0))
    assert figures["bare_gbps"] == 9.0  # the median of the six bare runs
    assert figures["efficiency_ratio"]["each"] == pytest.approx([1.0, 1.0, 1.0])  # cpu ∝ gbps
