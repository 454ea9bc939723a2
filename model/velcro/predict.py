"""Zero-value prediction on activation outputs, alone or composed with VELCRO, and its MAC count.

ReLU outputs that are zero cluster in space. Per output channel of a conv → (BN) → ReLU output, a
fixed set of positions (the *anchors* of a pattern) is always computed; any other position is
*predicted*: output 0 and none of its MACs spent, when every anchor within one row and one column
of it (inside the map) has a value at most the layer's threshold ZP_MAX. The patterns are the
hardware's (`model.hw.golden.ZP_PATTERNS`): GRID2, anchors where row and column are both even (1/4
of the positions), and CHECKER, anchors where row + column is even (1/2).

Composition with VELCRO: the static mask is applied first. A compressed element takes its
preprocessing mean and is neither an anchor nor predicted (it costs no MACs anyway); a compressed
anchor takes part in the prediction with its mean as its value. This is the float version of
`model.hw.golden.frame_result`, on whole (N, C, H, W) tensors with torch ops.

MACs: an element of activation output k costs M_k / n_k MACs (M_k: the MACs of the convolutions
that produce output k per image, `model.velcro.sites`; after a residual add that is the convolution
of the branch, not the add). The MAC reduction of a set of *evaluated* layers (those with a VELCRO
threshold or a ZP_MAX) is Σ_k (compressed_k + predicted_k)·M_k/n_k / Σ_k M_k, averaged over the
images seen; without prediction it is Σ_k compressed_k·M_k/n_k / Σ_k M_k.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.errors import VelcroError
from model.hw.golden import ZP_CHECKER, ZP_GRID2, ZP_PATTERNS
from model.velcro.compress import LEFT_ALONE, CompressedModel, Threshold, compression_masks, tuple_items
from model.velcro.distributed import SINGLE, Sharding
from model.velcro.search import Score, TuningSet, largest_passing
from model.velcro.stats import ActivationStatistics

PATTERNS = tuple(ZP_PATTERNS)  # ("grid2", "checker")
ZpMax = float | None  # None: no prediction in this activation output

__all__ = [
    "PATTERNS",
    "parse_pattern",
    "pattern_name",
    "parse_zp_max",
    "parse_zp_maxes",
    "anchor_map",
    "predict_zeros",
    "LayerMacs",
    "MacReduction",
    "PredictingModel",
    "predicting_model",
    "PredictionPoint",
    "PredictionSearch",
]


# ---------------------------------------------------------------------- parameters
def parse_pattern(pattern) -> int:
    """The hardware code of a prediction pattern: "grid2" → 0, "checker" → 1 (names or codes)."""
    if isinstance(pattern, str) and pattern.strip().lower() in ZP_PATTERNS:
        return ZP_PATTERNS[pattern.strip().lower()]
    if isinstance(pattern, int) and not isinstance(pattern, bool) and pattern in ZP_PATTERNS.values():
        return pattern
    raise VelcroError(f"unknown prediction pattern {pattern!r}: use {' or '.join(PATTERNS)}")


def pattern_name(pattern) -> str:
    code = parse_pattern(pattern)
    return next(name for name, c in ZP_PATTERNS.items() if c == code)


def parse_zp_max(value, *, name: str = "ZP_MAX") -> float:
    """One prediction threshold: a finite number ≥ 0 in the layer's units (0 = exact zeros only)."""
    try:
        v = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except ValueError:
        raise VelcroError(f"{name} {value!r} is not a number; give a value ≥ 0 in the layer's units, like 0 or 0.05") from None
    if math.isnan(v) or math.isinf(v):
        raise VelcroError(f"{name} is {v}; give a finite value ≥ 0 in the layer's units")
    if v < 0:
        raise VelcroError(f"{name} is {v:g}, negative; give a value ≥ 0 in the layer's units (0 = exact zeros only)")
    return v


