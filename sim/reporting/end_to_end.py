"""The end-to-end section of reports/summary.md: a compressed layer computed by the RTL."""
from __future__ import annotations


def markdown(rep: dict) -> str:
    """The section for the result of sim.flows.end_to_end.run_end_to_end."""
    err = rep["float_vs_int8_error"]
    lines = [
        "## End to end: a compressed layer computed by the RTL",
        "",
        f"The default CNN's depthwise layer ({rep['instances']} channels, 64x64) run by the host (`velcro run`'s "
        f"driver) on the simulated velcro_krnl ({rep['simulator']}), channel c on compute unit c, {rep['images']} "
        f"validation images of the '{rep['task']}' task; every RTL output matched the int8 golden model, and so did "
        f"the counters every unit wrote back. Float-vs-int8 error of the layer: RMS {err['rms']:.4f} "
        f"({err['rms_lsb']:.2f} output steps), max {err['max_abs']:.3f}. Largest threshold with no accuracy "
        f"loss (per-layer, int8 path): {rep['lossless_scan']['chosen_threshold']}.",
        "",
        "| T | allocation | layer C | model C | float | float compressed | int8 golden | RTL | layer interval "
        "| images/s | speedup | ideal (equal work) | energy/image (nJ) | densities min-max |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rep["rows"]:
        a = r["accuracy"]
        d = r["channel_densities"]
        lines.append(
            f"| {r['threshold']:.2f} | {r['allocation']} | {r['layer_C']:.3f} | {r['model_C']:.3f} | {a['float']:.3f} "
            f"| {a['float_compressed']:.3f} | {a['int8_golden']:.3f} | {a['rtl']:.3f} | {r['top_interval']} "
            f"| {r['top_images_per_s']:,.0f} | {r['speedup']:.2f} | {r['ideal_speedup']:.2f} "
            f"| {r['top_energy_per_image_nj']:.0f} | {min(d):.2f}-{max(d):.2f} |"
        )
    lines += ["", *schedule_table(rep["rows"], lambda r: f"T = {r['threshold']:.2f}, {r['allocation']}")]
    lines += [
        "",
        "Layer interval: cycles per image of the slowest of the 16 units (each unit's last gap between frame ends), "
        "which sets the pace of the 16 working side by side on a card.",
        "",
        f"Uncompressed, the 16 units need {rep['uncompressed_top_energy_per_image_nj']:.0f} nJ per image for this layer. "
        "With one threshold per layer, the channels' mask densities differ widely and the slowest unit sets "
        "the layer's frame time, so the speedup stays far below 1/(1-C). The balanced allocation gives every "
        "channel the same density at the same layer C and reaches the ideal, but its accuracy must be checked "
        "in the table: it compresses outputs that the per-layer ranking would keep.",
        "",
    ]
    return "\n".join(lines)


def schedule_table(rows: list[dict], label) -> list[str]:
    """The rows' layer on the units' timeline: fixed mapping and the scheduler's split plan (host/schedule.py)."""
    dispatch = rows[0]["schedule"]["dispatch_us"]
    lines = [
        f"On the units' timeline, with a host dispatch latency of {dispatch:g} µs per run (XRT, Xilinx/XRT issue "
        "#8687) and the kernel's start cost: one channel per unit as above (fixed), and as the scheduler plans "
        "it (split: constant channels served by the host, the others cut at image boundaries so that the units "
        "end together). Runs timed by the cycle model, which every simulated run above matched. Speedups against "
        "the uncompressed layer planned the same way; bound: total work / 16 units. With few images the dispatch "
        "latency dominates; `make benchmark` measures 1,000 images (reports/scheduling.md).",
        "",
        "| layer | fixed | split | bound | split over bound | split runs | constant channels |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        fixed, split = r["schedule"]["fixed"], r["schedule"]["split"]
        bound = "-" if split["lower_bound_speedup"] is None else f"{split['lower_bound_speedup']:.2f}"
        over = "-" if split["over_lower_bound"] is None else f"{100 * split['over_lower_bound']:+.0f} %"
        lines.append(f"| {label(r)} | {fixed['speedup']:.2f} | {split['speedup']:.2f} | {bound} | {over} "
                     f"| {split['runs']} | {', '.join(map(str, split['constant_channels'])) or '-'} |")  # fmt: skip
    return lines
