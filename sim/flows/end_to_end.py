"""The end-to-end stage of `make sim`: one compressed layer computed by the RTL.

The offline default CNN's 16-channel depthwise layer is exported (model/deploy/export.py) at several
thresholds, in two allocations: the paper's one threshold per layer, and a balanced one with the
same layer C but equal work per instance. For each, K validation images of the footwear task run
through velcro_top in simulation (channel c on instance c, sim/harness/hil.py) and the forward pass is
finished in PyTorch; model/deploy/e2e.py compares the four paths (float, float compressed, int8 golden,
RTL) and checks every RTL output against the golden model. Throughput comes from the intervals the
top measured, the ideal (the same work spread evenly) from model.deploy's top_speedup, the one
formula the model uses too. The energy proxy of the top is each instance's frame events
(model/hw/energy.py, the event model the C sweep validated against waveforms) plus static power
over the top's interval, which the slowest instance sets. sim/reporting/end_to_end.py writes the
Markdown section.

`run_prediction_hil` runs the same layer with zero-value prediction (sim/flows/prediction.py names
the modes) on the simulated top: the bench checks every output against the golden model and reads
LAST_COMPUTED and LAST_PREDICTED after every frame, so the MACs skipped are the hardware's own count;
the accuracies of every path come from `model.deploy.e2e.run_paths`.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from model.hw import cycles
from model.deploy import e2e
from model.hw.energy import EnergyTable, frame_events
from model.deploy.quantize import quantize_input
from model.hw.golden import N_OUTPUTS
from model.hw.spec import INSTANCES
from model.deploy.masks import top_speedup
from model.deploy.hw_layer import hw_layer_input
from sim.harness.runner import ROOT
from sim.harness.hil import replay_runner, run_layer, run_layer_measured, shared_top_build

TASK, K = "footwear", 32
ROOT_WORK = ROOT / "sim_build"
THRESHOLDS = (0.3, 0.5)  # plus the largest lossless threshold the scan finds
ALLOCATIONS = ("per-layer", "balanced")


def prepare_context():
    """The task's prepared layer with its K validation images, and the lossless threshold scan."""
    ctx = e2e.prepare(TASK, K)
    return ctx, e2e.largest_lossless(ctx)


def run_end_to_end(sim: str, table: EnergyTable, clock_mhz: float, context=None) -> dict:
    ctx, scan = context if context is not None else prepare_context()
    thresholds = sorted(set(THRESHOLDS) | ({scan["chosen_threshold"]} if scan["chosen_threshold"] else set()))
    runs = [(t, a) for t in thresholds for a in ALLOCATIONS]
    exports = [ctx.export(t, a) for t, a in runs]
    ifmaps = quantize_input(hw_layer_input(ctx.model, ctx.images), exports[0].input_scale)
    print(f"[hil] velcro_top on {sim}: {len(runs)} runs x {INSTANCES} channels x {K} images in one simulation")
    ofmaps, measured = run_layer(sim, [e.configs for e in exports], ifmaps, build_dir=shared_top_build(sim))
    runner = replay_runner([e.configs for e in exports], ifmaps, ofmaps, name=f"rtl_{sim}")
    rows = []
    for (threshold, allocation), export, intervals in zip(tqdm(runs, desc="four paths per run", unit="run"),
                                                          exports, measured.tolist()):  # fmt: skip
        result = e2e.run_paths(export, ctx.images, ctx.labels, model=ctx.model, layer_runner=runner)
        computed = [cfg.computed_outputs for cfg in export.configs]
        speed = top_speedup(computed)
        if intervals != speed["intervals"]:
            raise RuntimeError(f"top intervals {intervals} differ from the cycle model {speed['intervals']}")
        top_interval = max(intervals)
        energy = sum(
            table.frame_energy_pj(frame_events(cfg.mask), top_interval, clock_mhz)["total"] for cfg in export.configs
        )
        rows.append({
            "threshold": threshold,
            "allocation": allocation,
            "accuracy": result["accuracy"],
            "layer_C": result["layer_saving_ratio"],
            "model_C": result["model_saving_ratio"],
            "channel_densities": result["channel_densities"],
            "instance_intervals": intervals,
            "top_interval": top_interval,
            "top_images_per_s": clock_mhz * 1e6 / top_interval,
            "speedup": speed["baseline_interval"] / top_interval,
            "ideal_speedup": speed["ideal_speedup"],
            "top_energy_per_image_nj": energy / 1e3,
        })  # fmt: skip
    base_energy = INSTANCES * table.frame_energy_pj(frame_events(ctx.export(0.0).configs[0].mask),
                                                    cycles.frame_interval(N_OUTPUTS), clock_mhz)["total"] / 1e3  # fmt: skip
    return {"task": TASK, "images": K, "simulator": sim, "instances": INSTANCES, "lossless_scan": scan,
            "float_vs_int8_error": ctx.error, "uncompressed_top_energy_per_image_nj": base_energy, "rows": rows}  # fmt: skip



