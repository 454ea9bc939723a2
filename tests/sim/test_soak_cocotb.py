"""The soak of velcro_top (sim/benches/tb_soak.py) on Verilator: a short run with every kind of
disturbance, and proof that it fails when it should (a corrupted expected frame, a lane that never
gets m_axis_tready). `make soak` runs the long version (sim/flows/soak.py)."""
from __future__ import annotations

import json

import pytest

from sim.benches.tb_soak import DISTURBANCE_WEIGHTS, PLANTED_LANE
from sim.flows.soak import bench_env
from sim.harness.runner import run_bench

CI_FRAMES = 512
CI_RATE = 0.1  # about 50 disturbances in 512 frames; the bench draws every kind first
CI_WALK_WORDS = 64  # the address walk of each bus sweep (the long soak covers the whole space)
PLANT_FRAMES = 64
CI_SEED = 3


def soak(sim_build_root, name: str, frames: int, rate: float, plant: str | None = None) -> tuple[int, dict]:
    """Run the soak bench; (failed tests, statistics). The build is the one tests/sim/test_top_cocotb.py
    uses on this worker (16 instances take minutes to build)."""
    build = sim_build_root / "top-verilator"
    stats_path = sim_build_root / f"soak-{name}.json"
    stats_path.unlink(missing_ok=True)
    env = bench_env(frames, rate, seed=CI_SEED, stats=stats_path, walk_words=CI_WALK_WORDS)
    if plant:
        env["VELCRO_SOAK_PLANT"] = plant
    tests, failed = run_bench("verilator", "velcro_top", "sim.benches.tb_soak", build, testcase="test_soak", env=env)
    assert tests == 1, f"the soak bench ran {tests} tests"
    return failed, json.loads(stats_path.read_text())


def test_soak_with_every_disturbance(sim_build_root):
    failed, s = soak(sim_build_root, "ci", CI_FRAMES, CI_RATE)
    replay = f'replay: make soak SOAK_ARGS="--frames {CI_FRAMES} --rate {CI_RATE} --seed {CI_SEED} --walk-words {CI_WALK_WORDS}"'
    assert not failed and s["done"], f"soak failed: {s['failure_log'][:3]}; {replay}"
    assert s["frames"] >= CI_FRAMES and s["frames_exact"] >= 0.8 * s["frames"], s
    assert set(s["disturbances"]) == set(DISTURBANCE_WEIGHTS), f"disturbances by kind: {s['disturbances']}"
    assert s["disturbances_verified"] == sum(s["disturbances"].values()), "every disturbance followed by an exact frame"
    assert s["wrong_frames"] == s["hangs"] == s["failures"] == 0
    assert s["counter_checks"] >= 0.8 * s["frames_exact"], "counters read after most exact frames"
    assert s["zp_frames"] and s["predicted_outputs"] and s["compressed_outputs"], "prediction and compression exercised"


@pytest.mark.parametrize("plant", ["wrong_frame", "stuck_lane"])
def test_soak_detects_planted_failure(sim_build_root, plant):
    """A corrupted expected frame is one wrong frame; a lane whose output is never taken is a hang that names it."""
    failed, s = soak(sim_build_root, plant, PLANT_FRAMES, 0.0, plant=plant)
    assert failed == 1, f"the soak passed with a planted {plant}"
    first = s["failure_log"][0]
    if plant == "wrong_frame":
        assert (s["wrong_frames"], s["hangs"], s["done"]) == (1, 0, True), s
        assert first["kind"] == "wrong_frame" and "outputs differ" in first["message"], first
    else:
        assert s["hangs"] == 1 and not s["done"], s
        assert first["kind"] == "hang" and first["message"].startswith(f"lane {PLANTED_LANE} hangs"), first
        assert "held low by the plant" in first["message"], first
