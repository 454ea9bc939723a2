"""The zero-value prediction section of reports/summary.md (sim/flows/prediction.py measures it)."""
from __future__ import annotations

from sim.reporting.end_to_end import schedule_table

MODE_NAMES = {"none": "nothing skipped", "velcro": "VELCRO alone", "prediction": "prediction alone",
              "both": "VELCRO + prediction"}  # fmt: skip


def markdown(rep: dict) -> str:
    hil, one = rep["top"], rep["instance"]
    slope = rep.get("sweep_toggle_slope")
    threshold = hil["threshold"]
    lines = [
        "## Zero-value prediction on the hardware layer",
        "",
        f"The default CNN's depthwise layer with real activations ({hil['images']} validation images of the "
        f"'{hil['task']}' task), in four modes: VELCRO alone (per-layer masks at T = {threshold}, the largest "
        "lossless threshold), prediction alone (GRID2, ZP_MAX = 0) and both. Each channel runs on its own "
        f"simulated compute unit of the Alveo kernel ({hil['instances']} units, {hil['simulator']}, driven by the "
        "host's sim backend, host/): every output matched the golden model, every gap between frame ends the "
        "cycle model, and each unit's written-back counters (LAST_COMPUTED, LAST_PREDICTED of its last frame) "
        "the golden counts. The predicted and skipped shares are the golden model's counts over all frames, "
        "which the hardware reproduced bit for bit; with prediction on, the gaps also depend on them.",
        "",
        "| mode | compressed | predicted | MACs skipped | float | float compressed "
        "| int8 golden | RTL | layer interval | model | images/s | speedup | energy/image (nJ) |",
        "|---|" + "---:|" * 12,
    ]
    for r in hil["rows"]:
        a = r["accuracy"]
        lines.append(
            f"| {MODE_NAMES[r['mode']]} | {r['compressed_share']:.3f} | {r['predicted_share']:.3f} "
            f"| {r['macs_skipped']:.3f} | {a['float']:.3f} | {a['float_compressed']:.3f} "
            f"| {a['int8_golden']:.3f} | {a['rtl']:.3f} | {r['top_interval']:.1f} | {r['model_top_interval']:.1f} "
            f"| {r['top_images_per_s']:,.0f} | {r['top_speedup']:.2f} | {r['top_energy_per_image_nj']:.0f} |"
        )
    lines += ["", *schedule_table(hil["rows"], lambda r: MODE_NAMES[r["mode"]])]
    lines += [
        "",
        "Layer interval: cycles per image of the slowest unit, from its first to its last frame end "
        "(measured; model: model/hw/cycles.py's back-to-back gaps). The float-compressed path applies "
        "the float prediction rule where prediction is on.",
        "",
        f"One instance with a waveform ({one['simulator']}), channel {one['channel']} (the layer's median by "
        f"skipped share), {one['images']} images back to back per mode; events and toggles over the whole run "
        "per frame, the events equal to the energy model's:",
        "",
        "| mode | skipped share | predicted share | mean interval | model | frames/s | speedup | energy/frame (nJ) "
        "| saving | MAC toggles | per computed output | other toggles | toggles / nothing skipped"
        + (" | expected from the C sweep |" if slope is not None else " |"),
        "|---|" + "---:|" * (12 + (1 if slope is not None else 0)),
    ]
    for r in one["rows"]:
        model = sum(r["model_gaps"]) / len(r["model_gaps"])
        expected = f" {1 - slope * r['skipped_share']:.3f} |" if slope is not None else ""
        lines.append(
            f"| {MODE_NAMES[r['mode']]} | {r['skipped_share']:.3f} | {r['predicted_share']:.3f} "
            f"| {r['mean_interval']:.1f} | {model:.1f} | {r['frames_per_s']:,.0f} | {r['speedup']:.2f} "
            f"| {r['energy_pj']['total'] / 1e3:.1f} | {r['energy_saving']:.3f} | {r['toggles_mac']:,.0f} "
            f"| {r['mac_toggles_per_computed']:.0f} | {r['toggles_rest']:,.0f} | {r['toggles_total_ratio']:.3f} |{expected}"
        )
    if slope is not None:
        lines += [
            "",
            f"Expected from the C sweep: whole-design toggles fall there as 1 - {slope:.3f}·C (least squares "
            "over its points); the column applies the same line to the share of outputs skipped here, "
            "compressed or predicted. On real activations the toggles fall by less than the skipped share: "
            "the positions skipped (predicted ones, whose windows are zero, and the low-variance ones VELCRO "
            "compresses) toggle little even when computed, so the MAC toggles per computed output rise "
            "(column 'per computed output'); the C sweep's random IFMAPs have the same activity everywhere. "
            "The prediction logic's own activity (hot flags, the predicted-zero map) is in 'other toggles'.",
        ]
    control = rep.get("activity_control")
    if control is not None:
        lines += ["", *control_markdown(control)]
    lines.append("")
    return "\n".join(lines)


