"""`make benchmark`'s flow (sim/flows/scheduling.py) on a few images: the short CI variant of the
1,000-image run. Every plan covers the layer, the simulated runs take the cycle model's cycles (the
flow raises otherwise), the fully simulated row's hardware path equals the int8 golden path, and the
report and the timeline plot are written."""
from __future__ import annotations

import json

import pytest

from sim.flows import scheduling

IMAGES = 12


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory, sim_build_root):
    out = tmp_path_factory.mktemp("benchmark")
    work = sim_build_root / "benchmark-verilator"
    assert scheduling.main(["--images", str(IMAGES), "--work", str(work), "--out", str(out)]) == 0
    return out, json.loads((out / "scheduling.json").read_text())


def test_every_mode_and_plan_is_reported(benchmark):
    out, rep = benchmark
    assert [r["mode"] for r in rep["rows"]][: len(scheduling.MODES)] == [m[0] for m in scheduling.MODES]
    for row in rep["rows"]:
        assert set(row["plans"]) == set(scheduling.schedule.PLANS)
        for plan in row["plans"].values():
            assert plan["timeline"] == "cycle model" and plan["makespan_cycles_per_image"] > 0
            covered = sum(j["images"] for j in plan["jobs"])
            assert covered == IMAGES * (16 - len(plan["constant_channels"]))
        assert row["simulated"]["cycles_equal_model"]
    assert "| VELCRO alone |" in (out / "scheduling.md").read_text()
    assert (out / "schedule_timeline.png").stat().st_size > 0


def test_the_whole_row_is_bit_exact_and_split_beats_fixed(benchmark):
    _, rep = benchmark
    whole = [r for r in rep["rows"] if r["simulated"]["plan"] == "split"]
    assert len(whole) == 1 and whole[0]["mode"] == "VELCRO alone"
    assert whole[0]["accuracy"]["rtl"] == whole[0]["accuracy"]["int8_golden"]
    assert whole[0]["simulated"]["frames"] == IMAGES * (16 - len(whole[0]["plans"]["split"]["constant_channels"]))
    plans = whole[0]["plans"]
    assert plans["split"]["speedup"] >= plans["fixed"]["speedup"]
