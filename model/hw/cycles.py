"""Cycle model of the `velcro_conv2d` micro-architecture (the timing contract of rtl/README.md).

A frame passes three stages that run concurrently on consecutive frames:

* load:    512 input beats into one of two IFMAP slots;
* compute: the scanner starts once the slot is full, issues its first output STARTUP cycles later
           and then the c computed outputs on c consecutive cycles (a frame with c = 0 still
           closes STARTUP cycles after its start); the next frame may start in the cycle of the
           last issue, so the stage takes max(c, 1) + STARTUP - 1 cycles per frame;
* drain:   the last result reaches the OFMAP buffer PIPELINE cycles after its issue, the drain
           starts on the next cycle and the output FIFO shows the first beat OUTPUT_LATENCY
           cycles after the drain starts; 512 beats follow.

Isolated frame (input always valid, output always ready), counted as LAST_CYCLES is, from the
handshake of the first input beat to that of the last output beat:

    latency(c)  = 511 + 1 + STARTUP + max(c, 1) - 1 + PIPELINE + 1 + OUTPUT_LATENCY + 511

Back-to-back frames: each stage has its own buffers (two IFMAP slots, three OFMAP slots), so the
steady-state interval is the slowest stage:

    interval(c) = max(512, max(c, 1) + STARTUP - 1) = max(512, max(c, 1) + 3)

The latencies are the contract's (`model.hw.spec`), the same constants the RTL components are
built with and their unit tests measure; the benches compare simulation against these formulas.

Zero-value prediction (CONTROL.ZP_EN = 1) makes the compute stage data-dependent. Phase A issues
the a uncompressed anchors; ZP_HOT_WAIT = PIPELINE cycles after the last of them its result is in
the hot flags and the dilate pass starts; ZP_DILATE_CYCLES later phase B starts and issues the b
outputs next to a hot anchor:

    zp_stage(a, b) = STARTUP + max(a, 1) - 1 + ZP_HOT_WAIT + ZP_DILATE_CYCLES + STARTUP + max(b, 1) - 1

cycles from the frame's start to its last issue (when the next frame may start), a fixed overhead
of ZP_HOT_WAIT + ZP_DILATE_CYCLES + STARTUP over max(c, 1) + 3 once a, b >= 1.
`isolated_latency` and `back_to_back_gaps` take the frames themselves (the golden model gives a and
b) and cover both modes; with prediction off they reduce to `frame_latency` and `frame_interval`.
Back-to-back frames follow a per-frame recurrence over the three stages (`back_to_back_gaps`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model.hw import golden
from model.hw.spec import BEATS_PER_FRAME, COMPUTE_PIPELINE, MASK_SCAN_STARTUP, N_OUTPUTS
from model.hw.spec import OUTPUT_LATENCY as OUTPUT_LATENCY  # re-exported with the two below
from model.hw.spec import KERNEL_LOAD_CYCLES, KERNEL_SAVE_CYCLES, ZP_DILATE_CYCLES, ZP_HOT_WAIT

IFMAP_SLOTS = 2  # load stage buffers
OFMAP_SLOTS = 3  # compute/drain stage buffers

STARTUP = MASK_SCAN_STARTUP  # start pulse -> first issued index
PIPELINE = COMPUTE_PIPELINE  # issue -> OFMAP buffer write: window read + MAC/requant


def compute_stage_cycles(computed: int) -> int:
    """Cycles from a frame's compute start to its last issue, when the next frame may start."""
    _check(computed)
    return STARTUP + max(computed, 1) - 1


def frame_latency(computed: int) -> int:
    """LAST_CYCLES of an isolated frame with `computed` outputs and no stalls."""
    _check(computed)
    return (
        BEATS_PER_FRAME  # input beats 0..511, the slot is full the cycle after the last
        + STARTUP
        + max(computed, 1)
        - 1  # the last index issues on the last compute cycle
        + PIPELINE
        + 1  # the drain sees the finished slot one cycle after the last write
        + OUTPUT_LATENCY
        + BEATS_PER_FRAME
        - 1  # beats 0..511 of the output
    )


def frame_interval(computed: int) -> int:
    """Steady-state cycles per frame for back-to-back frames with no stalls."""
    _check(computed)
    return max(BEATS_PER_FRAME, compute_stage_cycles(computed))


def _check(computed: int) -> None:
    if not 0 <= computed <= N_OUTPUTS:
        raise ValueError(f"computed outputs must lie in [0, {N_OUTPUTS}], got {computed}")