def control_markdown(control: dict) -> list[str]:
    """Prediction on the C sweep's random stimulus: the toggles saved per predicted output, set against
    those saved per compressed output in the same run, and where the rest of the design differs."""
    rows = control["rows"]
    base, c_row, order_row = rows[0], rows[control["compression_row"]], rows[control["order_row"]]
    a = control["c_slope"]
    ratio = lambda r, scope: r["toggles_by_scope"].get(scope, 0) / base["toggles_by_scope"][scope]  # noqa: E731
    scopes = [k for k, _ in sorted(base["toggles_by_scope"].items(), key=lambda kv: -kv[1])[:3]]
    lines = [
        f"Activity control ({control['simulator']}): the C sweep's stimulus, one random configuration and "
        f"{control['images']} random IFMAPs (seed {control['seed']}), whose windows all switch alike. Prediction "
        f"off; compression with a random mask ({c_row['mode']}); prediction on with ZP_MAX = 0, which predicts "
        "(almost) nothing here; then GRID2 with the ZP_MAX values that predict about 1/4, 1/2 and 3/4 of the "
        "outputs. Toggles are per frame over the whole run, as ratios to prediction off, and for the "
        f"prediction runs also to the ZP_MAX = 0 run. 'C line' is 1 - {a:.3f}·share: the whole-design toggles "
        "the compression run saves per compressed output, applied to the predicted share:",
        "",
        "| run | skipped share | predicted share | interval | model | MAC datapath | whole design "
        "| / ZP_MAX = 0 run | C line | " + " | ".join(f"`{k}`" for k in scopes) + " |",
        "|---|" + "---:|" * (8 + len(scopes)),
    ]
    for r in rows:
        model = sum(r["model_gaps"]) / len(r["model_gaps"])
        vs_order = f"{r['toggles_vs_order']:.3f} | {1 - a * r['predicted_share']:.3f}" if "toggles_vs_order" in r else " | "
        lines.append(
            f"| {r['mode']} | {r['skipped_share']:.3f} | {r['predicted_share']:.3f} | {r['mean_interval']:.1f} "
            f"| {model:.1f} | {r['toggles_mac_ratio']:.3f} | {r['toggles_total_ratio']:.3f} | {vs_order} | "
            + " | ".join(f"{ratio(r, k):.3f}" for k in scopes) + " |"
        )
    share = {k: v / sum(base["toggles_by_scope"].values()) for k, v in base["toggles_by_scope"].items()}
    lines += [
        "",
        "The last columns are the submodules that toggle most, as ratios to prediction off "
        f"({', '.join(f'`{k}` {share[k]:.0%}' for k in scopes)} of all toggles with prediction off). "
        "The MAC datapath saves per predicted output what it saves per compressed one. The rest of the design "
        f"pays a fixed cost for the order the rule needs (the ZP_MAX = 0 run: {order_row['toggles_total_ratio']:.3f} "
        "of prediction off with the same outputs computed): the anchors come first (every second column of "
        "every second row for GRID2) and the rest after, so the IFMAP buffer's read path (`ifmap`) moves to a "
        "new word half again as often as in the raster order a static mask keeps. From there, whole-design "
        "toggles fall with the predicted share at least as fast as with C. The predicted-zero map is written "
        "from a selector that is held at 0 outside its 16 writing cycles, so the anchor results of phase A "
        "do not ripple through it.",
    ]
    return lines
