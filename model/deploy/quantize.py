"""Integer model of the default CNN's hardware layer: quantization, configurations, golden runner.

The hardware layer `hw_dw` + `hw_relu` is 16 independent 3×3 depthwise channels; channel c is one
conv2d instance configured by one `model.hw.golden.ConvConfig` (arithmetic: rtl/README.md).

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
* Zero-value prediction: ZP_MAX is given in float (the layer's units) and compared with uint8
  outputs; a float output y = q·s_y satisfies y ≤ zp_max exactly when q ≤ ⌊zp_max / s_y⌋, so
  `zp_max_to_uint8` stores ⌊zp_max / s_y⌋ (an exact rational floor), clamped to 0..255.
* VELCRO: `make_configs` takes the compression mask (from `model.deploy.masks`) and the float
  preprocessing means; avg[c] = clamp(round(mean / s_y), 0, 255).

Rounding is NumPy's `rint` (half to even) everywhere; the bit-exact part is only the hardware's
arithmetic (`model.hw.golden`), which this module feeds with integers. `golden_runner` runs a set
of 16 configurations on IFMAPs with that golden model; any other `LayerRunner` (an RTL simulation,
a card) has the same signature.
"""
from __future__ import annotations

import hashlib
import math
from fractions import Fraction
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from model.deploy.hw_layer import hw_layer_input
from model.errors import VelcroError
from model.hw.golden import H, W, ConvConfig, frame_result
from model.nets.default_model import HW_CHANNELS, HW_SIZE, DefaultCNN

# layer_runner(configs, ifmaps (16, K, 64, 64) uint8) -> ofmaps (16, K, 64, 64) uint8
LayerRunner = Callable[[list[ConvConfig], np.ndarray], np.ndarray]

__all__ = [
    "LayerQuantization",
    "LayerRunner",
    "check_images",
    "float_layer_sha256",
    "mult_shift",
    "calibrate",
    "quantize_input",
    "dequantize_output",
    "make_configs",
    "golden_runner",
    "golden_layer",
    "zp_max_to_uint8",
    "layer_error",
]


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


# ---------------------------------------------------------------------- input checks
def _check_finite(name: str, array) -> None:
    a = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if not np.all(np.isfinite(a)):
        raise VelcroError(f"{name} contains NaN or infinite values; check the model and the images")


def check_images(images, count: str = "N") -> torch.Tensor:
    """`images` if it is a finite Fashion-MNIST tensor (count, 1, 28, 28), else `VelcroError`."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise VelcroError(f"images must be a Fashion-MNIST tensor of shape ({count}, 1, 28, 28), got {shape}")
    _check_finite("images", images)
    return images


def _check_ifmaps(configs: list[ConvConfig], ifmaps: np.ndarray) -> None:
    if len(configs) != HW_CHANNELS or not all(isinstance(c, ConvConfig) for c in configs):
        raise VelcroError(f"give 16 ConvConfig objects, one per channel (got {len(configs)})")
    if (
        not isinstance(ifmaps, np.ndarray)
        or ifmaps.dtype != np.uint8
        or ifmaps.ndim != 4
        or ifmaps.shape[0] != HW_CHANNELS
        or ifmaps.shape[2:] != (HW_SIZE, HW_SIZE)
    ):
        got = f"{ifmaps.shape} {ifmaps.dtype}" if isinstance(ifmaps, np.ndarray) else type(ifmaps).__name__
        raise VelcroError(f"IFMAPs must be a uint8 array of shape (16, K, 64, 64), got {got}")


# ---------------------------------------------------------------------- scales and integer parameters
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
    check_images(calib_images)
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


# ---------------------------------------------------------------------- float <-> integer tensors
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


def make_configs(
    quant: LayerQuantization,
    mask: np.ndarray | torch.Tensor | None,
    mean: np.ndarray | torch.Tensor | None,
    *,
    skip_en: bool = True,
    zp_pattern: int | None = None,
    zp_max: int = 0,
) -> list[ConvConfig]:
    """The 16 instance configurations; `mask` (16,64,64) bool (None = nothing compressed), `mean` float.

    `zp_pattern` (a `model.hw.golden.ZP_PATTERNS` code, None = prediction off) and `zp_max` (uint8,
    in output LSBs) set every channel's ZP_CONFIG.
    """
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
            zp_en=zp_pattern is not None,
            zp_pattern=0 if zp_pattern is None else int(zp_pattern),
            zp_max=int(zp_max),
        )
        for c in range(HW_CHANNELS)
    ]


def zp_max_to_uint8(zp_max: float, output_scale: float) -> int:
    """ZP_MAX of the float layer in output LSBs: ⌊zp_max / s_y⌋ computed exactly, clamped to 0..255.

    q·s_y ≤ zp_max ⟺ q ≤ zp_max / s_y ⟺ q ≤ ⌊zp_max / s_y⌋ for integer q, so the uint8 comparison of
    the hardware decides exactly as the float comparison on dequantized outputs would.
    """
    if not (output_scale > 0 and math.isfinite(output_scale)):
        raise VelcroError(f"output scale {output_scale} must be a positive number")
    if not (zp_max >= 0 and math.isfinite(zp_max)):
        raise VelcroError(f"ZP_MAX {zp_max} must be a finite value ≥ 0 in the layer's units")
    return min(255, math.floor(Fraction(zp_max) / Fraction(output_scale)))


# ---------------------------------------------------------------------- running the integer layer
def golden_layer(configs: list[ConvConfig], ifmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`model.hw.golden.frame_result` for every channel and image: (ofmaps, predicted outputs (16, K) int64)."""
    _check_ifmaps(configs, ifmaps)
    out = np.empty(ifmaps.shape, dtype=np.uint8)
    predicted = np.zeros(ifmaps.shape[:2], dtype=np.int64)
    for c, cfg in enumerate(configs):
        for i in range(ifmaps.shape[1]):
            frame = frame_result(ifmaps[c, i], cfg)
            out[c, i] = frame.ofmap
            predicted[c, i] = frame.predicted_outputs
    return out, predicted


def golden_runner(configs: list[ConvConfig], ifmaps: np.ndarray) -> np.ndarray:
    """The reference `LayerRunner`: `model.hw.golden.frame_result` for every channel and image."""
    return golden_layer(configs, ifmaps)[0]


def layer_error(model: DefaultCNN, quant: LayerQuantization, images: torch.Tensor) -> dict:
    """Float vs dequantized int8 layer output (no compression), via the golden model, on `images`."""
    check_images(images)
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
