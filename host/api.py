"""The host's API: the hardware layer's work as runs of `velcro_krnl` compute units, and what came back.

A layer configuration's work is planned first (host/schedule.py): jobs of (channel, consecutive
images), each one run of one unit. A run gets the channel's 8 KB configuration image
(`model.hw.image.config_image`) and its IFMAPs as one contiguous buffer; afterwards device memory
holds the OFMAPs and, inside the image, the counters the kernel wrote back
(`model.hw.image.written_back`). Constant channels never reach a unit: the host fills in their
averages. `run_layers` runs several configurations of the layer over the same IFMAPs in one kernel
job (one simulation on the `sim` backend) and puts their OFMAPs back channel-major;
`schedule_summary` puts the runs on the units' timeline beside the bound and the uncompressed layer;
`run_export` is `velcro run`: an exported layer on N test images of its task, with the accuracy of
the model's remaining layers on the OFMAPs (`model.deploy.e2e.run_paths`, which also fails unless
every OFMAP equals the golden model's).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from host import schedule
from host.backends import Backend, DeviceResult
from model.deploy import e2e
from model.deploy.export import LayerExport
from model.deploy.hw_layer import hw_layer_input, task_split
from model.deploy.quantize import LayerRunner, quantize_input
from model.errors import VelcroError
from model.hw import golden
from model.hw.image import config_image, written_back
from model.hw.job import KernelJob
from model.hw.spec import IMAGE_BYTES, IMAGE_WRITTEN_BACK, INSTANCES, H, W
from model.nets.default_model import DefaultCNN

DEVICES = ("sim", "xrt")
PREDICTION_CHOICES = ("paying", "all")


def make_backend(device: str, *, sim: str = "verilator", xclbin: str | Path | None = None, device_index: int = 0,
                 work: Path | None = None, build_dir: Path | None = None, log: Path | None = None) -> Backend:
    """The backend of `device`: "sim" (the simulated kernel on `sim`) or "xrt" (a card with `xclbin`)."""
    if device == "sim":
        from host.backends.sim import SimBackend

        return SimBackend(sim, work=work, build_dir=build_dir, log=log)
    if device == "xrt":
        from host.backends.xrt import XrtBackend

        if xclbin is None:
            raise VelcroError("--device xrt needs the card's binary: give --xclbin build/vitis/velcro.xclbin (from `make xclbin`)")
        return XrtBackend(xclbin, device_index=device_index)
    raise VelcroError(f"device {device!r}: choose one of {', '.join(DEVICES)}")


# ---------------------------------------------------------------------- one layer on the compute units
@dataclass(frozen=True)
class ScheduleOptions:
    """How `run_layers` plans a layer (host/schedule.py) and counts its cycles."""

    plan: str = schedule.DEFAULT_PLAN
    dispatch_us: float = schedule.DEFAULT_DISPATCH_US
    clock_mhz: float = 300.0
    block: int = schedule.DEFAULT_BLOCK
    latency: int = schedule.DEFAULT_MEMORY_LATENCY  # the sim backend's memory (its VELCRO_LATENCY default)

    @property
    def dispatch_cycles(self) -> int:
        return round(self.dispatch_us * self.clock_mhz)

    def __post_init__(self) -> None:
        if self.dispatch_us < 0 or self.clock_mhz <= 0:
            raise VelcroError(f"--dispatch-us {self.dispatch_us} and --clock-mhz {self.clock_mhz}: give a dispatch "
                              "latency >= 0 and a clock > 0")  # fmt: skip


@dataclass
class LayerRun:
    """One configuration of the layer after it ran: channel-major like `model.deploy`'s LayerRunner."""

    configs: list[golden.ConvConfig]
    ifmaps: np.ndarray  # (16, N, 64, 64) uint8
    ofmaps: np.ndarray  # (16, N, 64, 64) uint8, constant channels filled in by the host
    plan: schedule.Plan
    images: np.ndarray  # (jobs, IMAGE_BYTES) uint8: every run's configuration image, counters written back
    run_cycles: np.ndarray | None  # (jobs,) ap_start -> ap_done of every run (simulation only)
    frame_end_cycles: np.ndarray | None  # (16, N): every frame's last OFMAP beat from its run's start (simulation only)
    wall_s: float  # host wall time of the job this run was part of

    @property
    def counters(self) -> list[dict[str, int]]:
        """Per job, the counters its run wrote back (FRAMES and the LAST_* of its last frame)."""
        return [written_back(image) for image in self.images]

    def gaps(self) -> np.ndarray:
        """(16, N-1) cycles between consecutive frame ends of each channel (one run per channel)."""
        if self.frame_end_cycles is None:
            raise VelcroError("frame times come from the simulated kernel only (--device sim)")
        if sorted(job.channel for job in self.plan.jobs) != list(range(len(self.configs))):
            raise VelcroError("frame gaps need every channel in one run (--schedule fixed)")
        return np.diff(np.asarray(self.frame_end_cycles, dtype=np.int64), axis=1)

    def intervals(self) -> list[int]:
        """Each unit's steady-state frame interval: its last gap between frame ends (--schedule fixed)."""
        gaps = self.gaps()
        if gaps.shape[1] == 0:
            raise VelcroError("a frame interval needs at least 2 images per unit")
        return [int(g[-1]) for g in gaps]

    @property
    def runner(self) -> LayerRunner:
        """A `model.deploy` LayerRunner that hands back these OFMAPs for these configurations and IFMAPs."""

        def replay(configs: list[golden.ConvConfig], ifmaps: np.ndarray) -> np.ndarray:
            if len(configs) != len(self.configs) or not all(map(_same_config, configs, self.configs)):
                raise VelcroError("these configurations are not the ones that ran")
            if not np.array_equal(ifmaps, self.ifmaps):
                raise VelcroError("these IFMAPs are not the ones that ran")
            return self.ofmaps

        return replay


