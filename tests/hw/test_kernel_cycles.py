"""model.hw.cycles for one start of velcro_krnl: the image load, the frames, the counters written back.

`kernel_run_cycles_of_stages` is KERNEL_LOAD_CYCLES + 2L, the frames' span (first IFMAP beat to last
OFMAP beat), KERNEL_SAVE_CYCLES + 2L. Here the span comes from the instance's public functions
(`isolated_latency`, `back_to_back_gaps`, `frame_latency`, `frame_interval`) rather than the model's
recurrence, so the two formulations check each other; the simulated kernel is checked against it in
tests/sim/test_krnl_cocotb.py::test_host_job.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from model.hw import cycles, golden, spec
from model.hw.spec import KERNEL_LOAD_CYCLES, KERNEL_SAVE_CYCLES, H, W

FIXED = KERNEL_LOAD_CYCLES + KERNEL_SAVE_CYCLES  # 1,210 cycles of every start, and 4 memory latencies


def test_the_fixed_costs():
    assert KERNEL_LOAD_CYCLES == spec.IMAGE_LOADED_WORDS + 15 == 1181 and KERNEL_SAVE_CYCLES == 29 and FIXED == 1210


def with_computed(c: int, **changes) -> golden.ConvConfig:
    """A configuration that computes exactly `c` outputs per frame (prediction off)."""
    cfg = golden.random_config(np.random.default_rng(c), 0.0)
    return dataclasses.replace(cfg, mask=np.arange(H * W).reshape(H, W) >= c, **changes)


@pytest.mark.parametrize("latency", [0, 1, 20, 64])
def test_a_run_is_load_frames_save_for_any_frames(latency):
    """Prediction on and off, frames of different cycles: load + 2L, the first frame's isolated latency and
    every gap between frame ends, save + 2L."""
    rng = np.random.default_rng(latency)
    zp = dataclasses.replace(golden.random_config(rng, 0.3), zp_en=True, zp_pattern=golden.ZP_CHECKER, zp_max=60)
    dark = rng.integers(0, 256, (5, H, W), dtype=np.uint8)
    dark[:, rng.integers(0, 64) :, :] = 0
    dark[1] = 0
    for cfg in (zp, with_computed(1000), with_computed(3000)):
        for n in range(1, 6):
            frames = list(dark[:n])
            span = cycles.isolated_latency(cfg, frames[0]) + sum(cycles.back_to_back_gaps(cfg, frames))
            expected = FIXED + 4 * latency + span
            assert cycles.kernel_run_cycles(cfg, frames, latency) == expected, (n, latency)
            stages = [cycles.frame_stage_cycles(cfg, f) for f in frames]
            assert cycles.kernel_run_cycles_of_stages(stages, latency) == expected


def test_prediction_off_runs_are_latency_plus_intervals():
    """n frames of c computed outputs: 1210 + 4L + frame_latency(c) + (n - 1) · frame_interval(c), over
    every c and n = 1..8, except at c = 509, where the compute stage takes exactly the 512 cycles of a
    load: an IFMAP slot is free only the cycle after the frame two back has issued its last output, so
    every second frame's load starts a cycle late, the gaps alternate 512, 513 and the steady state is
    512.5 cycles per frame, not frame_interval(509) = 512."""
    off = {}
    for c in range(spec.N_OUTPUTS + 1):
        stage = cycles.compute_stage_cycles(c)
        for n in range(1, 9):
            got = cycles.kernel_run_cycles_of_stages([stage] * n, 64)
            formula = FIXED + 4 * 64 + cycles.frame_latency(c) + (n - 1) * cycles.frame_interval(c)
            if got != formula:
                off[c, n] = got - formula
    assert off == {(509, n): (n - 1) // 2 for n in range(3, 9)}
    assert cycles.compute_stage_cycles(509) == spec.BEATS_PER_FRAME
    assert cycles.back_to_back_gaps(with_computed(509), [np.zeros((H, W), np.uint8)] * 6) == [512, 513] * 2 + [512]


def test_runs_without_frames_or_with_a_negative_latency_are_refused():
    with pytest.raises(ValueError, match="a start without frames has its own cost"):
        cycles.kernel_run_cycles_of_stages([], 64)
    with pytest.raises(ValueError, match="a start without frames"):
        cycles.kernel_run_cycles(with_computed(10), np.zeros((0, H, W), np.uint8), 64)
    with pytest.raises(ValueError, match="memory latency must be >= 0 cycles, got -1"):
        cycles.kernel_run_cycles_of_stages([600], -1)
