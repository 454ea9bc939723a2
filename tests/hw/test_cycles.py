"""model.hw.cycles: the data-dependent functions reduce to the fixed formulas with prediction off, the
prediction stage is the documented formula, and the back-to-back recurrence has the documented
steady state and bounds. (The RTL is checked against the model in tests/rtl and the cocotb benches.)"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from model.hw import cycles, golden, spec
from model.hw.spec import H, W


def config(density: float, *, zp: bool = False, pattern: int = spec.ZP_GRID2, zp_max: int = 0, seed: int = 0):
    cfg = golden.random_config(np.random.default_rng(seed), density)
    return dataclasses.replace(cfg, zp_en=zp, zp_pattern=pattern, zp_max=zp_max)


@pytest.mark.parametrize("density", [0.0, 0.3, 0.9, 1.0])
def test_prediction_off_is_the_fixed_formula(density):
    cfg = config(density)
    frames = [np.random.default_rng(k).integers(0, 256, (H, W), dtype=np.uint8) for k in range(6)]
    c = cfg.computed_outputs
    # the documented formula: input beats, scanner start-up, the pipeline, the drain's start, output beats
    latency = 512 + spec.MASK_SCAN_STARTUP + max(c, 1) - 1 + spec.COMPUTE_PIPELINE + 1 + spec.OUTPUT_LATENCY + 511
    assert cycles.isolated_latency(cfg, frames[0]) == cycles.frame_latency(c) == latency
    gaps = cycles.back_to_back_gaps(cfg, frames)
    assert len(gaps) == len(frames) - 1
    assert gaps[2:] == [cycles.frame_interval(c)] * (len(gaps) - 2)
    assert cycles.frame_interval(c) == max(512, max(c, 1) + 3)


def test_prediction_stage_formula():
    fixed = 2 * spec.MASK_SCAN_STARTUP - 2 + spec.ZP_HOT_WAIT + spec.ZP_DILATE_CYCLES
    for a, b in [(0, 0), (1, 0), (1024, 0), (1024, 13), (1024, 14), (1024, 3072), (2048, 2048)]:
        assert cycles.zp_stage_cycles(a, b) == max(a, 1) + max(b, 1) + fixed
        overhead = cycles.zp_stage_cycles(a, b) - (max(a + b, 1) + 3)
        assert overhead == spec.ZP_OVERHEAD + (a == 0 or b == 0) and overhead <= spec.ZP_OVERHEAD_LIMIT
    assert cycles.zp_stage_cycles(1000, 500) == 1500 + fixed


@pytest.mark.parametrize("pattern", [spec.ZP_GRID2, spec.ZP_CHECKER])
@pytest.mark.parametrize("zp_max", [0, 100, 255])
def test_prediction_latency_and_gaps_follow_the_stage(pattern, zp_max):
    cfg = config(0.3, zp=True, pattern=pattern, zp_max=zp_max, seed=3)
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 256, (H, W), dtype=np.uint8) for _ in range(3)] + [np.zeros((H, W), np.uint8)] * 3
    for frame in frames[:4]:
        result = golden.frame_result(frame, cfg)
        a = int((result.anchors & ~result.compressed).sum())
        stage = cycles.zp_stage_cycles(a, result.computed_outputs - a)
        assert cycles.isolated_latency(cfg, frame) == 512 + stage + cycles.PIPELINE + 1 + cycles.OUTPUT_LATENCY + 511
    gaps = cycles.back_to_back_gaps(cfg, frames)
    for gap, frame in zip(gaps, frames[1:]):
        c = golden.frame_result(frame, cfg).computed_outputs
        assert gap <= max(512, c + 3) + spec.ZP_OVERHEAD + 1
    steady = cycles.zp_stage_cycles(*_phases(cfg, frames[-1]))
    assert gaps[-1] == max(512, steady)


def _phases(cfg, frame):
    result = golden.frame_result(frame, cfg)
    a = int((result.anchors & ~result.compressed).sum())
    return a, result.computed_outputs - a
