"""`make benchmark`: the zero-aware scheduler (host/schedule.py) on many test images of the footwear task.

The default CNN's depthwise layer, in the modes of the prediction section plus the balanced
allocation, at the largest threshold that loses no accuracy on these images (per-layer, int8
path; `model.deploy.e2e.largest_lossless`), and VELCRO alone at EXTRA_THRESHOLDS. Each mode is planned three ways: `fixed` (channel c on
unit c), `lpt` (64-image blocks, longest first) and `split` (the default: channels cut into image
blocks that end the units together), every run paying the kernel's start and the host's dispatch
latency (`--dispatch-us`, default XRT's 100 µs).

Every plan's runs take the cycles of the cycle model (`model.hw.cycles.kernel_run_cycles`), and the
simulated kernel confirms it in the same run: the `split` plan of VELCRO alone runs whole on the
simulated `velcro_krnl` (every OFMAP against the golden model, every run's cycles against the model,
the accuracy of the hardware path from its OFMAPs), and of every other mode the `SUBSET_RUNS`
shortest runs of its `lpt` plan. A mode with prediction runs with it on every channel ("all") or,
as `velcro run` does by default, on the channels where the tuning images say it saves cycles
("paying"). sim/reporting/scheduling.py writes reports/scheduling.{md,json} and the timeline plot.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from host import schedule
from host.api import (ScheduleOptions, plan_layer, quantized_ifmaps, run_layers, schedule_summary, tuning_ifmaps,
                      with_paying_prediction)  # fmt: skip
from host.backends.sim import SimBackend
from model.deploy import e2e
from model.deploy.quantize import golden_runner
from model.errors import VelcroError
from sim.harness.runner import ROOT, SIMULATORS, BenchFailed, SimulatorMissing
from sim.reporting import scheduling as report

TASK = "footwear"
DEFAULT_IMAGES = 1000
SUBSET_RUNS = 2  # simulated runs of every other mode's lpt plan
# (label, VELCRO on, allocation, prediction pattern or None, prediction "all" | "paying")
MODES = (
    ("VELCRO alone", True, "per-layer", None, "all"),
    ("VELCRO balanced", True, "balanced", None, "all"),
    ("prediction alone", False, "per-layer", "grid2", "paying"),
    ("VELCRO + prediction", True, "per-layer", "grid2", "all"),
    ("VELCRO + prediction, paying channels", True, "per-layer", "grid2", "paying"),
)
# VELCRO alone also at these thresholds (lossy or not on the benchmark's images): the per-layer
# T = 0.85 that is lossless on make sim's 32 images, where the channels' work is most uneven.
EXTRA_THRESHOLDS = (0.85,)


def mode_export(ctx, threshold: float, velcro: bool, allocation: str, pattern: str | None, prediction: str):
    """The mode's export, the channels whose prediction the "paying" rule turned off, and the tuning
    IFMAPs its prediction channels are planned with (None without prediction)."""
    export = ctx.export(threshold if velcro else None, allocation, zp_pattern=pattern, zp_max=0.0)
    if pattern is None:
        return export, [], None
    tuning = tuning_ifmaps(export, ctx.model)
    if prediction == "all":
        return export, [], tuning
    return *with_paying_prediction(export, tuning), tuning


def run_mode(ctx, ifmaps: np.ndarray, export, tuning: np.ndarray | None, backend: SimBackend,
             options: ScheduleOptions, whole: bool) -> dict:  # fmt: skip
    """One mode: its three plans on the cycle model; simulated, its split plan whole or the
    SUBSET_RUNS shortest runs of its lpt plan (blocks of at most 64 images, so a subset stays short)."""
    plans, summaries = {}, {}
    for name in schedule.PLANS:
        plan_options = dataclasses.replace(options, plan=name)
        plans[name] = plan_layer(export.configs, ifmaps, plan_options, tuning)
        summaries[name] = schedule_summary(plans[name], export.configs, ifmaps, plan_options) | {"runs": len(plans[name].jobs)}
    checked = confirm(plans["split" if whole else "lpt"], export, ifmaps, backend, options, whole)
    ofmaps = checked.pop("ofmaps")
    paths = e2e.run_paths(export, ctx.images, ctx.labels, model=ctx.model,
                          layer_runner=(lambda configs, x: ofmaps) if whole else golden_runner)  # fmt: skip
    return {"plans": summaries, "simulated": checked, "accuracy": paths["accuracy"],
            "layer_C": paths["layer_saving_ratio"], "mac_reduction": paths["mac_reduction"]["int8_golden"],
            "prediction_channels": [c for c, cfg in enumerate(export.configs) if cfg.zp_en]}  # fmt: skip


def confirm(plan: schedule.Plan, export, ifmaps: np.ndarray, backend: SimBackend, options: ScheduleOptions,
            whole: bool) -> dict:  # fmt: skip
    """Simulate the plan's runs (all, or the SUBSET_RUNS shortest) and compare their cycles with the model."""
    runs = sorted(range(len(plan.jobs)), key=lambda j: plan.jobs[j].images)
    runs = sorted(runs if whole else runs[:SUBSET_RUNS])
    subset = dataclasses.replace(plan, jobs=[plan.jobs[j] for j in runs], estimated_cycles=[])
    (run,) = run_layers([export.configs], ifmaps, backend, options, plans=[subset])
    measured = [int(c) for c in run.run_cycles]
    expected = schedule.model_run_cycles(subset, export.configs, ifmaps, options.latency)
    if measured != expected:
        wrong = [(job, m, e) for job, m, e in zip(subset.jobs, measured, expected) if m != e]
        raise VelcroError(f"the simulated kernel's run cycles differ from the cycle model: {wrong[:3]}")
    return {"plan": plan.name, "runs": len(runs), "frames": int(sum(job.images for job in subset.jobs)),
            "cycles_equal_model": True, "ofmaps": run.ofmaps}  # fmt: skip


