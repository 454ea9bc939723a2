"""Threshold search: a tuple for a target C, or the largest C without accuracy loss.

The paper picks its tuples by trial and error. Here a tuple is derived from the statistics by one of
two one-parameter families, and the parameter is solved for the target C:

- `uniform`: the same T in every compressed layer (C = T exactly).
- `relative`: one global cut-off τ on each element's variance divided by its layer's mean variance;
  T_k is the share of layer k under τ (capped at `max_layer`). Layers with more value locality are
  compressed more, which is what the paper's hand-made tuples do.

Candidates are judged on a *tuning* split (`TuningSet`), disjoint from the preprocessing images
that produced the statistics and from the test images that evaluations report. For each C the
family that classifies more tuning images correctly wins. "Largest lossless C" scans C upwards,
then bisects between the last lossless and the first lossy point. Lossless (`TuningSet.lossless`)
means no loss on the tuning images *and* few enough changed decisions that a true loss of
`max_loss` (0.5 points) would have shown: a few dozen images cannot tell a small loss from noise,
and the scan tries many candidates, so a bare "no loss" would let lucky lossy tuples through.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Callable, Sequence, TypeVar

import torch

from model.errors import VelcroError
from model.velcro.compress import CompressedModel, Threshold, compression_masks, saving_ratio
from model.velcro.distributed import SINGLE, Sharding
from model.velcro.evaluate import predictions
from model.velcro.stats import ActivationStatistics

FAMILIES = ("uniform", "relative")
MAX_LOSS = 0.005  # the loss `TuningSet.lossless` excludes: 0.5 points of top-1 accuracy
Z_ONE_SIDED_95 = 1.645
T = TypeVar("T")
_DENOMINATOR = 10_000  # thresholds are rounded to 0.01 %


@dataclass(frozen=True)
class Score:
    """A model's top-1 decisions on the tuning images, against the uncompressed model's (all ranks)."""

    images: int
    correct: int
    lost: int  # images the uncompressed model gets right and this model wrong
    gained: int  # images the uncompressed model gets wrong and this model right
    changed: int  # images whose top-1 class differs from the uncompressed model's

    @property
    def accuracy(self) -> float:
        return self.correct / self.images

    @property
    def agreement(self) -> float:
        """Share of images that keep the uncompressed model's top-1 class."""
        return 1 - self.changed / self.images


class TuningSet:
    """The images a search judges its candidates on, with the uncompressed model's decisions on them.

    Under torchrun each rank keeps its share of the batches (`Sharding.mine`) and the counts of a
    `Score` are summed over the ranks, so every rank takes the same decisions as a single process.
    """

    def __init__(
        self, model: torch.nn.Module, images, labels: torch.Tensor, *, batch_size: int = 256, sharding: Sharding = SINGLE,
        max_loss: float = MAX_LOSS, z: float = Z_ONE_SIDED_95, progress: bool = False,
    ) -> None:
        if len(labels) == 0:
            raise VelcroError("the search needs tuning images: give --tune-images 1 or more")
        self.images, self.n, self.batch_size, self.sharding = images, len(labels), batch_size, sharding
        self.max_loss, self.z, self.progress = max_loss, z, progress
        self.scored = 0
        self.reference, batches = self._predictions(model, "tuning: uncompressed")
        self.labels = torch.cat([labels[b] for b in batches]) if batches else labels[:0]
        self.baseline = self._score(self.reference)

    def score(self, model: torch.nn.Module) -> Score:
        self.scored += 1
        return self._score(self._predictions(model, f"tuning: candidate {self.scored}")[0])

    def _predictions(self, model: torch.nn.Module, desc: str):
        return predictions(model, self.images, self.n, batch_size=self.batch_size, sharding=self.sharding, progress=self.progress, desc=desc)

    def _score(self, predicted: torch.Tensor) -> Score:
        right, was_right = predicted == self.labels, self.reference == self.labels
        counts = [right.sum(), (was_right & ~right).sum(), (~was_right & right).sum(), (predicted != self.reference).sum()]
        correct, lost, gained, changed = self.sharding.sum(counts)
        return Score(self.n, correct, lost, gained, changed)

    def lossless(self, score: Score) -> bool:
        """No loss on the tuning images, and a true loss above `max_loss` unlikely.

        (1) at least as many tuning images correct as the uncompressed model (lost ≤ gained);
        (2) the one-sided upper confidence bound of the loss per image, (lost − gained +
        z·√(lost + gained)) / n, is at most `max_loss` (z = 1.645: 95 %; the paired difference of
        the two models, normal approximation, variance bounded by the share of changed outcomes).
        With nothing lost or gained both hold; with few tuning images little may change.
        """
        bound = (score.lost - score.gained + self.z * math.sqrt(score.lost + score.gained)) / score.images
        return score.lost <= score.gained and bound <= self.max_loss + 1e-12

    @property
    def rule(self) -> str:
        """`lossless` in words, with its parameters (for reports)."""
        return (f"no loss on the {self.n} tuning images (lost <= gained) and (lost - gained + {self.z:g}·sqrt(lost + gained)) "
                f"/ {self.n} <= {self.max_loss * 100:g} points")


@dataclass
class SearchPoint:
    """One explored tuple and its score on the tuning images."""

    family: str
    saving_ratio: float
    tune_accuracy: float
    thresholds: list[float | None]
    score: Score


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
    """Explores tuples on the tuning images and records every point it tried."""

    def __init__(
        self,
        model: torch.nn.Module,
        stats: ActivationStatistics,
        tuning: TuningSet,
        *,
        skip_first: bool = True,
        families: Sequence[str] = FAMILIES,
    ) -> None:
        self.model = model
        self.stats = stats
        self.tuning = tuning
        self.skip_first = skip_first
        self.families = tuple(families)
        self.baseline = tuning.baseline.accuracy
        self.explored: list[SearchPoint] = []

    def compressed(self, thresholds: Sequence[Threshold]) -> CompressedModel:
        return CompressedModel(self.model, self.stats, compression_masks(self.stats, thresholds))

    def best_at(self, target: float) -> tuple[SearchPoint, list[Threshold]]:
        """The best family's tuple for one target C (ties go to the first family)."""
        best = None
        for family in self.families:
            thresholds = family_thresholds(self.stats, family, target, skip_first=self.skip_first)
            ratio = saving_ratio(self.stats.sites, thresholds, self.stats.total_macs).saving_ratio
            score = self.tuning.score(self.compressed(thresholds))
            point = SearchPoint(family, ratio, score.accuracy, [None if t is None else float(t) for t in thresholds], score)
            self.explored.append(point)
            if best is None or score.correct > best[0].score.correct:
                best = (point, thresholds)
        return best

    def largest_lossless(self, *, step: float = 0.05, max_ratio: float = 0.9, refine: int = 4) -> tuple[SearchPoint, list[Threshold]]:
        """The largest C whose best tuple is lossless on the tuning images (`TuningSet.lossless`)."""

        def evaluate(target: float):
            candidate = self.best_at(target)
            return self.tuning.lossless(candidate[0].score), candidate

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
