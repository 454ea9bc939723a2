"""VELCRO compression (Algorithm 1 steps 6–7) and the compression-saving ratio (Eq. 2).

A threshold tuple holds one T_k per activation output. The paper's tables give percents and, for
ResNet-18 and GoogLeNet, leave the first activation out; both forms are accepted here and no other,
so a tuple is never silently misaligned. Thresholds are kept as exact fractions: ⌊T_k·n_k⌋ of
0.29 × 100 elements is 29, not the 28 that binary floating point gives.

In layer k exactly ⌊T_k·n_k⌋ elements with the lowest variance are replaced by their mean B; among
equal variances (post-ReLU elements that are always zero tie at 0) the lower flat index (C, H, W
order) goes first, so masks are reproducible.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Sequence

import torch
import torch.nn as nn

from model.errors import VelcroError
from model.velcro.sites import SiteInfo, intercept
from model.velcro.stats import ActivationStatistics

Threshold = Fraction | None  # None: the site is left alone (not compressed, not in the ratio)
LEFT_ALONE = "-"  # how a tuple writes a None entry


# Largest decimal exponent a threshold may be written with: Fraction("1e-99999999") would spend
# minutes building 10**99999999, and no threshold needs more than a few digits.
_MAX_EXPONENT = 1000


def _to_fraction(value) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise VelcroError(f"threshold {value} is not a number; give values like 0.3 (or 30 with --percent)")
        return Fraction(repr(value))  # the decimal the user wrote, exactly
    text = str(value).strip()
    with contextlib.suppress(InvalidOperation):  # not a decimal ("3/10", "abc"): Fraction decides below
        exponent = Decimal(text).as_tuple().exponent
        if isinstance(exponent, int) and abs(exponent) > _MAX_EXPONENT:
            raise VelcroError(f"threshold {value!r} has more digits than a threshold needs (decimal exponent "
                              f"{exponent}); give values like 0.3 (or 30 with --percent)")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise VelcroError(f"threshold {value!r} is not a number; give values like 0.3 (or 30 with --percent)") from None


def parse_threshold(value, *, percent: bool = False, name: str = "threshold") -> Fraction:
    """One threshold T as an exact fraction in [0, 1).

    `value` is a fraction in [0, 1) (0.3), or with `percent` a percent in [0, 100) (30); a number, a
    string or a `Fraction`. Anything else, or a value outside the range, raises `VelcroError`
    naming `name`. This is the one place that decides what a valid threshold is.
    """
    t = _to_fraction(value)
    scale = Fraction(100) if percent else Fraction(1)
    if not 0 <= t < scale:
        unit = "percent in [0, 100)" if percent else "fractions in [0, 1)"
        hint = " (they look like percents: add --percent / percent=True)" if not percent and 1 <= t < 100 else ""
        raise VelcroError(f"{name} is {float(t):g}, outside the accepted range: thresholds are {unit}{hint}")
    return t / scale


def tuple_items(values: str | Sequence, *, name: str = "threshold tuple") -> list:
    """The entries of a per-layer tuple (thresholds, ZP_MAX) given as a sequence or a comma-separated
    string ("40,40,36" or "(40, 40, 36)").

    An empty entry ("40,,36") is refused: dropping it would shift the rest of the tuple against the layers.
    """
    if not isinstance(values, str):
        return list(values)
    text = values.strip().strip("()[]").strip()
    if not text.strip(" ,"):  # nothing but separators: a tuple of 0 entries
        return []
    items = [p.strip() for p in text.split(",")]
    if "" in items:
        raise VelcroError(f"entry {items.index('')} of the {name} {values!r} is empty; give one value "
                          "between every two commas")
    return items


def check_percent_tuple(values: str | Sequence, *, name: str = "thresholds") -> None:
    """Refuse percents that are all below 1: 0.3 with --percent means 0.3 %, almost surely a fraction meant as 30 %.
    Entries "-" (left alone) are not values and are not counted."""
    fractions = [_to_fraction(v) for v in tuple_items(values, name=name) if str(v).strip() != LEFT_ALONE]
    if fractions and all(t < 1 for t in fractions) and any(t > 0 for t in fractions):
        raise VelcroError(
            f"--percent / percent=True is given but every value of the {name} is below 1 "
            f"({', '.join(f'{float(t):g}' for t in fractions)} would mean {float(max(fractions)):g} % at most): "
            "drop --percent to give fractions (0.3 = 30 %), or write percents like 30"
        )


def parse_thresholds(values: str | Sequence, n_sites: int, *, percent: bool = False) -> list[Threshold]:
    """Align a threshold tuple with a model's `n_sites` activation outputs.

    `values` is a sequence or a comma-separated string ("40,40,36" or "(40, 40, 36)"). With
    `percent` the values are the paper's percents in [0, 100), otherwise fractions in [0, 1).
    A tuple of `n_sites` entries covers every output; one of `n_sites - 1` leaves the first alone.
    Percents that are all below 1 are refused (`check_percent_tuple`). An entry "-" leaves its output
    alone, as `velcro search` prints it, so a printed tuple can be given back.
    """
    fractions = [None if str(v).strip() == LEFT_ALONE else _to_fraction(v) for v in tuple_items(values)]
    if not fractions:
        raise VelcroError(f"the threshold tuple has 0 entries but the model has {n_sites} activation outputs: "
                          f"give {n_sites} (one per activation output) or {n_sites - 1} (all but the first)")
    if percent:
        check_percent_tuple(values, name="threshold tuple")
    if len(fractions) not in (n_sites, n_sites - 1):
        raise VelcroError(
            f"the threshold tuple has {len(fractions)} entries but the model has {n_sites} activation "
            f"outputs: give {n_sites} (one per activation output) or {n_sites - 1} (all but the first, "
            "as in the paper's ResNet-18 and GoogLeNet tables)"
        )
    result: list[Threshold] = [None if v is None else parse_threshold(v, percent=percent, name=f"threshold {i}")
                               for i, v in enumerate(fractions)]  # fmt: skip
    return [None] + result if len(result) == n_sites - 1 else result


@dataclass(frozen=True)
class LayerRatio:
    """One activation output's share of the saving."""

    name: str
    shape: tuple[int, ...]
    elements: int
    threshold: float | None
    compressed: int  # ⌊T·n⌋
    macs: int  # per image, of the convolutions producing this output


