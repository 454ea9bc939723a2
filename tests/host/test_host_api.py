"""host.api without a simulator: jobs from planned layer configurations, the OFMAPs and cycles put back
channel-major, the checks on what a backend hands back, and how the sim backend splits a large job
over its worker processes.

The backend here is `GoldenCard`, a stand-in that answers from the job alone with the golden model
(OFMAPs, counters written back into each run's image) and the cycle model (every run's cycles and
frame ends, as the simulated kernel reports them); `tamper` changes its answer before the host sees it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from host import schedule
from host.api import (ScheduleOptions, check_counters, layer_job, plan_layer, run_export, run_layers,
                      schedule_summary, uncompressed, with_paying_prediction)  # fmt: skip
from host.backends import DeviceResult
from host.backends.sim import SPLIT_CYCLES, balanced_parts, simulation_cost
from model.deploy.export import LayerExport
from model.deploy.quantize import golden_runner
from model.errors import VelcroError
from model.hw import cycles, golden
from model.hw.image import config_from_image, config_image
from model.hw.job import KernelJob, KernelResult
from model.hw.spec import IMAGE_BYTES, INSTANCES, KERNEL_LOAD_CYCLES, N_OUTPUTS, REG, H, W

LATENCY = schedule.DEFAULT_MEMORY_LATENCY
SPLIT = ScheduleOptions(plan="split", dispatch_us=1.0)  # a short dispatch: the split cuts channels


def frame_ends(cfg: golden.ConvConfig, ifmaps: np.ndarray, latency: int = LATENCY) -> np.ndarray:
    """Each frame's last OFMAP beat from its run's ap_start handshake, by the cycle model."""
    first = KERNEL_LOAD_CYCLES + 2 * latency + cycles.isolated_latency(cfg, ifmaps[0])
    return first + np.concatenate([[0], np.cumsum(cycles.back_to_back_gaps(cfg, list(ifmaps)))]).astype(np.int64)


class GoldenCard:
    """A backend that hands back what a correct kernel would: OFMAPs and counters from the golden model,
    run and frame cycles from the cycle model (`timed`; a card reports none). Every job it ran is in `jobs`."""

    name = "golden"

    def __init__(self, tamper=None, *, timed: bool = True):
        self.tamper, self.timed, self.jobs = tamper, timed, []

    def run(self, job: KernelJob) -> DeviceResult:
        self.jobs.append(job)
        images, ofmaps = job.images.copy(), np.empty_like(job.ifmaps)
        run_cycles, ends = np.zeros(job.runs, np.int64), np.zeros(len(job.ifmaps), np.int64)
        for r in range(job.runs):
            cfg, frames = config_from_image(job.images[r]), job.frames(r)
            ifmaps = job.ifmaps[frames]
            ofmaps[frames] = [golden.conv2d(x, cfg) for x in ifmaps]
            last = golden.frame_result(ifmaps[-1], cfg)
            counters = {"FRAMES": len(ifmaps), "LAST_CYCLES": cycles.isolated_latency(cfg, ifmaps[-1]),
                        "LAST_MACS": last.macs, "LAST_COMPUTED": last.computed_outputs,
                        "LAST_PREDICTED": last.predicted_outputs}  # fmt: skip
            for name, value in counters.items():
                images[r, REG[name].offset : REG[name].end] = np.frombuffer(value.to_bytes(4, "little"), np.uint8)
            run_cycles[r], ends[frames] = cycles.kernel_run_cycles(cfg, ifmaps, LATENCY), frame_ends(cfg, ifmaps)
        result = DeviceResult(images, ofmaps, 0.0, *((run_cycles, ends) if self.timed else ()))
        if self.tamper is not None:
            self.tamper(result)
        return result


@pytest.fixture(scope="module")
def layer():
    """16 channels from dense to constant (density 1: every output the average), 6 images."""
    rng = np.random.default_rng(7)
    configs = [golden.random_config(rng, d) for d in np.linspace(0, 1, INSTANCES)]
    return configs, rng.integers(0, 256, (INSTANCES, 6, H, W), dtype=np.uint8)


def cut(plan: schedule.Plan) -> schedule.Job:
    """A job that goes on a channel another job began: the test needs the plan to have cut a channel."""
    later = [job for job in plan.jobs if job.first_image > 0]
    assert later, f"the plan cut no channel: {plan.jobs}"
    return later[0]


# ---------------------------------------------------------------------- jobs
def test_a_job_holds_every_plan_s_runs_in_dispatch_order(layer):
    configs, ifmaps = layer
    other = [dataclasses.replace(c, skip_en=False) for c in configs]
    fixed, split = plan_layer(other, ifmaps, ScheduleOptions(plan="fixed")), plan_layer(configs, ifmaps, SPLIT)
    assert split.constant_channels == [15] and fixed.constant_channels == []  # SKIP_EN off: nothing constant
    job = layer_job([(other, fixed), (configs, split)], ifmaps)
    runs = [(other, j) for j in fixed.jobs] + [(configs, j) for j in split.jobs]
    assert job.runs == len(runs) == INSTANCES + len(split.jobs) and job.images.shape == (job.runs, IMAGE_BYTES)
    assert job.ifmaps.shape == ((2 * INSTANCES - 1) * 6, H, W)
    assert job.n_frames.tolist() == [j.images for _, j in runs] and job.units.tolist() == [j.unit for _, j in runs]
    for r, (cfgs, j) in enumerate(runs):
        assert np.array_equal(job.images[r], config_image(cfgs[j.channel]))
        assert np.array_equal(job.ifmaps[job.frames(r)], ifmaps[j.channel, j.first_image : j.first_image + j.images])
    cut(split)
    empty = layer_job([], ifmaps)
    assert empty.runs == 0 and empty.images.shape == (0, IMAGE_BYTES) and empty.ifmaps.shape == (0, H, W)
    with pytest.raises(VelcroError, match="IFMAPs must be"):
        layer_job([(configs, fixed)], ifmaps[:, :0])
    with pytest.raises(VelcroError, match="16 channels"):
        plan_layer(configs[:15], ifmaps, SPLIT)


def test_a_kernel_job_checks_its_shapes_and_travels_as_npz(layer, tmp_path):
    configs, ifmaps = layer
    images = np.stack([config_image(c) for c in configs[:3]])
    frames = ifmaps[0, :6]
    job = KernelJob(images, frames, [1, 0, 5], [3, 0, 3])
    assert [job.frames(r) for r in range(3)] == [slice(0, 1), slice(1, 1), slice(1, 6)]
    part = job.subset(np.array([2, 0]))
    assert part.n_frames.tolist() == [5, 1] and part.units.tolist() == [3, 3]
    assert np.array_equal(part.ifmaps, np.concatenate([frames[1:6], frames[:1]]))
    job.save(tmp_path / "job.npz")
    again = KernelJob.load(tmp_path / "job.npz")
    assert all(np.array_equal(getattr(again, f), getattr(job, f)) for f in ("images", "ifmaps", "n_frames", "units"))
    result = KernelResult(images, frames, np.arange(6), np.array([1, 2, 3]), np.array([4, 5, 6]))
    result.save(tmp_path / "result.npz")
    assert np.array_equal(KernelResult.load(tmp_path / "result.npz").done_cycles, [4, 5, 6])
    with pytest.raises(ValueError, match="must add up to the 6 IFMAPs"):
        KernelJob(images, frames, [1, 1, 1], [0, 0, 0])
    with pytest.raises(ValueError, match="one entry per run"):
        KernelJob(images, frames, [6], [0])
    with pytest.raises(ValueError, match="ifmaps must be"):
        KernelJob(images, frames.astype(np.int16), [1, 0, 5], [0, 0, 0])
    with pytest.raises(ValueError, match="images must be"):
        KernelJob(images[:, :100], frames, [1, 0, 5], [0, 0, 0])
    with pytest.raises(ValueError, match="numbered from 0"):
        KernelJob(images, frames, [1, 0, 5], [0, -1, 0])


# ---------------------------------------------------------------------- run_layers
def test_a_split_layer_comes_back_channel_major_with_its_constant_channel(layer):
    """Two configurations in one job, the first split, the second with nothing compressed (run fixed):
    OFMAPs equal the golden model's, the constant channel never reaches a unit and is filled by the host,
    cycles come back per run and per frame, each configuration gets its own runs."""
    configs, ifmaps = layer
    card = GoldenCard()
    split = plan_layer(configs, ifmaps, SPLIT)
    assert split.constant_channels == [15]
    cut(split)
    reference = uncompressed(configs)
    (run,) = run_layers([configs], ifmaps, card, SPLIT)
    (ref_run,) = run_layers([reference], ifmaps, GoldenCard())
    (job,) = card.jobs
    assert run.plan.jobs == split.jobs and job.runs == len(split.jobs)
    assert not any(np.array_equal(image, config_image(configs[15])) for image in job.images)
    assert np.array_equal(run.ofmaps, golden_runner(configs, ifmaps))
    assert all(np.array_equal(o, configs[15].avg) for o in run.ofmaps[15])
    assert np.array_equal(ref_run.ofmaps, golden_runner(reference, ifmaps))
    assert [c["FRAMES"] for c in run.counters] == [j.images for j in split.jobs]
    assert run.run_cycles.tolist() == schedule.model_run_cycles(split, configs, ifmaps)
    for j in split.jobs:  # every frame's end from the start of its own run
        images = slice(j.first_image, j.first_image + j.images)
        expected = frame_ends(configs[j.channel], ifmaps[j.channel, images])
        assert run.frame_end_cycles[j.channel, images].tolist() == expected.tolist(), j
    assert not run.frame_end_cycles[15].any()
    with pytest.raises(VelcroError, match="every channel in one run"):
        run.gaps()
    # one job for both configurations: each LayerRun gets the images of its own runs
    both = GoldenCard()
    first, second = run_layers([configs, reference], ifmaps, both, SPLIT)
    (job,) = both.jobs
    assert job.runs == len(first.plan.jobs) + len(second.plan.jobs)
    assert np.array_equal(second.images, both.run(job).images[len(first.plan.jobs) :])
    assert np.array_equal(first.ofmaps, run.ofmaps) and np.array_equal(second.ofmaps, golden_runner(reference, ifmaps))
    assert not any(config_from_image(i).mask.any() for i in second.images)


def test_every_plan_gives_the_golden_model_s_ofmaps(layer):
    configs, ifmaps = layer
    expected = golden_runner(configs, ifmaps)
    for name in schedule.PLANS:
        card = GoldenCard()
        (run,) = run_layers([configs], ifmaps, card, ScheduleOptions(plan=name, dispatch_us=1.0, block=4))
        assert np.array_equal(run.ofmaps, expected), name
        check_counters(run)
        sent = {int(config_from_image(image).effective_mask.all()) for image in card.jobs[0].images}
        assert sent == ({0, 1} if name == "fixed" else {0}), f"{name}: the constant channel is served by the host"


def test_a_given_plan_is_run_as_given(layer):
    configs, ifmaps = layer
    plan = plan_layer(configs, ifmaps, ScheduleOptions(plan="lpt", block=4))
    few = dataclasses.replace(plan, jobs=plan.jobs[:3], estimated_cycles=plan.estimated_cycles[:3])
    card = GoldenCard()
    (run,) = run_layers([configs], ifmaps, card, SPLIT, plans=[few])
    assert run.plan is few and card.jobs[0].runs == 3
    expected = golden_runner(configs, ifmaps)
    for j in few.jobs:
        images = slice(j.first_image, j.first_image + j.images)
        assert np.array_equal(run.ofmaps[j.channel, images], expected[j.channel, images])
    with pytest.raises(VelcroError, match="1 plans for 2 configurations of the layer"):
        run_layers([configs, configs], ifmaps, card, plans=[plan])


def test_a_layer_of_constant_channels_needs_no_kernel(layer):
    configs, ifmaps = layer
    constant = [configs[15]] * INSTANCES
    card = GoldenCard()
    (run,) = run_layers([constant], ifmaps, card, SPLIT)
    assert card.jobs == [] and run.plan.jobs == [] and run.images.shape == (0, IMAGE_BYTES)
    assert np.array_equal(run.ofmaps, golden_runner(constant, ifmaps))


@pytest.mark.parametrize("plan", ["fixed", "split"])
@pytest.mark.parametrize("counter", ["FRAMES", "LAST_COMPUTED", "LAST_MACS", "LAST_PREDICTED"])
def test_wrong_counters_of_one_job_are_caught(layer, plan, counter):
    configs, ifmaps = layer
    options = dataclasses.replace(SPLIT, plan=plan)
    planned = plan_layer(configs, ifmaps, options)
    bad = planned.jobs.index(cut(planned)) if plan == "split" else 5
    j = planned.jobs[bad]

    def tamper(result):
        result.images[bad, REG[counter].offset] ^= 1

    what = f"channel {j.channel} on unit {j.unit}, images {j.first_image}\\+{j.images}"
    with pytest.raises(VelcroError, match=rf"{what}: the counters written back into its image are wrong: {counter} "):
        run_layers([configs], ifmaps, GoldenCard(tamper), options)
    run_layers([configs], ifmaps, GoldenCard(), options)  # untampered: no error


def test_a_short_answer_is_caught(layer):
    configs, ifmaps = layer

    def short_ofmaps(result):
        result.ofmaps = result.ofmaps[:-1]

    def short_cycles(result):
        result.run_cycles = result.run_cycles[:-1]

    def long_ends(result):
        result.frame_end_cycles = np.append(result.frame_end_cycles, 0)

    for tamper, message in ((short_ofmaps, r"returned images .* and OFMAPs \(\d+, 64, 64\) for a job of \d+ runs"),
                            (short_cycles, r"returned run cycles \(\d+,\), not \(\d+,\)"),
                            (long_ends, r"returned frame end cycles \(\d+,\), not \(\d+,\)")):  # fmt: skip
        with pytest.raises(VelcroError, match=message):
            run_layers([configs], ifmaps, GoldenCard(tamper), SPLIT)


def test_replayed_ofmaps_only_for_what_ran(layer):
    configs, ifmaps = layer
    (run,) = run_layers([configs], ifmaps, GoldenCard(timed=False))
    assert run.plan.name == "fixed" and run.run_cycles is None and run.frame_end_cycles is None
    assert run.runner(list(configs), ifmaps.copy()) is run.ofmaps
    with pytest.raises(VelcroError, match="configurations are not the ones that ran"):
        run.runner([dataclasses.replace(configs[0], skip_en=False), *configs[1:]], ifmaps)
    with pytest.raises(VelcroError, match="IFMAPs are not the ones that ran"):
        run.runner(configs, ifmaps[:, ::-1])
    with pytest.raises(VelcroError, match="simulated kernel only"):
        run.gaps()
    (timed,) = run_layers([configs], ifmaps, GoldenCard())  # fixed: one run per channel, gaps per unit
    assert timed.gaps().tolist() == [cycles.back_to_back_gaps(c, list(x)) for c, x in zip(configs, ifmaps)]
    assert timed.intervals() == [cycles.frame_interval(c.computed_outputs) for c in configs]


def test_the_schedule_summary_counts_the_timeline_and_the_uncompressed_layer(layer):
    configs, ifmaps = layer
    options = ScheduleOptions(plan="split", dispatch_us=10.0)
    for timed in (True, False):
        (run,) = run_layers([configs], ifmaps, GoldenCard(timed=timed), options)
        summary = schedule_summary(run.plan, configs, ifmaps, options, run.run_cycles)
        line = schedule.timeline(run.plan, schedule.model_run_cycles(run.plan, configs, ifmaps))
        assert summary["timeline"] == ("simulated kernel" if timed else "cycle model")
        assert summary["makespan_cycles_per_image"] == line.makespan / 6
        assert summary.get("cycle_model_exact_runs") == (len(run.plan.jobs) if timed else None)
        assert summary["constant_channels"] == [15] and summary["dispatch_cycles"] == 3000
        assert [(j["unit"], j["channel"], j["first_image"], j["images"]) for j in summary["jobs"]] == [
            (j.unit, j.channel, j.first_image, j.images) for j in run.plan.jobs]  # fmt: skip
        assert [j["end_cycle"] for j in summary["jobs"]] == line.ends
        assert 1 < summary["speedup"] < summary["lower_bound_speedup"]
        assert summary["lower_bound_cycles_per_image"] < summary["makespan_cycles_per_image"]


# ---------------------------------------------------------------------- prediction, paying or all
def test_prediction_is_kept_only_where_it_pays():
    rng = np.random.default_rng(2)
    zero_to_zero = golden.ConvConfig(np.full((3, 3), 10), -1000, 1, 4, np.zeros((H, W), bool),
                                     np.zeros((H, W), np.uint8), zp_en=True, zp_max=0)  # fmt: skip
    configs = [zero_to_zero, zero_to_zero, golden.random_config(rng, 0.5)] * 5 + [zero_to_zero]
    tuning = rng.integers(128, 256, (INSTANCES, 2, H, W), dtype=np.uint8)  # bright: prediction finds nothing
    tuning[0::3] = 0  # channels 0, 3, ..., 15: dark, every output predicted but the anchors
    export = LayerExport(configs, 1.0, 1.0, np.ones(INSTANCES), np.zeros((INSTANCES, H, W)), "footwear", 0.5,
                         "per-layer", "", zp_pattern="grid2")  # fmt: skip
    paying, off = with_paying_prediction(export, tuning)
    assert off == [1, 4, 7, 10, 13]
    assert [c.zp_en for c in paying.configs] == [k % 3 == 0 for k in range(INSTANCES)]
    assert [c.zp_en for c in export.configs] == [k % 3 != 2 for k in range(INSTANCES)]  # the export is not changed
    with pytest.raises(VelcroError, match="--prediction 'some': choose one of paying, all"):
        run_export(export, 2, GoldenCard(), model=None, prediction="some")


# ---------------------------------------------------------------------- the sim backend's workers
def test_large_jobs_split_evenly_small_ones_do_not(layer):
    configs, ifmaps = layer
    small = layer_job([(configs, plan_layer(configs, ifmaps[:, :2], ScheduleOptions(plan="fixed")))], ifmaps[:, :2])
    assert [p.tolist() for p in balanced_parts(small, 2)] == [list(range(INSTANCES))]
    frames = np.repeat(ifmaps, 14, axis=1)  # 84 images per channel
    plans = [(configs, plan_layer(configs, frames, options)) for options in (SPLIT, ScheduleOptions(plan="fixed"))]
    large = layer_job(plans, frames)
    assert len(set(large.n_frames.tolist())) > 2, "runs of different lengths"
    parts = balanced_parts(large, 2)
    assert len(parts) == 2 and sorted(np.concatenate(parts).tolist()) == list(range(large.runs))
    assert all(p.tolist() == sorted(p.tolist()) for p in parts)
    cost = simulation_cost(large)
    assert cost == [3_000 + int(n) * (2_600 + cycles.frame_interval(N_OUTPUTS - int(config_from_image(i).effective_mask.sum())))
                    for i, n in zip(large.images, large.n_frames)]  # fmt: skip
    loads = [sum(cost[r] for r in p) for p in parts]
    assert sum(loads) > SPLIT_CYCLES and abs(loads[0] - loads[1]) <= max(cost)
    # every part is a job of its own, its runs' frames with them
    for p in parts:
        sub = large.subset(p)
        for k, r in enumerate(p):
            assert np.array_equal(sub.ifmaps[sub.frames(k)], large.ifmaps[large.frames(r)])
