"""reports/conv2d_sim.md: the per-density table of the instance bench (`make sim`, first stage)."""
from __future__ import annotations

from model.hw.spec import N_OUTPUTS


def density_table(rows: list[dict]) -> str:
    """One row per mask density: measured LAST_CYCLES and interval next to the cycle model."""
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


def density_report(simulator: str, rows: list[dict]) -> str:
    return (
        f"# velcro_conv2d on {simulator}\n\nEvery output bit matched the golden model; LAST_CYCLES and the "
        "steady-state interval of back-to-back frames are measured and compared with model/hw/cycles.py "
        "(speedup = interval at C = 0 / interval).\n\n" + density_table(rows) + "\n"
    )
