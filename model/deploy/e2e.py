"""End-to-end check of the hardware layer: float, float-compressed, int8 golden and RTL paths.

For K validation images of a specialized task the network runs four ways, differing only in the
hardware layer (`hw_dw` + ReLU, 16 channels of 64×64):

* ``float``            the float layer;
* ``float_compressed`` the float layer with VELCRO: masked elements replaced by their float
                       preprocessing mean; with prediction on in the export, the float
                       prediction rule (`model.velcro.predict.predict_zeros`) with the float ZP_MAX
                       on top;
* ``int8_golden``      the exported integer configuration run by `model.hw.golden.conv2d` per channel
                       and image (input quantized with s_x, output dequantized with s_y, mask and
                       uint8 averages applied by the golden model), the rest of the net in PyTorch;
* ``rtl``              the same, with the layer computed by a caller-supplied `LayerRunner`
                       ``layer_runner(configs, ifmaps (16, K, 64, 64) uint8) -> (16, K, 64, 64) uint8``
                       (default: the golden runner itself, so everything runs without a simulator).

MACs skipped per path (`mac_reduction`): the share of the layer's MACs (16·4096·9 per image) not
spent, compressed plus predicted outputs; the RTL path's equals the golden path's, whose outputs it
must reproduce bit for bit (the rule decides from the outputs alone).

The RTL outputs must equal the golden outputs for every channel and image (else `VelcroError`),
and so must the predictions. Mask allocation (per-layer vs balanced) and the speedup of a
16-instance top: `model.deploy.masks`.

Saving ratios. Layer C = compressed elements / (16·64·64). Model C (the element-weighted ratio of
model/README.md with only this layer compressed) = compressed elements / all activation-output
elements of the model's compressible layers, i.e. of every activation output that follows a
convolution (`model.velcro.sites.find_sites`: the stem, the hardware layer and stages 1–3); the
same ratio without the first activation output (left alone by default) and the saved fraction of
all model MACs (9 per compressed element) are reported beside it.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

from model.deploy.export import LayerExport, PreparedLayer, prepare_layer
from model.deploy.hw_layer import hw_layer_input, run_from_hw_output, task_split
from model.deploy.masks import ALLOCATIONS, top_speedup
from model.deploy.quantize import (
    LayerRunner,
    check_images,
    dequantize_output,
    float_layer_sha256,
    golden_layer,
    golden_runner,
    quantize_input,
)
from model.errors import VelcroError
from model.hw.golden import N_OUTPUTS
from model.nets.default_model import HW_CHANNELS, HW_SITE, HW_SIZE, DefaultCNN, load_default_model
from model.velcro.compress import saving_ratio
from model.velcro.evaluate import accuracy, top1_accuracy
from model.velcro.predict import predict_zeros
from model.velcro.sites import find_sites

PATHS = ("float", "float_compressed", "int8_golden", "rtl")

__all__ = [
    "PATHS",
    "model_saving_ratio",
    "run_paths",
    "E2EContext",
    "prepare",
    "largest_lossless",
    "report",
]


def model_saving_ratio(model: DefaultCNN, compressed_elements: int) -> dict:
    """Model-level C with only the hardware layer compressed (see the module docstring)."""
    sites, total_macs = find_sites(model, torch.zeros(1, 1, 28, 28))
    if sites[HW_SITE].shape != (HW_CHANNELS, HW_SIZE, HW_SIZE):
        raise VelcroError("the model's activation output 1 is not the hardware layer; is this the default CNN?")
    only_hw = [Fraction(0)] * len(sites)
    only_hw[HW_SITE] = Fraction(compressed_elements, sites[HW_SITE].numel)
    every = saving_ratio(sites, only_hw, total_macs)
    without_first = saving_ratio(sites, [None] + only_hw[1:], total_macs)
    return {
        "model_saving_ratio": every.saving_ratio,
        "model_saving_ratio_without_first": without_first.saving_ratio,
        "model_mac_fraction": every.model_mac_fraction,
        "activation_elements": sum(s.numel for s in sites),
    }


# ---------------------------------------------------------------------- the four paths
def _labels_images(images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    check_images(images, "K")
    labels = torch.as_tensor(labels)
    if labels.shape != (len(images),):
        raise VelcroError(f"labels must have shape ({len(images)},) to match the images, got {tuple(labels.shape)}")
    if len(images) == 0:
        raise VelcroError("no images: give at least one")
    return images, labels


def _compare(golden: np.ndarray, other, name: str) -> None:
    if not isinstance(other, np.ndarray) or other.shape != golden.shape or other.dtype != np.uint8:
        got = f"{other.shape} {other.dtype}" if isinstance(other, np.ndarray) else type(other).__name__
        raise VelcroError(
            f"{name} returned {got}, expected a uint8 array of shape {golden.shape} "
            "(16 channels × K images × 64 × 64, channel-major like its input): fix the runner's output"
        )
    differ = other != golden
    if differ.any():
        frames = np.argwhere(differ.any(axis=(2, 3)))
        c, i = (int(v) for v in frames[0])
        y, x = (int(v) for v in np.argwhere(differ[c, i])[0])
        raise VelcroError(
            f"{name} differs from the golden model in {int(differ.sum())} pixel(s) of {len(frames)} "
            f"(channel, image) frame(s); first: channel {c}, image {i}, pixel (y={y}, x={x}): got "
            f"{int(other[c, i, y, x])}, golden {int(golden[c, i, y, x])}. The hardware (or its driver) does "
            "not implement the conv2d arithmetic of rtl/README.md for this configuration: debug it with that frame"
        )


def run_paths(
    export: LayerExport,
    images: torch.Tensor,
    labels,
    *,
    model: DefaultCNN | None = None,
    layer_runner: LayerRunner | None = None,
) -> dict:
    """Top-1 accuracy and predictions of the four paths on `images` (K, 1, 28, 28) with `labels` (K,)."""
    model = model if model is not None else load_default_model()
    images, labels = _labels_images(images, labels)
    if export.float_sha256 != float_layer_sha256(model):
        raise VelcroError("the export was made from a different float layer than this model's; re-run `velcro export`")
    runner = layer_runner if layer_runner is not None else golden_runner
    mask = torch.from_numpy(export.masks)
    mean = torch.from_numpy(np.asarray(export.float_mean)).to(torch.float32)
    with torch.no_grad():
        x = hw_layer_input(model, images)
        y_float = model.hw_layer(x)
        y_comp = torch.where(mask, mean, y_float)
        predicted_float = torch.zeros(y_comp.shape, dtype=torch.bool)
        if export.zp_pattern is not None:  # on the channels whose configuration predicts (ZP_EN)
            predicting = torch.tensor([bool(c.zp_en) for c in export.configs]).view(1, -1, 1, 1)
            _, predicted_float = predict_zeros(y_comp, export.zp_pattern, export.zp_max, mask)
            predicted_float &= predicting
            y_comp = y_comp.masked_fill(predicted_float, 0)
        ifmaps = quantize_input(x, export.input_scale)
        golden, predicted_golden = golden_layer(export.configs, ifmaps)
        rtl = golden if runner is golden_runner else runner(export.configs, ifmaps.copy())
        if runner is not golden_runner:
            _compare(golden, rtl, "layer_runner")
        y_int = dequantize_output(golden, export.output_scale)
        logits = {
            "float": model.from_hw_output(y_float),
            "float_compressed": model.from_hw_output(y_comp),
            "int8_golden": run_from_hw_output(model, y_int),
            "rtl": run_from_hw_output(model, dequantize_output(rtl, export.output_scale)),
        }
    predictions = {k: v.argmax(1) for k, v in logits.items()}
    if not torch.equal(predictions["rtl"], predictions["int8_golden"]):
        raise VelcroError("RTL-path predictions differ from the int8-golden predictions although the layer outputs match")
    compressed = int(export.masks.sum())
    diff = y_int.to(torch.float64) - y_comp.to(torch.float64)
    layer_outputs = len(images) * HW_CHANNELS * HW_SIZE * HW_SIZE
    predicted = {"float": 0, "float_compressed": int(predicted_float.sum()), "int8_golden": int(predicted_golden.sum())}
    predicted["rtl"] = predicted["int8_golden"]  # equal outputs, equal decisions
    skipped = {k: (0 if k == "float" else compressed * len(images)) + p for k, p in predicted.items()}
    return {
        "images": len(images),
        "accuracy": {k: top1_accuracy(p, labels) for k, p in predictions.items()},
        "predictions": {k: p.tolist() for k, p in predictions.items()},
        "labels": labels.tolist(),
        "threshold": export.threshold,
        "allocation": export.allocation,
        "zp_pattern": export.zp_pattern,
        "zp_max": export.zp_max,
        "zp_max_uint8": export.zp_max_uint8,
        "mac_reduction": {k: skipped[k] / layer_outputs for k in PATHS},
        "predicted_fraction": {k: predicted[k] / layer_outputs for k in PATHS},
        "layer_saving_ratio": export.saving_ratio,
        **model_saving_ratio(model, compressed),
        "channel_densities": export.channel_densities,
        "speedup": top_speedup([N_OUTPUTS - int(m.sum()) for m in export.masks]),
        "float_vs_int8_error": export.error,  # no compression, from the export
        "compressed_int8_vs_float_error": {"max_abs": float(diff.abs().max()), "rms": float(diff.pow(2).mean().sqrt())},
    }


# ---------------------------------------------------------------------- task-level evaluation
@dataclass
class E2EContext(PreparedLayer):
    """A `PreparedLayer` (statistics, calibration, error) plus K validation images of its task."""

    images: torch.Tensor
    labels: torch.Tensor


def prepare(
    task: str = "footwear",
    k: int = 32,
    *,
    seed: int = 0,
    model: DefaultCNN | None = None,
    n_prep: int | None = None,
    input_calibration: str = "max",
    error_images: int = 64,
) -> E2EContext:
    """`prepare_layer` on the task's preprocessing split, and the first `k` validation images."""
    if k < 1:
        raise VelcroError(f"K = {k}: evaluate at least one validation image")
    data, split = task_split(task, n_prep, seed=seed)
    if k > len(split.val):
        raise VelcroError(f"K = {k} but task {task!r} has only {len(split.val)} validation images; lower K")
    layer = prepare_layer(
        task,
        model=model,
        n_prep=n_prep,
        seed=seed,
        input_calibration=input_calibration,
        error_images=error_images,
        split=(data, split),
    )
    val = split.val[:k]
    return E2EContext(**{f.name: getattr(layer, f.name) for f in fields(layer)}, images=data.images[val], labels=data.labels[val])


