"""`make soak`: a long randomized soak of velcro_top on Verilator (sim/benches/tb_soak.py).

Builds the 16-instance top once (sim_build/soak-verilator, minutes the first time), runs the soak bench
with the given frame count, disturbance rate and seed, shows its progress from the statistics file the
bench rewrites every few seconds, and writes reports/soak.md and reports/soak.json. Exits non-zero when
any frame was wrong, anything hung or any other check failed. The simulator's own output goes to
build/sim-logs/soak.log.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm

from sim.harness.runner import ROOT, BenchFailed, SimulatorMissing, log_to, run_bench
from sim.reporting import soak as soak_report

DEFAULT_FRAMES = 10_000
DEFAULT_RATE = 0.06  # disturbances per frame: about 600 in the default run
DEFAULT_SEED = 1
BUILD_DIR = ROOT / "sim_build" / "soak-verilator"
LOG = ROOT / "build" / "sim-logs" / "soak.log"
REPORTS = ROOT / "reports"
POLL_S = 2.0


def bench_env(frames: int, rate: float, seed: int, stats: Path, walk_words: int | None = None) -> dict[str, str]:
    """The soak bench's knobs (sim/benches/tb_soak.py) as environment variables."""
    env = {"VELCRO_SOAK_FRAMES": str(frames), "VELCRO_SOAK_RATE": str(rate), "VELCRO_SEED": str(seed),
           "VELCRO_SOAK_STATS": str(stats)}  # fmt: skip
    if walk_words is not None:
        env["VELCRO_SOAK_WALK_WORDS"] = str(walk_words)
    return env


def read_stats(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def follow(path: Path, total: int, done: threading.Event) -> None:
    """A progress bar over the frames the bench has checked so far."""
    with tqdm(total=total, desc="soak frames", unit="frame") as bar:
        while not done.wait(POLL_S):
            stats = read_stats(path)
            if stats is not None:
                bar.update(min(stats["frames"], total) - bar.n)
                bar.set_postfix(disturbances=sum(stats["disturbances"].values()), failures=stats["failures"],
                                refresh=False)  # fmt: skip


def run(frames: int, rate: float, seed: int, walk_words: int | None = None) -> tuple[dict, int]:
    """Build and run the soak; returns the statistics with the flow's wall time, and the failed count."""
    stats_path = BUILD_DIR / "soak-stats.json"
    stats_path.unlink(missing_ok=True)
    done = threading.Event()
    watcher = threading.Thread(target=follow, args=(stats_path, frames, done), daemon=True)
    start = time.monotonic()
    watcher.start()
    try:
        with log_to(LOG):
            tests, failed = run_bench("verilator", "velcro_top", "sim.benches.tb_soak", BUILD_DIR,
                                      testcase="test_soak", quiet=True, env=bench_env(frames, rate, seed, stats_path, walk_words))  # fmt: skip
    finally:
        done.set()
        watcher.join()
    stats = read_stats(stats_path)
    if stats is None:
        raise BenchFailed("the soak bench left no statistics", LOG)
    stats["wall_s"] = time.monotonic() - start
    return stats, failed if tests else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help=f"frames through the cores, all lanes (default {DEFAULT_FRAMES})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help=f"disturbances per frame (default {DEFAULT_RATE})")
    parser.add_argument("--walk-words", type=int, default=None,
                        help="address-walk words per bus sweep (default: enough to cover the space once); "
                             "the CI variant's replay command gives it")  # fmt: skip
    args = parser.parse_args(argv)
    if args.frames < 1 or not 0 <= args.rate <= 1 or (args.walk_words is not None and args.walk_words < 1):
        parser.error("--frames and --walk-words must be positive and --rate within [0, 1]")
    LOG.unlink(missing_ok=True)
    print(f"[soak] velcro_top on Verilator: {args.frames} frames, {args.rate} disturbances per frame, seed {args.seed}; "
          f"simulator output in {LOG.relative_to(ROOT)} (the first build takes minutes)")  # fmt: skip
    try:
        stats, failed = run(args.frames, args.rate, args.seed, args.walk_words)
    except (BenchFailed, SimulatorMissing) as err:
        print(err.report() if isinstance(err, BenchFailed) else f"error: {err}", file=sys.stderr)
        return 1
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "soak.json").write_text(json.dumps(stats, indent=1) + "\n")
    (REPORTS / "soak.md").write_text(soak_report.markdown(stats))
    print(soak_report.summary_line(stats))
    print("[soak] wrote reports/soak.md and reports/soak.json")
    ok = not failed and soak_report.passed(stats)
    if not ok:
        print(f"[soak] FAILED: see reports/soak.md and {LOG.relative_to(ROOT)}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
