"""The end-to-end section of reports/summary.md: a compressed layer computed by the RTL."""
from __future__ import annotations


def markdown(rep: dict) -> str:
    """The section for the result of sim.flows.end_to_end.run_end_to_end."""
    err = rep["float_vs_int8_error"]
    lines = [
        "## End to end: a compressed layer computed by the RTL",
        "",
        f"The default CNN's depthwise layer ({rep['instances']} channels, 64x64) on velcro_top ({rep['simulator']}), channel c on "
        f"instance c, {rep['images']} validation images of the '{rep['task']}' task; every RTL output matched "
        f"the int8 golden model. Float-vs-int8 error of the layer: RMS {err['rms']:.4f} "
        f"({err['rms_lsb']:.2f} output steps), max {err['max_abs']:.3f}. Largest threshold with no accuracy "
        f"loss (per-layer, int8 path): {rep['lossless_scan']['chosen_threshold']}.",
        "",
        "| T | allocation | layer C | model C | float | float compressed | int8 golden | RTL | top interval "
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
    lines += [
        "",
        f"Uncompressed, the top needs {rep['uncompressed_top_energy_per_image_nj']:.0f} nJ per image for this layer. "
        "With one threshold per layer, the channels' mask densities differ widely and the slowest instance sets "
        "the top's frame time, so the speedup stays far below 1/(1-C). The balanced allocation gives every "
        "channel the same density at the same layer C and reaches the ideal, but its accuracy must be checked "
        "in the table: it compresses outputs that the per-layer ranking would keep.",
        "",
    ]
    return "\n".join(lines)
