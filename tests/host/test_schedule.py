"""host/schedule.py without a simulator: what a plan covers, how good its estimate is, the timeline's
arithmetic, the bound, which channels prediction pays on, and the errors of use.

Plans are checked on generated costs (Hypothesis) for their coverage and shape, and on a skewed layer
of real configurations for their makespans, where the cycle model gives every run's exact cycles.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from host import schedule
from host.api import ScheduleOptions, plan_layer
from host.schedule import ChannelCost, Job, Plan
from model.errors import VelcroError
from model.hw import cycles, golden, spec
from model.hw.spec import INSTANCES, H, W

LATENCY = schedule.DEFAULT_MEMORY_LATENCY
DISPATCH = round(schedule.DEFAULT_DISPATCH_US * 300)  # 100 µs at 300 MHz: 30,000 cycles


def config(density: float, seed: int = 0, **changes) -> golden.ConvConfig:
    return dataclasses.replace(golden.random_config(np.random.default_rng(seed), density), **changes)


WORKING = config(0.5)
CONSTANT = config(1.0)  # every output compressed, SKIP_EN on


def dark_frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """IFMAPs that are zero outside a bright disc, so prediction finds zeros to predict."""
    y, x = np.indices((H, W))
    frames = []
    for _ in range(n):
        cy, cx = rng.integers(0, 64, 2)
        bright = (y - cy) ** 2 + (x - cx) ** 2 < int(rng.integers(50, 500))
        frames.append(np.where(bright, rng.integers(0, 256, (H, W)), 0).astype(np.uint8))
    return np.array(frames)


def coverage(plan: Plan) -> Counter:
    """How often each (channel, image) is in the plan's jobs."""
    return Counter((job.channel, job.first_image + k) for job in plan.jobs for k in range(job.images))


def unit_loads(plan: Plan) -> list[float]:
    """Every unit's estimated cycles: a dispatch latency and the estimated run of each of its jobs."""
    loads = [0.0] * plan.units
    for job, estimate in zip(plan.jobs, plan.estimated_cycles):
        loads[job.unit] += plan.dispatch_cycles + estimate
    return loads


# ---------------------------------------------------------------------- what every plan covers
@st.composite
def layers(draw):
    """Channels (some constant) with integer costs, as `channel_costs` gives them without prediction."""
    n = draw(st.integers(1, INSTANCES))
    constant = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    costs = [ChannelCost(float(draw(st.integers(0, 6000))), float(draw(st.integers(1, 5000)))) for _ in range(n)]
    return {
        "configs": [CONSTANT if k else WORKING for k in constant],
        "costs": costs,
        "images": draw(st.integers(1, 300)),
        "units": draw(st.integers(1, INSTANCES)),
        "dispatch": draw(st.sampled_from([0, 1, 777, DISPATCH])),
        "block": draw(st.integers(1, 100)),
    }


