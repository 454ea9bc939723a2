"""reports/scheduling.md (and the timeline plot) from sim.flows.scheduling.run_benchmark's result."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PLAN_ORDER = ("fixed", "lpt", "split")
TIMELINE_PNG = "schedule_timeline.png"


def markdown(rep: dict) -> str:
    a_row = rep["rows"][0]
    lines = [
        "# Zero-aware scheduling across the 16 compute units",
        "",
        f"The default CNN's depthwise layer on the first {rep['images']} test images of the '{rep['task']}' task. "
        f"Largest threshold that loses no accuracy on these images (per-layer, int8 path): "
        f"{rep['lossless_scan']['chosen_threshold']}; the modes run at T = {rep['threshold']}. Every run pays the kernel's start (image load, pipeline fill and drain, counters written back) and "
        f"a host dispatch latency of {rep['dispatch_us']:g} µs ({a_row['plans']['split']['dispatch_cycles']:,} cycles "
        f"at {rep['clock_mhz']:g} MHz; XRT's launch overhead, Xilinx/XRT issue #8687). Cycles per image of the "
        "layer: the last unit's end on the planned timeline / images. The bound is the total work on the card "
        "(every frame's compute stage or its 512-beat drain, whichever is longer) / 16 units, with no start, fill "
        "or dispatch cost. Speedups are against the uncompressed layer planned and counted the same way.",
        "",
        "| mode | T | predicting channels | layer C | float | float compressed | int8 golden | hardware | fixed | lpt "
        "| split | bound | split over bound | split images/s | split runs | simulated runs (frames) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rep["rows"]:
        acc, plans, sim = r["accuracy"], r["plans"], r["simulated"]
        split = plans["split"]
        whole = sim["plan"] == "split" and sim["runs"] == split["runs"]
        hardware = f"{acc['rtl']:.3f}" if whole else "(subset)"
        speedups = " | ".join(f"{plans[p]['speedup']:.2f}" for p in PLAN_ORDER)
        lines.append(
            f"| {r['mode']} | {'-' if r['threshold'] is None else r['threshold']} | {len(r['prediction_channels'])} | {r['layer_C']:.3f} | {acc['float']:.3f} "
            f"| {acc['float_compressed']:.3f} | {acc['int8_golden']:.3f} | {hardware} | {speedups} "
            f"| {split['lower_bound_speedup']:.2f} | {100 * split['over_lower_bound']:+.1f} % "
            f"| {split['images_per_s']:,.0f} | {split['runs']} | {sim['runs']} {sim['plan']} ({sim['frames']}) |"
        )
    lines += [
        "",
        "fixed: channel c on unit c, one run each, constant channels included (the mapping before scheduling). "
        "lpt: blocks of 64 images, longest first, each to the unit that frees first. split (`velcro run`'s "
        "default): constant channels (every output compressed) served by the host from their averages, the "
        "other channels cut at image boundaries so that the units end together, one or two runs per unit.",
        "",
        "Every plan's runs take the cycle model's cycles (`model.hw.cycles.kernel_run_cycles`); the simulated "
        f"kernel ({rep['simulator']}) ran the split plan of VELCRO alone at the largest T whole (every OFMAP equal to the golden "
        "model's, the hardware column from its OFMAPs) and the two shortest runs of every other mode's lpt plan, "
        "each run's cycles equal to the model's. Prediction (GRID2, ZP_MAX = 0) costs a fixed order overhead per "
        "frame, so a channel that predicts little only slows its unit: 'paying channels' keeps it on the channels "
        "where the tuning images say it saves cycles, as `velcro run` does by default.",
        "",
        f"![timeline]({TIMELINE_PNG})",
        "",
        f"Wall time of the benchmark: {rep.get('wall_s', 0):.0f} s.",
        "",
    ]
    return "\n".join(lines)


def timeline_plot(rep: dict, path: Path) -> None:
    """Each unit's runs on the planned timeline, fixed and split, for the fully simulated row."""
    row = next(r for r in rep["rows"] if r["simulated"]["plan"] == "split")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True, sharey=True)
    for ax, name in zip(axes, ("fixed", "split")):
        plan = row["plans"][name]
        for job in plan["jobs"]:
            ax.barh(job["unit"], job["end_cycle"] - job["start_cycle"], left=job["start_cycle"],
                    color=plt.cm.turbo(0.05 + 0.9 * job["channel"] / 15), edgecolor="black", linewidth=0.4)  # fmt: skip
            ax.barh(job["unit"], plan["dispatch_cycles"], left=job["start_cycle"] - plan["dispatch_cycles"],
                    color="white", edgecolor="grey", hatch="////", linewidth=0.4)  # fmt: skip
        ax.axvline(plan["lower_bound_cycles_per_image"] * rep["images"], color="red", linestyle="--", label="bound")
        ax.set_title(f"{name}: {plan['speedup']:.2f}x the uncompressed layer")
        ax.set_xlabel("cycles")
        ax.legend(loc="lower right")
    axes[0].set_ylabel("compute unit (colour: channel; hatched: dispatch)")
    axes[0].invert_yaxis()
    fig.suptitle(f"{row['mode']}, {rep['images']} images, T = {row['threshold']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
