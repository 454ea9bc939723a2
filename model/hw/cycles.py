"""Cycle model of the `velcro_conv2d` micro-architecture (the timing contract of rtl/README.md).

A frame passes three stages that run concurrently on consecutive frames:

* load:    512 input beats into one of two IFMAP slots;
* compute: the mask scanner starts STARTUP cycles after the slot is full and then issues the
           c computed outputs on c consecutive cycles (a frame with c = 0 still takes one
           cycle to close), so the stage is busy max(c, 1) + STARTUP cycles per frame;
* drain:   the last result reaches the OFMAP buffer PIPELINE cycles after its issue, the drain
           starts on the next cycle and the output FIFO shows the first beat OUTPUT_LATENCY
           cycles after the drain starts; 512 beats follow.

Isolated frame (input always valid, output always ready), counted as LAST_CYCLES is, from the
handshake of the first input beat to that of the last output beat:

    latency(c)  = 511 + 1 + STARTUP + max(c, 1) - 1 + PIPELINE + 1 + OUTPUT_LATENCY + 511
                = 1034 + max(c, 1)

Back-to-back frames: each stage has its own buffers (two IFMAP slots, three OFMAP slots), so the
steady-state interval is the slowest stage:

    interval(c) = max(512, max(c, 1) + STARTUP) = max(512, max(c, 1) + 3)

The latencies are the contract's (`model.hw.spec`), the same constants the RTL components are
built with and their unit tests measure; the benches compare simulation against these formulas.

Zero-value prediction (CONTROL.ZP_EN = 1) makes the compute stage data-dependent. It runs two
scans: phase A issues the a uncompressed anchors; ZP_HOT_WAIT = PIPELINE + 1 cycles after the
last of them the hot flags are final and phase B starts, issuing the b outputs next to a hot anchor
while the predicted-zero map is written in ZP_MAP_WRITE_CYCLES cycles; the stage ends when both
are done:

    zp_stage(a, b) = STARTUP + max(a, 1) - 1 + ZP_HOT_WAIT
                     + max(STARTUP + max(b, 1) - 1, ZP_MAP_WRITE_CYCLES) + 1
                   = max(a, 1) + 10 + max(max(b, 1) + 2, 16)

so c = a + b computed outputs cost c + 12 cycles once b >= 14 (at most 25 cycles over c + 3).
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
from model.hw.spec import ZP_HOT_WAIT, ZP_MAP_WRITE_CYCLES

IFMAP_SLOTS = 2  # load stage buffers
OFMAP_SLOTS = 3  # compute/drain stage buffers

STARTUP = MASK_SCAN_STARTUP  # start pulse -> first issued index
PIPELINE = COMPUTE_PIPELINE  # issue -> OFMAP buffer write: window read + MAC/requant


def compute_stage_cycles(computed: int) -> int:
    _check(computed)
    return max(computed, 1) + STARTUP


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
    _check(anchors)
    _check(others)
    phase_a = STARTUP + max(anchors, 1) - 1  # start -> last anchor issued
    # phase B start -> stage end: the last phase-B issue, or the map's last write (its writes take
    # the ZP_MAP_WRITE_CYCLES cycles after the start)
    phase_b = max(STARTUP + max(others, 1) - 1, ZP_MAP_WRITE_CYCLES)
    return phase_a + ZP_HOT_WAIT + phase_b + 1


def frame_stage_cycles(cfg: golden.ConvConfig, ifmap: np.ndarray) -> int:
    """Compute-stage cycles of one frame (start to the next frame's earliest start), either mode."""
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


def _frame_times(stages: Sequence[int]) -> list[tuple[int, int]]:
    """(first input handshake, last output handshake) of each frame, by a per-frame recurrence.

    Frame n loads into IFMAP slot n mod 2 once frame n-2 has left it, computes once it is loaded,
    frame n-1's compute is over and OFMAP slot n mod 3 is drained, and drains PIPELINE + 1 cycles
    after its compute stage, behind frame n-1's drain. Times are cycles; input from cycle 0 on.
    """
    load, end, drain, times = [], [], [], []  # first input beat, last compute cycle, first drain read
    for n, stage in enumerate(stages):
        first = 0 if n == 0 else load[n - 1] + BEATS_PER_FRAME
        if n >= IFMAP_SLOTS:
            first = max(first, end[n - IFMAP_SLOTS] + 1)
        start = first + BEATS_PER_FRAME
        if n >= 1:
            start = max(start, end[n - 1] + 1)
        if n >= OFMAP_SLOTS:
            start = max(start, drain[n - OFMAP_SLOTS] + BEATS_PER_FRAME)
        load.append(first)
        end.append(start + stage - 1)
        read = end[n] + PIPELINE + 1
        if n >= 1:
            read = max(read, drain[n - 1] + BEATS_PER_FRAME)
        drain.append(read)
        times.append((first, read + OUTPUT_LATENCY + BEATS_PER_FRAME - 1))
    return times
