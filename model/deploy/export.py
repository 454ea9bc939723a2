"""Export of the default CNN's hardware layer to the FPGA configuration, and the export file.

An export is the integer layer of `model.deploy.quantize` (weights, bias, M, S per channel) plus
the VELCRO mask of one threshold T and one allocation (`model.deploy.masks`) and the uint8
averages of the masked elements. `prepare_layer` computes everything that does not depend on T
(statistics, calibration, float-vs-int8 error) once per task; `PreparedLayer.export` builds the
`LayerExport` of a threshold and an allocation from it, and `export_layer` does both in one call.

The export file is one `.npz` (NumPy arrays only, `allow_pickle=False`): `format_version`,
`meta_json` (task, thresholds, allocation, calibration, scales, float-vs-int error, the SHA-256 of
the float layer's weight and bias bytes), and the per-channel arrays `weights` (16,3,3) int8,
`bias` (16,) int32, `mult` (16,) uint16, `shift` (16,) uint8, `mask` (16,64,64) bool, `avg`
(16,64,64) uint8, `skip_en` (16,) bool, `weight_scales` (16,) float64, `float_mean` (16,64,64)
float64 (the float VELCRO means, for the float-compressed reference path), and the zero-value
prediction configuration of every channel (ZP_CONFIG): `zp_en` (16,) bool, `zp_pattern` (16,) uint8
(`model.hw.golden.ZP_PATTERNS`), `zp_max` (16,) uint8 in output LSBs. The float ZP_MAX it came from
is in the metadata (`zp_max`, with `zp_pattern` by name and `zp_max_uint8`); the uint8 value is
⌊zp_max / s_y⌋ clamped to 0..255 (`model.deploy.quantize.zp_max_to_uint8`). Format version 1 (no
prediction arrays) is still read, with prediction off.

Integrity: the zip container keeps a CRC-32 of every array, and `load_export` reads every member
whole so that each CRC is checked; a truncated or corrupted file, a version it does not read, or
metadata without the keys it needs raise `VelcroError`.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.deploy.hw_layer import hw_layer_statistics, task_split
from model.deploy.masks import allocation_masks, check_allocation
from model.deploy.quantize import LayerQuantization, calibrate, float_layer_sha256, layer_error, make_configs, zp_max_to_uint8
from model.errors import VelcroError
from model.hw.golden import H, W, ConvConfig
from model.nets.data import Split, TaskData
from model.nets.default_model import HW_CHANNELS, DefaultCNN, load_default_model
from model.velcro.compress import parse_threshold
from model.velcro.predict import parse_pattern, parse_zp_max, pattern_name

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no prediction arrays (prediction off)
FORMAT_NAME = "velcro-hw-layer-export"

__all__ = [
    "FORMAT_VERSION",
    "LayerExport",
    "PreparedLayer",
    "prepare_layer",
    "export_layer",
    "save_export",
    "load_export",
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
    float_sha256: str
    input_calibration: str = "max"
    calibration_images: int = 0
    seed: int = 0
    error: dict = field(default_factory=dict)
    version: int = FORMAT_VERSION
    zp_pattern: str | None = None  # "grid2" | "checker" (None = prediction off)
    zp_max: float = 0.0  # ZP_MAX in the float layer's units (the configs hold it in output LSBs)

    @property
    def zp_max_uint8(self) -> int:
        return int(self.configs[0].zp_max)

    @property
    def masks(self) -> np.ndarray:
        return np.stack([np.asarray(c.mask, dtype=bool) for c in self.configs])

    @property
    def channel_densities(self) -> list[float]:
        """Achieved mask density per channel: compressed elements / 4096."""
        return [float(m.sum()) / (H * W) for m in self.masks]

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
            "channel_densities": self.channel_densities,
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
            "zp_pattern": self.zp_pattern,
            "zp_max": self.zp_max,
            "zp_max_uint8": self.zp_max_uint8,
        }


# ---------------------------------------------------------------------- building exports
@dataclass
class PreparedLayer:
    """The hardware layer prepared for one task: float statistics, quantization and float-vs-int8 error."""

    model: DefaultCNN
    task: str
    seed: int
    mean: torch.Tensor  # (16, 64, 64) float64 preprocessing means
    var: torch.Tensor  # (16, 64, 64) float64 preprocessing variances
    quant: LayerQuantization
    error: dict

    def export(self, threshold, allocation: str = "per-layer", *, zp_pattern: str | None = None, zp_max: float = 0.0) -> LayerExport:
        """The export of threshold T (a fraction in [0, 1), None = no compression) with `allocation`.

        `zp_pattern` ("grid2" | "checker", None = off) switches zero-value prediction on in every
        channel with threshold `zp_max` in the float layer's units, stored as ⌊zp_max / s_y⌋ (0..255).
        """
        check_allocation(allocation)
        t = None if threshold is None else parse_threshold(threshold)
        code = None if zp_pattern is None else parse_pattern(zp_pattern)
        zp_max = parse_zp_max(zp_max)
        mask = allocation_masks(self.var, t, allocation)
        q = self.quant
        return LayerExport(
            configs=make_configs(q, mask, self.mean, zp_pattern=code, zp_max=zp_max_to_uint8(zp_max, q.output_scale)),
            input_scale=q.input_scale,
            output_scale=q.output_scale,
            weight_scales=q.weight_scales,
            float_mean=np.asarray(self.mean, dtype=np.float64),
            task=self.task,
            threshold=None if t is None else float(t),
            allocation=allocation,
            float_sha256=q.float_sha256,
            input_calibration=q.input_calibration,
            calibration_images=q.calibration_images,
            seed=self.seed,
            error=self.error,
            zp_pattern=None if code is None else pattern_name(code),
            zp_max=zp_max,
        )


def prepare_layer(
    task: str = "footwear",
    *,
    model: DefaultCNN | None = None,
    n_prep: int | None = None,
    seed: int = 0,
    input_calibration: str = "max",
    error_images: int = 64,
    statistics: tuple[torch.Tensor, torch.Tensor] | None = None,
    split: tuple[TaskData, Split] | None = None,
) -> PreparedLayer:
    """Statistics, calibration and float-vs-int8 error of the hardware layer for `task`.

    Statistics and calibration use the task's seeded preprocessing split (`n_prep` images, default
    1.5 %; `split` passes an already computed `task_split(task, n_prep, seed=seed)`); the
    float-vs-int8 error is measured on the first `error_images` validation images (0: skipped).
    `statistics` = (mean, variance) replaces the statistics pass.
    """
    model = model if model is not None else load_default_model()
    data, split_ = split if split is not None else task_split(task, n_prep, seed=seed)
    if statistics is not None:
        mean, var = statistics
    else:
        mean, var = hw_layer_statistics(task, len(split_.prep), seed=seed, model=model)
    quant = calibrate(model, data.images[split_.prep], input_calibration=input_calibration)
    error = layer_error(model, quant, data.images[split_.val[:error_images]]) if error_images > 0 else {}
    return PreparedLayer(model, str(task), seed, mean, var, quant, error)


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
    zp_pattern: str | None = None,
    zp_max: float = 0.0,
) -> LayerExport:
    """Export the hardware layer for `task` at threshold T with the given mask allocation.

    `prepare_layer(...).export(threshold, allocation, zp_pattern=..., zp_max=...)`, with every
    parameter checked before the statistics are computed.
    """
    check_allocation(allocation)
    if threshold is not None:
        parse_threshold(threshold)
    if zp_pattern is not None:
        parse_pattern(zp_pattern)
    parse_zp_max(zp_max)
    layer = prepare_layer(
        task,
        model=model,
        n_prep=n_prep,
        seed=seed,
        input_calibration=input_calibration,
        error_images=error_images,
        statistics=statistics,
    )
    return layer.export(threshold, allocation, zp_pattern=zp_pattern, zp_max=zp_max)


# ---------------------------------------------------------------------- the export file
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
        zp_en=np.array([c.zp_en for c in cfg], dtype=bool),
        zp_pattern=np.array([c.zp_pattern for c in cfg], dtype=np.uint8),
        zp_max=np.array([c.zp_max for c in cfg], dtype=np.uint8),
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
_ZP_ARRAYS = {  # from format version 2
    "zp_en": ((16,), np.bool_),
    "zp_pattern": ((16,), np.uint8),
    "zp_max": ((16,), np.uint8),
}


# The metadata keys load_export reads, each with the JSON types it accepts (bool is never a number).
_NUMBER, _INTEGER, _TEXT, _NONE = (int, float), (int,), (str,), (type(None),)
_META_KEYS = {
    "task": _TEXT, "threshold": _NUMBER + _NONE, "allocation": _TEXT, "float_sha256": _TEXT,
    "input_scale": _NUMBER, "output_scale": _NUMBER, "input_calibration": _TEXT,
    "calibration_images": _INTEGER, "seed": _INTEGER, "float_vs_int8_error": (dict,),
}  # fmt: skip
_ZP_META_KEYS = {"zp_pattern": _TEXT + _NONE, "zp_max": _NUMBER}  # from format version 2


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the .npz, each member read whole so that its CRC-32 is checked.

    `np.load` stops at an array's last byte and so can miss a damaged member, and a damaged archive
    makes zipfile, zlib or NumPy's header parser raise any of a dozen exception types, among them
    BadZipFile, zlib.error, EOFError and NotImplementedError (for a garbled compression method). All
    of them mean the file is unreadable, so all become one `VelcroError`.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return {
                name.removesuffix(".npy"): np.lib.format.read_array(io.BytesIO(archive.read(name)), allow_pickle=False)
                for name in archive.namelist()
            }
    except Exception as err:  # any failure here means a damaged file (see the docstring)
        raise VelcroError(f"{path} is not a readable .npz export ({type(err).__name__}: {err}); "
                          "recreate it with `velcro export`") from None


def _read_meta(path: Path, meta_json: np.ndarray) -> dict:
    """The metadata record, refused unless it is a VELCRO export's JSON object."""
    try:
        meta = json.loads(str(meta_json)) if meta_json.shape == () and meta_json.dtype.kind == "U" else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise VelcroError(f"{path} is not a VELCRO layer export; recreate it with `velcro export`")
    return meta


