"""The prediction section of `make sim`: zero-value prediction on the default CNN's hardware layer.

Four modes of the same layer, with the same real activations (the quantized IFMAPs of the
end-to-end stage's validation images): nothing skipped, VELCRO alone (per-layer masks at the
largest lossless threshold), prediction alone (GRID2, ZP_MAX = 0) and both. Two kinds of simulation:

* the 16-instance top (hardware in the loop, sim/flows/end_to_end.py::run_prediction_hil): every
  channel on its instance, all images back to back, the four modes in one simulation. The bench
  checks every output against the golden model, reads LAST_COMPUTED and LAST_PREDICTED after every
  frame (the MACs skipped come from those) and compares every gap between frame ends with the cycle
  model; the accuracies of every path come from `model.deploy.e2e.run_paths`;
* one instance with a waveform (sim/benches/tb_conv2d.py::test_runs_of_one_instance): one channel
  (the one whose skipped share in "both" is the layer's median), the first INSTANCE_IMAGES images back
  to back per mode. The events and toggles of the whole run come from the dump
  (sim/harness/activity.py): the energy proxy, and the whole-design toggles next to the share of
  outputs skipped, the way the C sweep shows them against C.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from model.hw import cycles, energy, golden
from model.hw.energy import EnergyTable
from model.hw.spec import N_OUTPUTS
from sim.harness.activity import Waveform
from sim.harness.bench_files import write_runs
from sim.harness.runner import ROOT, BenchFailed, run_bench

# (mode, VELCRO on, prediction pattern or None): ZP_MAX is 0 in float units, so 0 in output LSBs.
MODES = (("none", False, None), ("velcro", True, None), ("prediction", False, "grid2"), ("both", True, "grid2"))
INSTANCE_IMAGES = 6  # frames per mode on the one instance with a waveform
WINDOW_MARGIN_CYCLES = 4  # the activity window starts this much before the first input handshake
CONTROL_IMAGES = 3  # random frames per run of the activity control
CONTROL_SHARES = (0.25, 0.5, 0.75)  # predicted shares the activity control's ZP_MAX values aim at
CONTROL_C = 0.5  # the activity control's compression row: mask density
CONTROL_COMPRESSION_ROW, CONTROL_ORDER_ROW = 1, 2  # its rows: off, compression, ZP_MAX = 0, the shares


def whole_design_toggles(row: dict) -> float:
    """Toggles of a measured row (measure_runs, the C sweep): the MAC datapath and the rest together."""
    return row["toggles_mac"] + row["toggles_rest"]


def mode_exports(ctx, threshold: float) -> list:
    """The layer's export in every mode (per-layer allocation)."""
    return [ctx.export(threshold if velcro else None, "per-layer", zp_pattern=pattern, zp_max=0.0)
            for _, velcro, pattern in MODES]  # fmt: skip


def model_events(cfg: golden.ConvConfig, result: golden.FrameResult) -> dict[str, int]:
    """The energy model's events of one frame (model/hw/energy.py)."""
    return energy.frame_events(cfg.effective_mask, result)


def add_events(total: dict[str, int], events: dict[str, int]) -> None:
    for name, count in events.items():
        total[name] = total.get(name, 0) + int(count)