def parse_zp_maxes(values, n_sites: int) -> list[ZpMax]:
    """Align ZP_MAX values with a model's `n_sites` activation outputs.

    One value applies to every activation output but the first (left alone by default, as in
    VELCRO). A tuple (sequence or comma-separated string) has `n_sites` entries, or `n_sites - 1`
    for all but the first, exactly like VELCRO's threshold tuples; an entry `-` (or None) switches
    prediction off in that output.
    """
    if isinstance(values, str):
        items = tuple_items(values, name="ZP_MAX tuple")
    elif isinstance(values, (int, float)):
        items = [values]
    else:
        items = list(values)
    if not items:
        raise VelcroError("no ZP_MAX value given; give one value (e.g. 0) or one per activation output")
    if len(items) == 1 and n_sites > 1:
        items = [None] + items * (n_sites - 1)
    if len(items) not in (n_sites, n_sites - 1):
        raise VelcroError(
            f"the ZP_MAX tuple has {len(items)} entries but the model has {n_sites} activation outputs: give one "
            f"value, {n_sites} (one per activation output) or {n_sites - 1} (all but the first)"
        )
    parsed = [None if v is None or str(v).strip() == LEFT_ALONE else parse_zp_max(v, name=f"ZP_MAX {i}") for i, v in enumerate(items)]
    return [None] + parsed if len(parsed) == n_sites - 1 else parsed


# ---------------------------------------------------------------------- the rule
def anchor_map(pattern, height: int, width: int, device=None) -> torch.Tensor:
    """(height, width) bool: the anchors of a pattern."""
    code = parse_pattern(pattern)
    y = torch.arange(height, device=device).view(-1, 1)
    x = torch.arange(width, device=device).view(1, -1)
    if code == ZP_GRID2:
        return (y % 2 == 0) & (x % 2 == 0)
    assert code == ZP_CHECKER
    return (y + x) % 2 == 0


