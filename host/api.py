"""The host's API: the hardware layer's channels on `velcro_krnl` compute units, and what came back.

Channel c of a layer configuration runs on compute unit c and every image is a frame: the unit gets
the channel's 8 KB configuration image (`model.hw.image.config_image`) and the channel's IFMAPs as
one contiguous buffer, and after the run device memory holds the OFMAPs and, inside the image, the
counters the kernel wrote back (`model.hw.image.written_back`). `run_layers` runs several
configurations of the layer over the same IFMAPs in one job (one simulation on the `sim` backend),
`run_export` is `velcro run`: an exported layer on N test images of its task, with the accuracy of
the model's remaining layers on the OFMAPs (`model.deploy.e2e.run_paths`, which also fails unless
every OFMAP equals the golden model's).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from host.backends import Backend, DeviceResult
from model.deploy import e2e
from model.deploy.export import LayerExport
from model.deploy.hw_layer import hw_layer_input, task_split
from model.deploy.quantize import LayerRunner, quantize_input
from model.errors import VelcroError
from model.hw import golden
from model.hw.image import config_image, written_back
from model.hw.spec import IMAGE_WRITTEN_BACK, INSTANCES, H, W
from model.nets.default_model import DefaultCNN
from sim.harness.kernel_job import KernelJob

DEVICES = ("sim", "xrt")


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
@dataclass
class LayerRun:
    """One configuration of the layer after it ran: channel-major like `model.deploy`'s LayerRunner."""

    configs: list[golden.ConvConfig]
    ifmaps: np.ndarray  # (16, N, 64, 64) uint8
    ofmaps: np.ndarray  # (16, N, 64, 64) uint8
    images: np.ndarray  # (16, IMAGE_BYTES) uint8: the configuration images, counters written back
    frame_end_cycles: np.ndarray | None  # (16, N): cycle of every frame's last OFMAP beat (simulation only)
    wall_s: float  # host wall time of the job this run was part of

    @property
    def counters(self) -> list[dict[str, int]]:
        """Per channel, the counters its unit wrote back (FRAMES and the LAST_* of its last frame)."""
        return [written_back(image) for image in self.images]

    def gaps(self) -> np.ndarray:
        """(16, N-1) cycles between consecutive frame ends of each unit."""
        if self.frame_end_cycles is None:
            raise VelcroError("frame times come from the simulated kernel only (--device sim)")
        return np.diff(np.asarray(self.frame_end_cycles, dtype=np.int64), axis=1)

    def intervals(self) -> list[int]:
        """Each unit's steady-state frame interval: its last gap between frame ends."""
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


def layer_job(runs: Sequence[Sequence[golden.ConvConfig]], ifmaps: np.ndarray) -> KernelJob:
    """One job for R configurations of the layer over the same IFMAPs (16, N, 64, 64): unit 16·r + c
    runs channel c of configuration r."""
    ifmaps = np.asarray(ifmaps)
    if ifmaps.ndim != 4 or ifmaps.shape[0] != INSTANCES or ifmaps.shape[2:] != (H, W) or ifmaps.shape[1] < 1:
        raise VelcroError(f"IFMAPs must be ({INSTANCES}, N >= 1, {H}, {W}) uint8, got {ifmaps.shape}")
    if not runs or any(len(configs) != INSTANCES for configs in runs):
        raise VelcroError(f"every configuration of the layer has {INSTANCES} channels")
    images = np.stack([config_image(cfg) for configs in runs for cfg in configs])
    return KernelJob(images, np.concatenate([ifmaps] * len(runs)))


