"""The C sweep behind `make sim`: throughput, energy proxy and toggles versus the saving ratio C.

For every C the masks compress, per channel of the offline default CNN's 16-channel depthwise
layer (the hardware layer), the ⌊C·4096⌋ lowest-variance outputs of that channel, using VELCRO
statistics over the footwear task's preprocessing images (`--masks synthetic` uses a documented
low-variance pattern instead). Each channel's mask is exactly at C, so every instance has equal
work. Weights, requantization and the IFMAPs are random (seeded): cycles and events do not depend
on them, and random data gives the toggle proxy a worst-case activity.

Per C, two simulations run:
* one `velcro_conv2d` with a waveform dump: steady-state interval, and from the dump the events
  and toggles of one steady-state frame (sim/harness/activity.py) -> energy proxy (model/hw/energy.py);
* the 16-instance `velcro_top` with all instances busy: its steady-state interval.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.hw import cycles, golden
from model.deploy.e2e import balanced_masks
from model.hw.energy import DEFAULT_TABLE, EnergyTable, frame_events
from model.hw.golden import H, N_OUTPUTS, W
from model.deploy.hw_layer import hw_layer_statistics
from sim.harness.activity import Waveform
from sim.harness.bench_files import write_runs
from sim.harness.hil import run_layer
from sim.harness.runner import ROOT, run_bench

SWEEP_C = (0.0, 0.1, 0.135, 0.2, 0.2773, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # 0..0.8 and the paper's points
OPS_PER_FRAME = 2 * 9 * N_OUTPUTS  # the uncompressed layer's multiply-adds, counted as 2 ops
INSTANCES = 16
# Back-to-back frames per point. The frame between the 2nd and 3rd output ends is in steady state in
# every stage: the load of frame 5 (two IFMAP slots ahead) and the compute and drain of the next
# frames all fall inside it.
SWEEP_FRAMES = 5
TOP_FRAMES = 3  # enough for a steady gap between the 2nd and 3rd frame on every instance
TASK = "footwear"


@dataclass
class SweepSettings:
    sim: str = "icarus"
    clock_mhz: float = 300.0
    masks: str = "velcro"
    seed: int = 2021
    energy_table: Path = DEFAULT_TABLE


def channel_variances(source: str, seed: int) -> tuple[np.ndarray, str]:
    """(16, 64, 64) variance per output element and a sentence saying where it came from."""
    if source == "velcro":
        _, variance = hw_layer_statistics(TASK, seed=seed)
        return variance.numpy(), (
            f"VELCRO statistics of the default CNN's depthwise layer (hw_dw + ReLU) over the "
            f"'{TASK}' task's preprocessing images; per channel, the lowest-variance outputs"
        )
    if source == "synthetic":
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:H, 0:W]
        radius = np.hypot(yy - (H - 1) / 2, xx - (W - 1) / 2)
        # Border pixels of a centred object vary least (background), the centre most.
        variance = np.exp(-((radius / 20.0) ** 2))[None] + 0.05 * rng.random((INSTANCES, H, W))
        return variance, "synthetic pattern: variance exp(-(r/20)^2) + 5% uniform noise (low at the borders)"
    raise ValueError(f"unknown mask source {source!r}: use 'velcro' or 'synthetic'")


def instance_configs(variances: np.ndarray, ratio: float, seed: int) -> list[golden.ConvConfig]:
    rng = np.random.default_rng(seed)
    configs = []
    masks = balanced_masks(torch.from_numpy(variances), ratio).numpy()  # ⌊C·4096⌋ per channel
    for mask in masks:
        base = golden.random_config(rng, 0.0)
        configs.append(golden.ConvConfig(base.weights, base.bias, base.mult, base.shift, mask, base.avg))
    return configs


def run_instance_point(settings: SweepSettings, cfg: golden.ConvConfig, ifmaps: np.ndarray, work: Path) -> dict:
    """One instance at one point, with a waveform: interval, and events and toggles of a frame."""
    work.mkdir(parents=True, exist_ok=True)
    config_file, results = work / "point.npz", work / "measured.jsonl"
    write_runs(config_file, [[cfg]], ifmaps[None])
    results.unlink(missing_ok=True)
    tests, failed = run_bench(
        settings.sim, "velcro_conv2d", "sim.benches.tb_conv2d", ROOT / "sim_build" / f"sweep-conv2d-{settings.sim}",
        testcase="test_sweep_point", waves=True, quiet=True,
        env={"VELCRO_CONFIG": str(config_file), "VELCRO_RESULTS": str(results)},
    )  # fmt: skip
    if failed or not tests:
        raise RuntimeError(f"velcro_conv2d sweep point failed on {settings.sim} (computed={cfg.computed_outputs})")
    measured = json.loads(results.read_text().splitlines()[-1])
    dump_dir = ROOT / "sim_build" / f"sweep-conv2d-{settings.sim}"
    dump = dump_dir / ("velcro_conv2d.fst" if settings.sim == "icarus" else "dump.vcd")
    ends = measured["frame_end_ps"]
    activity = Waveform(dump).frame_activity("velcro_conv2d", ends[1], ends[2], measured["clock_ps"])
    expected = frame_events(cfg.mask)
    if activity.events != expected:
        raise RuntimeError(f"events counted in the waveform {activity.events} differ from the "
                           f"micro-architecture's event model {expected} (computed={cfg.computed_outputs})")
    return {**measured, "events": activity.events, "toggles_mac": activity.toggles_mac,
            "toggles_rest": activity.toggles_rest}  # fmt: skip


def run_top_points(settings: SweepSettings, points_configs: list[list[golden.ConvConfig]], ifmaps: np.ndarray,
                   work: Path) -> list[int]:
    """The top's steady-state interval (its slowest instance) at every point, in one simulation."""
    frames = np.broadcast_to(ifmaps[:TOP_FRAMES], (INSTANCES, TOP_FRAMES, H, W))
    _, intervals = run_layer(settings.sim, points_configs, np.ascontiguousarray(frames), work / "top")
    return [max(point) for point in intervals.tolist()]


