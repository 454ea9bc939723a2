"""The C sweep behind `make sim`: throughput, energy proxy and toggles versus the saving ratio C.

For every C the masks compress, per channel of the offline default CNN's 16-channel depthwise
layer (the hardware layer), the ⌊C·4096⌋ lowest-variance outputs of that channel, using VELCRO
statistics over the footwear task's preprocessing images (`--masks synthetic` uses a documented
low-variance pattern instead). Each channel's mask is exactly at C, so every instance has equal
work. Weights, requantization and the IFMAPs are random (seeded): cycles and events do not depend
on them, and random data gives the toggle proxy a worst-case activity.

Two kinds of simulation run:
* per C, one `velcro_conv2d` with a waveform dump: steady-state interval, and from the dump the
  events and toggles of one steady-state frame (sim/harness/activity.py) -> energy proxy
  (model/hw/energy.py);
* once for all C, the 16-instance `velcro_top` with all instances busy, the masks rewritten per C:
  its steady-state interval. It runs on `top_sim` (`make sim`: Verilator, whose build the hardware
  in the loop reuses); cycle counts do not depend on the simulator.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.hw import cycles, golden
from model.deploy.masks import balanced_masks
from model.hw.energy import DEFAULT_TABLE, EnergyTable, frame_events
from model.hw.golden import H, N_OUTPUTS, W
from model.hw.spec import INSTANCES
from model.deploy.hw_layer import hw_layer_statistics
from sim.harness.activity import Waveform
from sim.harness.bench_files import write_runs
from sim.harness.hil import run_layer, shared_top_build
from sim.harness.runner import ROOT, BenchFailed, run_bench

SWEEP_C = (0.0, 0.1, 0.135, 0.2, 0.2773, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # 0..0.8 and the paper's points
OPS_PER_FRAME = 2 * 9 * N_OUTPUTS  # the uncompressed layer's multiply-adds, counted as 2 ops
# Back-to-back frames per point. The frame between the 2nd and 3rd output ends is in steady state in
# every stage: the load of frame 5 (two IFMAP slots ahead) and the compute and drain of the next
# frames all fall inside it.
SWEEP_FRAMES = 5
TOP_FRAMES = 3  # enough for a steady gap between the 2nd and 3rd frame on every instance
TASK = "footwear"


@dataclass
class SweepSettings:
    sim: str = "icarus"  # the instance runs, whose waveforms give events and toggles
    top_sim: str | None = None  # the top's run (cycle counts only); None: the same as `sim`
    clock_mhz: float = 300.0
    masks: str = "velcro"
    seed: int = 2021
    energy_table: Path = DEFAULT_TABLE
    build_root: Path = ROOT / "sim_build"  # simulator builds and per-point files (pytest: one per worker)


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


def simulate_instance_point(settings: SweepSettings, cfg: golden.ConvConfig, ifmaps: np.ndarray,
                            work: Path) -> tuple[dict, Path]:
    """One instance at one point, with a waveform: what the bench measured, and the dump (in `work`)."""
    work.mkdir(parents=True, exist_ok=True)
    config_file, results = work / "point.npz", work / "measured.jsonl"
    write_runs(config_file, [[cfg]], ifmaps[None])
    results.unlink(missing_ok=True)
    build_dir = settings.build_root / f"sweep-conv2d-{settings.sim}"
    tests, failed = run_bench(
        settings.sim, "velcro_conv2d", "sim.benches.tb_conv2d", build_dir,
        testcase="test_sweep_point", waves=True, quiet=True,
        env={"VELCRO_CONFIG": str(config_file), "VELCRO_RESULTS": str(results)},
    )  # fmt: skip
    if failed or not tests:
        raise BenchFailed(f"velcro_conv2d sweep point failed on {settings.sim} (computed={cfg.computed_outputs})")
    dump_name = "velcro_conv2d.fst" if settings.sim == "icarus" else "dump.vcd"
    dump = work / dump_name
    (build_dir / dump_name).replace(dump)  # the next point's run writes a new one
    return json.loads(results.read_text().splitlines()[-1]), dump


def point_activity(cfg: golden.ConvConfig, measured: dict, dump: Path) -> dict:
    """Events and toggles of one steady-state frame (between the 2nd and 3rd output ends) from the dump;
    the events must equal the micro-architecture's event model."""
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
    sim = settings.top_sim or settings.sim
    _, intervals = run_layer(sim, points_configs, np.ascontiguousarray(frames), work / "top",
                             build_dir=shared_top_build(sim, settings.build_root))
    return [max(point) for point in intervals.tolist()]


