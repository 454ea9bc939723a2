"""The npz file that carries configurations and IFMAPs from a Python flow into a cocotb bench.

One file describes R runs on n instances that share weights, bias, M, S and averages and differ
only in their masks and their control settings (SKIP_EN, and the zero-value prediction fields
ZP_EN, ZP_CONFIG.PATTERN and ZP_CONFIG.ZP_MAX): a bench configures once and rewrites MASK,
CONTROL and ZP_CONFIG between runs. It also carries the IFMAPs each instance processes in every
run. Files written before the prediction fields existed read with prediction off.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from model.hw.golden import ConvConfig

SHARED_FIELDS = ("weights", "bias", "mult", "shift", "avg")
RUN_FIELDS = ("skip_en", "zp_en", "zp_pattern", "zp_max")  # per run and instance, beside the mask


def write_runs(path: Path, runs: list[list[ConvConfig]], ifmaps: np.ndarray) -> None:
    """`runs[r][i]` is instance i's configuration in run r; `ifmaps` is (n, K, 64, 64) uint8."""
    first = runs[0]
    for run in runs[1:]:
        if len(run) != len(first):
            raise ValueError("every run must configure the same instances")
        for a, b in zip(first, run):
            if any(not np.array_equal(getattr(a, f), getattr(b, f)) for f in SHARED_FIELDS):
                raise ValueError("runs of one file may differ only in their masks and control settings; "
                                 "write the others apart")
    if ifmaps.shape[0] != len(first):
        raise ValueError(f"ifmaps must be (instances={len(first)}, K, 64, 64), got {ifmaps.shape}")
    np.savez(
        path,
        weights=np.stack([c.weights for c in first]), bias=np.array([c.bias for c in first]),
        mult=np.array([c.mult for c in first]), shift=np.array([c.shift for c in first]),
        avg=np.stack([c.avg for c in first]), ifmaps=ifmaps,
        masks=np.stack([np.stack([c.mask for c in run]) for run in runs]),
        **{f: np.array([[int(getattr(c, f)) for c in run] for run in runs]) for f in RUN_FIELDS},
    )  # fmt: skip


def read_runs(path: str | Path) -> tuple[list[list[ConvConfig]], np.ndarray]:
    data = np.load(path)
    masks = data["masks"]
    defaults = {"skip_en": 1, "zp_en": 0, "zp_pattern": 0, "zp_max": 0}
    run_fields = {f: data[f] if f in data.files else np.full(masks.shape[:2], defaults[f]) for f in RUN_FIELDS}
    runs = [
        [ConvConfig(data["weights"][i], int(data["bias"][i]), int(data["mult"][i]), int(data["shift"][i]),
                    masks[r, i].astype(bool), data["avg"][i], skip_en=bool(run_fields["skip_en"][r, i]),
                    zp_en=bool(run_fields["zp_en"][r, i]), zp_pattern=int(run_fields["zp_pattern"][r, i]),
                    zp_max=int(run_fields["zp_max"][r, i]))
         for i in range(masks.shape[1])]
        for r in range(masks.shape[0])
    ]  # fmt: skip
    return runs, data["ifmaps"]