def _same_config(a: golden.ConvConfig, b: golden.ConvConfig) -> bool:
    return np.array_equal(config_image(a), config_image(b))


def check_ifmaps(ifmaps: np.ndarray) -> np.ndarray:
    ifmaps = np.asarray(ifmaps)
    if ifmaps.ndim != 4 or ifmaps.shape[0] != INSTANCES or ifmaps.shape[2:] != (H, W) or ifmaps.shape[1] < 1:
        raise VelcroError(f"IFMAPs must be ({INSTANCES}, N >= 1, {H}, {W}) uint8, got {ifmaps.shape}")
    return ifmaps


def plan_layer(configs: Sequence[golden.ConvConfig], ifmaps: np.ndarray, options: ScheduleOptions,
               tuning_ifmaps: np.ndarray | None = None) -> schedule.Plan:  # fmt: skip
    """The plan of one configuration of the layer; channels with prediction need `tuning_ifmaps`."""
    if len(configs) != INSTANCES:
        raise VelcroError(f"every configuration of the layer has {INSTANCES} channels")
    costs = schedule.channel_costs(configs, tuning_ifmaps, options.latency) if options.plan != "fixed" else [
        schedule.ChannelCost(0.0, 0.0)] * len(configs)  # fmt: skip
    return schedule.make_plan(options.plan, configs, ifmaps.shape[1], costs, units=INSTANCES,
                              dispatch_cycles=options.dispatch_cycles, block=options.block)  # fmt: skip


def layer_job(layers: Sequence[tuple[Sequence[golden.ConvConfig], schedule.Plan]], ifmaps: np.ndarray) -> KernelJob:
    """One kernel job for several planned configurations of the layer over the same IFMAPs
    (16, N, 64, 64): every plan's jobs in its order, one plan after another."""
    ifmaps = check_ifmaps(ifmaps)
    jobs = [(configs, job) for configs, plan in layers for job in plan.jobs]
    if not jobs:
        return KernelJob(np.zeros((0, IMAGE_BYTES), np.uint8), ifmaps[0, :0], [], [])
    return KernelJob(np.stack([config_image(configs[j.channel]) for configs, j in jobs]),
                     np.concatenate([ifmaps[j.channel, j.first_image:j.first_image + j.images] for _, j in jobs]),
                     [j.images for _, j in jobs], [j.unit for _, j in jobs])  # fmt: skip


