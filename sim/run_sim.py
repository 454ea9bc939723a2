"""`make sim`: regenerate the RTL, run the instance bench per mask density, print and save the table.

For each density the cocotb bench (sim/tb_conv2d.py) checks every output bit against the golden
model and LAST_CYCLES / the steady-state interval against the cycle model, and records what it
measured; this script turns those records into reports/conv2d_sim.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from model.golden import N_OUTPUTS
from rtl.generate import GENERATED_DIR, designs, verilog_text
from sim.runner import ROOT, SIMULATORS, SimulatorMissing, run_bench

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
            sim, "velcro_conv2d", "sim.tb_conv2d", build_dir, testcase="test_random_frames", waves=waves,
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
    args = parser.parse_args(argv)
    if args.frames < 3:
        parser.error("--frames must be at least 3 to measure a steady-state interval")
    start = time.monotonic()
    print("[sim] regenerating rtl/generated/ from the Amaranth sources")
    regenerate_rtl()
    try:
        rows = run_density_sweep(args.sim, args.waves, args.frames)
    except SimulatorMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = table(rows)
    REPORTS.mkdir(exist_ok=True)
    header = (
        f"# velcro_conv2d on {args.sim}\n\nEvery output bit matched the golden model; LAST_CYCLES and the "
        "steady-state interval of back-to-back frames are measured and compared with model/cycles.py "
        "(speedup = interval at C = 0 / interval).\n\n"
    )
    (REPORTS / "conv2d_sim.md").write_text(header + text + "\n")
    (REPORTS / "conv2d_sim.json").write_text(json.dumps({"simulator": args.sim, "rows": rows}, indent=2))
    print(text)
    if args.waves:
        print(f"[sim] waveforms: {ROOT / 'sim_build' / f'make-sim-{args.sim}'} (open with gtkwave)")
    print(f"[sim] wrote reports/conv2d_sim.md and .json in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