def run_sweep(settings: SweepSettings, points=SWEEP_C, *, with_top: bool = True) -> dict:
    variances, mask_source = channel_variances(settings.masks, settings.seed)
    table = EnergyTable.load(settings.energy_table)
    rng = np.random.default_rng(settings.seed)
    ifmaps = rng.integers(0, 256, (SWEEP_FRAMES, H, W), dtype=np.uint8)
    work_root = ROOT / "sim_build" / f"sweep-{settings.sim}"
    points_configs = [instance_configs(variances, ratio, settings.seed) for ratio in points]
    rows = []
    for ratio, configs in zip(tqdm(points, desc=f"C sweep, one instance with waveform ({settings.sim})",
                                   unit="point"), points_configs):  # fmt: skip
        one = run_instance_point(settings, configs[0], ifmaps, work_root / f"c{ratio:.4f}")
        computed = configs[0].computed_outputs
        rows.append({
            "C_target": ratio,
            "C": 1 - computed / N_OUTPUTS,
            "computed": computed,
            "instance_interval": one["interval"],
            "model_interval": cycles.frame_interval(computed),
            "events": one["events"],
            "toggles_mac": one["toggles_mac"],
            "toggles_rest": one["toggles_rest"],
            "energy_pj": table.frame_energy_pj(one["events"], one["interval"], settings.clock_mhz),
        })  # fmt: skip
    if with_top:
        print(f"[sweep] velcro_top: {len(points)} points, {INSTANCES} instances busy at once ({settings.sim})")
        for row, interval in zip(rows, run_top_points(settings, points_configs, ifmaps, work_root)):
            row["top_interval"] = interval
    for row in rows:
        for scope, key, count in (("instance", "instance_interval", 1), ("top", "top_interval", INSTANCES)):
            if key in row:
                fps = count * settings.clock_mhz * 1e6 / row[key]
                row[f"{scope}_frames_per_s"] = fps
                row[f"{scope}_gops"] = fps * OPS_PER_FRAME / 1e9
    return {
        "settings": {"simulator": settings.sim, "clock_mhz": settings.clock_mhz, "mask_source": mask_source,
                     "seed": settings.seed, "frames_per_point": SWEEP_FRAMES, "top_frames_per_point": TOP_FRAMES,
                     "instances": INSTANCES, "energy_table": str(settings.energy_table),
                     "energy_table_version": table.version, "technology": table.technology,
                     "ops_per_frame": OPS_PER_FRAME},
        "rows": rows,
    }  # fmt: skip