def check_result(job: KernelJob, result: DeviceResult) -> None:
    """The backend handed back one image per run and one OFMAP per frame."""
    if result.images.shape != job.images.shape or result.ofmaps.shape != job.ifmaps.shape:
        raise VelcroError(f"the backend returned images {result.images.shape} and OFMAPs {result.ofmaps.shape} "
                          f"for a job of {job.runs} runs and {len(job.ifmaps)} frames")  # fmt: skip
    for name, got, want in (("run cycles", result.run_cycles, (job.runs,)),
                            ("frame end cycles", result.frame_end_cycles, (len(job.ifmaps),))):  # fmt: skip
        if got is not None and np.shape(got) != want:
            raise VelcroError(f"the backend returned {name} {np.shape(got)}, not {want}")


def check_counters(run: LayerRun) -> None:
    """Every run wrote back FRAMES = its frames and the counters of its last frame, as the golden model counts them."""
    for job, got in zip(run.plan.jobs, run.counters):
        cfg, last_frame = run.configs[job.channel], run.ifmaps[job.channel, job.first_image + job.images - 1]
        last = golden.frame_result(last_frame, cfg)
        expected = {"FRAMES": job.images, "LAST_MACS": last.macs, "LAST_COMPUTED": last.computed_outputs,
                    "LAST_PREDICTED": last.predicted_outputs}  # fmt: skip
        wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
        if wrong:
            detail = ", ".join(f"{k} {g} (expected {e})" for k, (g, e) in wrong.items())
            raise VelcroError(f"channel {job.channel} on unit {job.unit}, images {job.first_image}+{job.images}: the "
                              f"counters written back into its image are wrong: {detail}. The kernel did not run "
                              "every frame, or does not count as rtl/README.md says")  # fmt: skip


def run_layers(layers: Sequence[Sequence[golden.ConvConfig]], ifmaps: np.ndarray, backend: Backend,
               options: ScheduleOptions = ScheduleOptions(plan="fixed"), tuning_ifmaps: np.ndarray | None = None,
               plans: Sequence[schedule.Plan] | None = None) -> list[LayerRun]:  # fmt: skip
    """Run several configurations of the layer over `ifmaps` (16, N, 64, 64) in one kernel job, each
    as `options` plans it (or as `plans` say); check every run's counters. Constant channels never
    reach a unit."""
    ifmaps = check_ifmaps(ifmaps)
    if plans is None:
        plans = [plan_layer(configs, ifmaps, options, tuning_ifmaps) for configs in layers]
    if len(plans) != len(layers):
        raise VelcroError(f"{len(plans)} plans for {len(layers)} configurations of the layer")
    planned = [(list(configs), plan) for configs, plan in zip(layers, plans)]
    job = layer_job(planned, ifmaps)
    result = backend.run(job) if job.runs else DeviceResult(job.images, job.ifmaps, 0.0, np.zeros(0, np.int64),
                                                            np.zeros(0, np.int64))  # fmt: skip
    check_result(job, result)
    layer_runs, first_run = [], 0
    for configs, plan in planned:
        runs = range(first_run, first_run + len(plan.jobs))
        first_run += len(plan.jobs)
        layer_runs.append(_layer_run(configs, ifmaps, plan, job, result, runs))
        check_counters(layer_runs[-1])
    return layer_runs