# ---------------------------------------------------------------- data-dependent (prediction on or off)
def zp_stage_cycles(anchors: int, others: int) -> int:
    """Compute-stage cycles of a prediction frame: `anchors` issued in phase A, `others` in phase B."""
    return compute_stage_cycles(anchors) + ZP_HOT_WAIT + ZP_DILATE_CYCLES + compute_stage_cycles(others)


def frame_stage_cycles(cfg: golden.ConvConfig, ifmap: np.ndarray) -> int:
    """Compute-stage cycles of one frame (start to its last issue, the next frame's earliest start)."""
    if not cfg.zp_en:
        return compute_stage_cycles(cfg.computed_outputs)
    result = golden.frame_result(ifmap, cfg)
    anchors = int((result.anchors & ~result.compressed).sum())
    return zp_stage_cycles(anchors, result.computed_outputs - anchors)


def isolated_latency(cfg: golden.ConvConfig, ifmap: np.ndarray) -> int:
    """LAST_CYCLES of an isolated frame with no stalls; `frame_latency(computed)` with prediction off.

    Assumes no ZP_MAX write in the 512 cycles before the frame's input is complete (that write
    rereads the averages and holds the compute stage until it is done).
    """
    first, last = _frame_times([frame_stage_cycles(cfg, ifmap)])[0]
    return last - first


def back_to_back_gaps(cfg: golden.ConvConfig, ifmaps: Sequence[np.ndarray]) -> list[int]:
    """Cycles between consecutive frames' last OFMAP handshakes, frames sent back to back, no stalls.

    With prediction off every gap after the pipeline fill equals `frame_interval(computed)`.
    """
    lasts = [last for _, last in _frame_times([frame_stage_cycles(cfg, f) for f in ifmaps])]
    return [b - a for a, b in zip(lasts, lasts[1:])]


# ---------------------------------------------------------------- one start of the Alveo kernel
def kernel_run_cycles(cfg: golden.ConvConfig, ifmaps: Sequence[np.ndarray], latency: int) -> int:
    """Cycles from a `velcro_krnl` start's ap_start handshake to its ap_done: the image load, `ifmaps`
    as frames fed by a memory of `latency` cycles without pauses, the counters written back."""
    return kernel_run_cycles_of_stages([frame_stage_cycles(cfg, f) for f in ifmaps], latency)


def kernel_run_cycles_of_stages(stages: Sequence[int], latency: int) -> int:
    """`kernel_run_cycles` of frames with these compute-stage cycles (`frame_stage_cycles`)."""
    if not stages:
        raise ValueError("a start without frames has its own cost (rtl/README.md, section 9); give one frame or more")
    if latency < 0:
        raise ValueError(f"memory latency must be >= 0 cycles, got {latency}")
    frames = _frame_times(stages)[-1][1]  # first IFMAP beat -> last OFMAP beat
    return KERNEL_LOAD_CYCLES + 2 * latency + frames + KERNEL_SAVE_CYCLES + 2 * latency


def _frame_times(stages: Sequence[int]) -> list[tuple[int, int]]:
    """(first input handshake, last output handshake) of each frame, by a per-frame recurrence.

    Frame n loads into IFMAP slot n mod 2 once frame n-2 has left it, computes once it is loaded,
    frame n-1 has issued its last output and OFMAP slot n mod 3 is drained, and drains PIPELINE + 1
    cycles after its last issue, behind frame n-1's drain. Times are cycles; input from cycle 0 on.
    """
    load, end, drain, times = [], [], [], []  # first input beat, last issue, first drain read
    for n, stage in enumerate(stages):
        first = 0 if n == 0 else load[n - 1] + BEATS_PER_FRAME
        if n >= IFMAP_SLOTS:
            first = max(first, end[n - IFMAP_SLOTS] + 1)
        start = first + BEATS_PER_FRAME
        if n >= 1:
            start = max(start, end[n - 1])
        if n >= OFMAP_SLOTS:
            start = max(start, drain[n - OFMAP_SLOTS] + BEATS_PER_FRAME)
        load.append(first)
        end.append(start + stage)
        read = end[n] + PIPELINE + 1
        if n >= 1:
            read = max(read, drain[n - 1] + BEATS_PER_FRAME)
        drain.append(read)
        times.append((first, read + OUTPUT_LATENCY + BEATS_PER_FRAME - 1))
    return times
