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
"""
from __future__ import annotations

from tqdm import tqdm

from model.hw import cycles
from model.deploy import e2e
from model.hw.energy import EnergyTable, frame_events
from model.deploy.quantize import quantize_input
from model.hw.golden import N_OUTPUTS
from model.hw.spec import INSTANCES
from model.deploy.masks import top_speedup
from model.deploy.hw_layer import hw_layer_input
from sim.harness.hil import replay_runner, run_layer, shared_top_build

TASK, K = "footwear", 32
THRESHOLDS = (0.3, 0.5)  # plus the largest lossless threshold the scan finds
ALLOCATIONS = ("per-layer", "balanced")


def run_end_to_end(sim: str, table: EnergyTable, clock_mhz: float) -> dict:
    ctx = e2e.prepare(TASK, K)
    scan = e2e.largest_lossless(ctx)
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

