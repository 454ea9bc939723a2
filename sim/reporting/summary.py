"""reports/: summary.md, sweep.json and the PNG plots of the C sweep (the paper's Fig. 11, measured).

The flows (sim/flows/) compute; this package writes: conv2d.py the density table, end_to_end.py the
hardware-in-the-loop section, this module the sweep section, the plots and summary.md.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def linear_fit(x, y) -> tuple[float, float, float]:
    """Slope, intercept and R² of a least-squares line."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = np.asarray(y) - (slope * np.asarray(x) + intercept)
    r2 = 1 - np.sum(residual**2) / np.sum((np.asarray(y) - np.mean(y)) ** 2)
    return float(slope), float(intercept), float(r2)


def derived_figures(sweep: dict) -> dict:
    """The acceptance figures computed from the measured rows."""
    rows = sweep["rows"]
    base = rows[0]
    assert base["C"] == 0, "the sweep must start at C = 0"
    c = np.array([r["C"] for r in rows])
    energy = np.array([r["energy_pj"]["total"] for r in rows])
    slope, intercept, r2 = linear_fit(c, energy)
    out = {"energy_fit": {"slope_pj": slope, "intercept_pj": intercept, "r2": r2}}
    for r in rows:
        ideal = 1 / (1 - r["C"])
        r["instance_speedup"] = base["instance_interval"] / r["instance_interval"]
        r["instance_speedup_vs_ideal"] = r["instance_speedup"] / ideal
        if "top_interval" in r:
            r["top_speedup"] = base["top_interval"] / r["top_interval"]
            r["top_speedup_vs_ideal"] = r["top_speedup"] / ideal
        r["energy_saving"] = 1 - r["energy_pj"]["total"] / base["energy_pj"]["total"]
        r["toggles_mac_ratio"] = r["toggles_mac"] / base["toggles_mac"]
        r["toggles_total_ratio"] = (r["toggles_mac"] + r["toggles_rest"]) / (base["toggles_mac"] + base["toggles_rest"])
    return out


def plot_sweep(sweep: dict, fit: dict, out_dir: Path) -> list[Path]:
    rows = sweep["rows"]
    c = np.array([r["C"] for r in rows])
    curve_c = np.linspace(0, max(c), 100)
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve_c, 1 / (1 - curve_c), "k--", label="ideal 1/(1-C)")
    ax.plot(c, [r["instance_speedup"] for r in rows], "o", label="one instance (measured)")
    if "top_speedup" in rows[0]:
        ax.plot(c, [r["top_speedup"] for r in rows], "x", ms=9,
                label=f"{sweep['settings']['instances']}-instance top (measured)")
    ax.set(xlabel="compression-saving ratio C", ylabel="throughput / throughput at C = 0",
           title="Throughput vs C")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(out_dir / "throughput_vs_c.png")

    fig2, ax2 = plt.subplots(figsize=(6, 4))
    energy_nj = np.array([r["energy_pj"]["total"] for r in rows]) / 1e3
    ax2.plot(c, energy_nj, "o", label="event-based energy proxy")
    ax2.plot(curve_c, (fit["slope_pj"] * curve_c + fit["intercept_pj"]) / 1e3, "k--",
             label=f"linear fit, R² = {fit['r2']:.4f}")  # fmt: skip
    ax2.set(xlabel="compression-saving ratio C", ylabel="energy per frame (nJ)", title="Energy vs C (one instance)")
    ax2.grid(alpha=0.3)
    ax2.legend()
    paths.append(out_dir / "energy_vs_c.png")

    fig3, ax3 = plt.subplots(figsize=(6, 4))
    ax3.plot(c, [r["toggles_mac"] / 1e6 for r in rows], "o-", label="MAC datapath")
    ax3.plot(c, [r["toggles_rest"] / 1e6 for r in rows], "s-", label="rest of the design")
    ax3.plot(curve_c, rows[0]["toggles_mac"] / 1e6 * (1 - curve_c), "k--", label="MAC at C = 0 x (1-C)")
    ax3.set(xlabel="compression-saving ratio C", ylabel="toggles per frame (millions)",
            title="Signal toggles per frame (waveform dump)")  # fmt: skip
    ax3.grid(alpha=0.3)
    ax3.legend()
    paths.append(out_dir / "toggles_vs_c.png")

    for figure, path in zip((fig, fig2, fig3), paths):
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)
    return paths