@given(layer=layers(), name=st.sampled_from(schedule.PLANS))
def test_every_plan_runs_every_image_of_every_working_channel_once(layer, name):
    configs, costs, images, units = layer["configs"], layer["costs"], layer["images"], layer["units"]
    if name == "fixed" and len(configs) > units:
        with pytest.raises(VelcroError, match="channel c on unit c"):
            schedule.make_plan(name, configs, images, costs, units=units)
        return
    plan = schedule.make_plan(name, configs, images, costs, units=units, dispatch_cycles=layer["dispatch"],
                              block=layer["block"])  # fmt: skip
    constant = [c for c, cfg in enumerate(configs) if cfg is CONSTANT]
    served = range(len(configs)) if name == "fixed" else [c for c in range(len(configs)) if c not in constant]
    assert plan.constant_channels == ([] if name == "fixed" else constant)
    assert coverage(plan) == Counter({(c, i): 1 for c in served for i in range(images)})
    assert all(0 <= job.unit < units and job.images >= 1 for job in plan.jobs)
    assert plan.estimated_cycles == [costs[job.channel].run(job.images) for job in plan.jobs]
    assert sorted(j for u in range(units) for j in plan.unit_jobs(u)) == list(range(len(plan.jobs)))
    if name == "fixed":
        assert plan.jobs == [Job(c, c, 0, images) for c in range(len(configs))]
    elif name == "lpt":
        assert all(job.images <= layer["block"] for job in plan.jobs)
        assert len(plan.jobs) == len(served) * -(-images // layer["block"])
    else:
        # McNaughton's rule: a channel is cut only where a unit is full, so at most units - 1 cuts; and
        # every unit but the last ends short of the capacity by less than one run's fixed costs and an
        # image, so the makespan is within that of the ideal (plus the bisection's 1-cycle tolerance).
        assert len(plan.jobs) <= len(served) + units - 1
        if served:
            total = sum(plan.dispatch_cycles + costs[c].run(images) for c in served)
            slack = max(costs[c].per_image for c in served) + max(costs[c].start for c in served) + plan.dispatch_cycles
            assert total / units <= max(unit_loads(plan)) <= total / units + slack + 1
        for u in range(units):  # a unit runs a channel's images in one job, in order of the channels it met
            channels = [plan.jobs[j].channel for j in plan.unit_jobs(u)]
            assert len(channels) == len(set(channels))


def test_a_plan_with_fractional_costs_and_one_run():
    """Prediction channels have fractional costs (means over tuning images). When the only feasible
    capacity is the bisection's upper end (one working channel with one image), rounding must not
    leave the image without a unit."""
    cost = ChannelCost(2502.0, 2718.6666666666665)  # channel_costs of a prediction channel (3 tuning images)
    plan = schedule.make_plan("split", [config(0.2, zp_en=True)], 1, [cost], units=INSTANCES, dispatch_cycles=DISPATCH)
    assert plan.jobs == [Job(0, 0, 0, 1)]


def test_fixed_is_channel_c_on_unit_c_constant_channels_included():
    configs = [WORKING, CONSTANT, config(0.9, zp_en=True)]
    plan = schedule.make_plan("fixed", configs, 5, [ChannelCost(0.0, 0.0)] * 3, units=INSTANCES)
    assert plan.jobs == [Job(0, 0, 0, 5), Job(1, 1, 0, 5), Job(2, 2, 0, 5)] and plan.constant_channels == []
    assert [plan.unit_jobs(u) for u in range(4)] == [[0], [1], [2], []]
    with pytest.raises(VelcroError, match="17 channels need as many units"):
        schedule.make_plan("fixed", [WORKING] * 17, 5, [ChannelCost(0.0, 1.0)] * 17, units=INSTANCES)


# ---------------------------------------------------------------------- constant channels
@given(seed=st.integers(0, 2**32 - 1), zp=st.booleans(), zp_max=st.integers(0, 255), dark=st.booleans())
def test_a_constant_channel_s_ofmap_is_the_golden_model_s_for_any_ifmap(seed, zp, zp_max, dark):
    rng = np.random.default_rng(seed)
    cfg = config(1.0, seed=seed, zp_en=zp, zp_max=zp_max)
    ifmap = dark_frames(rng, 1)[0] if dark else rng.integers(0, 256, (H, W), dtype=np.uint8)
    assert schedule.is_constant(cfg)
    assert np.array_equal(schedule.constant_ofmap(cfg), golden.frame_result(ifmap, cfg).ofmap)
    assert schedule.constant_ofmap(cfg).dtype == np.uint8


def test_only_every_output_compressed_is_constant():
    almost = config(1.0)
    almost.mask[17, 40] = False
    for cfg in (WORKING, almost, dataclasses.replace(CONSTANT, skip_en=False)):
        assert not schedule.is_constant(cfg)
        with pytest.raises(VelcroError, match="only a channel whose every output is compressed"):
            schedule.constant_ofmap(cfg)
    configs = [CONSTANT, almost, CONSTANT, WORKING]
    for name in ("split", "lpt"):
        plan = schedule.make_plan(name, configs, 8, schedule.channel_costs(configs, None), units=INSTANCES)
        assert plan.constant_channels == [0, 2] and {job.channel for job in plan.jobs} == {1, 3}


# ---------------------------------------------------------------------- costs and makespans of a skewed layer
@pytest.fixture(scope="module")
def skewed():
    """A layer whose densities leave 4 channels with every output computed and 3 with none (constant):
    one channel per unit waits on the dense ones, a schedule does not."""
    densities = [0.0] * 4 + [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99] + [1.0] * 3 + [0.2]
    configs = [config(d, seed=k) for k, d in enumerate(densities)]
    rng = np.random.default_rng(5)
    return configs, rng.integers(0, 256, (INSTANCES, 48, H, W), dtype=np.uint8)


def test_channel_costs_without_prediction_are_the_cycle_model_s_runs():
    for c in (0, 100, 508, 510, 2000, 4096):
        cfg = dataclasses.replace(WORKING, mask=np.arange(H * W).reshape(H, W) >= c)
        assert cfg.computed_outputs == c
        (cost,) = schedule.channel_costs([cfg], None)
        assert cost.per_image == schedule.frame_work(cycles.compute_stage_cycles(c)) == cycles.frame_interval(c)
        frames = np.zeros((7, H, W), np.uint8)
        for k in range(1, 8):
            assert cost.run(k) == cycles.kernel_run_cycles(cfg, frames[:k], LATENCY), (c, k)


def test_channel_costs_with_prediction_come_from_the_tuning_images():
    rng = np.random.default_rng(3)
    cfg = config(0.2, seed=3, zp_en=True, zp_max=40)
    tuning = np.zeros((1, 5, H, W), np.uint8)
    tuning[0] = dark_frames(rng, 5)
    (cost,) = schedule.channel_costs([cfg], tuning, latency=20)
    stages = [cycles.frame_stage_cycles(cfg, x) for x in tuning[0]]
    assert len(set(stages)) > 1, "the tuning images should differ in cycles"
    assert cost.per_image == pytest.approx(np.mean([schedule.frame_work(s) for s in stages]))
    assert cost.run(5) == pytest.approx(cycles.kernel_run_cycles(cfg, tuning[0], 20))
    for tuning_ in (None, np.zeros((1, 0, H, W), np.uint8)):
        with pytest.raises(VelcroError, match="channel 0 predicts zeros: .* tuning images; give some"):
            schedule.channel_costs([cfg], tuning_)


def test_split_ends_the_units_together_and_beats_lpt_and_fixed_on_a_skewed_layer(skewed):
    configs, ifmaps = skewed
    n = ifmaps.shape[1]
    costs = schedule.channel_costs(configs, None)
    plans = {name: schedule.make_plan(name, configs, n, costs, units=INSTANCES, dispatch_cycles=DISPATCH, block=8)
             for name in schedule.PLANS}  # fmt: skip
    estimated = {name: max(unit_loads(plan)) for name, plan in plans.items()}
    # Without prediction the estimate is the cycle model's (exact for the simulated memory): same makespans.
    modelled = {name: schedule.timeline(plan, schedule.model_run_cycles(plan, configs, ifmaps)).makespan
                for name, plan in plans.items()}  # fmt: skip
    assert modelled == {name: round(e) for name, e in estimated.items()}
    working = [c for c in range(INSTANCES) if c not in plans["split"].constant_channels]
    assert len(working) == 13
    ideal = sum(DISPATCH + costs[c].run(n) for c in working) / INSTANCES
    slack = max(costs[c].per_image for c in working) + max(costs[c].start for c in working) + DISPATCH
    assert ideal <= estimated["split"] <= ideal + slack
    assert estimated["split"] <= estimated["lpt"] and estimated["split"] <= estimated["fixed"]
    assert modelled["split"] < 0.65 * modelled["fixed"], modelled  # the dense channels no longer set the pace
    loads = unit_loads(plans["split"])
    assert max(loads) - min(loads) <= slack


# ---------------------------------------------------------------------- the timeline
def test_timeline_puts_a_dispatch_before_every_run_and_a_unit_s_runs_back_to_back():
    jobs = [Job(0, 0, 0, 1), Job(1, 1, 0, 1), Job(0, 2, 0, 1), Job(2, 3, 0, 1), Job(0, 4, 0, 1)]
    plan = Plan("split", 4, 1, jobs, [], dispatch_cycles=100)
    line = schedule.timeline(plan, [10, 20, 30, 40, 50])
    assert line.starts == [100, 100, 210, 100, 340]
    assert line.ends == [110, 120, 240, 140, 390]
    assert line.units_busy_cycles == [90, 20, 40, 0] and line.makespan == 390
    assert schedule.timeline(Plan("split", 2, 1, [], [0], 100), []).makespan == 0
    with pytest.raises(VelcroError, match="4 run times for a plan of 5 jobs"):
        schedule.timeline(plan, [10, 20, 30, 40])


@given(layer=layers(), name=st.sampled_from(["split", "lpt"]), seed=st.integers(0, 1000))
def test_timeline_of_any_plan(layer, name, seed):
    plan = schedule.make_plan(name, layer["configs"], layer["images"], layer["costs"], units=layer["units"],
                              dispatch_cycles=layer["dispatch"], block=layer["block"])  # fmt: skip
    run_cycles = np.random.default_rng(seed).integers(1, 10**6, len(plan.jobs)).tolist()
    line = schedule.timeline(plan, run_cycles)
    for u in range(plan.units):
        mine = plan.unit_jobs(u)
        previous_end = 0
        for j in mine:
            assert line.starts[j] == previous_end + plan.dispatch_cycles
            assert line.ends[j] - line.starts[j] == run_cycles[j]
            previous_end = line.ends[j]
        assert line.units_busy_cycles[u] == sum(run_cycles[j] for j in mine)
        assert previous_end == line.units_busy_cycles[u] + len(mine) * plan.dispatch_cycles
    assert line.makespan == max(line.ends, default=0)


# ---------------------------------------------------------------------- the bound
def test_lower_bound_is_the_frames_work_over_the_units_and_below_every_plan(skewed):
    configs, ifmaps = skewed
    configs = [*configs[:-1], config(0.2, seed=9, zp_en=True, zp_max=30)]  # one channel predicts
    rng = np.random.default_rng(9)
    ifmaps = ifmaps[:, :12].copy()
    ifmaps[-1] = dark_frames(rng, 12)
    tuning = ifmaps[:, :4]
    constant = [12, 13, 14]
    work = sum(12 * schedule.frame_work(cycles.compute_stage_cycles(configs[c].computed_outputs))
               for c in range(15) if c not in constant)  # fmt: skip
    work += sum(schedule.frame_work(cycles.frame_stage_cycles(configs[15], x)) for x in ifmaps[15])
    assert schedule.lower_bound(configs, ifmaps, constant, INSTANCES) == pytest.approx(work / INSTANCES)
    assert schedule.lower_bound(configs, ifmaps, [], 4) > schedule.lower_bound(configs, ifmaps, constant, 4)
    for name in schedule.PLANS:
        options = ScheduleOptions(plan=name, dispatch_us=0.0, block=3)
        plan = plan_layer(configs, ifmaps, options, tuning)
        makespan = schedule.timeline(plan, schedule.model_run_cycles(plan, configs, ifmaps)).makespan
        assert schedule.lower_bound(configs, ifmaps, plan.constant_channels, INSTANCES) < makespan, name


# ---------------------------------------------------------------------- where prediction pays
def test_prediction_pays_where_it_saves_cycles_on_the_tuning_images():
    """Prediction on a channel with every output computed: on dark tuning images (zero input gives 0, at
    most ZP_MAX) most outputs are predicted and a frame is far cheaper; on bright ones nothing is predicted
    and a frame costs its fixed overhead more. On a sparse channel the 512-beat drain sets the pace with or
    without it, and a channel without prediction never pays."""
    rng = np.random.default_rng(4)
    zero_to_zero = golden.ConvConfig(np.full((3, 3), 10), -1000, 1, 4, np.zeros((H, W), bool),
                                     np.zeros((H, W), np.uint8), zp_en=True, zp_max=0)  # fmt: skip
    sparse = config(0.9, seed=3, zp_en=True, zp_max=255)
    configs = [zero_to_zero, zero_to_zero, sparse, config(0.0, seed=4)]
    dark, bright = dark_frames(rng, 3), rng.integers(128, 256, (3, H, W), dtype=np.uint8)
    tuning = np.stack([dark, bright, dark, dark])
    assert schedule.prediction_pays(configs, tuning) == [True, False, False, False]
    work = [np.mean([schedule.frame_work(cycles.frame_stage_cycles(c, x)) for x in t]) for c, t in zip(configs, tuning)]
    dense = cycles.frame_interval(spec.N_OUTPUTS)  # the frame work without prediction of a dense channel
    assert work[0] < dense / 2 and work[1] == dense + spec.ZP_OVERHEAD
    without = dataclasses.replace(sparse, zp_en=False).computed_outputs
    assert work[2] == spec.BEATS_PER_FRAME == cycles.frame_interval(without)


# ---------------------------------------------------------------------- errors of use
@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(name="greedy"), r"schedule 'greedy': choose one of split, lpt, fixed"),
        (dict(images=0), "a plan needs 1 or more images and units, got 0 images on 16 units"),
        (dict(units=0), "a plan needs 1 or more images and units, got 4 images on 0 units"),
        (dict(block=0), r"--block 0: give 1 or more images per job"),
    ],
)  # fmt: skip
def test_bad_plans_are_refused(changes, message):
    args = dict(name="lpt", images=4, units=INSTANCES, block=2) | changes
    with pytest.raises(VelcroError, match=message):
        schedule.make_plan(args["name"], [WORKING] * 3, args["images"], [ChannelCost(10.0, 600.0)] * 3,
                           units=args["units"], block=args["block"])  # fmt: skip


