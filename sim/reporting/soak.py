"""reports/soak.md from the soak's statistics (sim/benches/tb_soak.py writes them, sim/flows/soak.py runs it)."""
from __future__ import annotations

KIND_NAMES = {
    "early_tlast": "malformed frame, tlast before beat 511",
    "late_tlast": "malformed frame, no tlast on beat 511",
    "write_busy": "configuration written mid-frame",
    "reset": "rst pulsed with frames in flight",
    "bus_sweep": "AXI4-Lite sweep while streaming",
}


def passed(s: dict) -> bool:
    return bool(s["done"]) and s["failures"] == 0


def summary_line(s: dict) -> str:
    return (f"[soak] {'PASS' if passed(s) else 'FAIL'}: {s['frames']:,} frames ({s['frames_exact']:,} exact), "
            f"{sum(s['disturbances'].values())} disturbances, {s['wrong_frames']} wrong, {s['hangs']} hangs, "
            f"{s['failures']} failures, {s['cycles']:,} cycles, {s['wall_s']:.0f} s")  # fmt: skip


def markdown(s: dict) -> str:
    kinds = s["disturbances"]
    outputs = s["computed_outputs"] + s["predicted_outputs"] + s["compressed_outputs"]
    share = (lambda n: n / outputs) if outputs else (lambda n: 0.0)  # noqa: E731
    lines = [
        "# Soak of velcro_top (Verilator)",
        "",
        f"**{'PASS' if passed(s) else 'FAIL'}** - `python -m sim.flows.soak --frames {s['target_frames']} "
        f"--seed {s['seed']} --rate {s['rate']}` (`make soak`), written by sim/flows/soak.py.",
        "",
        "All 16 instances stream at once, each in segments: new random settings (weights, bias, M, S, CONTROL, "
        "ZP_CONFIG with both patterns and ZP_MAX 0..255, MASK with densities from 0 to 1, AVG), a few random "
        "IFMAPs (noise, zero blocks, sparse, constant), random idle cycles on s_axis and backpressure on m_axis "
        "(0 to 40 % of the cycles, in bursts of 1 to 200 cycles on average), then FRAMES and STATUS checked. "
        "Every frame whose first beat came after the last write to its instance is compared bit for bit with "
        "the golden model under the settings then in effect, and its LAST_COMPUTED, LAST_PREDICTED, LAST_MACS "
        "and LAST_CYCLES are read right after it. A lane with work and no handshake for 4x the slowest frame's "
        "latency, or an AXI4-Lite request without a response, counts as a hang and stops the run "
        "(sim/benches/tb_soak.py).",
        "",
        "| | |",
        "|---|---:|",
        f"| frames through the cores | {s['frames']:,} |",
        f"| of them bit-exact against the golden model | {s['frames_exact']:,} |",
        f"| in flight during a write to their instance (shape and count checked only) | {s['frames_unspecified']:,} |",
        f"| **wrong frames** | **{s['wrong_frames']}** |",
        f"| **hangs** (watchdog) | **{s['hangs']}** |",
        f"| all failed checks | {s['failures']} |",
        f"| frames dropped by resets (queued or in flight) | {s['frames_lost_to_reset']:,} |",
        f"| per-frame counter checks (LAST_COMPUTED, LAST_PREDICTED, LAST_MACS, LAST_CYCLES) | {s['counter_checks']:,} |",
        f"| counter reads skipped (the next frame had already ended) | {s['counter_reads_skipped']:,} |",
        f"| frames with prediction on | {s['zp_frames']:,} |",
        f"| outputs of exact frames: computed / predicted / compressed | {share(s['computed_outputs']):.2f} / "
        f"{share(s['predicted_outputs']):.2f} / {share(s['compressed_outputs']):.2f} |",
        f"| segments / epochs (an epoch ends at a reset) | {s['segments']:,} / {s['epochs']} |",
        f"| AXI4-Lite words read / written | {s['bus_reads']:,} / {s['bus_writes']:,} |",
        f"| address space read by the sweeps' walk (32,768 words) | {s['walk_coverage']:.1%} |",
        f"| simulated cycles | {s['cycles']:,} |",
        f"| simulation wall time (cycles per second) | {s['sim_wall_s']:.0f} s ({s['cycles'] / max(s['sim_wall_s'], 1e-9):,.0f}) |",
        f"| flow wall time, build included | {s['wall_s']:.0f} s |",
        "",
        f"## Disturbances: {sum(kinds.values())}, each followed by an exact frame on every instance it touched "
        f"({s['disturbances_verified']} verified)",
        "",
        "| kind | count |",
        "|---|---:|",
        *[f"| {KIND_NAMES.get(kind, kind)} (`{kind}`) | {count} |" for kind, count in sorted(kinds.items())],
    ]
    if s["write_busy_targets"]:
        targets = ", ".join(f"{name} {count}" for name, count in sorted(s["write_busy_targets"].items()))
        lines += ["", f"Mid-frame writes by target: {targets}."]
    if s["failure_log"]:
        lines += ["", "## Failures (first ones)", "", "Reproduce with the command above (same frames, rate and seed).", ""]
        lines += [f"- `{f['kind']}` at cycle {f['cycle']}: {f['message']}" for f in s["failure_log"]]
    return "\n".join(lines) + "\n"
