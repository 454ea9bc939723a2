"""Zero-value prediction's activity control on the real RTL (Icarus, waveform): on random IFMAPs, where
every window switches alike, a predicted output saves in the MAC datapath what a compressed one saves,
and the report says where the rest of the design differs."""
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


def test_predicted_shares_reach_their_targets(control):
    off, *on = control["rows"]
    assert off["predicted_share"] == 0 and off["zp_max"] is None
    shares = [r["predicted_share"] for r in on]
    assert shares == sorted(shares)
    for target, share in zip(prediction.CONTROL_SHARES, shares):
        assert target <= share < target + 0.15, (target, share)


def test_mac_toggles_fall_with_the_computed_share(control):
    """MAC toggles per computed output stay what they are with prediction off: the MAC datapath's ratio
    equals the share of outputs still computed, as it does with C in the sweep."""
    for r in control["rows"][1:]:
        computed = 1 - r["skipped_share"]
        assert abs(r["toggles_mac_ratio"] / computed - 1) <= 0.06, (r["mode"], r["toggles_mac_ratio"], computed)


def test_whole_design_toggles_fall_at_large_shares_and_never_rise_far(control):
    rows = control["rows"][1:]
    totals = [r["toggles_total_ratio"] for r in rows]
    assert totals == sorted(totals, reverse=True), totals
    assert totals[-1] < 0.5, totals  # 3/4 predicted
    assert totals[0] < 1.1, totals  # 1/4 predicted: the anchor order costs about what the skip saves


def test_report_names_the_busiest_submodules(control):
    text = "\n".join(control_markdown(control, slope=0.9, mac_slope=1.0))
    assert "Activity control (icarus)" in text and "`ifmap`" in text
    assert text.count("GRID2, ZP_MAX = ") == len(prediction.CONTROL_SHARES)


def test_toggle_slope_from_sweep_fits_both_parts():
    rows = [{"C": c, "toggles_mac": 100 * (1 - c), "toggles_rest": 100 * (1 - 0.5 * c)} for c in (0.0, 0.4, 0.8)]
    assert prediction.toggle_slope_from_sweep(rows, "mac") == pytest.approx(1.0)
    assert prediction.toggle_slope_from_sweep(rows) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="'total' or 'mac'"):
        prediction.toggle_slope_from_sweep(rows, "ifmap")