def _int8_accuracy(ctx: E2EContext, export: LayerExport, ifmaps: np.ndarray) -> float:
    out = golden_runner(export.configs, ifmaps)
    return top1_accuracy(run_from_hw_output(ctx.model, dequantize_output(out, export.output_scale)), ctx.labels)


def largest_lossless(ctx: E2EContext, *, step: float = 0.05, allocation: str = "per-layer") -> dict:
    """Scan T = 0, step, 2·step, … < 1 with the int8-golden path; pick the largest lossless T.

    Lossless = int8-golden accuracy on the K images ≥ the float (uncompressed) accuracy. The chosen
    T is the largest grid point such that it and every smaller grid point are lossless (a single
    lucky point above a loss is reported as `largest_any_lossless`, not chosen).
    """
    if not 0 < step < 1:
        raise VelcroError(f"step {step} must lie in (0, 1)")
    base = accuracy(ctx.model, ctx.images, ctx.labels)
    ifmaps = quantize_input(hw_layer_input(ctx.model, ctx.images), ctx.quant.input_scale)
    steps = Fraction(str(step))
    grid = [n * steps for n in range(math.ceil(1 / steps)) if n * steps < 1]
    curve, chosen, any_best, broken = [], None, None, False
    for t in grid:
        export = ctx.export(t, allocation)
        acc = _int8_accuracy(ctx, export, ifmaps)
        ok = acc >= base
        curve.append({"threshold": float(t), "layer_saving_ratio": export.saving_ratio, "int8_golden_accuracy": acc, "lossless": ok})
        if ok:
            any_best = float(t)
            if not broken:
                chosen = float(t)
        else:
            broken = True
    return {"float_accuracy": base, "allocation": allocation, "chosen_threshold": chosen, "largest_any_lossless": any_best, "curve": curve}