def _layer_run(configs, ifmaps, plan: schedule.Plan, job: KernelJob, result: DeviceResult, runs: range) -> LayerRun:
    """One configuration's OFMAPs (and frame end cycles) back in channel-major order from its runs."""
    ofmaps = np.zeros_like(ifmaps)  # a plan of some runs only (a simulated subset) leaves the rest 0
    ends = None if result.frame_end_cycles is None else np.zeros(ifmaps.shape[:2], np.int64)
    for c in plan.constant_channels:
        ofmaps[c] = schedule.constant_ofmap(configs[c])
    for r, j in zip(runs, plan.jobs):
        images = slice(j.first_image, j.first_image + j.images)
        ofmaps[j.channel, images] = result.ofmaps[job.frames(r)]
        if ends is not None:
            ends[j.channel, images] = result.frame_end_cycles[job.frames(r)]
    cycles_ = None if result.run_cycles is None else np.asarray(result.run_cycles)[runs.start:runs.stop]
    return LayerRun(configs, ifmaps, ofmaps, plan, result.images[runs.start:runs.stop], cycles_, ends, result.wall_s)


def uncompressed(configs: Sequence[golden.ConvConfig]) -> list[golden.ConvConfig]:
    """The same layer with nothing compressed or predicted: the reference of every speedup."""
    return [dataclasses.replace(c, mask=np.zeros((H, W), bool), zp_en=False) for c in configs]


def schedule_summary(plan: schedule.Plan, configs: Sequence[golden.ConvConfig], ifmaps: np.ndarray,
                     options: ScheduleOptions, run_cycles: Sequence[int] | None = None) -> dict:  # fmt: skip
    """The `schedule` object of `velcro run`: the planned timeline with the runs' cycles (`run_cycles`
    from the simulated kernel, else the cycle model), the bound, and the uncompressed layer planned
    the same way with its cycles from the cycle model."""
    model = schedule.model_run_cycles(plan, configs, ifmaps, options.latency)
    measured = run_cycles is not None
    line = schedule.timeline(plan, run_cycles if measured else model)
    reference_configs = uncompressed(configs)
    reference = plan_layer(reference_configs, ifmaps, options)
    reference_cycles = schedule.model_run_cycles(reference, reference_configs, ifmaps, options.latency)
    reference_makespan = schedule.timeline(reference, reference_cycles).makespan
    n = ifmaps.shape[1]
    bound = schedule.lower_bound(configs, ifmaps, plan.constant_channels, plan.units)
    summary = {
        "plan": plan.name,
        "timeline": "simulated kernel" if measured else "cycle model",
        "units": plan.units,
        "dispatch_us": options.dispatch_us,
        "dispatch_cycles": options.dispatch_cycles,
        "makespan_cycles_per_image": line.makespan / n,
        "lower_bound_cycles_per_image": bound / n,
        "over_lower_bound": line.makespan / bound - 1 if bound else None,
        "uncompressed_makespan_cycles_per_image": reference_makespan / n,
        "speedup": reference_makespan / line.makespan if line.makespan else None,
        "lower_bound_speedup": reference_makespan / bound if bound else None,
        "images_per_s": n * options.clock_mhz * 1e6 / line.makespan if line.makespan else None,
        "clock_mhz": options.clock_mhz,
        "units_busy_cycles": line.units_busy_cycles,
        "constant_channels": plan.constant_channels,
        "jobs": [job.as_dict() | {"start_cycle": s, "end_cycle": e} for job, s, e in zip(plan.jobs, line.starts, line.ends)],
    }
    if measured:
        summary["cycle_model_exact_runs"] = int(sum(int(m) == int(c) for m, c in zip(model, run_cycles)))
    return summary


# ---------------------------------------------------------------------- velcro run
def quantized_ifmaps(model: DefaultCNN, images: torch.Tensor, input_scale: float) -> np.ndarray:
    """The quantized layer inputs (16, N, 64, 64) of `images`, as the hardware-in-the-loop flow makes them."""
    return quantize_input(hw_layer_input(model, images), input_scale)


