"""Hardware in the loop on Icarus: the default CNN's depthwise layer computed by the simulated velcro_krnl
through the host (host/api.py, the driver of `velcro run` and of `make sim`'s stage) for 32 validation
images x 16 channels, at the largest threshold with no accuracy loss."""
from __future__ import annotations

import numpy as np

from host import schedule
from host.api import quantized_ifmaps, run_layers
from host.backends.sim import SimBackend
from model.deploy import e2e
from model.deploy.quantize import golden_runner
from model.hw import cycles


def test_rtl_layer_matches_golden_and_keeps_accuracy(sim_build_root):
    ctx = e2e.prepare("footwear", 32)
    threshold = e2e.largest_lossless(ctx)["chosen_threshold"]
    assert threshold is not None and threshold > 0
    export = ctx.export(threshold, "per-layer")
    ifmaps = quantized_ifmaps(ctx.model, ctx.images, export.input_scale)
    work = sim_build_root / "hil-icarus"
    # run_layers raises unless every run wrote back the golden model's counters of its last frame. Planned
    # fixed (run_layers' default): channel c on unit c, its 32 frames in one run.
    (run,) = run_layers([export.configs], ifmaps, SimBackend("icarus", work=work, build_dir=work / "build"))
    assert [(j.unit, j.channel, j.first_image, j.images) for j in run.plan.jobs] == [(c, c, 0, 32) for c in range(16)]
    assert [c["FRAMES"] for c in run.counters] == [32] * 16
    assert run.ofmaps.shape == (16, 32, 64, 64)
    np.testing.assert_array_equal(run.ofmaps, golden_runner(export.configs, ifmaps), "RTL OFMAPs differ from the golden model")
    # Each unit's 32 frames ran back to back: every gap between frame ends is the cycle model's.
    gaps = run.gaps()
    for i, cfg in enumerate(export.configs):
        model = cycles.back_to_back_gaps(cfg, list(ifmaps[i]))
        assert gaps[i].tolist() == model, f"unit {i} (c={cfg.computed_outputs}): gaps {gaps[i].tolist()} != cycle model {model}"
    # ... and each run, ap_start to ap_done, took the cycle model's cycles (memory latency 64, no pauses).
    assert run.run_cycles.tolist() == schedule.model_run_cycles(run.plan, export.configs, ifmaps)
    # run_paths raises unless every RTL output equals the golden model's, so the "rtl" accuracy equals
    # "int8_golden" by construction; what is measured here is that the int8 layer on the RTL keeps the
    # float compressed model's accuracy.
    result = e2e.run_paths(export, ctx.images, ctx.labels, model=ctx.model, layer_runner=run.runner)
    assert result["images"] == 32
    accuracy = result["accuracy"]
    assert abs(accuracy["rtl"] - accuracy["float_compressed"]) <= 0.01