@dataclass
class SweepPlan:
    """What every simulation of the sweep shares: per point, one configuration per instance."""

    settings: SweepSettings
    points: tuple[float, ...]
    mask_source: str
    table: EnergyTable
    ifmaps: np.ndarray  # (SWEEP_FRAMES, H, W)
    configs: list[list[golden.ConvConfig]]  # [point][instance]
    work: Path


def plan_sweep(settings: SweepSettings, points=SWEEP_C) -> SweepPlan:
    variances, mask_source = channel_variances(settings.masks, settings.seed)
    rng = np.random.default_rng(settings.seed)
    return SweepPlan(
        settings=settings, points=tuple(points), mask_source=mask_source,
        table=EnergyTable.load(settings.energy_table),
        ifmaps=rng.integers(0, 256, (SWEEP_FRAMES, H, W), dtype=np.uint8),
        configs=[instance_configs(variances, ratio, settings.seed) for ratio in points],
        work=settings.build_root / f"sweep-{settings.sim}",
    )  # fmt: skip


def run_instance_sweep(plan: SweepPlan) -> list[dict]:
    """One row per point: instance 0's interval, events, toggles and energy proxy.

    The waveform of a point is read while the simulator runs the next one (a thread: the main one
    only waits for the simulator process), so the two overlap on two cores.
    """
    settings, rows = plan.settings, []
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = []
        for ratio, configs in zip(tqdm(plan.points, desc=f"C sweep, one instance with waveform ({settings.sim})",
                                       unit="point"), plan.configs):  # fmt: skip
            measured, dump = simulate_instance_point(settings, configs[0], plan.ifmaps, plan.work / f"c{ratio:.4f}")
            pending.append(reader.submit(point_activity, configs[0], measured, dump))
        points = [p.result() for p in pending]
    for ratio, configs, one in zip(plan.points, plan.configs, points):
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
            "energy_pj": plan.table.frame_energy_pj(one["events"], one["interval"], settings.clock_mhz),
        })  # fmt: skip
    return rows


def run_top_sweep(plan: SweepPlan, rows: list[dict]) -> None:
    """Add the top's interval to every row (all points in one simulation)."""
    sim = plan.settings.top_sim or plan.settings.sim
    print(f"[sweep] velcro_top: {len(plan.points)} points, {INSTANCES} instances busy at once ({sim})")
    for row, interval in zip(rows, run_top_points(plan.settings, plan.configs, plan.ifmaps, plan.work)):
        row["top_interval"] = interval


def sweep_result(plan: SweepPlan, rows: list[dict]) -> dict:
    """Throughput per row and the settings, as reports/sweep.json carries them."""
    settings, table = plan.settings, plan.table
    for row in rows:
        for scope, key, count in (("instance", "instance_interval", 1), ("top", "top_interval", INSTANCES)):
            if key in row:
                fps = count * settings.clock_mhz * 1e6 / row[key]
                row[f"{scope}_frames_per_s"] = fps
                row[f"{scope}_gops"] = fps * OPS_PER_FRAME / 1e9
    return {
        "settings": {"simulator": settings.sim, "top_simulator": settings.top_sim or settings.sim,
                     "clock_mhz": settings.clock_mhz, "mask_source": plan.mask_source, "seed": settings.seed,
                     "frames_per_point": SWEEP_FRAMES, "top_frames_per_point": TOP_FRAMES,
                     "instances": INSTANCES, "energy_table": _repo_relative(settings.energy_table),
                     "energy_table_version": table.version, "technology": table.technology,
                     "ops_per_frame": OPS_PER_FRAME},
        "rows": rows,
    }  # fmt: skip


def run_sweep(settings: SweepSettings, points=SWEEP_C, *, with_top: bool = True) -> dict:
    """The whole sweep; `make sim` runs the same steps one by one to time them."""
    plan = plan_sweep(settings, points)
    rows = run_instance_sweep(plan)
    if with_top:
        run_top_sweep(plan, rows)
    return sweep_result(plan, rows)


def _repo_relative(path: Path) -> str:
    """A path as the reports show it: relative to the repository when inside it, so reports do not
    depend on where the clone lives."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
