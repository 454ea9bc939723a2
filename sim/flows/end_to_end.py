"""The end-to-end stage of `make sim`: one compressed layer computed by the RTL.

The offline default CNN's 16-channel depthwise layer is exported (model/deploy/export.py) at several
thresholds, in two allocations: the paper's one threshold per layer, and a balanced one with the
same layer C but equal work per instance. For each, K validation images of the footwear task run
through the host (host/api.py, the driver of `velcro run`) on the simulated `velcro_krnl`: channel c
on compute unit c, every image a frame, every export and channel one unit of one simulation. The
host checks the counters every unit wrote back into its configuration image (those of its last
frame) against the golden model, and the forward pass is finished in PyTorch:
model/deploy/e2e.py compares the four paths (float, float compressed, int8 golden, RTL) and checks
every RTL output against the golden model. Every gap between a unit's frame ends (the cycles at
which the kernel wrote each frame's last OFMAP beat to memory) must equal the cycle model's; a
unit's interval is its last gap, and as the 16 units of a layer work side by side on a card, the
slowest sets the layer's interval. The ideal (the same work
spread evenly) comes from model.deploy's top_speedup, the one formula the model uses too. The energy
proxy of the 16 units is each one's frame events (model/hw/energy.py, the event model the C sweep
validated against waveforms) plus static power over the layer's interval. Each row is also put on the
units' timeline with the host's dispatch latency (`scheduled`): as it ran, and as the scheduler
(host/schedule.py) plans it, timed by the cycle model that each of the row's simulated runs matched.
sim/reporting/end_to_end.py writes the Markdown section.

`run_prediction_hil` runs the same layer with zero-value prediction (sim/flows/prediction.py names
the modes) through the host in the same way, every output and every gap between frame ends checked
as above. The kernel writes back the counters of a unit's last frame only, and those must equal the
golden model's; the MACs skipped and the predictions over all frames are the golden model's counts
for the frames the hardware reproduced bit for bit (with prediction on, the gaps, which depend on
them, matched the cycle model's too). The accuracies of every path come from
`model.deploy.e2e.run_paths`.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from host.api import LayerRun, ScheduleOptions, plan_layer, quantized_ifmaps, run_layers, schedule_summary, tuning_ifmaps
from host.backends.sim import SimBackend
from model.deploy import e2e
from model.deploy.masks import top_speedup
from model.hw import cycles, golden
from model.hw.energy import EnergyTable, frame_events
from model.hw.golden import N_OUTPUTS
from model.hw.spec import INSTANCES, KERNEL_NAME
from sim.harness.runner import ROOT

TASK, K = "footwear", 32
ROOT_WORK = ROOT / "sim_build"
THRESHOLDS = (0.3, 0.5)  # plus the largest lossless threshold the scan finds
ALLOCATIONS = ("per-layer", "balanced")


def prepare_context():
    """The task's prepared layer with its K validation images, and the lossless threshold scan."""
    ctx = e2e.prepare(TASK, K)
    return ctx, e2e.largest_lossless(ctx)


def run_end_to_end(sim: str, table: EnergyTable, clock_mhz: float, context=None) -> dict:
    ctx, scan = context if context is not None else prepare_context()
    thresholds = sorted(set(THRESHOLDS) | ({scan["chosen_threshold"]} if scan["chosen_threshold"] else set()))
    runs = [(t, a) for t in thresholds for a in ALLOCATIONS]
    exports = [ctx.export(t, a) for t, a in runs]
    ifmaps = layer_ifmaps(ctx)
    print(f"[hil] {KERNEL_NAME} on {sim}: {len(runs)} runs x {INSTANCES} compute units x {K} images in one simulation")
    layer_runs = run_layers([e.configs for e in exports], ifmaps, SimBackend(sim, work=ROOT_WORK / f"hil-{sim}"))
    rows = []
    for (threshold, allocation), export, run in zip(tqdm(runs, desc="four paths per run", unit="run"), exports,
                                                    layer_runs):  # fmt: skip
        result = e2e.run_paths(export, ctx.images, ctx.labels, model=ctx.model, layer_runner=run.runner)
        check_gaps(run)
        speed = top_speedup([cfg.computed_outputs for cfg in export.configs])
        intervals = run.intervals()
        top_interval = max(intervals)
        energy = sum(
            table.frame_energy_pj(frame_events(cfg.mask), top_interval, clock_mhz)["total"] for cfg in export.configs
        )
        rows.append({
            "threshold": threshold,
            "allocation": allocation,
            "accuracy": result["accuracy"],
            "layer_C": result["layer_saving_ratio"],
            "model_C": result["model_saving_ratio"],
            "channel_densities": result["channel_densities"],
            "instance_intervals": intervals,
            "top_interval": top_interval,
            "top_images_per_s": clock_mhz * 1e6 / top_interval,
            "speedup": speed["baseline_interval"] / top_interval,
            "ideal_speedup": speed["ideal_speedup"],
            "top_energy_per_image_nj": energy / 1e3,
            "schedule": scheduled(run, export, ctx, clock_mhz),
        })  # fmt: skip
    base_energy = INSTANCES * table.frame_energy_pj(frame_events(ctx.export(0.0).configs[0].mask),
                                                    cycles.frame_interval(N_OUTPUTS), clock_mhz)["total"] / 1e3  # fmt: skip
    return {"task": TASK, "images": K, "simulator": sim, "instances": INSTANCES, "lossless_scan": scan,
            "float_vs_int8_error": ctx.error, "uncompressed_top_energy_per_image_nj": base_energy, "rows": rows}  # fmt: skip


