"""The layer on the simulated `velcro_top`: the C sweep's top throughput and `make saif`.

Channel c of a layer configuration runs on instance c and every image is a frame. Runs that differ
only in their masks and control settings (thresholds, allocations, prediction on or off) share one
simulation: the top is configured once and only MASK, CONTROL and ZP_CONFIG are rewritten between
runs. The bench (sim/benches/tb_top.py::test_runs_from_file) checks every output against the golden
model. Hardware in the loop (sim/flows/end_to_end.py) runs through the host on the simulated
`velcro_krnl` instead (host/api.py), the driver `velcro run` uses.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from model.hw.golden import ConvConfig
from sim.harness.bench_files import write_runs
from sim.harness.runner import ROOT, BenchFailed, run_bench


def shared_top_build(sim: str, build_root: Path = ROOT / "sim_build") -> Path:
    """The velcro_top build the flows of `make sim` share (the C sweep's top and its tests)."""
    return build_root / f"velcro_top-{sim}"


def run_layer(sim: str, runs: list[list[ConvConfig]], ifmaps: np.ndarray, work: Path | None = None, *,
              build_dir: Path | None = None, saif: bool = False, env: dict[str, str] | None = None):
    """OFMAPs (R, instances, K, 64, 64) and measured steady intervals (R, instances) of R mask sets of one layer.

    Every run must share weights, bias, M, S and averages; only the masks and the control settings
    (SKIP_EN, prediction) may differ. `build_dir` (default work/build) holds the simulator build:
    callers in one process that pass the same one build velcro_top once.
    """
    result = run_layer_measured(sim, runs, ifmaps, work, build_dir=build_dir, saif=saif, env=env)
    return result["ofmaps"], result["intervals"]


def run_layer_measured(sim: str, runs: list[list[ConvConfig]], ifmaps: np.ndarray, work: Path | None = None, *,
                       build_dir: Path | None = None, saif: bool = False, counters: bool = False,
                       env: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """`run_layer` with everything the bench measured: `ofmaps`, `intervals` (each run's last gap per
    instance), `gaps` (R, instances, K-1) between frame ends and, with `counters`, the LAST_COMPUTED
    and LAST_PREDICTED the bench read after every frame (`computed`, `predicted`: R, instances, K)."""
    work = work if work is not None else ROOT / "sim_build" / f"top-{sim}"
    work.mkdir(parents=True, exist_ok=True)
    config_file, output_file = work / "runs.npz", work / "ofmaps.npz"
    output_file.unlink(missing_ok=True)
    write_runs(config_file, runs, ifmaps)
    tests, failed = run_bench(
        sim, "velcro_top", "sim.benches.tb_top", build_dir or work / "build", testcase="test_runs_from_file",
        quiet=True, saif=saif,
        env={"VELCRO_CONFIG": str(config_file), "VELCRO_OUTPUT": str(output_file),
             **({"VELCRO_COUNTERS": "1"} if counters else {}), **(env or {})},
    )  # fmt: skip
    if failed or not tests:
        raise BenchFailed(f"velcro_top run failed on {sim}")
    with np.load(output_file) as result:
        return {k: result[k] for k in result.files}
