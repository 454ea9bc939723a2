"""Export of the default CNN's hardware layer to the FPGA configuration (DESIGN §3, §7; issue 6).

The hardware layer `hw_dw` + `hw_relu` is 16 independent 3×3 depthwise channels; channel c is one
conv2d instance configured by one `model.hw.golden.ConvConfig`:

* IFMAP: the layer's float input x ≥ 0 (post-ReLU stem output) as uint8 with ONE per-tensor scale
  s_x: q_x = clamp(round(x / s_x), 0, 255). s_x is calibrated on the preprocessing images' layer
  inputs: `input_calibration="max"` (default: s_x = max x / 255, nothing is clipped on those
  images) or a percentile like "p99.99" (s_x = percentile / 255, the rare larger values clip).
* Weights: per-channel symmetric int8, s_w[c] = max|w_c| / 127, q_w = round(w / s_w[c]).
* Bias: int32, round(b[c] / (s_x·s_w[c])), i.e. in accumulator units.
* OFMAP: uint8 with one per-tensor scale s_y = max of the layer's float (post-ReLU) outputs on the
  preprocessing images / 255; the hardware's clamp at 0 is the ReLU.
* Requantization: M / 2^S ≈ s_x·s_w[c] / s_y with M < 2^16 and S ≤ 31; S is the largest shift for
  which round(real·2^S) still fits 16 bits, so M carries the most significant bits possible.
* VELCRO: mask[c] = the compressed elements of channel c (see `per_layer_masks`/`balanced_masks`
  in `model.deploy.e2e`), avg[c] = clamp(round(mean / s_y), 0, 255) of the preprocessing mean.

Rounding is NumPy's `rint` (half to even) everywhere; the bit-exact part is only the hardware's
arithmetic (`model.hw.golden`), which this module feeds with integers.

The export file is one `.npz` (NumPy arrays only, `allow_pickle=False`): `format_version`,
`meta_json` (task, thresholds, allocation, calibration, scales, float-vs-int error, the SHA-256 of
the float layer's weight and bias bytes), and the per-channel arrays `weights` (16,3,3) int8,
`bias` (16,) int32, `mult` (16,) uint16, `shift` (16,) uint8, `mask` (16,64,64) bool, `avg`
(16,64,64) uint8, `skip_en` (16,) bool, `weight_scales` (16,) float64, `float_mean` (16,64,64)
float64 (the float VELCRO means, for the float-compressed reference path).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from model.nets.data import DEFAULT_PREP_FRACTION, fashion_task, split_task
from model.nets.default_model import HW_CHANNELS, HW_SIZE, DefaultCNN, load_default_model
from model.errors import VelcroError
from model.hw.golden import ConvConfig, H, W
from model.deploy.hw_layer import hw_layer_input, hw_layer_statistics

FORMAT_VERSION = 1
FORMAT_NAME = "velcro-hw-layer-export"
ALLOCATIONS = ("per-layer", "balanced")

__all__ = [
    "FORMAT_VERSION",
    "ALLOCATIONS",
    "LayerQuantization",
    "LayerExport",
    "float_layer_sha256",
    "mult_shift",
    "calibrate",
    "quantize_input",
    "dequantize_output",
    "make_configs",
    "export_layer",
    "layer_error",
    "save_export",
    "load_export",
]


# ---------------------------------------------------------------------- quantization
@dataclass(frozen=True)
class LayerQuantization:
    """Integer parameters and scales of the 16 channels (mask-independent part of the export)."""

    weights: np.ndarray  # (16, 3, 3) int8
    bias: np.ndarray  # (16,) int64 values that fit int32
    mult: np.ndarray  # (16,) int64 values in [0, 2^16)
    shift: np.ndarray  # (16,) int64 values in [0, 31]
    input_scale: float  # s_x
    output_scale: float  # s_y
    weight_scales: np.ndarray  # (16,) float64, s_w
    float_sha256: str
    input_calibration: str
    calibration_images: int

    @property
    def real_multipliers(self) -> np.ndarray:
        """The ideal s_x·s_w[c]/s_y the (M, S) pairs approximate."""
        return self.input_scale * self.weight_scales / self.output_scale


def float_layer_sha256(model: DefaultCNN) -> str:
    """SHA-256 of the float layer: its weight bytes then its bias bytes, little-endian float32."""
    w = model.hw_dw.weight.detach().cpu().numpy().astype("<f4")
    b = model.hw_dw.bias.detach().cpu().numpy().astype("<f4")
    return hashlib.sha256(np.ascontiguousarray(w).tobytes() + np.ascontiguousarray(b).tobytes()).hexdigest()


def mult_shift(real: float) -> tuple[int, int]:
    """(M, S) with M < 2^16, S ≤ 31 and M / 2^S ≈ real, using the largest S that keeps M in 16 bits."""
    if not math.isfinite(real) or real <= 0:
        raise VelcroError(f"requantization multiplier {real!r} must be a positive finite number; check the scales")
    for shift in range(31, -1, -1):
        mult = int(np.rint(real * 2.0**shift))
        if mult < 2**16:
            if mult == 0:
                raise VelcroError(
                    f"requantization multiplier {real:.3g} is below 2^-32 and rounds to M = 0; the output "
                    "scale is far too large for the input and weight scales (recalibrate the export)"
                )
            return mult, shift
    raise VelcroError(
        f"requantization multiplier {real:.3g} needs M ≥ 2^16 even with S = 0; the output scale is too small "
        "for the input and weight scales (recalibrate the export)"
    )


def _check_finite(name: str, array) -> None:
    a = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if not np.all(np.isfinite(a)):
        raise VelcroError(f"{name} contains NaN or infinite values; check the model and the images")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise VelcroError(f"images must be a Fashion-MNIST tensor of shape (N, 1, 28, 28), got {shape}")
    _check_finite("images", images)


def _scale_from(values: torch.Tensor, calibration: str, what: str) -> float:
    flat = values.detach().reshape(-1).to(torch.float64)
    if calibration == "max":
        top = float(flat.max())
    elif calibration.startswith("p"):
        try:
            q = float(calibration[1:])
        except ValueError:
            q = float("nan")
        if not 0 < q <= 100:
            raise VelcroError(f"calibration {calibration!r}: give 'max' or a percentile like 'p99.99'")
        top = float(np.percentile(flat.numpy(), q))
    else:
        raise VelcroError(f"calibration {calibration!r}: give 'max' or a percentile like 'p99.99'")
    if not top > 0:
        raise VelcroError(f"the {what} is never positive on the calibration images; no uint8 scale exists (use other images)")
    return top / 255.0


def calibrate(model: DefaultCNN, calib_images: torch.Tensor, *, input_calibration: str = "max") -> LayerQuantization:
    """Scales and integer parameters of the hardware layer from calibration images (N, 1, 28, 28)."""
    _check_images(calib_images)
    weight = model.hw_dw.weight.detach().to(torch.float64).reshape(HW_CHANNELS, 3, 3).numpy()
    bias = model.hw_dw.bias.detach().to(torch.float64).numpy()
    _check_finite("the float layer's weights", weight)
    _check_finite("the float layer's bias", bias)
    with torch.no_grad():
        x = hw_layer_input(model, calib_images)
        y = model.hw_layer(x)
    s_x = _scale_from(x, input_calibration, "layer input")
    s_y = _scale_from(y, "max", "layer output")
    s_w = np.abs(weight).reshape(HW_CHANNELS, -1).max(axis=1) / 127.0
    if np.any(s_w == 0):
        raise VelcroError(f"channel(s) {np.flatnonzero(s_w == 0).tolist()} have all-zero weights; no int8 scale exists")
    q_w = np.clip(np.rint(weight / s_w[:, None, None]), -127, 127).astype(np.int8)
    q_b = np.rint(bias / (s_x * s_w)).astype(np.int64)
    if np.any(np.abs(q_b) >= 2**31):
        raise VelcroError("a quantized bias does not fit int32; the input scale is too small for the bias")
    pairs = [mult_shift(float(r)) for r in s_x * s_w / s_y]
    return LayerQuantization(
        weights=q_w,
        bias=q_b,
        mult=np.array([p[0] for p in pairs], dtype=np.int64),
        shift=np.array([p[1] for p in pairs], dtype=np.int64),
        input_scale=float(s_x),
        output_scale=float(s_y),
        weight_scales=s_w,
        float_sha256=float_layer_sha256(model),
        input_calibration=input_calibration,
        calibration_images=int(len(calib_images)),
    )


def quantize_input(x: torch.Tensor, input_scale: float) -> np.ndarray:
    """Float layer input (N, 16, 64, 64) → uint8 IFMAPs in hardware order (16, N, 64, 64)."""
    if x.dim() != 4 or tuple(x.shape[1:]) != (HW_CHANNELS, HW_SIZE, HW_SIZE):
        raise VelcroError(f"layer input must be (N, 16, 64, 64), got {tuple(x.shape)}")
    _check_finite("layer input", x)
    q = np.clip(np.rint(x.detach().cpu().to(torch.float64).numpy() / input_scale), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(q.transpose(1, 0, 2, 3))


def dequantize_output(ofmaps: np.ndarray, output_scale: float) -> torch.Tensor:
    """uint8 OFMAPs (16, N, 64, 64) → float layer output (N, 16, 64, 64)."""
    return torch.from_numpy(np.asarray(ofmaps, dtype=np.float64).transpose(1, 0, 2, 3) * output_scale).to(torch.float32)


def make_configs(quant: LayerQuantization, mask: np.ndarray | torch.Tensor | None, mean: np.ndarray | torch.Tensor | None, *, skip_en: bool = True) -> list[ConvConfig]:
    """The 16 instance configurations; `mask` (16,64,64) bool (None = nothing compressed), `mean` float."""
    if mask is None:
        mask_a = np.zeros((HW_CHANNELS, H, W), dtype=bool)
    else:
        mask_a = np.asarray(mask.numpy() if isinstance(mask, torch.Tensor) else mask)
        if mask_a.shape != (HW_CHANNELS, H, W):
            raise VelcroError(f"mask must have shape (16, 64, 64), got {mask_a.shape}")
        mask_a = mask_a.astype(bool)
    if mean is None:
        if mask_a.any():
            raise VelcroError("a mask needs the preprocessing means (mean) for the averages")
        avg = np.zeros((HW_CHANNELS, H, W), dtype=np.uint8)
    else:
        mean_a = np.asarray(mean.numpy() if isinstance(mean, torch.Tensor) else mean, dtype=np.float64)
        if mean_a.shape != (HW_CHANNELS, H, W):
            raise VelcroError(f"mean must have shape (16, 64, 64), got {mean_a.shape}")
        _check_finite("mean", mean_a)
        avg = np.clip(np.rint(mean_a / quant.output_scale), 0, 255).astype(np.uint8)
    return [
        ConvConfig(
            weights=quant.weights[c].copy(),
            bias=int(quant.bias[c]),
            mult=int(quant.mult[c]),
            shift=int(quant.shift[c]),
            mask=mask_a[c].copy(),
            avg=avg[c].copy(),
            skip_en=skip_en,
        )
        for c in range(HW_CHANNELS)
    ]


# ---------------------------------------------------------------------- the export
@dataclass
class LayerExport:
    """Everything a bench or driver needs to run the hardware layer (and check it against float)."""

    configs: list[ConvConfig]
    input_scale: float
    output_scale: float
    weight_scales: np.ndarray  # (16,)
    float_mean: np.ndarray  # (16, 64, 64) float64 preprocessing means (float-compressed path)
    task: str
    threshold: float | None  # T as a fraction (None = no compression)
    allocation: str  # "per-layer" | "balanced"
    channel_thresholds: list[float]  # achieved mask density per channel
    float_sha256: str
    input_calibration: str = "max"
    calibration_images: int = 0
    seed: int = 0
    error: dict = field(default_factory=dict)
    version: int = FORMAT_VERSION

    @property
    def masks(self) -> np.ndarray:
        return np.stack([np.asarray(c.mask, dtype=bool) for c in self.configs])

    @property
    def saving_ratio(self) -> float:
        """Layer C: compressed elements / 16·4096."""
        return float(self.masks.sum()) / (HW_CHANNELS * H * W)

    def meta(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "format_version": self.version,
            "task": self.task,
            "threshold": self.threshold,
            "allocation": self.allocation,
            "channel_densities": self.channel_thresholds,
            "layer_saving_ratio": self.saving_ratio,
            "input_scale": self.input_scale,
            "output_scale": self.output_scale,
            "weight_scales": [float(s) for s in self.weight_scales],
            "mult": [int(c.mult) for c in self.configs],
            "shift": [int(c.shift) for c in self.configs],
            "input_calibration": self.input_calibration,
            "output_calibration": "max",
            "calibration_images": self.calibration_images,
            "seed": self.seed,
            "float_sha256": self.float_sha256,
            "float_vs_int8_error": self.error,
        }


def _fraction(value) -> Fraction:
    from model.velcro.compress import _to_fraction

    t = _to_fraction(value)
    if not 0 <= t < 1:
        raise VelcroError(f"threshold {float(t):g} must be a fraction in [0, 1) (e.g. 0.3 for 30 %)")
    return t


def _prep_and_val(task: str, n_prep: int | None, seed: int):
    data = fashion_task(task)
    split = split_task(len(data.labels), prep_fraction=DEFAULT_PREP_FRACTION, prep_images=n_prep, seed=seed)
    return data, split


def layer_error(model: DefaultCNN, quant: LayerQuantization, images: torch.Tensor) -> dict:
    """Float vs dequantized int8 layer output (no compression), via the golden model, on `images`."""
    from model.deploy.e2e import golden_runner

    _check_images(images)
    with torch.no_grad():
        x = hw_layer_input(model, images)
        ref = model.hw_layer(x).to(torch.float64)
    out = golden_runner(make_configs(quant, None, None), quantize_input(x, quant.input_scale))
    diff = dequantize_output(out, quant.output_scale).to(torch.float64) - ref
    return {
        "images": int(len(images)),
        "max_abs": float(diff.abs().max()),
        "rms": float(diff.pow(2).mean().sqrt()),
        "max_abs_lsb": float(diff.abs().max() / quant.output_scale),
        "rms_lsb": float(diff.pow(2).mean().sqrt() / quant.output_scale),
        # Values outside the calibrated ranges saturate; they dominate max_abs, not rms.
        "input_clip_fraction": float((x > 255.5 * quant.input_scale).float().mean()),
        "output_clamp_fraction": float((ref > 255.5 * quant.output_scale).float().mean()),
        "float_output_rms": float(ref.pow(2).mean().sqrt()),
        "float_output_max": float(ref.max()),
    }


def export_layer(
    task: str = "footwear",
    threshold=0.3,
    *,
    allocation: str = "per-layer",
    model: DefaultCNN | None = None,
    n_prep: int | None = None,
    seed: int = 0,
    input_calibration: str = "max",
    error_images: int = 64,
    statistics: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> LayerExport:
    """Export the hardware layer for `task` at threshold T with the given mask allocation.

    Calibration and statistics use the task's seeded preprocessing split (`n_prep` images, default
    1.5 %); the float-vs-int8 error is measured on the first `error_images` validation images.
    """
    from model.deploy.e2e import balanced_masks, per_layer_masks

    if allocation not in ALLOCATIONS:
        raise VelcroError(f"allocation {allocation!r}: use one of {', '.join(ALLOCATIONS)}")
    t = None if threshold is None else _fraction(threshold)
    model = model if model is not None else load_default_model()
    data, split = _prep_and_val(task, n_prep, seed)
    mean, var = statistics if statistics is not None else hw_layer_statistics(task, len(split.prep), seed=seed, model=model)
    quant = calibrate(model, data.images[split.prep], input_calibration=input_calibration)
    if t is None:
        mask = torch.zeros(HW_CHANNELS, H, W, dtype=torch.bool)
    else:
        mask = (per_layer_masks if allocation == "per-layer" else balanced_masks)(var, t)
    configs = make_configs(quant, mask, mean)
    error = layer_error(model, quant, data.images[split.val[:error_images]]) if error_images > 0 else {}
    return LayerExport(
        configs=configs,
        input_scale=quant.input_scale,
        output_scale=quant.output_scale,
        weight_scales=quant.weight_scales,
        float_mean=np.asarray(mean, dtype=np.float64),
        task=str(task),
        threshold=None if t is None else float(t),
        allocation=allocation,
        channel_thresholds=[float(m.sum()) / (H * W) for m in mask],
        float_sha256=quant.float_sha256,
        input_calibration=input_calibration,
        calibration_images=quant.calibration_images,
        seed=seed,
        error=error,
    )


def save_export(export: LayerExport, path: str | Path) -> Path:
    """Write the export as one versioned `.npz` (see the module docstring for its layout)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise VelcroError(f"export file {path} must end in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = export.configs
    np.savez_compressed(
        path,
        format_version=np.array(export.version, dtype=np.int64),
        meta_json=np.array(json.dumps(export.meta(), sort_keys=True)),
        weights=np.stack([np.asarray(c.weights, dtype=np.int8) for c in cfg]),
        bias=np.array([c.bias for c in cfg], dtype=np.int32),
        mult=np.array([c.mult for c in cfg], dtype=np.uint16),
        shift=np.array([c.shift for c in cfg], dtype=np.uint8),
        mask=np.stack([np.asarray(c.mask, dtype=bool) for c in cfg]),
        avg=np.stack([np.asarray(c.avg, dtype=np.uint8) for c in cfg]),
        skip_en=np.array([c.skip_en for c in cfg], dtype=bool),
        weight_scales=np.asarray(export.weight_scales, dtype=np.float64),
        float_mean=np.asarray(export.float_mean, dtype=np.float64),
    )
    return path


_ARRAYS = {
    "weights": ((16, 3, 3), np.int8),
    "bias": ((16,), np.int32),
    "mult": ((16,), np.uint16),
    "shift": ((16,), np.uint8),
    "mask": ((16, 64, 64), np.bool_),
    "avg": ((16, 64, 64), np.uint8),
    "skip_en": ((16,), np.bool_),
    "weight_scales": ((16,), np.float64),
    "float_mean": ((16, 64, 64), np.float64),
}


def load_export(path: str | Path, *, model: DefaultCNN | None = None) -> LayerExport:
    """Read an export file; with `model`, also check it was made from that model's float layer."""
    path = Path(path)
    if not path.is_file():
        raise VelcroError(f"export file {path} does not exist; create it with `velcro export --out {path}`")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as err:
        raise VelcroError(f"{path} is not a readable .npz export ({err}); recreate it with `velcro export`") from None
    if "format_version" not in arrays or "meta_json" not in arrays:
        raise VelcroError(f"{path} is not a VELCRO layer export (no format_version); recreate it with `velcro export`")
    version = int(arrays["format_version"])
    if version != FORMAT_VERSION:
        raise VelcroError(
            f"{path} has export format version {version}, this code reads version {FORMAT_VERSION}; "
            "recreate it with `velcro export`"
        )
    meta = json.loads(str(arrays["meta_json"]))
    if meta.get("format") != FORMAT_NAME:
        raise VelcroError(f"{path} is not a VELCRO layer export; recreate it with `velcro export`")
    for name, (shape, dtype) in _ARRAYS.items():
        a = arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            got = None if a is None else f"{a.shape} {a.dtype}"
            raise VelcroError(f"{path}: array {name!r} should be {shape} {np.dtype(dtype)}, got {got}; the file is damaged")
    if model is not None and meta["float_sha256"] != float_layer_sha256(model):
        raise VelcroError(
            f"{path} was exported from a different float layer (SHA-256 {meta['float_sha256'][:12]}… vs "
            f"{float_layer_sha256(model)[:12]}…); re-run `velcro export` for this model"
        )
    try:
        configs = [
            ConvConfig(
                weights=arrays["weights"][c],
                bias=int(arrays["bias"][c]),
                mult=int(arrays["mult"][c]),
                shift=int(arrays["shift"][c]),
                mask=arrays["mask"][c],
                avg=arrays["avg"][c],
                skip_en=bool(arrays["skip_en"][c]),
            )
            for c in range(HW_CHANNELS)
        ]
    except ValueError as err:
        raise VelcroError(f"{path}: invalid hardware configuration ({err}); recreate it with `velcro export`") from None
    return LayerExport(
        configs=configs,
        input_scale=float(meta["input_scale"]),
        output_scale=float(meta["output_scale"]),
        weight_scales=arrays["weight_scales"],
        float_mean=arrays["float_mean"],
        task=meta["task"],
        threshold=meta["threshold"],
        allocation=meta["allocation"],
        channel_thresholds=list(meta["channel_densities"]),
        float_sha256=meta["float_sha256"],
        input_calibration=meta["input_calibration"],
        calibration_images=int(meta["calibration_images"]),
        seed=int(meta["seed"]),
        error=dict(meta["float_vs_int8_error"]),
        version=version,
    )