def report(
    task: str = "footwear",
    k: int = 32,
    thresholds: Sequence[float] = (0.3, 0.5, 0.7),
    *,
    layer_runner: LayerRunner | None = None,
    seed: int = 0,
    step: float = 0.05,
    ctx: E2EContext | None = None,
) -> dict:
    """Float-vs-int8 error, the four accuracies per threshold and allocation, load balance, largest lossless T."""
    ctx = ctx if ctx is not None else prepare(task, k, seed=seed)
    scan = largest_lossless(ctx, step=step)
    chosen = [] if scan["chosen_threshold"] is None else [scan["chosen_threshold"]]
    rows = []
    for t in sorted({float(t) for t in thresholds} | set(chosen)):
        for allocation in ALLOCATIONS:
            result = run_paths(ctx.export(t, allocation), ctx.images, ctx.labels, model=ctx.model, layer_runner=layer_runner)
            rows.append({k: v for k, v in result.items() if k not in ("predictions", "labels")} | {"predictions": result["predictions"]})
    q = ctx.quant
    return {
        "task": ctx.task,
        "k": len(ctx.labels),
        "runner": "golden" if layer_runner is None else getattr(layer_runner, "__name__", "custom"),
        "scales": {
            "input_scale": q.input_scale,
            "output_scale": q.output_scale,
            "weight_scales": q.weight_scales.tolist(),
            "mult": q.mult.tolist(),
            "shift": q.shift.tolist(),
            "input_calibration": q.input_calibration,
        },
        "float_vs_int8_error": ctx.error,
        "lossless_scan": scan,
        "results": rows,
    }