def predict_zeros(
    values: torch.Tensor, pattern, zp_max: float, compressed: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the prediction rule to (N, C, H, W) activations; returns (output, predicted mask).

    `values` already hold the VELCRO means at the `compressed` positions ((C, H, W) or
    (N, C, H, W) bool, None = nothing compressed). A position is predicted when it is neither an
    anchor nor compressed and no anchor within |dy| ≤ 1, |dx| ≤ 1 exceeds `zp_max`; its output is 0.
    """
    if values.dim() != 4:
        raise VelcroError(f"zero-value prediction works on (N, C, H, W) maps, got shape {tuple(values.shape)}")
    zp_max = parse_zp_max(zp_max)
    anchor = anchor_map(pattern, values.shape[2], values.shape[3], values.device)
    hot = (anchor & (values > zp_max)).to(torch.float32)  # anchors above ZP_MAX (compressed ones by their mean)
    near_hot = F.max_pool2d(hot.flatten(0, 1).unsqueeze(1), 3, stride=1, padding=1).view(values.shape) > 0
    predicted = ~anchor & ~near_hot
    if compressed is not None:
        predicted &= ~compressed.to(torch.bool)
    return values.masked_fill(predicted, 0), predicted


# ---------------------------------------------------------------------- MAC accounting
@dataclass(frozen=True)
class LayerMacs:
    """One evaluated activation output: its cost and what was skipped, per image."""

    name: str
    shape: tuple[int, ...]
    elements: int
    macs: int  # per image, of the convolutions producing this output
    threshold: float | None  # VELCRO T (None: not compressed)
    zp_max: float | None  # None: no prediction
    compressed: int  # elements per image
    predicted: float  # elements per image, averaged over the images seen

    @property
    def macs_per_element(self) -> float:
        return self.macs / self.elements


@dataclass(frozen=True)
class MacReduction:
    """MACs skipped by VELCRO and prediction over the evaluated activation outputs."""

    mac_reduction: float  # (compressed + predicted) MACs / MACs of the evaluated layers
    mac_reduction_without_prediction: float  # compressed MACs / the same
    predicted_fraction: float  # predicted elements / elements of the evaluated layers
    predicted_mac_fraction: float  # predicted MACs / MACs of the evaluated layers
    model_mac_fraction: float  # skipped MACs / all convolution and linear MACs of the model
    images: int
    layers: list[LayerMacs]

    def to_dict(self) -> dict:
        result = asdict(self)
        result["layers"] = [asdict(l) | {"shape": list(l.shape)} for l in self.layers]
        return result


def mac_reduction(sites, thresholds: Sequence[Threshold], zp_maxes: Sequence[ZpMax], compressed: Sequence[int],
                  predicted: Sequence[float], total_macs: int, images: int) -> MacReduction:
    """The MAC reduction of per-site compressed and (per-image) predicted element counts."""
    layers = [
        LayerMacs(s.name, tuple(s.shape), s.numel, s.macs, None if t is None else float(t), z, c, p)
        for s, t, z, c, p in zip(sites, thresholds, zp_maxes, compressed, predicted)
        if t is not None or z is not None
    ]
    macs = sum(l.macs for l in layers)
    elements = sum(l.elements for l in layers)
    comp = sum(l.compressed * l.macs_per_element for l in layers)
    pred = sum(l.predicted * l.macs_per_element for l in layers)
    return MacReduction(
        mac_reduction=(comp + pred) / macs if macs else 0.0,
        mac_reduction_without_prediction=comp / macs if macs else 0.0,
        predicted_fraction=sum(l.predicted for l in layers) / elements if elements else 0.0,
        predicted_mac_fraction=pred / macs if macs else 0.0,
        model_mac_fraction=(comp + pred) / total_macs if total_macs else 0.0,
        images=images,
        layers=layers,
    )


# ---------------------------------------------------------------------- the model
class PredictingModel(CompressedModel):
    """A model with VELCRO (masks, may be all None) and zero-value prediction, counting what it skips.

    Every forward pass adds to the counters read by `mac_report()`; `reset_counts()` clears them.
    """

    def __init__(
        self,
        model: nn.Module,
        stats: ActivationStatistics,
        masks: Sequence[torch.Tensor | None],
        zp_maxes: Sequence[ZpMax] | None = None,
        pattern="grid2",
        thresholds: Sequence[Threshold] | None = None,
    ) -> None:
        super().__init__(model, stats, masks)
        n = len(stats.sites)
        self.sites = list(stats.sites)
        self.total_macs = stats.total_macs
        self.zp_maxes: list[ZpMax] = list(zp_maxes) if zp_maxes is not None else [None] * n
        if len(self.zp_maxes) != n:
            raise VelcroError(f"{len(self.zp_maxes)} ZP_MAX values for {n} activation outputs; align them with parse_zp_maxes")
        self.pattern = parse_pattern(pattern)
        for site, z in zip(self.sites, self.zp_maxes):
            if z is not None and len(site.shape) != 3:
                raise VelcroError(f"activation output {site.name} has shape {site.shape}, not (C, H, W): prediction needs 2-D maps; give '-' for it")
        self.thresholds = list(thresholds) if thresholds is not None else [
            None if m is None else m.float().mean().item() for m in masks
        ]
        self.compressed_counts = [0 if m is None else int(m.sum()) for m in masks]
        self.reset_counts()

    def reset_counts(self) -> None:
        self.images = 0
        self.predicted_counts = [0] * len(self.sites)

    def _replace(self, index: int, name: str, function: str, out: torch.Tensor, macs: int) -> torch.Tensor:
        out = super()._replace(index, name, function, out, macs)
        if index == 0:
            self.images += out.shape[0]
        zp = self.zp_maxes[index] if index < len(self.zp_maxes) else None
        if zp is None:
            return out
        new, predicted = predict_zeros(out, self.pattern, zp, getattr(self, f"mask_{index}", None))
        self.predicted_counts[index] += int(predicted.sum())
        return new

    def mac_report(self, sharding: Sharding = SINGLE) -> MacReduction:
        """The MACs skipped so far; with `sharding`, over the images of every rank (a collective)."""
        images, *predicted = sharding.sum([self.images, *self.predicted_counts])
        per_image = [p / images if images else 0.0 for p in predicted]
        return mac_reduction(self.sites, self.thresholds, self.zp_maxes, self.compressed_counts, per_image, self.total_macs, images)


def predicting_model(
    model: nn.Module, stats: ActivationStatistics, thresholds: Sequence[Threshold] | None = None,
    zp_maxes: Sequence[ZpMax] | None = None, pattern="grid2",
) -> PredictingModel:
    """VELCRO with aligned `thresholds` (None: no compression) plus prediction with aligned `zp_maxes`."""
    n = len(stats.sites)
    thresholds = list(thresholds) if thresholds is not None else [None] * n
    return PredictingModel(model, stats, compression_masks(stats, thresholds), zp_maxes, pattern, thresholds)


# ---------------------------------------------------------------------- search
@dataclass
class PredictionPoint:
    """One explored ZP_MAX tuple: ZP_MAX_k = ratios[k] × (mean activation of output k), None = off."""

    pattern: str
    family: str  # "uniform" (one r for every covered output) or "per-layer" (greedy, output by output)
    ratios: list[float | None]
    tune_accuracy: float
    tune_agreement: float  # share of tuning images whose top-1 class is the uncompressed model's
    mac_reduction: float
    mac_reduction_without_prediction: float
    predicted_fraction: float
    zp_maxes: list[float | None]
    score: Score


class PredictionSearch:
    """The largest MAC reduction without accuracy loss on the tuning images.

    ZP_MAX_k = r_k · mean_k, where mean_k is the mean of output k's preprocessing means, so every
    output's threshold is in its own units; r_k = 0 predicts from exact zeros only, None switches
    prediction off in output k. Two families, like VELCRO's search:

    * `uniform`: one r for every covered output, the largest lossless r of a scan r = 0, step, …
      ≤ max_ratio with a bisection (`model.velcro.search.largest_passing`);
    * `per-layer`: greedy, outputs in order of decreasing MACs, each given the largest lossless r_k
      of the same scan with the others as chosen so far (off if r_k = 0 already loses).

    A point is lossless by the rule of VELCRO's search (`TuningSet.lossless`); the lossless point
    with the larger MAC reduction wins. VELCRO `thresholds` (aligned, optional) are applied under the
    prediction; the baseline stays the uncompressed model.
    """

    def __init__(
        self,
        model: nn.Module,
        stats: ActivationStatistics,
        tuning: TuningSet,
        *,
        pattern="grid2",
        thresholds: Sequence[Threshold] | None = None,
        skip_first: bool = True,
    ) -> None:
        self.model, self.stats, self.tuning = model, stats, tuning
        self.pattern = pattern_name(pattern)
        n = len(stats.sites)
        self.thresholds = list(thresholds) if thresholds is not None else [None] * n
        self.masks = compression_masks(stats, self.thresholds)
        self.covered = [k for k in range(1 if skip_first else 0, n) if len(stats.sites[k].shape) == 3]
        self.scales = {k: float(stats.mean(k).mean()) for k in self.covered}
        self.baseline = tuning.baseline.accuracy
        self.explored: list[PredictionPoint] = []

    def uniform(self, ratio: float) -> list[float | None]:
        return [ratio if k in self.scales else None for k in range(len(self.stats.sites))]

    def zp_maxes(self, ratios: Sequence[float | None]) -> list[ZpMax]:
        return [None if r is None or k not in self.scales else max(0.0, r * self.scales[k]) for k, r in enumerate(ratios)]

    def model_at(self, ratios: Sequence[float | None]) -> PredictingModel:
        return PredictingModel(self.model, self.stats, self.masks, self.zp_maxes(ratios), self.pattern, self.thresholds)

    def at(self, ratios: Sequence[float | None], family: str = "uniform") -> PredictionPoint:
        predicting = self.model_at(ratios)
        score = self.tuning.score(predicting)
        report = predicting.mac_report(self.tuning.sharding)
        point = PredictionPoint(
            self.pattern, family, list(ratios), score.accuracy, score.agreement, report.mac_reduction,
            report.mac_reduction_without_prediction, report.predicted_fraction, predicting.zp_maxes, score,
        )
        self.explored.append(point)
        return point

    def lossless(self, point: PredictionPoint) -> bool:
        return self.tuning.lossless(point.score)

    def _scan(self, ratios_of: Callable[[float], list[float | None]], family: str, step: float, max_ratio: float, refine: int):
        def evaluate(ratio: float):
            point = self.at(ratios_of(ratio), family)
            return self.lossless(point), point

        return largest_passing(evaluate, first=0.0, step=step, maximum=max_ratio, refine=refine)

    def largest_lossless(self, *, step: float = 0.05, max_ratio: float = 1.0, refine: int = 3,
                         families: Sequence[str] = ("uniform", "per-layer")) -> PredictionPoint:
        """The lossless point with the largest MAC reduction (prediction off everywhere if none is)."""
        candidates = []
        if "uniform" in families:
            candidates.append(self._scan(self.uniform, "uniform", step, max_ratio, refine))
        if "per-layer" in families:
            ratios: list[float | None] = [None] * len(self.stats.sites)
            best = None
            for k in sorted(self.covered, key=lambda k: -self.stats.sites[k].macs):
                found = self._scan(lambda r, k=k: ratios[:k] + [r] + ratios[k + 1 :], "per-layer", step, max_ratio, refine)
                if found is not None:
                    ratios, best = found.ratios, found
            candidates.append(best)
        candidates = [c for c in candidates if c is not None]
        if not candidates:
            return self.at([None] * len(self.stats.sites), "off")
        return max(candidates, key=lambda p: p.mac_reduction)

    def curve(self) -> list[dict]:
        return [asdict(p) | {"lossless": self.lossless(p)} for p in self.explored]
