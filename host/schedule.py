"""Zero-aware work scheduling: a layer's channels as runs on the kernel's compute units.

With one VELCRO threshold per layer the channels' mask densities differ widely, so one channel per
unit leaves the unit of the densest channel setting the layer's pace. The layer's work is instead
cut into jobs, (channel, block of consecutive images), each one run (one start) of a unit, and the
plan balances the units' estimated ends. A plan uses only what is known before the run: the
configurations (masks, so every frame's cycles with prediction off) and, for channels with zero-value
prediction, the cycles of the tuning images (never the images it will run).

Plans (`PLANS`):

* ``split`` (the default): McNaughton's wrap-around rule with start costs. Channels, longest first,
  fill the units one after another up to a common capacity; a channel that does not fit is cut at an
  image boundary and goes on on the next unit. The smallest capacity with which every image fits is
  found by bisection. Every unit then ends within a frame or two of the others, and there are at most
  channels + units - 1 runs, so few start costs: a unit runs one or two jobs.
* ``lpt``: blocks of `block` images, longest processing time first, each to the unit whose
  estimated end is earliest (Graham's list scheduling). More starts, kept for comparison.
* ``fixed``: channel c on unit c, all images in one run, constant channels included (the mapping
  before scheduling, for comparison).

Constant channels (every output compressed, with SKIP_EN) have their average map as every OFMAP:
`split` and `lpt` serve them on the host and never send them to a unit.

Every run costs the kernel's start (image load, pipeline fill and drain, counters written back:
`model.hw.cycles.kernel_run_cycles`) and a host dispatch latency before it: the host starts a unit's
next run only when its previous one is done, so nothing overlaps the dispatch. `timeline` places the
runs' cycles (from the simulated kernel, or the cycle model) on the planned units.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from model.errors import VelcroError
from model.hw import cycles, golden
from model.hw.spec import BEATS_PER_FRAME, INSTANCES

PLANS = ("split", "lpt", "fixed")
DEFAULT_PLAN = "split"
DEFAULT_BLOCK = 64  # images per job of `lpt`
# Host dispatch latency per run: from xrt::run start to the kernel's ap_start and from its ap_done
# to the host seeing the run complete. Xilinx/XRT issue #8687 measures 50-100 µs per kernel launch
# on an Alveo U55C (Vitis 2022.1); the default takes the upper end.
DEFAULT_DISPATCH_US = 100.0
DEFAULT_MEMORY_LATENCY = 64  # cycles: the sim backend's device memory (rtl/README.md, section 9)


@dataclass(frozen=True)
class Job:
    """One run of a compute unit: `images` consecutive images of `channel` from `first_image` on."""

    unit: int
    channel: int
    first_image: int
    images: int

    def as_dict(self) -> dict:
        return {"unit": self.unit, "channel": self.channel, "first_image": self.first_image, "images": self.images}


@dataclass(frozen=True)
class ChannelCost:
    """Estimated kernel cycles of a run of k images of a channel: `start` + k · `per_image`."""

    start: float
    per_image: float

    def run(self, images: int) -> float:
        return self.start + images * self.per_image


@dataclass
class Plan:
    name: str
    units: int
    images: int  # images of the layer
    jobs: list[Job]  # dispatch order: each unit runs its jobs in this order
    constant_channels: list[int]
    dispatch_cycles: int
    estimated_cycles: list[float] = field(default_factory=list)  # per job: kernel cycles the plan expected

    def unit_jobs(self, unit: int) -> list[int]:
        """Indices of `unit`'s jobs, in the order it runs them."""
        return [j for j, job in enumerate(self.jobs) if job.unit == unit]


# ---------------------------------------------------------------------- what the plan knows before the run
def is_constant(cfg: golden.ConvConfig) -> bool:
    """Every output compressed: the OFMAP is the average map, whatever the IFMAP."""
    return bool(np.asarray(cfg.effective_mask).all())


def constant_ofmap(cfg: golden.ConvConfig) -> np.ndarray:
    """The OFMAP of a constant channel (golden.frame_result's compressed outputs: the averages)."""
    if not is_constant(cfg):
        raise VelcroError("only a channel whose every output is compressed has a constant OFMAP")
    return np.asarray(cfg.avg, dtype=np.uint8).copy()


def frame_work(stage_cycles: int) -> int:
    """A frame's share of its unit in steady state: its compute stage, or the 512-beat drain."""
    return max(BEATS_PER_FRAME, stage_cycles)