def layer_ifmaps(ctx) -> np.ndarray:
    """The quantized IFMAPs (16, K, 64, 64) of the context's images."""
    return quantized_ifmaps(ctx.model, ctx.images, ctx.quant.input_scale)


def check_gaps(run: LayerRun) -> list[list[int]]:
    """Every gap between a unit's frame ends is the cycle model's (model/hw/cycles.py); returns those gaps."""
    model_gaps = []
    for i, (cfg, frames, gaps) in enumerate(zip(run.configs, run.ifmaps, run.gaps().tolist())):
        if gaps != (model := cycles.back_to_back_gaps(cfg, list(frames))):
            raise RuntimeError(f"unit {i}: gaps between frame ends {gaps} differ from the cycle model {model}")
        model_gaps.append(model)
    return model_gaps


SCHEDULE_KEYS = ("makespan_cycles_per_image", "speedup", "lower_bound_speedup", "over_lower_bound", "images_per_s")


def scheduled(run: LayerRun, export, ctx, clock_mhz: float) -> dict:
    """The row's layer on the timeline, as it ran (one channel per unit) and as the scheduler plans it
    (host/schedule.py, `split`), with the host's dispatch latency. The fixed mapping's 16 simulated runs
    must each take the cycle model's cycles (`kernel_run_cycles`), which then times the split plan."""
    fixed_options = ScheduleOptions(plan="fixed", clock_mhz=clock_mhz)
    fixed = schedule_summary(run.plan, run.configs, run.ifmaps, fixed_options, run.run_cycles)
    if fixed["cycle_model_exact_runs"] != len(run.plan.jobs):
        raise RuntimeError(f"{len(run.plan.jobs) - fixed['cycle_model_exact_runs']} simulated runs differ from the "
                           "cycle model's kernel_run_cycles")  # fmt: skip
    options = ScheduleOptions(plan="split", clock_mhz=clock_mhz)
    tuning = tuning_ifmaps(export, ctx.model) if any(c.zp_en for c in run.configs) else None
    plan = plan_layer(run.configs, run.ifmaps, options, tuning)
    split = schedule_summary(plan, run.configs, run.ifmaps, options)
    return {"dispatch_us": options.dispatch_us, "fixed": {k: fixed[k] for k in SCHEDULE_KEYS},
            "split": {k: split[k] for k in SCHEDULE_KEYS} | {"runs": len(plan.jobs),
                                                             "constant_channels": plan.constant_channels}}  # fmt: skip


def frame_results(run: LayerRun) -> list[list[golden.FrameResult]]:
    """The golden model's result of every frame per unit: the frames the hardware reproduced bit for bit."""
    return [[golden.frame_result(x, cfg) for x in frames] for cfg, frames in zip(run.configs, run.ifmaps)]


def run_prediction_hil(sim: str, ctx, threshold: float, table: EnergyTable, clock_mhz: float) -> dict:
    """The layer in every mode of sim/flows/prediction.py on the simulated kernel, in one simulation."""
    from sim.flows import prediction

    exports = prediction.mode_exports(ctx, threshold)
    ifmaps = layer_ifmaps(ctx)
    print(f"[hil] {KERNEL_NAME} on {sim}, prediction: {len(exports)} modes x {INSTANCES} compute units x {K} images")
    layer_runs = run_layers([e.configs for e in exports], ifmaps, SimBackend(sim, work=ROOT_WORK / f"prediction-{sim}"))
    rows = []
    for (mode, _, pattern), export, run in zip(tqdm(prediction.MODES, desc="four paths per mode", unit="mode"),
                                               exports, layer_runs):  # fmt: skip
        result = e2e.run_paths(export, ctx.images, ctx.labels, model=ctx.model, layer_runner=run.runner)
        model_gaps = check_gaps(run)
        results = frame_results(run)
        computed = np.array([[r.computed_outputs for r in unit] for unit in results])  # (instances, K)
        predicted = np.array([[r.predicted_outputs for r in unit] for unit in results])
        outputs = computed.size * N_OUTPUTS
        skipped = 1 - int(computed.sum()) / outputs
        rows.append({
            "mode": mode,
            "threshold": export.threshold,
            "zp_pattern": pattern,
            "zp_max_uint8": int(export.configs[0].zp_max),
            "accuracy": result["accuracy"],
            "mac_reduction": result.get("mac_reduction"),
            "macs_skipped": skipped,
            "macs": int(9 * computed.sum()),
            "predicted_share": int(predicted.sum()) / outputs,
            "compressed_share": float(export.saving_ratio),
            **prediction.top_measures(export.configs, results, run.gaps(), model_gaps, table, clock_mhz),
            "schedule": scheduled(run, export, ctx, clock_mhz),
        })  # fmt: skip
    base = rows[0]
    for row in rows:
        row["top_speedup"] = base["top_interval"] / row["top_interval"]
    return {"simulator": sim, "task": TASK, "images": K, "instances": INSTANCES, "threshold": threshold, "rows": rows}
