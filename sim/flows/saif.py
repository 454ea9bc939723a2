"""Switching activity of velcro_top per C as SAIF, for Vivado's report_power (`make saif`).

Each point is its own Verilator run built with --trace-saif, clocked at the U280 constraint's
period (3.334 ns, about 300 MHz) so Vivado derives the right toggle rates: the 16 instances are
configured with the sweep's VELCRO masks at that C and process SAIF_FRAMES frames each. The SAIF
covers the whole run, configuration included; the averages are left at their reset value (0) to
keep that phase short (one MASK write per instance plus the registers), and enough frames follow
for them to dominate. Use with `make vivado VELCRO_SAIF=build/saif/velcro_top_c0.30.saif`.
"""
from __future__ import annotations

import argparse
import shutil
import sys

import numpy as np
from tqdm import tqdm

from model.hw.golden import ConvConfig, H, W
from sim.harness.hil import run_layer
from sim.harness.runner import ROOT, BenchFailed, log_to
from sim.flows.sweep import SweepSettings, channel_variances, instance_configs

SAIF_DIR = ROOT / "build" / "saif"
SAIF_CLOCK_PS = 3334
SAIF_FRAMES = 8


def write_saif(ratio: float, settings: SweepSettings) -> str:
    variances, _ = channel_variances(settings.masks, settings.seed)
    configs = [ConvConfig(c.weights, c.bias, c.mult, c.shift, c.mask, np.zeros((H, W), np.uint8))
               for c in instance_configs(variances, ratio, settings.seed)]  # fmt: skip
    work = ROOT / "sim_build" / "saif-verilator"
    rng = np.random.default_rng(settings.seed)
    ifmaps = rng.integers(0, 256, (len(configs), SAIF_FRAMES, H, W), dtype=np.uint8)
    run_layer("verilator", [configs], ifmaps, work, saif=True,
              env={"VELCRO_CLOCK_PS": str(SAIF_CLOCK_PS), "VELCRO_SKIP_AVG": "1"})
    SAIF_DIR.mkdir(parents=True, exist_ok=True)
    target = SAIF_DIR / f"velcro_top_c{ratio:.2f}.saif"
    shutil.copyfile(work / "build" / "dump.saif", target)
    return str(target.relative_to(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ratios", nargs="*", type=float, default=[0.0, 0.3], help="saving ratios C (default 0 0.3)")
    parser.add_argument("--masks", choices=("velcro", "synthetic"), default="velcro")
    args = parser.parse_args(argv)
    bad = [r for r in args.ratios if not 0 <= r < 1]
    if bad:
        parser.error(f"saving ratios must lie in [0, 1): {bad}")
    log = ROOT / "build" / "sim-logs" / "saif.log"
    log.unlink(missing_ok=True)
    print(f"[saif] simulator output goes to {log.relative_to(ROOT)}")
    try:
        with log_to(log):
            for ratio in tqdm(args.ratios, desc="SAIF runs of velcro_top (verilator)", unit="point"):
                print(f"[saif] C = {ratio:.2f}: {write_saif(ratio, SweepSettings(sim='verilator', masks=args.masks))}")
    except BenchFailed as err:
        print(err.report(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
