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
"""
from __future__ import annotations

from model.hw.spec import BEATS_PER_FRAME, COMPUTE_PIPELINE, MASK_SCAN_STARTUP, N_OUTPUTS
from model.hw.spec import OUTPUT_LATENCY as OUTPUT_LATENCY  # re-exported with the two below

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