def test_bad_options_and_layers_are_refused():
    ifmaps = np.zeros((INSTANCES, 2, H, W), np.uint8)
    configs = [WORKING] * INSTANCES
    with pytest.raises(VelcroError, match="schedule 'greedy'"):
        plan_layer(configs, ifmaps, ScheduleOptions(plan="greedy"))
    with pytest.raises(VelcroError, match="--block 0"):
        plan_layer(configs, ifmaps, ScheduleOptions(plan="lpt", block=0))
    with pytest.raises(VelcroError, match="every configuration of the layer has 16 channels"):
        plan_layer(configs[:15], ifmaps, ScheduleOptions())
    with pytest.raises(VelcroError, match="--dispatch-us -1.0 .* give a dispatch latency >= 0"):
        ScheduleOptions(dispatch_us=-1.0)
    with pytest.raises(VelcroError, match="a clock > 0"):
        ScheduleOptions(clock_mhz=0)
    assert ScheduleOptions(dispatch_us=100, clock_mhz=300).dispatch_cycles == 30_000
    predicting = [*configs[:3], config(0.2, zp_en=True), *configs[4:]]
    for name in ("split", "lpt"):  # they estimate the prediction channel's cycles from tuning images
        with pytest.raises(VelcroError, match="channel 3 predicts zeros: its cycles are estimated from tuning images"):
            plan_layer(predicting, ifmaps, ScheduleOptions(plan=name))
    plan = plan_layer(predicting, ifmaps, ScheduleOptions(plan="fixed"))  # fixed needs no estimate
    assert [job.channel for job in plan.jobs] == list(range(INSTANCES))