def load_export(path: str | Path, *, model: DefaultCNN | None = None) -> LayerExport:
    """Read an export file; with `model`, also check it was made from that model's float layer."""
    path = Path(path)
    if not path.is_file():
        raise VelcroError(f"export file {path} does not exist; create it with `velcro export --out {path}`")
    arrays = _read_arrays(path)
    if "format_version" not in arrays or "meta_json" not in arrays:
        raise VelcroError(f"{path} is not a VELCRO layer export (no format_version); recreate it with `velcro export`")
    stored_version = arrays["format_version"]
    if stored_version.shape != () or stored_version.dtype.kind not in "iu" or int(stored_version) not in READABLE_VERSIONS:
        raise VelcroError(
            f"{path} has export format version {stored_version.tolist()!r}, this code reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}; recreate it with `velcro export`"
        )
    version = int(stored_version)
    meta = _read_meta(path, arrays["meta_json"])
    expected = _ARRAYS | (_ZP_ARRAYS if version >= 2 else {})
    for name, (shape, dtype) in expected.items():
        a = arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            got = None if a is None else f"{a.shape} {a.dtype}"
            raise VelcroError(f"{path}: array {name!r} should be {shape} {np.dtype(dtype)}, got {got}; the file is damaged")
    keys = _META_KEYS | (_ZP_META_KEYS if version >= 2 else {})
    missing = [key for key in keys if key not in meta]
    if missing:
        raise VelcroError(f"{path}: the metadata lacks {', '.join(missing)}; the file is damaged, recreate it with `velcro export`")
    wrong = [
        f"{key} = {meta[key]!r}" for key, types in keys.items()
        if isinstance(meta[key], bool) or not isinstance(meta[key], types)
    ]  # fmt: skip
    if wrong:
        raise VelcroError(f"{path}: the metadata has values of the wrong type ({', '.join(wrong)}); the file is damaged, "
                          "recreate it with `velcro export`")
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
                zp_en=bool(arrays["zp_en"][c]) if version >= 2 else False,
                zp_pattern=int(arrays["zp_pattern"][c]) if version >= 2 else 0,
                zp_max=int(arrays["zp_max"][c]) if version >= 2 else 0,
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
        float_sha256=meta["float_sha256"],
        input_calibration=meta["input_calibration"],
        calibration_images=int(meta["calibration_images"]),
        seed=int(meta["seed"]),
        error=dict(meta["float_vs_int8_error"]),
        version=version,
        zp_pattern=meta.get("zp_pattern"),
        zp_max=float(meta.get("zp_max", 0.0)),
    )
