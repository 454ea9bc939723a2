"""`make sim`: regenerate the RTL, then measure everything the reports show, on open simulators.

1. per mask density, the instance bench (sim/benches/tb_conv2d.py): every output bit against the golden
   model, LAST_CYCLES and the steady-state interval against the cycle model
   -> reports/conv2d_sim.{md,json};
2. the C sweep (sim/flows/sweep.py): throughput of one instance and of the 16-instance top, energy
   proxy and toggles -> reports/summary.md, sweep.json and PNG plots;
3. hardware in the loop (sim/flows/end_to_end.py): the default CNN's depthwise layer computed by the
   simulated velcro_top, accuracy of four paths, throughput and energy per threshold;
4. the open Yosys resource estimate (rtl/tools/resources.py) and, when a Vivado run left one,
   build/vivado/summary.json, appended to reports/summary.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from tqdm import tqdm

from model.hw.golden import N_OUTPUTS
from rtl.tools.generate import GENERATED_DIR, designs, verilog_text
from model.hw.energy import EnergyTable
from sim.flows import end_to_end
from sim.reporting import summary
from rtl.tools import resources
from sim.harness.runner import ROOT, SIMULATORS, SimulatorMissing, run_bench
from sim.flows.sweep import SweepSettings, run_sweep

DENSITIES = (0.0, 0.3, 0.5, 0.75, 0.9, 1.0)
REPORTS = ROOT / "reports"


def regenerate_rtl() -> None:
    for name in designs():
        (GENERATED_DIR / f"{name}.v").write_text(verilog_text(name))


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
            raise SystemExit(f"bench failed at density {density} on {sim}: see the log above")
    return [json.loads(line) for line in results_file.read_text().splitlines()]


def table(rows: list[dict]) -> str:
    base = next(r["interval"] for r in rows if r["computed"] == N_OUTPUTS)
    lines = [
        "| mask density | computed | C | LAST_CYCLES | model | interval | model | MACs | speedup | 1/(1-C) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = 1 - r["computed"] / N_OUTPUTS
        ideal = f"{1 / (1 - c):.3f}" if c < 1 else "inf"
        lines.append(
            f"| {r['density']:.2f} | {r['computed']} | {c:.3f} | {r['last_cycles']} | {r['model_latency']} "
            f"| {r['interval']} | {r['model_interval']} | {r['macs']} | {base / r['interval']:.3f} | {ideal} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sim", choices=SIMULATORS, default="icarus")
    parser.add_argument("--waves", action="store_true", help="leave a waveform (FST on Icarus, VCD on Verilator)")
    parser.add_argument("--frames", type=int, default=3, help="back-to-back frames per density (>= 3)")
    parser.add_argument("--clock-mhz", type=float, default=300.0, help="clock for throughput figures (default 300)")
    parser.add_argument("--masks", choices=("velcro", "synthetic"), default="velcro",
                        help="sweep masks from VELCRO statistics (default) or a synthetic low-variance pattern")
    parser.add_argument("--hil-sim", choices=SIMULATORS, default="verilator",
                        help="simulator of the hardware-in-the-loop runs (default verilator: 16 busy instances "
                             "x 32 images x 6 runs take minutes there, far longer on Icarus)")
    args = parser.parse_args(argv)
    if args.frames < 3:
        parser.error("--frames must be at least 3 to measure a steady-state interval")
    start = time.monotonic()
    print("[sim] regenerating rtl/generated/ from the Amaranth sources")
    regenerate_rtl()
    try:
        rows = run_density_sweep(args.sim, args.waves, args.frames)
        settings = SweepSettings(sim=args.sim, clock_mhz=args.clock_mhz, masks=args.masks)
        sweep = run_sweep(settings)
        hil = end_to_end.run_end_to_end(args.hil_sim, EnergyTable.load(settings.energy_table), args.clock_mhz)
    except SimulatorMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = table(rows)
    REPORTS.mkdir(exist_ok=True)
    header = (
        f"# velcro_conv2d on {args.sim}\n\nEvery output bit matched the golden model; LAST_CYCLES and the "
        "steady-state interval of back-to-back frames are measured and compared with model/hw/cycles.py "
        "(speedup = interval at C = 0 / interval).\n\n"
    )
    (REPORTS / "conv2d_sim.md").write_text(header + text + "\n")
    (REPORTS / "conv2d_sim.json").write_text(json.dumps({"simulator": args.sim, "rows": rows}, indent=2))
    print(text)
    print("[sim] open resource estimate (Yosys synth_xilinx -family xcup; cached by RTL hash)")
    estimates = [resources.estimate(name) for name in designs()]
    sections = [end_to_end.markdown(hil), "## Open resource estimate (Yosys, not Vivado)\n",
                resources.markdown_table(estimates), ""]
    vivado_summary = ROOT / "build" / "vivado" / "summary.json"
    if vivado_summary.is_file():
        sections += ["## Vivado (from build/vivado/summary.json)\n", "```json", vivado_summary.read_text(), "```"]
    else:
        sections += ["Vivado results: none here (run `make vivado` where Vivado is installed).\n"]
    (REPORTS / "end_to_end.json").write_text(json.dumps(hil, indent=2, default=float))
    summary.write_reports(REPORTS, sweep, sections)
    print((REPORTS / "summary.md").read_text())
    if args.waves:
        print(f"[sim] waveforms: {ROOT / 'sim_build' / f'make-sim-{args.sim}'} (open with gtkwave)")
    print(f"[sim] wrote reports/ (summary.md, sweep.json, PNGs, conv2d_sim.md) in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
