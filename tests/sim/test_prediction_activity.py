"""Zero-value prediction's activity control on the real RTL (Icarus, waveform): on random IFMAPs, where
every window switches alike, a predicted output saves what a compressed one saves, in the MAC datapath
and, past the fixed cost of the anchors-first order, in the whole design."""
from __future__ import annotations

import pytest

from model.hw.energy import EnergyTable
from sim.flows import prediction
from sim.reporting.prediction import control_markdown


@pytest.fixture(scope="module")
def control(sim_build_root):
    """run_activity_control itself fails if a gap differs from the cycle model or the waveform's events
    from the energy model."""
    return prediction.run_activity_control("icarus", EnergyTable.load(), 300.0, build_root=sim_build_root, images=2)


def prediction_rows(control):
    return control["rows"][control["order_row"] + 1 :]


def test_runs_are_what_they_say(control):
    off, compressed, order = (control["rows"][i] for i in (0, control["compression_row"], control["order_row"]))
    assert off["predicted_share"] == 0 and off["zp_max"] is None and off["skipped_share"] == 0
    assert compressed["predicted_share"] == 0 and abs(compressed["skipped_share"] - prediction.CONTROL_C) < 0.05
    assert order["zp_max"] == 0 and order["predicted_share"] < 0.01
    shares = [r["predicted_share"] for r in prediction_rows(control)]
    assert shares == sorted(shares)
    for target, share in zip(prediction.CONTROL_SHARES, shares, strict=True):
        assert target <= share < target + 0.15, (target, share)


def test_mac_toggles_fall_with_the_computed_share(control):
    """MAC toggles per computed output stay what they are with nothing skipped, compressed or predicted."""
    for r in control["rows"][1:]:
        computed = 1 - r["skipped_share"]
        assert abs(r["toggles_mac_ratio"] / computed - 1) <= 0.06, (r["mode"], r["toggles_mac_ratio"], computed)


def test_whole_design_toggles_fall_with_the_predicted_share_like_with_c(control):
    """Past the anchors-first order's fixed cost (the ZP_MAX = 0 run), each predicted output saves at least
    what a compressed output saves in the same run; and the cost is bounded, so that from 1/4 predicted
    on, prediction already switches less than no prediction at all."""
    order = control["rows"][control["order_row"]]
    assert 1.0 <= order["toggles_total_ratio"] <= 1.2, order["toggles_total_ratio"]
    a = control["c_slope"]
    assert 0.5 <= a <= 1.0, a  # compression saves most of a compressed output's toggles
    for r in prediction_rows(control):
        c_line = 1 - a * r["predicted_share"]
        assert r["toggles_vs_order"] <= c_line + 0.03, (r["mode"], r["toggles_vs_order"], c_line)
        assert r["toggles_total_ratio"] < 1.0, (r["mode"], r["toggles_total_ratio"])


def test_report_names_the_busiest_submodules(control):
    text = "\n".join(control_markdown(control))
    assert "Activity control (icarus)" in text and "`ifmap`" in text
    assert text.count("GRID2, ZP_MAX = ") == len(prediction.CONTROL_SHARES) + 1


def test_toggle_slope_from_sweep_fits_the_whole_design():
    rows = [{"C": c, "toggles_mac": 100 * (1 - c), "toggles_rest": 100 * (1 - 0.5 * c)} for c in (0.0, 0.4, 0.8)]
    assert prediction.toggle_slope_from_sweep(rows) == pytest.approx(0.75)
    assert prediction.toggle_slope_from_sweep(rows[1:]) is None  # no C = 0 point to divide by