def check_result(job: KernelJob, result: DeviceResult) -> None:
    """The backend handed back one image and N OFMAPs per unit."""
    units, n = job.images.shape[0], job.n_frames
    if result.images.shape != job.images.shape or result.ofmaps.shape != job.ifmaps.shape:
        raise VelcroError(f"the backend returned images {result.images.shape} and OFMAPs {result.ofmaps.shape} "
                          f"for a job of {units} units x {n} frames")  # fmt: skip
    if result.frame_end_cycles is not None and np.shape(result.frame_end_cycles) != (units, n):
        raise VelcroError(f"the backend returned frame end cycles {np.shape(result.frame_end_cycles)}, not ({units}, {n})")


def check_counters(run: LayerRun) -> None:
    """Every unit wrote back the counters of its last frame, as the golden model counts them."""
    for c, (cfg, frames, got) in enumerate(zip(run.configs, run.ifmaps, run.counters)):
        last = golden.frame_result(frames[-1], cfg)
        expected = {"LAST_MACS": last.macs, "LAST_COMPUTED": last.computed_outputs, "LAST_PREDICTED": last.predicted_outputs}
        wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
        if got["FRAMES"] < len(frames):
            wrong["FRAMES"] = (got["FRAMES"], f">= {len(frames)}")
        if wrong:
            detail = ", ".join(f"{k} {g} (expected {e})" for k, (g, e) in wrong.items())
            raise VelcroError(f"channel {c}: the counters written back into its image are wrong: {detail}. "
                              "The kernel did not run every frame, or does not count as rtl/README.md says")  # fmt: skip


def run_layers(runs: Sequence[Sequence[golden.ConvConfig]], ifmaps: np.ndarray, backend: Backend) -> list[LayerRun]:
    """Run R configurations of the layer over `ifmaps` (16, N, 64, 64) in one job; check every unit's counters."""
    job = layer_job(runs, ifmaps)
    result = backend.run(job)
    check_result(job, result)
    layer_runs = []
    for r, configs in enumerate(runs):
        units = slice(r * INSTANCES, (r + 1) * INSTANCES)
        cycles = None if result.frame_end_cycles is None else np.asarray(result.frame_end_cycles)[units]
        run = LayerRun(list(configs), np.asarray(ifmaps), result.ofmaps[units], result.images[units], cycles, result.wall_s)
        check_counters(run)
        layer_runs.append(run)
    return layer_runs


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


def timing(run: LayerRun, clock_mhz: float) -> dict:
    """Frame intervals per unit and of the 16 units together (the slowest sets the pace), from simulation."""
    intervals = run.intervals()
    top = max(intervals)
    return {"instance_intervals": intervals, "top_interval": top, "clock_mhz": clock_mhz,
            "top_images_per_s": clock_mhz * 1e6 / top}  # fmt: skip


def run_export(export: LayerExport, n_images: int, backend: Backend, *, model: DefaultCNN, task: str | None = None,
               clock_mhz: float = 300.0) -> tuple[dict, LayerRun]:
    """`velcro run`: the export on the first `n_images` test images; the summary and the run itself."""
    images, labels = task_images(export, n_images, task)
    ifmaps = quantized_ifmaps(model, images, export.input_scale)
    (run,) = run_layers([export.configs], ifmaps, backend)
    paths = e2e.run_paths(export, images, labels, model=model, layer_runner=run.runner)
    summary = {
        "device": backend.name,
        "task": export.task if task is None else task,
        "images": n_images,
        "threshold": export.threshold,
        "allocation": export.allocation,
        "zp_pattern": export.zp_pattern,
        "outputs_equal_golden": True,  # run_paths raises otherwise
        "accuracy": {"device": paths["accuracy"]["rtl"]} | {k: v for k, v in paths["accuracy"].items() if k != "rtl"},
        "layer_saving_ratio": paths["layer_saving_ratio"],
        "mac_reduction": paths["mac_reduction"]["rtl"],
        "counters": {name: [c[name] for c in run.counters] for name in IMAGE_WRITTEN_BACK},  # per channel
        "wall_s": run.wall_s,
    }
    if run.frame_end_cycles is not None and n_images >= 2:
        summary |= timing(run, clock_mhz)
    return summary, run