def pick_channel(configs: list[golden.ConvConfig], ifmaps: np.ndarray) -> int:
    """The channel whose share of skipped outputs (all images) is the layer's median."""
    shares = []
    for c, cfg in enumerate(configs):
        results = [golden.frame_result(x, cfg) for x in ifmaps[c]]
        shares.append(1 - sum(r.computed_outputs for r in results) / (N_OUTPUTS * len(results)))
    order = np.argsort(shares)
    return int(order[len(order) // 2])


def measure_runs(sim: str, labels: list[str], runs: list[list[golden.ConvConfig]], frames: np.ndarray, channel: int,
                 table: EnergyTable, clock_mhz: float, work: Path, build_root: Path) -> list[dict]:
    """Instance `channel` of every run over the same frames, back to back, with a waveform: per run, the
    gaps against the cycle model, the events against the energy model, the toggles and the energy
    proxy per frame, and their ratios to the first run."""
    work.mkdir(parents=True, exist_ok=True)
    config_file, results_file = work / "runs.npz", work / "measured.jsonl"
    write_runs(config_file, runs, frames)
    results_file.unlink(missing_ok=True)
    build_dir = build_root / f"sweep-conv2d-{sim}"  # the C sweep's waveform build
    tests, failed = run_bench(
        sim, "velcro_conv2d", "sim.benches.tb_conv2d", build_dir, testcase="test_runs_of_one_instance",
        waves=True, quiet=True,
        env={"VELCRO_CONFIG": str(config_file), "VELCRO_RESULTS": str(results_file), "VELCRO_CHANNEL": str(channel)},
    )  # fmt: skip
    if failed or not tests:
        raise BenchFailed(f"velcro_conv2d runs {labels} failed on {sim} (channel {channel})")
    dump_name = "velcro_conv2d.fst" if sim == "icarus" else "dump.vcd"
    dump = work / dump_name
    (build_dir / dump_name).replace(dump)
    measured = [json.loads(line) for line in results_file.read_text().splitlines()]
    wave = Waveform(dump)
    rows = []
    for label, configs, m in zip(labels, runs, measured):
        cfg = configs[channel]
        clock_ps = m["clock_ps"]
        start = m["first_input_ps"] - WINDOW_MARGIN_CYCLES * clock_ps
        end = m["frame_end_ps"][-1] + WINDOW_MARGIN_CYCLES * clock_ps
        activity = wave.frame_activity("velcro_conv2d", start, end, clock_ps)
        results = [golden.frame_result(x, cfg) for x in frames[channel]]
        expected: dict[str, int] = {}
        for r in results:
            add_events(expected, model_events(cfg, r))
        if activity.events != expected:
            raise RuntimeError(f"{label}: events counted in the waveform {activity.events} differ from the "
                               f"energy model's {expected} (channel {channel}, {len(results)} frames)")
        n = len(results)
        mean_gap = float(np.mean(m["gaps"]))
        per_frame_events = {k: v / n for k, v in activity.events.items()}
        rows.append({
            "mode": label,
            "frames": n,
            "computed": m["computed"],
            "predicted": m["predicted"],
            "compressed": int(cfg.effective_mask.sum()),
            "zp_max": int(cfg.zp_max) if cfg.zp_en else None,
            "skipped_share": 1 - sum(m["computed"]) / (N_OUTPUTS * n),
            "predicted_share": sum(m["predicted"]) / (N_OUTPUTS * n),
            "gaps": m["gaps"],
            "model_gaps": m["model_gaps"],
            "mean_interval": mean_gap,
            "frames_per_s": clock_mhz * 1e6 / mean_gap,
            "events_per_frame": per_frame_events,
            "energy_pj": table.frame_energy_pj(per_frame_events, round(mean_gap), clock_mhz),
            "toggles_mac": activity.toggles_mac / n,
            "toggles_rest": activity.toggles_rest / n,
            "mac_toggles_per_computed": activity.toggles_mac / max(sum(m["computed"]), 1),
            "toggles_by_scope": {k: v / n for k, v in activity.toggles_by_scope.items()},
            "bound_margin": m.get("bound_margin"),
        })  # fmt: skip
    base = rows[0]
    for r in rows:
        r["toggles_total_ratio"] = whole_design_toggles(r) / whole_design_toggles(base)
        r["toggles_mac_ratio"] = r["toggles_mac"] / base["toggles_mac"] if base["toggles_mac"] else float("nan")
        r["energy_saving"] = 1 - r["energy_pj"]["total"] / base["energy_pj"]["total"]
        r["speedup"] = base["mean_interval"] / r["mean_interval"]
    return rows


def run_instance(sim: str, exports: list, ifmaps: np.ndarray, table: EnergyTable, clock_mhz: float,
                 build_root: Path = ROOT / "sim_build", images: int = INSTANCE_IMAGES) -> dict:
    """One instance (the layer's median channel), every mode, real activations."""
    runs = [e.configs for e in exports]
    frames = np.ascontiguousarray(ifmaps[:, :images])
    channel = pick_channel(runs[-1], frames)
    rows = measure_runs(sim, [mode for mode, _, _ in MODES], runs, frames, channel, table, clock_mhz,
                        build_root / f"prediction-conv2d-{sim}", build_root)  # fmt: skip
    return {"simulator": sim, "channel": channel, "images": images, "rows": rows}


def thresholds_for_shares(cfg: golden.ConvConfig, frames: np.ndarray, shares: tuple[float, ...]) -> list[int]:
    """For each target share, the smallest ZP_MAX whose mean predicted share over `frames` reaches it."""
    predicted = []
    for zp_max in range(256):
        on = dataclasses.replace(cfg, zp_en=True, zp_max=zp_max)
        predicted.append(np.mean([golden.frame_result(x, on).predicted_outputs for x in frames]) / N_OUTPUTS)
    return [next(t for t, p in enumerate(predicted) if p >= share) for share in shares]


def run_activity_control(sim: str, table: EnergyTable, clock_mhz: float, seed: int = 2021,
                         build_root: Path = ROOT / "sim_build", images: int = CONTROL_IMAGES) -> dict:
    """Prediction on the C sweep's stimulus: random IFMAPs, whose outputs all switch alike.

    On real activations the positions prediction skips have all-zero windows, which switch little even
    when computed, so whole-design toggles fall by less than the skipped share. This run separates the
    datapath from the data: one random configuration over the same random frames, with
      * prediction off (the reference of every ratio);
      * compression at C = CONTROL_C (a random mask, prediction off): the toggles saved per compressed
        output, measured in the same run;
      * prediction on with ZP_MAX = 0, where (the configuration's outputs being almost never 0) nearly
        nothing is predicted: what computing the anchors first costs by itself (`order_row`);
      * GRID2 with the ZP_MAX values that predict CONTROL_SHARES of the outputs.
    `c_slope` is a in `toggles = 1 - a·C` from the compression row; each prediction row's
    `toggles_vs_order` is its whole-design toggles over the order row's, to be set against 1 - a·share.
    """
    rng = np.random.default_rng(seed)
    cfg = golden.random_config(rng, 0.0)
    frames = rng.integers(0, 256, size=(1, images, golden.H, golden.W), dtype=np.uint8)
    thresholds = thresholds_for_shares(cfg, list(frames[0]), CONTROL_SHARES)
    mask = np.random.default_rng(seed + 1).random((golden.H, golden.W)) < CONTROL_C
    compressed = dataclasses.replace(cfg, mask=mask, skip_en=True)
    zp = [dataclasses.replace(cfg, zp_en=True, zp_pattern=golden.ZP_GRID2, zp_max=t) for t in (0, *thresholds)]
    runs = [[cfg], [compressed]] + [[c] for c in zp]
    labels = ["prediction off", f"VELCRO, C = {mask.mean():.2f}"] + [f"GRID2, ZP_MAX = {c.zp_max}" for c in zp]
    rows = measure_runs(sim, labels, runs, frames, 0, table, clock_mhz, build_root / f"prediction-control-{sim}",
                        build_root)  # fmt: skip
    c_row, order_row = rows[CONTROL_COMPRESSION_ROW], rows[CONTROL_ORDER_ROW]
    for r in rows[CONTROL_ORDER_ROW:]:
        r["toggles_vs_order"] = whole_design_toggles(r) / whole_design_toggles(order_row)
    return {"simulator": sim, "seed": seed, "images": images, "rows": rows, "compression_row": CONTROL_COMPRESSION_ROW,
            "order_row": CONTROL_ORDER_ROW, "c_slope": (1 - c_row["toggles_total_ratio"]) / c_row["skipped_share"]}


def toggle_slope_from_sweep(sweep_rows: list[dict]) -> float | None:
    """a in `whole-design toggles / toggles at C = 0 = 1 - a·C`, least squares through the C sweep."""
    base = next((r for r in sweep_rows if r["C"] == 0), None)
    if base is None or len(sweep_rows) < 2:
        return None
    c = np.array([r["C"] for r in sweep_rows])
    drop = 1 - np.array([whole_design_toggles(r) / whole_design_toggles(base) for r in sweep_rows])
    return float(np.dot(c, drop) / np.dot(c, c)) if np.dot(c, c) else None


def top_measures(configs: list[golden.ConvConfig], results: list[list[golden.FrameResult]], gaps: np.ndarray,
                 model_gaps: list[list[int]], table: EnergyTable, clock_mhz: float) -> dict:
    """Throughput of the top (slowest instance over the run) measured and modelled, energy per image, from
    each instance's golden results and its gaps between frame ends, measured and from the cycle model."""
    images = len(results[0])
    measured_span = [int(np.sum(g)) for g in gaps]  # per instance: first to last frame end
    model_span = [int(np.sum(g)) for g in model_gaps]
    top_interval = max(measured_span) / (images - 1)
    model_interval = max(model_span) / (images - 1)
    events_pj = 0.0
    for cfg, unit in zip(configs, results):
        for result in unit:
            events_pj += table.frame_energy_pj(model_events(cfg, result), 0, clock_mhz)["total"]
    static_pj = table.frame_energy_pj({}, 1, clock_mhz)["static"] * top_interval * len(configs)
    return {
        "top_interval": top_interval,
        "model_top_interval": model_interval,
        "instance_spans": measured_span,
        "model_instance_spans": model_span,
        "top_images_per_s": clock_mhz * 1e6 / top_interval,
        "top_energy_per_image_nj": (events_pj / images + static_pj) / 1e3,
    }