def channel_costs(configs: Sequence[golden.ConvConfig], tuning_ifmaps: np.ndarray | None,
                  latency: int = DEFAULT_MEMORY_LATENCY) -> list[ChannelCost]:  # fmt: skip
    """Per channel, the estimated cost of a run. Without prediction a frame's cycles follow from the
    mask alone; with prediction they are averaged over the tuning images (16, K, 64, 64)."""
    costs = []
    for c, cfg in enumerate(configs):
        stages = tuning_stages(c, cfg, tuning_ifmaps) if cfg.zp_en else [cycles.compute_stage_cycles(cfg.computed_outputs)]
        per_image = float(np.mean([frame_work(s) for s in stages]))
        start = cycles.kernel_run_cycles_of_stages(stages, latency) - len(stages) * per_image
        costs.append(ChannelCost(start, per_image))
    return costs


def prediction_pays(configs: Sequence[golden.ConvConfig], tuning_ifmaps: np.ndarray) -> list[bool]:
    """Per channel: prediction is on and saves cycles on the tuning images (16, K, 64, 64). Its order
    costs a fixed ZP_OVERHEAD per frame, so on a channel that predicts little it only slows the unit."""
    pays = []
    for c, cfg in enumerate(configs):
        if not cfg.zp_en:
            pays.append(False)
            continue
        without = frame_work(cycles.compute_stage_cycles(dataclasses.replace(cfg, zp_en=False).computed_outputs))
        with_ = np.mean([frame_work(s) for s in tuning_stages(c, cfg, tuning_ifmaps)])
        pays.append(bool(with_ < without))
    return pays


def tuning_stages(channel: int, cfg: golden.ConvConfig, tuning_ifmaps: np.ndarray | None) -> list[int]:
    """Compute-stage cycles of a prediction channel's tuning images: what its frames cost depends on the data."""
    if tuning_ifmaps is None or len(tuning_ifmaps[channel]) == 0:
        raise VelcroError(f"channel {channel} predicts zeros: its cycles are estimated from tuning images; give some")
    return [cycles.frame_stage_cycles(cfg, x) for x in tuning_ifmaps[channel]]


# ---------------------------------------------------------------------- plans
def make_plan(name: str, configs: Sequence[golden.ConvConfig], images: int, costs: Sequence[ChannelCost], *,
              units: int = INSTANCES, dispatch_cycles: int = 0, block: int = DEFAULT_BLOCK) -> Plan:  # fmt: skip
    """The plan `name` (one of PLANS) of `images` images of every channel of `configs` on `units` units."""
    if name not in PLANS:
        raise VelcroError(f"schedule {name!r}: choose one of {', '.join(PLANS)}")
    if images < 1 or units < 1:
        raise VelcroError(f"a plan needs 1 or more images and units, got {images} images on {units} units")
    if block < 1:
        raise VelcroError(f"--block {block}: give 1 or more images per job")
    if name == "fixed" and len(configs) > units:
        raise VelcroError(f"--schedule fixed runs channel c on unit c: {len(configs)} channels need as many units")
    constant = [] if name == "fixed" else [c for c, cfg in enumerate(configs) if is_constant(cfg)]
    work = [c for c in range(len(configs)) if c not in constant]
    if name == "fixed":
        jobs = [Job(c, c, 0, images) for c in work]
    elif name == "split":
        jobs = _split(work, images, costs, units, dispatch_cycles)
    else:
        jobs = _lpt(work, images, costs, units, dispatch_cycles, block)
    check_coverage(jobs, work, images, units)
    estimated = [costs[job.channel].run(job.images) for job in jobs]
    return Plan(name, units, images, jobs, constant, dispatch_cycles, estimated)


def check_coverage(jobs: Sequence[Job], channels: Sequence[int], images: int, units: int) -> None:
    """Every image of every channel in `channels` in exactly one job, on a unit that exists."""
    seen = np.zeros((max(channels, default=-1) + 1, images), np.int64)
    for job in jobs:
        if not 0 <= job.unit < units or job.channel not in channels or job.images < 1:
            raise AssertionError(f"plan error: {job} (units {units}, channels {list(channels)})")
        seen[job.channel, job.first_image:job.first_image + job.images] += 1
    if not (seen[list(channels)] == 1).all():
        raise AssertionError("plan error: an image of a channel is in no job or in two")


