"""The C sweep's measurement chain on the real RTL: waveform events and toggles, energy proxy, report."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model.hw.energy import EnergyTable, frame_events
from model.hw.golden import H, W
from sim.reporting import summary
from sim.flows.sweep import SweepSettings, instance_configs, run_sweep


@pytest.fixture(scope="module")
def two_point_sweep(sim_build_root):
    """One instance on Icarus at C = 0 and C = 0.5 with VELCRO masks; point_activity itself
    fails if the waveform's event counts differ from the micro-architecture's event model."""
    return run_sweep(SweepSettings(sim="icarus", build_root=sim_build_root), points=(0.0, 0.5), with_top=False)


def test_sweep_meets_the_papers_shape(two_point_sweep):
    base, half = two_point_sweep["rows"]
    assert half["C"] == pytest.approx(0.5, abs=1 / 4096)
    assert base["instance_interval"] / half["instance_interval"] >= 0.97 / (1 - half["C"])
    mac_ratio = half["toggles_mac"] / base["toggles_mac"]
    assert abs(mac_ratio / (1 - half["C"]) - 1) <= 0.10, f"MAC toggles scale {mac_ratio}, not 1-C"
    total = (half["toggles_mac"] + half["toggles_rest"]) / (base["toggles_mac"] + base["toggles_rest"])
    assert total <= 0.7, f"whole-design toggles at C=0.5 are {total:.2f} of C=0"
    saving = 1 - half["energy_pj"]["total"] / base["energy_pj"]["total"]
    assert saving >= 0.85 * half["C"]


def test_reports_are_written(two_point_sweep, tmp_path):
    summary.write_reports(tmp_path, two_point_sweep, ["extra section"])
    text = (tmp_path / "summary.md").read_text()
    assert "Throughput, energy and toggles vs C" in text and "extra section" in text
    for png in ("throughput_vs_c.png", "energy_vs_c.png", "toggles_vs_c.png"):
        assert (tmp_path / png).stat().st_size > 10_000
    # The table carries the measured rows, and the fit is over (C, energy) of those rows: with two points
    # its R² is 1 whatever they are, so check the line itself.
    rows = json.loads((tmp_path / "sweep.json").read_text())["rows"]
    assert [r["instance_interval"] for r in rows] == [r["instance_interval"] for r in two_point_sweep["rows"]]
    for r in rows:
        assert f"| {r['C']:.4f} | {r['computed']} | {r['instance_interval']} | {r['model_interval']} " in text
    (c0, e0), (c1, e1) = [(r["C"], r["energy_pj"]["total"]) for r in rows]
    fit = two_point_sweep["derived"]["energy_fit"]
    assert fit["slope_pj"] == pytest.approx((e1 - e0) / (c1 - c0))
    assert fit["intercept_pj"] == pytest.approx(e0 - c0 * fit["slope_pj"])
    assert rows[1]["energy_saving"] == pytest.approx(1 - e1 / e0)


def test_linear_fit_recovers_a_line():
    slope, intercept, r2 = summary.linear_fit([0, 1, 2, 3], [1, 3, 5, 7.5])
    assert slope == pytest.approx(2.15, abs=0.01) and 0.99 < r2 < 1


def test_sweep_masks_are_exact_and_deterministic():
    variance = np.zeros((16, H, W))  # all ties: the lowest indices win
    for cfg in instance_configs(variance, 0.3, seed=1):
        mask = cfg.mask
        assert mask.sum() == int(0.3 * H * W)
        assert mask.reshape(-1)[: mask.sum()].all()


def test_frame_events_of_an_empty_and_a_full_mask():
    none = frame_events(np.zeros((H, W), bool))
    assert none["mac"] == 9 * 4096 and none["mask_read"] == 512 + 512
    everything = frame_events(np.ones((H, W), bool))
    assert everything["mac"] == 0 and everything["mask_read"] == 513  # the empty frame's marker


def test_energy_table_errors_name_the_fix(tmp_path):
    bad = tmp_path / "table.toml"
    bad.write_text("version = 1\n[events.mac]\nenergy_pj = 0.3\n")
    with pytest.raises(ValueError, match="malformed energy table"):
        EnergyTable.load(bad)
    table = EnergyTable.load()
    with pytest.raises(ValueError, match="add them to the table"):
        table.frame_energy_pj({"teleport": 1}, 100, 300.0)


@pytest.fixture(scope="module")
def prediction_chain(sim_build_root):
    """The prediction section's one-instance chain on Icarus: the four modes on the default CNN's hardware
    layer (real activations, VELCRO masks at 0.3), 3 images each; run_instance itself fails if a gap
    differs from the cycle model or the waveform's events from the energy model."""
    import dataclasses
    from types import SimpleNamespace

    from sim.flows import prediction
    from sim.harness.bench_files import read_runs
    from sim.harness.layer_data import DENSITIES, layer_file

    runs, ifmaps = read_runs(layer_file(sim_build_root))
    plain, velcro = runs[DENSITIES.index(0.0)], runs[DENSITIES.index(0.3)]
    zp = {"zp_en": True, "zp_pattern": 0, "zp_max": 0}
    modes = [plain, velcro, [dataclasses.replace(c, **zp) for c in plain], [dataclasses.replace(c, **zp) for c in velcro]]
    return prediction.run_instance("icarus", [SimpleNamespace(configs=m) for m in modes], ifmaps, EnergyTable.load(),
                                   300.0, build_root=sim_build_root, images=3)  # fmt: skip


def test_prediction_chain_toggles_fall_with_skipped_share(prediction_chain):
    rows = {r["mode"]: r for r in prediction_chain["rows"]}
    assert rows["none"]["skipped_share"] == 0 and rows["prediction"]["predicted_share"] > 0.1
    assert rows["both"]["skipped_share"] > rows["velcro"]["skipped_share"]
    for mode in ("velcro", "prediction", "both"):
        r = rows[mode]
        assert r["toggles_total_ratio"] < 1 - 0.3 * r["skipped_share"], (mode, r["toggles_total_ratio"], r["skipped_share"])
        assert r["energy_saving"] > 0.5 * r["skipped_share"], (mode, r["energy_saving"], r["skipped_share"])
    assert rows["both"]["toggles_total_ratio"] < rows["velcro"]["toggles_total_ratio"]
