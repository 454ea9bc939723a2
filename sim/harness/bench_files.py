"""The npz file that carries configurations and IFMAPs from a Python flow into a cocotb bench.

One file describes R runs on n instances that share weights, bias, M, S and averages and differ
only in their masks (a bench configures once and rewrites MASK between runs), plus the IFMAPs
each instance processes in every run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from model.hw.golden import ConvConfig

SHARED_FIELDS = ("weights", "bias", "mult", "shift", "avg")


def write_runs(path: Path, runs: list[list[ConvConfig]], ifmaps: np.ndarray) -> None:
    """`runs[r][i]` is instance i's configuration in run r; `ifmaps` is (n, K, 64, 64) uint8."""
    first = runs[0]
    for run in runs[1:]:
        for a, b in zip(first, run):
            if any(not np.array_equal(getattr(a, f), getattr(b, f)) for f in SHARED_FIELDS):
                raise ValueError("runs of one file may differ only in their masks; write the others apart")
    if ifmaps.shape[0] != len(first):
        raise ValueError(f"ifmaps must be (instances={len(first)}, K, 64, 64), got {ifmaps.shape}")
    np.savez(
        path,
        weights=np.stack([c.weights for c in first]), bias=np.array([c.bias for c in first]),
        mult=np.array([c.mult for c in first]), shift=np.array([c.shift for c in first]),
        avg=np.stack([c.avg for c in first]), ifmaps=ifmaps,
        masks=np.stack([np.stack([c.mask for c in run]) for run in runs]),
    )  # fmt: skip


def read_runs(path: str | Path) -> tuple[list[list[ConvConfig]], np.ndarray]:
    data = np.load(path)
    runs = [
        [ConvConfig(data["weights"][i], int(data["bias"][i]), int(data["mult"][i]), int(data["shift"][i]),
                    masks[i].astype(bool), data["avg"][i]) for i in range(len(masks))]
        for masks in data["masks"]
    ]  # fmt: skip
    return runs, data["ifmaps"]
