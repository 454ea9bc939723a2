"""Threshold search: a tuple for a target C, or the largest C without accuracy loss.

The paper picks its tuples by trial and error. Here a tuple is derived from the statistics by one of
two one-parameter families, and the parameter is solved for the target C:

- `uniform`: the same T in every compressed layer (C = T exactly).
- `relative`: one global cut-off τ on each element's variance divided by its layer's mean variance;
  T_k is the share of layer k under τ (capped at `max_layer`). Layers with more value locality are
  compressed more, which is what the paper's hand-made tuples do.

For each C the family with the higher accuracy on the *preprocessing* images wins (the validation
split is never looked at while searching). "Largest lossless C" scans C upwards, then bisects
between the last lossless and the first lossy point.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Callable, Sequence, TypeVar

import torch

from model.velcro.compress import CompressedModel, Threshold, compression_masks, saving_ratio
from model.errors import VelcroError
from model.velcro.stats import ActivationStatistics

FAMILIES = ("uniform", "relative")
T = TypeVar("T")
_DENOMINATOR = 10_000  # thresholds are rounded to 0.01 %


@dataclass
class SearchPoint:
    """One explored tuple."""

    family: str
    saving_ratio: float
    prep_accuracy: float
    thresholds: list[float | None]


def _covered(stats: ActivationStatistics, skip_first: bool) -> list[int]:
    return list(range(1 if skip_first else 0, len(stats.sites)))


def family_thresholds(
    stats: ActivationStatistics, family: str, target: float, *, skip_first: bool = True, max_layer: float = 0.95
) -> list[Threshold]:
    """The tuple of `family` whose element-weighted saving ratio is (as close as possible to) `target`."""
    if not 0 <= target < 1:
        raise VelcroError(f"target saving ratio {target} must be in [0, 1)")
    covered = _covered(stats, skip_first)
    thresholds: list[Threshold] = [None] * len(stats.sites)
    if family == "uniform":
        for k in covered:
            thresholds[k] = Fraction(round(target * _DENOMINATOR), _DENOMINATOR)
        return thresholds
    if family != "relative":
        raise VelcroError(f"unknown search family {family!r}: use one of {', '.join(FAMILIES)}")
    normalised = []
    for k in covered:
        variance = stats.variance(k).reshape(-1)
        normalised.append(torch.sort(variance / variance.mean().clamp(min=1e-30)).values)
    sizes = torch.tensor([stats.sites[k].numel for k in covered], dtype=torch.float64)

    def shares(tau: float) -> torch.Tensor:
        share = torch.tensor([float(torch.searchsorted(v, tau, right=True)) / len(v) for v in normalised], dtype=torch.float64)
        return share.clamp(max=max_layer)

    def ratio(tau: float) -> float:
        return float((shares(tau) * sizes).sum() / sizes.sum())

    if target > ratio(float("inf")):
        raise VelcroError(
            f"target saving ratio {target:.3f} is above what the relative family reaches with at most "
            f"{max_layer:.0%} per layer; lower the target or raise max_layer"
        )
    low, high = 0.0, 1.0
    while ratio(high) < target:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if ratio(middle) < target else (low, middle)
    for k, share in zip(covered, shares(high).tolist()):
        thresholds[k] = Fraction(math.floor(share * _DENOMINATOR), _DENOMINATOR)
    return thresholds


def largest_passing(
    evaluate: Callable[[float], tuple[bool, T]],
    *,
    first: float,
    step: float,
    maximum: float,
    refine: int,
    position: Callable[[T], float] | None = None,
    fallback: Callable[[], T] | None = None,
) -> T | None:
    """The candidate of the largest parameter that passes: a scan upwards, then a bisection.

    `evaluate(p)` returns (passes, candidate). The scan tries p = first, first + step, … ≤ `maximum`
    and stops at the first failure; `refine` bisections then run between the last passing point
    (its `position(candidate)`, default p itself) and the first failing p. When nothing passes,
    `fallback()` gives the candidate to start from (position as above), or, without a fallback,
    the result is None. Both searches (VELCRO thresholds, prediction thresholds) use it.
    """
    passing, low, failed = None, None, None
    p = first
    while p <= maximum + 1e-9:
        ok, candidate = evaluate(p)
        if not ok:
            failed = p
            break
        passing, low = candidate, (p if position is None else position(candidate))
        p += step
    if passing is None:
        if fallback is None:
            return None
        passing = fallback()
        low = 0.0 if position is None else position(passing)
    high = failed
    for _ in range(refine if high is not None else 0):
        middle = (low + high) / 2
        ok, candidate = evaluate(middle)
        if ok:
            passing, low = candidate, middle
        else:
            high = middle
    return passing


class ThresholdSearch:
    """Explores tuples on the preprocessing images and records every point it tried."""

    def __init__(
        self,
        model: torch.nn.Module,
        stats: ActivationStatistics,
        prep_accuracy: Callable[[torch.nn.Module], float],
        *,
        skip_first: bool = True,
        families: Sequence[str] = FAMILIES,
    ) -> None:
        self.model = model
        self.stats = stats
        self.prep_accuracy = prep_accuracy
        self.skip_first = skip_first
        self.families = tuple(families)
        self.baseline = prep_accuracy(model)
        self.explored: list[SearchPoint] = []

    def compressed(self, thresholds: Sequence[Threshold]) -> CompressedModel:
        return CompressedModel(self.model, self.stats, compression_masks(self.stats, thresholds))

    def best_at(self, target: float) -> tuple[SearchPoint, list[Threshold]]:
        """The best family's tuple for one target C (ties go to the first family)."""
        best = None
        for family in self.families:
            thresholds = family_thresholds(self.stats, family, target, skip_first=self.skip_first)
            ratio = saving_ratio(self.stats.sites, thresholds, self.stats.total_macs).saving_ratio
            point = SearchPoint(family, ratio, self.prep_accuracy(self.compressed(thresholds)), [None if t is None else float(t) for t in thresholds])
            self.explored.append(point)
            if best is None or point.prep_accuracy > best[0].prep_accuracy:
                best = (point, thresholds)
        return best

    def largest_lossless(self, *, step: float = 0.05, max_ratio: float = 0.9, refine: int = 4) -> tuple[SearchPoint, list[Threshold]]:
        """The largest C whose best tuple keeps the baseline accuracy on the preprocessing images."""

        def evaluate(target: float):
            candidate = self.best_at(target)
            return candidate[0].prep_accuracy >= self.baseline, candidate

        return largest_passing(
            evaluate,
            first=step,
            step=step,
            maximum=max_ratio,
            refine=refine,
            position=lambda candidate: candidate[0].saving_ratio,
            fallback=lambda: self.best_at(0.0),
        )

    def curve(self) -> list[dict]:
        return [asdict(p) for p in sorted(self.explored, key=lambda p: (p.saving_ratio, p.family))]
