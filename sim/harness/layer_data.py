"""Real activations of the default CNN's hardware layer as a bench file, for the benches of prediction.

The cocotb benches never import PyTorch: a Python flow or pytest writes the layer's configurations
(weights, bias, M, S, averages from `model.deploy`) and the quantized IFMAPs of a few Fashion-MNIST
validation images into a bench file (sim/harness/bench_files.py) that a bench then reads. One run
per mask density, with the balanced allocation, so every channel has exactly that density.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

DENSITIES = (0.0, 0.3, 0.75)
TASK = "footwear"


def write_layer_file(path: Path, images: int = 6, densities=DENSITIES, task: str = TASK) -> dict:
    """Write the file; returns what it holds: densities per run, and per channel the fraction of zero
    outputs over the images without compression (to pick channels worth predicting)."""
    from model.deploy import e2e
    from model.deploy.hw_layer import hw_layer_input
    from model.deploy.quantize import golden_runner, quantize_input
    from sim.harness.bench_files import write_runs

    ctx = e2e.prepare(task, images, error_images=0)
    ifmaps = quantize_input(hw_layer_input(ctx.model, ctx.images), ctx.quant.input_scale)
    runs = [ctx.export(d if d > 0 else None, "balanced").configs for d in densities]
    write_runs(Path(path), runs, ifmaps)
    zero = (golden_runner(runs[0], ifmaps) == 0).mean(axis=(1, 2, 3))
    return {"densities": list(densities), "zero_fraction": zero.tolist(), "images": images}


_WRITTEN: set[Path] = set()


def layer_file(build_root: Path) -> Path:
    """build_root/real_layer.npz, written once per process (so a changed model is never read stale)."""
    path = Path(build_root) / "real_layer.npz"
    if path not in _WRITTEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_layer_file(path)
        _WRITTEN.add(path)
    return path
