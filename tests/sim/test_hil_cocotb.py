"""Hardware in the loop on Icarus: the default CNN's depthwise layer computed by velcro_top for 32
validation images x 16 channels, at the largest threshold with no accuracy loss."""
from __future__ import annotations

from model.deploy import e2e
from model.deploy.quantize import quantize_input
from model.deploy.hw_layer import hw_layer_input
from sim.harness.hil import replay_runner, run_layer


def test_rtl_layer_matches_golden_and_keeps_accuracy(sim_build_root):
    ctx = e2e.prepare("footwear", 32)
    threshold = e2e.largest_lossless(ctx)["chosen_threshold"]
    assert threshold is not None and threshold > 0
    export = ctx.export(threshold, "per-layer")
    ifmaps = quantize_input(hw_layer_input(ctx.model, ctx.images), export.input_scale)
    ofmaps, _ = run_layer("icarus", [export.configs], ifmaps, work=sim_build_root / "hil-icarus")
    assert ofmaps.shape == (1, 16, 32, 64, 64)
    # run_paths raises unless every RTL output equals the golden model's, image by image and
    # channel by channel, and unless the RTL predictions equal the int8 golden predictions.
    runner = replay_runner([export.configs], ifmaps, ofmaps, name="rtl_icarus")
    result = e2e.run_paths(export, ctx.images, ctx.labels, model=ctx.model, layer_runner=runner)
    assert result["images"] == 32
    accuracy = result["accuracy"]
    assert accuracy["rtl"] == accuracy["int8_golden"]
    assert abs(accuracy["rtl"] - accuracy["float_compressed"]) <= 0.01