def layer_ifmaps(ctx) -> np.ndarray:
    """The quantized IFMAPs (16, K, 64, 64) of the context's images."""
    return quantize_input(hw_layer_input(ctx.model, ctx.images), ctx.quant.input_scale)


def run_prediction_hil(sim: str, ctx, threshold: float, table: EnergyTable, clock_mhz: float) -> dict:
    """The layer in every mode of sim/flows/prediction.py on the simulated top, in one simulation."""
    from sim.flows import prediction

    exports = prediction.mode_exports(ctx, threshold)
    ifmaps = layer_ifmaps(ctx)
    runs = [e.configs for e in exports]
    print(f"[hil] velcro_top on {sim}, prediction: {len(runs)} modes x {INSTANCES} channels x {K} images, "
          "counters read after every frame")  # fmt: skip
    measured = run_layer_measured(sim, runs, ifmaps, ROOT_WORK / f"prediction-{sim}", build_dir=shared_top_build(sim),
                                  counters=True)  # fmt: skip
    runner = replay_runner(runs, ifmaps, measured["ofmaps"], name=f"rtl_{sim}")
    rows = []
    for r, ((mode, _, pattern), export) in enumerate(zip(tqdm(prediction.MODES, desc="four paths per mode", unit="mode"),
                                                         exports)):  # fmt: skip
        result = e2e.run_paths(export, ctx.images, ctx.labels, model=ctx.model, layer_runner=runner)
        computed, predicted = measured["computed"][r], measured["predicted"][r]  # (instances, K)
        outputs = computed.size * N_OUTPUTS
        rtl_skipped = 1 - int(computed.sum()) / outputs
        golden_skipped = result["mac_reduction"]["int8_golden"] if "mac_reduction" in result else None
        if golden_skipped is not None and abs(rtl_skipped - golden_skipped) > 1e-12:
            raise RuntimeError(f"{mode}: MACs skipped by the RTL {rtl_skipped} differ from the golden model's {golden_skipped}")
        rows.append({
            "mode": mode,
            "threshold": export.threshold,
            "zp_pattern": pattern,
            "zp_max_uint8": int(export.configs[0].zp_max),
            "accuracy": result["accuracy"],
            "mac_reduction": result.get("mac_reduction"),
            "rtl_macs_skipped": rtl_skipped,
            "rtl_macs": int(9 * computed.sum()),
            "rtl_predicted_share": int(predicted.sum()) / outputs,
            "compressed_share": float(export.saving_ratio),
            **prediction.top_measures(export.configs, ifmaps, measured["gaps"][r], table, clock_mhz),
        })  # fmt: skip
    base = rows[0]
    for row in rows:
        row["top_speedup"] = base["top_interval"] / row["top_interval"]
    return {"simulator": sim, "task": TASK, "images": K, "instances": INSTANCES, "threshold": threshold, "rows": rows}