def _split(channels: list[int], images: int, costs: Sequence[ChannelCost], units: int, dispatch: int) -> list[Job]:
    """Wrap-around: the smallest capacity (by bisection) with which `_fill` places every image."""
    if not channels:
        return []
    total = sum(dispatch + costs[c].run(images) for c in channels)
    low, high = total / units, total + 1  # one unit doing everything fits (+1: costs are averages, not whole cycles)
    for _ in range(60):
        if high - low < 1:
            break
        middle = (low + high) / 2
        if _fill(channels, images, costs, units, dispatch, middle) is None:
            low = middle
        else:
            high = middle
    jobs = _fill(channels, images, costs, units, dispatch, high)
    assert jobs is not None
    return jobs


def _fill(channels: list[int], images: int, costs: Sequence[ChannelCost], units: int, dispatch: int,
          capacity: float) -> list[Job] | None:  # fmt: skip
    """Channels, longest first, poured into units 0, 1, ... up to `capacity` each; None if they overflow."""
    jobs: list[Job] = []
    unit, used = 0, 0.0
    for c in sorted(channels, key=lambda c: (-costs[c].per_image, c)):
        first = 0
        while first < images:
            cost, left = costs[c], images - first
            room = capacity - used - dispatch - cost.start
            take = min(left, int(room // cost.per_image)) if room >= cost.per_image else 0
            if take > 0:
                jobs.append(Job(unit, c, first, take))
                used += dispatch + cost.run(take)
                first += take
            if first < images:
                unit, used = unit + 1, 0.0
                if unit == units:
                    return None
    return jobs


def _lpt(channels: list[int], images: int, costs: Sequence[ChannelCost], units: int, dispatch: int,
         block: int) -> list[Job]:  # fmt: skip
    """Blocks of `block` images, longest first, each to the unit with the earliest estimated end."""
    blocks = [(c, first, min(block, images - first)) for c in channels for first in range(0, images, block)]
    blocks.sort(key=lambda b: (-costs[b[0]].run(b[2]), b[0], b[1]))
    ends = [0.0] * units
    jobs = []
    for c, first, n in blocks:
        unit = ends.index(min(ends))
        jobs.append(Job(unit, c, first, n))
        ends[unit] += dispatch + costs[c].run(n)
    return jobs


# ---------------------------------------------------------------------- the timeline of a run
@dataclass
class Timeline:
    """Every job's start and end cycle on its unit: the unit's previous end + the dispatch latency."""

    starts: list[int]
    ends: list[int]
    units_busy_cycles: list[int]  # per unit: the kernel cycles of its runs

    @property
    def makespan(self) -> int:
        return max(self.ends, default=0)


def timeline(plan: Plan, run_cycles: Sequence[int]) -> Timeline:
    """Place each job's kernel cycles (ap_start to ap_done) on its unit, in the plan's order."""
    if len(run_cycles) != len(plan.jobs):
        raise VelcroError(f"{len(run_cycles)} run times for a plan of {len(plan.jobs)} jobs")
    free, busy = [0] * plan.units, [0] * plan.units
    starts, ends = [], []
    for job, length in zip(plan.jobs, run_cycles):
        start = free[job.unit] + plan.dispatch_cycles
        starts.append(start)
        ends.append(start + int(length))
        free[job.unit] = ends[-1]
        busy[job.unit] += int(length)
    return Timeline(starts, ends, busy)


def model_run_cycles(plan: Plan, configs: Sequence[golden.ConvConfig], ifmaps: np.ndarray,
                     latency: int = DEFAULT_MEMORY_LATENCY) -> list[int]:  # fmt: skip
    """Every job's kernel cycles by the cycle model (exact for a memory without pauses)."""
    return [cycles.kernel_run_cycles(configs[j.channel], ifmaps[j.channel, j.first_image:j.first_image + j.images], latency)
            for j in plan.jobs]  # fmt: skip


def lower_bound(configs: Sequence[golden.ConvConfig], ifmaps: np.ndarray, constant: Sequence[int], units: int) -> float:
    """Total work on the card / units: every frame the units run, at its steady-state share
    (`frame_work`), with no start, fill or dispatch cost."""
    total = 0
    for c, cfg in enumerate(configs):
        if c in constant:
            continue
        if cfg.zp_en:
            total += sum(frame_work(cycles.frame_stage_cycles(cfg, x)) for x in ifmaps[c])
        else:
            total += len(ifmaps[c]) * frame_work(cycles.compute_stage_cycles(cfg.computed_outputs))
    return total / units
