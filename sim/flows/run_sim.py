"""`make sim`: regenerate the RTL, then measure everything the reports show, on open simulators.

1. per mask density, the instance bench (sim/benches/tb_conv2d.py): every output bit against the golden
   model, LAST_CYCLES and the steady-state interval against the cycle model
   -> reports/conv2d_sim.{md,json};
2. the C sweep (sim/flows/sweep.py): throughput of one instance and of the 16-instance top, energy
   proxy and toggles -> reports/summary.md, sweep.json and PNG plots;
3. hardware in the loop (sim/flows/end_to_end.py): the default CNN's depthwise layer computed by the
   simulated Alveo kernel, one compute unit per channel, through the host (host/, the sim backend):
   accuracy of four paths, throughput and energy per threshold, and the layer as the scheduler
   (host/schedule.py) plans it, beside the bound;
4. zero-value prediction (sim/flows/prediction.py): the hardware layer with real activations with
   VELCRO alone, prediction alone and both, on the kernel (hardware in the loop: outputs, accuracy,
   MACs skipped, throughput) and on one instance with a waveform
   (throughput, energy proxy, toggles), and on the C sweep's random stimulus with predicted shares of
   1/4, 1/2 and 3/4 (toggles saved per predicted output, against the sweep's line);
5. the open Yosys resource estimate (rtl/tools/resources.py) against the budgets (rtl/tools/budgets.py),
   the timing proxy's worst paths (rtl/tools/timing.py) and, when a Vivado run left one,
   build/vivado/summary.json, appended to reports/summary.md.

The simulators' own output (compiler lines, simulator notes) goes to build/sim-logs/<stage>.log;
the terminal shows progress, the tables and each stage's wall time.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from model.hw.energy import EnergyTable
from rtl.tools import budgets, resources, timing
from rtl.tools.generate import GENERATED_DIR, designs, verilog_text
from sim.flows import end_to_end, prediction, sweep
from sim.harness.runner import ROOT, SIMULATORS, BenchFailed, SimulatorMissing, log_to, run_bench
from sim.reporting import conv2d as conv2d_report
from sim.reporting import end_to_end as end_to_end_report
from sim.reporting import prediction as prediction_report
from sim.reporting import summary

DENSITIES = (0.0, 0.3, 0.5, 0.75, 0.9, 1.0)
REPORTS = ROOT / "reports"
LOG_DIR = ROOT / "build" / "sim-logs"
LOG_TAIL_LINES = 30


class Stages:
    """Times each stage and points its simulator output to build/sim-logs/<log>.log."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.times: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def __call__(self, name: str, log: str | None = None):
        path = self.log_dir / f"{log}.log" if log else None
        if path is not None:
            path.unlink(missing_ok=True)
        start = time.monotonic()
        try:
            with log_to(path):
                yield
        finally:
            self.times.append((name, time.monotonic() - start))

    def table(self) -> str:
        width = max(len(name) for name, _ in self.times)
        lines = [f"  {name:<{width}}  {seconds:6.0f} s" for name, seconds in self.times]
        total = sum(seconds for _, seconds in self.times)
        return "\n".join(["[sim] wall time per stage:", *lines, f"  {'total':<{width}}  {total:6.0f} s"])


def regenerate_rtl() -> list[str]:
    """Write rtl/generated/<design>.v; files whose text is unchanged keep their time stamp, so
    simulator builds that depend on them stay valid. Returns the designs that changed."""
    changed = []
    for name in designs():
        path, text = GENERATED_DIR / f"{name}.v", verilog_text(name)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    return changed