def run_benchmark(sim: str, images: int, options: ScheduleOptions, threshold: float | None = None,
                  backend: SimBackend | None = None) -> dict:  # fmt: skip
    """Every mode at `threshold` (default: the largest lossless on these images) and VELCRO alone at
    EXTRA_THRESHOLDS; VELCRO alone at the largest of them runs whole on the simulator (the most
    uneven channels, and the fewest frames to simulate), every other row a subset."""
    ctx = e2e.prepare(TASK, images)
    scan = e2e.largest_lossless(ctx)
    threshold = scan["chosen_threshold"] if threshold is None else threshold
    if threshold is None:
        raise VelcroError(f"no threshold is lossless on these {images} images: give one with --threshold")
    ifmaps = quantized_ifmaps(ctx.model, ctx.images, ctx.quant.input_scale)
    backend = backend if backend is not None else SimBackend(sim, work=ROOT / "sim_build" / f"benchmark-{sim}")
    cases = [(threshold, *mode) for mode in MODES] + [(t, *MODES[0]) for t in EXTRA_THRESHOLDS if t != threshold]
    whole = max(t for t, label, *_ in cases if label == MODES[0][0])
    rows = []
    for t, label, velcro, allocation, pattern, prediction in tqdm(cases, desc="modes", unit="mode"):
        export, turned_off, tuning = mode_export(ctx, t, velcro, allocation, pattern, prediction)
        row = run_mode(ctx, ifmaps, export, tuning, backend, options, whole=(label, t) == (MODES[0][0], whole))
        rows.append({"mode": label, "threshold": t if velcro else None, "allocation": allocation, "zp_pattern": pattern,
                     "prediction": prediction, "prediction_turned_off": turned_off} | row)  # fmt: skip
    return {"task": TASK, "images": images, "simulator": sim, "threshold": threshold, "lossless_scan": scan,
            "dispatch_us": options.dispatch_us, "clock_mhz": options.clock_mhz, "rows": rows}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.flows.scheduling", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES, help=f"test images (default {DEFAULT_IMAGES})")
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator")
    parser.add_argument("--threshold", type=float, help="T of every mode (default: the largest lossless on the images)")
    parser.add_argument("--dispatch-us", type=float, default=schedule.DEFAULT_DISPATCH_US)
    parser.add_argument("--clock-mhz", type=float, default=300.0)
    parser.add_argument("--work", type=Path, help="folder for the job files and a simulator build of its own "
                        "(default: sim_build/benchmark-<sim>, building in the kernel build `make sim` uses)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="folder of scheduling.md and scheduling.json")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        options = ScheduleOptions(dispatch_us=args.dispatch_us, clock_mhz=args.clock_mhz)
        backend = None if args.work is None else SimBackend(args.sim, work=args.work, build_dir=args.work / "build")
        rep = run_benchmark(args.sim, args.images, options, args.threshold, backend)
    except (VelcroError, BenchFailed, SimulatorMissing) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    rep["wall_s"] = time.perf_counter() - start
    out = ROOT / args.out  # an absolute --out stays as it is
    out.mkdir(parents=True, exist_ok=True)
    (out / "scheduling.json").write_text(json.dumps(rep, indent=2, default=float))
    (out / "scheduling.md").write_text(report.markdown(rep))
    report.timeline_plot(rep, out / report.TIMELINE_PNG)
    print(report.markdown(rep))
    print(f"[benchmark] wrote {out / 'scheduling.md'} and scheduling.json in {rep['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