def simulators_of_top(settings: dict, has_top: bool) -> str:
    """Names the top's simulator when it differs from the instance runs'."""
    top = settings.get("top_simulator", settings["simulator"])
    return f" (the {settings['instances']}-instance top on {top})" if has_top and top != settings["simulator"] else ""


def sweep_markdown(sweep: dict, fit: dict) -> str:
    s = sweep["settings"]
    rows = sweep["rows"]
    has_top = "top_interval" in rows[0]
    lines = [
        "## Throughput, energy and toggles vs C",
        "",
        f"Simulator: {s['simulator']}{simulators_of_top(s, has_top)}. Clock: {s['clock_mhz']:g} MHz "
        f"(a parameter; the Vivado timing report can replace it). Masks: {s['mask_source']}. A frame is one conv2d over a 64x64 map; "
        f"GOPS count the uncompressed layer's {s['ops_per_frame']:,} operations per frame.",
        "",
        "| C | computed | interval (cycles) | model | frames/s (1 inst.) | GOPS (1 inst.) "
        + ("| top interval | frames/s (top) | GOPS (top) " if has_top else "")
        + "| speedup | 1/(1-C) | energy/frame (nJ) | saving | MAC toggles | other toggles |",
        "|" + "---:|" * (12 + (3 if has_top else 0)),
    ]
    for r in rows:
        top = (f"| {r['top_interval']} | {r['top_frames_per_s']:,.0f} | {r['top_gops']:.1f} " if has_top else "")
        lines.append(
            f"| {r['C']:.4f} | {r['computed']} | {r['instance_interval']} | {r['model_interval']} "
            f"| {r['instance_frames_per_s']:,.0f} | {r['instance_gops']:.2f} {top}"
            f"| {r['instance_speedup']:.3f} | {1 / (1 - r['C']):.3f} | {r['energy_pj']['total'] / 1e3:.1f} "
            f"| {r['energy_saving']:.3f} | {r['toggles_mac']:,} | {r['toggles_rest']:,} |"
        )
    lines += [
        "",
        f"Energy proxy: events counted in the waveform of one steady-state frame x the energies of "
        f"`{Path(s['energy_table']).name}` (version {s['energy_table_version']}, {s['technology']}) + static "
        f"power x frame time. Linear fit over C: R² = {fit['r2']:.5f}, slope {fit['slope_pj'] / 1e3:.1f} nJ per unit C.",
        "",
        "![throughput](throughput_vs_c.png) ![energy](energy_vs_c.png) ![toggles](toggles_vs_c.png)",
        "",
    ]
    return "\n".join(lines)


def resource_sections(resource_table: str, vivado_summary: Path, budget_report: str = "",
                      timing_report: str = "") -> list[str]:
    """The open resource estimate, its budgets and the open timing proxy's worst paths, and, when a
    Vivado run left its summary, that summary."""
    sections = ["## Open resource estimate (Yosys, not Vivado)\n", resource_table, ""]
    if budget_report:
        sections += ["### Against the budgets (rtl/tools/budgets.py)\n", budget_report, ""]
    if timing_report:
        sections += ["### Open timing proxy: logic depth between registers (not Vivado timing)\n", timing_report, ""]
    if vivado_summary.is_file():
        shown = "/".join(vivado_summary.parts[-3:])  # build/vivado/summary.json
        sections += [f"## Vivado (from {shown})\n", "```json", vivado_summary.read_text(), "```"]
    else:
        sections += ["Vivado results: none here (run `make vivado` where Vivado is installed).\n"]
    return sections


def write_reports(out_dir: Path, sweep: dict, extra_sections: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    fit = derived_figures(sweep)
    sweep["derived"] = fit
    plot_sweep(sweep, fit["energy_fit"], out_dir)
    (out_dir / "sweep.json").write_text(json.dumps(sweep, indent=2))
    text = "# VELCRO on FPGA: measured in simulation\n\n" + sweep_markdown(sweep, fit["energy_fit"])
    text += "\n".join(extra_sections)
    (out_dir / "summary.md").write_text(text)