def run_density_sweep(sim: str, waves: bool, frames: int) -> list[dict]:
    build_dir = ROOT / "sim_build" / f"make-sim-{sim}"
    build_dir.mkdir(parents=True, exist_ok=True)
    results_file = build_dir / "measured.jsonl"
    results_file.unlink(missing_ok=True)
    for n, density in enumerate(tqdm(DENSITIES, desc=f"velcro_conv2d on {sim}", unit="density")):
        tests, failed = run_bench(
            sim, "velcro_conv2d", "sim.benches.tb_conv2d", build_dir, testcase="test_random_frames", waves=waves, quiet=True,
            env={"VELCRO_DENSITY": str(density), "VELCRO_FRAMES": str(frames), "VELCRO_SEED": str(100 + n),
                 "VELCRO_RESULTS": str(results_file)},
        )  # fmt: skip
        if failed or not tests:
            raise BenchFailed(f"velcro_conv2d bench failed at density {density} on {sim}")
    return [json.loads(line) for line in results_file.read_text().splitlines()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sim", choices=SIMULATORS, default="icarus")
    parser.add_argument("--waves", action="store_true", help="leave a waveform (FST on Icarus, VCD on Verilator)")
    parser.add_argument("--frames", type=int, default=3, help="back-to-back frames per density (>= 3)")
    parser.add_argument("--clock-mhz", type=float, default=300.0, help="clock for throughput figures (default 300)")
    parser.add_argument("--masks", choices=("velcro", "synthetic"), default="velcro",
                        help="sweep masks from VELCRO statistics (default) or a synthetic low-variance pattern")
    parser.add_argument("--hil-sim", choices=SIMULATORS, default="verilator",
                        help="simulator of the C sweep's velcro_top run and of hardware in the loop's kernel runs "
                             "(default verilator: 16 units x 32 images x 6 runs take a minute or two there, far "
                             "longer on Icarus)")
    args = parser.parse_args(argv)
    if args.frames < 3:
        parser.error("--frames must be at least 3 to measure a steady-state interval")
    stage = Stages(LOG_DIR)
    settings = sweep.SweepSettings(sim=args.sim, top_sim=args.hil_sim, clock_mhz=args.clock_mhz, masks=args.masks)
    print(f"[sim] simulator output goes to {LOG_DIR.relative_to(ROOT)}/")
    try:
        with stage("regenerate RTL"):
            changed = regenerate_rtl()
        print(f"[sim] rtl/generated/: {', '.join(changed) + ' rewritten' if changed else 'unchanged'}")
        with stage("density runs", "density"):
            rows = run_density_sweep(args.sim, args.waves, args.frames)
        with stage("C sweep, one instance", "sweep-instance"):
            plan = sweep.plan_sweep(settings)
            sweep_rows = sweep.run_instance_sweep(plan)
        with stage("C sweep, top", "sweep-top"):  # builds velcro_top once for this stage and the next
            sweep.run_top_sweep(plan, sweep_rows)
        sweep_data = sweep.sweep_result(plan, sweep_rows)
        table = EnergyTable.load(settings.energy_table)
        with stage("hardware in the loop", "hil"):
            context = end_to_end.prepare_context()
            hil = end_to_end.run_end_to_end(args.hil_sim, table, args.clock_mhz, context)
        ctx, scan = context
        threshold = scan["chosen_threshold"] or 0.3
        with stage("prediction, top (hardware in the loop)", "prediction-top"):
            zp_top = end_to_end.run_prediction_hil(args.hil_sim, ctx, threshold, table, args.clock_mhz)
        with stage("prediction, one instance", "prediction-instance"):
            ifmaps = end_to_end.layer_ifmaps(ctx)
            zp_one = prediction.run_instance(args.sim, prediction.mode_exports(ctx, threshold), ifmaps, table,
                                             args.clock_mhz)  # fmt: skip
        with stage("prediction, activity control", "prediction-control"):
            zp_control = prediction.run_activity_control(args.sim, table, args.clock_mhz)
        zp = {"top": zp_top, "instance": zp_one, "activity_control": zp_control,
              "sweep_toggle_slope": prediction.toggle_slope_from_sweep(sweep_rows)}
    except SimulatorMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BenchFailed as err:
        print(err.report(LOG_TAIL_LINES), stage.table(), sep="\n", file=sys.stderr)
        return 1
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "conv2d_sim.md").write_text(conv2d_report.density_report(args.sim, rows))
    (REPORTS / "conv2d_sim.json").write_text(json.dumps({"simulator": args.sim, "rows": rows}, indent=2))
    print(conv2d_report.density_table(rows))
    print("[sim] open resource estimate and timing proxy (Yosys synth_xilinx -family xcup; cached by RTL hash)")
    with stage("resources"):
        pairs = [timing.estimate_with_timing(name) for name in designs()]
        estimates, timings = [p[0] for p in pairs], [p[1] for p in pairs]
    with stage("reports"):
        vivado_summary = ROOT / "build" / "vivado" / "summary.json"
        sections = [end_to_end_report.markdown(hil), prediction_report.markdown(zp),
                    *summary.resource_sections(resources.markdown_table(estimates), vivado_summary,
                                               budgets.report_markdown(estimates, timings),
                                               timing.report_markdown(timings))]
        (REPORTS / "end_to_end.json").write_text(json.dumps(hil, indent=2, default=float))
        (REPORTS / "prediction.json").write_text(json.dumps(zp, indent=2, default=float))
        summary.write_reports(REPORTS, sweep_data, sections)
    print((REPORTS / "summary.md").read_text())
    if args.waves:
        print(f"[sim] waveforms: {ROOT / 'sim_build' / f'make-sim-{args.sim}'} (open with gtkwave)")
    print("[sim] wrote reports/ (summary.md, sweep.json, end_to_end.json, prediction.json, PNGs, conv2d_sim.md)")
    print(stage.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