def task_images(export: LayerExport, n: int, task: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` test images of the export's task (or `task`) and their labels: the export's seeded
    split, so with the defaults of `velcro export` these are the images of the hardware-in-the-loop flow."""
    task = export.task if task is None else task
    n_prep = export.calibration_images if task == export.task and export.calibration_images else None
    data, split = task_split(task, n_prep, seed=export.seed)
    if not 1 <= n <= len(split.val):
        raise VelcroError(f"--images {n}: give 1 to {len(split.val)} (the test images of task {task!r})")
    test = split.val[:n]
    return data.images[test], data.labels[test]


def tuning_ifmaps(export: LayerExport, model: DefaultCNN) -> np.ndarray:
    """The quantized layer inputs (16, K, 64, 64) of the export's preprocessing images: what a plan
    may know of the data before the run (the test images are never looked at)."""
    n_prep = export.calibration_images or None
    data, split = task_split(export.task, n_prep, seed=export.seed)
    return quantized_ifmaps(model, data.images[split.prep], export.input_scale)


def with_paying_prediction(export: LayerExport, tuning: np.ndarray) -> tuple[LayerExport, list[int]]:
    """The export with prediction kept only on the channels where it saves cycles on the tuning
    images (`schedule.prediction_pays`); the channels it was turned off on."""
    pays = schedule.prediction_pays(export.configs, tuning)
    off = [c for c, (cfg, keep) in enumerate(zip(export.configs, pays)) if cfg.zp_en and not keep]
    configs = [dataclasses.replace(cfg, zp_en=False) if c in off else cfg for c, cfg in enumerate(export.configs)]
    return dataclasses.replace(export, configs=configs), off


def timing(run: LayerRun, clock_mhz: float) -> dict:
    """Frame intervals per unit and of the 16 units together (the slowest sets the pace), from simulation."""
    intervals = run.intervals()
    top = max(intervals)
    return {"instance_intervals": intervals, "top_interval": top, "clock_mhz": clock_mhz,
            "top_images_per_s": clock_mhz * 1e6 / top}  # fmt: skip


def run_export(export: LayerExport, n_images: int, backend: Backend, *, model: DefaultCNN, task: str | None = None,
               options: ScheduleOptions = ScheduleOptions(), prediction: str = "paying") -> tuple[dict, LayerRun]:
    """`velcro run`: the export on the first `n_images` test images, planned by `options`; the summary
    and the run itself. `prediction` "paying" keeps zero-value prediction only where the tuning images
    say it saves cycles, "all" keeps the export's."""
    if prediction not in PREDICTION_CHOICES:
        raise VelcroError(f"--prediction {prediction!r}: choose one of {', '.join(PREDICTION_CHOICES)}")
    images, labels = task_images(export, n_images, task)
    ifmaps = quantized_ifmaps(model, images, export.input_scale)
    predicting = any(c.zp_en for c in export.configs)
    tuning = tuning_ifmaps(export, model) if predicting else None
    turned_off: list[int] = []
    if predicting and prediction == "paying":
        export, turned_off = with_paying_prediction(export, tuning)
    (run,) = run_layers([export.configs], ifmaps, backend, options, tuning)
    paths = e2e.run_paths(export, images, labels, model=model, layer_runner=run.runner)
    summary = {
        "device": backend.name,
        "task": export.task if task is None else task,
        "images": n_images,
        "threshold": export.threshold,
        "allocation": export.allocation,
        "zp_pattern": export.zp_pattern,
        "prediction_channels": [c for c, cfg in enumerate(export.configs) if cfg.zp_en],
        "prediction_turned_off": turned_off,
        "outputs_equal_golden": True,  # run_paths raises otherwise
        "accuracy": {"device": paths["accuracy"]["rtl"]} | {k: v for k, v in paths["accuracy"].items() if k != "rtl"},
        "layer_saving_ratio": paths["layer_saving_ratio"],
        "mac_reduction": paths["mac_reduction"]["rtl"],
        "counters": {name: [c[name] for c in run.counters] for name in IMAGE_WRITTEN_BACK},  # per run, as schedule.jobs
        "wall_s": run.wall_s,
        "schedule": schedule_summary(run.plan, run.configs, run.ifmaps, options, run.run_cycles),
    }
    if run.frame_end_cycles is not None and n_images >= 2 and options.plan == "fixed":
        summary |= timing(run, options.clock_mhz)
    return summary, run