@dataclass(frozen=True)
class SavingRatio:
    """Eq. 2 over the compressed layers, element-weighted and MAC-weighted."""

    saving_ratio: float  # Σ T_k n_k / Σ n_k over the layers with a threshold
    mac_weighted_ratio: float  # Σ T_k M_k / Σ M_k over the same layers
    model_mac_fraction: float  # MACs saved per image / all convolution and linear MACs per image
    layers: list[LayerRatio]

    def to_dict(self) -> dict:
        return {
            "saving_ratio": self.saving_ratio,
            "mac_weighted_ratio": self.mac_weighted_ratio,
            "model_mac_fraction": self.model_mac_fraction,
            "layers": [
                {
                    "name": l.name,
                    "shape": list(l.shape),
                    "elements": l.elements,
                    "threshold": l.threshold,
                    "compressed_elements": l.compressed,
                    "macs": l.macs,
                }
                for l in self.layers
            ],
        }


def saving_ratio(sites: Sequence[SiteInfo], thresholds: Sequence[Threshold], total_macs: int) -> SavingRatio:
    """Compression-saving ratio C of a threshold tuple (already aligned by `parse_thresholds`)."""
    if len(thresholds) != len(sites):
        raise VelcroError(f"{len(thresholds)} thresholds for {len(sites)} activation outputs; align them with parse_thresholds")
    layers = [
        LayerRatio(s.name, s.shape, s.numel, None if t is None else float(t), 0 if t is None else math.floor(t * s.numel), s.macs)
        for s, t in zip(sites, thresholds)
    ]
    covered = [(s, t) for s, t in zip(sites, thresholds) if t is not None]
    elements = sum(s.numel for s, _ in covered)
    macs = sum(s.macs for s, _ in covered)
    saved_macs = sum(t * s.macs for s, t in covered)
    return SavingRatio(
        saving_ratio=float(sum(t * s.numel for s, t in covered) / elements) if elements else 0.0,
        mac_weighted_ratio=float(saved_macs / macs) if macs else 0.0,
        model_mac_fraction=float(saved_macs / total_macs) if total_macs else 0.0,
        layers=layers,
    )