def _summary(rep: dict) -> str:
    lines = [f"task {rep['task']}  K={rep['k']}  runner={rep['runner']}",
             "float-vs-int8 layer error (no compression, {images} val images): max_abs {max_abs:.4f} ({max_abs_lsb:.2f} LSB)  rms {rms:.4f} ({rms_lsb:.3f} LSB)".format(**rep["float_vs_int8_error"]),
             f"largest lossless per-layer T (grid): {rep['lossless_scan']['chosen_threshold']}  (largest any: {rep['lossless_scan']['largest_any_lossless']})",
             f"{'T':>5} {'alloc':>9} {'C_layer':>7} {'C_model':>7} {'float':>6} {'f_comp':>6} {'int8':>6} {'rtl':>6} {'dens min/max':>13} {'speedup ach/ideal':>17}"]
    for r in rep["results"]:
        a, s, d = r["accuracy"], r["speedup"], r["channel_densities"]
        lines.append(f"{r['threshold']:5.2f} {r['allocation']:>9} {r['layer_saving_ratio']:7.4f} {r['model_saving_ratio']:7.4f} "
                     f"{a['float']:6.3f} {a['float_compressed']:6.3f} {a['int8_golden']:6.3f} {a['rtl']:6.3f} "
                     f"{min(d):6.3f}/{max(d):6.3f} {s['achieved_speedup']:8.3f}/{s['ideal_speedup']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.deploy.e2e", description="end-to-end report of the hardware layer (four paths), with the golden runner as RTL stand-in")
    p.add_argument("--task", default="footwear")
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--thresholds", default="0.3,0.5,0.7")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the full report (with predictions) to this file")
    args = p.parse_args(argv)
    try:
        rep = report(args.task, args.k, [float(t) for t in args.thresholds.split(",")], seed=args.seed)
    except VelcroError as err:
        print(f"model.deploy.e2e: error: {err}", file=sys.stderr)
        return 2
    print(_summary(rep))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
