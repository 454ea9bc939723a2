"""Compression masks of the hardware layer and the load balance of a 16-instance top.

VELCRO's threshold is per layer: the ⌊T·65536⌋ lowest-variance elements of the whole 16×4096
layer (`per_layer_masks`, allocation "per-layer"), so channels get different densities and a
16-instance top, whose frame interval is that of its slowest instance, gains less than the
average density suggests. `balanced_masks` (allocation "balanced", beyond the paper) gives every
channel exactly ⌊T·4096⌋ of its own lowest-variance elements (16·⌊T·4096⌋ ≤ ⌊T·65536⌋, short by at
most 15 elements), so all instances do equal work. `top_speedup` compares the two with the cycle
model `model.hw.cycles.frame_interval`.

`allocation_masks` is the one entry point that checks an allocation name and a threshold (the
threshold rule itself is `model.velcro.compress.parse_threshold`, shared with the algorithm).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

from model.errors import VelcroError
from model.hw.cycles import frame_interval
from model.hw.golden import N_OUTPUTS
from model.nets.default_model import HW_CHANNELS, HW_SIZE
from model.velcro.compress import lowest_variance_mask, parse_threshold

ALLOCATIONS = ("per-layer", "balanced")
LAYER_ELEMENTS = HW_CHANNELS * N_OUTPUTS  # 65536

__all__ = [
    "ALLOCATIONS",
    "LAYER_ELEMENTS",
    "check_allocation",
    "per_layer_masks",
    "balanced_masks",
    "allocation_masks",
    "top_speedup",
]


def check_allocation(allocation: str) -> str:
    """`allocation` if it is one of `ALLOCATIONS`, else `VelcroError`."""
    if allocation not in ALLOCATIONS:
        raise VelcroError(f"allocation {allocation!r}: use one of {', '.join(ALLOCATIONS)}")
    return allocation


def _variance(var) -> torch.Tensor:
    v = torch.as_tensor(np.asarray(var) if not isinstance(var, torch.Tensor) else var)
    if tuple(v.shape) != (HW_CHANNELS, HW_SIZE, HW_SIZE):
        raise VelcroError(f"variance must have the layer's shape (16, 64, 64), got {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise VelcroError("variance contains NaN or infinite values; recompute the statistics")
    return v.to(torch.float64)


def per_layer_masks(var, T) -> torch.Tensor:
    """(16, 64, 64) bool: the ⌊T·65536⌋ lowest-variance elements of the whole layer (VELCRO's per-layer T)."""
    v = _variance(var)
    return lowest_variance_mask(v, math.floor(parse_threshold(T) * LAYER_ELEMENTS))


def balanced_masks(var, T) -> torch.Tensor:
    """(16, 64, 64) bool: each channel's own ⌊T·4096⌋ lowest-variance elements (equal work per instance)."""
    v = _variance(var)
    count = math.floor(parse_threshold(T) * N_OUTPUTS)
    return torch.stack([lowest_variance_mask(v[c], count) for c in range(HW_CHANNELS)])


def allocation_masks(var, T: Fraction | float | str | None, allocation: str = "per-layer") -> torch.Tensor:
    """(16, 64, 64) bool masks of threshold T (None: nothing compressed) with the named allocation."""
    check_allocation(allocation)
    if T is None:
        _variance(var)
        return torch.zeros(HW_CHANNELS, HW_SIZE, HW_SIZE, dtype=torch.bool)
    return (per_layer_masks if allocation == "per-layer" else balanced_masks)(var, T)


def top_speedup(computed: Sequence[int]) -> dict:
    """Frame-interval speedup of a 16-instance top over no compression, from per-channel computed outputs.

    achieved: interval(4096) / max_c interval(computed_c) (the top waits for its slowest instance);
    ideal:    interval(4096) / interval(⌈Σ computed / 16⌉) (the same work spread evenly).
    """
    computed = [int(c) for c in computed]
    if len(computed) != HW_CHANNELS:
        raise VelcroError(f"give 16 computed-output counts, one per instance (got {len(computed)})")
    if any(not 0 <= c <= N_OUTPUTS for c in computed):
        raise VelcroError(f"computed outputs per instance must lie in [0, {N_OUTPUTS}]")
    base = frame_interval(N_OUTPUTS)
    intervals = [frame_interval(c) for c in computed]
    even = frame_interval(math.ceil(sum(computed) / HW_CHANNELS))
    achieved, ideal = base / max(intervals), base / even
    return {
        "computed": computed,
        "intervals": intervals,
        "baseline_interval": base,
        "top_interval": max(intervals),
        "ideal_interval": even,
        "achieved_speedup": achieved,
        "ideal_speedup": ideal,
        "efficiency": achieved / ideal,
    }