def lowest_variance_mask(variance: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask of the `count` lowest-variance elements, ties to the lower flat index."""
    flat = variance.reshape(-1)
    order = torch.sort(flat, stable=True).indices[:count]
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    mask[order] = True
    return mask.view(variance.shape)


def compression_masks(stats: ActivationStatistics, thresholds: Sequence[Threshold]) -> list[torch.Tensor | None]:
    """Step 6: per site, the mask of elements replaced by their mean (None: site left alone)."""
    if len(thresholds) != len(stats.sites):
        raise VelcroError(f"{len(thresholds)} thresholds for {len(stats.sites)} activation outputs; align them with parse_thresholds")
    masks: list[torch.Tensor | None] = []
    for k, (site, t) in enumerate(zip(stats.sites, thresholds)):
        masks.append(None if t is None else lowest_variance_mask(stats.variance(k), math.floor(t * site.numel)))
    return masks


class CompressedModel(nn.Module):
    """Step 7: the model with every masked activation element replaced by its preprocessing mean."""

    def __init__(self, model: nn.Module, stats: ActivationStatistics, masks: Sequence[torch.Tensor | None]) -> None:
        super().__init__()
        if len(masks) != len(stats.sites):
            raise VelcroError(f"{len(masks)} masks for {len(stats.sites)} activation outputs")
        self.model = model
        self.n_sites = len(stats.sites)
        self.compressed_sites = [k for k, m in enumerate(masks) if m is not None]
        device = next(model.parameters(), torch.zeros(0)).device  # the replacements live where the model runs
        for k in self.compressed_sites:
            self.register_buffer(f"mask_{k}", masks[k].to(device, copy=True))
            self.register_buffer(f"mean_{k}", stats.mean(k).to(device, torch.float32))

    def _replace(self, index: int, _name: str, _function: str, out: torch.Tensor, _macs: int) -> torch.Tensor:
        mask = getattr(self, f"mask_{index}", None)
        if mask is None:
            return out
        return torch.where(mask, getattr(self, f"mean_{index}").to(out.dtype), out)

    def forward(self, *args, **kwargs):
        with intercept(self.model, self._replace) as mode:
            result = self.model(*args, **kwargs)
        if mode.index != self.n_sites:
            raise VelcroError(
                f"the model produced {mode.index} activation outputs but was compressed for {self.n_sites}; "
                "run it with the input size used for the statistics"
            )
        return result

    def zero_fraction(self) -> float:
        """Share of compressed elements whose replacement value is exactly zero (paper Table 4)."""
        total = zeros = 0
        for k in self.compressed_sites:
            mask = getattr(self, f"mask_{k}")
            total += int(mask.sum())
            zeros += int((getattr(self, f"mean_{k}")[mask] == 0).sum())
        return zeros / total if total else 0.0


def compress(model: nn.Module, stats: ActivationStatistics, thresholds: str | Sequence, *, percent: bool = False) -> CompressedModel:
    """Convenience: align `thresholds`, build the masks and return the compressed model."""
    aligned = parse_thresholds(thresholds, len(stats.sites), percent=percent)
    return CompressedModel(model, stats, compression_masks(stats, aligned))
